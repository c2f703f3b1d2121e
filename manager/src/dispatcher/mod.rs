//! The dispatcher: the managers' side of every node's session. Agents open
//! a session stream and get their assignments (complete at first, then
//! incremental, pushed as the store commits), send heartbeats, and report
//! task states, which are batched into few store writes. netd watches the
//! network view here. The caller is always the node its certificate names.

mod assignments;
mod network_view;
mod node_health;
mod status_batcher;

use shoal_identity::{PeerIdentity, Role};
use shoal_proto::dispatcher::v1::dispatcher_server::Dispatcher as DispatcherRpc;
use shoal_proto::dispatcher::v1::*;
use shoal_proto::types::v1::{Node, NodeState, NodeStatus};
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::logbroker::LogBroker;
use crate::store::{Store, StoreError};

pub use crate::heartbeats::Heartbeats;
#[cfg(test)]
pub(crate) use assignments::needs_agent;
pub use node_health::NodeHealth;
pub use status_batcher::{spawn as status_batcher, Handle as StatusBatcher};

pub struct Dispatcher {
    store: Arc<Store>,
    cluster_id: String,
    heartbeats: Arc<Heartbeats>,
    statuses: status_batcher::Handle,
    logs: Arc<LogBroker>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        cluster_id: String,
        heartbeats: Arc<Heartbeats>,
        logs: Arc<LogBroker>,
    ) -> Self {
        let statuses = status_batcher::spawn(store.clone());
        Dispatcher {
            store,
            cluster_id,
            heartbeats,
            statuses,
            logs,
        }
    }

    /// The calling node, which must be a node of this cluster that has not
    /// been removed.
    fn node_of<T>(&self, request: &Request<T>) -> Result<PeerIdentity, Status> {
        let peer = shoal_identity::peer_of(request)
            .ok_or_else(|| Status::unauthenticated("a node certificate is required"))?;
        if peer.cluster_id != self.cluster_id {
            return Err(Status::permission_denied(
                "the certificate belongs to another cluster",
            ));
        }
        if !matches!(peer.role, Role::Manager | Role::Worker) {
            return Err(Status::permission_denied("only nodes open sessions"));
        }
        if !self.store.view(|s| s.nodes.contains_key(&peer.node_id)) {
            return Err(Status::permission_denied(format!(
                "node {} is not part of this cluster (removed?)",
                peer.node_id
            )));
        }
        Ok(peer)
    }
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl DispatcherRpc for Dispatcher {
    type SessionStream = Stream<SessionMessage>;
    type WatchNetworkStream = Stream<NetworkView>;

    async fn session(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = self.node_of(&request)?;
        let remote = request.remote_addr().map(|a| a.ip().to_string());
        // Which root issued the certificate this session runs on (the TLS
        // handshake verified the chain): a root CA rotation completes when
        // every node has come back with one from the new root.
        let leaf = request.peer_certs().and_then(|c| c.first().cloned());
        let cert_root_digest = self.store.view(|s| {
            let ca = crate::ca::CaState::of(s).ok()?;
            ca.root_digest_of(leaf.as_ref()?)
        });
        let description = request.into_inner().description.unwrap_or_default();
        let (session_id, period) = self.heartbeats.open(&peer.node_id);
        let node_id = peer.node_id.clone();
        self.store
            .update(|state, tx| {
                let mut node = state
                    .nodes
                    .get(&node_id)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("node {node_id} not found")))?;
                let addr = data_path_addr(&description.addr, remote.as_deref(), &node);
                node.description = Some(description.clone());
                node.cert_root_digest = cert_root_digest.clone().unwrap_or_default();
                node.status = Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    message: String::new(),
                    addr,
                });
                tx.put(node);
                Ok(())
            })
            .await
            .map_err(Status::from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        self.logs.attach_session(&node_id, &session_id, &tx);
        tokio::spawn(assignments::stream(
            self.store.clone(),
            node_id,
            session_id,
            period,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let peer = self.node_of(&request)?;
        let HeartbeatRequest {
            session_id,
            volumes,
            reports_volumes,
        } = request.into_inner();
        let Some(period) = self.heartbeats.beat(&peer.node_id, &session_id) else {
            return Err(Status::not_found(
                "session is no longer valid: open a new one",
            ));
        };
        if reports_volumes {
            record_volumes(&self.store, &peer.node_id, volumes).await?;
        }
        // The agent beats at this period from now on (a `swarm update
        // --dispatcher-heartbeat` reaches it here).
        Ok(Response::new(HeartbeatResponse {
            period_ms: period.as_millis() as u32,
        }))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let peer = self.node_of(&request)?;
        let request = request.into_inner();
        if !self.heartbeats.valid(&peer.node_id, &request.session_id) {
            return Err(Status::not_found(
                "session is no longer valid: open a new one",
            ));
        }
        self.statuses
            .submit(peer.node_id, request.updates)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn publish_logs(
        &self,
        request: Request<tonic::Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let peer = self.node_of(&request)?;
        let mut messages = request.into_inner();
        let Some(first) = messages.message().await? else {
            return Ok(Response::new(PublishLogsResponse {}));
        };
        let subscription_id = first.subscription_id.clone();
        let route = self.logs.route(&peer.node_id, &subscription_id)?;
        let mut next = Some(first);
        loop {
            if let Some(message) = next.take() {
                if message.subscription_id != subscription_id {
                    return Err(Status::invalid_argument(
                        "one PublishLogs call carries one subscription",
                    ));
                }
                let done = message.done;
                if route.send(message).await.is_err() || done {
                    break;
                }
            }
            // The reader may go while the node has nothing to say: end the
            // call then, so the node stops reading.
            tokio::select! {
                message = messages.message() => match message? {
                    Some(m) => next = Some(m),
                    None => break,
                },
                _ = route.closed() => break,
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }

    async fn watch_network(
        &self,
        request: Request<WatchNetworkRequest>,
    ) -> Result<Response<Self::WatchNetworkStream>, Status> {
        let peer = self.node_of(&request)?;
        let key = request.into_inner().wireguard_public_key;
        if !key.is_empty() {
            record_wireguard_key(&self.store, &peer.node_id, key).await?;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(network_view::stream(self.store.clone(), peer.node_id, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Records the public key a node's netd announced (a new one after a key
/// rotation); its peers get it with their next view. Only the well-formed
/// shape of a key is checked here; netd checks it again before use.
/// The node's volumes as its agent reports them (written only when they
/// changed); a removal asked for is done once the volume is gone.
async fn record_volumes(
    store: &Store,
    node_id: &str,
    mut volumes: Vec<shoal_proto::types::v1::NodeVolume>,
) -> Result<(), Status> {
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    let changed = store.view(|s| {
        s.nodes.get(node_id).is_some_and(|n| {
            n.volumes != volumes
                || n.volume_removals
                    .iter()
                    .any(|r| !volumes.iter().any(|v| &v.name == r))
        })
    });
    if !changed {
        return Ok(());
    }
    store
        .update(|state, tx| {
            let Some(node) = state.nodes.get(node_id) else {
                return Err(StoreError::NotFound(format!("node {node_id} not found")));
            };
            let mut node = node.clone();
            node.volume_removals
                .retain(|r| volumes.iter().any(|v| &v.name == r));
            node.volumes = volumes.clone();
            tx.put(node);
            Ok(())
        })
        .await
        .map_err(Status::from)
}

async fn record_wireguard_key(store: &Store, node_id: &str, key: String) -> Result<(), Status> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .map_err(|_| Status::invalid_argument("wireguard public key: not base64"))?;
    if decoded.len() != 32 {
        return Err(Status::invalid_argument(
            "wireguard public key: not 32 bytes",
        ));
    }
    store
        .update(|state, tx| {
            let Some(node) = state.nodes.get(node_id) else {
                return Err(StoreError::NotFound(format!("node {node_id} not found")));
            };
            if node.wireguard_public_key != key {
                let mut node = node.clone();
                node.wireguard_public_key = key.clone();
                tx.put(node);
            }
            Ok(())
        })
        .await
        .map_err(Status::from)?;
    Ok(())
}

/// The address other nodes reach a node on (its VXLAN and WireGuard
/// endpoint): the one `swarm init|join --data-path-addr` gave it, else the
/// one its agent advertises, else the one its session comes from; but an
/// agent talking to the manager on its own host comes from loopback, and
/// then the manager's advertised address is the node's.
fn data_path_addr(advertised: &str, remote: Option<&str>, node: &Node) -> String {
    if !node.data_path_addr.is_empty() {
        return node.data_path_addr.clone();
    }
    if !advertised.is_empty() {
        return advertised.to_string();
    }
    let loopback = remote
        .and_then(|r| r.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    let manager_host = node
        .manager_status
        .as_ref()
        .and_then(|m| m.addr.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string());
    match (loopback, manager_host) {
        (true, Some(host)) => host,
        _ => remote.unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::ManagerStatus;

    #[test]
    fn a_node_is_reached_at_its_advertised_address_never_at_loopback() {
        let manager = Node {
            manager_status: Some(ManagerStatus {
                addr: "10.201.2.11:4242".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let worker = Node::default();
        assert_eq!(
            data_path_addr("10.9.9.9", Some("10.1.1.1"), &worker),
            "10.9.9.9"
        );
        assert_eq!(data_path_addr("", Some("10.1.1.1"), &worker), "10.1.1.1");
        // `--data-path-addr` wins over everything the session says.
        let pinned = Node {
            data_path_addr: "10.7.7.7".into(),
            ..manager.clone()
        };
        assert_eq!(
            data_path_addr("10.9.9.9", Some("127.0.0.1"), &pinned),
            "10.7.7.7"
        );
        // The manager's own agent talks to it over loopback.
        assert_eq!(
            data_path_addr("", Some("127.0.0.1"), &manager),
            "10.201.2.11"
        );
        assert_eq!(data_path_addr("", Some("10.1.1.1"), &manager), "10.1.1.1");
    }
}
