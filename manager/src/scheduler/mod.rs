//! The scheduler: places pending tasks on nodes. Filters (`filters.rs`:
//! ready and active nodes, constraints (`constraint.rs`), host-mode port
//! clashes, `max_replicas_per_node`), then spreads: fewest tasks of the
//! same service, then fewest tasks overall. One pass places every pending
//! task and commits the placements as one batch. A task no node takes
//! stays pending with Swarm's explanation in its status error; every node
//! change (labels, availability, readiness) starts a pass, so it is placed
//! as soon as a node fits.

pub mod constraint;
mod filters;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{Node, Task, TaskState};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

pub use filters::{availability, node_accepts_tasks, node_ready};
use filters::{node_id, Load};

pub struct Scheduler {
    store: Arc<Store>,
}

const NO_NODE: &str = "no suitable node";

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

fn schedule(state: &State, tx: &mut Tx) {
    let mut load = Load::of(state);
    let mut pending: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.observed_state() == TaskState::Pending)
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .collect();
    pending.sort_by_key(|t| (t.service_id.clone(), t.slot));
    let mut nodes: Vec<&Node> = state.nodes.values().collect();
    nodes.sort_by_key(|n| node_id(n).to_string());
    for task in pending {
        // Global tasks come with their node: only it is considered.
        let candidates = nodes
            .iter()
            .filter(|n| task.node_id.is_empty() || node_id(n) == task.node_id);
        let mut refusals = HashMap::new();
        let mut chosen: Option<&Node> = None;
        for node in candidates {
            match load.refusal(task, node) {
                Some(filter) => *refusals.entry(filter).or_insert(0) += 1,
                None => {
                    let better = chosen.is_none_or(|c| {
                        load.key(node_id(node), &task.service_id)
                            < load.key(node_id(c), &task.service_id)
                    });
                    if better {
                        chosen = Some(node);
                    }
                }
            }
        }
        let mut task = task.clone();
        if let Some(node) = chosen {
            load.add(node_id(node), &task);
        }
        let status = task.status.get_or_insert_with(Default::default);
        match chosen {
            Some(node) => {
                task.node_id = node_id(node).to_string();
                status.state = TaskState::Assigned as i32;
                status.timestamp = tx.now();
                status.message = "scheduler assigned task to node".into();
                status.err.clear();
                tx.put(task);
            }
            None => {
                let why = filters::explain(&refusals);
                if status.err != why {
                    status.err = why;
                    status.message = "pending task scheduling".into();
                    tx.put(task);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shoal_proto::types::v1::{
        service_spec, NodeAvailability, NodeState, ReplicatedMode, ServiceSpec, TaskState,
    };

    use crate::controlapi::nodes::{self, NodeChange};
    use crate::harness::{running, service, tasks_of, Harness};

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

    /// `node update` through the control API's own write function.
    async fn node_update(harness: &Harness, node: &str, change: NodeChange) {
        harness
            .store
            .update(|state, tx| nodes::update(state, tx, node, &change).map(|_| ()))
            .await
            .expect("node update");
    }

    fn availability(a: NodeAvailability) -> NodeChange {
        NodeChange {
            availability: Some(a),
            ..Default::default()
        }
    }

    fn label(key: &str, value: &str) -> NodeChange {
        NodeChange {
            label_add: [(key.to_string(), value.to_string())].into(),
            ..Default::default()
        }
    }

    fn constrained(name: &str, replicas: u64, constraints: &[&str]) -> ServiceSpec {
        let mut spec = service(name, name, replicas);
        spec.task.as_mut().unwrap().constraints =
            constraints.iter().map(|c| c.to_string()).collect();
        spec
    }

    /// The service's one pending task's error, once it is `want`.
    async fn pending_with(harness: &Harness, service: &str, want: &str) {
        harness
            .until(&format!("a pending task saying {want:?}"), |s| {
                tasks_of(s, service)
                    .iter()
                    .any(|t| {
                        t.observed_state() == TaskState::Pending
                            && t.status.as_ref().is_some_and(|st| st.err == want)
                    })
                    .then_some(())
            })
            .await;
    }

    #[tokio::test]
    async fn only_ready_active_nodes_get_new_tasks() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let drained = harness.add_node("drained").await;
        let paused = harness.add_node("paused").await;
        let down = harness.add_node("down").await;
        node_update(&harness, &drained, availability(NodeAvailability::Drain)).await;
        node_update(&harness, &paused, availability(NodeAvailability::Pause)).await;
        harness.stop_agent(&down);
        harness
            .update_node(&down, |n| {
                n.status.get_or_insert_with(Default::default).state = NodeState::Down as i32
            })
            .await;
        let web = harness.create_service(service("web", "web", 4)).await;
        running_n(&harness, &web, 4).await;
        assert_eq!(per_node(&harness, &web), BTreeMap::from([(a.clone(), 4)]));

        node_update(&harness, &a, availability(NodeAvailability::Pause)).await;
        let api = harness.create_service(service("api", "api", 1)).await;
        pending_with(
            &harness,
            &api,
            "no suitable node (4 nodes not available for new tasks)",
        )
        .await;
        node_update(&harness, &paused, availability(NodeAvailability::Active)).await;
        running_n(&harness, &api, 1).await;
        assert_eq!(per_node(&harness, &api), BTreeMap::from([(paused, 1)]));
        assert_eq!(per_node(&harness, &web), BTreeMap::from([(a, 4)]));
    }

    #[tokio::test]
    async fn constraints_on_every_node_attribute() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let m = harness.add_manager("m", 1).await;
        node_update(&harness, &b, label("disk", "ssd")).await;
        harness
            .update_node(&a, |n| {
                n.description.as_mut().unwrap().architecture = "aarch64".into()
            })
            .await;
        let cases: &[(&[&str], &str)] = &[
            (&["node.labels.disk==ssd"], &b),
            (&["node.labels.disk == SSD"], &b),
            (&["node.labels.disk!=ssd", "node.role==worker"], &a),
            (&["node.role==manager"], &m),
            (&["node.role != manager", "node.hostname!=a"], &b),
            (&["node.hostname==a"], &a),
            (&[&format!("node.id=={m}")], &m),
            (&["node.platform.arch==aarch64"], &a),
            (
                &[
                    "node.platform.os==linux",
                    "node.platform.arch!=aarch64",
                    "node.hostname!=m",
                ],
                &b,
            ),
        ];
        for (i, (constraints, node)) in cases.iter().enumerate() {
            let svc = harness
                .create_service(constrained(&format!("s{i}"), 3, constraints))
                .await;
            running_n(&harness, &svc, 3).await;
            assert_eq!(
                per_node(&harness, &svc),
                BTreeMap::from([(node.to_string(), 3)]),
                "{constraints:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_task_no_node_fits_waits_with_the_reason_and_runs_once_a_label_is_added() {
        let harness = Harness::start().await;
        let _a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let c = harness.add_node("c").await;
        let db = harness
            .create_service(constrained("db", 1, &["node.labels.zone==b"]))
            .await;
        pending_with(
            &harness,
            &db,
            "no suitable node (scheduling constraints not satisfied on 3 nodes)",
        )
        .await;
        node_update(&harness, &b, availability(NodeAvailability::Pause)).await;
        pending_with(
            &harness,
            &db,
            "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)",
        )
        .await;
        harness.settle().await;
        assert_eq!(harness.tasks(&db).len(), 1, "still the one pending task");

        // The label makes c fit: the scheduler sees the node change.
        node_update(&harness, &c, label("zone", "b")).await;
        running_n(&harness, &db, 1).await;
        assert_eq!(per_node(&harness, &db), BTreeMap::from([(c, 1)]));
        let task = harness.tasks(&db).pop().unwrap();
        assert_eq!(task.status.unwrap().err, "");
    }

    #[tokio::test]
    async fn max_replicas_per_node_caps_each_node() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let mut spec = service("web", "web", 5);
        spec.task.as_mut().unwrap().max_replicas_per_node = 2;
        let web = harness.create_service(spec).await;
        running_n(&harness, &web, 4).await;
        pending_with(
            &harness,
            &web,
            "no suitable node (max replicas per node limit exceed)",
        )
        .await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a.clone(), 2), (b.clone(), 2)])
        );
        let c = harness.add_node("c").await;
        running_n(&harness, &web, 5).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a, 2), (b, 2), (c, 1)])
        );
    }

    #[tokio::test]
    async fn drain_moves_tasks_off_and_pause_keeps_them() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let c = harness.add_node("c").await;
        let web = harness.create_service(service("web", "web", 6)).await;
        running_n(&harness, &web, 6).await;

        // Pause: what runs on b stays; b gets none of the new tasks.
        node_update(&harness, &b, availability(NodeAvailability::Pause)).await;
        harness.settle().await;
        assert_eq!(per_node(&harness, &web)[&b], 2);
        harness
            .update_service(&web, |s| {
                s.mode = Some(service_spec::Mode::Replicated(ReplicatedMode {
                    replicas: 8,
                }))
            })
            .await;
        running_n(&harness, &web, 8).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a.clone(), 3), (b.clone(), 2), (c.clone(), 3)])
        );

        // Drain: c's tasks stop and their slots run on a (b is paused).
        node_update(&harness, &c, availability(NodeAvailability::Drain)).await;
        harness
            .until("nothing left on the drained node", |s| {
                (!tasks_of(s, &web)
                    .iter()
                    .any(|t| t.node_id == c && !t.observed_state().is_terminal()))
                .then_some(())
            })
            .await;
        running_n(&harness, &web, 8).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a.clone(), 6), (b.clone(), 2)])
        );
        let moved = harness
            .tasks(&web)
            .into_iter()
            .filter(|t| t.node_id == c)
            .count();
        assert_eq!(moved, 3, "the drained tasks are history, not deleted");
    }

    #[tokio::test]
    async fn global_services_follow_availability_and_constraints() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let mut spec = constrained("agent", 0, &["node.labels.agent==yes"]);
        spec.mode = Some(service_spec::Mode::Global(Default::default()));
        node_update(&harness, &a, label("agent", "yes")).await;
        let agent = harness.create_service(spec).await;
        running_n(&harness, &agent, 1).await;
        assert_eq!(per_node(&harness, &agent), BTreeMap::from([(a.clone(), 1)]));

        // Paused b gets no task when it starts to fit; active again, it does.
        node_update(&harness, &b, availability(NodeAvailability::Pause)).await;
        node_update(&harness, &b, label("agent", "yes")).await;
        harness.settle().await;
        assert_eq!(per_node(&harness, &agent), BTreeMap::from([(a.clone(), 1)]));
        node_update(&harness, &b, availability(NodeAvailability::Active)).await;
        running_n(&harness, &agent, 2).await;

        // Pausing keeps the task; draining or losing the label stops it.
        node_update(&harness, &a, availability(NodeAvailability::Pause)).await;
        harness.settle().await;
        assert_eq!(running(&harness.store.view(|s| s.clone()), &agent).len(), 2);
        node_update(&harness, &a, availability(NodeAvailability::Drain)).await;
        running_n(&harness, &agent, 1).await;
        node_update(
            &harness,
            &b,
            NodeChange {
                label_rm: vec!["agent".into()],
                ..Default::default()
            },
        )
        .await;
        running_n(&harness, &agent, 0).await;
    }

    #[tokio::test]
    async fn node_update_refuses_what_docker_refuses() {
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let refused = |change: NodeChange| {
            let store = harness.store.clone();
            let a = a.clone();
            async move {
                store
                    .update(|state, tx| nodes::update(state, tx, &a, &change).map(|_| ()))
                    .await
                    .unwrap_err()
                    .to_string()
            }
        };
        let rm = NodeChange {
            label_rm: vec!["zone".into()],
            ..Default::default()
        };
        assert!(refused(rm)
            .await
            .contains("key zone doesn't exist in node's labels"),);
        assert!(refused(label(" ", "x")).await.contains("empty name"));
        let (node, changed) = harness
            .store
            .update(|state, tx| nodes::update(state, tx, "a", &label("zone", "b")))
            .await
            .unwrap();
        assert!(changed);
        assert_eq!(node.spec.unwrap().labels["zone"], "b");
        let (_, changed) = harness
            .store
            .update(|state, tx| nodes::update(state, tx, "a", &label("zone", "b")))
            .await
            .unwrap();
        assert!(!changed, "already so");
    }
}
