//! The filter pipeline: which nodes may take a task, and, when none may,
//! why (Swarm's explanation: each filter's count of the nodes it refused,
//! most refusals first).

use std::collections::{HashMap, HashSet};

use shoal_proto::types::v1::{Node, NodeAvailability, NodeState, PublishMode, Task, TaskState};

use crate::store::State;

/// The filters in the order they run; a node is counted against the first
/// one it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// Ready and active.
    Ready,
    Constraints,
    HostPorts,
    MaxReplicas,
}

impl Filter {
    const ALL: [Filter; 4] = [
        Filter::Ready,
        Filter::Constraints,
        Filter::HostPorts,
        Filter::MaxReplicas,
    ];

    /// swarmkit's `Explain` of each filter.
    fn explain(self, nodes: usize) -> String {
        let of = |what: &str| match nodes {
            1 => format!("{what} on 1 node"),
            n => format!("{what} on {n} nodes"),
        };
        match self {
            Filter::Ready if nodes == 1 => "1 node not available for new tasks".into(),
            Filter::Ready => format!("{nodes} nodes not available for new tasks"),
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

/// What is placed on each node: tasks per service, in total, and the
/// host-mode ports in use. Kept up to date as a pass places tasks.
#[derive(Default)]
pub struct Load {
    total: HashMap<String, usize>,
    per_service: HashMap<(String, String), usize>,
    host_ports: HashMap<String, HashSet<(i32, u32)>>,
}

fn host_ports(task: &Task) -> impl Iterator<Item = (i32, u32)> + '_ {
    task.endpoint_ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
}

impl Load {
    /// The live tasks (desired running or lower) that have a node.
    pub fn of(state: &State) -> Load {
        let mut load = Load::default();
        for task in state.tasks.values() {
            if !task.node_id.is_empty() && task.desired_state <= TaskState::Running as i32 {
                load.add(&task.node_id.clone(), task);
            }
        }
        load
    }

    pub fn add(&mut self, node: &str, task: &Task) {
        *self.total.entry(node.to_string()).or_default() += 1;
        *self
            .per_service
            .entry((node.to_string(), task.service_id.clone()))
            .or_default() += 1;
        self.host_ports
            .entry(node.to_string())
            .or_default()
            .extend(host_ports(task));
    }

    fn of_service(&self, node: &str, service: &str) -> usize {
        self.per_service
            .get(&(node.to_string(), service.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The spread order: fewest tasks of the service, then fewest overall.
    pub fn key(&self, node: &str, service: &str) -> (usize, usize) {
        (
            self.of_service(node, service),
            self.total.get(node).copied().unwrap_or(0),
        )
    }

    /// The first filter the node fails for this task, if any.
    pub fn refusal(&self, task: &Task, node: &Node) -> Option<Filter> {
        let id = node_id(node);
        let spec = task.spec.clone().unwrap_or_default();
        if !node_accepts_tasks(node) {
            return Some(Filter::Ready);
        }
        if !super::constraint::all_match(&spec.constraints, node) {
            return Some(Filter::Constraints);
        }
        if let Some(used) = self.host_ports.get(id) {
            if host_ports(task).any(|p| used.contains(&p)) {
                return Some(Filter::HostPorts);
            }
        }
        if spec.max_replicas_per_node > 0
            && self.of_service(id, &task.service_id) as u64 >= spec.max_replicas_per_node
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
            e(&[(Filter::Ready, 2), (Filter::HostPorts, 1), (Filter::MaxReplicas, 1)]),
            "no suitable node (2 nodes not available for new tasks; host-mode port already in use on 1 node; max replicas per node limit exceed)"
        );
    }
}
