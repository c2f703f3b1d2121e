//! The network view netd converges a node to: the networks, and for each
//! service with published ports, the addresses of its running tasks.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::v1::{Backend, NetworkView, ServiceEndpoints};
use shoal_proto::types::v1::TaskState;
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::store::{watch, Change, Kind, State, Store};

/// The view for `node_id`. Until the overlay connects the hosts, a node can
/// reach only its own tasks, so its routing mesh balances over those; the
/// overlay issue widens this to every node's tasks.
pub fn view(state: &State, node_id: &str) -> NetworkView {
    let mut services: Vec<ServiceEndpoints> = state
        .services
        .values()
        .map(|service| {
            let id = service
                .meta
                .as_ref()
                .map(|m| m.id.clone())
                .unwrap_or_default();
            let mut backends: Vec<Backend> = state
                .tasks_of_service(&id)
                .filter(|t| t.observed_state() == TaskState::Running)
                .filter(|t| t.desired_state <= TaskState::Running as i32)
                .filter(|t| t.node_id == node_id)
                .flat_map(|t| {
                    t.networks.iter().map(move |a| Backend {
                        task_id: t.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                        node_id: t.node_id.clone(),
                        address: a.address.split('/').next().unwrap_or("").to_string(),
                        network_id: a.network_id.clone(),
                    })
                })
                .collect();
            backends.sort_by(|a, b| a.address.cmp(&b.address));
            ServiceEndpoints {
                service_id: id,
                service_name: service
                    .spec
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                ports: service.endpoint_ports.clone(),
                backends,
            }
        })
        .collect();
    services.sort_by(|a, b| a.service_id.cmp(&b.service_id));
    NetworkView {
        networks: state.networks.values().cloned().collect(),
        services,
        managers: super::assignments::manager_addrs(state),
    }
}

pub async fn stream(store: Arc<Store>, node_id: String, tx: Sender<Result<NetworkView, Status>>) {
    let mut events = store.subscribe();
    let mut last = store.view(|s| view(s, &node_id));
    if tx.send(Ok(last.clone())).await.is_err() {
        return;
    }
    let relevant = |c: &Change| matches!(c.kind(), Kind::Service | Kind::Task | Kind::Network);
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
