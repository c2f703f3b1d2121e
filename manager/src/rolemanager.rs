//! The role manager (leader only): carries out `node promote|demote` and
//! `swarm leave` in Raft. A node whose desired role is worker but is still
//! a Raft voter is removed from the group, unless that would leave the
//! remaining managers without a reachable quorum; a node whose manager
//! status names a Raft member that is gone (removed, or left behind by
//! `--force-new-cluster`) loses that status and wants to be a worker.
//!
//! Certificates follow: the CA issues the role [`issuable_role`] says, the
//! node's agent renews when its certificate's role differs, then starts or
//! stops the manager on its host. Promotion needs nothing here: the promoted
//! node's manager joins Raft itself once it holds a manager certificate.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{Node, NodeRole};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::raft::Membership;
use crate::store::{watch, Change, Kind, Store};

pub struct RoleManager {
    store: Arc<Store>,
    membership: Arc<dyn Membership>,
}

/// The role the CA puts in a node's next certificate: a demoted manager
/// keeps its manager certificate until it is out of the Raft group, so that
/// the group never holds a voter that cannot speak to it.
pub fn issuable_role(node: &Node) -> NodeRole {
    let desired = node
        .spec
        .as_ref()
        .map(|s| s.desired_role)
        .unwrap_or(node.role);
    if desired == NodeRole::Manager as i32 || node.manager_status.is_some() {
        NodeRole::Manager
    } else {
        NodeRole::Worker
    }
}

fn wants_worker(node: &Node) -> bool {
    node.spec
        .as_ref()
        .is_some_and(|s| s.desired_role == NodeRole::Worker as i32)
}

impl Component for RoleManager {
    const NAME: &'static str = "role manager";

    fn build(env: &LeaderEnv) -> Self {
        RoleManager {
            store: env.store.clone(),
            membership: env.membership.clone(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        let relevant = |c: &Change| c.kind() == Kind::Node;
        let settle = Duration::from_millis(50);
        let clock = self.store.clock().clone();
        let mut events = self.store.subscribe();
        loop {
            let membership = self.membership.changed();
            if let Err(e) = self.pass().await {
                tracing::warn!("role manager pass failed: {}", e.chain());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // A quorum that was unreachable may come back: look again now
            // and then, as well as at every node change.
            tokio::select! {
                alive = watch::changed(&mut events, relevant, settle) => if !alive { return Ok(()) },
                _ = membership => {}
                _ = clock.sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

impl RoleManager {
    pub async fn pass(&self) -> Result<(), ManagerError> {
        let leaving: Vec<(String, u64)> = self.store.view(|s| {
            s.nodes
                .values()
                .filter(|n| wants_worker(n))
                .filter_map(|n| {
                    let ms = n.manager_status.as_ref()?;
                    Some((n.meta.as_ref()?.id.clone(), ms.raft_id))
                })
                .collect()
        });
        for (node_id, raft_id) in leaving {
            if !self.membership.voters().contains(&raft_id) {
                continue;
            }
            if let Some(why) = self.membership.removal_refusal(raft_id) {
                tracing::warn!("not removing manager {node_id} from raft yet: {why}");
                continue;
            }
            tracing::info!("removing manager {node_id} (raft id {raft_id}) from raft");
            self.membership.remove(raft_id).await?;
        }
        let voters = self.membership.voters();
        self.store
            .update(|state, tx| {
                for node in state.nodes.values() {
                    let gone = node
                        .manager_status
                        .as_ref()
                        .is_some_and(|ms| !voters.contains(&ms.raft_id));
                    if gone {
                        let mut node = node.clone();
                        node.manager_status = None;
                        node.spec.get_or_insert_with(Default::default).desired_role =
                            NodeRole::Worker as i32;
                        tx.put(node);
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use shoal_proto::types::v1::NodeRole;

    use super::*;
    use crate::harness::Harness;

    fn demote(node: &mut Node) {
        node.spec.get_or_insert_with(Default::default).desired_role = NodeRole::Worker as i32;
    }

    #[tokio::test]
    async fn a_demoted_manager_leaves_raft_and_loses_its_manager_status() {
        let harness = Harness::start().await;
        let _leader = harness.add_manager("m1", 1).await;
        let m2 = harness.add_manager("m2", 2).await;
        let _m3 = harness.add_manager("m3", 3).await;
        assert_eq!(issuable_role(&harness.node(&m2)), NodeRole::Manager);
        harness.update_node(&m2, demote).await;
        harness
            .until("m2 out of raft and a worker", |s| {
                s.nodes[&m2].manager_status.is_none().then_some(())
            })
            .await;
        assert_eq!(harness.membership.voters(), BTreeSet::from([1, 3]));
        assert_eq!(issuable_role(&harness.node(&m2)), NodeRole::Worker);
    }

    #[tokio::test]
    async fn a_demotion_that_would_lose_the_quorum_waits_until_it_would_not() {
        let harness = Harness::start().await;
        harness.add_manager("m1", 1).await;
        let m2 = harness.add_manager("m2", 2).await;
        harness.add_manager("m3", 3).await;
        // Without m2, {m1, m3} needs both: m3 does not answer.
        harness.membership.set_unreachable(3, true);
        harness.update_node(&m2, demote).await;
        harness.advance(Duration::from_secs(10)).await;
        assert_eq!(harness.membership.voters(), BTreeSet::from([1, 2, 3]));
        assert!(harness.node(&m2).manager_status.is_some());
        // The demoted manager keeps its manager certificate meanwhile.
        assert_eq!(issuable_role(&harness.node(&m2)), NodeRole::Manager);

        harness.membership.set_unreachable(3, false);
        harness.advance(Duration::from_secs(2)).await;
        harness
            .until("m2 removed once m3 answers", |s| {
                s.nodes[&m2].manager_status.is_none().then_some(())
            })
            .await;
        assert_eq!(harness.membership.voters(), BTreeSet::from([1, 3]));
    }

    #[tokio::test]
    async fn a_manager_raft_no_longer_has_becomes_a_worker() {
        let harness = Harness::start().await;
        harness.add_manager("m1", 1).await;
        // Left behind by `--force-new-cluster`: in the store, not in Raft.
        let stale = harness.add_node("stale").await;
        harness
            .update_node(&stale, |n| {
                n.manager_status = Some(shoal_proto::types::v1::ManagerStatus {
                    raft_id: 7,
                    ..Default::default()
                });
                n.spec.get_or_insert_with(Default::default).desired_role = NodeRole::Manager as i32;
            })
            .await;
        harness
            .until("the stale manager status cleared", |s| {
                let node = &s.nodes[&stale];
                let worker = node.spec.as_ref()?.desired_role == NodeRole::Worker as i32;
                (node.manager_status.is_none() && worker).then_some(())
            })
            .await;
    }
}
