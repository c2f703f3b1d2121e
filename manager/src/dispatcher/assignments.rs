//! A node's assignment stream: every task placed on the node that still
//! needs the agent (meant to run, or not yet down), first as a complete set,
//! then as increments pushed at each relevant commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::dispatcher::v1::{
    assignments::Kind as AssignmentKind, Assignments, NodeTrust, SessionMessage,
};
use shoal_proto::types::v1::{Secret, Task, TaskState};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::store::{watch, Change, Object, State, Store};

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

/// The secrets the node's live tasks use: exactly what it may know.
fn secrets_for(state: &State, tasks: &HashMap<String, Task>) -> Vec<Secret> {
    let mut ids: Vec<&str> = tasks
        .values()
        .filter(|t| {
            t.desired_state <= TaskState::Running as i32 && !t.observed_state().is_terminal()
        })
        .filter_map(|t| t.spec.as_ref())
        .flat_map(|s| s.secrets.iter().map(|r| r.secret_id.as_str()))
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| state.secrets.get(id).cloned())
        .collect()
}

fn snapshot(state: &State, node_id: &str) -> HashMap<String, Task> {
    state
        .tasks_of_node(node_id)
        .filter(|t| needs_agent(t, node_id))
        .map(|t| {
            (
                t.meta.as_ref().map_or(String::new(), |m| m.id.clone()),
                t.clone(),
            )
        })
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
    let mut sent = store.view(|s| snapshot(s, &node_id));
    let mut secrets = store.view(|s| secrets_for(s, &sent));
    let mut managers = store.view(manager_addrs);
    let mut trust = store.view(node_trust);
    let role_of = |s: &State| {
        s.nodes
            .get(&node_id)
            .map(|n| crate::rolemanager::issuable_role(n) as i32)
    };
    let mut node_role = store.view(role_of);
    let first = SessionMessage {
        session_id: session_id.clone(),
        heartbeat_period_ms: period.as_millis() as u32,
        assignments: Some(Assignments {
            kind: AssignmentKind::Complete as i32,
            updated: sent.values().cloned().collect(),
            removed: Vec::new(),
            secrets: secrets.clone(),
        }),
        managers: managers.clone(),
        node_role,
        trust: trust.clone(),
    };
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    let concerns_node = |c: &Change| match c.object() {
        Object::Task(t) => t.node_id == node_id,
        // This node, and managers joining or leaving (agents fail over).
        Object::Secret(_) => true,
        // The root CA (a rotation starts or ends).
        Object::Cluster(_) => true,
        Object::Node(n) => {
            n.meta.as_ref().is_some_and(|m| m.id == node_id) || n.manager_status.is_some()
        }
        _ => false,
    };
    loop {
        tokio::select! {
            alive = watch::changed(&mut events, concerns_node, Duration::from_millis(2)) => {
                if !alive { return; }
            }
            _ = tx.closed() => return,
        }
        if !store.view(|s| s.nodes.contains_key(&node_id)) {
            let refused =
                Status::permission_denied(format!("node {node_id} was removed from the cluster"));
            let _ = tx.send(Err(refused)).await;
            return;
        }
        let now = store.view(|s| snapshot(s, &node_id));
        let updated: Vec<Task> = now
            .iter()
            .filter(|(id, t)| sent.get(*id).is_none_or(|old| changed_for_agent(old, t)))
            .map(|(_, t)| t.clone())
            .collect();
        let removed: Vec<String> = sent
            .keys()
            .filter(|id| !now.contains_key(*id))
            .cloned()
            .collect();
        let now_secrets = store.view(|s| secrets_for(s, &now));
        sent = now;
        let now_managers = store.view(manager_addrs);
        let now_trust = store.view(node_trust);
        let now_role = store.view(role_of);
        if updated.is_empty()
            && removed.is_empty()
            && now_managers == managers
            && now_secrets == secrets
            && now_trust == trust
            && now_role == node_role
        {
            continue;
        }
        node_role = now_role;
        managers = now_managers;
        secrets = now_secrets;
        trust = now_trust;
        let message = SessionMessage {
            session_id: session_id.clone(),
            heartbeat_period_ms: period.as_millis() as u32,
            assignments: Some(Assignments {
                kind: AssignmentKind::Incremental as i32,
                updated,
                removed,
                secrets: secrets.clone(),
            }),
            managers: managers.clone(),
            node_role,
            trust: trust.clone(),
        };
        if tx.send(Ok(message)).await.is_err() {
            return;
        }
    }
}
