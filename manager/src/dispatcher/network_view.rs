//! The network view netd converges a node to: the networks, every ready
//! node (for VXLAN and WireGuard peers), every live task address (for the
//! overlays' static FDB and neighbour entries), and per service its ports,
//! virtual IPs, names and running tasks (load balancing, DNS, the mesh).
//!
//! The view is cluster-wide and the same for every node but `node_id`:
//! netd picks what its node needs.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::v1::{
    Backend, NetworkAliases, NetworkView, NodePeer, ServiceEndpoints, TaskAddress,
};
use shoal_proto::types::v1::{HealthState, NodeState, Service, Task, TaskState};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::store::{watch, Change, Kind, State, Store};

fn id_of(task: &Task) -> String {
    task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default()
}

fn bare(address: &str) -> String {
    address.split('/').next().unwrap_or_default().to_string()
}

/// A task that takes traffic: running and meant to keep running, and not
/// unhealthy. A task whose desired state moved past running leaves every
/// load balancer at that commit, before its agent stops it; so does one
/// its agent reports unhealthy (it is stopped and fails next). A task with
/// a health check is `starting` until its first healthy probe (swarmkit's
/// rule, kept by the agent), so "running" already means "healthy" there.
fn is_backend(task: &Task) -> bool {
    let unhealthy = task
        .status
        .as_ref()
        .is_some_and(|s| s.health() == HealthState::Unhealthy);
    task.observed_state() == TaskState::Running
        && task.desired() <= TaskState::Running
        && !unhealthy
}

/// A task whose address must be reachable across nodes: on a node and not
/// yet down. A starting task may already talk to others and needs their
/// replies; a stopping one (out of every load balancer already) still
/// finishes the requests it has.
fn is_addressable(task: &Task) -> bool {
    !task.node_id.is_empty() && !task.observed_state().is_terminal()
}

fn endpoints(state: &State, service: &Service) -> ServiceEndpoints {
    let id = service
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let mut backends: Vec<Backend> = state
        .tasks_of_service(&id)
        .filter(|t| is_backend(t))
        .flat_map(|t| {
            let hostname = t.hostname();
            t.networks.iter().map(move |a| Backend {
                task_id: id_of(t),
                node_id: t.node_id.clone(),
                address: bare(&a.address),
                network_id: a.network_id.clone(),
                hostname: hostname.clone(),
            })
        })
        .collect();
    backends.sort_by(|a, b| (&a.network_id, &a.address).cmp(&(&b.network_id, &b.address)));
    let aliases = spec
        .network_aliases
        .iter()
        .filter_map(|a| {
            let network = state.find_network(&a.network).ok()?;
            Some(NetworkAliases {
                network_id: network.meta.as_ref()?.id.clone(),
                aliases: a.aliases.clone(),
            })
        })
        .collect();
    ServiceEndpoints {
        service_id: id,
        service_name: spec.name.clone(),
        ports: service.endpoint_ports.clone(),
        backends,
        virtual_ips: service.virtual_ips.clone(),
        endpoint_mode: spec.endpoint.as_ref().map_or(0, |e| e.mode),
        stack: spec
            .labels
            .get(shoal_proto::STACK_NAMESPACE_LABEL)
            .cloned()
            .unwrap_or_default(),
        aliases,
    }
}

/// The view for `node_id`.
pub fn view(state: &State, node_id: &str) -> NetworkView {
    let mut services: Vec<ServiceEndpoints> = state
        .services
        .values()
        .map(|service| endpoints(state, service))
        .collect();
    services.sort_by(|a, b| a.service_id.cmp(&b.service_id));
    let mut nodes: Vec<NodePeer> = state
        .nodes
        .values()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.state == NodeState::Ready as i32)
        })
        .filter_map(|n| {
            let addr = n.status.as_ref()?.addr.clone();
            (!addr.is_empty()).then(|| NodePeer {
                node_id: n.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                addr,
                wireguard_public_key: n.wireguard_public_key.clone(),
                ingress_address: bare(&n.ingress_address),
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let mut addresses: Vec<TaskAddress> = state
        .tasks
        .values()
        .filter(|t| is_addressable(t))
        .flat_map(|t| {
            t.networks.iter().map(move |a| TaskAddress {
                task_id: id_of(t),
                node_id: t.node_id.clone(),
                network_id: a.network_id.clone(),
                address: bare(&a.address),
            })
        })
        .collect();
    addresses.sort_by(|a, b| (&a.network_id, &a.address).cmp(&(&b.network_id, &b.address)));
    NetworkView {
        networks: state.networks.values().cloned().collect(),
        services,
        managers: super::assignments::manager_addrs(state),
        node_id: node_id.to_string(),
        nodes,
        addresses,
        network_key_rotation_ms: state
            .cluster()
            .and_then(|c| c.spec.as_ref())
            .map_or(0, |s| s.network_key_rotation_ms),
    }
}

pub async fn stream(store: Arc<Store>, node_id: String, tx: Sender<Result<NetworkView, Status>>) {
    let mut events = store.subscribe();
    let mut last = store.view(|s| view(s, &node_id));
    if tx.send(Ok(last.clone())).await.is_err() {
        return;
    }
    let relevant = |c: &Change| {
        matches!(
            c.kind(),
            Kind::Service | Kind::Task | Kind::Network | Kind::Node | Kind::Cluster
        )
    };
    loop {
        tokio::select! {
            alive = watch::changed(&mut events, relevant, Duration::from_millis(5)) => {
                if !alive { return; }
            }
            _ = tx.closed() => return,
        }
        let now = store.view(|s| view(s, &node_id));
        if now != last {
            if tx.send(Ok(now.clone())).await.is_err() {
                return;
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::TaskStatus;

    fn task(state: TaskState, health: HealthState) -> Task {
        Task {
            node_id: "n1".into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                health: health as i32,
                ..TaskStatus::default()
            }),
            ..Task::default()
        }
    }

    #[test]
    fn only_running_tasks_that_are_not_unhealthy_take_traffic() {
        assert!(is_backend(&task(TaskState::Running, HealthState::None)));
        assert!(is_backend(&task(TaskState::Running, HealthState::Healthy)));
        // Not healthy yet: its agent keeps it starting.
        assert!(!is_backend(&task(
            TaskState::Starting,
            HealthState::Starting
        )));
        // Unhealthy and about to be stopped: out at once.
        assert!(!is_backend(&task(
            TaskState::Running,
            HealthState::Unhealthy
        )));
        let mut stopping = task(TaskState::Running, HealthState::Healthy);
        stopping.desired_state = TaskState::Shutdown as i32;
        assert!(!is_backend(&stopping));
    }

    #[test]
    fn tasks_not_taking_traffic_keep_their_addresses() {
        // Neighbour and FDB entries stay while a task is up: it may talk
        // to others before it is healthy, and needs their replies.
        assert!(is_addressable(&task(
            TaskState::Starting,
            HealthState::Starting
        )));
        assert!(is_addressable(&task(
            TaskState::Running,
            HealthState::Unhealthy
        )));
        assert!(!is_addressable(&task(
            TaskState::Failed,
            HealthState::Unhealthy
        )));
    }
}
