//! Raft (openraft) for the manager's store: the type configuration, the
//! sled-backed log store and state machine (every value sealed), the gRPC
//! transport between managers, and the [`RaftProposer`] through which the
//! store commits writes.

// openraft's storage and RPC error types are large by design; boxing them
// would only fight its trait signatures.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod service;
mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

use openraft::BasicNode;
use prost::Message;
use serde::{Deserialize, Serialize};
use shoal_proto::raft::v1::WriteBatch;

use crate::store::{Proposer, StoreError};

pub use log_store::LogStore;
pub use network::Network;
pub use service::RaftService;
pub use state_machine::StateMachine;

/// A log entry's application payload: a prost-encoded [`WriteBatch`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub batch: Vec<u8>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write batch of {} bytes", self.batch.len())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;

/// Commits the store's write batches through Raft. Only the leader commits;
/// elsewhere the write fails with the leader's address (forwarding to the
/// leader comes with multi-manager clusters).
pub struct RaftProposer {
    pub raft: Raft,
}

#[tonic::async_trait]
impl Proposer for RaftProposer {
    async fn propose(&self, batch: WriteBatch) -> Result<u64, StoreError> {
        let request = Request {
            batch: batch.encode_to_vec(),
        };
        let write = self.raft.client_write(request);
        // A write that cannot commit (no quorum) must fail fast, not hang.
        let response = tokio::time::timeout(std::time::Duration::from_secs(5), write)
            .await
            .map_err(|_| {
                StoreError::Unavailable(
                    "the write was not committed within 5 s: the managers have no quorum".into(),
                )
            })?
            .map_err(|e| match e.forward_to_leader() {
                Some(fwd) => StoreError::Unavailable(format!(
                    "this manager is not the leader{}",
                    fwd.leader_node
                        .as_ref()
                        .map(|n| format!(" (leader: {})", n.addr))
                        .unwrap_or_default()
                )),
                None => StoreError::Unavailable(format!("raft: {e}")),
            })?;
        Ok(response.log_id.index)
    }
}

/// Raft timing for a manager. Elections within about a second of a leader's
/// loss; heartbeats well inside that.
pub fn config(cluster_name: &str, snapshot_every: u64) -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 500,
        ..Default::default()
    };
    // The values above are constants that validate; fall back to defaults
    // rather than fail if a future openraft tightens validation.
    Arc::new(config.validate().unwrap_or_default())
}

/// Turns any displayable error into openraft's `AnyError` for storage errors.
fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
