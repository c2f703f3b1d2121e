//! Placement preferences (`--placement-pref spread=node.labels.zone`):
//! swarmkit's spread. Nodes are grouped by the value of the first
//! descriptor, each group by the value of the next one, and so on (the
//! first preference is outermost); nodes that lack the attribute form a
//! group of their own (the empty value). A task goes to the group with the
//! fewest tasks of its service at the outermost level, then within it to
//! the sub-group with the fewest, and only then do the scheduler's own
//! orders (fewest tasks of the service on the node, then fewest overall)
//! pick among that group's nodes.
//!
//! swarmkit splits a pass's tasks over the groups up front; here each task
//! takes the least loaded eligible group in turn, with the counts kept up to
//! date within the pass, which ends in the same split. A group counts the
//! tasks on all its nodes, also those that may take no new task (as
//! swarmkit counts them); a group with no eligible node gets none.

use std::cmp::Ordering;
use std::collections::HashMap;

use shoal_proto::types::v1::{Node, PlacementPreference};

use super::constraint;
use super::filters::{node_id, Load};

/// The groups of one service's nodes, with its task counts per group.
pub struct Spread {
    descriptors: Vec<String>,
    /// For each node, its group at each level (ids into `tasks`).
    groups: HashMap<String, Vec<usize>>,
    /// Tasks of the service per group.
    tasks: Vec<usize>,
}

/// Why a spread descriptor is refused at create/update, in the words of
/// the constraint keys it may name.
pub fn check_descriptor(descriptor: &str) -> Result<(), String> {
    let known = constraint::attribute(descriptor, &Node::default()).is_some();
    let label = descriptor
        .get(..LABELS.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(LABELS));
    if !known || (label && descriptor.len() == LABELS.len()) {
        return Err(format!(
            "spread descriptor {descriptor:?} is not a node attribute (node.labels.<name>, node.id, node.hostname, node.role, node.platform.os or node.platform.arch)"
        ));
    }
    Ok(())
}

const LABELS: &str = "node.labels.";

/// The descriptors of `preferences` that name a node attribute; others
/// (written before validation refused them) spread over nothing, as
/// swarmkit skips them.
pub fn descriptors(preferences: &[PlacementPreference]) -> Vec<String> {
    preferences
        .iter()
        .map(|p| p.spread_descriptor.clone())
        .filter(|d| check_descriptor(d).is_ok())
        .collect()
}

impl Spread {
    pub fn new(descriptors: Vec<String>, service: &str, nodes: &[&Node], load: &Load) -> Spread {
        let mut ids: HashMap<Vec<String>, usize> = HashMap::new();
        let mut tasks = Vec::new();
        let mut groups = HashMap::new();
        for node in nodes {
            let id = node_id(node);
            let on_node = load.of_service(id, service);
            let mut path = Vec::with_capacity(descriptors.len());
            let mut levels = Vec::with_capacity(descriptors.len());
            for descriptor in &descriptors {
                path.push(constraint::attribute(descriptor, node).unwrap_or_default());
                let group = *ids.entry(path.clone()).or_insert_with(|| {
                    tasks.push(0);
                    tasks.len() - 1
                });
                tasks[group] += on_node;
                levels.push(group);
            }
            groups.insert(id.to_string(), levels);
        }
        Spread {
            descriptors,
            groups,
            tasks,
        }
    }

    /// Whether this spread was built for these descriptors.
    pub fn is_for(&self, descriptors: &[String]) -> bool {
        self.descriptors == descriptors
    }

    /// `Less` when a task should rather go to node `a` than to `b`: a's
    /// group has fewer tasks of the service at the first level where the
    /// two differ.
    pub fn order(&self, a: &str, b: &str) -> Ordering {
        let (Some(a), Some(b)) = (self.groups.get(a), self.groups.get(b)) else {
            return Ordering::Equal;
        };
        a.iter()
            .zip(b)
            .map(|(ga, gb)| self.tasks[*ga].cmp(&self.tasks[*gb]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// A task of the service placed on the node.
    pub fn add(&mut self, node: &str) {
        if let Some(levels) = self.groups.get(node) {
            for group in levels {
                self.tasks[*group] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_name_node_attributes() {
        for ok in [
            "node.labels.zone",
            "node.labels.Rack",
            "NODE.LABELS.zone",
            "node.hostname",
            "node.platform.arch",
            "node.role",
        ] {
            assert!(check_descriptor(ok).is_ok(), "{ok}");
        }
        for bad in ["", "zone", "node.labels.", "node.labels", "engine.labels.x"] {
            let err = check_descriptor(bad).expect_err(bad);
            assert!(err.contains("is not a node attribute"), "{err}");
        }
        let prefs: Vec<PlacementPreference> = ["node.labels.zone", "labels.zone"]
            .iter()
            .map(|d| PlacementPreference {
                spread_descriptor: d.to_string(),
            })
            .collect();
        assert_eq!(descriptors(&prefs), ["node.labels.zone"]);
    }
}
