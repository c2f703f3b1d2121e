//! The task reaper: deletes tasks nobody needs any more. A task of a
//! removed service goes once it is down (or was never placed); a slot keeps
//! its last few dead tasks as history for `service ps`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{Task, TaskState};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

/// Dead tasks kept per slot (Swarm's task history retention limit).
pub const HISTORY_PER_SLOT: usize = 5;

pub struct TaskReaper {
    store: Arc<Store>,
}

impl Component for TaskReaper {
    const NAME: &'static str = "task reaper";

    fn build(env: &LeaderEnv) -> Self {
        TaskReaper {
            store: env.store.clone(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        let relevant = |c: &Change| c.kind() == Kind::Task;
        let settle = Duration::from_millis(50);
        watch::run_passes(&self.store, Self::NAME, relevant, settle, || self.pass()).await;
        Ok(())
    }
}

impl TaskReaper {
    pub async fn pass(&self) -> Result<(), StoreError> {
        self.store
            .update(|state, tx| {
                reap(state, tx);
                Ok(())
            })
            .await
    }
}

fn id(task: &Task) -> &str {
    task.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

fn reap(state: &State, tx: &mut Tx) {
    let mut history: HashMap<(String, u64, String), Vec<&Task>> = HashMap::new();
    for task in state.tasks.values() {
        let observed = task.observed_state();
        let down = observed.is_terminal() || observed < TaskState::Assigned;
        if task.desired_state >= TaskState::Remove as i32 && down {
            tx.delete(Kind::Task, id(task));
        } else if observed.is_terminal() && task.desired_state > TaskState::Running as i32 {
            let key = (
                task.service_id.clone(),
                task.slot,
                if task.slot == 0 {
                    task.node_id.clone()
                } else {
                    String::new()
                },
            );
            history.entry(key).or_default().push(task);
        }
    }
    for (_, mut dead) in history {
        if dead.len() <= HISTORY_PER_SLOT {
            continue;
        }
        dead.sort_by_key(|t| t.meta.as_ref().map(|m| m.created_at).unwrap_or(0));
        for task in &dead[..dead.len() - HISTORY_PER_SLOT] {
            tx.delete(Kind::Task, id(task));
        }
    }
}
