//! The scheduler: places pending tasks on nodes. Filters (`filters.rs`:
//! ready and active nodes, resource reservations, constraints
//! (`constraint.rs`), host-mode port clashes, `max_replicas_per_node`),
//! then the placement preferences (`spread.rs`), then spreads: fewest
//! tasks of the same service, then fewest tasks overall. One pass places
//! every pending task and commits the placements as one batch. A task no node takes
//! stays pending with Swarm's explanation in its status error; every node
//! change (labels, availability, readiness) starts a pass, so it is placed
//! as soon as a node fits.

pub mod constraint;
mod filters;
pub mod spread;

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use shoal_proto::types::v1::{Node, Task, TaskState};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

pub use filters::{availability, node_accepts_tasks, node_ready};
use filters::{node_id, Load, Placement};
use spread::Spread;

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
        watch::run_passes(&self.store, Self::NAME, relevant, watch::NO_SETTLE, || {
            self.pass()
        })
        .await;
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
    let mut pending: Vec<&Task> = state
        .waiting_tasks()
        .filter(|t| t.observed_state() == TaskState::Pending)
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .collect();
    if pending.is_empty() {
        // Most commits are status reports: no load to count.
        return;
    }
    let mut load = Load::of(state);
    pending.sort_by(|a, b| (a.service_id.as_str(), a.slot).cmp(&(b.service_id.as_str(), b.slot)));
    let mut nodes: Vec<&Node> = state.nodes.values().collect();
    nodes.sort_by(|a, b| node_id(a).cmp(node_id(b)));
    // Tasks per node, by the node's place in `nodes`: the spread's inner
    // loop reads these for every task and node, without hashing.
    let mut totals: Vec<usize> = nodes.iter().map(|n| load.total(node_id(n))).collect();
    // The spread of the service whose tasks are being placed (tasks come
    // sorted by service), rebuilt when its preferences differ.
    let mut spread: Option<(String, Spread)> = None;
    // The tasks of a service that share a spec share their placement: the
    // nodes that pass the filters that do not depend on the pass, and,
    // once one of them fit nowhere, its reason (what is placed only grows
    // within a pass, so the others fit nowhere either).
    let mut group: Option<Group> = None;
    for task in pending {
        if !group.as_ref().is_some_and(|g| g.placement.is_for(task)) {
            let placement = Placement::of(task);
            let fits: Vec<bool> = nodes.iter().map(|n| placement.fits_node(n)).collect();
            let of_service: Vec<usize> = nodes
                .iter()
                .map(|n| load.of_service(node_id(n), &task.service_id))
                .collect();
            let preferences = task.spec.as_ref().map_or(&[][..], |s| &s.preferences);
            let least = (placement.always_has_room() && preferences.is_empty()).then(|| {
                (0..nodes.len())
                    .filter(|&i| fits[i])
                    .map(|i| Reverse((of_service[i], totals[i], i)))
                    .collect::<BinaryHeap<_>>()
            });
            group = Some(Group {
                placement,
                fits,
                of_service,
                least,
                nowhere: None,
            });
        }
        let Some(group) = group.as_mut() else {
            continue;
        };
        // Global tasks come with their node: only it is considered.
        let anywhere = task.node_id.is_empty();
        if let (true, Some(why)) = (anywhere, &group.nowhere) {
            leave_pending(task, why.clone(), tx);
            continue;
        }
        let preferences = task.spec.as_ref().map_or(&[][..], |s| &s.preferences);
        let descriptors = spread::descriptors(preferences);
        let current = spread
            .as_ref()
            .is_some_and(|(service, s)| *service == task.service_id && s.is_for(&descriptors));
        if !descriptors.is_empty() && !current {
            let built = Spread::new(descriptors.clone(), &task.service_id, &nodes, &load);
            spread = Some((task.service_id.clone(), built));
        }
        let spread_now = spread
            .as_ref()
            .filter(|_| !descriptors.is_empty())
            .map(|(_, s)| s);
        let mut chosen: Option<(usize, &Node, (usize, usize))> = None;
        let least = group.least.as_mut().filter(|_| anywhere);
        let scanned = match least {
            Some(least) => {
                chosen = least
                    .pop()
                    .map(|Reverse((of_service, total, i))| (i, nodes[i], (of_service, total)));
                &[][..]
            }
            None => &nodes[..],
        };
        for (i, node) in scanned.iter().enumerate() {
            if !group.fits[i] || !(anywhere || node_id(node) == task.node_id) {
                continue;
            }
            if !load.has_room(&group.placement, node) {
                continue;
            }
            let key = (group.of_service[i], totals[i]);
            let better = chosen.is_none_or(|(_, c, chosen_key)| {
                spread_now
                    .map_or(Ordering::Equal, |s| s.order(node_id(node), node_id(c)))
                    .then_with(|| key.cmp(&chosen_key))
                    .is_lt()
            });
            if better {
                chosen = Some((i, node, key));
            }
        }
        let Some((i, node, _)) = chosen else {
            let mut refusals = HashMap::new();
            for node in nodes
                .iter()
                .filter(|n| anywhere || node_id(n) == task.node_id)
            {
                if let Some(filter) = load.refusal(&group.placement, node) {
                    *refusals.entry(filter).or_insert(0) += 1;
                }
            }
            let why = filters::explain(&refusals);
            if anywhere {
                group.nowhere = Some(why.clone());
            }
            leave_pending(task, why, tx);
            continue;
        };
        load.add(node_id(node), task);
        totals[i] += 1;
        group.of_service[i] += 1;
        if let Some(least) = group.least.as_mut() {
            least.push(Reverse((group.of_service[i], totals[i], i)));
        }
        if let Some((_, s)) = spread.as_mut().filter(|_| !descriptors.is_empty()) {
            s.add(node_id(node));
        }
        let mut task = task.clone();
        task.node_id = node_id(node).to_string();
        let status = task.status.get_or_insert_with(Default::default);
        status.state = TaskState::Assigned as i32;
        status.timestamp = tx.now();
        status.message = "scheduler assigned task to node".into();
        status.err.clear();
        tx.put(task);
    }
}

/// What the tasks of a service that share a spec have in common in a pass.
struct Group<'a> {
    placement: Placement<'a>,
    /// Per node (in the pass's order): whether it passes the filters that
    /// do not depend on what is placed.
    fits: Vec<bool>,
    /// Per node: the service's tasks on it.
    of_service: Vec<usize>,
    /// When only those counts decide (no preferences, nothing a node must
    /// have room for): the nodes that fit, fewest of the service's tasks,
    /// then fewest in all, then first in the pass's order, so a task is
    /// placed by taking the top instead of comparing every node. Only the
    /// chosen node's counts move within a group, and it goes back in with
    /// them; the choice is the scan's.
    least: Option<BinaryHeap<Reverse<(usize, usize, usize)>>>,
    /// Set once one of the tasks fit nowhere: why.
    nowhere: Option<String>,
}

/// A task no node takes stays pending with the reason (written only when
/// it changes, so a pass that changes nothing writes nothing).
fn leave_pending(task: &Task, why: String, tx: &mut Tx) {
    if task.status.as_ref().is_some_and(|s| s.err == why) {
        return;
    }
    let mut task = task.clone();
    let status = task.status.get_or_insert_with(Default::default);
    status.err = why;
    status.message = "pending task scheduling".into();
    tx.put(task);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shoal_proto::types::v1::{
        service_spec, NodeAvailability, NodeState, PlacementPreference, ReplicatedMode,
        ResourceRequirements, ServiceSpec, TaskState,
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

    /// Where the pending tasks of a service go, by slot, on nodes already
    /// loaded unevenly, with or without a per-node limit too high to
    /// matter (with one, every node is compared; without, the least
    /// loaded is taken from a heap).
    async fn placed_by_slot(limit: u64) -> BTreeMap<u64, String> {
        use super::Scheduler;
        use shoal_proto::types::v1::{Meta, Node, NodeStatus, Task, TaskSpec, TaskStatus};
        let store = crate::store::Store::in_memory();
        let meta = |id: String| {
            Some(Meta {
                id,
                ..Default::default()
            })
        };
        let task = |id: String, service: &str, slot: u64, node: String, state: TaskState| Task {
            meta: meta(id),
            service_id: service.into(),
            slot,
            node_id: node,
            spec: Some(TaskSpec {
                max_replicas_per_node: limit,
                ..Default::default()
            }),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        store
            .update(|_, tx| {
                for n in 0..7u64 {
                    tx.put(Node {
                        meta: meta(format!("n{n}")),
                        status: Some(NodeStatus {
                            state: NodeState::Ready as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    // Uneven loads: of the same service on some, of
                    // another on others.
                    for k in 0..(n * 5 % 7) {
                        let (service, state) = if n % 2 == 0 {
                            ("web", TaskState::Running)
                        } else {
                            ("db", TaskState::Running)
                        };
                        tx.put(task(
                            format!("old-{n}-{k}"),
                            service,
                            100 + k,
                            format!("n{n}"),
                            state,
                        ));
                    }
                }
                for slot in 1..=40 {
                    tx.put(task(
                        format!("new-{slot:02}"),
                        "web",
                        slot,
                        String::new(),
                        TaskState::Pending,
                    ));
                }
                Ok(())
            })
            .await
            .unwrap();
        let scheduler = Scheduler {
            store: store.clone(),
        };
        scheduler.pass().await.unwrap();
        store.view(|s| {
            s.tasks_of_service("web")
                .filter(|t| t.slot <= 40)
                .map(|t| (t.slot, t.node_id.clone()))
                .collect()
        })
    }

    #[tokio::test]
    async fn taking_the_least_loaded_node_from_a_heap_places_as_comparing_every_node() {
        let compared = placed_by_slot(1_000).await;
        assert_eq!(compared.len(), 40);
        assert!(compared.values().all(|n| !n.is_empty()), "{compared:?}");
        assert_eq!(placed_by_slot(0).await, compared);
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
    async fn a_drained_start_first_task_runs_until_its_replacement_does() {
        use shoal_proto::types::v1::{update_config::Order, UpdateConfig};
        let harness = Harness::start().await;
        let a = harness.add_node("a").await;
        let b = harness.add_node("b").await;
        let start_first = |mut spec: ServiceSpec| {
            spec.update = Some(UpdateConfig {
                order: Order::StartFirst as i32,
                ..Default::default()
            });
            spec
        };
        let slow = harness
            .create_service(start_first(service("slow", "slow", 1)))
            .await;
        running_n(&harness, &slow, 1).await;
        let old = harness.store.view(|s| running(s, &slow).remove(0));
        let (from, to) = if old.node_id == a { (&a, &b) } else { (&b, &a) };

        // The replacement never gets to run: the drained task keeps running.
        harness.script("slow", crate::harness::Script::Hang);
        node_update(&harness, from, availability(NodeAvailability::Drain)).await;
        harness
            .until("a replacement on the other node", |s| {
                tasks_of(s, &slow)
                    .iter()
                    .any(|t| t.node_id == *to && t.desired_state == TaskState::Running as i32)
                    .then_some(())
            })
            .await;
        harness.settle().await;
        let still = harness
            .store
            .view(|s| s.tasks[&crate::harness::id(&old)].clone());
        assert_eq!(still.desired_state, TaskState::Running as i32);
        assert_eq!(still.observed_state(), TaskState::Running);

        // Where the replacement runs, the drained task retires.
        node_update(&harness, from, availability(NodeAvailability::Active)).await;
        let quick = harness
            .create_service(start_first(service("quick", "quick", 1)))
            .await;
        running_n(&harness, &quick, 1).await;
        let old = harness.store.view(|s| running(s, &quick).remove(0));
        let to = if old.node_id == a {
            b.clone()
        } else {
            a.clone()
        };
        node_update(
            &harness,
            &old.node_id,
            availability(NodeAvailability::Drain),
        )
        .await;
        harness
            .until(
                "the replacement running and the drained task stopped",
                |s| {
                    let tasks = tasks_of(s, &quick);
                    let moved = running(s, &quick).iter().any(|t| t.node_id == to);
                    let retired = tasks.iter().any(|t| {
                        crate::harness::id(t) == crate::harness::id(&old)
                            && t.desired_state > TaskState::Running as i32
                    });
                    (moved && retired).then_some(())
                },
            )
            .await;
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

    const GIB: i64 = 1 << 30;
    const CPU: i64 = 1_000_000_000;

    /// A node as its agent describes it: `cpus` CPUs, `gib` GiB of memory.
    async fn sized_node(harness: &Harness, hostname: &str, cpus: i64, gib: i64) -> String {
        let id = harness.add_node(hostname).await;
        harness
            .update_node(&id, |n| {
                let d = n.description.as_mut().unwrap();
                d.nano_cpus = cpus * CPU;
                d.memory_bytes = gib * GIB;
            })
            .await;
        id
    }

    fn reserving(name: &str, replicas: u64, nano_cpus: i64, memory: i64) -> ServiceSpec {
        let mut spec = service(name, name, replicas);
        spec.task.as_mut().unwrap().resources = Some(ResourceRequirements {
            reserve_nano_cpus: nano_cpus,
            reserve_memory_bytes: memory,
            ..Default::default()
        });
        spec
    }

    #[tokio::test]
    async fn reservations_fill_nodes_and_a_task_waits_until_capacity_frees() {
        let harness = Harness::start().await;
        let a = sized_node(&harness, "a", 2, 1).await;
        let b = sized_node(&harness, "b", 2, 1).await;
        let paused = sized_node(&harness, "paused", 8, 64).await;
        node_update(&harness, &paused, availability(NodeAvailability::Pause)).await;
        // Tasks without reservations are not held back by full nodes.
        let big = harness
            .create_service(reserving("big", 1, 0, 3 * GIB / 4))
            .await;
        running_n(&harness, &big, 1).await;
        let big_node = per_node(&harness, &big).into_keys().next().unwrap();
        let other = if big_node == a { b.clone() } else { a.clone() };

        // Three tasks of 512 MiB: two fit on the other node, none where big
        // runs (256 MiB left); the third waits, with the reason.
        let web = harness
            .create_service(reserving("web", 3, CPU / 2, GIB / 2))
            .await;
        running_n(&harness, &web, 2).await;
        pending_with(
            &harness,
            &web,
            "no suitable node (2 nodes had insufficient memory; 1 node not available for new tasks)",
        )
        .await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(other.clone(), 2)])
        );
        let free = harness.create_service(service("free", "free", 2)).await;
        running_n(&harness, &free, 2).await;

        // big goes: its reservation frees once its task is down, and the
        // waiting task runs there.
        harness.remove_service(&big).await;
        running_n(&harness, &web, 3).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(big_node, 1), (other, 2)])
        );
        let task = harness.store.view(|s| running(s, &web)).pop().unwrap();
        assert_eq!(task.status.unwrap().err, "");

        // More CPU than any active node has.
        let cpu = harness
            .create_service(reserving("cpu", 1, 3 * CPU, 0))
            .await;
        pending_with(
            &harness,
            &cpu,
            "no suitable node (2 nodes had insufficient CPU; 1 node not available for new tasks)",
        )
        .await;
        node_update(&harness, &paused, availability(NodeAvailability::Active)).await;
        running_n(&harness, &cpu, 1).await;
        assert_eq!(per_node(&harness, &cpu), BTreeMap::from([(paused, 1)]));
    }

    #[tokio::test]
    async fn many_reserving_tasks_in_one_pass_never_overcommit_a_node() {
        let harness = Harness::start().await;
        let a = sized_node(&harness, "a", 4, 2).await;
        let b = sized_node(&harness, "b", 4, 1).await;
        // 1 GiB each: a takes two, b one, in the same pass; two wait.
        let web = harness.create_service(reserving("web", 5, 0, GIB)).await;
        running_n(&harness, &web, 3).await;
        pending_with(
            &harness,
            &web,
            "no suitable node (2 nodes had insufficient memory)",
        )
        .await;
        assert_eq!(per_node(&harness, &web), BTreeMap::from([(a, 2), (b, 1)]));
        assert_eq!(harness.tasks(&web).len(), 5);
    }

    fn spread(name: &str, replicas: u64, descriptors: &[&str]) -> ServiceSpec {
        let mut spec = service(name, name, replicas);
        spec.task.as_mut().unwrap().preferences = descriptors
            .iter()
            .map(|d| PlacementPreference {
                spread_descriptor: d.to_string(),
            })
            .collect();
        spec
    }

    /// Running tasks of the service per value of a node label.
    fn per_label(harness: &Harness, service: &str, label: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (node, n) in per_node(harness, service) {
            let labels = harness.node(&node).spec.unwrap_or_default().labels;
            let value = labels.get(label).cloned().unwrap_or_default();
            *counts.entry(value).or_default() += n;
        }
        counts
    }

    #[tokio::test]
    async fn spread_over_a_label_evens_its_values_not_the_nodes() {
        let harness = Harness::start().await;
        let a1 = harness.add_node("a1").await;
        let a2 = harness.add_node("a2").await;
        let b1 = harness.add_node("b1").await;
        for (node, zone) in [(&a1, "a"), (&a2, "a"), (&b1, "b")] {
            node_update(&harness, node, label("zone", zone)).await;
        }
        let web = harness
            .create_service(spread("web", 4, &["node.labels.zone"]))
            .await;
        running_n(&harness, &web, 4).await;
        assert_eq!(
            per_node(&harness, &web),
            BTreeMap::from([(a1.clone(), 1), (a2.clone(), 1), (b1.clone(), 2)])
        );
        // Without the preference the nodes are evened instead.
        let api = harness.create_service(service("api", "api", 3)).await;
        running_n(&harness, &api, 3).await;
        assert!(per_node(&harness, &api).values().all(|n| *n == 1));
        // Scaling up keeps the zones even.
        harness
            .update_service(&web, |s| {
                s.mode = Some(service_spec::Mode::Replicated(ReplicatedMode {
                    replicas: 6,
                }))
            })
            .await;
        running_n(&harness, &web, 6).await;
        assert_eq!(
            per_label(&harness, &web, "zone"),
            BTreeMap::from([("a".into(), 3), ("b".into(), 3)])
        );
    }

    #[tokio::test]
    async fn nested_spread_with_nodes_lacking_the_label_as_their_own_group() {
        let harness = Harness::start().await;
        let nodes = [
            ("a-r1", Some(("a", "1"))),
            ("a-r2", Some(("a", "2"))),
            ("a-r2b", Some(("a", "2"))),
            ("b-r1", Some(("b", "1"))),
            ("bare", None),
        ];
        let mut ids = BTreeMap::new();
        for (name, labels) in nodes {
            let id = harness.add_node(name).await;
            if let Some((zone, rack)) = labels {
                node_update(&harness, &id, label("zone", zone)).await;
                node_update(&harness, &id, label("rack", rack)).await;
            }
            ids.insert(name, id);
        }
        let web = harness
            .create_service(spread("web", 6, &["node.labels.zone", "node.labels.rack"]))
            .await;
        running_n(&harness, &web, 6).await;
        // Zones first: a, b and the unlabelled node get two each.
        assert_eq!(
            per_label(&harness, &web, "zone"),
            BTreeMap::from([("".into(), 2), ("a".into(), 2), ("b".into(), 2)])
        );
        // Within zone a, its racks get one each (rack 2 has two nodes).
        let on = per_node(&harness, &web);
        assert_eq!(on[&ids["a-r1"]], 1, "{on:?}");
        let rack2 = on.get(&ids["a-r2"]).copied().unwrap_or(0)
            + on.get(&ids["a-r2b"]).copied().unwrap_or(0);
        assert_eq!(rack2, 1, "{on:?}");

        // A zone whose only node may take no task drops out: the others
        // share the new tasks.
        node_update(
            &harness,
            &ids["b-r1"],
            availability(NodeAvailability::Pause),
        )
        .await;
        harness
            .update_service(&web, |s| {
                s.mode = Some(service_spec::Mode::Replicated(ReplicatedMode {
                    replicas: 10,
                }))
            })
            .await;
        running_n(&harness, &web, 10).await;
        assert_eq!(
            per_label(&harness, &web, "zone"),
            BTreeMap::from([("".into(), 4), ("a".into(), 4), ("b".into(), 2)])
        );
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
