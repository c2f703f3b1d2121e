//! A node's assignment stream: every task placed on the node that still
//! needs the agent (meant to run, or not yet down), first as a complete set,
//! then as increments pushed at each relevant commit.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::v1::{
    assignments::Kind as AssignmentKind, Assignments, NodeTrust, SessionMessage,
};
use shoal_proto::types::v1::{Config, Secret, Task, TaskSpec, TaskState};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::store::{Change, Event, Object, State, Store};

/// Whether the node's agent must hear of the task.
pub(crate) fn needs_agent(task: &Task, node_id: &str) -> bool {
    task.node_id == node_id
        && task.observed_state() >= TaskState::Assigned
        && (task.desired_state <= TaskState::Running as i32 || !task.observed_state().is_terminal())
}

/// Whether the agent needs to hear of a change: not when only the status
/// moved, since the agent itself reported it.
fn changed_for_agent(old: &Task, new: &Task) -> bool {
    old.desired_state != new.desired_state
        || old.spec != new.spec
        || old.networks != new.networks
        || old.endpoint_ports != new.endpoint_ports
}

/// Where the managers are, so an agent can fail over when its manager dies.
pub(super) fn manager_addrs(state: &State) -> Vec<String> {
    let mut addrs: Vec<String> = state
        .nodes
        .values()
        .filter_map(|n| n.manager_status.as_ref())
        .map(|m| m.addr.clone())
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort();
    addrs
}

/// The trust nodes must have: an agent that holds another renews.
fn node_trust(state: &State) -> Option<NodeTrust> {
    crate::ca::CaState::of(state).ok().map(|ca| ca.node_trust())
}

/// The secrets and configs the node's live tasks use: exactly what it may
/// know.
#[derive(Clone, PartialEq)]
struct TaskFiles {
    secrets: Vec<Secret>,
    configs: Vec<Config>,
}

fn files_for(state: &State, tasks: &Sent) -> TaskFiles {
    let live: Vec<&TaskSpec> = tasks
        .values()
        .filter(|t| {
            t.desired_state <= TaskState::Running as i32 && !t.observed_state().is_terminal()
        })
        .filter_map(|t| t.spec.as_ref())
        .collect();
    let secret_ids: BTreeSet<&str> = live
        .iter()
        .flat_map(|s| s.secrets.iter().map(|r| r.secret_id.as_str()))
        .collect();
    let config_ids: BTreeSet<&str> = live
        .iter()
        .flat_map(|s| s.configs.iter().map(|r| r.config_id.as_str()))
        .collect();
    TaskFiles {
        secrets: secret_ids
            .into_iter()
            .filter_map(|id| state.secrets.get(id).cloned())
            .collect(),
        configs: config_ids
            .into_iter()
            .filter_map(|id| state.configs.get(id).cloned())
            .collect(),
    }
}

/// What woke a session: the ids of its node's tasks that changed (`None`:
/// it lagged behind the commits, so all of them), and whether anything
/// else that concerns it may have (managers, the root CA, its node, secrets,
/// configs).
struct Wake {
    tasks: Option<HashSet<String>>,
    others: bool,
}

/// Waits for commits that concern the node and gathers those already
/// committed after it, so a burst of commits makes one message. `None` when
/// the store is gone.
async fn next_wake(events: &mut Receiver<Arc<Event>>, node_id: &str) -> Option<Wake> {
    let mut wake = Wake {
        tasks: Some(HashSet::new()),
        others: false,
    };
    let read = |event: Result<Arc<Event>, RecvError>, wake: &mut Wake| -> Option<()> {
        match event {
            Ok(event) => {
                if let (Some(tasks), Some(ids)) =
                    (wake.tasks.as_mut(), event.tasks_by_node.get(node_id))
                {
                    tasks.extend(ids.iter().cloned());
                }
                wake.others |=
                    !event.only_tasks && event.changes.iter().any(|c| concerns_agent(c, node_id));
            }
            Err(RecvError::Lagged(_)) => {
                wake.tasks = None;
                wake.others = true;
            }
            Err(RecvError::Closed) => return None,
        }
        Some(())
    };
    let woken = |wake: &Wake| wake.others || wake.tasks.as_ref().is_none_or(|t| !t.is_empty());
    while !woken(&wake) {
        read(events.recv().await, &mut wake)?;
    }
    // What is already committed joins this message; no timer, which would
    // delay every task's assignment by its length. While the message is
    // sent, later commits queue for the next.
    loop {
        match events.try_recv() {
            Ok(event) => read(Ok(event), &mut wake)?,
            Err(TryRecvError::Lagged(n)) => read(Err(RecvError::Lagged(n)), &mut wake)?,
            Err(TryRecvError::Empty) => return Some(wake),
            Err(TryRecvError::Closed) => return None,
        }
    }
}

/// A change other than a task's that an agent must hear of: managers
/// joining or leaving (agents fail over), the root CA (a rotation starts or
/// ends), its own node (its role), secrets.
fn concerns_agent(change: &Change, node_id: &str) -> bool {
    match change.object() {
        Object::Secret(_) | Object::Config(_) | Object::Cluster(_) => true,
        Object::Node(n) => {
            n.meta.as_ref().is_some_and(|m| m.id == node_id) || n.manager_status.is_some()
        }
        _ => false,
    }
}

/// The tasks the agent has heard of, as they were sent (shared with the
/// store, not copied).
type Sent = HashMap<String, Arc<Task>>;

/// [`increment`] when only the tasks `ids` changed: the others are the
/// ones sent.
fn increment_of(
    state: &State,
    node_id: &str,
    mut sent: Sent,
    ids: &HashSet<String>,
) -> (Sent, Vec<Task>, Vec<String>) {
    let mut updated = Vec::new();
    let mut removed = Vec::new();
    for id in ids {
        match state.tasks.get(id).filter(|t| needs_agent(t, node_id)) {
            Some(task) => {
                note(sent.get(id).map(|t| &**t), task, &mut updated);
                sent.insert(id.clone(), Arc::clone(task));
            }
            None => {
                if sent.remove(id).is_some() {
                    removed.push(id.clone());
                }
            }
        }
    }
    (sent, updated, removed)
}

/// Adds `task` to what the agent hears when it is new to it or changed
/// for it since `sent`.
fn note(sent: Option<&Task>, task: &Task, updated: &mut Vec<Task>) {
    if sent.is_none_or(|old| changed_for_agent(old, task)) {
        updated.push(Task::clone(task));
    }
}

/// What the agent must hear since `sent`: the node's tasks now, those
/// new or changed for the agent, and the ids of those it no longer has.
fn increment(state: &State, node_id: &str, mut sent: Sent) -> (Sent, Vec<Task>, Vec<String>) {
    let version = |t: &Task| t.meta.as_ref().map_or(0, |m| m.version);
    let mut now = HashMap::with_capacity(sent.len());
    let mut updated = Vec::new();
    for task in state
        .shared_tasks_of_node(node_id)
        .filter(|t| needs_agent(t, node_id))
    {
        let id = task.meta.as_ref().map_or("", |m| m.id.as_str());
        let old = sent.remove(id);
        if old.as_ref().is_none_or(|old| version(old) != version(task)) {
            note(old.as_deref(), task, &mut updated);
        }
        now.insert(id.to_string(), Arc::clone(task));
    }
    (now, updated, sent.into_keys().collect())
}

/// Every task of the node the store holds, whatever its state: their logs
/// stay on the node.
fn kept_tasks(state: &State, node_id: &str) -> Vec<String> {
    state
        .shared_tasks_of_node(node_id)
        .filter_map(|t| t.meta.as_ref().map(|m| m.id.clone()))
        .collect()
}

pub async fn stream(
    store: Arc<Store>,
    node_id: String,
    session_id: String,
    period: Duration,
    tx: Sender<Result<SessionMessage, Status>>,
) {
    let mut events = store.subscribe();
    let (mut sent, _, _) = store.view(|s| increment(s, &node_id, HashMap::new()));
    let mut files = store.view(|s| files_for(s, &sent));
    let mut managers = store.view(manager_addrs);
    let mut trust = store.view(node_trust);
    let role_of = |s: &State| {
        s.nodes
            .get(&node_id)
            .map(|n| crate::rolemanager::issuable_role(n) as i32)
    };
    let mut node_role = store.view(role_of);
    let removals_of = |s: &State| {
        s.nodes
            .get(&node_id)
            .map(|n| n.volume_removals.clone())
            .unwrap_or_default()
    };
    let mut removals = store.view(removals_of);
    let first = SessionMessage {
        session_id: session_id.clone(),
        heartbeat_period_ms: period.as_millis() as u32,
        assignments: Some(Assignments {
            kind: AssignmentKind::Complete as i32,
            updated: sent.values().map(|t| Task::clone(t)).collect(),
            removed: Vec::new(),
            secrets: files.secrets.clone(),
            configs: files.configs.clone(),
        }),
        managers: managers.clone(),
        node_role,
        trust: trust.clone(),
        volume_removals: removals.clone(),
        log_subscriptions: Vec::new(),
        kept_tasks: store.view(|s| kept_tasks(s, &node_id)),
        kept_tasks_complete: true,
        deleted_tasks: Vec::new(),
    };
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    loop {
        let wake = tokio::select! {
            wake = next_wake(&mut events, &node_id) => wake,
            _ = tx.closed() => return,
        };
        let Some(wake) = wake else { return };
        if !store.view(|s| s.nodes.contains_key(&node_id)) {
            let refused =
                Status::permission_denied(format!("node {node_id} was removed from the cluster"));
            let _ = tx.send(Err(refused)).await;
            return;
        }
        // Tasks of the node gone from the store (reaped, or their service
        // removed); after a gap, the whole set instead.
        let (kept, deleted) = store.view(|s| match &wake.tasks {
            Some(ids) => (
                None,
                ids.iter()
                    .filter(|id| !s.tasks.contains_key(*id))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            None => (Some(kept_tasks(s, &node_id)), Vec::new()),
        });
        let (now, updated, removed) = store.view(|s| match &wake.tasks {
            Some(ids) => increment_of(s, &node_id, std::mem::take(&mut sent), ids),
            None => increment(s, &node_id, std::mem::take(&mut sent)),
        });
        let now_files = store.view(|s| files_for(s, &now));
        sent = now;
        let (now_managers, now_trust, now_role, now_removals) = if wake.others {
            store.view(|s| (manager_addrs(s), node_trust(s), role_of(s), removals_of(s)))
        } else {
            (managers.clone(), trust.clone(), node_role, removals.clone())
        };
        if updated.is_empty()
            && removed.is_empty()
            && kept.is_none()
            && deleted.is_empty()
            && now_managers == managers
            && now_files == files
            && now_trust == trust
            && now_role == node_role
            && now_removals == removals
        {
            continue;
        }
        removals = now_removals;
        node_role = now_role;
        managers = now_managers;
        files = now_files;
        trust = now_trust;
        let message = SessionMessage {
            session_id: session_id.clone(),
            heartbeat_period_ms: period.as_millis() as u32,
            assignments: Some(Assignments {
                kind: AssignmentKind::Incremental as i32,
                updated,
                removed,
                secrets: files.secrets.clone(),
                configs: files.configs.clone(),
            }),
            managers: managers.clone(),
            node_role,
            trust: trust.clone(),
            volume_removals: removals.clone(),
            log_subscriptions: Vec::new(),
            kept_tasks_complete: kept.is_some(),
            kept_tasks: kept.unwrap_or_default(),
            deleted_tasks: deleted,
        };
        if tx.send(Ok(message)).await.is_err() {
            return;
        }
    }
}
