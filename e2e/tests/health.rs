//! Health checks on a real lab (issue 11), one manager and one worker:
//! probes run inside the containers through containerd exec; a task that
//! is not healthy yet takes no traffic through its service's VIP or DNS
//! name while a healthy one does; a task that turns unhealthy leaves them,
//! fails with the probe's reason in `service ps`, and is replaced; a check
//! the image declares (`HEALTHCHECK`) applies without any flag.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use shoal_e2e::lab::{task_error, LabConfig};
use shoal_e2e::probe::{in_netns, lookup, node_hostnames, service_tasks, task_netns};
use shoal_e2e::test_lab;
use shoal_proto::types::v1::{HealthState, Task, TaskState};

const TIMEOUT: Duration = Duration::from_secs(30);

fn id_of(task: &Task) -> String {
    task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default()
}

fn address_on_front(task: &Task) -> Ipv4Addr {
    let attachment = task
        .networks
        .iter()
        .find(|a| a.network_name == "front")
        .unwrap_or_else(|| panic!("task {} is not on front", id_of(task)));
    attachment
        .address
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an address")
}

fn health(task: &Task) -> HealthState {
    task.status
        .as_ref()
        .map_or(HealthState::None, |s| s.health())
}

/// `service ps SERVICE --format json`, every row (history too).
/// Runs `script` with the container's own shell inside the task's
/// container (its mount namespace: the container's files).
fn in_container(task: &Task, script: &str) {
    let pid = task
        .status
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.pid)
        .filter(|pid| *pid != 0)
        .unwrap_or_else(|| panic!("task {} has no pid", id_of(task)));
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--", "/bin/sh", "-c", script])
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{script} in task {}: {}",
        id_of(task),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a client task sees of `web`: the addresses `tasks.web` answers and
/// the hostnames that serve 12 requests through web's VIP (a refused
/// connection serves none).
fn seen_from(client_netns: &std::path::Path, dns: Ipv4Addr) -> (Vec<Ipv4Addr>, BTreeSet<String>) {
    in_netns(client_netns, || {
        let mut tasks = lookup(dns, "tasks.web", Duration::from_secs(3))
            .expect("tasks.web")
            .addrs;
        tasks.sort();
        let vip = lookup(dns, "web", Duration::from_secs(3)).expect("web");
        let vip = *vip.addrs.first().expect("web has a VIP");
        let served = (0..12)
            .filter_map(|_| {
                shoal_e2e::fixtures::http_get(
                    SocketAddr::new(vip.into(), 80),
                    "/",
                    Duration::from_secs(2),
                )
                .ok()
                .and_then(|(_, body)| body.split_whitespace().nth(2).map(str::to_string))
            })
            .collect();
        (tasks, served)
    })
}

#[test]
fn unhealthy_and_not_yet_healthy_tasks_take_no_traffic_and_an_unhealthy_one_is_replaced() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("health1")
    });
    let registry = lab.registry().to_string();
    lab.shoal_must(&["network", "create", "--driver", "overlay", "front"]);
    // web: healthy only while /tmp/ok exists; failures in the first minute
    // do not count (start period), so both tasks stay `starting` until a
    // test makes one healthy.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--network",
        "front",
        "--replicas",
        "2",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-start-period",
        "1m",
        "--health-start-interval",
        "1s",
        "--restart-delay",
        "1s",
        &format!("{registry}/web:v1"),
    ]);
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "client",
        "--network",
        "front",
        &format!("{registry}/web:v1"),
    ]);
    // The image's HEALTHCHECK, no flag: healthy on its own.
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "checked",
        &format!("{registry}/web:checked"),
    ]);

    let hosts = node_hostnames(&lab);
    let starting = lab
        .wait_until("web's two tasks up and starting", TIMEOUT, || {
            let tasks = service_tasks(&lab, "web");
            let up: Vec<Task> = tasks
                .into_iter()
                .filter(|t| {
                    t.observed_state() == TaskState::Starting && health(t) == HealthState::Starting
                })
                .collect();
            if up.len() == 2 {
                Ok(up)
            } else {
                Err(format!("{} starting", up.len()))
            }
        })
        .expect("web starting");
    let client = lab
        .wait_until("the client running", TIMEOUT, || {
            service_tasks(&lab, "client")
                .into_iter()
                .find(|t| t.observed_state() == TaskState::Running)
                .ok_or("not yet")
        })
        .expect("client running");
    let client_host = hosts.get(&client.node_id).cloned().unwrap_or_default();
    let netns = task_netns(&lab, &client_host, &id_of(&client));
    let dns = client
        .networks
        .first()
        .and_then(|a| a.gateway.split('/').next()?.parse().ok())
        .expect("the client's gateway");

    // Nothing healthy yet: no DNS answer, and the VIP serves nothing.
    let (tasks, served) = seen_from(&netns, dns);
    assert!(
        tasks.is_empty(),
        "tasks.web before any is healthy: {tasks:?}"
    );
    assert!(served.is_empty(), "served before healthy: {served:?}");
    let rows = lab.service_ps("web");
    assert!(
        rows.iter().all(|r| r["Health"] == "starting"
            && r["CurrentState"]
                .as_str()
                .is_some_and(|s| s.starts_with("Starting (health: starting)"))),
        "service ps shows them starting: {rows:?}"
    );

    // One healthy: it alone takes traffic, the other (starting) none.
    let (healthy, other) = (&starting[0], &starting[1]);
    in_container(healthy, "touch /tmp/ok");
    lab.wait_until("the first web task healthy", TIMEOUT, || {
        let tasks = service_tasks(&lab, "web");
        match tasks.iter().find(|t| id_of(t) == id_of(healthy)) {
            Some(t)
                if t.observed_state() == TaskState::Running
                    && health(t) == HealthState::Healthy =>
            {
                Ok(())
            }
            other => Err(format!("{:?}", other.map(|t| t.status.clone()))),
        }
    })
    .expect("healthy");
    let (tasks, served) = lab
        .wait_until("the healthy task in web's backends", TIMEOUT, || {
            let seen = seen_from(&netns, dns);
            if seen.0.is_empty() {
                Err("tasks.web still empty".to_string())
            } else {
                Ok(seen)
            }
        })
        .expect("backends");
    assert_eq!(
        tasks,
        [address_on_front(healthy)],
        "tasks.web: the healthy task only"
    );
    assert_eq!(
        served,
        BTreeSet::from([healthy.hostname("")]),
        "the VIP serves from the healthy task only, never {}",
        other.hostname("")
    );
    let rows = lab.service_ps("web");
    let row = rows
        .iter()
        .find(|r| r["ID"] == id_of(healthy).as_str())
        .expect("the healthy task's row");
    assert_eq!(row["Health"], "healthy", "{row}");
    assert!(
        row["CurrentState"]
            .as_str()
            .is_some_and(|s| s.starts_with("Running (healthy)")),
        "{row}"
    );

    // The image's check made `checked` healthy without any flag.
    lab.wait_until("checked healthy by its image's check", TIMEOUT, || {
        let rows = lab.service_ps("checked");
        if rows
            .iter()
            .any(|r| r["State"] == "running" && r["Health"] == "healthy")
        {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .expect("image check");
    let inspected = lab.shoal_must(&["service", "inspect", "checked"]);
    assert!(
        !inspected.contains("Healthcheck"),
        "the check is the image's, not the service's: {inspected}"
    );

    // Unhealthy: out of the backends, failed with the probe's reason, and
    // replaced in its slot.
    in_container(healthy, "rm /tmp/ok; echo 'no ok file' > /tmp/why");
    let failed = lab
        .wait_until("the unhealthy task failed", TIMEOUT, || {
            let rows = lab.service_ps("web");
            rows.into_iter()
                .find(|r| r["ID"] == id_of(healthy).as_str() && r["State"] == "failed")
                .ok_or("not failed yet")
        })
        .expect("failed");
    assert!(
        task_error(&failed).starts_with("unhealthy container"),
        "the reason in service ps: {failed}"
    );
    assert_eq!(failed["Health"], "unhealthy", "{failed}");
    let (tasks, served) = seen_from(&netns, dns);
    assert!(tasks.is_empty(), "tasks.web after it failed: {tasks:?}");
    assert!(served.is_empty(), "served after it failed: {served:?}");
    let table = lab.shoal_must(&["service", "ps", "--no-trunc", "web"]);
    assert!(
        table.contains("unhealthy container") && table.contains("Failed (unhealthy)"),
        "{table}"
    );
    lab.wait_until("a new task in the failed one's slot", TIMEOUT, || {
        let slot = failed["Slot"].as_u64().unwrap_or_default();
        let tasks = service_tasks(&lab, "web");
        tasks
            .iter()
            .find(|t| t.slot == slot && id_of(t) != id_of(healthy))
            .filter(|t| t.observed_state() >= TaskState::Starting)
            .map(|_| ())
            .ok_or(format!("slot {slot}: {} tasks", tasks.len()))
    })
    .expect("replaced");

    lab.down().expect("lab down leaves nothing");
}
