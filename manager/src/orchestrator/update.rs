//! Rolling updates: when a service's spec changes, its slots move to the new
//! spec `parallelism` at a time, `delay` apart, stop-first or start-first,
//! pausing, continuing or rolling back when a new task fails.

use std::time::Duration;

use shoal_proto::types::v1::{
    update_config::{FailureAction, Order},
    update_status::State as UpdateState,
    Service, TaskState, UpdateConfig, UpdateStatus,
};

use super::{new_task, Slot, Wake};
use crate::store::Tx;

/// Moves the service's `slots` (those it wants: within its replicas, or on
/// eligible nodes) towards its current spec.
pub fn advance(service: &Service, slots: &[&Slot], tx: &mut Tx, wake: &mut Wake) {
    let current = service.spec_version;
    let config = service
        .spec
        .as_ref()
        .and_then(|s| s.update)
        .unwrap_or(UpdateConfig {
            parallelism: 1,
            ..Default::default()
        });
    let status = service.update_status.clone().unwrap_or_default();
    let updating = matches!(
        UpdateState::try_from(status.state),
        Ok(UpdateState::Updating | UpdateState::RollbackStarted)
    );

    let dirty: Vec<&Slot> = slots
        .iter()
        .copied()
        .filter(|slot| {
            slot.newest_active()
                .is_some_and(|t| t.spec_version < current && !t.observed_state().is_terminal())
        })
        .collect();
    let in_flight = slots
        .iter()
        .filter(|slot| match slot.newest_active() {
            // A wanted slot without a task meant to run is being refilled
            // (in this very pass, or once its stopping task is down).
            None => true,
            Some(t) => {
                t.spec_version == current
                    && t.observed_state() < TaskState::Running
                    && !t.observed_state().is_terminal()
            }
        })
        .count() as u64;

    if updating {
        // Tasks of the new spec that failed since the update began. Up to
        // `max_failure_ratio` of the slots may fail before the failure
        // action applies (Swarm counts failed tasks, not slots).
        let failed: Vec<&str> = slots
            .iter()
            .flat_map(|s| s.tasks.iter())
            .filter(|t| {
                t.spec_version == current
                    && matches!(t.observed_state(), TaskState::Failed | TaskState::Rejected)
                    && t.meta
                        .as_ref()
                        .is_some_and(|m| m.created_at >= status.started_at)
            })
            .filter_map(|t| t.meta.as_ref().map(|m| m.id.as_str()))
            .collect();
        let tolerated = f64::from(config.max_failure_ratio) * slots.len() as f64;
        if let Some(id) = failed.last().filter(|_| failed.len() as f64 > tolerated) {
            match FailureAction::try_from(config.failure_action).unwrap_or_default() {
                FailureAction::Continue => {}
                FailureAction::Pause => {
                    return set_status(
                        service,
                        tx,
                        UpdateState::Paused,
                        format!("update paused due to failure or early termination of task {id}"),
                    );
                }
                FailureAction::Rollback if status.state == UpdateState::Updating as i32 => {
                    return roll_back(service, tx, id);
                }
                FailureAction::Rollback => {}
            }
        }
    }

    if dirty.is_empty() {
        if updating && in_flight == 0 {
            let done = if status.state == UpdateState::RollbackStarted as i32 {
                (UpdateState::RollbackCompleted, "rollback completed")
            } else {
                (UpdateState::Completed, "update completed")
            };
            set_status(service, tx, done.0, done.1.to_string());
        }
        return;
    }
    if status.state == UpdateState::Paused as i32 {
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
            .filter_map(|t| t.status.as_ref().map(|s| s.timestamp))
            .max();
        if let Some(last) = last_started {
            let due = last.saturating_add(i64::try_from(config.delay_ms).unwrap_or(i64::MAX));
            if tx.now() < due {
                wake.at_most(Duration::from_millis(due.saturating_sub(tx.now()) as u64));
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

/// Failure action `rollback`: the previous spec becomes the spec again and
/// the same rolling machinery moves the slots back.
fn roll_back(service: &Service, tx: &mut Tx, failed_task: &str) {
    let mut service = service.clone();
    let Some(previous) = service.previous_spec.take() else {
        return set_status(
            &service,
            tx,
            UpdateState::Paused,
            format!("update paused: task {failed_task} failed and there is no previous spec to roll back to"),
        );
    };
    service.previous_spec = service.spec.replace(previous);
    service.spec_version += 1;
    service.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted as i32,
        started_at: tx.now(),
        completed_at: 0,
        message: format!("rollback started after task {failed_task} failed"),
    });
    tx.put(service);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{
        restart_policy::Condition, update_config::FailureAction, update_config::Order,
        update_status::State as UpdateState, ServiceSpec, TaskState, UpdateConfig,
    };

    use crate::harness::{id, image, running, service, Harness, Script};

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
        roll_to(&harness, &web, "web:v2", true).await;
        update_reaches(&harness, &web, UpdateState::RollbackCompleted).await;
        all_running(&harness, &web, "web:v1", 3).await;
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
}
