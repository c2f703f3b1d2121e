//! Rolling updates: when a service's spec changes, its slots move to the new
//! spec `parallelism` at a time, `delay` apart, stop-first or start-first.
//! A new task counts as updated once it runs (a task with a health check
//! runs once healthy); one that fails before that, or within `monitor` of
//! starting to run, is a failure of the update, and past
//! `max_failure_ratio` of the slots the failure action applies: pause,
//! continue, or roll back to the previous spec. The update completes when
//! every slot runs the new spec and the last one has run for `monitor`.
//! A rollback (automatic, or `service rollback`) rolls out the same way
//! with the restored spec's rollback config, and its own failure action.
//!
//! Each pass decides from the store alone (tasks' spec versions, creation
//! and running times, the service's update status), so a new leader picks
//! an update up where it stands.

use std::time::Duration;

use shoal_proto::types::v1::{
    update_config::{FailureAction, Order},
    update_status::State as UpdateState,
    Service, Task, TaskState, UpdateConfig, UpdateStatus,
};

use super::{new_task, Slot, Wake};
use crate::revisions::{self, Rollout};
use crate::store::{State, Tx};

/// Swarm's defaults for an update and a rollback alike, for a spec that
/// has no config of its own.
const SWARM_DEFAULTS: UpdateConfig = UpdateConfig {
    parallelism: 1,
    delay_ms: 0,
    order: Order::StopFirst as i32,
    failure_action: FailureAction::Pause as i32,
    monitor_ms: 5_000,
    max_failure_ratio: 0.0,
};

/// The config pacing the service's current rollout: its rollback config
/// while rolling back (Swarm reads the restored spec's), else its update
/// config.
fn config(service: &Service, rolling_back: bool) -> UpdateConfig {
    let spec = service.spec.as_ref();
    let chosen = if rolling_back {
        spec.and_then(|s| s.rollback)
    } else {
        spec.and_then(|s| s.update)
    };
    chosen.unwrap_or(SWARM_DEFAULTS)
}

/// Whether the service replaces a task by starting the new one first (its
/// update order): rolling updates, and a drain, move its tasks that way.
pub fn starts_first(service: &Service) -> bool {
    config(service, false).order == Order::StartFirst as i32
}

/// A live task of an older revision that runs exactly what the current one
/// asks for (a slot a failed update never reached, once rolled back) is
/// the current revision's: relabelled, not replaced. Runs before the
/// pass's other decisions, so a later write to the same task wins.
pub fn adopt_unchanged(state: &State, service: &Service, slots: &[Slot], tx: &mut Tx) {
    let same = SameSpec::of(state, service);
    for task in slots.iter().flat_map(|s| s.active()) {
        if task.spec_version < service.spec_version
            && !task.observed_state().is_terminal()
            && same.runs(task)
        {
            let mut task = task.clone();
            task.spec_version = service.spec_version;
            tx.put(task);
        }
    }
}

/// Moves the service's `slots` (those it wants: within its replicas, or on
/// eligible nodes) towards its current spec.
pub fn advance(state: &State, service: &Service, slots: &[&Slot], tx: &mut Tx, wake: &mut Wake) {
    let current = service.spec_version;
    let status = service.update_status.clone().unwrap_or_default();
    let phase = UpdateState::try_from(status.state).unwrap_or(UpdateState::Unknown);
    let rolling_back = matches!(
        phase,
        UpdateState::RollbackStarted | UpdateState::RollbackPaused
    );
    let config = config(service, rolling_back);
    let in_progress = matches!(phase, UpdateState::Updating | UpdateState::RollbackStarted);
    let same = SameSpec::of(state, service);

    let is_current = |t: &Task| t.spec_version == current || same.runs(t);

    // A slot whose task is of another spec, running or dead (a task of the
    // failed spec, once rolled back, is replaced now, not after its
    // restart delay).
    let dirty: Vec<&Slot> = slots
        .iter()
        .copied()
        .filter(|slot| slot.newest_active().is_some_and(|t| !is_current(t)))
        .collect();
    let in_flight = slots
        .iter()
        .filter(|slot| match slot.newest_active() {
            // A wanted slot without a task meant to run is being refilled
            // (in this very pass, or once its stopping task is down).
            None => true,
            Some(t) => {
                is_current(t)
                    && t.observed_state() < TaskState::Running
                    && !t.observed_state().is_terminal()
            }
        })
        .count() as u64;
    // The tasks this rollout made (the current revision's, since it began).
    let rolled: Vec<&Task> = slots
        .iter()
        .flat_map(|s| s.tasks.iter().copied())
        .filter(|t| {
            t.spec_version == current
                && t.meta
                    .as_ref()
                    .is_some_and(|m| m.created_at >= status.started_at)
        })
        .collect();

    if in_progress {
        if let Some(failed) = failure_beyond_ratio(&rolled, &config, slots.len()) {
            match (
                FailureAction::try_from(config.failure_action).unwrap_or_default(),
                rolling_back,
            ) {
                (FailureAction::Continue, _) => {}
                (FailureAction::Pause, false) => {
                    return set_status(service, tx, UpdateState::Paused, paused(failed));
                }
                (FailureAction::Pause, true) => {
                    return set_status(service, tx, UpdateState::RollbackPaused, paused(failed));
                }
                (FailureAction::Rollback, false) => return roll_back(service, tx, failed),
                // Never roll back a rollback (swarmkit's rule).
                (FailureAction::Rollback, true) => {
                    let message = format!(
                        "rollback paused due to failure or early termination of task {failed}"
                    );
                    return set_status(service, tx, UpdateState::RollbackPaused, message);
                }
            }
        }
    }

    if dirty.is_empty() {
        if in_progress && in_flight == 0 {
            // The last new task is watched for `monitor` before the update
            // counts as done.
            let last_running = rolled.iter().map(|t| running_since(t)).max();
            if let Some(last) = last_running.filter(|t| *t > 0) {
                let done_at = last.saturating_add(millis(config.monitor_ms));
                if tx.now() < done_at {
                    wake.at_most(until(tx.now(), done_at));
                    return;
                }
            }
            let done = if rolling_back {
                (UpdateState::RollbackCompleted, "rollback completed")
            } else {
                (UpdateState::Completed, "update completed")
            };
            set_status(service, tx, done.0, done.1.to_string());
        }
        return;
    }
    if matches!(phase, UpdateState::Paused | UpdateState::RollbackPaused) {
        return;
    }

    let parallelism = if config.parallelism == 0 {
        u64::MAX
    } else {
        config.parallelism
    };
    if in_flight >= parallelism {
        return;
    }
    if config.delay_ms > 0 {
        let last_started = slots
            .iter()
            .flat_map(|s| s.tasks.iter())
            .filter(|t| t.spec_version == current && t.observed_state() == TaskState::Running)
            .map(|t| running_since(t))
            .max();
        if let Some(last) = last_started {
            let due = last.saturating_add(millis(config.delay_ms));
            if tx.now() < due {
                wake.at_most(until(tx.now(), due));
                return;
            }
        }
    }
    let start_first = config.order == Order::StartFirst as i32;
    for slot in dirty.into_iter().take((parallelism - in_flight) as usize) {
        let Some(old) = slot.newest_active() else {
            continue;
        };
        if start_first {
            // The old task retires when the new one runs (see reconcile_slot).
            tx.put(new_task(service, slot.number, &slot.node_id, tx.now()));
        } else {
            slot.shut_down(old, tx, "updating to a new spec");
        }
    }
}

/// The latest failure among the rollout's tasks once failures exceed
/// `max_failure_ratio` of the slots: a task that ended (failed, rejected,
/// or exited while meant to run) before it ran, or within `monitor` of
/// starting to run; one that ran longer ended after the update was done
/// with it, and is the restart policy's business.
fn failure_beyond_ratio<'a>(
    rolled: &[&'a Task],
    config: &UpdateConfig,
    slots: usize,
) -> Option<&'a str> {
    let monitor = millis(config.monitor_ms);
    let mut failed: Vec<(i64, &str)> = rolled
        .iter()
        .filter(|t| {
            matches!(
                t.observed_state(),
                TaskState::Failed | TaskState::Rejected | TaskState::Complete
            )
        })
        .filter(|t| {
            let since = t.running_since;
            let ended = t.status.as_ref().map_or(0, |s| s.timestamp);
            since == 0 || ended.saturating_sub(since) <= monitor
        })
        .filter_map(|t| {
            let ended = t.status.as_ref().map_or(0, |s| s.timestamp);
            t.meta.as_ref().map(|m| (ended, m.id.as_str()))
        })
        .collect();
    let tolerated = f64::from(config.max_failure_ratio) * slots as f64;
    if failed.len() as f64 <= tolerated {
        return None;
    }
    failed.sort();
    failed.last().map(|(_, id)| *id)
}

fn paused(task: &str) -> String {
    format!("update paused due to failure or early termination of task {task}")
}

/// When the task started running: recorded at its first running report
/// (its status time for a task reported before that was recorded).
fn running_since(task: &Task) -> i64 {
    if task.running_since > 0 {
        return task.running_since;
    }
    match &task.status {
        Some(s) if s.state == TaskState::Running as i32 => s.timestamp,
        _ => 0,
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn until(now: i64, at: i64) -> Duration {
    Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
}

/// Whether a task runs what the service's current spec would start: the
/// same task spec, labels, ports and networks.
struct SameSpec<'a> {
    service: &'a Service,
    networks: Vec<&'a str>,
}

impl<'a> SameSpec<'a> {
    fn of(state: &'a State, service: &'a Service) -> SameSpec<'a> {
        let networks = service
            .spec
            .as_ref()
            .map(|spec| {
                crate::allocator::networks_of(state, spec)
                    .into_iter()
                    .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        SameSpec { service, networks }
    }

    fn runs(&self, task: &Task) -> bool {
        let Some(spec) = &self.service.spec else {
            return false;
        };
        task.spec == spec.task
            && task.service_labels == spec.labels
            && task.endpoint_ports == self.service.endpoint_ports
            && task
                .networks
                .iter()
                .map(|n| n.network_id.as_str())
                .eq(self.networks.iter().copied())
    }
}

fn set_status(service: &Service, tx: &mut Tx, state: UpdateState, message: String) {
    let mut service = service.clone();
    let previous = service.update_status.clone().unwrap_or_default();
    service.update_status = Some(UpdateStatus {
        state: state as i32,
        started_at: previous.started_at,
        completed_at: tx.now(),
        message,
    });
    tx.put(service);
}

/// Failure action `rollback`: the previous spec becomes the spec again, as
/// a new revision, and the same rolling machinery moves the slots back.
fn roll_back(service: &Service, tx: &mut Tx, failed_task: &str) {
    let mut service = service.clone();
    let Some(previous) = service.previous_spec.clone() else {
        return set_status(
            &service,
            tx,
            UpdateState::Paused,
            format!(
                "update paused due to failure or early termination of task {failed_task}: there is no previous spec to roll back to"
            ),
        );
    };
    let why =
        format!("update rolled back due to failure or early termination of task {failed_task}");
    revisions::replace(&mut service, previous, tx.now(), Rollout::Rollback(why));
    tx.put(service);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{
        restart_policy::Condition, update_config::FailureAction, update_config::Order,
        update_status::State as UpdateState, ServiceSpec, TaskState, UpdateConfig,
    };

    use shoal_proto::types::v1::Service;

    use crate::harness::{id, image, running, service, Harness, Script};
    use crate::store::StoreError;

    /// Swarm's default monitor window.
    const MONITOR: Duration = Duration::from_secs(5);

    fn with_update(mut spec: ServiceSpec, update: UpdateConfig) -> ServiceSpec {
        spec.update = Some(update);
        spec
    }

    /// `service update --image`, with restart condition none for the new
    /// spec when `fail_for_good` (a failed task of it stays failed).
    async fn roll_to(harness: &Harness, service: &str, image: &str, fail_for_good: bool) {
        harness
            .update_service(service, |spec| {
                let task = spec.task.as_mut().unwrap();
                task.container.as_mut().unwrap().image = image.into();
                if fail_for_good {
                    task.restart.as_mut().unwrap().condition = Condition::None as i32;
                }
            })
            .await;
    }

    fn count(harness: &Harness, service: &str, image_is: &str, state: TaskState) -> usize {
        harness
            .tasks(service)
            .iter()
            .filter(|t| image(t) == image_is && t.observed_state() == state)
            .count()
    }

    async fn all_running(harness: &Harness, service: &str, image_is: &str, n: usize) {
        harness
            .until(&format!("{n} tasks of {image_is} running"), |s| {
                let tasks = running(s, service);
                (tasks.len() == n && tasks.iter().all(|t| image(t) == image_is)).then_some(())
            })
            .await;
    }

    /// Service `web`: `replicas` tasks of web:v1 running under `update`.
    async fn running_web(harness: &Harness, replicas: u64, update: UpdateConfig) -> String {
        harness.add_node("n1").await;
        let web = harness
            .create_service(with_update(service("web", "web:v1", replicas), update))
            .await;
        all_running(harness, &web, "web:v1", replicas as usize).await;
        web
    }

    async fn update_reaches(harness: &Harness, service: &str, state: UpdateState) {
        harness
            .until(&format!("the update {state:?}"), |s| {
                let status = s.services[service].update_status.clone()?;
                (status.state == state as i32).then_some(())
            })
            .await;
    }

    fn update_state(harness: &Harness, service: &str) -> UpdateState {
        let status = harness.service(service).update_status.unwrap_or_default();
        UpdateState::try_from(status.state).unwrap()
    }

    #[tokio::test]
    async fn stop_first_stops_an_old_task_before_its_replacement_starts() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("web:v2", Script::Hang);
        let web = harness.create_service(service("web", "web:v1", 3)).await;
        all_running(&harness, &web, "web:v1", 3).await;
        roll_to(&harness, &web, "web:v2", false).await;
        harness.settle().await;
        assert_eq!(count(&harness, &web, "web:v1", TaskState::Running), 2);
        assert_eq!(count(&harness, &web, "web:v1", TaskState::Shutdown), 1);
        let starting: Vec<_> = harness
            .tasks(&web)
            .into_iter()
            .filter(|t| image(t) == "web:v2")
            .collect();
        assert_eq!(starting.len(), 1, "parallelism 1");
        assert_eq!(starting[0].observed_state(), TaskState::Starting);
        assert_eq!(update_state(&harness, &web), UpdateState::Updating);

        harness.script("web:v2", Script::Run);
        harness
            .report(&id(&starting[0]), TaskState::Running, 0)
            .await;
        all_running(&harness, &web, "web:v2", 3).await;
        // Swarm's default monitor: the last new task is watched for 5 s.
        harness.advance(MONITOR).await;
        update_reaches(&harness, &web, UpdateState::Completed).await;
    }

    #[tokio::test]
    async fn start_first_retires_an_old_task_once_its_replacement_runs() {
        let harness = Harness::start().await;
        harness.script("web:v2", Script::Hang);
        let update = UpdateConfig {
            parallelism: 1,
            order: Order::StartFirst as i32,
            ..Default::default()
        };
        let web = running_web(&harness, 3, update).await;
        roll_to(&harness, &web, "web:v2", false).await;
        harness.settle().await;
        assert_eq!(
            count(&harness, &web, "web:v1", TaskState::Running),
            3,
            "stopped first"
        );
        let new: Vec<_> = harness
            .tasks(&web)
            .into_iter()
            .filter(|t| image(t) == "web:v2")
            .collect();
        assert_eq!(new.len(), 1);
        let slot = new[0].slot;

        harness.report(&id(&new[0]), TaskState::Running, 0).await;
        harness
            .until("the old task of the slot retired", |s| {
                let old = crate::harness::tasks_of(s, &web)
                    .into_iter()
                    .find(|t| t.slot == slot && image(t) == "web:v1")?;
                (old.desired_state == TaskState::Shutdown as i32).then_some(())
            })
            .await;
        harness.script("web:v2", Script::Run);
        let second = harness
            .until("the next slot's new task", |s| {
                crate::harness::tasks_of(s, &web)
                    .into_iter()
                    .find(|t| t.slot != slot && image(t) == "web:v2")
            })
            .await;
        harness.report(&id(&second), TaskState::Running, 0).await;
        all_running(&harness, &web, "web:v2", 3).await;
    }

    #[tokio::test]
    async fn parallelism_and_delay_pace_the_update() {
        let harness = Harness::start().await;
        let update = UpdateConfig {
            parallelism: 2,
            delay_ms: 10_000,
            ..Default::default()
        };
        let web = running_web(&harness, 4, update).await;
        roll_to(&harness, &web, "web:v2", false).await;
        harness
            .until("the first batch of 2 running", |s| {
                let v2 = running(s, &web)
                    .iter()
                    .filter(|t| image(t) == "web:v2")
                    .count();
                (v2 == 2).then_some(())
            })
            .await;
        harness.advance(Duration::from_millis(9_999)).await;
        assert_eq!(
            count(&harness, &web, "web:v2", TaskState::Running),
            2,
            "the next batch started before the delay"
        );
        harness.advance(Duration::from_millis(1)).await;
        all_running(&harness, &web, "web:v2", 4).await;
        assert_eq!(harness.created(&web), 8, "each slot replaced exactly once");
    }

    #[tokio::test]
    async fn failures_pause_the_update_once_they_exceed_the_failure_ratio() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("web:v2", Script::Exit(1));
        // Half of the 4 slots may fail; the third failure pauses.
        let update = UpdateConfig {
            parallelism: 1,
            failure_action: FailureAction::Pause as i32,
            max_failure_ratio: 0.5,
            ..Default::default()
        };
        let web = harness
            .create_service(with_update(service("web", "web:v1", 4), update))
            .await;
        // Without a ratio, the first failure pauses.
        let strict = harness.create_service(service("strict", "web:v1", 4)).await;
        all_running(&harness, &web, "web:v1", 4).await;
        all_running(&harness, &strict, "web:v1", 4).await;
        roll_to(&harness, &web, "web:v2", true).await;
        roll_to(&harness, &strict, "web:v2", true).await;
        for (service, failures) in [(&web, 3), (&strict, 1)] {
            update_reaches(&harness, service, UpdateState::Paused).await;
            harness.settle().await;
            assert_eq!(
                count(&harness, service, "web:v2", TaskState::Failed),
                failures
            );
            assert_eq!(
                count(&harness, service, "web:v1", TaskState::Running),
                4 - failures,
                "slots moved on after the pause"
            );
            let message = harness.service(service).update_status.unwrap().message;
            assert!(
                message.starts_with("update paused due to failure"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn continue_moves_every_slot_despite_failures() {
        let harness = Harness::start().await;
        harness.script("web:v2", Script::Exit(1));
        let update = UpdateConfig {
            parallelism: 1,
            failure_action: FailureAction::Continue as i32,
            ..Default::default()
        };
        let web = running_web(&harness, 3, update).await;
        roll_to(&harness, &web, "web:v2", true).await;
        update_reaches(&harness, &web, UpdateState::Completed).await;
        let tasks = harness.store.view(crate::harness::describe_tasks);
        assert_eq!(
            count(&harness, &web, "web:v2", TaskState::Failed),
            3,
            "{tasks}"
        );
        assert_eq!(count(&harness, &web, "web:v1", TaskState::Running), 0);
    }

    #[tokio::test]
    async fn rollback_brings_back_the_previous_spec_on_every_slot() {
        let harness = Harness::start().await;
        harness.script("web:v2", Script::Exit(1));
        let update = UpdateConfig {
            parallelism: 1,
            failure_action: FailureAction::Rollback as i32,
            ..Default::default()
        };
        let web = running_web(&harness, 3, update).await;
        let before = harness.created(&web);
        roll_to(&harness, &web, "web:v2", true).await;
        update_reaches(&harness, &web, UpdateState::RollbackStarted).await;
        let failed = harness
            .tasks(&web)
            .into_iter()
            .find(|t| image(t) == "web:v2")
            .expect("the failed task");
        assert_eq!(
            harness.service(&web).update_status.unwrap().message,
            format!(
                "update rolled back due to failure or early termination of task {}",
                id(&failed)
            )
        );
        all_running(&harness, &web, "web:v1", 3).await;
        assert_eq!(
            harness.created(&web),
            before + 2,
            "only the failed slot got tasks (v2, then v1 again): the others were never touched"
        );
        harness.advance(MONITOR).await;
        update_reaches(&harness, &web, UpdateState::RollbackCompleted).await;
        assert_eq!(
            harness.service(&web).update_status.unwrap().message,
            "rollback completed"
        );
        let service = harness.service(&web);
        let spec_image = |spec: Option<ServiceSpec>| {
            spec.and_then(|s| s.task?.container)
                .map(|c| c.image)
                .unwrap_or_default()
        };
        assert_eq!(spec_image(service.spec), "web:v1");
        assert_eq!(spec_image(service.previous_spec), "web:v2");
        assert_eq!(
            count(&harness, &web, "web:v2", TaskState::Failed),
            1,
            "rolled back at the first failure"
        );
    }

    fn spec_image(spec: Option<&ServiceSpec>) -> String {
        spec.and_then(|s| s.task.as_ref()?.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default()
    }

    fn spec_env(spec: Option<&ServiceSpec>) -> Vec<String> {
        spec.and_then(|s| s.task.as_ref()?.container.as_ref())
            .map(|c| c.env.clone())
            .unwrap_or_default()
    }

    /// `service rollback [--to REV]` as the control API makes it.
    async fn roll_back(harness: &Harness, service: &str, to: u64) -> Result<Service, StoreError> {
        harness
            .store
            .update(|state, tx| {
                let current = state.services[service].clone();
                crate::controlapi::services::roll_back(state, tx, &current, to)
            })
            .await
            .map(|updated| updated.service)
    }

    /// The newest task of `image`, once its agent started it.
    async fn newest(
        harness: &Harness,
        service: &str,
        image_is: &str,
    ) -> shoal_proto::types::v1::Task {
        harness
            .until(&format!("a task of {image_is} starting"), |s| {
                crate::harness::tasks_of(s, service)
                    .into_iter()
                    .rev()
                    .find(|t| image(t) == image_is)
                    .filter(|t| t.observed_state() == TaskState::Starting)
            })
            .await
    }

    #[tokio::test]
    async fn a_failure_within_the_monitor_window_counts_and_one_after_it_does_not() {
        let harness = Harness::start().await;
        harness.script("web:v2", Script::Hang);
        let update = UpdateConfig {
            parallelism: 1,
            monitor_ms: 5_000,
            failure_action: FailureAction::Pause as i32,
            ..Default::default()
        };
        let web = running_web(&harness, 2, update).await;
        roll_to(&harness, &web, "web:v2", false).await;

        // The first new task runs, and dies 6 s later: past its monitor.
        let first = newest(&harness, &web, "web:v2").await;
        harness.report(&id(&first), TaskState::Running, 0).await;
        harness.advance(Duration::from_secs(6)).await;
        harness.exit(&id(&first), 1).await;
        harness.settle().await;
        assert_eq!(
            update_state(&harness, &web),
            UpdateState::Updating,
            "not a failure of the update"
        );

        // The next one dies 4 s after it started running: within it.
        let second = harness
            .until("the second slot's new task starting", |s| {
                crate::harness::tasks_of(s, &web).into_iter().find(|t| {
                    image(t) == "web:v2"
                        && t.slot != first.slot
                        && t.observed_state() == TaskState::Starting
                })
            })
            .await;
        harness.report(&id(&second), TaskState::Running, 0).await;
        harness.advance(Duration::from_secs(4)).await;
        harness.exit(&id(&second), 1).await;
        update_reaches(&harness, &web, UpdateState::Paused).await;
        assert_eq!(
            harness.service(&web).update_status.unwrap().message,
            format!(
                "update paused due to failure or early termination of task {}",
                id(&second)
            )
        );
    }

    #[tokio::test]
    async fn an_update_completes_only_once_the_last_new_task_ran_for_its_monitor() {
        let harness = Harness::start().await;
        let update = UpdateConfig {
            parallelism: 0,
            monitor_ms: 10_000,
            ..Default::default()
        };
        let web = running_web(&harness, 3, update).await;
        roll_to(&harness, &web, "web:v2", false).await;
        all_running(&harness, &web, "web:v2", 3).await;
        harness.advance(Duration::from_millis(9_999)).await;
        assert_eq!(update_state(&harness, &web), UpdateState::Updating);
        harness.advance(Duration::from_millis(1)).await;
        update_reaches(&harness, &web, UpdateState::Completed).await;
    }

    #[tokio::test]
    async fn a_rollback_rolls_out_with_the_rollback_config() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let mut spec = with_update(
            service("web", "web:v1", 3),
            UpdateConfig {
                parallelism: 1,
                monitor_ms: 0,
                ..Default::default()
            },
        );
        spec.rollback = Some(UpdateConfig {
            parallelism: 3,
            monitor_ms: 0,
            ..Default::default()
        });
        let web = harness.create_service(spec).await;
        all_running(&harness, &web, "web:v1", 3).await;
        roll_to(&harness, &web, "web:v2", false).await;
        all_running(&harness, &web, "web:v2", 3).await;
        update_reaches(&harness, &web, UpdateState::Completed).await;

        harness.script("web:v1", Script::Hang);
        let rolled = roll_back(&harness, &web, 0).await.expect("rollback");
        assert_eq!(spec_image(rolled.spec.as_ref()), "web:v1");
        let status = rolled.update_status.unwrap();
        assert_eq!(status.state, UpdateState::RollbackStarted as i32);
        assert_eq!(status.message, "manually requested rollback");
        harness.settle().await;
        assert_eq!(
            count(&harness, &web, "web:v1", TaskState::Starting),
            3,
            "rollback parallelism 3, not the update's 1"
        );
        harness.script("web:v1", Script::Run);
        for task in harness.tasks(&web) {
            if image(&task) == "web:v1" && task.observed_state() == TaskState::Starting {
                harness.report(&id(&task), TaskState::Running, 0).await;
            }
        }
        all_running(&harness, &web, "web:v1", 3).await;
        update_reaches(&harness, &web, UpdateState::RollbackCompleted).await;
    }

    #[tokio::test]
    async fn a_rollback_that_fails_pauses_with_its_own_failure_action() {
        let harness = Harness::start().await;
        let update = UpdateConfig {
            parallelism: 1,
            monitor_ms: 0,
            // The update itself would go on: the rollback's action applies.
            failure_action: FailureAction::Continue as i32,
            ..Default::default()
        };
        harness.add_node("n1").await;
        // A failed task stays failed (no restarts to wait out).
        let mut spec = with_update(service("web", "web:v1", 2), update);
        spec.task
            .as_mut()
            .unwrap()
            .restart
            .as_mut()
            .unwrap()
            .condition = Condition::None as i32;
        let web = harness.create_service(spec).await;
        all_running(&harness, &web, "web:v1", 2).await;
        roll_to(&harness, &web, "web:v2", false).await;
        all_running(&harness, &web, "web:v2", 2).await;
        update_reaches(&harness, &web, UpdateState::Completed).await;
        // The old image is gone from the registry: the rollback fails.
        harness.script("web:v1", Script::Reject);
        roll_back(&harness, &web, 0).await.expect("rollback");
        update_reaches(&harness, &web, UpdateState::RollbackPaused).await;
        let message = harness.service(&web).update_status.unwrap().message;
        assert!(
            message.starts_with("update paused due to failure or early termination of task"),
            "{message}"
        );
        harness.settle().await;
        assert_eq!(
            count(&harness, &web, "web:v2", TaskState::Running),
            1,
            "paused after the first slot (rollback defaults: parallelism 1, pause)"
        );
    }

    #[tokio::test]
    async fn rollback_to_a_revision_restores_its_spec_and_is_a_new_revision() {
        let harness = Harness::start().await;
        let update = UpdateConfig {
            parallelism: 0,
            monitor_ms: 0,
            ..Default::default()
        };
        let web = running_web(&harness, 2, update).await;
        let env = |entry: &'static str| {
            move |spec: &mut ServiceSpec| {
                let container = spec.task.as_mut().unwrap().container.as_mut().unwrap();
                container.env = vec![entry.to_string()];
            }
        };
        harness.update_service(&web, env("A=1")).await; // revision 2
        harness.update_service(&web, env("A=2")).await; // revision 3
        roll_to(&harness, &web, "web:v2", false).await; // revision 4
        all_running(&harness, &web, "web:v2", 2).await;

        let rolled = roll_back(&harness, &web, 2).await.expect("rollback --to 2");
        assert_eq!(rolled.spec_version, 5);
        assert_eq!(spec_image(rolled.spec.as_ref()), "web:v1");
        assert_eq!(spec_env(rolled.spec.as_ref()), ["A=1"]);
        let revisions: Vec<u64> = rolled.history.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, [1, 2, 3, 4]);
        assert_eq!(spec_image(rolled.previous_spec.as_ref()), "web:v2");
        harness
            .until("both slots on revision 2's spec", |s| {
                let tasks = running(s, &web);
                (tasks.len() == 2
                    && tasks.iter().all(|t| {
                        t.spec_version == 5
                            && image(t) == "web:v1"
                            && t.spec
                                .as_ref()
                                .and_then(|x| x.container.as_ref())
                                .unwrap()
                                .env
                                == ["A=1"]
                    }))
                .then_some(())
            })
            .await;
        // No rollback config: Swarm's defaults, monitor 5 s included.
        harness.advance(MONITOR).await;
        update_reaches(&harness, &web, UpdateState::RollbackCompleted).await;
    }

    #[tokio::test]
    async fn rollbacks_without_a_target_are_refused_with_what_there_is() {
        let harness = Harness::start().await;
        let web = running_web(&harness, 1, UpdateConfig::default()).await;
        let refused = roll_back(&harness, &web, 0)
            .await
            .expect_err("no previous spec");
        assert_eq!(
            refused.to_string(),
            "service web does not have a previous spec"
        );
        roll_to(&harness, &web, "web:v2", false).await;
        let refused = roll_back(&harness, &web, 7)
            .await
            .expect_err("no revision 7");
        assert_eq!(
            refused.to_string(),
            "service web has no revision 7: its kept revisions are 1, the current one is 2"
        );
        let refused = roll_back(&harness, &web, 2).await.expect_err("current");
        assert_eq!(refused.to_string(), "service web is at revision 2 already");
    }

    #[tokio::test]
    async fn a_service_keeps_its_last_ten_revisions() {
        let harness = Harness::start().await;
        let web = running_web(&harness, 1, UpdateConfig::default()).await;
        for n in 2..=13 {
            roll_to(&harness, &web, &format!("web:v{n}"), false).await;
        }
        let service = harness.service(&web);
        assert_eq!(service.spec_version, 13);
        let revisions: Vec<u64> = service.history.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, (3..=12).collect::<Vec<_>>());
        assert_eq!(
            spec_image(service.history[0].spec.as_ref()),
            "web:v3",
            "revision 3 ran web:v3"
        );
        // A scale is no new revision.
        harness
            .update_service(&web, |spec| {
                spec.mode = Some(shoal_proto::types::v1::service_spec::Mode::Replicated(
                    shoal_proto::types::v1::ReplicatedMode { replicas: 2 },
                ));
            })
            .await;
        assert_eq!(harness.service(&web).spec_version, 13);
        assert_eq!(harness.service(&web).history.len(), 10);
    }

    #[tokio::test]
    async fn a_rollback_replaces_a_dead_task_of_the_failed_spec_at_once() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        harness.script("web:v2", Script::Exit(1));
        let mut spec = with_update(
            service("web", "web:v1", 2),
            UpdateConfig {
                parallelism: 1,
                failure_action: FailureAction::Rollback as i32,
                ..Default::default()
            },
        );
        // A restart would wait 10 s; the rollback does not.
        spec.task
            .as_mut()
            .unwrap()
            .restart
            .as_mut()
            .unwrap()
            .delay_ms = Some(10_000);
        let web = harness.create_service(spec).await;
        all_running(&harness, &web, "web:v1", 2).await;
        roll_to(&harness, &web, "web:v2", false).await;
        update_reaches(&harness, &web, UpdateState::RollbackStarted).await;
        all_running(&harness, &web, "web:v1", 2).await;
    }

    #[tokio::test]
    async fn a_rollback_config_is_checked_like_an_update_config() {
        let harness = Harness::start().await;
        let mut spec = service("web", "web:v1", 1);
        spec.rollback = Some(UpdateConfig {
            max_failure_ratio: 1.5,
            ..Default::default()
        });
        let refused = harness
            .try_create_service(spec.clone())
            .await
            .expect_err("ratio");
        assert!(
            refused.to_string().contains(
                "rollback max failure ratio 1.5 (--rollback-max-failure-ratio, deploy.rollback_config.max_failure_ratio) is not between 0 and 1"
            ),
            "{refused}"
        );
        spec.rollback = Some(UpdateConfig {
            monitor_ms: 8 * 24 * 3_600_000,
            ..Default::default()
        });
        let refused = harness.try_create_service(spec).await.expect_err("monitor");
        assert!(
            refused
                .to_string()
                .contains("--rollback-monitor, deploy.rollback_config.monitor"),
            "{refused}"
        );
    }
}
