//! `service logs`: the logs of a service's tasks (or of one task) from
//! every node that holds them, merged into one stream as they come. Each
//! node is asked once for its tasks ([`NodeLogSource`]); with `follow`,
//! tasks that start later are asked for as they start, so the stream goes
//! on across task replacements. A task whose node is down, has no
//! session or does not answer gets a notice instead of a hang.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shoal_proto::control::v1::{LogTask, ServiceLogsMessage};
use shoal_proto::dispatcher::v1::PublishLogsMessage;
use shoal_proto::types::v1::{LogNotice, LogOptions, NodeState, Task, TaskState};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio::task::JoinSet;
use tonic::Status;

use crate::logbroker::{LogStream, NodeLogSource};
use crate::store::{Change, Object, State, Store};

/// How long a node may take to answer a subscription before its tasks get
/// a notice (it may be partitioned from the managers, or hung).
pub const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reader named.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Service(String),
    Task(String),
}

impl Target {
    /// A service (name, id, id prefix), else a task (id, id prefix):
    /// docker's order.
    pub fn find(state: &State, reference: &str) -> Result<Target, String> {
        if let Ok(service) = state.find_service(reference) {
            return Ok(Target::Service(id_of(service.meta.as_ref())));
        }
        match state.find_task(reference) {
            Ok(task) => Ok(Target::Task(id_of(task.meta.as_ref()))),
            Err(_) => Err(format!("no such task or service: {reference}")),
        }
    }

    fn covers(&self, task: &Task) -> bool {
        match self {
            Target::Service(id) => &task.service_id == id,
            Target::Task(id) => task.meta.as_ref().is_some_and(|m| &m.id == id),
        }
    }
}

fn id_of(meta: Option<&shoal_proto::types::v1::Meta>) -> String {
    meta.map(|m| m.id.clone()).unwrap_or_default()
}

/// A task has logs on its node once its container started there; a task
/// that ended before (a failed pull) has none, which its node says.
fn started(task: &Task) -> bool {
    !task.node_id.is_empty()
        && (task.observed_state() >= TaskState::Starting || task.observed_state().is_terminal())
}

enum NodeEvent {
    Message(PublishLogsMessage),
    /// The node's answer ended; `None` once it sent everything.
    Ended {
        tasks: Vec<String>,
        broken: Option<String>,
    },
}

/// Streams the target's logs into `out` until everything was sent (without
/// `follow`) or the reader goes.
pub async fn stream(
    store: Arc<Store>,
    source: Arc<dyn NodeLogSource>,
    target: Target,
    options: LogOptions,
    answer_timeout: Duration,
    out: mpsc::Sender<Result<ServiceLogsMessage, Status>>,
) {
    let mut events = store.subscribe();
    let mut reader = Reader {
        store: store.clone(),
        source,
        target,
        options,
        answer_timeout,
        out,
        asked: HashSet::new(),
        described: HashSet::new(),
        nodes: JoinSet::new(),
    };
    let (tx, mut rx) = mpsc::channel::<NodeEvent>(64);
    let first = store.view(|s| reader.newly_started(s));
    if first.is_empty() && !reader.options.follow {
        return;
    }
    reader.ask(first, &tx).await;
    loop {
        tokio::select! {
            event = rx.recv() => {
                // `tx` is held here: the channel never closes.
                let Some(event) = event else { return };
                if !reader.forward(event).await {
                    return;
                }
            }
            event = events.recv(), if reader.options.follow => {
                let started = match event {
                    Ok(event) => store.view(|s| reader.started_in(s, &event.changes)),
                    Err(RecvError::Lagged(_)) => store.view(|s| reader.newly_started(s)),
                    Err(RecvError::Closed) => return,
                };
                reader.ask(started, &tx).await;
            }
            _ = reader.out.closed() => return,
            // A node answered in full; once all have, the logs end.
            answered = reader.nodes.join_next(), if !reader.options.follow => {
                if answered.is_some() {
                    continue;
                }
                // What the last node sent may still be queued.
                while let Ok(event) = rx.try_recv() {
                    if !reader.forward(event).await {
                        return;
                    }
                }
                return;
            }
        }
    }
}

struct Reader {
    store: Arc<Store>,
    source: Arc<dyn NodeLogSource>,
    target: Target,
    options: LogOptions,
    answer_timeout: Duration,
    out: mpsc::Sender<Result<ServiceLogsMessage, Status>>,
    /// Tasks asked for (each once).
    asked: HashSet<String>,
    /// Tasks the reader has been told about (`LogTask`).
    described: HashSet<String>,
    /// One per node answer; dropped (aborted) with the reader.
    nodes: JoinSet<()>,
}

impl Reader {
    /// The target's started tasks not asked for yet, by node.
    fn newly_started(&self, state: &State) -> BTreeMap<String, Vec<Arc<Task>>> {
        let ids: Vec<String> = match &self.target {
            Target::Service(id) => state
                .tasks_of_service(id)
                .map(|t| id_of(t.meta.as_ref()))
                .collect(),
            Target::Task(id) => vec![id.clone()],
        };
        let mut by_node: BTreeMap<String, Vec<Arc<Task>>> = BTreeMap::new();
        for id in ids {
            let Some(task) = state.tasks.get(&id) else {
                continue;
            };
            if started(task) && !self.asked.contains(&id) {
                by_node
                    .entry(task.node_id.clone())
                    .or_default()
                    .push(task.clone());
            }
        }
        by_node
    }

    /// The target's tasks that `changes` started.
    fn started_in(&self, state: &State, changes: &[Change]) -> BTreeMap<String, Vec<Arc<Task>>> {
        let mut by_node: BTreeMap<String, Vec<Arc<Task>>> = BTreeMap::new();
        for change in changes {
            let Change::Put {
                new: Object::Task(task),
                ..
            } = change
            else {
                continue;
            };
            let id = id_of(task.meta.as_ref());
            if self.target.covers(task) && started(task) && !self.asked.contains(&id) {
                // The newest version, in case a later change of the same
                // batch moved it on.
                let task = state
                    .tasks
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| task.clone());
                by_node.entry(task.node_id.clone()).or_default().push(task);
            }
        }
        by_node
    }

    /// Asks each node for its tasks; a node that cannot answer gets its
    /// notices at once.
    async fn ask(
        &mut self,
        by_node: BTreeMap<String, Vec<Arc<Task>>>,
        tx: &mpsc::Sender<NodeEvent>,
    ) {
        for (node_id, tasks) in by_node {
            let (keeps_none, tasks): (Vec<Arc<Task>>, Vec<Arc<Task>>) =
                tasks.into_iter().partition(|t| keeps_no_logs(t));
            if !keeps_none.is_empty() {
                let ids: Vec<String> = keeps_none.iter().map(|t| id_of(t.meta.as_ref())).collect();
                self.asked.extend(ids.iter().cloned());
                let describe = self.describe(&keeps_none);
                let why = "the task's logging driver is none: it keeps no logs";
                self.send(describe, Vec::new(), notices(&ids, why)).await;
            }
            if tasks.is_empty() {
                continue;
            }
            let ids: Vec<String> = tasks.iter().map(|t| id_of(t.meta.as_ref())).collect();
            self.asked.extend(ids.iter().cloned());
            let describe = self.describe(&tasks);
            let down = self.store.view(|s| {
                let node = s.nodes.get(&node_id)?;
                let state = node.status.as_ref().map(|st| st.state());
                (state != Some(NodeState::Ready)).then(|| hostname_of(s, &node_id))
            });
            if let Some(hostname) = down {
                let notices = notices(
                    &ids,
                    &format!("node {hostname} is down: its logs cannot be read now"),
                );
                self.send(describe, Vec::new(), notices).await;
                continue;
            }
            if !describe.is_empty() {
                self.send(describe, Vec::new(), Vec::new()).await;
            }
            let source = self.source.clone();
            let options = self.options;
            let timeout = self.answer_timeout;
            let tx = tx.clone();
            let hostname = self.store.view(|s| hostname_of(s, &node_id));
            self.nodes.spawn(async move {
                match source.open(&node_id, ids.clone(), options).await {
                    Ok(stream) => relay(stream, ids, &hostname, timeout, tx).await,
                    Err(e) => {
                        let _ = tx
                            .send(NodeEvent::Ended {
                                tasks: ids,
                                broken: Some(format!(
                                    "node {hostname}: {e}: its logs cannot be read now"
                                )),
                            })
                            .await;
                    }
                }
            });
        }
    }

    /// Passes a node's message on; false once the reader has gone.
    async fn forward(&mut self, event: NodeEvent) -> bool {
        match event {
            NodeEvent::Message(message) => {
                let wants_missing = matches!(self.target, Target::Task(_));
                let notices: Vec<LogNotice> = message
                    .notices
                    .into_iter()
                    .filter(|n| wants_missing || !n.no_logs)
                    .collect();
                if message.records.is_empty() && notices.is_empty() {
                    return !self.out.is_closed();
                }
                self.send(Vec::new(), message.records, notices).await
            }
            NodeEvent::Ended { tasks, broken } => match broken {
                Some(why) => {
                    self.send(Vec::new(), Vec::new(), notices(&tasks, &why))
                        .await
                }
                None => !self.out.is_closed(),
            },
        }
    }

    /// The `LogTask`s of `tasks` the reader has not had yet.
    fn describe(&mut self, tasks: &[Arc<Task>]) -> Vec<LogTask> {
        let fresh: Vec<&Arc<Task>> = tasks
            .iter()
            .filter(|t| self.described.insert(id_of(t.meta.as_ref())))
            .collect();
        self.store.view(|s| {
            fresh
                .into_iter()
                .map(|t| LogTask {
                    task_id: id_of(t.meta.as_ref()),
                    service_id: t.service_id.clone(),
                    service_name: t.service_name.clone(),
                    slot: t.slot,
                    node_id: t.node_id.clone(),
                    node_hostname: hostname_of(s, &t.node_id),
                })
                .collect()
        })
    }

    async fn send(
        &self,
        tasks: Vec<LogTask>,
        records: Vec<shoal_proto::types::v1::LogRecord>,
        notices: Vec<LogNotice>,
    ) -> bool {
        let message = ServiceLogsMessage {
            tasks,
            records,
            notices,
        };
        self.out.send(Ok(message)).await.is_ok()
    }
}

/// A node's answer, message by message, until it ends; a node that does
/// not answer in time, or whose answer breaks off, gets notices.
async fn relay(
    mut stream: LogStream,
    tasks: Vec<String>,
    hostname: &str,
    timeout: Duration,
    tx: mpsc::Sender<NodeEvent>,
) {
    // The node's first message (its publisher opening) comes at once.
    let mut next = match tokio::time::timeout(timeout, stream.next()).await {
        Ok(first) => first,
        Err(_) => Some(Err(Status::deadline_exceeded(format!(
            "did not answer within {timeout:?}"
        )))),
    };
    let broken = loop {
        match next {
            Some(Ok(message)) => {
                let done = message.done;
                if tx.send(NodeEvent::Message(message)).await.is_err() {
                    return;
                }
                if done {
                    break None;
                }
            }
            Some(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
                break Some(format!(
                    "node {hostname} {}: its logs cannot be read now",
                    status.message()
                ))
            }
            Some(Err(status)) => {
                break Some(format!(
                    "node {hostname}: the logs broke off: {}",
                    status.message()
                ))
            }
            None => {
                break Some(format!(
                    "node {hostname}: the logs broke off (its session ended)"
                ))
            }
        }
        next = stream.next().await;
    };
    let _ = tx.send(NodeEvent::Ended { tasks, broken }).await;
}

/// docker: "configured logging driver does not support reading".
fn keeps_no_logs(task: &Task) -> bool {
    task.spec
        .as_ref()
        .and_then(|s| s.log_driver.as_ref())
        .is_some_and(|d| d.name == "none")
}

fn notices(tasks: &[String], message: &str) -> Vec<LogNotice> {
    tasks
        .iter()
        .map(|task_id| LogNotice {
            task_id: task_id.clone(),
            message: message.to_string(),
            no_logs: false,
        })
        .collect()
}

fn hostname_of(state: &State, node_id: &str) -> String {
    state
        .nodes
        .get(node_id)
        .and_then(|n| n.description.as_ref())
        .map(|d| d.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| node_id.to_string())
}

#[cfg(test)]
mod tests;
