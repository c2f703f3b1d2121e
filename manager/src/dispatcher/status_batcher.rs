//! Task status reports from all nodes, gathered into few store writes: one
//! write at a time, and the reports that arrive while it commits go in
//! the next, so a burst (50 tasks starting at once) makes few Raft entries
//! and a lone report waits for nothing.

use std::sync::Arc;

use shoal_proto::dispatcher::v1::TaskStatusUpdate;
use shoal_proto::types::v1::{Task, TaskState};
use tokio::sync::{mpsc, oneshot};

use crate::store::{State, Store, StoreError, Tx};

struct Submission {
    node_id: String,
    updates: Vec<TaskStatusUpdate>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Submission>,
}

impl Handle {
    pub async fn submit(
        &self,
        node_id: String,
        updates: Vec<TaskStatusUpdate>,
    ) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Submission {
                node_id,
                updates,
                done,
            })
            .await
            .map_err(|_| StoreError::Unavailable("the dispatcher is shutting down".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the dispatcher is shutting down".into()))?
    }
}

pub fn spawn(store: Arc<Store>) -> Handle {
    let (tx, mut rx) = mpsc::channel::<Submission>(1024);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Reports that came while the last batch was being written go
            // in this one; a lone report is written at once.
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let result = store
                .update(|state, tx| {
                    for s in &batch {
                        apply(state, tx, &s.node_id, &s.updates);
                    }
                    Ok(())
                })
                .await;
            for s in batch {
                let _ = s.done.send(result.clone());
            }
        }
    });
    Handle { tx }
}

/// Observed state only moves forward, and a node reports only its tasks.
/// A report of the same state with other details (a health change: a
/// running task found unhealthy) is taken; an identical one is not written.
fn apply(state: &State, tx: &mut Tx, node_id: &str, updates: &[TaskStatusUpdate]) {
    for update in updates {
        let Some(status) = &update.status else {
            continue;
        };
        let Some(task) = state.tasks.get(&update.task_id) else {
            continue;
        };
        if task.node_id != node_id {
            tracing::warn!(
                "node {node_id} reported task {} of node {}; ignored",
                update.task_id,
                task.node_id
            );
            continue;
        }
        let current = task.status.as_ref().map(|s| s.state).unwrap_or(0);
        if status.state < current
            || (status.state == current && task.status.as_ref() == Some(status))
        {
            continue;
        }
        let mut task = Task::clone(task);
        if status.state == TaskState::Running as i32 && task.running_since == 0 {
            // The updater's monitor window counts from here.
            task.running_since = if status.timestamp > 0 {
                status.timestamp
            } else {
                tx.now()
            };
        }
        task.status = Some(status.clone());
        tx.put(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{HealthState, Meta, Task, TaskState, TaskStatus};

    fn status(state: TaskState, health: HealthState) -> TaskStatus {
        TaskStatus {
            state: state as i32,
            timestamp: 1000,
            health: health as i32,
            ..TaskStatus::default()
        }
    }

    async fn reported(store: &Store, status: TaskStatus) -> TaskStatus {
        let updates = [TaskStatusUpdate {
            task_id: "t1".into(),
            status: Some(status),
        }];
        store
            .update(|state, tx| {
                apply(state, tx, "n1", &updates);
                Ok(())
            })
            .await
            .unwrap();
        store.view(|s| s.tasks["t1"].status.clone().unwrap_or_default())
    }

    #[tokio::test]
    async fn health_changes_are_taken_and_state_never_goes_back() {
        let store = Store::in_memory();
        let task = Task {
            meta: Some(Meta {
                id: "t1".into(),
                ..Meta::default()
            }),
            node_id: "n1".into(),
            status: Some(status(TaskState::Starting, HealthState::Starting)),
            ..Task::default()
        };
        store
            .update(|_, tx| {
                tx.put(task);
                Ok(())
            })
            .await
            .unwrap();
        let now = reported(&store, status(TaskState::Running, HealthState::Healthy)).await;
        assert_eq!(now.health(), HealthState::Healthy);
        // Same state, new health: taken.
        let mut unhealthy = status(TaskState::Running, HealthState::Unhealthy);
        unhealthy.health_output = "no /tmp/ok".into();
        let now = reported(&store, unhealthy).await;
        assert_eq!(now.health(), HealthState::Unhealthy);
        assert_eq!(now.health_output, "no /tmp/ok");
        // An older state is not, whatever its health says.
        let now = reported(&store, status(TaskState::Starting, HealthState::Healthy)).await;
        assert_eq!(now.state(), TaskState::Running);
        assert_eq!(now.health(), HealthState::Unhealthy);
    }
}
