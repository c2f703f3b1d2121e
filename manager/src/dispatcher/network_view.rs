//! The network view netd converges a node to: the networks, every ready
//! node (for VXLAN and WireGuard peers), every live task address (for the
//! overlays' static FDB and neighbour entries), and per service its ports,
//! virtual IPs, names and running tasks (load balancing, DNS, the mesh).
//!
//! Each node's view holds what its netd builds: every network and every
//! ready node, but task addresses, backends and services only of the
//! networks its tasks use and of ingress (built everywhere). The rest is
//! no concern of its netd, and leaving it out keeps the view small when a
//! cluster runs many tasks on networks a node never builds.

use std::collections::HashSet;
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

/// The networks the node builds: those of its tasks that still need the
/// node (meant to run, or not yet down), and ingress.
fn networks_of_node<'a>(state: &'a State, node_id: &str) -> HashSet<&'a str> {
    let mut ids: HashSet<&str> = state
        .tasks_of_node(node_id)
        .filter(|t| t.desired() <= TaskState::Running || !t.observed_state().is_terminal())
        .flat_map(|t| t.networks.iter().map(|a| a.network_id.as_str()))
        .collect();
    ids.extend(
        state
            .networks
            .values()
            .filter(|n| n.ingress)
            .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str())),
    );
    ids
}

/// Whether a service concerns a node that builds `networks`: it has a
/// virtual IP on one of them, publishes ports (the routing mesh and host
/// ports answer on every node), or may have tasks on them.
fn concerns(state: &State, service: &Service, networks: &HashSet<&str>) -> bool {
    !service.endpoint_ports.is_empty()
        || service
            .virtual_ips
            .iter()
            .any(|v| networks.contains(v.network_id.as_str()))
        || service.spec.as_ref().is_some_and(|spec| {
            crate::allocator::networks_of(state, spec)
                .iter()
                .filter_map(|n| n.meta.as_ref())
                .any(|m| networks.contains(m.id.as_str()))
        })
}

fn endpoints(state: &State, service: &Service, networks: &HashSet<&str>) -> ServiceEndpoints {
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
            let node = state
                .nodes
                .get(&t.node_id)
                .and_then(|n| n.description.as_ref())
                .map(|d| d.hostname.as_str())
                .unwrap_or_default();
            let hostname = t.hostname(node);
            t.networks
                .iter()
                .filter(|a| networks.contains(a.network_id.as_str()))
                .map(move |a| Backend {
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
    let networks = networks_of_node(state, node_id);
    let mut services: Vec<ServiceEndpoints> = state
        .services
        .values()
        .filter(|service| concerns(state, service, &networks))
        .map(|service| endpoints(state, service, &networks))
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
    let mut addresses: Vec<TaskAddress> = networks
        .iter()
        .flat_map(|network| {
            state
                .tasks_on_network(network)
                .filter(|t| is_addressable(t))
                .flat_map(move |t| {
                    t.networks
                        .iter()
                        .filter(move |a| a.network_id == *network)
                        .map(move |a| TaskAddress {
                            task_id: id_of(t),
                            node_id: t.node_id.clone(),
                            network_id: a.network_id.clone(),
                            address: bare(&a.address),
                        })
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

    /// A node's view holds the networks its tasks use (and ingress), not
    /// what runs on networks it never builds.
    #[test]
    fn a_view_holds_only_the_networks_its_node_builds() {
        use crate::store::{Object, Write};
        use shoal_proto::types::v1::{
            Meta, Network, NetworkAttachment, NetworkSpec, ServiceSpec, VirtualIp,
        };
        let meta = |id: &str| {
            Some(Meta {
                id: id.into(),
                ..Default::default()
            })
        };
        let network = |id: &str, ingress: bool| Network {
            meta: meta(id),
            spec: Some(NetworkSpec {
                name: id.into(),
                ..Default::default()
            }),
            ingress,
            ..Default::default()
        };
        let service = |id: &str, net: &str| Service {
            meta: meta(id),
            spec: Some(ServiceSpec {
                name: id.into(),
                networks: vec![net.into()],
                ..Default::default()
            }),
            virtual_ips: vec![VirtualIp {
                network_id: net.into(),
                addr: "10.9.0.2/24".into(),
            }],
            ..Default::default()
        };
        let placed = |id: &str, service: &str, node: &str, net: &str, addr: &str| {
            let mut t = task(TaskState::Running, HealthState::None);
            t.meta = meta(id);
            t.service_id = service.into();
            t.node_id = node.into();
            t.networks = vec![NetworkAttachment {
                network_id: net.into(),
                address: format!("{addr}/24"),
                ..Default::default()
            }];
            t
        };
        let mut state = State::default();
        for object in [
            Object::from(network("ingress", true)),
            Object::from(network("front", false)),
            Object::from(network("sim", false)),
            Object::from(service("web", "front")),
            Object::from(service("batch", "sim")),
            Object::from(placed("t1", "web", "n1", "front", "10.1.0.3")),
            Object::from(placed("t2", "web", "n2", "front", "10.1.0.4")),
            Object::from(placed("t3", "batch", "n2", "sim", "10.2.0.3")),
        ] {
            state.apply(Write::Put(object), 1);
        }

        let on_n1 = view(&state, "n1");
        assert_eq!(on_n1.networks.len(), 3, "every network is in every view");
        let services: Vec<&str> = on_n1
            .services
            .iter()
            .map(|s| s.service_name.as_str())
            .collect();
        assert_eq!(services, ["web"]);
        let addresses: Vec<&str> = on_n1.addresses.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(addresses, ["10.1.0.3", "10.1.0.4"]);

        let on_n2 = view(&state, "n2");
        let mut services: Vec<&str> = on_n2
            .services
            .iter()
            .map(|s| s.service_name.as_str())
            .collect();
        services.sort();
        assert_eq!(services, ["batch", "web"]);
        assert_eq!(on_n2.addresses.len(), 3);
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
