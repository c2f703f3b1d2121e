//! The restart policy: whether and when a dead task's slot gets a new task.

use std::time::Duration;

use shoal_proto::types::v1::{restart_policy::Condition, Service, Task, TaskState};

use super::Slot;

/// Swarm's default restart delay.
const DEFAULT_DELAY: Duration = Duration::from_secs(5);

pub enum Decision {
    Now,
    After(Duration),
    Never,
}

pub fn decide(service: &Service, slot: &Slot, dead: &Task, now: i64) -> Decision {
    let policy = service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.restart)
        .unwrap_or_default();
    let state = dead.observed_state();
    let failed = matches!(state, TaskState::Failed | TaskState::Rejected)
        || dead
            .status
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .is_some_and(|c| c.exit_code != 0);
    let wanted = match Condition::try_from(policy.condition).unwrap_or(Condition::Any) {
        Condition::Any => true,
        Condition::OnFailure => failed,
        Condition::None => false,
    };
    if !wanted {
        return Decision::Never;
    }
    if policy.max_attempts > 0 {
        let since = if policy.window_ms > 0 {
            now - policy.window_ms as i64
        } else {
            i64::MIN
        };
        let attempts = slot
            .tasks
            .iter()
            .filter(|t| t.observed_state().is_terminal())
            .filter(|t| t.meta.as_ref().is_some_and(|m| m.created_at >= since))
            .count() as u64;
        // The first run is not a restart.
        if attempts > policy.max_attempts {
            return Decision::Never;
        }
    }
    let delay = policy
        .delay_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_DELAY);
    let died_at = dead.status.as_ref().map(|s| s.timestamp).unwrap_or(now);
    let due = died_at + delay.as_millis() as i64;
    if now >= due {
        Decision::Now
    } else {
        Decision::After(Duration::from_millis((due - now) as u64))
    }
}
