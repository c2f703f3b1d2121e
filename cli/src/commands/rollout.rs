//! `shoal service rollback [--to REV]` and `shoal service history`: going
//! back to an earlier spec, and the revisions a service keeps (its last 10)
//! with what changed at each.

use clap::Args;
use serde_json::json;
use shoal_proto::control::v1::RollbackServiceRequest;
use shoal_proto::types::v1::{ContainerSpec, Service, ServiceSpec, TaskSpec};

use super::converge;
use super::service::{self, UpdateArgs, WaitFlags};
use super::{Error, Io};
use crate::client::Session;
use crate::output;
use crate::output::format::{Columns, ListFormat, LIST_HELP};

/// `service history` columns.
pub const HISTORY_COLUMNS: Columns = Columns {
    headers: &[
        ("Revision", "REVISION"),
        ("Current", ""),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Image", "IMAGE"),
        ("Changes", "CHANGES"),
    ],
    table: "table {{.Revision}}{{if .Current}} (current){{end}}\t{{.CreatedSince}}\t{{.Image}}\t{{if .Changes}}{{join .Changes \", \"}}{{else}}-{{end}}",
    quiet: "{{.Revision}}",
};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Return to this revision (see `shoal service history`) instead of the previous spec
    #[arg(long, value_name = "REV")]
    pub to: Option<u64>,
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Service (name or id)
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

impl RollbackArgs {
    /// `service update --rollback SERVICE`: back to the previous spec.
    pub fn previous(update: &UpdateArgs) -> RollbackArgs {
        RollbackArgs {
            to: None,
            wait: update.wait.clone(),
            service: update.service.clone(),
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal service history web
  shoal service history --format '{{.Revision}} {{.Image}}' web")]
pub struct HistoryArgs {
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display revisions
    #[arg(short, long)]
    pub quiet: bool,
    /// Service (name or id)
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

pub async fn rollback(
    session: &mut Session,
    args: RollbackArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if args.to == Some(0) {
        return Err(Error::Input(
            "--to 0 names no revision: revisions start at 1 (see `shoal service history`)".into(),
        ));
    }
    let current = service::get(session, &args.service).await?;
    let id = service::service_id(&current).to_string();
    session
        .client
        .rollback_service(RollbackServiceRequest {
            service_id: id.clone(),
            to_revision: args.to.unwrap_or(0),
        })
        .await?;
    writeln!(io.out, "{}", args.service)?;
    if let Some(mut wait) = args.wait.wait(true) {
        wait.rollback = true;
        converge::wait(session, &id, wait, io).await?;
    }
    Ok(())
}

pub async fn history(
    session: &mut Session,
    args: HistoryArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let service = service::get(session, &args.service).await?;
    let rows = history_rows(&service, output::now_ms());
    let text = args.format.render(&HISTORY_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// The kept revisions, oldest first, then the current one.
pub fn history_rows(service: &Service, now_ms: i64) -> Vec<serde_json::Value> {
    let current_since = match &service.update_status {
        Some(status) if status.started_at > 0 => status.started_at,
        _ => service.meta.as_ref().map_or(0, |m| m.created_at),
    };
    let default_spec = ServiceSpec::default();
    let mut revisions: Vec<(u64, &ServiceSpec, i64)> = service
        .history
        .iter()
        .map(|r| {
            (
                r.revision,
                r.spec.as_ref().unwrap_or(&default_spec),
                r.created_at,
            )
        })
        .collect();
    revisions.push((
        service.spec_version,
        service.spec.as_ref().unwrap_or(&default_spec),
        current_since,
    ));
    let mut rows = Vec::new();
    for (i, (revision, spec, created)) in revisions.iter().enumerate() {
        let current = i == revisions.len() - 1;
        let mut changes = match i.checked_sub(1).map(|p| revisions[p].1) {
            Some(before) => changes(before, spec),
            None if *revision == 1 => vec!["created".to_string()],
            // Older revisions are no longer kept.
            None => Vec::new(),
        };
        if let Some((same, _, _)) = revisions[..i.saturating_sub(1)]
            .iter()
            .rev()
            .find(|(_, earlier, _)| *earlier == *spec)
        {
            changes.push(format!("same as revision {same}"));
        }
        let ago = std::time::Duration::from_millis((now_ms - created).max(0) as u64);
        rows.push(json!({
            "Revision": revision,
            "Current": current,
            "CreatedSince": format!("{} ago", output::human_duration(ago)),
            "CreatedAt": output::rfc3339(*created),
            "Image": image(spec),
            "Changes": changes,
        }));
    }
    rows
}

fn container(spec: &ServiceSpec) -> ContainerSpec {
    spec.task
        .as_ref()
        .and_then(|t| t.container.clone())
        .unwrap_or_default()
}

fn image(spec: &ServiceSpec) -> String {
    container(spec).image
}

/// A part of a spec compared by name: what to call it, and how to read it.
type Part<T> = (&'static str, fn(&T) -> String);

/// What differs from `before` to `after`, shortly: the image and the
/// environment in full (`image web:v1 → web:v2`, `env +MODE=x -DEBUG
/// A=1 → A=2`), the replicas, and the name of every other part changed.
pub fn changes(before: &ServiceSpec, after: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let (old, new) = (container(before), container(after));
    if old.image != new.image {
        out.push(format!("image {} → {}", old.image, new.image));
    }
    let env = env_changes(&old.env, &new.env);
    if !env.is_empty() {
        out.push(format!("env {}", env.join(" ")));
    }
    let replicas = |s: &ServiceSpec| match &s.mode {
        Some(shoal_proto::types::v1::service_spec::Mode::Replicated(r)) => Some(r.replicas),
        _ => None,
    };
    match (replicas(before), replicas(after)) {
        (Some(a), Some(b)) if a != b => out.push(format!("replicas {a} → {b}")),
        _ if std::mem::discriminant(&before.mode) != std::mem::discriminant(&after.mode) => {
            out.push("mode".into())
        }
        _ => {}
    }
    let mut rest_container = |what: &str, differs: bool| {
        if differs {
            out.push(what.to_string());
        }
    };
    rest_container("command", old.command != new.command);
    rest_container("args", old.args != new.args);
    rest_container("container labels", old.labels != new.labels);
    let (old_task, new_task) = (
        before.task.clone().unwrap_or_default(),
        after.task.clone().unwrap_or_default(),
    );
    let parts: [Part<TaskSpec>; 7] = [
        ("secrets", |t| format!("{:?}", t.secrets)),
        ("configs", |t| format!("{:?}", t.configs)),
        ("constraints", |t| format!("{:?}", t.constraints)),
        ("resources", |t| format!("{:?}", t.resources)),
        ("restart policy", |t| format!("{:?}", t.restart)),
        // Options sorted: a map's own order differs between equal maps.
        ("log driver", |t| {
            let driver = t.log_driver.as_ref();
            format!("{:?}", driver.map(|d| (&d.name, super::logging::sorted(d))))
        }),
        ("forced", |t| t.force_update.to_string()),
    ];
    for (what, part) in parts {
        if part(&old_task) != part(&new_task) {
            out.push(what.to_string());
        }
    }
    // Anything else of the task (healthcheck, user, mounts, ...).
    let other = |t: &TaskSpec| {
        let mut t = t.clone();
        let mut c = t.container.take().unwrap_or_default();
        c.image.clear();
        c.env.clear();
        c.command.clear();
        c.args.clear();
        c.labels.clear();
        t.container = Some(c);
        t.secrets.clear();
        t.configs.clear();
        t.constraints.clear();
        t.resources = None;
        t.restart = None;
        t.log_driver = None;
        t.force_update = 0;
        t
    };
    if other(&old_task) != other(&new_task) {
        out.push("task settings".into());
    }
    let service_parts: [Part<ServiceSpec>; 5] = [
        ("labels", |s| format!("{:?}", sorted_labels(&s.labels))),
        ("ports", |s| format!("{:?}", s.endpoint)),
        ("networks", |s| {
            format!("{:?} {:?}", s.networks, s.network_aliases)
        }),
        ("update config", |s| format!("{:?}", s.update)),
        ("rollback config", |s| format!("{:?}", s.rollback)),
    ];
    for (what, part) in service_parts {
        if part(before) != part(after) {
            out.push(what.to_string());
        }
    }
    out
}

fn sorted_labels(map: &std::collections::HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    entries
}

/// `+K=V` added, `-K` removed, `K=old → K=new` changed, in the new order.
fn env_changes(old: &[String], new: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or(e).to_string();
    let mut out = Vec::new();
    for entry in new {
        match old.iter().find(|o| key(o) == key(entry)) {
            None => out.push(format!("+{entry}")),
            Some(o) if o != entry => out.push(format!("{o} → {entry}")),
            Some(_) => {}
        }
    }
    for entry in old {
        if !new.iter().any(|n| key(n) == key(entry)) {
            out.push(format!("-{}", key(entry)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::spec::{new_spec, Mode};
    use shoal_proto::types::v1::{
        service_spec, update_status, Meta, ReplicatedMode, ServiceRevision, UpdateStatus,
    };

    use crate::commands::service::{create_spec, ServiceCommand};
    use crate::commands::{Cli, Command};
    use clap::Parser;
    use shoal_proto::types::v1::{update_config, UpdateConfig};

    fn service_command(args: &[&str]) -> Result<ServiceCommand, clap::Error> {
        let mut argv = vec!["shoal", "service"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Service(command) => Ok(command),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rollback_and_history_parse_as_docker_spells_them() {
        match service_command(&["rollback", "--to", "3", "-d", "-q", "web"]).expect("parses") {
            ServiceCommand::Rollback(args) => {
                assert_eq!(args.to, Some(3));
                assert!(args.wait.detach && args.wait.quiet);
                assert_eq!(args.service, "web");
            }
            other => panic!("{other:?}"),
        }
        match service_command(&["rollback", "web"]).expect("parses") {
            ServiceCommand::Rollback(args) => assert_eq!(args.to, None, "the previous spec"),
            other => panic!("{other:?}"),
        }
        match service_command(&["update", "--rollback", "web"]).expect("parses") {
            ServiceCommand::Update(args) => {
                let rollback = RollbackArgs::previous(&args);
                assert_eq!((rollback.to, rollback.service.as_str()), (None, "web"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            service_command(&["history", "web"]).expect("parses"),
            ServiceCommand::History(HistoryArgs { service, quiet: false, .. }) if service == "web"
        ));
        assert!(service_command(&["rollback", "--to", "x", "web"]).is_err());
    }

    #[test]
    fn rollback_flags_set_the_rollback_config_with_dockers_defaults() {
        let ServiceCommand::Create(args) = service_command(&[
            "create",
            "--rollback-parallelism",
            "2",
            "--rollback-delay",
            "3s",
            "--rollback-failure-action",
            "continue",
            "--rollback-monitor",
            "10s",
            "--rollback-max-failure-ratio",
            "0.5",
            "--rollback-order",
            "start-first",
            "busybox",
        ])
        .expect("parses") else {
            panic!("create")
        };
        let spec = create_spec(&args).expect("spec");
        assert_eq!(
            spec.rollback,
            Some(UpdateConfig {
                parallelism: 2,
                delay_ms: 3_000,
                order: update_config::Order::StartFirst as i32,
                failure_action: update_config::FailureAction::Continue as i32,
                monitor_ms: 10_000,
                max_failure_ratio: 0.5,
            })
        );
        let ServiceCommand::Create(plain) =
            service_command(&["create", "busybox"]).expect("parses")
        else {
            panic!("create")
        };
        let defaults = UpdateConfig {
            parallelism: 1,
            monitor_ms: 5_000,
            ..Default::default()
        };
        let spec = create_spec(&plain).expect("spec");
        assert_eq!(spec.rollback, Some(defaults));
        assert_eq!(spec.update, Some(defaults));
        // docker offers no rollback of a rollback.
        let refused = service_command(&["create", "--rollback-failure-action", "rollback", "x"]);
        assert!(refused.is_err());
        let ServiceCommand::Create(bad) =
            service_command(&["create", "--rollback-max-failure-ratio", "2", "x"]).expect("parses")
        else {
            panic!("create")
        };
        let err = create_spec(&bad).expect_err("ratio");
        assert!(
            err.to_string()
                .contains("--rollback-max-failure-ratio 2 is not between 0 and 1"),
            "{err}"
        );
    }

    fn web(image: &str, env: &[&str]) -> ServiceSpec {
        let mut spec = new_spec("web".into(), image.into(), vec![], Mode::Replicated);
        crate::commands::spec::container_mut(&mut spec).env =
            env.iter().map(|e| e.to_string()).collect();
        spec
    }

    #[test]
    fn changes_name_the_image_the_env_and_the_other_parts() {
        let before = web("web:v1", &["A=1", "DEBUG=1"]);
        let mut after = web("web:v2", &["A=2", "MODE=x"]);
        after.mode = Some(service_spec::Mode::Replicated(ReplicatedMode {
            replicas: 3,
        }));
        after.labels.insert("tier".into(), "front".into());
        after.task.as_mut().unwrap().force_update = 1;
        assert_eq!(
            changes(&before, &after),
            [
                "image web:v1 → web:v2",
                "env A=1 → A=2 +MODE=x -DEBUG",
                "replicas 1 → 3",
                "forced",
                "labels",
            ]
        );
        assert!(changes(&before, &before).is_empty());
        let mut user = before.clone();
        crate::commands::spec::container_mut(&mut user).user = "nobody".into();
        assert_eq!(changes(&before, &user), ["task settings"]);
        let mut logged = before.clone();
        logged.task.as_mut().unwrap().log_driver = Some(shoal_proto::types::v1::LogDriver {
            name: "local".into(),
            options: [("max-size".to_string(), "1m".to_string())].into(),
        });
        assert_eq!(changes(&before, &logged), ["log driver"]);
        assert!(changes(&logged, &logged.clone()).is_empty());
    }

    #[test]
    fn history_lists_the_kept_revisions_then_the_current_one() {
        let v1 = web("web:v1", &["A=1"]);
        let v1b = web("web:v1", &["A=2"]);
        let v2 = web("web:v2", &["A=2"]);
        let service = Service {
            meta: Some(Meta {
                created_at: 1_000,
                ..Default::default()
            }),
            spec: Some(v1.clone()),
            spec_version: 4,
            history: vec![
                ServiceRevision {
                    revision: 1,
                    spec: Some(v1),
                    created_at: 1_000,
                },
                ServiceRevision {
                    revision: 2,
                    spec: Some(v1b),
                    created_at: 61_000,
                },
                ServiceRevision {
                    revision: 3,
                    spec: Some(v2),
                    created_at: 121_000,
                },
            ],
            update_status: Some(UpdateStatus {
                state: update_status::State::RollbackCompleted as i32,
                started_at: 181_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let rows = history_rows(&service, 241_000);
        let table = ListFormat::Table
            .render(&HISTORY_COLUMNS, &rows, false)
            .expect("table");
        let cells: Vec<Vec<&str>> = table
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            cells,
            [
                vec!["REVISION", "CREATED", "IMAGE", "CHANGES"],
                vec!["1", "4 minutes ago", "web:v1", "created"],
                vec!["2", "3 minutes ago", "web:v1", "env A=1 → A=2"],
                vec!["3", "2 minutes ago", "web:v2", "image web:v1 → web:v2"],
                vec![
                    "4 (current)",
                    "About a minute ago",
                    "web:v1",
                    "image web:v2 → web:v1, env A=2 → A=1, same as revision 1"
                ],
            ]
        );
        assert_eq!(rows[3]["Current"], true);
        assert_eq!(rows[0]["Revision"], 1);
        assert_eq!(rows[1]["Changes"][0], "env A=1 → A=2");
    }
}
