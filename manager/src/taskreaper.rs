//! The task reaper: deletes tasks nobody needs any more. A task of a
//! removed service goes once it is down (or was never placed); a slot keeps
//! its last few tasks as history for `service ps`: the cluster's task
//! history limit (`swarm update --task-history-limit`, Swarm's 5 when
//! unset) counts every task of the slot, the live one included, and a
//! negative limit keeps them all (swarmkit's rule). A job's completed
//! tasks of its current iteration are its result: kept until a new
//! iteration, whatever the limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{service_spec::Mode, Task, TaskState};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::store::watch::{self, Scope};
use crate::store::{Change, Kind, Object, State, Store, StoreError, Tx};

/// Tasks kept per slot when the cluster sets no limit (Swarm's task
/// history retention limit).
pub const DEFAULT_HISTORY_LIMIT: i64 = 5;

/// The cluster's limit: `None` keeps every task.
fn history_limit(state: &State) -> Option<usize> {
    let limit = state
        .cluster()
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.task_history_limit)
        .unwrap_or(DEFAULT_HISTORY_LIMIT);
    usize::try_from(limit).ok()
}

/// A job's completed task of the iteration it runs now.
fn job_result(state: &State, task: &Task) -> bool {
    task.observed_state() == TaskState::Complete
        && state.services.get(&task.service_id).is_some_and(|s| {
            let job = matches!(
                s.spec.as_ref().and_then(|s| s.mode.as_ref()),
                Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_))
            );
            let iteration = s.job_status.as_ref().map_or(0, |j| j.job_iteration);
            job && task.job_iteration == iteration
        })
}

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
        let settle = Duration::from_millis(50);
        watch::run_scoped_passes(&self.store, Self::NAME, may_reap, settle, |scope| {
            self.pass(scope)
        })
        .await;
        Ok(())
    }
}

/// Whether a change may let a task go: a task created (its slot's history
/// grows), told to stop or ended; the history limit (cluster); a job's new
/// iteration (service). Not a report of a task starting or running, the
/// most common change of all: reaping a 1,000-task service at each of its
/// reports was most of this component's cost.
fn may_reap(change: &Change) -> bool {
    match change {
        Change::Put {
            old,
            new: Object::Task(task),
        } => {
            old.is_none()
                || task.desired_state > TaskState::Running as i32
                || task.observed_state().is_terminal()
        }
        // Fewer tasks: none more to reap.
        Change::Delete(Object::Task(_)) => false,
        c => matches!(c.kind(), Kind::Cluster | Kind::Service),
    }
}

impl TaskReaper {
    /// Reaps the tasks of the services in `scope`.
    pub async fn pass(&self, scope: Scope) -> Result<(), StoreError> {
        self.store
            .update(|state, tx| {
                match &scope {
                    Scope::All => reap(state, state.tasks.values().map(|t| &**t), tx),
                    Scope::Services(ids) => reap(
                        state,
                        ids.iter().flat_map(|id| state.tasks_of_service(id)),
                        tx,
                    ),
                }
                Ok(())
            })
            .await
    }
}

fn id(task: &Task) -> &str {
    task.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

/// Reaps among `tasks`, which hold every task of the services they are of.
fn reap<'a>(state: &State, tasks: impl Iterator<Item = &'a Task>, tx: &mut Tx) {
    let limit = history_limit(state);
    // Every task of each slot (service, number, node of a global one),
    // and whether it may go.
    type SlotKey<'t> = (&'t str, u64, &'t str);
    let mut slots: HashMap<SlotKey, Vec<(&Task, bool)>> = HashMap::new();
    for task in tasks {
        let observed = task.observed_state();
        let down = observed.is_terminal() || observed < TaskState::Assigned;
        if task.desired_state >= TaskState::Remove as i32 && down {
            tx.delete(Kind::Task, id(task));
            continue;
        }
        let key = (
            task.service_id.as_str(),
            task.slot,
            if task.slot == 0 {
                task.node_id.as_str()
            } else {
                ""
            },
        );
        let reapable = observed.is_terminal()
            && task.desired_state > TaskState::Running as i32
            && !job_result(state, task);
        slots.entry(key).or_default().push((task, reapable));
    }
    let Some(limit) = limit else { return };
    for (_, mut tasks) in slots {
        if tasks.len() <= limit {
            continue;
        }
        tasks.sort_by_key(|(t, _)| t.meta.as_ref().map(|m| m.created_at).unwrap_or(0));
        // The oldest that may go, until the slot is within the limit.
        let excess = tasks.len() - limit;
        for (task, _) in tasks.iter().filter(|(_, r)| *r).take(excess) {
            tx.delete(Kind::Task, id(task));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{RestartPolicy, TaskState};

    use super::DEFAULT_HISTORY_LIMIT;
    use crate::harness::{running, service, task_in_state, tasks_of, Harness, Script};
    use crate::store::{Change, Object};

    #[test]
    fn reports_of_tasks_starting_or_running_wake_no_reaping() {
        let put = |old: Option<TaskState>, new: TaskState, desired: TaskState| {
            let task = |state| {
                let mut task = task_in_state("t", state);
                task.desired_state = desired as i32;
                Object::from(task)
            };
            super::may_reap(&Change::Put {
                old: old.map(task),
                new: task(new),
            })
        };
        use TaskState::*;
        assert!(!put(Some(Assigned), Running, Running), "a running report");
        assert!(!put(Some(Assigned), Starting, Running), "a starting report");
        assert!(put(None, Pending, Running), "a new task joins its slot");
        assert!(put(Some(Running), Failed, Running), "a task ended");
        assert!(put(Some(Running), Running, Shutdown), "a task told to stop");
    }

    #[tokio::test]
    async fn a_slot_keeps_its_last_tasks_as_history() {
        let (harness, crash) = crashed_ten_times(None).await;
        let tasks = harness.tasks(&crash);
        let history: Vec<_> = tasks
            .iter()
            .filter(|t| t.desired_state == TaskState::Shutdown as i32)
            .collect();
        let limit = DEFAULT_HISTORY_LIMIT as usize;
        assert_eq!(history.len(), limit - 1, "{tasks:?}");
        // The newest are kept: they are the ones `service ps` shows.
        let newest_created = |t: &shoal_proto::types::v1::Task| t.meta.clone().unwrap().created_at;
        let oldest_kept = history.iter().map(|t| newest_created(t)).min().unwrap();
        assert!(
            oldest_kept >= harness.clock.now() - 7_000,
            "old history kept"
        );
        assert_eq!(tasks.len(), limit, "the slot's current task counts");
    }

    /// A crashing one-replica service restarted every second, 10 times,
    /// under the task history limit `limit` (unset: the default).
    async fn crashed_ten_times(limit: Option<i64>) -> (Harness, String) {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        if let Some(limit) = limit {
            harness
                .store
                .update(|s, tx| crate::controlapi::settings::set_task_history_limit(s, tx, limit))
                .await
                .unwrap();
        }
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
        (harness, crash)
    }

    /// The tasks a slot keeps under the task history limit `limit`.
    async fn kept_under(limit: Option<i64>) -> usize {
        let (harness, crash) = crashed_ten_times(limit).await;
        harness.tasks(&crash).len()
    }

    #[tokio::test]
    async fn the_clusters_task_history_limit_decides_what_a_slot_keeps() {
        assert_eq!(kept_under(None).await, 5, "Swarm's default");
        assert_eq!(kept_under(Some(2)).await, 2);
        // The current task is never reaped, even under 0.
        assert_eq!(kept_under(Some(0)).await, 1);
        // Negative: nothing is reaped.
        assert!(kept_under(Some(-1)).await >= 10);
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
