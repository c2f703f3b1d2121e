//! The control-loop harness: every leader component running under the
//! supervisor against the in-memory store, on a clock the test moves, with
//! fake agents playing the nodes. Tests of the manager's rules (restart,
//! rolling update, scheduling, allocation, reaping, node health, roles)
//! run here in milliseconds, without root, Raft or containerd.
//!
//! A test writes what a user would (services through the control API's
//! own write functions), moves the clock, and waits for the state it
//! expects with [`Harness::until`]; [`Harness::settle`] lets everything
//! that is going to happen now happen, to check that something did not.

mod agent;
mod logs;
mod membership;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::dispatcher::v1::TaskStatusUpdate;
use shoal_proto::types::v1::*;

use crate::clock::{Clock, ManualClock};
use crate::dispatcher::{Heartbeats, StatusBatcher};
use crate::leader::{LeaderEnv, Restarts, Spec, Supervisor};
use crate::store::{State, Store, StoreError};

pub use agent::Script;
pub use logs::Logs;
pub use membership::FakeMembership;

/// The heartbeat period of harness nodes (the manager's default).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// The harness clock starts here (2026-01-01), far from zero so that
/// "a while ago" never goes negative.
const EPOCH: i64 = 1_767_225_600_000;
/// How long [`Harness::until`] waits, in real time, before it fails.
const PATIENCE: Duration = Duration::from_secs(5);
/// No commit for this long (real time) counts as settled: longer than any
/// component's gather window.
const QUIET: Duration = Duration::from_millis(120);

pub const DEFAULT_NETWORK_ID: &str = "network-default";

pub struct Harness {
    pub store: Arc<Store>,
    pub clock: ManualClock,
    pub heartbeats: Arc<Heartbeats>,
    pub membership: Arc<FakeMembership>,
    pub restarts: Restarts,
    statuses: StatusBatcher,
    scripts: agent::Scripts,
    /// Node id to its agent and the agent's session, while it runs.
    agents: Mutex<BTreeMap<String, (tokio::task::JoinHandle<()>, String)>>,
    env: LeaderEnv,
    supervisor: Mutex<Option<Supervisor>>,
    /// Tasks ever created, per service (the reaper deletes old ones).
    created: Arc<Mutex<HashMap<String, usize>>>,
    recorder: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Every leader component running, a cluster with its default
    /// network, no nodes yet.
    pub async fn start() -> Harness {
        Self::start_with(crate::runtime::leader_components()).await
    }

    /// The harness with these components (a test may wrap one).
    pub async fn start_with(specs: Vec<Spec>) -> Harness {
        let (clock, hand) = Clock::manual(EPOCH);
        let store = initialised_store(clock.clone()).await;
        let heartbeats = Arc::new(Heartbeats::new(store.clone(), HEARTBEAT));
        let membership = Arc::new(FakeMembership::new(1));
        let env = LeaderEnv {
            store: store.clone(),
            heartbeats: heartbeats.clone(),
            membership: membership.clone(),
        };
        let restarts = Restarts::default();
        let created = Arc::<Mutex<HashMap<String, usize>>>::default();
        let recorder = tokio::spawn(record_creations(store.subscribe(), created.clone()));
        let supervisor = Supervisor::start(env.clone(), specs, restarts.clone());
        let harness = Harness {
            created,
            recorder,
            statuses: crate::dispatcher::status_batcher(store.clone()),
            store,
            clock: hand,
            heartbeats,
            membership,
            restarts,
            scripts: Arc::default(),
            agents: Mutex::default(),
            env,
            supervisor: Mutex::new(Some(supervisor)),
        };
        components_started().await;
        harness
    }

    /// A ready, active worker node with a fake agent; returns its id.
    pub async fn add_node(&self, hostname: &str) -> String {
        let id = format!("node-{hostname}");
        let node = Node {
            meta: Some(Meta {
                id: id.clone(),
                ..Default::default()
            }),
            spec: Some(NodeSpec {
                availability: NodeAvailability::Active as i32,
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: hostname.into(),
                os: "linux".into(),
                architecture: "x86_64".into(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: NodeState::Ready as i32,
                ..Default::default()
            }),
            role: NodeRole::Worker as i32,
            ..Default::default()
        };
        self.store
            .update(|_, tx| {
                tx.put(node);
                Ok(())
            })
            .await
            .expect("write the node");
        self.start_agent(&id);
        id
    }

    /// Starts (or restarts) the fake agent of a node: a session, heartbeats
    /// at every move of the clock, and task reports.
    pub fn start_agent(&self, node_id: &str) {
        let (session, _) = self.heartbeats.open(node_id);
        let handle = tokio::spawn(agent::run(
            self.store.clone(),
            node_id.to_string(),
            self.scripts.clone(),
            self.statuses.clone(),
        ));
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, _)) = agents.insert(node_id.to_string(), (handle, session)) {
            old.abort();
        }
    }

    /// The node's agent comes back after its node was marked down: the
    /// node is ready again, as the dispatcher writes when a session opens,
    /// and its agent runs (stopping what it is no longer meant to run).
    pub async fn reconnect(&self, node_id: &str) {
        self.update_node(node_id, |n| {
            let status = n.status.get_or_insert_with(Default::default);
            status.state = NodeState::Ready as i32;
            status.message.clear();
        })
        .await;
        self.start_agent(node_id);
    }

    /// The node's agent dies: no more heartbeats or reports.
    pub fn stop_agent(&self, node_id: &str) {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((agent, _)) = agents.remove(node_id) {
            agent.abort();
        }
    }

    /// How the tasks of `image` behave on every node from now on.
    pub fn script(&self, image: &str, script: Script) {
        let mut scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        scripts.insert(image.to_string(), script);
    }

    /// Leadership ends: every component stops. [`Harness::lead`] starts
    /// them again, as a new leader would (rebuilt from the store).
    pub fn step_down(&self) {
        *self.supervisor.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub async fn lead(&self) {
        let supervisor = Supervisor::start(
            self.env.clone(),
            crate::runtime::leader_components(),
            self.restarts.clone(),
        );
        *self.supervisor.lock().unwrap_or_else(|e| e.into_inner()) = Some(supervisor);
        components_started().await;
    }

    /// Moves the clock. Nodes whose agent runs beat at the new time before
    /// anything else sees it (as their agents would have all along).
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        let live: Vec<(String, String)> = {
            let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
            agents
                .iter()
                .map(|(node, (_, session))| (node.clone(), session.clone()))
                .collect()
        };
        for (node, session) in live {
            self.heartbeats.beat(&node, &session);
        }
        self.settle().await;
    }

    /// Waits until nothing has been committed for a while (real time).
    pub async fn settle(&self) {
        let mut events = self.store.subscribe();
        loop {
            match tokio::time::timeout(QUIET, events.recv()).await {
                Err(_) => return,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                Ok(_) => {}
            }
        }
    }

    /// Waits (real time, at most [`PATIENCE`]) until `check` finds what it
    /// looks for in the state; fails the test with `what` and the tasks.
    pub async fn until<T>(&self, what: &str, check: impl Fn(&State) -> Option<T>) -> T {
        let mut events = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(found) = self.store.view(&check) {
                return found;
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(_) => {}
                Err(_) => panic!(
                    "waited {PATIENCE:?} for {what}; tasks now:\n{}",
                    self.store.view(describe_tasks)
                ),
            }
        }
    }

    /// Creates a service the way the control API does; returns its id.
    pub async fn create_service(&self, spec: ServiceSpec) -> String {
        self.try_create_service(spec).await.expect("create service")
    }

    pub async fn try_create_service(&self, spec: ServiceSpec) -> Result<String, StoreError> {
        crate::controlapi::validate::service_spec(&spec)?;
        let id = crate::ids::new_id();
        self.store
            .update(|state, tx| crate::controlapi::services::create(state, tx, &id, spec))
            .await?;
        Ok(id)
    }

    /// Changes a service's spec the way `service update` does.
    pub async fn update_service(&self, id: &str, change: impl FnOnce(&mut ServiceSpec)) {
        let current = self.store.view(|s| s.services[id].clone());
        let mut spec = current.spec.clone().unwrap_or_default();
        change(&mut spec);
        crate::controlapi::validate::service_spec(&spec).expect("a valid spec");
        self.store
            .update(|state, tx| crate::controlapi::services::update(state, tx, &current, spec))
            .await
            .expect("update service");
    }

    pub async fn remove_service(&self, id: &str) {
        self.store
            .update(|state, tx| {
                let service = state.services[id].clone();
                crate::controlapi::services::remove(state, tx, &service);
                Ok(())
            })
            .await
            .expect("remove service");
    }

    /// A running task exits (its container died) with `code`.
    pub async fn exit(&self, task_id: &str, code: i32) {
        let state = if code == 0 {
            TaskState::Complete
        } else {
            TaskState::Failed
        };
        self.report(task_id, state, code).await;
    }

    /// The task's agent reports it in `state` (a test's script by hand).
    pub async fn report(&self, task_id: &str, state: TaskState, exit_code: i32) {
        let node = self.store.view(|s| s.tasks[task_id].node_id.clone());
        let update = TaskStatusUpdate {
            task_id: task_id.to_string(),
            status: Some(TaskStatus {
                state: state as i32,
                timestamp: self.clock.now(),
                message: state.display_name().into(),
                err: if exit_code == 0 {
                    String::new()
                } else {
                    format!("task: non-zero exit ({exit_code})")
                },
                container: Some(ContainerStatus {
                    exit_code,
                    ..Default::default()
                }),
                ..TaskStatus::default()
            }),
        };
        self.statuses
            .submit(node, vec![update])
            .await
            .expect("report the task's state");
    }

    /// A manager node that is Raft voter `raft_id`, with a fake agent.
    pub async fn add_manager(&self, hostname: &str, raft_id: u64) -> String {
        let id = self.add_node(hostname).await;
        self.membership.add_voter(raft_id);
        self.update_node(&id, |node| {
            node.role = NodeRole::Manager as i32;
            node.spec.get_or_insert_with(Default::default).desired_role = NodeRole::Manager as i32;
            node.manager_status = Some(ManagerStatus {
                raft_id,
                addr: format!("{hostname}:4242"),
                ..Default::default()
            });
        })
        .await;
        id
    }

    /// A network made as `network create --subnet --gateway` makes it;
    /// returns its id.
    pub async fn add_network(&self, name: &str, subnet: &str, gateway: &str) -> String {
        let id = format!("network-{name}");
        let spec = NetworkSpec {
            name: name.into(),
            subnet: subnet.into(),
            gateway: gateway.into(),
            ..Default::default()
        };
        crate::controlapi::validate::network_spec(&spec).expect("a valid network spec");
        self.store
            .update(|s, tx| crate::controlapi::networks::create(s, tx, &id, spec))
            .await
            .expect("create the network");
        id
    }

    /// Changes a node as `node update` (or the node itself) would.
    pub async fn update_node(&self, id: &str, change: impl FnOnce(&mut Node)) {
        let mut node = self.node(id);
        change(&mut node);
        self.store
            .update(|_, tx| {
                tx.put(node);
                Ok(())
            })
            .await
            .expect("update the node");
    }

    /// How many tasks the service has had, reaped ones included.
    pub fn created(&self, service_id: &str) -> usize {
        let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        created.get(service_id).copied().unwrap_or(0)
    }

    /// The service's tasks, oldest first.
    pub fn tasks(&self, service_id: &str) -> Vec<Task> {
        self.store.view(|s| tasks_of(s, service_id))
    }

    pub fn service(&self, id: &str) -> Service {
        self.store.view(|s| s.services[id].clone())
    }

    pub fn node(&self, id: &str) -> Node {
        self.store.view(|s| s.nodes[id].clone())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let agents = self.agents.get_mut().unwrap_or_else(|e| e.into_inner());
        for (agent, _) in agents.values() {
            agent.abort();
        }
        self.recorder.abort();
    }
}

/// Lets freshly spawned components run up to their first wait (harness
/// tests run on one thread: they run only when the test yields), so that
/// the clock moves only after they read it.
async fn components_started() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

async fn record_creations(
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::store::Event>>,
    created: Arc<Mutex<HashMap<String, usize>>>,
) {
    while let Ok(event) = events.recv().await {
        for change in &event.changes {
            if let crate::store::Change::Put {
                old: None,
                new: crate::store::Object::Task(task),
            } = change
            {
                let mut created = created.lock().unwrap_or_else(|e| e.into_inner());
                *created.entry(task.service_id.clone()).or_default() += 1;
            }
        }
    }
}

/// An in-memory store on `clock` holding what `swarm init` writes for
/// the control loop: the cluster and its default network.
pub async fn initialised_store(clock: Clock) -> Arc<Store> {
    let store = Store::in_memory_with_clock(clock);
    store
        .update(|_, tx| {
            tx.put(cluster());
            tx.put(crate::runtime::default_network(DEFAULT_NETWORK_ID));
            Ok(())
        })
        .await
        .expect("write the cluster");
    store
}

/// The service's tasks, oldest first.
pub fn tasks_of(state: &State, service_id: &str) -> Vec<Task> {
    let mut tasks: Vec<Task> = state.tasks_of_service(service_id).cloned().collect();
    tasks.sort_by_key(|t| t.meta.as_ref().map(|m| (m.created_at, m.version)));
    tasks
}

/// Tasks of the service meant to run that run, per the agents.
pub fn running(state: &State, service_id: &str) -> Vec<Task> {
    tasks_of(state, service_id)
        .into_iter()
        .filter(|t| {
            t.desired_state == TaskState::Running as i32 && t.observed_state() == TaskState::Running
        })
        .collect()
}

/// A bare task `id`, observed in `state`: for tests of the store's
/// indexes, which need no service or node.
pub fn task_in_state(id: &str, state: TaskState) -> Task {
    Task {
        meta: Some(Meta {
            id: id.into(),
            ..Default::default()
        }),
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn id(task: &Task) -> String {
    task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default()
}

pub fn image(task: &Task) -> String {
    task.spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.image.clone())
        .unwrap_or_default()
}

/// A replicated service of `image`, restart delay 0 unless a test says.
pub fn service(name: &str, image: &str, replicas: u64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                ..Default::default()
            }),
            restart: Some(RestartPolicy {
                delay_ms: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
        ..Default::default()
    }
}

pub fn describe_tasks(state: &State) -> String {
    let mut lines: Vec<String> = state
        .tasks
        .values()
        .map(|t| {
            format!(
                "  {} {}.{} on {:?} v{} {} desired {} err {:?}",
                id(t),
                t.service_name,
                t.slot,
                t.node_id,
                t.spec_version,
                t.observed_state().display_name(),
                t.desired().display_name(),
                t.status.as_ref().map(|s| s.err.as_str()).unwrap_or(""),
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn cluster() -> Cluster {
    Cluster {
        meta: Some(Meta {
            id: "cluster".into(),
            ..Default::default()
        }),
        spec: Some(ClusterSpec {
            name: "default".into(),
            ..Default::default()
        }),
        default_network_id: DEFAULT_NETWORK_ID.into(),
        ..Default::default()
    }
}
