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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{RestartPolicy, TaskState};

    use super::HISTORY_PER_SLOT;
    use crate::harness::{running, service, tasks_of, Harness, Script};

    #[tokio::test]
    async fn a_slot_keeps_its_last_dead_tasks_as_history() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("crash", Script::Exit(2));
        let mut spec = service("crash", "crash", 1);
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            delay_ms: Some(1_000),
            ..Default::default()
        });
        let crash = harness.create_service(spec).await;
        for _ in 0..10 {
            harness.advance(Duration::from_secs(1)).await;
        }
        assert!(harness.created(&crash) >= 10);
        let tasks = harness.tasks(&crash);
        let history: Vec<_> = tasks
            .iter()
            .filter(|t| t.desired_state == TaskState::Shutdown as i32)
            .collect();
        assert_eq!(history.len(), HISTORY_PER_SLOT, "{tasks:?}");
        // The newest are kept: they are the ones `service ps` shows.
        let newest_created = |t: &shoal_proto::types::v1::Task| t.meta.clone().unwrap().created_at;
        let oldest_kept = history.iter().map(|t| newest_created(t)).min().unwrap();
        assert!(
            oldest_kept >= harness.clock.now() - 7_000,
            "old history kept"
        );
        assert_eq!(
            tasks.len(),
            HISTORY_PER_SLOT + 1,
            "and the slot's current task"
        );
    }

    #[tokio::test]
    async fn the_tasks_of_a_removed_service_go_once_they_are_down() {
        let harness = Harness::start().await;
        let node = harness.add_node("n1").await;
        let web = harness.create_service(service("web", "web", 3)).await;
        harness
            .until("3 running", |s| (running(s, &web).len() == 3).then_some(()))
            .await;
        // The node's agent is gone: its tasks cannot be confirmed down.
        harness.stop_agent(&node);
        harness.remove_service(&web).await;
        harness.settle().await;
        assert_eq!(harness.tasks(&web).len(), 3, "deleted while they may run");
        assert!(harness
            .tasks(&web)
            .iter()
            .all(|t| t.desired_state == TaskState::Remove as i32));
        harness.start_agent(&node);
        harness
            .until("every task of the removed service deleted", |s| {
                tasks_of(s, &web).is_empty().then_some(())
            })
            .await;
    }
}
