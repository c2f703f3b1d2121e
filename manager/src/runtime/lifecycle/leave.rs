//! Membership changes of this manager: leaving the Raft group (`swarm
//! leave`, the end of a demotion, a removal noticed after downtime) and
//! rebuilding it alone (`swarm init --force-new-cluster`). Both end with a
//! restart in place (`crate::restart`).

use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use shoal_proto::types::v1::NodeRole;

use crate::error::{Context, ManagerError};
use crate::runtime::{create_private_dir, read_manager_identity, Manager, Running};
use crate::seal::KeyFiles;
use crate::store::StoreError;

impl Manager {
    /// `swarm init --force-new-cluster`: a manager of a cluster that lost
    /// its quorum becomes the only voter of a new Raft group that keeps all
    /// of the cluster's state (as far as this manager has it). The other
    /// managers are dropped from Raft; the leader's role reconciler turns
    /// them into workers. The process restarts in place to run it.
    pub async fn force_new_cluster(self: Arc<Self>) -> Result<(String, String), ManagerError> {
        let _serial = self.init_lock.lock().await;
        let running = self.running()?.clone();
        let me = read_manager_identity(&self.config.state_dir)?;
        running
            .raft
            .shutdown()
            .await
            .map_err(|e| ManagerError::raft("stop raft", e))?;
        let node = BasicNode {
            addr: me.advertise_addr.clone(),
        };
        running
            .log_store
            .force_single_voter(me.raft_id, node)
            .await
            .map_err(|e| ManagerError::raft("rewrite the raft membership", e))?;
        let dek = running.dek.clone();
        // Answer the caller first; the new process image serves the next call.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let e = crate::restart::restart_in_place(Some(&dek));
            tracing::error!("restart the manager: {e}");
            std::process::exit(1);
        });
        Ok((me.cluster_id, me.node_id))
    }

    /// `swarm leave` on this host, and the end of a demotion: this manager
    /// leaves the Raft group (as far as the group lets it, with `force`),
    /// forgets the cluster's state and restarts in place, idle. Without
    /// `force` a Raft member is refused with Swarm's quorum warning.
    pub async fn leave(self: Arc<Self>, force: bool) -> Result<(), ManagerError> {
        let _serial = self.init_lock.lock().await;
        let running = match self.running.get() {
            Some(running) => running.clone(),
            None if KeyFiles::new(&self.config.state_dir).locked() && force => {
                return self.forget_and_restart().await;
            }
            None => {
                return Err(StoreError::NotFound("this node is not a swarm manager".into()).into())
            }
        };
        // A running manager is taken for a member: Raft's view may lag a
        // moment behind a join the others already count.
        let mut voters = crate::raft::voters(&running.raft);
        voters.insert(running.raft_id);
        if !force {
            let mut message = "You are attempting to leave the swarm on a node that is participating as a manager. ".to_string();
            if voters.len() == 1 {
                message += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.";
                return Err(StoreError::InvalidArgument(message).into());
            }
            let breaks_quorum = running
                .store
                .view(|s| running.removal_refusal(s, running.raft_id))
                .is_some();
            if breaks_quorum {
                message += &format!(
                    "Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. ",
                    voters.len() - 1,
                    voters.len()
                );
            }
            message += "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.";
            return Err(StoreError::InvalidArgument(message).into());
        }
        if voters.len() > 1 {
            self.ask_to_leave_raft(&running).await;
        }
        if let Err(e) = running.raft.shutdown().await {
            tracing::warn!("stop raft: {e}");
        }
        self.forget_and_restart().await
    }

    /// Asks the group to take this manager out (the role manager on the
    /// leader does), and waits a little for it; a group without quorum
    /// cannot, and a forced leave goes on without it.
    async fn ask_to_leave_raft(&self, running: &Running) {
        let node_id = running.node_id.clone();
        let asked = running
            .store
            .update(|state, tx| {
                if let Some(node) = state.nodes.get(&node_id) {
                    let mut node = node.clone();
                    node.spec.get_or_insert_with(Default::default).desired_role =
                        NodeRole::Worker as i32;
                    tx.put(node);
                }
                Ok(())
            })
            .await;
        if let Err(e) = asked {
            tracing::warn!("leaving without telling the other managers: {e}");
            return;
        }
        let me = running.raft_id;
        let left = running
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| {
                    !m.membership_config
                        .membership()
                        .voter_ids()
                        .any(|v| v == me)
                },
                "removed from the raft group",
            )
            .await;
        if left.is_err() {
            tracing::warn!("the other managers did not remove this one within 5 s; leaving anyway");
        }
    }

    async fn forget_and_restart(&self) -> Result<(), ManagerError> {
        if let Some(running) = self.running.get() {
            running.keykeeper.abort();
        }
        let dir = &self.config.state_dir;
        // A writer stopped a moment ago may still finish a file: try again.
        let mut attempt = 0;
        while let Err(e) = std::fs::remove_dir_all(dir) {
            attempt += 1;
            if attempt == 20 {
                return Err(e).context(format!("remove {}", dir.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        create_private_dir(dir)?;
        tracing::info!("left the swarm: manager state removed");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let e = crate::restart::restart_in_place(None);
            tracing::error!("restart the manager: {e}");
            std::process::exit(1);
        });
        Ok(())
    }
}

/// A manager that was down while the group removed it hears nothing more
/// from Raft: it campaigns, and the voters refuse it. Once most of them
/// have, it takes itself as removed.
pub(super) async fn notice_removal(running: Arc<Running>, removed: Arc<tokio::sync::Notify>) {
    let mut metrics = running.raft.metrics();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = metrics.borrow_and_update().clone();
        if now.running_state.is_err() {
            return;
        }
        let voters = now.membership_config.membership().voter_ids().collect();
        if now.current_leader.is_none() && running.contacts.removed_by_majority(&voters, now.id) {
            tracing::warn!("the other managers refuse this one as a voter: it was removed");
            removed.notify_one();
            return;
        }
    }
}
