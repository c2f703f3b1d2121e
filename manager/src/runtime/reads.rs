//! Linearizable reads: a read on any manager sees every write acknowledged
//! before it (Raft read index; a follower asks the leader for it).

use std::time::Duration;

use shoal_proto::types::v1::NodeState;

use super::Running;
use crate::raft;
use crate::store::StoreError;

impl Running {
    /// Waits until this manager has applied everything committed before the
    /// call (Raft read index): a read after this sees every acknowledged write.
    pub async fn linearize(&self) -> Result<(), StoreError> {
        // A leader may miss a quorum of heartbeat answers for a moment (a
        // busy host, an election under way): retry until the deadline, and
        // report only what the last attempt said.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut last = StoreError::Unavailable(
            "no quorum: the managers could not confirm the leader within 2 s".into(),
        );
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.linearize_once()).await;
            match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => return Err(last),
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn linearize_once(&self) -> Result<(), StoreError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader() {
                Some(fwd) => match &fwd.leader_node {
                    Some(leader) => self.read_index_from(&leader.addr).await,
                    None => Err(StoreError::no_leader()),
                },
                None => Err(StoreError::Unavailable(
                    "this manager could not confirm with a quorum of managers that it still leads: the managers have no quorum".into(),
                )),
            },
        }
    }

    /// Why taking Raft member `raft_id` out of the group would leave the
    /// others without a reachable quorum, if it would. The leader knows who
    /// answers its heartbeats; a follower goes by which managers are Ready.
    pub fn removal_refusal(&self, state: &crate::store::State, raft_id: u64) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters = raft::voters(&self.raft);
        if !voters.contains(&raft_id) {
            return None;
        }
        let contacts = if metrics.current_leader == Some(metrics.id) {
            self.contacts.clone()
        } else {
            let ready = raft::Contacts::default();
            for node in state.nodes.values() {
                let up = node
                    .status
                    .as_ref()
                    .is_some_and(|s| s.state == NodeState::Ready as i32);
                if let (true, Some(ms)) = (up, &node.manager_status) {
                    ready.heard_from(ms.raft_id);
                }
            }
            ready
        };
        raft::removal_breaks_quorum(&voters, raft_id, metrics.id, &contacts)
    }

    /// A follower's read index: asked of the leader, then waited for here.
    async fn read_index_from(&self, leader_addr: &str) -> Result<(), StoreError> {
        use shoal_proto::raft::v1::{raft_client::RaftClient, RaftMessage};
        let unavailable = |e: String| {
            StoreError::Unavailable(format!("read index from the leader at {leader_addr}: {e}"))
        };
        let channel = shoal_identity::connect(leader_addr, &self.identity.current())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let reply = RaftClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
            .read_index(RaftMessage { data: Vec::new() })
            .await
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        let index: Result<u64, String> =
            serde_json::from_slice(&reply.data).map_err(|e| unavailable(e.to_string()))?;
        let index = index.map_err(unavailable)?;
        self.raft
            .wait(Some(Duration::from_secs(2)))
            .applied_index_at_least(Some(index), "read index applied")
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(())
    }
}
