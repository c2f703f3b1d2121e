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
use crate::output::filter::{self, Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::labels_joined;

/// docker's `volume ls` columns (`cli/command/formatter/volume.go`), and
/// the node holding each volume: shoal lists the volumes of every node.
pub const VOLUME_COLUMNS: Columns = Columns {
    headers: &[
        ("Driver", "DRIVER"),
        ("Name", "VOLUME NAME"),
        ("Node", "NODE"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
        ("Group", "GROUP"),
        ("Availability", "AVAILABILITY"),
        ("Status", "STATUS"),
    ],
    table: "table {{.Driver}}\t{{.Name}}\t{{.Node}}",
    quiet: "{{.Name}}",
};

/// docker's `volume ls` filters.
pub const VOLUME_FILTERS: FilterKeys = FilterKeys {
    command: "volume ls",
    keys: &[
        FilterKey::one_of("dangling", filter::BOOLEAN),
        FilterKey::any("driver"),
        FilterKey::any("label"),
        FilterKey::any("name"),
    ],
};

/// How long `rm` and `prune` wait for the nodes to report a volume gone
/// (a heartbeat or two).
const REMOVAL_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes, with the node holding each
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of volumes (on every node holding them)
    Inspect(InspectArgs),
    /// Remove volumes (refused while a task uses them)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no task uses
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal volume ls
  shoal volume ls -f dangling=true -f name=shop_
  shoal volume ls --format '{{.Name}} {{.Node}} {{.Mountpoint}}'")]
pub struct LsArgs {
    /// Provide filter values (dangling=true|false, driver=, label=KEY[=VALUE], name=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| VOLUME_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal volume inspect shop_data
  shoal volume inspect -f '{{.Node}} {{.Mountpoint}}' shop_data")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse, help = INSPECT_HELP)]
    pub format: Option<InspectFormat>,
    #[arg(required = true, value_name = "VOLUME")]
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
    let filters = Filters::new(&args.filters);
    let rows: Vec<serde_json::Value> = list(session)
        .await?
        .iter()
        .filter(|v| volume_matches(&filters, v))
        .map(volume_row)
        .collect();
    let text = args.format.render(&VOLUME_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's volume filters: `name` matches any part, `driver` exactly,
/// `dangling` whether no task uses the volume.
fn volume_matches(filters: &Filters, v: &VolumeOnNode) -> bool {
    let volume = v.volume.clone().unwrap_or_default();
    filters.any("name", |part| volume.name.contains(part))
        && filters.any("driver", |d| d == volume.driver)
        && filters.any("dangling", |d| filter::is_true(d) == v.used_by.is_empty())
        && filters.labels("label", &volume.labels)
}

/// docker's `volume ls` row of a local volume (docker's `N/A` where it has
/// no usage data or cluster volume), and the node holding it.
fn volume_row(v: &VolumeOnNode) -> serde_json::Value {
    let volume = v.volume.clone().unwrap_or_default();
    serde_json::json!({
        "Driver": volume.driver,
        "Name": volume.name,
        "Node": v.node_hostname,
        "Scope": "local",
        "Mountpoint": volume.mountpoint,
        "Labels": labels_joined(&volume.labels),
        "Links": "N/A",
        "Size": "N/A",
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
    })
}

pub async fn inspect(
    session: &mut Session,
    args: InspectArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
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
    let format = args.format.unwrap_or_default();
    super::inspect::write_inspected(found, errors, &format, io.out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::NodeVolume;

    fn volume(name: &str, node: &str, used_by: &[&str]) -> VolumeOnNode {
        VolumeOnNode {
            node_id: format!("id-{node}"),
            node_hostname: node.into(),
            volume: Some(NodeVolume {
                name: name.into(),
                driver: "local".into(),
                labels: [("backup".to_string(), "daily".to_string())].into(),
                mountpoint: format!("/var/lib/shoal/volumes/{name}/_data"),
                ..Default::default()
            }),
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn ls_shows_dockers_columns_and_the_node() {
        let rows: Vec<serde_json::Value> = [volume("shop_data", "w1", &["shop_db"])]
            .iter()
            .map(volume_row)
            .collect();
        // docker/cli formatter/volume.go: `table {{.Driver}}\t{{.Name}}`, and
        // N/A where docker has no usage data; shoal adds the NODE.
        assert_eq!(
            ListFormat::Table
                .render(&VOLUME_COLUMNS, &rows, false)
                .expect("table"),
            "DRIVER    VOLUME NAME   NODE\nlocal     shop_data     w1\n"
        );
        assert_eq!(rows[0]["Links"], "N/A");
        assert_eq!(rows[0]["Labels"], "backup=daily");
        assert_eq!(
            ListFormat::Table
                .render(&VOLUME_COLUMNS, &rows, true)
                .expect("quiet"),
            "shop_data\n"
        );
    }

    #[test]
    fn ls_filters_are_dockers() {
        let volumes = [
            volume("shop_data", "w1", &["shop_db"]),
            volume("shop_cache", "w2", &[]),
            volume("logs", "w1", &[]),
        ];
        let kept = |filters: &[&str]| -> Vec<String> {
            let parsed: Vec<Filter> = filters
                .iter()
                .map(|f| {
                    VOLUME_FILTERS
                        .parse(f)
                        .unwrap_or_else(|e| panic!("{f}: {e}"))
                })
                .collect();
            let filters = Filters::new(&parsed);
            volumes
                .iter()
                .filter(|v| volume_matches(&filters, v))
                .map(name)
                .collect()
        };
        assert_eq!(kept(&["dangling=true"]), ["shop_cache", "logs"]);
        assert_eq!(kept(&["dangling=0"]), ["shop_data"]);
        assert_eq!(
            kept(&["name=cache"]),
            ["shop_cache"],
            "any part of the name"
        );
        assert_eq!(kept(&["name=shop", "dangling=1"]), ["shop_cache"]);
        assert_eq!(kept(&["label=backup=daily"]).len(), 3);
        assert!(kept(&["driver=nfs"]).is_empty());
        assert!(VOLUME_FILTERS.parse("dangling=maybe").is_err());
    }
}
