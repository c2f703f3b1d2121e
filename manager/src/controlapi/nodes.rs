//! Node management through the control API.

use std::collections::HashMap;

use shoal_proto::types::v1::{Node, NodeAvailability, NodeRole, NodeState, TaskState};

use crate::store::{Kind, State, StoreError, Tx};

/// The node a reference names: full id, else exact hostname, else unique
/// id prefix (docker's order: a hostname that happens to begin another
/// node's id still names its node).
pub fn find<'a>(state: &'a State, reference: &str) -> Result<&'a Node, StoreError> {
    if let Some(n) = state.nodes.get(reference) {
        return Ok(n);
    }
    let by_hostname: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| {
            n.description
                .as_ref()
                .is_some_and(|d| d.hostname == reference)
        })
        .collect();
    let matches: Vec<&Node> = if by_hostname.is_empty() {
        state
            .nodes
            .iter()
            .filter(|(id, _)| !reference.is_empty() && id.starts_with(reference))
            .map(|(_, n)| n)
            .collect()
    } else {
        by_hostname
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(StoreError::NotFound(format!("node {reference} not found"))),
        _ => Err(StoreError::InvalidArgument(format!(
            "node {reference} is ambiguous ({} nodes match): use the node id",
            matches.len()
        ))),
    }
}

/// `node promote|demote`: sets the node's desired role; the leader's role
/// manager and the node's agent carry it out. `refusal` says why removing
/// a Raft voter would break the managers' quorum, if it would.
pub fn set_role(
    state: &State,
    tx: &mut Tx,
    reference: &str,
    role: NodeRole,
    refusal: impl Fn(u64) -> Option<String>,
) -> Result<(Node, bool), StoreError> {
    let mut node = find(state, reference)?.clone();
    let id = node.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    if role == NodeRole::Worker {
        if let Some(ms) = &node.manager_status {
            if let Some(why) = refusal(ms.raft_id) {
                return Err(StoreError::InvalidArgument(format!(
                    "can't demote node {id}: {why}; demoting it would leave the swarm without a quorum of managers"
                )));
            }
        }
    }
    let spec = node.spec.get_or_insert_with(Default::default);
    let changed = spec.desired_role != role as i32;
    if changed {
        spec.desired_role = role as i32;
        tx.put(node.clone());
    }
    Ok((node, changed))
}

/// `node rm`: the node is forgotten, which refuses its certificate from the
/// next call on; its tasks are orphaned and rescheduled elsewhere.
pub fn remove(state: &State, tx: &mut Tx, reference: &str, force: bool) -> Result<(), StoreError> {
    let node = find(state, reference)?;
    let id = node.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    if node.manager_status.is_some() {
        return Err(StoreError::InvalidArgument(format!(
            "node {id} is a cluster manager and a member of the raft cluster: demote it to a worker before removing it (`shoal node demote {id}`)"
        )));
    }
    let ready = node
        .status
        .as_ref()
        .is_some_and(|s| s.state == NodeState::Ready as i32);
    if ready && !force {
        return Err(StoreError::InvalidArgument(format!(
            "node {id} is not down and can't be removed: stop it first, or use --force"
        )));
    }
    tx.delete(Kind::Node, &id);
    for task in state.tasks_of_node(&id) {
        if task.observed_state().is_terminal() {
            continue;
        }
        let mut task = task.clone();
        let status = task.status.get_or_insert_with(Default::default);
        status.state = TaskState::Orphaned as i32;
        status.message = "node removed from the cluster".into();
        status.timestamp = tx.now();
        tx.put(task);
    }
    Ok(())
}

/// What `node update` changes besides the role.
#[derive(Debug, Default, Clone)]
pub struct NodeChange {
    pub availability: Option<NodeAvailability>,
    pub label_add: HashMap<String, String>,
    pub label_rm: Vec<String>,
}

/// `node update --availability --label-add --label-rm`: the node's spec,
/// which the scheduler and the orchestrator follow (pause: no new tasks;
/// drain: its tasks move elsewhere). Removing a label the node does not
/// have is refused, as docker does.
pub fn update(
    state: &State,
    tx: &mut Tx,
    reference: &str,
    change: &NodeChange,
) -> Result<(Node, bool), StoreError> {
    let node = find(state, reference)?.clone();
    update_node(state, tx, node, change)
}

/// [`update`] on a node already looked up (and maybe changed in this
/// transaction).
pub fn update_node(
    _state: &State,
    tx: &mut Tx,
    mut node: Node,
    change: &NodeChange,
) -> Result<(Node, bool), StoreError> {
    let before = node.spec.clone();
    let spec = node.spec.get_or_insert_with(Default::default);
    for key in &change.label_rm {
        if spec.labels.remove(key).is_none() {
            return Err(StoreError::InvalidArgument(format!(
                "key {key} doesn't exist in node's labels"
            )));
        }
    }
    for (key, value) in &change.label_add {
        spec.labels.insert(key.clone(), value.clone());
    }
    if let Some(availability) = change.availability {
        spec.availability = availability as i32;
    }
    super::validate::node_spec(spec)?;
    let changed = node.spec != before;
    if changed {
        tx.put(node.clone());
    }
    Ok((node, changed))
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{Meta, NodeDescription};

    use super::*;

    fn node(id: &str, hostname: &str) -> Node {
        Node {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: hostname.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_hostname_names_its_node_even_when_it_begins_another_nodes_id() {
        let mut state = State::default();
        for (id, host) in [("w1k2j3", "m1"), ("abc123", "w1"), ("abd456", "w2")] {
            state.nodes.insert(id.into(), node(id, host));
        }
        let id = |r: &str| find(&state, r).map(|n| n.meta.clone().unwrap_or_default().id);
        assert_eq!(
            id("w1").unwrap(),
            "abc123",
            "the hostname, not the id prefix"
        );
        assert_eq!(id("w1k").unwrap(), "w1k2j3", "an id prefix");
        assert_eq!(id("w1k2j3").unwrap(), "w1k2j3");
        assert!(id("ab").unwrap_err().to_string().contains("ambiguous"));
        assert!(id("zz").unwrap_err().to_string().contains("not found"));
    }
}
