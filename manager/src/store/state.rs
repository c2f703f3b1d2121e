//! The in-memory image of every object: what readers see, what the Raft
//! state machine applies batches to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_proto::types::v1::{Cluster, Config, Network, Node, Secret, Service, Task, TaskState};

use super::object::{Kind, Object, Write};

#[derive(Debug, Clone, Default)]
pub struct State {
    pub clusters: BTreeMap<String, Cluster>,
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<String, Service>,
    /// Shared with the changes that announced them (see object.rs).
    pub tasks: BTreeMap<String, Arc<Task>>,
    pub networks: BTreeMap<String, Network>,
    pub secrets: BTreeMap<String, Secret>,
    pub configs: BTreeMap<String, Config>,
    /// Task ids by node and by service, kept by `apply` (the only way
    /// tasks enter or leave a state): a node's session and a service's
    /// orchestration read their own tasks without scanning every task.
    task_index: TaskIndex,
}

#[derive(Debug, Clone, Default)]
struct TaskIndex {
    by_node: HashMap<String, BTreeSet<String>>,
    /// Tasks not yet on a node (new: waiting for addresses; pending:
    /// waiting for a node): what the allocator and the scheduler look at.
    waiting: BTreeSet<String>,
    by_service: HashMap<String, BTreeSet<String>>,
    /// By the networks the task has an address on: a node's network view
    /// reads the tasks of its networks alone.
    by_network: HashMap<String, BTreeSet<String>>,
    /// The addresses live (not terminal) tasks hold, by network, each with
    /// how many hold it: the allocator asks whether one is free without
    /// looking at every task.
    addresses: HashMap<String, BTreeMap<Ipv4Addr, u32>>,
}

/// Adds `id` under `key`.
fn index(map: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    match map.get_mut(key) {
        Some(ids) => {
            ids.insert(id.to_string());
        }
        None => {
            map.insert(key.to_string(), BTreeSet::from([id.to_string()]));
        }
    }
}

fn unindex(map: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

/// Whether two versions of a task sit at the same keys of the index.
fn same_keys(a: &Task, b: &Task) -> bool {
    a.node_id == b.node_id
        && a.service_id == b.service_id
        && a.observed_state().is_terminal() == b.observed_state().is_terminal()
        && is_waiting(a) == is_waiting(b)
        && a.networks.len() == b.networks.len()
        && a.networks
            .iter()
            .zip(&b.networks)
            .all(|(x, y)| x.network_id == y.network_id && x.address == y.address)
}

fn is_waiting(task: &Task) -> bool {
    task.observed_state() < TaskState::Assigned
}

/// The addresses a task holds: those of its attachments while it is live.
fn held_addresses(task: &Task) -> impl Iterator<Item = (&str, Ipv4Addr)> {
    let live = !task.observed_state().is_terminal();
    task.networks
        .iter()
        .filter(move |_| live)
        .filter_map(|a| Some((a.network_id.as_str(), address_of(&a.address)?)))
}

/// The address of `10.0.0.3/24`.
pub fn address_of(cidr: &str) -> Option<Ipv4Addr> {
    cidr.split('/').next().and_then(|ip| ip.parse().ok())
}

impl TaskIndex {
    fn insert(&mut self, task: &Task, id: &str) {
        index(&mut self.by_node, &task.node_id, id);
        index(&mut self.by_service, &task.service_id, id);
        if is_waiting(task) {
            self.waiting.insert(id.to_string());
        }
        for a in &task.networks {
            index(&mut self.by_network, &a.network_id, id);
        }
        for (network, ip) in held_addresses(task) {
            let held = match self.addresses.get_mut(network) {
                Some(held) => held,
                None => self.addresses.entry(network.to_string()).or_default(),
            };
            *held.entry(ip).or_default() += 1;
        }
    }

    /// `old` (if any) is replaced by `new`; most puts are status reports,
    /// which move a task to no other node, service or network.
    fn replace(&mut self, old: Option<&Task>, new: &Task, id: &str) {
        if let Some(old) = old {
            if same_keys(old, new) {
                return;
            }
            self.remove(old, id);
        }
        self.insert(new, id);
    }

    fn remove(&mut self, task: &Task, id: &str) {
        unindex(&mut self.by_node, &task.node_id, id);
        unindex(&mut self.by_service, &task.service_id, id);
        self.waiting.remove(id);
        for a in &task.networks {
            unindex(&mut self.by_network, &a.network_id, id);
        }
        for (network, ip) in held_addresses(task) {
            if let Some(held) = self.addresses.get_mut(network) {
                if let Some(count) = held.get_mut(&ip) {
                    *count -= 1;
                    if *count == 0 {
                        held.remove(&ip);
                    }
                }
                if held.is_empty() {
                    self.addresses.remove(network);
                }
            }
        }
    }
}

/// What one applied write changed, for watchers.
#[derive(Debug, Clone)]
pub enum Change {
    Put { old: Option<Object>, new: Object },
    Delete(Object),
}

impl Change {
    pub fn kind(&self) -> Kind {
        match self {
            Change::Put { new, .. } => new.kind(),
            Change::Delete(o) => o.kind(),
        }
    }

    pub fn object(&self) -> &Object {
        match self {
            Change::Put { new, .. } => new,
            Change::Delete(o) => o,
        }
    }
}

impl State {
    /// The cluster object (there is exactly one once initialised).
    pub fn cluster(&self) -> Option<&Cluster> {
        self.clusters.values().next()
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<Object> {
        match kind {
            Kind::Cluster => self.clusters.get(id).cloned().map(Object::from),
            Kind::Node => self.nodes.get(id).cloned().map(Object::from),
            Kind::Service => self.services.get(id).cloned().map(Object::from),
            Kind::Task => self.tasks.get(id).cloned().map(Object::Task),
            Kind::Network => self.networks.get(id).cloned().map(Object::from),
            Kind::Secret => self.secrets.get(id).cloned().map(Object::from),
            Kind::Config => self.configs.get(id).cloned().map(Object::from),
        }
    }

    /// The version of a stored object, read in place.
    fn version_of(&self, kind: Kind, id: &str) -> Option<u64> {
        let meta = match kind {
            Kind::Cluster => self.clusters.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Node => self.nodes.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Service => self.services.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Task => self.tasks.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Network => self.networks.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Secret => self.secrets.get(id).and_then(|o| o.meta.as_ref()),
            Kind::Config => self.configs.get(id).and_then(|o| o.meta.as_ref()),
        };
        meta.map(|m| m.version)
    }

    /// Checks that every object a batch puts is still at the version the
    /// writer read (0: it did not exist). Checked against the state before
    /// the batch, so one batch may write an object twice.
    pub fn check_versions(&self, writes: &[Write]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for write in writes {
            let Write::Put(object) = write else { continue };
            let key = (object.kind(), object.id());
            if !seen.insert(key) {
                continue;
            }
            let read = object.meta().map(|m| m.version).unwrap_or(0);
            let current = self.version_of(key.0, key.1);
            let ok = match current {
                Some(v) => v == read,
                None => read == 0,
            };
            if !ok {
                return Err(format!(
                    "{} {} changed since it was read (version {read}, now {}): retry",
                    key.0.name(),
                    key.1,
                    current.map_or("deleted".to_string(), |v| v.to_string())
                ));
            }
        }
        Ok(())
    }

    /// Applies one write; `version` is the Raft index of the entry.
    pub fn apply(&mut self, write: Write, version: u64) -> Option<Change> {
        match write {
            Write::Put(mut object) => {
                object.meta_mut().version = version;
                let id = object.id().to_string();
                // The replaced object comes back from the map; the stored
                // task is shared with the change, the rest are copied.
                let old = match object.clone() {
                    Object::Cluster(o) => self.clusters.insert(id, *o).map(Object::from),
                    Object::Node(o) => self.nodes.insert(id, *o).map(Object::from),
                    Object::Service(o) => self.services.insert(id, *o).map(Object::from),
                    Object::Task(o) => {
                        // One walk down the tree for a task already stored
                        // (most puts: status reports, placements).
                        let old = match self.tasks.get_mut(&id) {
                            Some(stored) => Some(std::mem::replace(stored, o.clone())),
                            None => {
                                self.tasks.insert(id.clone(), o.clone());
                                None
                            }
                        };
                        self.task_index.replace(old.as_deref(), &o, &id);
                        old.map(Object::Task)
                    }
                    Object::Network(o) => self.networks.insert(id, *o).map(Object::from),
                    Object::Secret(o) => self.secrets.insert(id, *o).map(Object::from),
                    Object::Config(o) => self.configs.insert(id, *o).map(Object::from),
                };
                Some(Change::Put { old, new: object })
            }
            Write::Delete(kind, id) => {
                let old = match kind {
                    Kind::Cluster => self.clusters.remove(&id).map(Object::from),
                    Kind::Node => self.nodes.remove(&id).map(Object::from),
                    Kind::Service => self.services.remove(&id).map(Object::from),
                    Kind::Task => self.tasks.remove(&id).map(|task| {
                        self.task_index.remove(&task, &id);
                        Object::Task(task)
                    }),
                    Kind::Network => self.networks.remove(&id).map(Object::from),
                    Kind::Secret => self.secrets.remove(&id).map(Object::from),
                    Kind::Config => self.configs.remove(&id).map(Object::from),
                };
                old.map(Change::Delete)
            }
        }
    }

    /// Every object, for snapshots.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.clusters
            .values()
            .cloned()
            .map(Object::from)
            .chain(self.nodes.values().cloned().map(Object::from))
            .chain(self.networks.values().cloned().map(Object::from))
            .chain(self.secrets.values().cloned().map(Object::from))
            .chain(self.configs.values().cloned().map(Object::from))
            .chain(self.services.values().cloned().map(Object::from))
            .chain(self.tasks.values().cloned().map(Object::Task))
    }

    /// The service a reference names: full id, exact name, or unique id prefix.
    pub fn find_service(&self, reference: &str) -> Result<&Service, String> {
        find_by_reference(&self.services, reference, "service", |s| {
            s.spec.as_ref().map(|spec| spec.name.as_str())
        })
    }

    /// The secret a reference names: full id, exact name, or unique id prefix.
    pub fn find_secret(&self, reference: &str) -> Result<&Secret, String> {
        find_by_reference(&self.secrets, reference, "secret", |s| {
            s.spec.as_ref().map(|spec| spec.name.as_str())
        })
    }

    /// The config a reference names: full id, exact name, or unique id prefix.
    pub fn find_config(&self, reference: &str) -> Result<&Config, String> {
        find_by_reference(&self.configs, reference, "config", |c| {
            c.spec.as_ref().map(|spec| spec.name.as_str())
        })
    }

    /// The network a reference names: full id, exact name, or unique id prefix.
    pub fn find_network(&self, reference: &str) -> Result<&Network, String> {
        find_by_reference(&self.networks, reference, "network", |n| {
            n.spec.as_ref().map(|spec| spec.name.as_str())
        })
    }

    /// The task a reference names: full id or unique id prefix.
    pub fn find_task(&self, reference: &str) -> Result<&Arc<Task>, String> {
        find_by_reference(&self.tasks, reference, "task", |_| None)
    }

    /// The service's tasks, by id.
    pub fn tasks_of_service<'a>(&'a self, service_id: &str) -> impl Iterator<Item = &'a Task> {
        self.indexed(self.task_index.by_service.get(service_id))
    }

    /// The tasks not yet on a node (new or pending), by id.
    pub fn waiting_tasks(&self) -> impl Iterator<Item = &Task> {
        self.indexed(Some(&self.task_index.waiting))
    }

    /// The tasks with an address on the network, by id.
    pub fn tasks_on_network<'a>(&'a self, network_id: &str) -> impl Iterator<Item = &'a Task> {
        self.indexed(self.task_index.by_network.get(network_id))
    }

    /// The addresses live tasks hold on the network, in order.
    pub fn task_addresses(&self, network_id: &str) -> Option<&BTreeMap<Ipv4Addr, u32>> {
        self.task_index.addresses.get(network_id)
    }

    /// The tasks placed on the node, by id.
    pub fn tasks_of_node<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Task> {
        self.shared_tasks_of_node(node_id).map(|t| &**t)
    }

    /// [`State::tasks_of_node`], as stored: for keeping without a copy.
    pub fn shared_tasks_of_node<'a>(
        &'a self,
        node_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Task>> {
        self.shared(self.task_index.by_node.get(node_id))
    }

    fn indexed<'a>(&'a self, ids: Option<&'a BTreeSet<String>>) -> impl Iterator<Item = &'a Task> {
        self.shared(ids).map(|t| &**t)
    }

    fn shared<'a>(
        &'a self,
        ids: Option<&'a BTreeSet<String>>,
    ) -> impl Iterator<Item = &'a Arc<Task>> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }
}

/// Swarm's way of naming an object: full id, exact name, or an id prefix
/// that matches exactly one.
fn find_by_reference<'a, T>(
    objects: &'a BTreeMap<String, T>,
    reference: &str,
    kind: &str,
    name_of: impl Fn(&T) -> Option<&str>,
) -> Result<&'a T, String> {
    if let Some(object) = objects.get(reference) {
        return Ok(object);
    }
    if let Some(object) = objects.values().find(|o| name_of(o) == Some(reference)) {
        return Ok(object);
    }
    let matches: Vec<&T> = objects
        .iter()
        .filter(|(id, _)| !reference.is_empty() && id.starts_with(reference))
        .map(|(_, o)| o)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{kind} {reference} not found")),
        _ => Err(format!(
            "{kind} {reference} is ambiguous ({} {kind}s match)",
            matches.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{Meta, Task};

    use super::*;

    fn task(id: &str, service: &str, node: &str) -> Write {
        Write::Put(Object::from(Task {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            service_id: service.into(),
            node_id: node.into(),
            ..Default::default()
        }))
    }

    fn ids<'a>(tasks: impl Iterator<Item = &'a Task>) -> Vec<&'a str> {
        tasks
            .filter_map(|t| t.meta.as_ref())
            .map(|m| m.id.as_str())
            .collect()
    }

    #[test]
    fn tasks_of_a_node_and_of_a_service_follow_every_write() {
        let mut state = State::default();
        state.apply(task("t2", "web", ""), 1);
        state.apply(task("t1", "web", ""), 2);
        state.apply(task("t3", "db", "n1"), 3);
        assert_eq!(ids(state.tasks_of_service("web")), ["t1", "t2"]);
        assert_eq!(ids(state.tasks_of_node("n1")), ["t3"]);
        assert_eq!(ids(state.tasks_of_node("")), ["t1", "t2"]);

        // Scheduled: the task moves from no node to its node.
        state.apply(task("t1", "web", "n1"), 4);
        assert_eq!(ids(state.tasks_of_node("n1")), ["t1", "t3"]);
        assert_eq!(ids(state.tasks_of_node("")), ["t2"]);
        assert_eq!(ids(state.tasks_of_service("web")), ["t1", "t2"]);

        state.apply(Write::Delete(Kind::Task, "t3".into()), 5);
        assert_eq!(ids(state.tasks_of_node("n1")), ["t1"]);
        assert!(state.tasks_of_service("db").next().is_none());
        assert!(state.tasks_of_service("nothing").next().is_none());
    }
}
