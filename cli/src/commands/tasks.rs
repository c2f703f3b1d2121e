//! Task lists (`service ps`, `node ps`, `stack ps`) as docker shows them
//! (docker/cli `cli/command/task`), and the filters they take.

use std::collections::HashMap;

use clap::Args;
use serde_json::{json, Value};
use shoal_proto::control::v1::ListTasksRequest;
use shoal_proto::types::v1::{HealthState, PortConfig, PublishMode, Task, TaskState};

use super::{node, parse, Error, Io};
use crate::client::Session;
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, ListFormat, LIST_HELP};
use crate::output::{capitalize, ellipsis, image_shown, now_ms, short_id, state_since};

/// docker's `maxErrLength`.
const MAX_ERROR_LEN: usize = 30;

/// docker's task columns (`cli/command/task/formatter.go`).
pub const TASK_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("Image", "IMAGE"),
        ("Node", "NODE"),
        ("DesiredState", "DESIRED STATE"),
        ("CurrentState", "CURRENT STATE"),
        ("Error", "ERROR"),
        ("Ports", "PORTS"),
    ],
    table: "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}",
    quiet: "{{.ID}}",
};

/// The filters of task lists (docker's `service ps` filters).
pub const TASK_FILTERS: FilterKeys = FilterKeys {
    command: "ps",
    keys: &[
        FilterKey::one_of("desired-state", &["running", "shutdown", "accepted"]),
        FilterKey::any("id"),
        FilterKey::any("name"),
        FilterKey::any("node"),
    ],
};

#[derive(Debug, Clone, Default, Args)]
pub struct PsFlags {
    /// Filter output based on conditions provided (id=, name=, node=, desired-state=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| TASK_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Do not map IDs to Names
    #[arg(long)]
    pub no_resolve: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
}

/// The `ps` help's examples, in docker's style.
pub const PS_EXAMPLES: &str = "Examples:
  shoal service ps web
  shoal service ps -f desired-state=running --no-trunc web
  shoal service ps --format '{{.Name}} {{.Node}} {{.CurrentState}}' web";

/// Whether `task` passes `filters` (docker's task filters: `id` and `name`
/// are prefixes, of the id and of `service.slot.id`; `node` is an id, an id
/// prefix or a hostname).
fn task_matches(filters: &Filters, task: &Task, hostnames: &HashMap<String, String>) -> bool {
    let id = task_id(task);
    let full_name = format!("{}.{id}", task_name(task));
    filters.any("id", |prefix| id.starts_with(prefix))
        && filters.any("name", |prefix| full_name.starts_with(prefix))
        && filters.any("node", |node| {
            task.node_id.starts_with(node)
                || hostnames.get(&task.node_id).is_some_and(|h| h == node)
        })
        && filters.any("desired-state", |state| {
            let desired = task.desired();
            match state {
                "running" => desired <= TaskState::Running,
                "shutdown" => desired > TaskState::Running,
                _ => desired == TaskState::Accepted,
            }
        })
}

/// Lists the tasks of `service_ids` as `service ps` shows them.
pub async fn ps(
    session: &mut Session,
    service_ids: Vec<String>,
    flags: &PsFlags,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let request = ListTasksRequest {
        service_ids,
        ..Default::default()
    };
    ps_of(session, request, flags, io).await
}

/// Lists the tasks a request selects (`service ps`, `node ps`).
pub async fn ps_of(
    session: &mut Session,
    request: ListTasksRequest,
    flags: &PsFlags,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let tasks = session.client.list_tasks(request).await?.into_inner().tasks;
    let nodes = super::node::list(session).await?;
    let hostnames = node::hostnames(&nodes);
    let filters = Filters::new(&flags.filters);
    let tasks: Vec<Task> = tasks
        .into_iter()
        .filter(|t| task_matches(&filters, t, &hostnames))
        .collect();
    let view = TaskView {
        hostnames: (!flags.no_resolve).then_some(&hostnames),
        trunc: !flags.no_trunc,
        table: flags.format.is_table(flags.quiet),
        now_ms: now_ms(),
    };
    let rows = task_rows(&sorted(tasks), &view);
    let text = flags.format.render(&TASK_COLUMNS, &rows, flags.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// Tasks by service and slot, the newest of each slot first (docker's order).
pub fn sorted(mut tasks: Vec<Task>) -> Vec<Task> {
    tasks.sort_by(|a, b| {
        a.service_name
            .cmp(&b.service_name)
            .then(a.service_id.cmp(&b.service_id))
            .then(a.slot.cmp(&b.slot))
            .then(a.node_id.cmp(&b.node_id))
            .then(created_at(b).cmp(&created_at(a)))
            .then(task_id(a).cmp(task_id(b)))
    });
    tasks
}

/// How task rows are shown.
pub struct TaskView<'a> {
    /// Hostnames by node id; without them (`--no-resolve`) nodes and
    /// services are shown by id.
    pub hostnames: Option<&'a HashMap<String, String>>,
    /// docker's truncation of ids, images and errors (off with `--no-trunc`).
    pub trunc: bool,
    /// A table: older tasks of a slot are shown as ` \_ web.1`.
    pub table: bool,
    pub now_ms: i64,
}

/// `sorted` tasks as docker's task rows (`.ID`, `.Name`, `.Image`, `.Node`,
/// `.DesiredState`, `.CurrentState`, `.Error`, `.Ports`), with shoal's
/// machine-readable `.State`, `.Health`, `.Slot` and `.ServiceID` beside them.
pub fn task_rows(tasks: &[Task], view: &TaskView) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut previous: Option<(String, String)> = None;
    for task in tasks {
        let name = match view.hostnames {
            Some(_) => task_name(task),
            None => task_name_by_id(task),
        };
        let group = (task.service_id.clone(), name.clone());
        let shown_name = if view.table && previous.as_ref() == Some(&group) {
            format!(" \\_ {name}")
        } else {
            name.clone()
        };
        previous = Some(group);

        let id = task_id(task);
        let image = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.image.as_str())
            .unwrap_or("");
        let node = match view.hostnames {
            Some(hostnames) => hostnames
                .get(&task.node_id)
                .filter(|h| !h.is_empty())
                .cloned()
                .unwrap_or_else(|| task.node_id.clone()),
            None => task.node_id.clone(),
        };
        let observed = task.observed_state();
        let status = task.status.as_ref();
        let since = status
            .map(|s| s.timestamp)
            .filter(|t| *t > 0)
            .unwrap_or_else(|| task.meta.as_ref().map(|m| m.updated_at).unwrap_or(0));
        let health = status.map_or(HealthState::None, |s| s.health());
        let error = status.map(|s| s.err.as_str()).unwrap_or("");
        let shown_error = match (error.is_empty(), view.trunc) {
            (true, _) => String::new(),
            (false, true) => format!("\"{}\"", ellipsis(error, MAX_ERROR_LEN)),
            (false, false) => format!("\"{error}\""),
        };
        rows.push(json!({
            "ID": if view.trunc { short_id(id) } else { id },
            "Name": shown_name,
            "Image": if view.trunc { image_shown(image) } else { image },
            "Node": node,
            "DesiredState": capitalize(task.desired().display_name()),
            "CurrentState": state_since(&state_with_health(observed, health), since, view.now_ms),
            "Error": shown_error,
            "Ports": host_ports(&task.endpoint_ports),
            "State": observed.display_name(),
            "Health": health_name(health),
            "Slot": task.slot,
            "ServiceID": task.service_id,
        }));
    }
    rows
}

/// Docker's words for a container's health (`docker inspect`'s
/// `State.Health.Status`); empty without a check.
pub fn health_name(health: HealthState) -> &'static str {
    match health {
        HealthState::None => "",
        HealthState::Starting => "starting",
        HealthState::Healthy => "healthy",
        HealthState::Unhealthy => "unhealthy",
    }
}

/// A task's state with its health as `docker ps` shows it: `running
/// (healthy)`, `starting (health: starting)`, `failed (unhealthy)`.
fn state_with_health(state: TaskState, health: HealthState) -> String {
    match health {
        HealthState::None => state.display_name().to_string(),
        HealthState::Starting => format!("{} (health: starting)", state.display_name()),
        other => format!("{} ({})", state.display_name(), health_name(other)),
    }
}

pub fn task_id(task: &Task) -> &str {
    task.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

fn created_at(task: &Task) -> i64 {
    task.meta.as_ref().map(|m| m.created_at).unwrap_or(0)
}

/// `web.1` for a replicated task, `web.<node id>` for a global one (no slot).
pub fn task_name(task: &Task) -> String {
    task_name_of(&task.service_name, task)
}

/// A task's name with its service's id (docker's `--no-resolve`).
fn task_name_by_id(task: &Task) -> String {
    task_name_of(&task.service_id, task)
}

fn task_name_of(service: &str, task: &Task) -> String {
    if task.slot > 0 {
        format!("{service}.{}", task.slot)
    } else {
        format!("{service}.{}", task.node_id)
    }
}

/// A task's ports as docker's task rows show them: those published on its
/// node (`mode=host`), `*:8080->80/tcp,*:53->53/udp`.
fn host_ports(ports: &[PortConfig]) -> String {
    ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32)
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p.published_port,
                p.target_port,
                parse::protocol_name(p.protocol)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{ContainerSpec, Meta, TaskSpec, TaskStatus};

    fn task(
        id: &str,
        slot: u64,
        created: i64,
        desired: TaskState,
        state: TaskState,
        err: &str,
    ) -> Task {
        Task {
            meta: Some(Meta {
                id: id.into(),
                created_at: created,
                ..Default::default()
            }),
            service_id: "svc".into(),
            service_name: "web".into(),
            slot,
            node_id: "n1".into(),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox:1@sha256:abcd".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            desired_state: desired as i32,
            status: Some(TaskStatus {
                state: state as i32,
                timestamp: 10_000,
                err: err.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(
        hostnames: &HashMap<String, String>,
        trunc: bool,
        table: bool,
        now_ms: i64,
    ) -> TaskView<'_> {
        TaskView {
            hostnames: Some(hostnames),
            trunc,
            table,
            now_ms,
        }
    }

    #[test]
    fn ps_shows_health_beside_the_state_as_docker_ps_does() {
        let hostnames = HashMap::new();
        let with = |state: TaskState, health: HealthState| {
            let mut t = task(
                "h1aaaaaaaaaaaaaaaaaaaaaaa",
                1,
                1,
                TaskState::Running,
                state,
                "",
            );
            if let Some(s) = t.status.as_mut() {
                s.health = health as i32;
            }
            let rows = task_rows(&[t], &view(&hostnames, true, true, 13_000));
            (rows[0]["CurrentState"].clone(), rows[0]["Health"].clone())
        };
        assert_eq!(
            with(TaskState::Running, HealthState::Healthy),
            (json!("Running (healthy) 3 seconds ago"), json!("healthy"))
        );
        assert_eq!(
            with(TaskState::Starting, HealthState::Starting).0,
            "Starting (health: starting) 3 seconds ago"
        );
        assert_eq!(
            with(TaskState::Failed, HealthState::Unhealthy).0,
            "Failed (unhealthy) 3 seconds ago"
        );
        assert_eq!(
            with(TaskState::Running, HealthState::None),
            (json!("Running 3 seconds ago"), json!(""))
        );
    }

    fn history() -> Vec<Task> {
        sorted(vec![
            task(
                "old1aaaaaaaaaaaaaaaaaaaaa",
                1,
                1,
                TaskState::Shutdown,
                TaskState::Failed,
                "starting container failed: no such image",
            ),
            task(
                "new2aaaaaaaaaaaaaaaaaaaaa",
                2,
                3,
                TaskState::Running,
                TaskState::Running,
                "",
            ),
            task(
                "new1aaaaaaaaaaaaaaaaaaaaa",
                1,
                2,
                TaskState::Running,
                TaskState::Running,
                "",
            ),
        ])
    }

    #[test]
    fn ps_rows_are_dockers_with_history_under_the_current_task_of_a_slot() {
        let hostnames = HashMap::from([("n1".to_string(), "m1".to_string())]);
        let rows = task_rows(&history(), &view(&hostnames, true, true, 15_000));
        let names: Vec<&Value> = rows.iter().map(|r| &r["Name"]).collect();
        assert_eq!(names, ["web.1", " \\_ web.1", "web.2"]);
        let old = &rows[1];
        assert_eq!(old["ID"], "old1aaaaaaaa");
        assert_eq!(old["Image"], "busybox:1");
        assert_eq!(old["Node"], "m1");
        assert_eq!(old["DesiredState"], "Shutdown");
        assert_eq!(old["CurrentState"], "Failed 5 seconds ago");
        // docker/cli task formatter: the error cut to 30 and quoted.
        assert_eq!(old["Error"], "\"starting container failed: no…\"");
        assert_eq!(old["State"], "failed");

        let full = task_rows(&history(), &view(&hostnames, false, false, 15_000));
        assert_eq!(full[1]["Name"], "web.1", "no indent outside tables");
        assert_eq!(full[1]["ID"], "old1aaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(full[1]["Image"], "busybox:1@sha256:abcd");
        assert_eq!(
            full[1]["Error"],
            "\"starting container failed: no such image\""
        );

        let by_id = task_rows(
            &history(),
            &TaskView {
                hostnames: None,
                ..view(&hostnames, true, true, 15_000)
            },
        );
        assert_eq!(by_id[0]["Name"], "svc.1");
        assert_eq!(by_id[0]["Node"], "n1");
    }

    #[test]
    fn ps_table_and_templates_read_like_dockers() {
        let hostnames = HashMap::from([("n1".to_string(), "m1".to_string())]);
        // docker/cli task formatter's defaultTaskTableFormat headers.
        assert_eq!(
            ListFormat::Table.render(&TASK_COLUMNS, &[], false).expect("table"),
            "ID        NAME      IMAGE     NODE      DESIRED STATE   CURRENT STATE   ERROR     PORTS\n"
        );
        let format = ListFormat::parse("{{.Name}} {{.Node}} {{.DesiredState}}").expect("format");
        let rows = task_rows(
            &history(),
            &view(&hostnames, true, format.is_table(false), 15_000),
        );
        assert_eq!(
            format.render(&TASK_COLUMNS, &rows, false).expect("render"),
            "web.1 m1 Running\nweb.1 m1 Shutdown\nweb.2 m1 Running\n"
        );
        let rows = task_rows(&history(), &view(&hostnames, true, false, 15_000));
        assert_eq!(
            ListFormat::Table
                .render(&TASK_COLUMNS, &rows, true)
                .expect("quiet"),
            "new1aaaaaaaa\nold1aaaaaaaa\nnew2aaaaaaaa\n"
        );
    }

    fn kept(filters: &[&str]) -> Vec<String> {
        let parsed: Vec<Filter> = filters
            .iter()
            .map(|f| TASK_FILTERS.parse(f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        let filters = Filters::new(&parsed);
        let hostnames = HashMap::from([("n1xyz".to_string(), "m1".to_string())]);
        let mut tasks = history();
        tasks[2].node_id = "n1xyz".into();
        tasks
            .iter()
            .filter(|t| task_matches(&filters, t, &hostnames))
            .map(|t| task_id(t)[..4].to_string())
            .collect()
    }

    #[test]
    fn ps_filters_are_dockers() {
        assert_eq!(kept(&["desired-state=running"]), ["new1", "new2"]);
        assert_eq!(kept(&["desired-state=shutdown"]), ["old1"]);
        assert_eq!(
            kept(&["desired-state=shutdown", "desired-state=running"]).len(),
            3
        );
        // A name is a prefix of `service.slot.id`.
        assert_eq!(kept(&["name=web.1"]), ["new1", "old1"]);
        assert_eq!(kept(&["name=web.1.old"]), ["old1"]);
        assert_eq!(kept(&["id=new"]), ["new1", "new2"]);
        assert_eq!(kept(&["node=m1"]), ["new2"]);
        assert_eq!(kept(&["node=n1x"]), ["new2"]);
        assert_eq!(
            kept(&["id=new", "desired-state=shutdown"]),
            Vec::<String>::new()
        );
        assert!(TASK_FILTERS.parse("desired-state=sleeping").is_err());
        assert_eq!(
            TASK_FILTERS.parse("colour=red").unwrap_err(),
            "invalid filter 'colour': ps filters on desired-state, id, name, node"
        );
        assert!(TASK_FILTERS.parse("node").is_err());
    }

    #[test]
    fn ports_are_the_ones_published_on_the_node() {
        let mut ports = parse::publish("mode=host,published=8080,target=80").expect("port");
        ports.extend(parse::publish("53:53/udp").expect("port"));
        ports.extend(
            parse::publish("mode=host,published=5353,target=53,protocol=udp").expect("port"),
        );
        assert_eq!(host_ports(&ports), "*:8080->80/tcp,*:5353->53/udp");
    }
}
