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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shoal_proto::types::v1::{NodeAvailability, NodeState, TaskState};

    use crate::harness::{running, service, Harness};

    fn per_node(harness: &Harness, service: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for task in harness.store.view(|s| running(s, service)) {
            *counts.entry(task.node_id).or_default() += 1;
        }
        counts
    }

    async fn running_n(harness: &Harness, service: &str, n: usize) {
        harness
            .until(&format!("{n} running"), |s| {
                (running(s, service).len() == n).then_some(())
            })
            .await;
    }

    #[tokio::test]
    async fn tasks_spread_over_nodes_by_service_then_by_total_load() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let c = harness.add_node("c").await;
        let web = harness.create_service(service("web", "web", 6)).await;
        running_n(&harness, &web, 6).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a.clone(), 2), (b.clone(), 2), (c.clone(), 2)])
        );

        // A new node has no tasks at all: the next service's tasks fill it
        // first, then spread.
        let d = harness.add_node("d").await;
        let api = harness.create_service(service("api", "api", 5)).await;
        running_n(&harness, &api, 5).await;
        let api_nodes = per_node(&harness, &api);
        assert_eq!(api_nodes[&d], 2, "{api_nodes:?}");
        assert_eq!(api_nodes.values().sum::<usize>(), 5);
        assert!(api_nodes.values().all(|n| *n >= 1), "{api_nodes:?}");
    }

    #[tokio::test]
    async fn only_ready_active_nodes_that_meet_the_constraints_get_tasks() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let drained = harness.add_node("drained").await;
        let down = harness.add_node("down").await;
        let labelled = harness.add_node("labelled").await;
        harness
            .update_node(&drained, |n| {
                n.spec.get_or_insert_with(Default::default).availability =
                    NodeAvailability::Drain as i32
            })
            .await;
        harness
            .update_node(&down, |n| {
                n.status.get_or_insert_with(Default::default).state = NodeState::Down as i32
            })
            .await;
        harness
            .update_node(&labelled, |n| {
                let spec = n.spec.get_or_insert_with(Default::default);
                spec.labels.insert("disk".into(), "ssd".into());
            })
            .await;
        let web = harness.create_service(service("web", "web", 4)).await;
        running_n(&harness, &web, 4).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a.clone(), 2), (labelled.clone(), 2)])
        );

        let mut db = service("db", "db", 2);
        db.task.as_mut().unwrap().constraints = vec!["node.labels.disk == ssd".into()];
        let db = harness.create_service(db).await;
        running_n(&harness, &db, 2).await;
        assert_eq!(per_node(&harness, &db), BTreeMap::from([(labelled, 2)]));

        // Nothing fits: the task waits with Swarm's reason, and is placed
        // as soon as a node fits.
        let mut pinned = service("pinned", "pinned", 1);
        pinned.task.as_mut().unwrap().constraints = vec!["node.hostname == drained".into()];
        let pinned = harness.create_service(pinned).await;
        harness.settle().await;
        let task = harness.tasks(&pinned).pop().unwrap();
        assert_eq!(task.observed_state(), TaskState::Pending);
        assert_eq!(task.status.unwrap().err, "no suitable node");
        harness
            .update_node(&drained, |n| {
                n.spec.get_or_insert_with(Default::default).availability =
                    NodeAvailability::Active as i32
            })
            .await;
        running_n(&harness, &pinned, 1).await;
        assert_eq!(per_node(&harness, &pinned), BTreeMap::from([(drained, 1)]));
    }
}
