//! Raft (openraft) for the manager's store: the type configuration, the
//! sled-backed log store and state machine (every value sealed), the gRPC
//! transport between managers, and the [`RaftProposer`] through which the
//! store commits writes.

// openraft's storage and RPC error types are large by design; boxing them
// would only fight its trait signatures.
#![allow(clippy::result_large_err)]

mod contacts;
mod log_store;
mod membership;
mod network;
mod proposed;
mod service;
pub mod snapshot_policy;
mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::store::{encode_batch, Proposer, StoreError, Write};

pub use contacts::{removal_breaks_quorum, Contacts};
pub use log_store::LogStore;
pub use membership::{Membership, RaftMembership};
pub use network::Network;
pub use proposed::Proposed;
pub use service::{raft_id_of, RaftService};
pub use state_machine::StateMachine;

/// A log entry's application payload: a prost-encoded
/// [`WriteBatch`](shoal_proto::raft::v1::WriteBatch).
/// Entries are JSON on disk and between managers; the batch goes in them
/// as base64, not as JSON's array of numbers (3.6 bytes per byte, and
/// slow to parse), and an array written by an older build still reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    #[serde(with = "batch_bytes")]
    pub batch: Vec<u8>,
    /// The id under which the proposing manager keeps the batch's writes
    /// (see [`Proposed`]); 0: none.
    #[serde(default, skip_serializing_if = "is_no_proposal")]
    pub proposal: u64,
}

fn is_no_proposal(id: &u64) -> bool {
    *id == 0
}

mod batch_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Base64(String),
        Numbers(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Stored::deserialize(d)? {
            Stored::Base64(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(serde::de::Error::custom),
            Stored::Numbers(bytes) => Ok(bytes),
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write batch of {} bytes", self.batch.len())
    }
}

/// The outcome of applying one entry: a batch refused at apply time (it
/// was written against versions a concurrent write replaced) says why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub conflict: Option<String>,
}

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

/// Commits the store's write batches through Raft. On a follower the batch
/// is forwarded to the leader, and the call returns once this manager has
/// applied it too (a read after a write sees the write).
pub struct RaftProposer {
    pub raft: Raft,
    pub identity: std::sync::Arc<shoal_identity::live::LiveIdentity>,
    /// Shared with this manager's state machine.
    pub proposed: Arc<Proposed>,
}

/// A write must commit within this or fail: a manager without quorum
/// answers with a clear error instead of hanging.
const COMMIT_TIMEOUT: std::time::Duration = crate::store::WRITE_DEADLINE;

impl RaftProposer {
    async fn forward(&self, leader_addr: &str, request: &Request) -> Result<u64, StoreError> {
        use shoal_proto::raft::v1::{raft_client::RaftClient, RaftMessage};
        let unavailable = |e: String| {
            StoreError::Unavailable(format!("forward to the leader at {leader_addr}: {e}"))
        };
        let channel = shoal_identity::connect(leader_addr, &self.identity.current())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let data = serde_json::to_vec(request).map_err(|e| StoreError::Internal(e.to_string()))?;
        let reply = RaftClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
            .forward_write(RaftMessage { data })
            .await
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        let result: ForwardResult =
            serde_json::from_slice(&reply.data).map_err(|e| StoreError::Internal(e.to_string()))?;
        let index = match result {
            ForwardResult::Committed(index) => index,
            ForwardResult::Conflict(c) => return Err(StoreError::Conflict(c)),
            ForwardResult::Failed(e) => return Err(StoreError::Unavailable(e)),
        };
        self.raft
            .wait(Some(COMMIT_TIMEOUT))
            .applied_index_at_least(Some(index), "forwarded write applied here")
            .await
            .map_err(|_| StoreError::no_quorum())?;
        Ok(index)
    }
}

/// What the leader answers a forwarded write.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardResult {
    Committed(u64),
    Conflict(String),
    Failed(String),
}

/// How recently a leader's quorum must have acknowledged it for a slow
/// write to count as busy rather than cut off.
const QUORUM_ACK_FRESH_MS: u64 = 1_000;

#[tonic::async_trait]
impl Proposer for RaftProposer {
    fn leads_with_quorum(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            return false;
        }
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        // A lone voter is its own quorum.
        voters == [metrics.id]
            || metrics
                .millis_since_quorum_ack
                .is_some_and(|ms| ms < QUORUM_ACK_FRESH_MS)
    }

    async fn propose(&self, writes: Vec<Write>) -> Result<u64, StoreError> {
        let request = Request {
            batch: encode_batch(&writes),
            proposal: self.proposed.keep(writes),
        };
        let proposal = request.proposal;
        let result = self.commit(request).await;
        self.proposed.forget(proposal);
        result
    }
}

impl RaftProposer {
    async fn commit(&self, request: Request) -> Result<u64, StoreError> {
        let proposal = request.proposal;
        // The store's deadline bounds the wait (shorter without quorum).
        let write = self.raft.client_write(request);
        let result = tokio::time::timeout(crate::store::BUSY_DEADLINE, write)
            .await
            .map_err(|_| StoreError::overloaded())?;
        match result {
            Ok(response) => match response.data.conflict {
                Some(conflict) => Err(StoreError::Conflict(conflict)),
                None => Ok(response.log_id.index),
            },
            Err(e) => match e.forward_to_leader() {
                Some(fwd) => match &fwd.leader_node {
                    Some(leader) => {
                        // Encoded again rather than copied for every write
                        // in case it is forwarded: only a follower's are.
                        let request = Request {
                            batch: self.proposed.encoded(proposal).ok_or_else(|| {
                                StoreError::Internal("a proposed batch went missing".into())
                            })?,
                            proposal,
                        };
                        self.forward(&leader.addr, &request).await
                    }
                    None => Err(StoreError::no_leader()),
                },
                None => Err(StoreError::Unavailable(format!("raft: {e}"))),
            },
        }
    }
}

/// The voters of the membership this manager knows (joint configurations
/// included).
pub fn voters(raft: &Raft) -> std::collections::BTreeSet<NodeId> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// Raft timing for a manager (`snapshot_policy`'s constants). Snapshots
/// are asked for by [`snapshot_policy::run`], which follows the cluster's
/// setting; `snapshot_every` (the manager's default interval) sizes the log
/// kept behind a snapshot.
pub fn config(cluster_name: &str, snapshot_every: u64) -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: snapshot_policy::HEARTBEAT_INTERVAL_MS,
        election_timeout_min: snapshot_policy::ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: snapshot_policy::ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        // Entries kept behind a snapshot for followers that lag a little;
        // one further behind gets the snapshot.
        max_in_snapshot_log_to_keep: snapshot_policy::log_for_slow_followers(snapshot_every),
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

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_batch_travels_as_base64_and_an_older_array_still_reads() {
        let request = Request {
            batch: vec![0, 1, 254, 255],
            proposal: 0,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"batch":"AAH+/w=="}"#);
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        let older: Request = serde_json::from_str(r#"{"batch":[0,1,254,255]}"#).unwrap();
        assert_eq!(older, request);
        let proposed = Request {
            proposal: 7,
            ..request
        };
        let json = serde_json::to_string(&proposed).unwrap();
        assert_eq!(json, r#"{"batch":"AAH+/w==","proposal":7}"#);
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), proposed);
    }
}
