//! The restart policy: whether and when a dead task's slot gets a new task.

use std::time::Duration;

use shoal_proto::types::v1::{restart_policy::Condition, RestartPolicy, Service, Task, TaskState};

/// Swarm's default restart delay.
const DEFAULT_DELAY: Duration = Duration::from_secs(5);

pub enum Decision {
    Now,
    After(Duration),
    Never,
}

fn policy_of(service: &Service) -> RestartPolicy {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.restart)
        .unwrap_or_default()
}

/// The restarts of `restarted_at` the policy counts at `now`: those within
/// its window (all of them without a window).
fn counted(policy: &RestartPolicy, restarted_at: &[i64], now: i64) -> Vec<i64> {
    if policy.max_attempts == 0 {
        // Unlimited: nothing to count.
        return Vec::new();
    }
    let since = if policy.window_ms > 0 {
        now.saturating_sub(i64::try_from(policy.window_ms).unwrap_or(i64::MAX))
    } else {
        i64::MIN
    };
    let mut kept: Vec<i64> = restarted_at
        .iter()
        .copied()
        .filter(|t| *t >= since)
        .collect();
    let max = usize::try_from(policy.max_attempts).unwrap_or(usize::MAX);
    if kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    kept
}

/// The restart history the task that restarts `dead` carries: the
/// restarts still counted, and this one.
pub fn history_after(service: &Service, dead: &Task, now: i64) -> Vec<i64> {
    let policy = policy_of(service);
    let mut history = dead.restarted_at.clone();
    history.push(now);
    counted(&policy, &history, now)
}

/// The history a slot's next task carries from the slot's last task when
/// it is made on a later pass than the restart decision (the slot was busy
/// then): a task of the same spec that ended on its own was restarted; one
/// stopped by the manager (scale, drain) passes its history on; a task of
/// an older spec starts none (an update resets the count, as in Swarm).
pub fn carried_history(service: &Service, previous: &Task, now: i64) -> Vec<i64> {
    if previous.spec_version != service.spec_version {
        return Vec::new();
    }
    match previous.observed_state() {
        TaskState::Failed | TaskState::Complete | TaskState::Rejected => {
            history_after(service, previous, now)
        }
        _ => counted(&policy_of(service), &previous.restarted_at, now),
    }
}

/// Whether a live task whose node is down (or gone) is replaced: as in
/// swarmkit, it counts as a restart the policy must allow (condition
/// `none` keeps the slot empty, `max_attempts` holds), but it is replaced
/// at once: the task did not fail, so there is no loop to slow down.
pub fn after_node_loss(service: &Service, lost: &Task, now: i64) -> bool {
    let policy = policy_of(service);
    if Condition::try_from(policy.condition).unwrap_or(Condition::Any) == Condition::None {
        return false;
    }
    policy.max_attempts == 0
        || (counted(&policy, &lost.restarted_at, now).len() as u64) < policy.max_attempts
}

pub fn decide(service: &Service, dead: &Task, now: i64) -> Decision {
    let policy = policy_of(service);
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
    // Restarts so far, as the dead task carries them: old tasks being
    // reaped does not reset the count.
    if policy.max_attempts > 0
        && counted(&policy, &dead.restarted_at, now).len() as u64 >= policy.max_attempts
    {
        return Decision::Never;
    }
    let delay = policy
        .delay_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_DELAY);
    let died_at = dead.status.as_ref().map(|s| s.timestamp).unwrap_or(now);
    let due = died_at.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    if now >= due {
        Decision::Now
    } else {
        Decision::After(Duration::from_millis(due.saturating_sub(now) as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{restart_policy::Condition, RestartPolicy, TaskState};

    use crate::harness::{id, running, service, tasks_of, Harness, Script};

    /// A one-replica service of `image` under `policy`.
    async fn restarting(
        harness: &Harness,
        name: &str,
        image: &str,
        policy: RestartPolicy,
    ) -> String {
        let mut spec = service(name, image, 1);
        spec.task.as_mut().unwrap().restart = Some(policy);
        harness.create_service(spec).await
    }

    async fn one_running(harness: &Harness, service: &str) -> String {
        harness
            .until("one task running", |s| {
                running(s, service)
                    .first()
                    .map(id)
                    .filter(|_| running(s, service).len() == 1)
            })
            .await
    }

    #[tokio::test]
    async fn the_condition_decides_which_exits_restart() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let policy = |condition: Condition| RestartPolicy {
            condition: condition as i32,
            delay_ms: Some(0),
            ..Default::default()
        };
        let any = restarting(&harness, "any", "app", policy(Condition::Any)).await;
        let on_failure =
            restarting(&harness, "onfailure", "app", policy(Condition::OnFailure)).await;
        let none = restarting(&harness, "none", "app", policy(Condition::None)).await;
        for service in [&any, &on_failure, &none] {
            let task = one_running(&harness, service).await;
            harness.exit(&task, 0).await;
        }
        harness.settle().await;
        // A clean exit restarts only under `any`.
        assert_eq!(harness.store.view(|s| running(s, &any).len()), 1);
        assert_eq!(harness.tasks(&any).len(), 2);
        assert_eq!(
            harness.tasks(&on_failure).len(),
            1,
            "on-failure restarted a clean exit"
        );
        assert_eq!(harness.tasks(&none).len(), 1);

        // A failure restarts under `on-failure` too, never under `none`.
        let none = restarting(&harness, "none2", "app", policy(Condition::None)).await;
        let on_failure =
            restarting(&harness, "onfailure2", "app", policy(Condition::OnFailure)).await;
        for service in [&none, &on_failure] {
            let task = one_running(&harness, service).await;
            harness.exit(&task, 3).await;
        }
        one_running(&harness, &on_failure).await;
        harness.settle().await;
        assert_eq!(harness.tasks(&on_failure).len(), 2);
        let none_tasks = harness.tasks(&none);
        assert_eq!(none_tasks.len(), 1, "none restarted a failure");
        assert_eq!(none_tasks[0].observed_state(), TaskState::Failed);
    }

    /// A service `web` restarting after 5 s, whose first task has just
    /// died: the harness, the service and that task.
    async fn web_dead_for_5_s() -> (Harness, String, String) {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let web = restarting(
            &harness,
            "web",
            "web",
            RestartPolicy {
                delay_ms: Some(5_000),
                ..Default::default()
            },
        )
        .await;
        let first = one_running(&harness, &web).await;
        harness.exit(&first, 137).await;
        (harness, web, first)
    }

    #[tokio::test]
    async fn a_dead_task_is_replaced_only_after_the_restart_delay() {
        let (harness, web, first) = web_dead_for_5_s().await;
        harness.advance(Duration::from_millis(4_999)).await;
        assert_eq!(harness.tasks(&web).len(), 1, "restarted before the delay");
        harness.advance(Duration::from_millis(1)).await;
        let second = one_running(&harness, &web).await;
        assert_ne!(second, first);
        let tasks = harness.tasks(&web);
        assert_eq!(tasks[0].desired_state, TaskState::Shutdown as i32);
        assert_eq!(tasks[1].slot, tasks[0].slot, "the same slot is refilled");

        // Unset means Swarm's default of 5 s.
        let api = harness.create_service(service("api", "api", 1)).await;
        harness
            .update_service(&api, |s| s.task.as_mut().unwrap().restart = None)
            .await;
        let task = one_running(&harness, &api).await;
        harness.exit(&task, 1).await;
        harness.advance(Duration::from_millis(4_000)).await;
        assert_eq!(harness.store.view(|s| running(s, &api).len()), 0);
        harness.advance(Duration::from_millis(1_000)).await;
        one_running(&harness, &api).await;
    }

    #[tokio::test]
    async fn a_restart_delay_holds_while_passes_look_at_other_services_only() {
        let (harness, web, first) = web_dead_for_5_s().await;
        harness.advance(Duration::from_millis(2_000)).await;
        // Passes over `api` alone (its creation, its task starting) must
        // not forget that `web` is due at 5 s.
        let api = harness.create_service(service("api", "api", 1)).await;
        one_running(&harness, &api).await;
        harness.advance(Duration::from_millis(2_999)).await;
        assert_eq!(harness.tasks(&web).len(), 1, "restarted before the delay");
        harness.advance(Duration::from_millis(1)).await;
        assert_ne!(one_running(&harness, &web).await, first);
    }

    #[tokio::test]
    async fn restarts_stop_after_max_attempts_even_beyond_the_task_history() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("crash", Script::Exit(1));
        // More attempts than the slot keeps as history (5).
        let crash = restarting(
            &harness,
            "crash",
            "crash",
            RestartPolicy {
                delay_ms: Some(0),
                max_attempts: 7,
                ..Default::default()
            },
        )
        .await;
        harness
            .until("the first run and 7 restarts, all failed", |s| {
                let tasks = tasks_of(s, &crash);
                let last = tasks.last()?;
                (last.restarted_at.len() == 7 && last.observed_state() == TaskState::Failed)
                    .then_some(())
            })
            .await;
        harness.settle().await;
        harness.advance(Duration::from_secs(60)).await;
        assert_eq!(harness.created(&crash), 8, "restarted past max_attempts");
        assert!(
            harness.tasks(&crash).len() <= 6,
            "the history limit still holds"
        );
    }

    #[tokio::test]
    async fn a_task_the_node_rejects_is_a_failure() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("missing", Script::Reject);
        let missing = restarting(
            &harness,
            "missing",
            "missing",
            RestartPolicy {
                condition: Condition::OnFailure as i32,
                delay_ms: Some(0),
                max_attempts: 2,
                ..Default::default()
            },
        )
        .await;
        harness
            .until("the first run and 2 restarts, all rejected", |s| {
                let last = tasks_of(s, &missing).pop()?;
                (last.restarted_at.len() == 2 && last.observed_state() == TaskState::Rejected)
                    .then_some(())
            })
            .await;
        harness.settle().await;
        assert_eq!(harness.created(&missing), 3);
        let last = harness.tasks(&missing).pop().unwrap();
        assert_eq!(last.status.unwrap().err, "No such image: missing");
    }

    #[tokio::test]
    async fn only_attempts_within_the_window_count() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let web = restarting(
            &harness,
            "web",
            "web",
            RestartPolicy {
                delay_ms: Some(0),
                max_attempts: 1,
                window_ms: 10_000,
                ..Default::default()
            },
        )
        .await;
        let first = one_running(&harness, &web).await;
        harness.exit(&first, 1).await;
        let second = one_running(&harness, &web).await;
        // Long after: the first failure is out of the window.
        harness.advance(Duration::from_secs(30)).await;
        harness.exit(&second, 1).await;
        let third = one_running(&harness, &web).await;
        // At once again: two failures within 10 s, one attempt allowed.
        harness.advance(Duration::from_secs(1)).await;
        harness.exit(&third, 1).await;
        harness.settle().await;
        assert_eq!(
            harness.tasks(&web).len(),
            3,
            "restarted past max_attempts in the window"
        );
        assert_eq!(harness.store.view(|s| running(s, &web).len()), 0);
    }
}
