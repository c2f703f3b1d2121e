//! Raft's outgoing transport: one cached mTLS channel per peer manager,
//! openraft's messages JSON-encoded inside `RaftMessage`.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;
use shoal_proto::raft::v1::raft_client::RaftClient;
use shoal_proto::raft::v1::RaftMessage;
use tonic::transport::Channel;

use super::{Contacts, NodeId, TypeConfig};

#[derive(Clone)]
pub struct Network {
    identity: Arc<LiveIdentity>,
    contacts: Contacts,
}

impl Network {
    pub fn new(identity: Arc<LiveIdentity>, contacts: Contacts) -> Self {
        Network { identity, contacts }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    /// The channel and the identity it was made with: a renewed identity
    /// (certificate renewal, root CA rotation) makes a new channel.
    channel: Option<(Channel, Arc<NodeIdentity>)>,
    identity: Arc<LiveIdentity>,
    contacts: Contacts,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            channel: None,
            identity: self.identity.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

type RpcErr<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let identity = self.identity.current();
        let channel = match &self.channel {
            Some((c, made_with)) if Arc::ptr_eq(made_with, &identity) => c.clone(),
            _ => {
                let c = shoal_identity::connect_lazy(&self.addr, &identity)
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                self.channel = Some((c.clone(), identity));
                c
            }
        };
        let data =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client =
            RaftClient::new(channel).max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES);
        let message = RaftMessage { data };
        let reply = match method {
            "append" => client.append_entries(message).await,
            "vote" => client.vote(message).await,
            _ => client.install_snapshot(message).await,
        }
        .map_err(|status| {
            if method == "vote" && status.code() == tonic::Code::FailedPrecondition {
                self.contacts.refused_as_non_voter(self.target);
            }
            RPCError::Unreachable(Unreachable::new(&status))
        })?
        .into_inner();
        self.contacts.heard_from(self.target);
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(0, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call("append", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.call("snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call("vote", &rpc).await
    }
}
