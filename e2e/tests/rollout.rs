//! Rollouts on a real lab (issue 11): `service rollback --to` two
//! revisions back restores that revision's image and environment, and an
//! update whose new tasks never run (they exit at once), then one whose
//! new tasks never get healthy, rolls back by itself while the service
//! keeps answering on its published port all along.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

fn inspect(lab: &Lab, service: &str) -> Value {
    let json = lab.shoal_must(&["service", "inspect", service]);
    let all: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    all[0].clone()
}

/// `service ps SERVICE --format json`: the tasks meant to run.
fn desired_running(lab: &Lab, service: &str) -> Vec<Value> {
    lab.service_ps(service)
        .into_iter()
        .filter(|r| r["DesiredState"] == "Running")
        .collect()
}

/// The environment of every container running on `host` (read from its
/// first process, as the container started it).
fn container_envs(lab: &Lab, host: &str) -> Vec<Vec<String>> {
    lab.running_task_pids(host)
        .expect("containers")
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|e| !e.is_empty())
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect()
        })
        .collect()
}

#[test]
fn rollback_to_two_revisions_back_restores_image_and_env() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("roll1")
    });
    let v1 = format!("{}/web:v1", lab.registry());
    let v2 = format!("{}/web:v2", lab.registry());
    let started = Instant::now();
    lab.shoal_must(&[
        "service",
        "create",
        "--quiet",
        "--name",
        "hist",
        "--env",
        "A=1",
        "--publish",
        "8080:80",
        "--constraint",
        "node.hostname==w1",
        "--update-monitor",
        "1s",
        "--rollback-monitor",
        "1s",
        &v1,
    ]);
    lab.shoal_must(&["service", "update", "--quiet", "--env-add", "A=2", "hist"]);
    lab.shoal_must(&["service", "update", "--quiet", "--image", &v2, "hist"]);

    let history: Vec<Value> = shoal_e2e::lab::json_lines(
        &lab.shoal_must(&["service", "history", "hist", "--format", "json"]),
    )
    .expect("history json");
    let revisions: Vec<u64> = history
        .iter()
        .map(|r| r["Revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [1, 2, 3], "{history:?}");
    assert_eq!(history[1]["Changes"][0], "env A=1 → A=2", "{history:?}");
    assert_eq!(history[2]["Current"], true);
    let table = lab.shoal_must(&["service", "history", "hist"]);
    assert!(table.contains("3 (current)"), "{table}");

    lab.shoal_must(&["service", "rollback", "--quiet", "--to", "1", "hist"]);
    let service = inspect(&lab, "hist");
    let container = &service["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Image"], v1.as_str(), "{service}");
    assert_eq!(container["Env"], serde_json::json!(["A=1"]), "{service}");
    assert_eq!(service["SpecVersion"], 4, "a rollback is a new revision");
    assert_eq!(service["UpdateStatus"]["State"], "rollback_completed");
    assert_eq!(
        service["UpdateStatus"]["Message"], "rollback completed",
        "{service}"
    );

    let tasks = desired_running(&lab, "hist");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["Image"], v1.as_str());
    assert_eq!(tasks[0]["State"], "running");
    let envs = container_envs(&lab, "w1");
    assert_eq!(envs.len(), 1, "one container on w1: {envs:?}");
    assert!(envs[0].contains(&"A=1".to_string()), "{envs:?}");
    let m1 = lab.host_addr("m1").expect("m1");
    let (status, body) = lab
        .wait_until(
            "the rolled back task answers",
            Duration::from_secs(10),
            || lab.http_get(m1, 8080, "/"),
        )
        .expect("answers");
    assert_eq!(status, 200);
    assert!(body.starts_with("web v1 "), "{body}");
    eprintln!("rollback --to: {:.1} s", started.elapsed().as_secs_f64());
    lab.down().expect("lab down leaves nothing");
}

#[test]
fn updates_whose_tasks_never_run_or_never_get_healthy_roll_back_while_the_service_answers() {
    let lab = Arc::new(test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new("roll2")
    }));
    let v1 = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service",
        "create",
        "--quiet",
        "--name",
        "safe",
        "--replicas",
        "3",
        "--publish",
        "8081:80",
        "--update-failure-action",
        "rollback",
        "--update-monitor",
        "2s",
        "--rollback-monitor",
        "1s",
        &v1,
    ]);
    let m1 = lab.host_addr("m1").expect("m1");
    lab.wait_until(
        "the published port answers",
        Duration::from_secs(10),
        || lab.http_get(m1, 8081, "/"),
    )
    .expect("answers");

    // A client asking all along.
    let stop = Arc::new(AtomicBool::new(false));
    // Each failed request with when it was asked (since `asked_from`).
    let failures = Arc::new(Mutex::new(Vec::<(Duration, String)>::new()));
    let asked_from = Instant::now();
    let client = {
        let (lab, stop, failures) = (lab.clone(), stop.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let asked = asked_from.elapsed();
                match lab.http_get(m1, 8081, "/") {
                    Ok((200, body)) if body.starts_with("web v1 ") => answered += 1,
                    other => failures.lock().unwrap().push((asked, format!("{other:?}"))),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            answered
        })
    };

    let started = Instant::now();
    // The new tasks exit 1 at once: never running.
    let out = lab
        .shoal(["service", "update", "--entrypoint", "false", "safe"])
        .expect("run the update");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rolled back update fails the wait");
    assert!(
        stderr.contains(
            "service safe: update rolled back: update rolled back due to failure or early termination of task"
        ),
        "{stderr}"
    );
    let service = inspect(&lab, "safe");
    assert_eq!(
        service["UpdateStatus"]["State"], "rollback_completed",
        "{service}"
    );
    let container = &service["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Image"], v1.as_str());
    assert!(
        container.get("Command").is_none_or(|c| c.is_null()),
        "{container}"
    );
    let tasks = desired_running(&lab, "safe");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["State"] == "running"), "{tasks:?}");
    let rolled_back_in = started.elapsed();
    let never_running_ended = asked_from.elapsed();

    // Then an update whose new tasks run but never get healthy: they stay
    // starting (out of the load balancers) until unhealthy, and fail.
    let started = Instant::now();
    let out = lab
        .shoal([
            "service",
            "update",
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "safe",
        ])
        .expect("run the update");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("service safe: update rolled back: update rolled back due to failure"),
        "{stderr}"
    );
    let service = inspect(&lab, "safe");
    assert_eq!(
        service["UpdateStatus"]["State"], "rollback_completed",
        "{service}"
    );
    let container = &service["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert!(
        container.get("Healthcheck").is_none_or(|h| h.is_null()),
        "{container}"
    );
    let tasks = desired_running(&lab, "safe");
    assert!(
        tasks.len() == 3 && tasks.iter().all(|t| t["State"] == "running"),
        "{tasks:?}"
    );
    let unhealthy_rolled_back_in = started.elapsed();

    // Keep asking a moment after the rollback, then stop the client.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let answered = client.join().expect("client");
    let failures = failures.lock().unwrap().clone();
    let asked = answered + failures.len();
    // A task that exits at once is reported running, then failed: in
    // between, a load balancer may send it a connection, as Swarm's would
    // (known limitation: a task is a backend from its first running
    // report, with no grace to see it stay up). That is one task, and so
    // at most a request or two, per attempt of the first update; the
    // update whose tasks never get healthy loses none: they never take
    // traffic.
    let (first, second): (Vec<_>, Vec<_>) = failures
        .iter()
        .partition(|(at, _)| *at < never_running_ended);
    assert!(
        first.len() <= 2,
        "{} of {asked} requests failed during the update whose tasks exit at once: {first:?}",
        first.len()
    );
    assert!(
        second.is_empty(),
        "{} of {asked} requests failed during the update whose tasks never get healthy: {second:?}",
        second.len()
    );
    assert!(answered > 10, "only {answered} answers");
    eprintln!(
        "rolled back in {:.1} s (tasks exiting) and {:.1} s (never healthy), {answered} requests answered, {} failed while tasks exited at once",
        rolled_back_in.as_secs_f64(),
        unhealthy_rolled_back_in.as_secs_f64(),
        first.len()
    );
    match Arc::try_unwrap(lab) {
        Ok(lab) => lab.down().expect("lab down leaves nothing"),
        Err(_) => panic!("the lab is still shared"),
    }
}
