//! The Raft group as the leader's role manager sees it
//! ([`crate::rolemanager::Membership`]): voters, the reachable-quorum check
//! and the removal of a member, which is also told it was removed.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;

use super::{removal_breaks_quorum, Contacts, NodeId, Raft};
use crate::error::ManagerError;

pub struct Group {
    pub raft: Raft,
    pub contacts: Contacts,
    /// The node's identity as it is now (renewals, root CA rotation).
    pub identity: Arc<LiveIdentity>,
}

#[tonic::async_trait]
impl crate::rolemanager::Membership for Group {
    fn me(&self) -> NodeId {
        self.raft.metrics().borrow().id
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        super::voters(&self.raft)
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
            .removed(RaftMessage { data: Vec::new() })
            .await
            .map_err(|s| anyhow::anyhow!(s.message().to_string()))?;
        anyhow::Ok(())
    };
    if let Err(e) = told.await {
        tracing::warn!("tell the manager at {addr} it was removed from raft: {e}");
    }
}
