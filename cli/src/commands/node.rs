//! `shoal node ...`: the cluster's nodes.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shoal_proto::control::v1::{GetRootCaRequest, ListNodesRequest};
use shoal_proto::types::v1::{Node, NodeAvailability, NodeRole, NodeState};

use std::collections::HashMap;

use super::tasks::{self, PsFlags};
use super::{Error, Io};
use crate::client::{Host, Session};
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::natural_cmp;

/// docker's `node ls` columns (`cli/command/node/formatter.go`), without
/// `ENGINE VERSION`: a shoal node runs no docker engine.
pub const NODE_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "ID"),
        ("Self", ""),
        ("Hostname", "HOSTNAME"),
        ("Status", "STATUS"),
        ("Availability", "AVAILABILITY"),
        ("ManagerStatus", "MANAGER STATUS"),
        ("TLSStatus", "TLS STATUS"),
    ],
    table: "table {{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}",
    quiet: "{{.ID}}",
};

/// docker's `node ls` filters but `label`, which matches docker engine
/// labels (shoal's node labels are `node.label`).
pub const NODE_FILTERS: FilterKeys = FilterKeys {
    command: "node ls",
    keys: &[
        FilterKey::any("id"),
        FilterKey::one_of("membership", &["accepted", "pending"]),
        FilterKey::any("name"),
        FilterKey::any("node.label"),
        FilterKey::one_of("role", &["manager", "worker"]),
    ],
};

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
    /// Update a node
    Update(UpdateArgs),
    /// Display detailed information on one or more nodes
    Inspect(InspectArgs),
    /// List tasks running on one or more nodes, defaults to current node
    #[command(after_help = "Examples:
  shoal node ps
  shoal node ps -f desired-state=running w1 w2
  shoal node ps --format '{{.Name}} {{.CurrentState}}' w1")]
    Ps(PsArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long, value_parser = parse_availability)]
    pub availability: Option<NodeAvailability>,
    /// Add or update a node label (`key=value`)
    #[arg(long = "label-add", value_name = "LIST")]
    pub label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long = "label-rm", value_name = "LIST")]
    pub label_rm: Vec<String>,
    /// Role of the node ("worker", "manager"), as `node promote|demote`
    #[arg(long, value_parser = ["worker", "manager"])]
    pub role: Option<String>,
    pub node: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal node inspect self
  shoal node inspect --pretty w1
  shoal node inspect -f '{{.Description.Hostname}} {{.Status.Addr}}' m1 w1")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse,
          help = INSPECT_HELP, conflicts_with = "pretty")]
    pub format: Option<InspectFormat>,
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub flags: PsFlags,
    /// Nodes (id, id prefix, hostname, or `self`); the current node when none
    pub nodes: Vec<String>,
}

/// docker's spellings, any case.
pub fn parse_availability(input: &str) -> Result<NodeAvailability, String> {
    match input.to_ascii_lowercase().as_str() {
        "active" => Ok(NodeAvailability::Active),
        "pause" => Ok(NodeAvailability::Pause),
        "drain" => Ok(NodeAvailability::Drain),
        _ => Err(format!(
            "invalid availability {input:?}: only active, pause and drain are supported"
        )),
    }
}

/// `--label-add key=value` (a key alone: the empty value), as docker reads it.
pub fn label_adds(list: &[String]) -> Result<HashMap<String, String>, Error> {
    let mut labels = HashMap::new();
    for entry in list {
        let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        if key.trim().is_empty() {
            return Err(Error::Usage(format!("invalid label {entry:?}: empty name")));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
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
#[command(after_help = "Examples:
  shoal node ls
  shoal node ls -f role=manager -f node.label=zone=b
  shoal node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")]
pub struct LsArgs {
    /// Filter output based on conditions provided (id=, membership=, name=,
    /// node.label=KEY[=VALUE], role=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| NODE_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
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
        NodeCommand::Update(args) => update(session, args, io).await,
        NodeCommand::Inspect(args) => inspect(session, args, io).await,
        NodeCommand::Ps(args) => ps(session, args, io).await,
    }
}

/// `node update`: the manager checks and applies it (docker changes the
/// spec on the client side and writes it back).
async fn update(session: &mut Session, args: UpdateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let request = update_request(&args)?;
    session.client.update_node(request).await?;
    writeln!(io.out, "{}", args.node)?;
    Ok(())
}

/// What `node update` asks of the manager.
fn update_request(args: &UpdateArgs) -> Result<shoal_proto::control::v1::UpdateNodeRequest, Error> {
    let request = shoal_proto::control::v1::UpdateNodeRequest {
        node: args.node.clone(),
        role: args.role.as_deref().map(|role| match role {
            "manager" => NodeRole::Manager as i32,
            _ => NodeRole::Worker as i32,
        }),
        availability: args.availability.map(|a| a as i32),
        label_add: label_adds(&args.label_add)?,
        label_rm: args.label_rm.clone(),
    };
    if request.role.is_none()
        && request.availability.is_none()
        && request.label_add.is_empty()
        && request.label_rm.is_empty()
    {
        return Err(Error::Usage(
            "node update: give --availability, --label-add, --label-rm or --role".into(),
        ));
    }
    Ok(request)
}

/// Every node of the cluster.
pub async fn list(session: &mut Session) -> Result<Vec<Node>, Error> {
    Ok(session
        .client
        .list_nodes(ListNodesRequest {})
        .await?
        .into_inner()
        .nodes)
}

/// The node a reference names, as the manager resolves one: full id, exact
/// hostname or unique id prefix; `self` is the node the CLI talks to.
fn resolve<'a>(nodes: &'a [Node], reference: &str, me: Option<&str>) -> Result<&'a Node, Error> {
    let reference = match (reference, me) {
        ("self", Some(me)) => me,
        ("self", None) => {
            return Err(Error::Input(
                "the current node is not known here: name the node".into(),
            ))
        }
        (r, _) => r,
    };
    if let Some(n) = nodes.iter().find(|n| node_id(n) == reference) {
        return Ok(n);
    }
    // A hostname before an id prefix, as the managers read a reference.
    let by_hostname: Vec<&Node> = nodes.iter().filter(|n| hostname(n) == reference).collect();
    let matches: Vec<&Node> = if by_hostname.is_empty() {
        nodes
            .iter()
            .filter(|n| !reference.is_empty() && node_id(n).starts_with(reference))
            .collect()
    } else {
        by_hostname
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Input(format!("no such node: {reference}"))),
        _ => Err(Error::Input(format!(
            "node {reference} is ambiguous ({} matches)",
            matches.len()
        ))),
    }
}

async fn inspect(session: &mut Session, args: InspectArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let nodes = list(session).await?;
    let me = self_node(&nodes, session);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for reference in &args.nodes {
        match resolve(&nodes, reference, me.as_deref()) {
            Ok(node) => found.push(node),
            Err(e) => errors.push(e),
        }
    }
    if args.pretty {
        for (i, node) in found.iter().enumerate() {
            if i > 0 {
                writeln!(io.out)?;
            }
            io.out.write_all(pretty(node).as_bytes())?;
        }
        return super::collect_errors(errors);
    }
    let objects = found.iter().map(|n| node_json(n)).collect();
    let format = args.format.unwrap_or_default();
    super::inspect::write_inspected(objects, errors, &format, io.out)
}

async fn ps(session: &mut Session, args: PsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let nodes = list(session).await?;
    let me = self_node(&nodes, session);
    let references = if args.nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        args.nodes.clone()
    };
    let mut ids = Vec::new();
    for reference in &references {
        ids.push(node_id(resolve(&nodes, reference, me.as_deref())?).to_string());
    }
    let request = shoal_proto::control::v1::ListTasksRequest {
        node_ids: ids,
        ..Default::default()
    };
    tasks::ps_of(session, request, &args.flags, io).await
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// docker's `node inspect`: `Spec` (labels, role, availability),
/// `Description` (hostname, platform, resources), `Status`, `ManagerStatus`.
pub fn node_json(node: &Node) -> serde_json::Value {
    let meta = node.meta.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let labels: std::collections::BTreeMap<&String, &String> = spec.labels.iter().collect();
    let mut value = json!({
        "ID": meta.id,
        "Version": { "Index": meta.version },
        "CreatedAt": crate::output::rfc3339(meta.created_at),
        "UpdatedAt": crate::output::rfc3339(meta.updated_at),
        "Spec": {
            "Labels": labels,
            "Role": lower(role_name(spec.desired_role)),
            "Availability": lower(availability_name(node)),
        },
        "Description": {
            "Hostname": description.hostname,
            "Platform": {
                "Architecture": description.architecture,
                "OS": description.os,
            },
            "Resources": {
                "NanoCPUs": description.nano_cpus,
                "MemoryBytes": description.memory_bytes,
            },
        },
        "Status": {
            "State": lower(state_name(node)),
            "Message": node.status.as_ref().map(|s| s.message.as_str()).unwrap_or(""),
            "Addr": node.status.as_ref().map(|s| s.addr.as_str()).unwrap_or(""),
        },
    });
    if let Some(m) = &node.manager_status {
        value["ManagerStatus"] = json!({
            "Leader": m.leader,
            "Reachability": if m.reachability.is_empty() { "reachable".to_string() } else { lower(&m.reachability) },
            "Addr": m.addr,
        });
    }
    value
}

fn role_name(raw: i32) -> &'static str {
    if raw == NodeRole::Manager as i32 {
        "Manager"
    } else {
        "Worker"
    }
}

/// docker's `node inspect --pretty`.
pub fn pretty(node: &Node) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let meta = node.meta.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let line = |t: &mut String, key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(t, "{:<23} {value}", format!("{key}:"));
    };
    line(&mut t, "ID", &meta.id);
    if !spec.labels.is_empty() {
        let _ = writeln!(t, "Labels:");
        let labels: std::collections::BTreeMap<&String, &String> = spec.labels.iter().collect();
        for (k, v) in labels {
            let _ = writeln!(t, " - {k}={v}");
        }
    }
    line(&mut t, "Hostname", &description.hostname);
    line(
        &mut t,
        "Joined at",
        &crate::output::rfc3339(meta.created_at),
    );
    let _ = writeln!(t, "Status:");
    line(&mut t, " State", &state_name(node));
    if let Some(message) = node
        .status
        .as_ref()
        .map(|s| &s.message)
        .filter(|m| !m.is_empty())
    {
        line(&mut t, " Message", message);
    }
    line(&mut t, " Availability", &availability_name(node));
    line(
        &mut t,
        " Address",
        &node.status.as_ref().map(|s| s.addr.as_str()).unwrap_or(""),
    );
    if let Some(m) = &node.manager_status {
        let _ = writeln!(t, "Manager Status:");
        line(&mut t, " Address", &m.addr);
        line(
            &mut t,
            " Raft Status",
            &manager_status(node).replace("Leader", "Reachable"),
        );
        line(&mut t, " Leader", &if m.leader { "Yes" } else { "No" });
    }
    let _ = writeln!(t, "Platform:");
    line(&mut t, " Operating System", &description.os);
    line(&mut t, " Architecture", &description.architecture);
    let _ = writeln!(t, "Resources:");
    line(&mut t, " CPUs", &(description.nano_cpus / 1_000_000_000));
    line(&mut t, " Memory", &memory(description.memory_bytes));
    t
}

/// docker's `units.BytesSize`: `1.944GiB`, `512MiB`.
fn memory(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.4}");
    let shown = shown.trim_end_matches('0').trim_end_matches('.');
    format!("{shown}{}", units[unit])
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
    let filters = Filters::new(&args.filters);
    let mut nodes: Vec<Node> = list(session)
        .await?
        .into_iter()
        .filter(|n| node_matches(&filters, n))
        .collect();
    nodes.sort_by(|a, b| natural_cmp(hostname(a), hostname(b)).then(node_id(a).cmp(node_id(b))));
    // The root the nodes' certificates should come from, for `.TLSStatus`;
    // `-q` alone prints ids and needs none (docker asks /info likewise).
    let trusted_root =
        if nodes.is_empty() || (args.quiet && matches!(args.format, ListFormat::Table)) {
            None
        } else {
            Some(issuing_root_digest(session).await?)
        };
    let me = self_node(&nodes, session);
    let rows = node_rows(&nodes, me.as_deref(), trusted_root.as_deref());
    let text = args.format.render(&NODE_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's node filters: `id` and `name` (hostname) prefixes, `node.label`,
/// `role` (the role of the node's certificate) and `membership` (every node
/// shoal knows is accepted: it joins with a token, and none waits).
fn node_matches(filters: &Filters, node: &Node) -> bool {
    let labels = node.spec.as_ref().map(|s| &s.labels);
    filters.any("id", |prefix| node_id(node).starts_with(prefix))
        && filters.any("name", |prefix| hostname(node).starts_with(prefix))
        && labels.map_or(filters.values("node.label").is_empty(), |l| {
            filters.labels("node.label", l)
        })
        && filters.any("role", |role| lower(role_name(node.role)) == role)
        && filters.any("membership", |membership| membership == "accepted")
}

/// SHA-256 of the root CA nodes' certificates should come from: the new
/// root while one is rotated to.
async fn issuing_root_digest(session: &mut Session) -> Result<String, Error> {
    let status = session
        .client
        .get_root_ca(GetRootCaRequest {})
        .await?
        .into_inner();
    let root = if status.rotating {
        &status.new_root_ca_pem
    } else {
        &status.root_ca_pem
    };
    shoal_identity::join::ca_digest(root)
        .map_err(|e| Error::Input(format!("the manager's root CA certificate: {e}")))
}

/// Docker's `node ls` rows: the node the CLI talks to is `.Self` (marked
/// `*` after its id); `.TLSStatus` says whether the node's certificate
/// comes from `trusted_root` (`Ready`) or not yet (`Needs Rotation`).
pub fn node_rows(nodes: &[Node], self_id: Option<&str>, trusted_root: Option<&str>) -> Vec<Value> {
    nodes
        .iter()
        .map(|node| {
            let id = node_id(node);
            let tls = match trusted_root {
                _ if node.cert_root_digest.is_empty() => "Unknown",
                Some(root) if node.cert_root_digest == root => "Ready",
                Some(_) => "Needs Rotation",
                None => "Unknown",
            };
            json!({
                "ID": id,
                "Self": self_id == Some(id),
                "Hostname": hostname(node),
                "Status": state_name(node),
                "Availability": availability_name(node),
                "ManagerStatus": manager_status(node),
                "TLSStatus": tls,
                "Addr": node.status.as_ref().map(|s| s.addr.as_str()).unwrap_or(""),
            })
        })
        .collect()
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
        let rows = node_rows(&nodes, Some("n2"), None);
        // docker/cli node formatter: `table {{.ID}} {{if .Self}}*{{else}} {{ end }}...`.
        assert_eq!(
            ListFormat::Table
                .render(&NODE_COLUMNS, &rows, false)
                .expect("table"),
            "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS\n\
             n1        m1         Ready     Active         Leader\n\
             n2 *      m2         Down      Active         Unreachable\n\
             n3        w1         Ready     Active         \n"
        );
        assert_eq!(rows[1]["ID"], "n2");
        assert_eq!(rows[1]["Self"], true);
        assert_eq!(rows[0]["Status"], "Ready");
        assert_eq!(rows[2]["ManagerStatus"], "");
        assert_eq!(
            ListFormat::parse("{{.Hostname}} {{.Self}}")
                .expect("format")
                .render(&NODE_COLUMNS, &rows, false)
                .expect("render"),
            "m1 false\nm2 true\nw1 false\n"
        );
    }

    #[test]
    fn tls_status_says_whether_a_certificate_comes_from_the_issuing_root() {
        let mut nodes = [
            node("n1", "m1", NodeState::Ready, None),
            node("n2", "m2", NodeState::Ready, None),
            node("n3", "m3", NodeState::Ready, None),
        ];
        nodes[0].cert_root_digest = "new".into();
        nodes[1].cert_root_digest = "old".into();
        let rows = node_rows(&nodes, None, Some("new"));
        let tls: Vec<&Value> = rows.iter().map(|r| &r["TLSStatus"]).collect();
        assert_eq!(tls, ["Ready", "Needs Rotation", "Unknown"]);
    }

    #[test]
    fn node_filters_are_dockers() {
        let mut nodes = [
            node("abc1", "manager-1", NodeState::Ready, None),
            node("abd2", "worker-1", NodeState::Ready, None),
            node("xyz3", "worker-2", NodeState::Down, None),
        ];
        nodes[0].role = NodeRole::Manager as i32;
        if let Some(spec) = nodes[1].spec.as_mut() {
            spec.labels.insert("zone".into(), "b".into());
        }
        let kept = |filters: &[&str]| -> Vec<&str> {
            let parsed: Vec<Filter> = filters
                .iter()
                .map(|f| NODE_FILTERS.parse(f).unwrap_or_else(|e| panic!("{f}: {e}")))
                .collect();
            let filters = Filters::new(&parsed);
            nodes
                .iter()
                .filter(|n| node_matches(&filters, n))
                .map(hostname)
                .collect()
        };
        assert_eq!(kept(&["id=ab"]), ["manager-1", "worker-1"]);
        assert_eq!(kept(&["name=worker"]), ["worker-1", "worker-2"]);
        assert_eq!(kept(&["role=manager"]), ["manager-1"]);
        assert_eq!(kept(&["role=worker", "name=worker-2"]), ["worker-2"]);
        assert_eq!(kept(&["node.label=zone"]), ["worker-1"]);
        assert_eq!(kept(&["node.label=zone=a"]), Vec::<&str>::new());
        assert_eq!(kept(&["membership=accepted"]).len(), 3);
        assert!(kept(&["membership=pending"]).is_empty());
        // docker's `label` is about engine labels, which shoal nodes lack.
        assert_eq!(
            NODE_FILTERS.parse("label=zone").unwrap_err(),
            "invalid filter 'label': node ls filters on id, membership, name, node.label, role"
        );
    }

    #[test]
    fn update_flags_read_as_dockers() {
        assert_eq!(parse_availability("Drain"), Ok(NodeAvailability::Drain));
        assert_eq!(parse_availability("pause"), Ok(NodeAvailability::Pause));
        assert!(parse_availability("off")
            .unwrap_err()
            .contains("only active, pause and drain"));
        let labels = label_adds(&["zone=b".into(), "ssd".into(), "k=a=b".into()]).unwrap();
        assert_eq!(labels["zone"], "b");
        assert_eq!(labels["ssd"], "");
        assert_eq!(labels["k"], "a=b");
        assert!(label_adds(&["=x".into()]).is_err());
    }

    #[test]
    fn inspect_has_dockers_shape_and_pretty_text() {
        let mut n = node("n1", "w1", NodeState::Ready, None);
        let spec = n.spec.as_mut().unwrap();
        spec.labels.insert("zone".into(), "b".into());
        spec.availability = NodeAvailability::Drain as i32;
        let d = n.description.as_mut().unwrap();
        d.os = "linux".into();
        d.architecture = "x86_64".into();
        d.nano_cpus = 2_000_000_000;
        d.memory_bytes = 2_087_000_000;
        let json = node_json(&n);
        assert_eq!(json["ID"], "n1");
        assert_eq!(json["Spec"]["Labels"]["zone"], "b");
        assert_eq!(json["Spec"]["Availability"], "drain");
        assert_eq!(json["Spec"]["Role"], "worker");
        assert_eq!(json["Status"]["State"], "ready");
        assert_eq!(json["Description"]["Platform"]["OS"], "linux");
        assert!(json.get("ManagerStatus").is_none());
        let text = pretty(&n);
        assert!(
            text.starts_with("ID:                     n1\nLabels:\n - zone=b\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{:<23} Drain\n", " Availability:")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{:<23} x86_64\n", " Architecture:")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{:<23} 1.9437GiB\n", " Memory:")),
            "{text}"
        );
        assert_eq!(memory(512 * 1024 * 1024), "512MiB");
    }

    #[test]
    fn node_update_takes_a_role_as_promote_and_demote_do() {
        use clap::Parser;
        let parse = |argv: &[&str]| {
            let full = ["shoal", "node", "update"].iter().chain(argv).copied();
            match crate::commands::Cli::try_parse_from(full).map(|c| c.command) {
                Ok(crate::commands::Command::Node(NodeCommand::Update(args))) => Ok(args),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e),
            }
        };
        let request = update_request(&parse(&["--role", "manager", "w1"]).unwrap()).unwrap();
        assert_eq!(request.role, Some(NodeRole::Manager as i32));
        let request = update_request(&parse(&["--role", "worker", "m2"]).unwrap()).unwrap();
        assert_eq!(request.role, Some(NodeRole::Worker as i32));
        assert!(parse(&["--role", "boss", "w1"]).is_err());
        let err = update_request(&parse(&["w1"]).unwrap()).expect_err("nothing");
        assert!(err.to_string().contains("--role"), "{err}");
    }
}
