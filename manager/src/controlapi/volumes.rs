//! Volumes through the control API. Volumes live on nodes (local driver):
//! the managers know them from the agents' reports (`Node.volumes`), and
//! remove them by asking the node (`Node.volume_removals`, sent with its
//! session), which removes each and reports it gone. A volume a live task
//! mounts is refused here, and again by the agent.

use shoal_proto::control::v1::VolumeOnNode;
use shoal_proto::types::v1::{mount, Node, TaskState};

use crate::store::{State, StoreError, Tx};

/// The services whose live tasks on `node_id` mount the volume `name`.
fn used_by(state: &State, node_id: &str, name: &str) -> Vec<String> {
    let mut services: Vec<String> = state
        .tasks
        .values()
        .filter(|t| t.node_id == node_id)
        .filter(|t| {
            t.desired_state <= TaskState::Running as i32 && !t.observed_state().is_terminal()
        })
        .filter(|t| {
            t.spec
                .as_ref()
                .and_then(|s| s.container.as_ref())
                .is_some_and(|c| {
                    c.mounts
                        .iter()
                        .any(|m| m.r#type() == mount::Type::Volume && m.source == name)
                })
        })
        .map(|t| t.service_name.clone())
        .collect();
    services.sort();
    services.dedup();
    services
}

fn hostname(node: &Node) -> String {
    node.description
        .as_ref()
        .map(|d| d.hostname.clone())
        .unwrap_or_default()
}

pub fn list(state: &State) -> Vec<VolumeOnNode> {
    let mut out: Vec<VolumeOnNode> = state
        .nodes
        .iter()
        .flat_map(|(id, node)| {
            node.volumes.iter().map(move |v| VolumeOnNode {
                node_id: id.clone(),
                node_hostname: hostname(node),
                used_by: used_by(state, id, &v.name),
                volume: Some(v.clone()),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        let name = |x: &VolumeOnNode| {
            x.volume
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default()
        };
        (name(a), &a.node_hostname).cmp(&(name(b), &b.node_hostname))
    });
    out
}

/// Asks every node holding `name` (or only `on`, an id or hostname) to
/// remove it; the node ids asked.
pub fn remove(state: &State, tx: &mut Tx, name: &str, on: &str) -> Result<Vec<String>, StoreError> {
    let holders: Vec<(&String, &Node)> = state
        .nodes
        .iter()
        .filter(|(id, n)| on.is_empty() || *id == on || hostname(n) == on)
        .filter(|(_, n)| n.volumes.iter().any(|v| v.name == name))
        .collect();
    if holders.is_empty() {
        let where_ = if on.is_empty() {
            String::new()
        } else {
            format!(" on node {on}")
        };
        return Err(StoreError::NotFound(format!(
            "no such volume: {name}{where_}"
        )));
    }
    for (id, node) in &holders {
        let users = used_by(state, id, name);
        if !users.is_empty() {
            return Err(StoreError::InvalidArgument(format!(
                "remove {name}: volume is in use by service(s) {} on node {}",
                users.join(", "),
                hostname(node)
            )));
        }
    }
    let mut asked = Vec::new();
    for (id, node) in holders {
        if !node.volume_removals.iter().any(|r| r == name) {
            let mut node = node.clone();
            node.volume_removals.push(name.to_string());
            tx.put(node);
        }
        asked.push(id.clone());
    }
    Ok(asked)
}
