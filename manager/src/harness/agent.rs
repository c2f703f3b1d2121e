//! A fake agent: plays one node's side of the dispatcher protocol in
//! memory. It moves the tasks assigned to its node through the observed
//! states its script says (by image), stops tasks told to stop, and
//! reports through the dispatcher's status batcher, as a real agent's
//! reports arrive.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::dispatcher::v1::TaskStatusUpdate;
use shoal_proto::types::v1::{ContainerStatus, Task, TaskState, TaskStatus};

use crate::dispatcher::{needs_agent, StatusBatcher};
use crate::store::{watch, Kind, Store};

/// What the tasks of an image do once assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Start and keep running.
    Run,
    /// Start, then exit at once with this code (0: complete, else failed).
    Exit(i32),
    /// Refused by the node (an image that cannot be pulled).
    Reject,
    /// Stuck starting (a slow pull): never running.
    Hang,
}

pub type Scripts = Arc<Mutex<HashMap<String, Script>>>;

/// Runs until aborted (the harness stops an agent by aborting it).
pub async fn run(store: Arc<Store>, node_id: String, scripts: Scripts, statuses: StatusBatcher) {
    let mut events = store.subscribe();
    // What this agent reported last per task: it never reports a state twice.
    let mut reported: BTreeMap<String, TaskState> = BTreeMap::new();
    loop {
        let tasks: Vec<Task> = store.view(|s| {
            s.tasks
                .values()
                .filter(|t| needs_agent(t, &node_id))
                .map(|t| Task::clone(t))
                .collect()
        });
        let mut updates = Vec::new();
        for task in tasks {
            let id = task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
            let Some(next) = next_status(&task, &scripts, store.clock().now()) else {
                continue;
            };
            if reported.get(&id).is_some_and(|r| *r >= task_state(&next)) {
                continue;
            }
            reported.insert(id.clone(), task_state(&next));
            updates.push(TaskStatusUpdate {
                task_id: id,
                status: Some(next),
            });
        }
        if !updates.is_empty() {
            if let Err(e) = statuses.submit(node_id.clone(), updates).await {
                panic!("fake agent on {node_id}: the dispatcher refused a report: {e}");
            }
        }
        let relevant = |c: &crate::store::Change| c.kind() == Kind::Task;
        if !watch::changed(&mut events, relevant, Duration::from_millis(1)).await {
            return;
        }
    }
}

fn task_state(status: &TaskStatus) -> TaskState {
    shoal_proto::task_state(status.state)
}

/// The status the agent reports next for `task`, if any.
fn next_status(task: &Task, scripts: &Scripts, now: i64) -> Option<TaskStatus> {
    let observed = task.observed_state();
    if observed.is_terminal() {
        return None;
    }
    let status = |state: TaskState, message: &str, err: String, exit_code: i32| TaskStatus {
        state: state as i32,
        timestamp: now,
        message: message.into(),
        err,
        container: Some(ContainerStatus {
            container_id: format!("container-{}", task.meta.as_ref().map_or("", |m| &m.id)),
            pid: 0,
            exit_code,
        }),
        ..TaskStatus::default()
    };
    if task.desired_state > TaskState::Running as i32 {
        return Some(status(TaskState::Shutdown, "shutdown", String::new(), 0));
    }
    let image = task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.image.clone())
        .unwrap_or_default();
    let script = scripts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&image)
        .copied()
        .unwrap_or(Script::Run);
    Some(match script {
        Script::Run => status(TaskState::Running, "started", String::new(), 0),
        Script::Exit(0) => status(TaskState::Complete, "finished", String::new(), 0),
        Script::Exit(code) => status(
            TaskState::Failed,
            "started",
            format!("task: non-zero exit ({code})"),
            code,
        ),
        Script::Reject => status(
            TaskState::Rejected,
            "preparing",
            format!("No such image: {image}"),
            0,
        ),
        Script::Hang => status(TaskState::Starting, "starting", String::new(), 0),
    })
}
