//! `shoal info` (also `shoal system info`): docker info's Client section and
//! its Swarm section, from the manager's `GetCluster` and `ListNodes`.
//!
//! The JSON `--format` runs on has docker's field names
//! (`{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}`, durations in
//! nanoseconds as docker's JSON has them), plus shoal's Raft timing and
//! progress under `.Swarm.Raft`.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use shoal_proto::control::v1::{GetClusterRequest, GetClusterResponse};
use shoal_proto::types::v1::{Node, NodeRole};
use shoal_template::{Functions, Template};

use super::{Error, Io};
use crate::client::{self, ClientError};
use crate::context::Target;
use crate::output::format::FormatError;
use crate::output::{human_duration, rfc3339};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal info
  shoal info --format '{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}'
  shoal info --format json")]
pub struct InfoArgs {
    /// Format output: 'json' (the whole object on one line) or a Go TEMPLATE
    /// (e.g. '{{.Swarm.NodeID}}')
    #[arg(short, long, value_name = "FORMAT", value_parser = InfoFormat::parse)]
    pub format: Option<InfoFormat>,
}

/// What `--format` of `shoal info` asks for.
#[derive(Debug, Clone)]
pub enum InfoFormat {
    Json,
    Template(Template),
}

impl InfoFormat {
    pub fn parse(text: &str) -> Result<InfoFormat, FormatError> {
        Ok(match text {
            "json" => InfoFormat::Json,
            _ => InfoFormat::Template(Template::parse(text)?),
        })
    }

    fn render(&self, info: &Value) -> Result<String, FormatError> {
        match self {
            InfoFormat::Json => Ok(format!("{info}\n")),
            InfoFormat::Template(template) => {
                Ok(template.render(info, &Functions::docker())? + "\n")
            }
        }
    }
}

/// What the manager said, or why it said nothing useful.
pub enum Server {
    /// `GetCluster` and `ListNodes` answered.
    Manager {
        cluster: Box<GetClusterResponse>,
        nodes: Vec<Node>,
    },
    /// The manager answered but is no member of a swarm (or is locked).
    Refused(tonic::Status),
}

/// Asks the manager of `target` and prints what `args` say; a manager that
/// cannot be reached is an error after the client's part is printed.
pub async fn run(args: InfoArgs, target: &Target, io: &mut Io<'_>) -> Result<(), Error> {
    let server = match client::connect(&target.host, target.tls.as_deref()).await {
        Ok(mut session) => Ok(ask(&mut session).await?),
        Err(e @ ClientError::Unreachable { .. }) => Err(Error::Client(e)),
        Err(e) => return Err(e.into()),
    };
    show(&args, target, server, io)
}

/// [`run`] on a connected session (the context is not known there).
pub async fn run_on(
    session: &mut client::Session,
    args: InfoArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let target = Target {
        context: crate::context::DEFAULT_CONTEXT.to_string(),
        host: session.host.clone(),
        tls: None,
    };
    let server = ask(session).await?;
    show(&args, &target, Ok(server), io)
}

fn show(
    args: &InfoArgs,
    target: &Target,
    server: Result<Server, Error>,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let info = info_json(target, server.as_ref().ok());
    let shown = match &args.format {
        Some(format) => format.render(&info)?,
        None => pretty(&info),
    };
    io.out.write_all(shown.as_bytes())?;
    server.map(drop)
}

async fn ask(session: &mut client::Session) -> Result<Server, Error> {
    let cluster = match session.client.get_cluster(GetClusterRequest {}).await {
        Ok(reply) => reply.into_inner(),
        // Not part of a swarm, or locked: docker's "inactive" and "locked".
        Err(status) if status.code() == tonic::Code::Unavailable => {
            return Ok(Server::Refused(status))
        }
        Err(status) => return Err(status.into()),
    };
    let nodes = super::node::list(session).await?;
    Ok(Server::Manager {
        cluster: Box::new(cluster),
        nodes,
    })
}

fn nanos(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// docker info's object (its Client part, and of the server part its
/// `Swarm`); `server` is `None` when the manager could not be reached.
pub fn info_json(target: &Target, server: Option<&Server>) -> Value {
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Context": target.context,
        "Host": target.host.to_string(),
    });
    let swarm = match server {
        None => return json!({ "ClientInfo": client }),
        Some(Server::Refused(status)) => {
            let locked = status.message().contains("locked");
            json!({
                "LocalNodeState": if locked { "locked" } else { "inactive" },
                "ControlAvailable": false,
                "Error": status.message(),
            })
        }
        Some(Server::Manager { cluster, nodes }) => swarm_json(cluster, nodes),
    };
    json!({ "ClientInfo": client, "Swarm": swarm })
}

fn swarm_json(reply: &GetClusterResponse, nodes: &[Node]) -> Value {
    let cluster = reply.cluster.clone().unwrap_or_default();
    let spec = cluster.spec.clone().unwrap_or_default();
    let meta = cluster.meta.clone().unwrap_or_default();
    let raft = reply.raft.unwrap_or_default();
    let this = nodes
        .iter()
        .find(|n| n.meta.as_ref().is_some_and(|m| m.id == reply.node_id));
    let node_addr = this
        .and_then(|n| n.status.as_ref())
        .map(|s| s.addr.clone())
        .unwrap_or_default();
    let mut managers: Vec<Value> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::Manager as i32)
        .filter_map(|n| {
            let status = n.manager_status.as_ref()?;
            Some(json!({
                "NodeID": n.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                "Addr": status.addr,
            }))
        })
        .collect();
    managers.sort_by(|a, b| a["Addr"].as_str().cmp(&b["Addr"].as_str()));
    let pool = if cluster.default_addr_pool.is_empty() {
        vec!["10.0.0.0/8".to_string()]
    } else {
        cluster.default_addr_pool.clone()
    };
    let subnet_size = match cluster.default_addr_pool_mask_length {
        0 => 24,
        n => n,
    };
    let heartbeat_ms = match spec.heartbeat_period_ms {
        0 => 5_000,
        ms => u64::from(ms),
    };
    json!({
        "NodeID": reply.node_id,
        "NodeAddr": node_addr,
        "LocalNodeState": "active",
        "ControlAvailable": true,
        "Error": "",
        "RemoteManagers": managers,
        "Nodes": nodes.len(),
        "Managers": managers.len(),
        "Cluster": {
            "ID": meta.id,
            "Version": { "Index": meta.version },
            "CreatedAt": rfc3339(meta.created_at),
            "UpdatedAt": rfc3339(meta.updated_at),
            "Spec": {
                "Name": spec.name,
                "Orchestration": {
                    // Swarm's default when the cluster names none.
                    "TaskHistoryRetentionLimit": spec.task_history_limit.unwrap_or(5),
                },
                "Raft": {
                    "SnapshotInterval": raft.snapshot_interval,
                    "KeepOldSnapshots": raft.keep_old_snapshots,
                    "LogEntriesForSlowFollowers": raft.log_entries_for_slow_followers,
                },
                "Dispatcher": { "HeartbeatPeriod": nanos(heartbeat_ms) },
                "CAConfig": {
                    "NodeCertExpiry": nanos(u64::from(spec.cert_expiry_hours) * 3_600_000),
                },
                "EncryptionConfig": { "AutoLockManagers": spec.autolock },
            },
            "RootRotationInProgress": cluster.root_rotation.is_some(),
            "DefaultAddrPool": pool,
            "SubnetSize": subnet_size,
            "DataPathPort": reply.data_path_port,
        },
        // shoal's: the answering manager's Raft timing and progress.
        "Raft": {
            "HeartbeatInterval": nanos(raft.heartbeat_interval_ms.into()),
            "ElectionTimeoutMin": nanos(raft.election_timeout_min_ms.into()),
            "ElectionTimeoutMax": nanos(raft.election_timeout_max_ms.into()),
            "AppliedIndex": raft.applied_index,
            "SnapshotIndex": raft.snapshot_index,
        },
        "LeaderAddr": reply.leader_addr,
    })
}

fn duration_of(nanos: &Value) -> Duration {
    Duration::from_nanos(nanos.as_u64().unwrap_or(0))
}

/// A short duration as Go prints one: `100ms`, `1s`, `2.5s`.
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// docker info's text: `Client:` then `Server:` with its Swarm section
/// (`prettyPrintClientInfo`, `printSwarmInfo`).
pub fn pretty(info: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let client = &info["ClientInfo"];
    let mut out = String::from("Client:\n");
    out += &format!(" Version:    {}\n", text(&client["Version"]));
    out += &format!(" Context:    {}\n", text(&client["Context"]));
    out += &format!(" Host:       {}\n", text(&client["Host"]));
    let swarm = &info["Swarm"];
    if swarm.is_null() {
        return out;
    }
    out += "\nServer:\n";
    out += &format!(" Swarm: {}\n", text(&swarm["LocalNodeState"]));
    if swarm["ControlAvailable"] != Value::Bool(true) {
        out += &format!("  Error: {}\n", text(&swarm["Error"]));
        return out;
    }
    let cluster = &swarm["Cluster"];
    let spec = &cluster["Spec"];
    let raft = &swarm["Raft"];
    out += &format!("  NodeID: {}\n", text(&swarm["NodeID"]));
    out += "  Is Manager: true\n";
    out += &format!("  ClusterID: {}\n", text(&cluster["ID"]));
    out += &format!("  Managers: {}\n", swarm["Managers"]);
    out += &format!("  Nodes: {}\n", swarm["Nodes"]);
    let pools: Vec<String> = cluster["DefaultAddrPool"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    out += "  Default Address Pool: ";
    for pool in pools {
        out += &format!("{pool}  ");
    }
    out += "\n";
    out += &format!("  SubnetSize: {}\n", cluster["SubnetSize"]);
    out += &format!("  Data Path Port: {}\n", cluster["DataPathPort"]);
    out += "  Orchestration:\n";
    out += &format!(
        "   Task History Retention Limit: {}\n",
        spec["Orchestration"]["TaskHistoryRetentionLimit"]
    );
    out += "  Raft:\n";
    out += &format!(
        "   Snapshot Interval: {}\n",
        spec["Raft"]["SnapshotInterval"]
    );
    out += &format!(
        "   Number of Old Snapshots to Retain: {}\n",
        spec["Raft"]["KeepOldSnapshots"]
    );
    out += &format!(
        "   Log Entries for Slow Followers: {}\n",
        spec["Raft"]["LogEntriesForSlowFollowers"]
    );
    out += &format!(
        "   Heartbeat Interval: {}\n",
        go_duration(duration_of(&raft["HeartbeatInterval"]))
    );
    out += &format!(
        "   Election Timeout: {} to {}\n",
        go_duration(duration_of(&raft["ElectionTimeoutMin"])),
        go_duration(duration_of(&raft["ElectionTimeoutMax"]))
    );
    out += &format!("   Applied Index: {}\n", raft["AppliedIndex"]);
    out += &format!("   Snapshot Index: {}\n", raft["SnapshotIndex"]);
    out += "  Dispatcher:\n";
    out += &format!(
        "   Heartbeat Period: {}\n",
        human_duration(duration_of(&spec["Dispatcher"]["HeartbeatPeriod"]))
    );
    out += "  CA Configuration:\n";
    out += &format!(
        "   Expiry Duration: {}\n",
        human_duration(duration_of(&spec["CAConfig"]["NodeCertExpiry"]))
    );
    out += &format!(
        "  Autolock Managers: {}\n",
        spec["EncryptionConfig"]["AutoLockManagers"]
    );
    out += &format!(
        "  Root Rotation In Progress: {}\n",
        cluster["RootRotationInProgress"]
    );
    out += &format!("  Node Address: {}\n", text(&swarm["NodeAddr"]));
    let managers: Vec<String> = swarm["RemoteManagers"]
        .as_array()
        .map(|a| a.iter().map(|m| text(&m["Addr"])).collect())
        .unwrap_or_default();
    if !managers.is_empty() {
        out += "  Manager Addresses:\n";
        for addr in managers {
            out += &format!("   {addr}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use shoal_proto::control::v1::RaftStatus;
    use shoal_proto::types::v1::{
        Cluster, ClusterSpec, ManagerStatus, Meta, NodeStatus, RootRotation,
    };

    use super::*;
    use crate::client::Host;

    fn target() -> Target {
        Target {
            context: "prod".into(),
            host: Host::Tcp("10.0.0.1:4242".into()),
            tls: None,
        }
    }

    fn node(id: &str, addr: &str, manager: bool) -> Node {
        Node {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addr: addr.into(),
                ..Default::default()
            }),
            role: if manager {
                NodeRole::Manager as i32
            } else {
                NodeRole::Worker as i32
            },
            manager_status: manager.then(|| ManagerStatus {
                addr: format!("{addr}:4242"),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A two-manager, one-worker cluster as the manager would describe it.
    fn server() -> Server {
        Server::Manager {
            cluster: Box::new(GetClusterResponse {
                cluster: Some(Cluster {
                    meta: Some(Meta {
                        id: "cluster1".into(),
                        version: 42,
                        created_at: 0,
                        updated_at: 1_000,
                    }),
                    spec: Some(ClusterSpec {
                        name: "default".into(),
                        heartbeat_period_ms: 2_000,
                        cert_expiry_hours: 2160,
                        autolock: true,
                        task_history_limit: Some(3),
                        snapshot_interval: 100,
                        keep_old_snapshots: 2,
                        ..Default::default()
                    }),
                    root_rotation: Some(RootRotation::default()),
                    default_addr_pool: vec!["10.20.0.0/16".into()],
                    default_addr_pool_mask_length: 26,
                    ..Default::default()
                }),
                leader_addr: "10.0.0.1:4242".into(),
                node_id: "m1id".into(),
                raft: Some(RaftStatus {
                    snapshot_interval: 100,
                    keep_old_snapshots: 2,
                    log_entries_for_slow_followers: 500,
                    heartbeat_interval_ms: 100,
                    election_timeout_min_ms: 500,
                    election_timeout_max_ms: 1000,
                    applied_index: 321,
                    snapshot_index: 300,
                }),
                data_path_port: 4789,
            }),
            nodes: vec![
                node("m2id", "10.0.0.2", true),
                node("m1id", "10.0.0.1", true),
                node("w1id", "10.0.0.3", false),
            ],
        }
    }

    #[test]
    fn the_swarm_section_reads_as_dockers() {
        let info = info_json(&target(), Some(&server()));
        let text = pretty(&info);
        let expected = "Client:
 Version:    VERSION
 Context:    prod
 Host:       tcp://10.0.0.1:4242

Server:
 Swarm: active
  NodeID: m1id
  Is Manager: true
  ClusterID: cluster1
  Managers: 2
  Nodes: 3
  Default Address Pool: 10.20.0.0/16  
  SubnetSize: 26
  Data Path Port: 4789
  Orchestration:
   Task History Retention Limit: 3
  Raft:
   Snapshot Interval: 100
   Number of Old Snapshots to Retain: 2
   Log Entries for Slow Followers: 500
   Heartbeat Interval: 100ms
   Election Timeout: 500ms to 1s
   Applied Index: 321
   Snapshot Index: 300
  Dispatcher:
   Heartbeat Period: 2 seconds
  CA Configuration:
   Expiry Duration: 3 months
  Autolock Managers: true
  Root Rotation In Progress: true
  Node Address: 10.0.0.1
  Manager Addresses:
   10.0.0.1:4242
   10.0.0.2:4242
"
        .replace("VERSION", env!("CARGO_PKG_VERSION"));
        assert_eq!(text, expected);
    }

    #[test]
    fn a_template_runs_on_dockers_field_names() {
        let info = info_json(&target(), Some(&server()));
        let format = InfoFormat::parse(
            "{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}} \
             {{.Swarm.Cluster.Spec.Raft.SnapshotInterval}} {{.ClientInfo.Context}} \
             {{range .Swarm.RemoteManagers}}{{.NodeID}},{{end}}",
        )
        .expect("parses");
        assert_eq!(
            format.render(&info).expect("renders"),
            "2000000000 100 prod m1id,m2id,\n"
        );
        let json = InfoFormat::Json.render(&info).expect("json");
        let parsed: Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(parsed["Swarm"]["Cluster"]["DataPathPort"], 4789);
        assert_eq!(parsed["Swarm"]["Cluster"]["Version"]["Index"], 42);
        assert_eq!(json.lines().count(), 1);
        assert!(InfoFormat::parse("{{.Swarm").is_err());
    }

    #[test]
    fn a_manager_outside_a_swarm_is_inactive_and_a_locked_one_locked() {
        let refused = Server::Refused(tonic::Status::unavailable(
            "this node is not a swarm manager: run `shoal swarm init` first",
        ));
        let text = pretty(&info_json(&target(), Some(&refused)));
        assert!(text.contains(" Swarm: inactive\n"), "{text}");
        assert!(text.contains("shoal swarm init"), "{text}");
        assert!(!text.contains("NodeID"), "{text}");
        let locked = Server::Refused(tonic::Status::unavailable(
            "this manager is locked: run `shoal swarm unlock` and enter the unlock key",
        ));
        let info = info_json(&target(), Some(&locked));
        assert_eq!(info["Swarm"]["LocalNodeState"], "locked");
        // Unreachable: the client's part only.
        let text = pretty(&info_json(&target(), None));
        assert!(text.starts_with("Client:\n"), "{text}");
        assert!(!text.contains("Server:"), "{text}");
    }

    #[test]
    fn unset_settings_show_swarms_defaults() {
        let Server::Manager { mut cluster, nodes } = server() else {
            unreachable!()
        };
        let bare = cluster.cluster.as_mut().unwrap();
        bare.spec = Some(ClusterSpec::default());
        bare.default_addr_pool.clear();
        bare.default_addr_pool_mask_length = 0;
        let info = info_json(&target(), Some(&Server::Manager { cluster, nodes }));
        let spec = &info["Swarm"]["Cluster"]["Spec"];
        assert_eq!(spec["Dispatcher"]["HeartbeatPeriod"], 5_000_000_000u64);
        assert_eq!(spec["Orchestration"]["TaskHistoryRetentionLimit"], 5);
        assert_eq!(
            info["Swarm"]["Cluster"]["DefaultAddrPool"],
            json!(["10.0.0.0/8"])
        );
        assert_eq!(info["Swarm"]["Cluster"]["SubnetSize"], 24);
    }
}
