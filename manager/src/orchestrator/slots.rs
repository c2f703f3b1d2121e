//! A service's tasks grouped by slot (replicated) or node (global).

use std::collections::BTreeMap;

use shoal_proto::types::v1::{Service, Task, TaskState};

use crate::store::{State, Tx};

pub struct Slot<'a> {
    pub number: u64,
    pub node_id: String,
    /// Oldest first.
    pub tasks: Vec<&'a Task>,
}

pub fn group<'a>(state: &'a State, service: &'a Service) -> Vec<Slot<'a>> {
    let id = service.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("");
    let global = matches!(
        service.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(shoal_proto::types::v1::service_spec::Mode::Global(_))
    );
    let mut slots: BTreeMap<(u64, String), Vec<&Task>> = BTreeMap::new();
    for task in state.tasks_of_service(id) {
        let key = if global {
            (0, task.node_id.clone())
        } else {
            (task.slot, String::new())
        };
        slots.entry(key).or_default().push(task);
    }
    slots
        .into_iter()
        .map(|((number, node_id), mut tasks)| {
            tasks.sort_by_key(|t| t.meta.as_ref().map(|m| (m.created_at, m.version)));
            Slot {
                number,
                node_id,
                tasks,
            }
        })
        .collect()
}

impl<'a> Slot<'a> {
    /// Tasks that are meant to run.
    pub fn active(&self) -> impl Iterator<Item = &'a Task> + '_ {
        self.tasks
            .iter()
            .copied()
            .filter(|t| t.desired_state <= TaskState::Running as i32)
    }

    pub fn newest_active(&self) -> Option<&'a Task> {
        self.active().last()
    }

    /// A task told to stop that may still be running holds the slot: a new
    /// task waits for it (stop-first).
    pub fn busy(&self) -> bool {
        self.tasks.iter().any(|t| is_stopping(t))
    }

    pub fn busy_besides(&self, task: &Task) -> bool {
        self.tasks
            .iter()
            .any(|t| t.meta != task.meta && is_stopping(t))
    }

    pub fn shut_down(&self, task: &Task, tx: &mut Tx, why: &str) {
        let mut task = task.clone();
        task.desired_state = TaskState::Shutdown as i32;
        if let Some(status) = task.status.as_mut() {
            if !shoal_proto::task_state(status.state).is_terminal() && status.message.is_empty() {
                status.message = why.to_string();
            }
        }
        tx.put(task);
    }

    pub fn shut_down_active(&self, tx: &mut Tx, why: &str) {
        for task in self.active() {
            self.shut_down(task, tx, why);
        }
    }
}

fn is_stopping(task: &Task) -> bool {
    let state = task.observed_state();
    task.desired_state > TaskState::Running as i32
        && state >= TaskState::Assigned
        && !state.is_terminal()
}
