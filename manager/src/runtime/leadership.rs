//! The leader's component set, run under the supervisor while this manager
//! is the Raft leader and stopped when it loses leadership.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;

use super::Running;
use crate::error::ManagerError;
use crate::leader::{LeaderEnv, Restarts, Spec, Supervisor};
use crate::raft::{self, removal_breaks_quorum, Contacts, NodeId, Raft};
use crate::rolemanager::Membership;

/// Every leader component, in no particular order (they only share the store).
pub fn components() -> Vec<Spec> {
    vec![
        Spec::of::<crate::orchestrator::Orchestrator>(),
        Spec::of::<crate::allocator::Allocator>(),
        Spec::of::<crate::scheduler::Scheduler>(),
        Spec::of::<crate::taskreaper::TaskReaper>(),
        Spec::of::<crate::ca::Finisher>(),
        Spec::of::<crate::rolemanager::RoleManager>(),
        Spec::of::<crate::dispatcher::NodeHealth>(),
    ]
}

/// Runs the leader's components (under their supervisor) while this
/// manager is the Raft leader.
pub(super) async fn lead_while_leader(running: Arc<Running>) {
    let mut metrics = running.raft.metrics();
    let mut supervisor: Option<Supervisor> = None;
    let restarts = Restarts::default();
    loop {
        let leading = metrics.borrow().current_leader == Some(running.raft_id);
        match (leading, supervisor.is_some()) {
            (true, false) => {
                let specs = components();
                let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                tracing::info!("leading: starting {}", names.join(", "));
                let env = LeaderEnv {
                    store: running.store.clone(),
                    heartbeats: running.heartbeats.clone(),
                    membership: Arc::new(RaftMembership {
                        raft: running.raft.clone(),
                        contacts: running.contacts.clone(),
                        identity: running.identity.clone(),
                    }),
                };
                supervisor = Some(Supervisor::start(env, specs, restarts.clone()));
            }
            (false, true) => {
                tracing::info!("no longer leading: stopping leader components");
                supervisor = None;
            }
            _ => {}
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
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
        raft::voters(&self.raft)
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
