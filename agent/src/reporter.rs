//! Task status reports to the dispatcher, batched: one call at a time, and
//! everything observed while it is in flight goes in the next. A report
//! that could not be sent (no session) is kept, the latest per task, until
//! it can.

use std::collections::HashMap;
use std::time::Duration;

use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::{TaskStatusUpdate, UpdateTaskStatusRequest};
use shoal_proto::types::v1::TaskStatus;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<(String, TaskStatus)>,
}

impl Reporter {
    pub fn report(&self, task_id: &str, status: TaskStatus) {
        // The receiver lives as long as the agent.
        let _ = self.tx.send((task_id.to_string(), status));
    }
}

/// The current session (client and id); `None` while disconnected.
pub type SessionSlot = watch::Receiver<Option<(DispatcherClient<Channel>, String)>>;

pub fn spawn(mut session: SessionSlot) -> Reporter {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, TaskStatus)>();
    tokio::spawn(async move {
        let mut pending: HashMap<String, TaskStatus> = HashMap::new();
        loop {
            if pending.is_empty() {
                match rx.recv().await {
                    Some((id, status)) => {
                        pending.insert(id, status);
                    }
                    None => return,
                }
            }
            // Reports made while the last call was in flight go in this
            // one; a lone report is sent at once.
            tokio::task::yield_now().await;
            while let Ok((id, status)) = rx.try_recv() {
                pending.insert(id, status);
            }
            let current = session.borrow().clone();
            let Some((mut client, session_id)) = current else {
                // Wait for a session, still collecting reports.
                tokio::select! {
                    _ = session.changed() => {}
                    Some((id, status)) = rx.recv() => { pending.insert(id, status); }
                }
                continue;
            };
            let updates: Vec<TaskStatusUpdate> = pending
                .iter()
                .map(|(id, s)| TaskStatusUpdate {
                    task_id: id.clone(),
                    status: Some(s.clone()),
                })
                .collect();
            let request = UpdateTaskStatusRequest {
                session_id,
                updates,
            };
            match client.update_task_status(request).await {
                Ok(_) => pending.clear(),
                Err(e) => {
                    tracing::warn!("reporting task status: {}", e.message());
                    tokio::select! {
                        _ = session.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    });
    Reporter { tx }
}
