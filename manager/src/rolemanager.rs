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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;
use shoal_proto::types::v1::{Node, NodeRole};

use crate::raft::{removal_breaks_quorum, Contacts, NodeId, Raft};
use crate::store::{watch, Change, Kind, Store, StoreError};

pub struct RoleManager {
    store: Arc<Store>,
    raft: Raft,
    contacts: Contacts,
    /// The node's identity as it is now (renewals, root CA rotation).
    identity: Arc<LiveIdentity>,
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

impl RoleManager {
    pub fn new(
        store: Arc<Store>,
        raft: Raft,
        contacts: Contacts,
        identity: Arc<LiveIdentity>,
    ) -> Self {
        RoleManager {
            store,
            raft,
            contacts,
            identity,
        }
    }

    pub async fn run(self) {
        let relevant = |c: &Change| c.kind() == Kind::Node;
        let settle = Duration::from_millis(50);
        let mut membership = self.raft.metrics();
        let mut events = self.store.subscribe();
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!("role manager pass failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // A quorum that was unreachable may come back: look again now
            // and then, as well as at every node change.
            tokio::select! {
                alive = watch::changed(&mut events, relevant, settle) => if !alive { return },
                changed = membership.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    fn voters(&self) -> (NodeId, BTreeSet<NodeId>) {
        let me = self.raft.metrics().borrow().id;
        (me, crate::raft::voters(&self.raft))
    }

    pub async fn pass(&self) -> Result<(), StoreError> {
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
            let (me, voters) = self.voters();
            if !voters.contains(&raft_id) {
                continue;
            }
            if let Some(why) = removal_breaks_quorum(&voters, raft_id, me, &self.contacts) {
                tracing::warn!("not removing manager {node_id} from raft yet: {why}");
                continue;
            }
            let remaining: BTreeSet<NodeId> =
                voters.iter().copied().filter(|v| *v != raft_id).collect();
            tracing::info!("removing manager {node_id} (raft id {raft_id}) from raft");
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
                .map_err(|e| {
                    StoreError::Unavailable(format!("remove manager {node_id} from raft: {e}"))
                })?;
            if let Some(addr) = addr {
                tokio::spawn(tell_removed(addr, (*self.identity.current()).clone()));
            }
        }
        let (_, voters) = self.voters();
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
            .await
    }
}
