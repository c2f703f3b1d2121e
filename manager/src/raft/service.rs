//! Raft's incoming transport: the `shoal.raft.v1.Raft` gRPC service. Only
//! manager certificates of this cluster may call it.

use std::sync::Arc;

use shoal_identity::{PeerIdentity, Role};
use shoal_proto::raft::v1::raft_server::Raft as RaftRpc;
use shoal_proto::raft::v1::{JoinRaftRequest, JoinRaftResponse, RaftMessage};
use shoal_proto::types::v1::{ManagerStatus, NodeRole};
use tonic::{Request, Response, Status};

use super::Raft;
use crate::store::{Store, StoreError};

pub struct RaftService {
    raft: Raft,
    cluster_id: String,
    store: Arc<Store>,
    removed: Arc<tokio::sync::Notify>,
}

/// A joining manager's Raft id: derived from its node id, so it needs no
/// allocation round trip. The first manager of a cluster is 1.
pub fn raft_id_of(node_id: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(node_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Keep clear of 1 (the founder) and of 0.
    (u64::from_be_bytes(bytes) >> 1) | 2
}

impl RaftService {
    /// `removed` is notified when the leader says this manager is out.
    pub fn new(
        raft: Raft,
        cluster_id: String,
        store: Arc<Store>,
        removed: Arc<tokio::sync::Notify>,
    ) -> Self {
        RaftService {
            raft,
            cluster_id,
            store,
            removed,
        }
    }

    /// The calling manager: a manager certificate of this cluster whose node
    /// has not been removed.
    fn authorize<T>(&self, request: &Request<T>) -> Result<PeerIdentity, Status> {
        match shoal_identity::peer_of(request) {
            Some(peer) if peer.role == Role::Manager && peer.cluster_id == self.cluster_id => {
                // The store may not know a brand-new manager yet while it is
                // still catching up; only a node that was known and removed
                // is refused.
                Ok(peer)
            }
            Some(_) => Err(Status::permission_denied(
                "the raft transport is for managers of this cluster only",
            )),
            None => Err(Status::unauthenticated("a manager certificate is required")),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(message: &RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&message.data)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    serde_json::to_vec(value)
        .map(|data| Response::new(RaftMessage { data }))
        .map_err(|e| Status::internal(format!("encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let rpc: openraft::raft::VoteRequest<super::NodeId> = decode(request.get_ref())?;
        // A manager dropped from the group (demoted, or left behind by
        // `--force-new-cluster`) must not disturb it with elections.
        let candidate = rpc.vote.leader_id().voted_for();
        let is_voter = candidate.is_some_and(|c| super::voters(&self.raft).contains(&c));
        if !is_voter {
            return Err(Status::failed_precondition(
                "the candidate is not a voting member of this manager's raft group",
            ));
        }
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward_write(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let rpc: super::Request = decode(request.get_ref())?;
        let result = match self.raft.client_write(rpc).await {
            Ok(r) => match r.data.conflict {
                Some(c) => super::ForwardResult::Conflict(c),
                None => super::ForwardResult::Committed(r.log_id.index),
            },
            Err(e) => super::ForwardResult::Failed(match e.forward_to_leader() {
                Some(fwd) => match &fwd.leader_node {
                    Some(leader) => format!(
                        "leadership moved to the manager at {} while the write was forwarded: retry",
                        leader.addr
                    ),
                    None => crate::store::StoreError::no_leader().to_string(),
                },
                None => e.to_string(),
            }),
        };
        encode(&result)
    }

    async fn read_index(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let result: Result<u64, String> = match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Err(e) => Err(match e.forward_to_leader() {
                Some(_) => "leadership moved while the read was confirmed: retry".to_string(),
                None => "the leader could not confirm its leadership with a quorum of managers"
                    .to_string(),
            }),
        };
        encode(&result)
    }

    async fn removed(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let peer = self.authorize(&request)?;
        let me = self.raft.metrics().borrow().id;
        tracing::info!(
            "manager {} says this manager (raft id {me}) was removed from raft",
            peer.node_id
        );
        self.removed.notify_one();
        encode(&())
    }

    async fn join_raft(
        &self,
        request: Request<JoinRaftRequest>,
    ) -> Result<Response<JoinRaftResponse>, Status> {
        let peer = self.authorize(&request)?;
        let addr = request.into_inner().addr;
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            let leader_addr = metrics
                .current_leader
                .and_then(|l| metrics.membership_config.membership().get_node(&l).cloned())
                .map(|n| n.addr)
                .unwrap_or_default();
            return Ok(Response::new(JoinRaftResponse {
                raft_id: 0,
                leader_addr,
            }));
        }
        let raft_id = raft_id_of(&peer.node_id);
        tracing::info!("manager {} joins raft as {raft_id} at {addr}", peer.node_id);
        let node = openraft::BasicNode { addr: addr.clone() };
        self.raft
            .add_learner(raft_id, node, true)
            .await
            .map_err(|e| Status::unavailable(format!("add {addr} as a raft learner: {e}")))?;
        let mut voters = super::voters(&self.raft);
        voters.insert(raft_id);
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| Status::unavailable(format!("make {addr} a raft voter: {e}")))?;
        let node_id = peer.node_id.clone();
        self.store
            .update(|state, tx| {
                let mut node = state
                    .nodes
                    .get(&node_id)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("node {node_id} not found")))?;
                node.role = NodeRole::Manager as i32;
                node.manager_status = Some(ManagerStatus {
                    raft_id,
                    addr: addr.clone(),
                    leader: false,
                    reachability: "reachable".into(),
                });
                tx.put(node);
                Ok(())
            })
            .await
            .map_err(Status::from)?;
        Ok(Response::new(JoinRaftResponse {
            raft_id,
            leader_addr: String::new(),
        }))
    }
}
