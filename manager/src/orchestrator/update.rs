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
use crate::store::{State, Tx};

pub fn advance(_state: &State, service: &Service, slots: &[Slot], tx: &mut Tx, wake: &mut Wake) {
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
        .filter(|slot| {
            slot.newest_active()
                .is_some_and(|t| t.spec_version < current && !t.observed_state().is_terminal())
        })
        .collect();
    let in_flight = slots
        .iter()
        .filter(|slot| match slot.newest_active() {
            None => slot.busy(),
            Some(t) => {
                t.spec_version == current
                    && t.observed_state() < TaskState::Running
                    && !t.observed_state().is_terminal()
            }
        })
        .count() as u64;

    if updating {
        if let Some(failed) = slots.iter().flat_map(|s| s.tasks.iter()).find(|t| {
            t.spec_version == current
                && matches!(t.observed_state(), TaskState::Failed | TaskState::Rejected)
                && t.meta
                    .as_ref()
                    .is_some_and(|m| m.created_at >= status.started_at)
        }) {
            let id = failed.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("");
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
            let due = last + config.delay_ms as i64;
            if tx.now() < due {
                wake.at_most(Duration::from_millis((due - tx.now()) as u64));
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
