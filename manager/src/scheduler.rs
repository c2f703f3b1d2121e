//! The scheduler: places pending tasks on nodes. Filters (ready and active
//! nodes, constraints, host-mode port clashes), then spreads: fewest tasks
//! of the same service, then fewest tasks overall. One pass places every
//! pending task and commits the placements as one batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{Node, NodeAvailability, NodeState, PublishMode, Task, TaskState};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

pub struct Scheduler {
    store: Arc<Store>,
}

const NO_NODE: &str = "no suitable node";

pub fn node_accepts_tasks(node: &Node) -> bool {
    node.status
        .as_ref()
        .is_some_and(|s| s.state == NodeState::Ready as i32)
        && node
            .spec
            .as_ref()
            .is_none_or(|s| s.availability == NodeAvailability::Active as i32)
}

impl Component for Scheduler {
    const NAME: &'static str = "scheduler";

    fn build(env: &LeaderEnv) -> Self {
        Scheduler {
            store: env.store.clone(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        let settle = Duration::from_millis(5);
        watch::run_passes(&self.store, Self::NAME, relevant, settle, || self.pass()).await;
        Ok(())
    }
}

impl Scheduler {
    pub async fn pass(&self) -> Result<(), StoreError> {
        self.store
            .update(|state, tx| {
                schedule(state, tx);
                Ok(())
            })
            .await
    }
}

fn relevant(change: &Change) -> bool {
    match change {
        Change::Put { new, .. } if new.kind() == Kind::Task => true,
        c => c.kind() == Kind::Node,
    }
}

/// Tasks per node, overall and per service: the spread criteria.
#[derive(Default)]
struct Load {
    total: HashMap<String, usize>,
    per_service: HashMap<(String, String), usize>,
}

impl Load {
    fn add(&mut self, node: &str, service: &str) {
        *self.total.entry(node.to_string()).or_default() += 1;
        *self
            .per_service
            .entry((node.to_string(), service.to_string()))
            .or_default() += 1;
    }

    fn key(&self, node: &str, service: &str) -> (usize, usize) {
        (
            self.per_service
                .get(&(node.to_string(), service.to_string()))
                .copied()
                .unwrap_or(0),
            self.total.get(node).copied().unwrap_or(0),
        )
    }
}

fn schedule(state: &State, tx: &mut Tx) {
    let mut load = Load::default();
    for task in state.tasks.values() {
        if !task.node_id.is_empty() && task.desired_state <= TaskState::Running as i32 {
            load.add(&task.node_id, &task.service_id);
        }
    }
    let mut pending: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.observed_state() == TaskState::Pending)
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .collect();
    pending.sort_by_key(|t| (t.service_id.clone(), t.slot));
    let nodes: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| node_accepts_tasks(n))
        .collect();
    for task in pending {
        let chosen = if !task.node_id.is_empty() {
            // Global tasks come with their node; it must still be eligible.
            nodes
                .iter()
                .find(|n| node_id(n) == task.node_id && fits(state, task, n))
                .copied()
        } else {
            nodes
                .iter()
                .filter(|n| fits(state, task, n))
                .min_by_key(|n| {
                    (
                        load.key(node_id(n), &task.service_id),
                        node_id(n).to_string(),
                    )
                })
                .copied()
        };
        let mut task = task.clone();
        let status = task.status.get_or_insert_with(Default::default);
        match chosen {
            Some(node) => {
                let id = node_id(node).to_string();
                load.add(&id, &task.service_id);
                task.node_id = id;
                status.state = TaskState::Assigned as i32;
                status.timestamp = tx.now();
                status.message = "scheduler assigned task to node".into();
                status.err.clear();
                tx.put(task);
            }
            None if status.err != NO_NODE => {
                status.err = NO_NODE.into();
                status.message = "pending task scheduling".into();
                tx.put(task);
            }
            None => {}
        }
    }
}

fn node_id(node: &Node) -> &str {
    node.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

fn fits(state: &State, task: &Task, node: &Node) -> bool {
    let constraints = task
        .spec
        .as_ref()
        .map(|s| s.constraints.as_slice())
        .unwrap_or(&[]);
    constraints.iter().all(|c| constraint_holds(c, node)) && host_ports_free(state, task, node)
}

/// Swarm's constraint syntax: `node.id|node.hostname|node.role|node.labels.K`
/// with `==` or `!=`. An expression shoal cannot read never matches, so a
/// typo keeps a task pending instead of placing it anywhere.
fn constraint_holds(expr: &str, node: &Node) -> bool {
    let (key, want, equal) = match expr.split_once("!=") {
        Some((k, v)) => (k.trim(), v.trim(), false),
        None => match expr.split_once("==") {
            Some((k, v)) => (k.trim(), v.trim(), true),
            None => return false,
        },
    };
    let spec = node.spec.clone().unwrap_or_default();
    let actual = match key {
        "node.id" => Some(node_id(node).to_string()),
        "node.hostname" => node.description.as_ref().map(|d| d.hostname.clone()),
        "node.role" => Some(
            if node.role == shoal_proto::types::v1::NodeRole::Manager as i32 {
                "manager"
            } else {
                "worker"
            }
            .to_string(),
        ),
        k => match k.strip_prefix("node.labels.") {
            Some(label) => spec.labels.get(label).cloned(),
            None => return false,
        },
    };
    (actual.as_deref() == Some(want)) == equal
}

fn host_ports_free(state: &State, task: &Task, node: &Node) -> bool {
    let host_ports: Vec<(i32, u32)> = task
        .endpoint_ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
        .collect();
    if host_ports.is_empty() {
        return true;
    }
    !state.tasks.values().any(|other| {
        other.node_id == node_id(node)
            && other.desired_state <= TaskState::Running as i32
            && other.endpoint_ports.iter().any(|p| {
                p.publish_mode == PublishMode::Host as i32
                    && host_ports.contains(&(p.protocol, p.published_port))
            })
    })
}
