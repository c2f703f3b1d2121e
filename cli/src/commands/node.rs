//! `shoal node ...`: the cluster's nodes.

use clap::{Args, Subcommand};
use serde_json::json;
use shoal_proto::control::v1::ListNodesRequest;
use shoal_proto::types::v1::{Node, NodeAvailability, NodeRole, NodeState};

use super::{Error, Io};
use crate::client::{Host, Session};
use crate::output::Listing;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove one or more nodes from the swarm
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote(NodesArgs),
    /// Demote one or more nodes from manager in the swarm
    Demote(NodesArgs),
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force remove a node from the swarm
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(
    session: &mut Session,
    command: NodeCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        NodeCommand::Ls(args) => ls(session, args, io).await,
        NodeCommand::Rm(args) => rm(session, args, io).await,
        NodeCommand::Promote(args) => set_role(session, args, NodeRole::Manager, io).await,
        NodeCommand::Demote(args) => set_role(session, args, NodeRole::Worker, io).await,
    }
}

/// `node promote|demote`: the managers carry it out (Raft membership, then
/// the node's certificate and its manager process).
async fn set_role(
    session: &mut Session,
    args: NodesArgs,
    role: NodeRole,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut errors = Vec::new();
    for node in args.nodes {
        let request = shoal_proto::control::v1::UpdateNodeRequest {
            node: node.clone(),
            role: Some(role as i32),
            ..Default::default()
        };
        let changed = match session.client.update_node(request).await {
            Ok(reply) => reply.into_inner().changed,
            Err(e) => {
                errors.push(Error::Rpc(e));
                continue;
            }
        };
        match (role, !changed) {
            (NodeRole::Manager, true) => writeln!(io.out, "Node {node} is already a manager.")?,
            (NodeRole::Manager, false) => {
                writeln!(io.out, "Node {node} promoted to a manager in the swarm.")?
            }
            (NodeRole::Worker, true) => writeln!(io.out, "Node {node} is already a worker.")?,
            (NodeRole::Worker, false) => writeln!(io.out, "Manager {node} demoted in the swarm.")?,
        }
    }
    super::collect_errors(errors)
}

pub async fn rm(session: &mut Session, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for node in args.nodes {
        let request = shoal_proto::control::v1::RemoveNodeRequest {
            node: node.clone(),
            force: args.force,
        };
        match session.client.remove_node(request).await {
            Ok(_) => writeln!(io.out, "{node}")?,
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    super::collect_errors(errors)
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut nodes = session
        .client
        .list_nodes(ListNodesRequest {})
        .await?
        .into_inner()
        .nodes;
    nodes.sort_by(|a, b| {
        hostname(a)
            .cmp(hostname(b))
            .then(node_id(a).cmp(node_id(b)))
    });
    if args.quiet {
        for node in &nodes {
            writeln!(io.out, "{}", node_id(node))?;
        }
        return Ok(());
    }
    let me = self_node(&nodes, session);
    node_listing(&nodes, me.as_deref()).write(io.format, io.out)?;
    Ok(())
}

/// Docker's `node ls`: the node the CLI talks to is marked `*` after its id.
pub fn node_listing(nodes: &[Node], self_id: Option<&str>) -> Listing {
    let mut listing = Listing::new(&["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"]);
    for node in nodes {
        let id = node_id(node);
        let is_self = self_id == Some(id);
        let status = state_name(node);
        let availability = availability_name(node);
        let manager = manager_status(node);
        let shown_id = if is_self {
            format!("{id} *")
        } else {
            id.to_string()
        };
        listing.push(
            vec![
                shown_id,
                hostname(node).to_string(),
                status.to_string(),
                availability.to_string(),
                manager.clone(),
            ],
            json!({
                "ID": id,
                "Self": is_self,
                "Hostname": hostname(node),
                "Status": status,
                "Availability": availability,
                "ManagerStatus": manager,
                "Addr": node.status.as_ref().map(|s| s.addr.as_str()).unwrap_or(""),
            }),
        );
    }
    listing
}

/// The node this CLI is connected to, when that can be told: the node whose certificate
/// the CLI holds, the manager at the --host address, or for the local socket, the only node
/// with this machine's hostname.
fn self_node(nodes: &[Node], session: &Session) -> Option<String> {
    if let Some(id) = &session.cert_node_id {
        if nodes.iter().any(|n| node_id(n) == id) {
            return Some(id.clone());
        }
    }
    let candidates: Vec<&Node> = match &session.host {
        Host::Tcp(addr) => nodes
            .iter()
            .filter(|n| n.manager_status.as_ref().is_some_and(|m| &m.addr == addr))
            .collect(),
        Host::Unix(_) => {
            let me = super::swarm::local_hostname();
            nodes
                .iter()
                .filter(|n| n.manager_status.is_some() && hostname(n) == me)
                .collect()
        }
    };
    match candidates.as_slice() {
        [only] => Some(node_id(only).to_string()),
        _ => None,
    }
}

pub fn node_id(node: &Node) -> &str {
    node.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

pub fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or("")
}

pub fn state_name(node: &Node) -> &'static str {
    let raw = node.status.as_ref().map(|s| s.state).unwrap_or(0);
    match NodeState::try_from(raw).unwrap_or(NodeState::Unknown) {
        NodeState::Unknown => "Unknown",
        NodeState::Down => "Down",
        NodeState::Ready => "Ready",
        NodeState::Disconnected => "Disconnected",
    }
}

pub fn availability_name(node: &Node) -> &'static str {
    let raw = node.spec.as_ref().map(|s| s.availability).unwrap_or(0);
    match NodeAvailability::try_from(raw).unwrap_or(NodeAvailability::Active) {
        NodeAvailability::Active => "Active",
        NodeAvailability::Pause => "Pause",
        NodeAvailability::Drain => "Drain",
    }
}

/// `Leader`, else the manager's reachability (`Reachable`/`Unreachable`); empty for workers.
pub fn manager_status(node: &Node) -> String {
    match &node.manager_status {
        None => String::new(),
        Some(m) if m.leader => "Leader".into(),
        Some(m) if m.reachability.is_empty() => "Reachable".into(),
        Some(m) => crate::output::capitalize(&m.reachability.to_ascii_lowercase()),
    }
}

/// Hostnames by node id, for task tables.
pub fn hostnames(nodes: &[Node]) -> std::collections::HashMap<String, String> {
    nodes
        .iter()
        .map(|n| (node_id(n).to_string(), hostname(n).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{ManagerStatus, Meta, NodeDescription, NodeSpec, NodeStatus};

    fn node(id: &str, host: &str, state: NodeState, manager: Option<ManagerStatus>) -> Node {
        Node {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            spec: Some(NodeSpec {
                availability: NodeAvailability::Active as i32,
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: host.into(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: state as i32,
                ..Default::default()
            }),
            manager_status: manager,
            role: 0,
            ..Default::default()
        }
    }

    #[test]
    fn node_table_marks_self_and_names_manager_status() {
        let nodes = [
            node(
                "n1",
                "m1",
                NodeState::Ready,
                Some(ManagerStatus {
                    leader: true,
                    ..Default::default()
                }),
            ),
            node(
                "n2",
                "m2",
                NodeState::Down,
                Some(ManagerStatus {
                    reachability: "unreachable".into(),
                    ..Default::default()
                }),
            ),
            node("n3", "w1", NodeState::Ready, None),
        ];
        let listing = node_listing(&nodes, Some("n2"));
        let table = crate::output::table(
            listing.headers.iter().map(|h| h.to_string()).collect(),
            &listing.rows,
        );
        assert_eq!(
            table,
            "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS\n\
             n1        m1         Ready     Active         Leader\n\
             n2 *      m2         Down      Active         Unreachable\n\
             n3        w1         Ready     Active\n"
        );
        assert_eq!(listing.json[1]["ID"], "n2");
        assert_eq!(listing.json[1]["Self"], true);
        assert_eq!(listing.json[0]["Status"], "Ready");
        assert_eq!(listing.json[2]["ManagerStatus"], "");
    }
}
