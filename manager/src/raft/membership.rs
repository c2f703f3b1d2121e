//! The Raft group's membership as the leader's role manager needs it, as
//! an interface ([`Membership`]) so the role manager's rules run against a
//! fake group in tests.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;

use super::{removal_breaks_quorum, voters, Contacts, NodeId, Raft};
use crate::error::ManagerError;

/// The Raft group as the role manager needs it: who votes, whether a
/// removal keeps a reachable quorum, and the removal itself
/// ([`RaftMembership`] on a manager, a fake in tests).
#[tonic::async_trait]
pub trait Membership: Send + Sync + 'static {
    /// This manager's Raft id.
    fn me(&self) -> NodeId;
    fn voters(&self) -> BTreeSet<NodeId>;
    /// Why taking `raft_id` out would leave the rest without a quorum
    /// this leader can reach, if it would.
    fn removal_refusal(&self, raft_id: NodeId) -> Option<String>;
    /// Takes `raft_id` out of the voters, and tells it so.
    async fn remove(&self, raft_id: NodeId) -> Result<(), ManagerError>;
    /// Resolves at the next change of membership or leadership.
    fn changed(&self) -> BoxFuture<'static, ()>;
}

/// The Raft group as the role manager sees it: voters, the reachable-quorum
/// check, and the removal of a member, which is also told it was removed.
pub struct RaftMembership {
    pub raft: Raft,
    pub contacts: Contacts,
    /// The node's identity as it is now (renewals, root CA rotation).
    pub identity: Arc<LiveIdentity>,
}

#[tonic::async_trait]
impl Membership for RaftMembership {
    fn me(&self) -> NodeId {
        self.raft.metrics().borrow().id
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        voters(&self.raft)
    }

    fn removal_refusal(&self, raft_id: NodeId) -> Option<String> {
        removal_breaks_quorum(&self.voters(), raft_id, self.me(), &self.contacts)
    }

    async fn remove(&self, raft_id: NodeId) -> Result<(), ManagerError> {
        let remaining: BTreeSet<NodeId> = self
            .voters()
            .into_iter()
            .filter(|v| *v != raft_id)
            .collect();
        let addr = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&raft_id)
            .map(|n| n.addr.clone());
        self.raft
            .change_membership(remaining, false)
            .await
            .map_err(|e| ManagerError::raft(format!("remove raft member {raft_id}"), e))?;
        if let Some(addr) = addr {
            tokio::spawn(tell_removed(addr, (*self.identity.current()).clone()));
        }
        Ok(())
    }

    fn changed(&self) -> BoxFuture<'static, ()> {
        let mut metrics = self.raft.metrics();
        // A receiver cloned from Raft's own has seen nothing: without
        // this, `changed` would resolve at once, every time.
        metrics.borrow_and_update();
        Box::pin(async move {
            if metrics.changed().await.is_err() {
                // Raft is gone: nothing will change any more.
                std::future::pending::<()>().await;
            }
        })
    }
}

/// A removed member hears nothing more from Raft: tell it, so that it
/// forgets the cluster (a member that is down now learns nothing; `swarm
/// leave --force` on it resets it).
async fn tell_removed(addr: String, identity: NodeIdentity) {
    use shoal_proto::raft::v1::{raft_client::RaftClient, RaftMessage};
    let told = async {
        let channel = shoal_identity::connect(&addr, &identity).await?;
        RaftClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
            .removed(RaftMessage { data: Vec::new() })
            .await
            .map_err(|s| anyhow::anyhow!(s.message().to_string()))?;
        anyhow::Ok(())
    };
    if let Err(e) = told.await {
        tracing::warn!("tell the manager at {addr} it was removed from raft: {e}");
    }
}
