//! What the control API needs of the manager it runs in, as narrow
//! interfaces: the runtime implements them, tests may fake them. The
//! control API knows nothing else of the process.

use std::sync::Arc;

use shoal_proto::control::v1::{
    InitClusterRequest, InitClusterResponse, JoinClusterRequest, RaftStatus,
};

use crate::error::ManagerError;
use crate::store::{State, Store, StoreError};

/// This manager as a member of its cluster.
#[tonic::async_trait]
pub trait Member: Send + Sync + 'static {
    fn store(&self) -> &Arc<Store>;
    fn cluster_id(&self) -> &str;
    /// This manager's node id.
    fn node_id(&self) -> &str;
    /// How this manager runs Raft and where its log and snapshot stand.
    fn raft_status(&self) -> RaftStatus;
    /// Waits until this manager has applied every write acknowledged
    /// before the call (a linearizable read follows).
    async fn linearize(&self) -> Result<(), StoreError>;
    /// Why taking Raft member `raft_id` out would leave the others without
    /// a reachable quorum, if it would.
    fn removal_refusal(&self, state: &State, raft_id: u64) -> Option<String>;
    /// Where the logs of a node's tasks are read (`service logs`).
    fn node_logs(&self) -> Arc<dyn crate::logbroker::NodeLogSource>;
}

/// The manager process: its membership, if it has one, where the leader
/// is, and the node lifecycle the local socket drives.
#[tonic::async_trait]
pub trait ManagerNode: Send + Sync + 'static {
    /// This manager's membership, or why it has none (not initialised,
    /// locked).
    fn member(&self) -> Result<Arc<dyn Member>, StoreError>;
    /// host:port this manager advertises to nodes.
    fn advertise_addr(&self) -> Option<String>;
    fn leader_addr(&self) -> Option<String>;
    fn leader_node_id(&self) -> Option<String>;

    async fn init(&self, request: InitClusterRequest) -> Result<InitClusterResponse, ManagerError>;
    /// Joins the managers of `request.remote_addr`; returns this node's id.
    async fn join(&self, request: JoinClusterRequest) -> Result<String, ManagerError>;
    async fn unlock(&self, key: &str) -> Result<(), ManagerError>;
    async fn leave(&self, force: bool) -> Result<(), ManagerError>;
    /// Returns (cluster id, node id).
    async fn force_new_cluster(&self) -> Result<(String, String), ManagerError>;
}
