//! A simulated node: a real join (token, CSR, certificate from the
//! cluster's CA) and a real mTLS dispatcher session, but no containers.
//! Every task assigned to it is reported running at once, in one status
//! report per assignment message (as the agent batches), and reported shut
//! down when the managers stop it. Heartbeats keep it ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use shoal_identity::NodeIdentity;
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::{
    HeartbeatRequest, SessionRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
};
use shoal_proto::types::v1::{ContainerStatus, NodeDescription, TaskState, TaskStatus};
use tonic::transport::Channel;

/// What every simulated node adds to, read by the benchmark.
#[derive(Default)]
pub struct Counters {
    /// Tasks meant to run that reached a node (first sight of each).
    pub assigned: AtomicU64,
    /// Tasks reported running (the report acknowledged by the manager).
    pub running: AtomicU64,
    /// Reports the manager refused.
    pub refused: AtomicU64,
}

/// Each simulated node's capacity, as its description reports it.
const NANO_CPUS: i64 = 64_000_000_000;
const MEMORY_BYTES: i64 = 256 << 30;

pub struct SimNode {
    hostname: String,
    /// A made-up data-path address, unique per node: nothing is ever sent
    /// to it (the simulated tasks join no network a real node builds).
    addr: String,
    identity: NodeIdentity,
}

impl SimNode {
    /// Joins the cluster at `manager` with a worker `token`.
    pub async fn join(manager: &str, token: &str, index: usize) -> Result<SimNode> {
        let hostname = format!("sim-{index:05}");
        let addr = format!("10.250.{}.{}", index / 250, index % 250 + 1);
        let identity =
            shoal_identity::join::join(manager, token, &hostname, &addr, &Default::default())
                .await
                .with_context(|| format!("join {hostname}"))?;
        Ok(SimNode {
            hostname,
            addr,
            identity,
        })
    }

    /// Holds the node's session until the process ends.
    pub async fn run(self, manager: String, counters: Arc<Counters>) -> Result<()> {
        let channel = shoal_identity::connect(&manager, &self.identity)
            .await
            .with_context(|| format!("{}: connect", self.hostname))?;
        let mut client = DispatcherClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES);
        let description = NodeDescription {
            hostname: self.hostname.clone(),
            os: "linux".into(),
            architecture: "x86_64".into(),
            nano_cpus: NANO_CPUS,
            memory_bytes: MEMORY_BYTES,
            addr: self.addr.clone(),
            ..Default::default()
        };
        let mut stream = client
            .session(SessionRequest {
                description: Some(description),
            })
            .await
            .with_context(|| format!("{}: open session", self.hostname))?
            .into_inner();
        // Reports go out from their own task: waiting for a report's answer
        // while not reading the session would let the session's unread
        // messages fill the connection's flow-control window, which the
        // answer needs too (the agent's reporter is separate for the same
        // reason).
        let (reports, pending) =
            tokio::sync::mpsc::unbounded_channel::<(Vec<TaskStatusUpdate>, u64)>();
        let mut pending = Some(pending);
        // What this node last reported of each task.
        let mut reported: HashMap<String, TaskState> = HashMap::new();
        while let Some(message) = stream
            .message()
            .await
            .with_context(|| format!("{}: session", self.hostname))?
        {
            if let Some(mut pending) = pending.take() {
                let session_id = message.session_id.clone();
                let period = Duration::from_millis(u64::from(message.heartbeat_period_ms.max(100)));
                tokio::spawn(heartbeat(client.clone(), session_id.clone(), period));
                let (mut client, counters) = (client.clone(), counters.clone());
                tokio::spawn(async move {
                    while let Some((mut updates, mut newly_running)) = pending.recv().await {
                        // Everything queued meanwhile goes in the same
                        // report; as the agent's reporter does, a refused
                        // one is sent again with whatever came since.
                        loop {
                            while let Ok((more, n)) = pending.try_recv() {
                                updates.extend(more);
                                newly_running += n;
                            }
                            let sent = client
                                .update_task_status(UpdateTaskStatusRequest {
                                    session_id: session_id.clone(),
                                    updates: updates.clone(),
                                })
                                .await;
                            if sent.is_ok() {
                                counters.running.fetch_add(newly_running, Ordering::Relaxed);
                                break;
                            }
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                });
            }
            let Some(assignments) = message.assignments else {
                continue;
            };
            let mut updates = Vec::new();
            let mut newly_running = 0;
            for task in assignments.updated {
                let id = task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
                let last = reported.get(&id).copied();
                let wanted = if task.desired_state <= TaskState::Running as i32 {
                    TaskState::Running
                } else {
                    TaskState::Shutdown
                };
                if last.is_none() && wanted == TaskState::Running {
                    counters.assigned.fetch_add(1, Ordering::Relaxed);
                    newly_running += 1;
                }
                if last.is_some_and(|l| l >= wanted) {
                    continue;
                }
                reported.insert(id.clone(), wanted);
                updates.push(TaskStatusUpdate {
                    task_id: id,
                    status: Some(status(wanted)),
                });
            }
            for id in assignments.removed {
                reported.remove(&id);
            }
            if !updates.is_empty() {
                let _ = reports.send((updates, newly_running));
            }
        }
        Ok(())
    }
}

fn status(state: TaskState) -> TaskStatus {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    TaskStatus {
        state: state as i32,
        timestamp: now,
        message: if state == TaskState::Running {
            "started".into()
        } else {
            "shutdown".into()
        },
        container: Some(ContainerStatus {
            container_id: "simulated".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn heartbeat(mut client: DispatcherClient<Channel>, session_id: String, period: Duration) {
    loop {
        tokio::time::sleep(period / 2).await;
        let beat = client
            .heartbeat(HeartbeatRequest {
                session_id: session_id.clone(),
                ..Default::default()
            })
            .await;
        if beat.is_err() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
