//! Task tables (`service ps`, `stack ps`) and the filters they take.

use std::collections::HashMap;

use clap::Args;
use serde_json::json;
use shoal_proto::control::v1::{ListNodesRequest, ListTasksRequest};
use shoal_proto::types::v1::{HealthState, PortConfig, Task, TaskState};

use super::{node, parse, Error, Io};
use crate::client::Session;
use crate::output::{capitalize, ellipsis, now_ms, short_id, state_since, Listing};

/// docker's `maxErrLength`.
const MAX_ERROR_LEN: usize = 30;

#[derive(Debug, Clone, Default, Args)]
pub struct PsFlags {
    /// Filter output based on conditions provided (id=, name=, node=, desired-state=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = filter)]
    pub filters: Vec<TaskFilter>,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFilter {
    /// Id prefix.
    Id(String),
    /// Task name (`web.1`) or service name.
    Name(String),
    /// Node id or hostname.
    Node(String),
    DesiredState(DesiredState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredState {
    Running,
    Shutdown,
    Accepted,
}

pub fn filter(input: &str) -> Result<TaskFilter, String> {
    let (key, value) = input
        .split_once('=')
        .ok_or_else(|| format!("bad format of filter {input:?} (expected name=value)"))?;
    Ok(match key {
        "id" => TaskFilter::Id(value.into()),
        "name" => TaskFilter::Name(value.into()),
        "node" => TaskFilter::Node(value.into()),
        "desired-state" => TaskFilter::DesiredState(match value {
            "running" => DesiredState::Running,
            "shutdown" => DesiredState::Shutdown,
            "accepted" => DesiredState::Accepted,
            other => {
                return Err(format!(
                    "invalid desired-state {other:?}: running, shutdown or accepted"
                ))
            }
        }),
        other => {
            return Err(format!(
                "invalid filter {other:?}: id, name, node or desired-state"
            ))
        }
    })
}

impl TaskFilter {
    fn matches(&self, task: &Task, hostnames: &HashMap<String, String>) -> bool {
        match self {
            TaskFilter::Id(prefix) => task_id(task).starts_with(prefix.as_str()),
            TaskFilter::Name(name) => task_name(task) == *name || task.service_name == *name,
            TaskFilter::Node(node) => {
                task.node_id == *node || hostnames.get(&task.node_id) == Some(node)
            }
            TaskFilter::DesiredState(state) => {
                let desired = task.desired();
                match state {
                    DesiredState::Running => desired <= TaskState::Running,
                    DesiredState::Shutdown => desired > TaskState::Running,
                    DesiredState::Accepted => desired == TaskState::Accepted,
                }
            }
        }
    }
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
    let nodes = session
        .client
        .list_nodes(ListNodesRequest {})
        .await?
        .into_inner()
        .nodes;
    let hostnames = node::hostnames(&nodes);
    let tasks: Vec<Task> = tasks
        .into_iter()
        .filter(|t| flags.filters.iter().all(|f| f.matches(t, &hostnames)))
        .collect();
    let tasks = sorted(tasks);
    if flags.quiet {
        for task in &tasks {
            let id = task_id(task);
            writeln!(io.out, "{}", if flags.no_trunc { id } else { short_id(id) })?;
        }
        return Ok(());
    }
    task_listing(&tasks, &hostnames, flags.no_trunc, now_ms()).write(io.format, io.out)?;
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

/// `sorted` tasks as rows; older tasks of a slot are shown as ` \_ name.slot`.
pub fn task_listing(
    tasks: &[Task],
    hostnames: &HashMap<String, String>,
    no_trunc: bool,
    now_ms: i64,
) -> Listing {
    let mut listing = Listing::new(&[
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ]);
    let mut previous: Option<(String, String)> = None;
    for task in tasks {
        let name = task_name(task);
        let group = (task.service_id.clone(), name.clone());
        let shown_name = if previous.as_ref() == Some(&group) {
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
        let node = hostnames
            .get(&task.node_id)
            .filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| task.node_id.clone());
        let desired = capitalize(task.desired().display_name());
        let observed = task.observed_state();
        let status = task.status.as_ref();
        let since = status
            .map(|s| s.timestamp)
            .filter(|t| *t > 0)
            .unwrap_or_else(|| task.meta.as_ref().map(|m| m.updated_at).unwrap_or(0));
        let health = status.map_or(HealthState::None, |s| s.health());
        let current = state_since(&state_with_health(observed, health), since, now_ms);
        let error = status.map(|s| s.err.as_str()).unwrap_or("");
        let shown_error = match (error.is_empty(), no_trunc) {
            (true, _) => String::new(),
            (false, true) => format!("{error:?}"),
            (false, false) => format!("{:?}", ellipsis(error, MAX_ERROR_LEN)),
        };
        let ports = format_ports(&task.endpoint_ports);
        listing.push(
            vec![
                if no_trunc {
                    id.to_string()
                } else {
                    short_id(id).to_string()
                },
                shown_name,
                if no_trunc {
                    image.to_string()
                } else {
                    strip_digest(image).to_string()
                },
                node.clone(),
                desired.clone(),
                current.clone(),
                shown_error,
                ports.clone(),
            ],
            json!({
                "ID": id,
                "Name": name,
                "ServiceID": task.service_id,
                "Slot": task.slot,
                "Image": image,
                "Node": node,
                "DesiredState": desired,
                "CurrentState": current,
                "State": observed.display_name(),
                "Health": health_name(health),
                "Error": error,
                "Ports": ports,
            }),
        );
    }
    listing
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
    if task.slot > 0 {
        format!("{}.{}", task.service_name, task.slot)
    } else {
        format!("{}.{}", task.service_name, task.node_id)
    }
}

/// `image@sha256:...` shown without the digest, as docker does unless `--no-trunc`.
fn strip_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// `*:8080->80/tcp, *:53->53/udp`
pub fn format_ports(ports: &[PortConfig]) -> String {
    ports
        .iter()
        .map(|p| {
            let proto = parse::protocol_name(p.protocol);
            if p.published_port == 0 {
                format!("{}/{proto}", p.target_port)
            } else {
                format!("*:{}->{}/{proto}", p.published_port, p.target_port)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    #[test]
    fn ps_shows_health_beside_the_state_as_docker_ps_does() {
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
            let listing = task_listing(&[t], &HashMap::new(), false, 13_000);
            let row = listing.rows[0].clone();
            (row[5].clone(), listing.json[0]["Health"].clone())
        };
        assert_eq!(
            with(TaskState::Running, HealthState::Healthy),
            ("Running (healthy) 3 seconds ago".into(), json!("healthy"))
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
            ("Running 3 seconds ago".into(), json!(""))
        );
    }

    #[test]
    fn ps_groups_history_under_the_current_task_of_a_slot() {
        let tasks = sorted(vec![
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
        ]);
        let hostnames = HashMap::from([("n1".to_string(), "m1".to_string())]);
        let listing = task_listing(&tasks, &hostnames, false, 15_000);
        let names: Vec<&str> = listing.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(names, ["web.1", " \\_ web.1", "web.2"]);
        let old = &listing.rows[1];
        assert_eq!(old[0], "old1aaaaaaaa");
        assert_eq!(old[2], "busybox:1");
        assert_eq!(old[3], "m1");
        assert_eq!(old[4], "Shutdown");
        assert_eq!(old[5], "Failed 5 seconds ago");
        assert_eq!(old[6], "\"starting container failed: no…\"");
        assert_eq!(listing.json[1]["Name"], "web.1");
        assert_eq!(
            listing.json[1]["Error"],
            "starting container failed: no such image"
        );

        let full = task_listing(&tasks, &hostnames, true, 15_000);
        assert_eq!(full.rows[1][0], "old1aaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(full.rows[1][2], "busybox:1@sha256:abcd");
        assert_eq!(
            full.rows[1][6],
            "\"starting container failed: no such image\""
        );
    }

    #[test]
    fn desired_state_filter_separates_current_from_history() {
        let hostnames = HashMap::new();
        let running = filter("desired-state=running").expect("filter");
        let shutdown = filter("desired-state=shutdown").expect("filter");
        let live = task("a", 1, 1, TaskState::Running, TaskState::Running, "");
        let dead = task("b", 1, 1, TaskState::Shutdown, TaskState::Failed, "");
        assert!(running.matches(&live, &hostnames));
        assert!(!running.matches(&dead, &hostnames));
        assert!(shutdown.matches(&dead, &hostnames));
        assert!(filter("desired-state=sleeping").is_err());
        assert!(filter("colour=red").is_err());
        assert!(filter("node").is_err());
    }

    #[test]
    fn ports_render_like_docker() {
        let mut ports = parse::publish("8080:80").expect("port");
        ports.extend(parse::publish("53/udp").expect("port"));
        assert_eq!(format_ports(&ports), "*:8080->80/tcp, 53/udp");
    }
}
