//! Raft's incoming transport: the `shoal.raft.v1.Raft` gRPC service. Only
//! manager certificates of this cluster may call it.

use shoal_identity::Role;
use shoal_proto::raft::v1::raft_server::Raft as RaftRpc;
use shoal_proto::raft::v1::RaftMessage;
use tonic::{Request, Response, Status};

use super::Raft;

pub struct RaftService {
    raft: Raft,
    cluster_id: String,
}

impl RaftService {
    pub fn new(raft: Raft, cluster_id: String) -> Self {
        RaftService { raft, cluster_id }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match shoal_identity::peer_of(request) {
            Some(peer) if peer.role == Role::Manager && peer.cluster_id == self.cluster_id => {
                Ok(())
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
        let rpc = decode(request.get_ref())?;
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
        let result = self.raft.client_write(rpc).await.map(|r| r.log_id.index);
        encode(&result.map_err(|e| e.to_string()))
    }
}
