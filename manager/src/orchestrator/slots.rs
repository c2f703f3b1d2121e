//! A service's tasks grouped by slot (replicated) or node (global).

use std::collections::{BTreeMap, HashSet};

use shoal_proto::types::v1::{NodeState, Service, Task, TaskState};

use crate::store::{State, Tx};

pub struct Slot<'a> {
    pub number: u64,
    pub node_id: String,
    /// Oldest first.
    pub tasks: Vec<&'a Task>,
    /// Tasks of this slot on a node that is down or gone: nobody can
    /// confirm them stopped, so they do not hold the slot (swarmkit
    /// stops waiting for a task whose node is down).
    pub unreachable: HashSet<&'a str>,
}

/// Whether the task's node is down or no longer in the cluster.
pub fn on_lost_node(state: &State, task: &Task) -> bool {
    !task.node_id.is_empty()
        && (!state.nodes.contains_key(&task.node_id) || node_is_down(state, &task.node_id))
}

/// Whether the node missed its heartbeats for the grace period.
pub fn node_is_down(state: &State, node_id: &str) -> bool {
    state.nodes.get(node_id).is_some_and(|node| {
        node.status
            .as_ref()
            .is_some_and(|s| s.state == NodeState::Down as i32)
    })
}

pub fn group<'a>(state: &'a State, service: &'a Service) -> Vec<Slot<'a>> {
    let id = service.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("");
    let global = matches!(
        service.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(shoal_proto::types::v1::service_spec::Mode::Global(_))
    );
    group_tasks(state, state.tasks_of_service(id), global)
}

/// `tasks` grouped by node (`by_node`: global modes) or by slot number.
pub fn group_tasks<'a>(
    state: &'a State,
    tasks: impl Iterator<Item = &'a Task>,
    by_node: bool,
) -> Vec<Slot<'a>> {
    let mut slots: BTreeMap<(u64, String), Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        let key = if by_node {
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
            let unreachable = tasks
                .iter()
                .filter(|t| on_lost_node(state, t))
                .filter_map(|t| t.meta.as_ref().map(|m| m.id.as_str()))
                .collect();
            Slot {
                number,
                node_id,
                tasks,
                unreachable,
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
        self.tasks.iter().any(|t| self.holds(t))
    }

    pub fn busy_besides(&self, task: &Task) -> bool {
        self.tasks
            .iter()
            .any(|t| t.meta != task.meta && self.holds(t))
    }

    /// A stopping task holds the slot unless its node is lost.
    fn holds(&self, task: &Task) -> bool {
        is_stopping(task)
            && !task
                .meta
                .as_ref()
                .is_some_and(|m| self.unreachable.contains(m.id.as_str()))
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
