//! The leader's component set, run under the supervisor while this manager
//! is the Raft leader and stopped when it loses leadership.

use std::sync::Arc;

use super::Running;
use crate::leader::{LeaderEnv, Restarts, Spec, Supervisor};
use crate::raft::RaftMembership;

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
