//! Names and ordering of task states, shared by the manager (state machine),
//! the agent (reporting) and the CLI (display).

use crate::types::v1::{Task, TaskState};

impl TaskState {
    /// Lower-case name as `service ps` shows it (Swarm's spelling).
    pub fn display_name(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// A task in a terminal state never runs again: its slot needs a new task.
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }
}

/// Task state from the raw protobuf value; unknown values read as `New`.
pub fn task_state(raw: i32) -> TaskState {
    TaskState::try_from(raw).unwrap_or(TaskState::New)
}

impl Task {
    /// The state the task was last observed in.
    pub fn observed_state(&self) -> TaskState {
        self.status
            .as_ref()
            .map(|s| task_state(s.state))
            .unwrap_or(TaskState::New)
    }

    pub fn desired(&self) -> TaskState {
        task_state(self.desired_state)
    }

    /// The container's hostname on the node `node_hostname`: the spec's,
    /// its placeholders expanded (as written if they do not parse), or the
    /// task id's first 12 characters (Docker's container-id convention). One
    /// rule for the agent (`/etc/hostname`) and the managers (DNS names of
    /// tasks).
    pub fn hostname(&self, node_hostname: &str) -> String {
        let spec = self
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.hostname.as_str())
            .unwrap_or_default();
        if spec.contains("{{") {
            let context = crate::placeholders::context(self, node_hostname);
            let functions = shoal_template::Functions::new();
            return crate::placeholders::expand(spec, &context, &functions)
                .unwrap_or_else(|_| spec.to_string());
        }
        if spec.is_empty() {
            let id = self
                .meta
                .as_ref()
                .map(|m| m.id.as_str())
                .unwrap_or_default();
            id.chars().take(12).collect()
        } else {
            spec.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_exactly_those_after_running() {
        assert!(!TaskState::Running.is_terminal());
        assert!(!TaskState::Pending.is_terminal());
        for s in [
            TaskState::Complete,
            TaskState::Shutdown,
            TaskState::Failed,
            TaskState::Rejected,
            TaskState::Orphaned,
        ] {
            assert!(s.is_terminal(), "{s:?}");
        }
    }
}
