//! The filter pipeline: which nodes may take a task, and, when none may,
//! why (Swarm's explanation: each filter's count of the nodes it refused,
//! most refusals first). The order is swarmkit's: ready, resources,
//! constraints, host ports, max replicas.

use std::collections::{HashMap, HashSet};

use shoal_proto::types::v1::{
    Node, NodeAvailability, NodeState, PortConfig, PublishMode, Task, TaskSpec, TaskState,
};

use super::constraint::{self, Constraint};
use crate::store::State;

/// The filters in the order they run; a node is counted against the first
/// one it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// Ready and active.
    Ready,
    /// The task's CPU reservation is more than the node has unreserved.
    Cpu,
    /// The task's memory reservation is more than the node has unreserved.
    Memory,
    Constraints,
    HostPorts,
    MaxReplicas,
}

impl Filter {
    const ALL: [Filter; 6] = [
        Filter::Ready,
        Filter::Cpu,
        Filter::Memory,
        Filter::Constraints,
        Filter::HostPorts,
        Filter::MaxReplicas,
    ];

    /// swarmkit's `Explain` of each filter; the resource filter says which
    /// resource fell short (swarmkit's says "insufficient resources on N
    /// nodes").
    fn explain(self, nodes: usize) -> String {
        let of = |what: &str| match nodes {
            1 => format!("{what} on 1 node"),
            n => format!("{what} on {n} nodes"),
        };
        let had = |what: &str| match nodes {
            1 => format!("1 node had {what}"),
            n => format!("{n} nodes had {what}"),
        };
        match self {
            Filter::Ready if nodes == 1 => "1 node not available for new tasks".into(),
            Filter::Ready => format!("{nodes} nodes not available for new tasks"),
            Filter::Cpu => had("insufficient CPU"),
            Filter::Memory => had("insufficient memory"),
            Filter::Constraints => of("scheduling constraints not satisfied"),
            Filter::HostPorts => of("host-mode port already in use"),
            Filter::MaxReplicas => "max replicas per node limit exceed".into(),
        }
    }
}

pub fn node_id(node: &Node) -> &str {
    node.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

/// Ready and active: may take new tasks.
pub fn node_accepts_tasks(node: &Node) -> bool {
    node_ready(node) && availability(node) == NodeAvailability::Active
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .is_some_and(|s| s.state == NodeState::Ready as i32)
}

pub fn availability(node: &Node) -> NodeAvailability {
    node.spec
        .as_ref()
        .and_then(|s| NodeAvailability::try_from(s.availability).ok())
        .unwrap_or(NodeAvailability::Active)
}

/// What is placed on each node: tasks per service, in total, the
/// host-mode ports in use and the resources reserved. Kept up to date as a
/// pass places tasks. Keys borrow from the state the pass reads, so a
/// lookup allocates nothing (a pass asks it for every task and node).
#[derive(Default)]
pub struct Load<'a> {
    total: HashMap<&'a str, usize>,
    /// Service, then node.
    per_service: HashMap<&'a str, HashMap<&'a str, usize>>,
    host_ports: HashMap<&'a str, HashSet<(i32, u32)>>,
    reserved: HashMap<&'a str, Reserved>,
}

/// Resources the tasks on a node reserve.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

impl Reserved {
    pub fn of(task: &Task) -> Reserved {
        Self::of_spec(task.spec.as_ref())
    }

    fn of_spec(spec: Option<&TaskSpec>) -> Reserved {
        let r = spec.and_then(|s| s.resources.as_ref());
        Reserved {
            nano_cpus: r.map_or(0, |r| r.reserve_nano_cpus.max(0)),
            memory_bytes: r.map_or(0, |r| r.reserve_memory_bytes.max(0)),
        }
    }

    fn is_none(&self) -> bool {
        *self == Reserved::default()
    }
}

/// Whether a task holds its reservation on its node: swarmkit's rule, from
/// assigned until it is no longer running (a task told to stop holds it
/// until it has stopped; a pending one not yet).
fn holds_reservation(task: &Task) -> bool {
    let state = task.observed_state();
    !task.node_id.is_empty() && state >= TaskState::Assigned && state <= TaskState::Running
}

fn host_ports(task: &Task) -> impl Iterator<Item = (i32, u32)> + '_ {
    task.endpoint_ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
}

/// What the filters need of a task, worked out once for all the pending
/// tasks of a service that share its spec and ports (a pass checks each
/// of them against every node).
pub struct Placement<'a> {
    service_id: &'a str,
    spec: Option<&'a TaskSpec>,
    endpoint_ports: &'a [PortConfig],
    /// `None` when a constraint does not parse: it matches no node (the
    /// control API refuses such specs; this is for older ones).
    constraints: Option<Vec<Constraint>>,
    wants: Reserved,
    host_ports: Vec<(i32, u32)>,
    max_replicas: u64,
}

impl<'a> Placement<'a> {
    pub fn of(task: &'a Task) -> Placement<'a> {
        let spec = task.spec.as_ref();
        let constraints = spec
            .map_or(&[][..], |s| &s.constraints)
            .iter()
            .map(|e| constraint::parse(e).ok())
            .collect();
        Placement {
            service_id: &task.service_id,
            spec,
            endpoint_ports: &task.endpoint_ports,
            constraints,
            wants: Reserved::of_spec(spec),
            host_ports: host_ports(task).collect(),
            max_replicas: spec.map_or(0, |s| s.max_replicas_per_node),
        }
    }

    /// Whether every node that passes [`Placement::fits_node`] has room
    /// for it whatever is placed: it reserves nothing, publishes no host
    /// port and has no per-node limit.
    pub fn always_has_room(&self) -> bool {
        self.wants.is_none() && self.host_ports.is_empty() && self.max_replicas == 0
    }

    /// Whether `task` may be placed with this placement.
    pub fn is_for(&self, task: &Task) -> bool {
        task.service_id == self.service_id
            && task.spec.as_ref() == self.spec
            && task.endpoint_ports == self.endpoint_ports
    }

    /// The filters that do not depend on what a pass places: the node
    /// takes new tasks and meets the constraints.
    pub fn fits_node(&self, node: &Node) -> bool {
        node_accepts_tasks(node) && self.meets_constraints(node)
    }

    fn meets_constraints(&self, node: &Node) -> bool {
        self.constraints
            .as_ref()
            .is_some_and(|cs| cs.iter().all(|c| c.matches(node)))
    }
}

impl<'a> Load<'a> {
    /// The live tasks (desired running or lower) that have a node, and the
    /// reservations of the tasks that hold one.
    pub fn of(state: &'a State) -> Load<'a> {
        let mut load = Load::default();
        for task in state.tasks.values() {
            if !task.node_id.is_empty() && task.desired_state <= TaskState::Running as i32 {
                load.count(&task.node_id, task);
            }
            if holds_reservation(task) {
                load.reserve(&task.node_id, task);
            }
        }
        load
    }

    /// A task placed on the node in this pass.
    pub fn add(&mut self, node: &'a str, task: &'a Task) {
        self.count(node, task);
        self.reserve(node, task);
    }

    fn reserve(&mut self, node: &'a str, task: &Task) {
        let r = Reserved::of(task);
        if r.is_none() {
            return;
        }
        let reserved = self.reserved.entry(node).or_default();
        reserved.nano_cpus = reserved.nano_cpus.saturating_add(r.nano_cpus);
        reserved.memory_bytes = reserved.memory_bytes.saturating_add(r.memory_bytes);
    }

    /// What the node has that no task reserves (never below zero).
    fn unreserved(&self, node: &Node) -> Reserved {
        let has = node.description.as_ref();
        let reserved = self
            .reserved
            .get(node_id(node))
            .copied()
            .unwrap_or_default();
        Reserved {
            nano_cpus: (has.map_or(0, |d| d.nano_cpus) - reserved.nano_cpus).max(0),
            memory_bytes: (has.map_or(0, |d| d.memory_bytes) - reserved.memory_bytes).max(0),
        }
    }

    fn count(&mut self, node: &'a str, task: &'a Task) {
        *self.total.entry(node).or_default() += 1;
        *self
            .per_service
            .entry(&task.service_id)
            .or_default()
            .entry(node)
            .or_default() += 1;
        let ports = host_ports(task).peekable().peek().is_some();
        if ports {
            self.host_ports
                .entry(node)
                .or_default()
                .extend(host_ports(task));
        }
    }

    pub fn of_service(&self, node: &str, service: &str) -> usize {
        self.service_counts(service)
            .and_then(|on| on.get(node))
            .copied()
            .unwrap_or(0)
    }

    /// The service's tasks per node (`None`: it has none placed).
    pub fn service_counts(&self, service: &str) -> Option<&HashMap<&'a str, usize>> {
        self.per_service.get(service)
    }

    pub fn total(&self, node: &str) -> usize {
        self.total.get(node).copied().unwrap_or(0)
    }

    /// The filters that depend on what is placed (resources, host ports,
    /// max replicas), for a node that passed `Placement::fits_node`.
    pub fn has_room(&self, placement: &Placement, node: &Node) -> bool {
        self.room_refusal(placement, node).is_none()
    }

    /// The first filter the node fails for the placement, if any, in the
    /// pipeline's order (what a pending task's reason counts).
    pub fn refusal(&self, placement: &Placement, node: &Node) -> Option<Filter> {
        if !node_accepts_tasks(node) {
            return Some(Filter::Ready);
        }
        if let Some(f @ (Filter::Cpu | Filter::Memory)) = self.room_refusal(placement, node) {
            return Some(f);
        }
        if !placement.meets_constraints(node) {
            return Some(Filter::Constraints);
        }
        self.room_refusal(placement, node)
    }

    fn room_refusal(&self, placement: &Placement, node: &Node) -> Option<Filter> {
        let id = node_id(node);
        // swarmkit's ResourceFilter: only for tasks that reserve something.
        if !placement.wants.is_none() {
            let free = self.unreserved(node);
            if placement.wants.nano_cpus > free.nano_cpus {
                return Some(Filter::Cpu);
            }
            if placement.wants.memory_bytes > free.memory_bytes {
                return Some(Filter::Memory);
            }
        }
        if !placement.host_ports.is_empty() {
            if let Some(used) = self.host_ports.get(id) {
                if placement.host_ports.iter().any(|p| used.contains(p)) {
                    return Some(Filter::HostPorts);
                }
            }
        }
        if placement.max_replicas > 0
            && self.of_service(id, placement.service_id) as u64 >= placement.max_replicas
        {
            return Some(Filter::MaxReplicas);
        }
        None
    }
}

/// Swarm's "no suitable node (...)" from each filter's refusals.
pub fn explain(refusals: &HashMap<Filter, usize>) -> String {
    let mut counted: Vec<(Filter, usize)> = Filter::ALL
        .iter()
        .filter_map(|f| refusals.get(f).map(|n| (*f, *n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    // Most refusals first; ties keep the pipeline's order.
    counted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    if counted.is_empty() {
        return super::NO_NODE.to_string();
    }
    let parts: Vec<String> = counted.iter().map(|(f, n)| f.explain(*n)).collect();
    format!("{} ({})", super::NO_NODE, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_read_as_swarms() {
        let e = |pairs: &[(Filter, usize)]| explain(&pairs.iter().copied().collect());
        assert_eq!(e(&[]), "no suitable node");
        assert_eq!(
            e(&[(Filter::Constraints, 3)]),
            "no suitable node (scheduling constraints not satisfied on 3 nodes)"
        );
        assert_eq!(
            e(&[(Filter::Ready, 1), (Filter::Constraints, 2)]),
            "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)"
        );
        assert_eq!(
            e(&[(Filter::Ready, 1), (Filter::Memory, 2)]),
            "no suitable node (2 nodes had insufficient memory; 1 node not available for new tasks)"
        );
        assert_eq!(
            e(&[(Filter::Memory, 1), (Filter::Cpu, 1)]),
            "no suitable node (1 node had insufficient CPU; 1 node had insufficient memory)"
        );
        assert_eq!(
            e(&[(Filter::Ready, 2), (Filter::HostPorts, 1), (Filter::MaxReplicas, 1)]),
            "no suitable node (2 nodes not available for new tasks; host-mode port already in use on 1 node; max replicas per node limit exceed)"
        );
    }
}
