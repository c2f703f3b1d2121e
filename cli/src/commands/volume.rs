//! `shoal volume ls|inspect|rm|prune` across the cluster: volumes live on
//! the nodes that ran tasks using them (local driver), and each node's
//! agent reports its own; `ls` shows the node. `rm` asks the nodes holding
//! the volume to remove it and waits until they report it gone; a volume a
//! task uses is refused.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use shoal_proto::control::v1::{ListVolumesRequest, RemoveVolumeRequest, VolumeOnNode};

use super::{collect_errors, Error, Io};
use crate::client::Session;
use crate::output::Listing;

/// How long `rm` and `prune` wait for the nodes to report a volume gone
/// (a heartbeat or two).
const REMOVAL_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes, with the node holding each
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of volumes (on every node holding them)
    Inspect(NamesArgs),
    /// Remove volumes (refused while a task uses them)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no task uses
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Only the volume on this node (id or hostname)
    #[arg(long)]
    pub node: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (shoal never prompts; docker's flag)
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(
    session: &mut Session,
    command: VolumeCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        VolumeCommand::Ls(args) => ls(session, args, io).await,
        VolumeCommand::Inspect(args) => inspect(session, args, io).await,
        VolumeCommand::Rm(args) => rm(session, args, io).await,
        VolumeCommand::Prune(_) => prune(session, io).await,
    }
}

async fn list(session: &mut Session) -> Result<Vec<VolumeOnNode>, Error> {
    Ok(session
        .client
        .list_volumes(ListVolumesRequest {})
        .await?
        .into_inner()
        .volumes)
}

fn name(v: &VolumeOnNode) -> String {
    v.volume
        .as_ref()
        .map(|v| v.name.clone())
        .unwrap_or_default()
}

fn json(v: &VolumeOnNode) -> serde_json::Value {
    let volume = v.volume.clone().unwrap_or_default();
    let labels: std::collections::BTreeMap<_, _> = volume.labels.into_iter().collect();
    let options: std::collections::BTreeMap<_, _> = volume.options.into_iter().collect();
    serde_json::json!({
        "CreatedAt": crate::output::rfc3339(volume.created_at_ms),
        "Driver": volume.driver,
        "Labels": labels,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": options,
        "Scope": "local",
        "Node": v.node_hostname,
        "NodeID": v.node_id,
        "UsedBy": v.used_by,
    })
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let volumes = list(session).await?;
    if args.quiet {
        for v in &volumes {
            writeln!(io.out, "{}", name(v))?;
        }
        return Ok(());
    }
    let mut listing = Listing::new(&["DRIVER", "VOLUME NAME", "NODE"]);
    for v in &volumes {
        let driver = v
            .volume
            .as_ref()
            .map(|x| x.driver.clone())
            .unwrap_or_default();
        listing.push(vec![driver, name(v), v.node_hostname.clone()], json(v));
    }
    listing.write(io.format, io.out)?;
    Ok(())
}

pub async fn inspect(session: &mut Session, args: NamesArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let volumes = list(session).await?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for wanted in &args.volumes {
        let on_nodes: Vec<serde_json::Value> = volumes
            .iter()
            .filter(|v| &name(v) == wanted)
            .map(json)
            .collect();
        if on_nodes.is_empty() {
            errors.push(Error::Input(format!("no such volume: {wanted}")));
        }
        found.extend(on_nodes);
    }
    crate::output::write_json(&serde_json::Value::Array(found), io.out)?;
    collect_errors(errors)
}

/// Asks for `name`'s removal and waits until no node (or `node`) reports it.
async fn remove(session: &mut Session, name_: &str, node: &str) -> Result<(), Error> {
    session
        .client
        .remove_volume(RemoveVolumeRequest {
            name: name_.to_string(),
            node: node.to_string(),
        })
        .await?;
    let started = Instant::now();
    loop {
        let left = list(session)
            .await?
            .into_iter()
            .filter(|v| name(v) == name_)
            .filter(|v| node.is_empty() || v.node_id == node || v.node_hostname == node)
            .count();
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > REMOVAL_WAIT {
            return Err(Error::Input(format!(
                "volume {name_}: {left} node(s) did not remove it within {REMOVAL_WAIT:?} \
                 (a task may have started using it)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn rm(session: &mut Session, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let node = args.node.unwrap_or_default();
    let mut errors = Vec::new();
    for volume in &args.volumes {
        match remove(session, volume, &node).await {
            Ok(()) => writeln!(io.out, "{volume}")?,
            Err(e) => errors.push(e),
        }
    }
    collect_errors(errors)
}

pub async fn prune(session: &mut Session, io: &mut Io<'_>) -> Result<(), Error> {
    let unused: Vec<(String, String)> = list(session)
        .await?
        .into_iter()
        .filter(|v| v.used_by.is_empty())
        .map(|v| (name(&v), v.node_id.clone()))
        .collect();
    let mut errors = Vec::new();
    writeln!(io.out, "Deleted Volumes:")?;
    for (volume, node) in unused {
        match remove(session, &volume, &node).await {
            Ok(()) => writeln!(io.out, "{volume}")?,
            Err(e) => errors.push(e),
        }
    }
    collect_errors(errors)
}
