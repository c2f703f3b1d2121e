//! Jobs and global services on a real lab (issue 11): a replicated job
//! runs its completions, at most max-concurrent at once, and `service
//! create` without `--detach` returns once it completed; a global service
//! and a global job follow a node joining the swarm.

use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// `service ps SERVICE --format json`, every task.
#[test]
fn a_replicated_job_completes_its_completions_and_create_waits_for_it() {
    let lab = test_lab(LabConfig {
        workers: 1,
        ..LabConfig::new("jobs1")
    });
    let image = format!("{}/web:v1", lab.registry());
    let started = Instant::now();
    // Without --detach: returns once the job completed.
    let out = lab
        .shoal([
            "service",
            "create",
            "--name",
            "batch",
            "--mode",
            "replicated-job",
            "--replicas",
            "3",
            "--max-concurrent",
            "2",
            &image,
            "sh",
            "-c",
            "sleep 2",
        ])
        .expect("service create");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "service create: {stderr}");
    assert!(stderr.contains("job complete"), "{stderr}");
    let took = started.elapsed();
    // Two rounds of 2 s at least: never 3 at once.
    assert!(took >= Duration::from_secs(4), "completed in {took:?}");

    let rows = lab.service_ps("batch");
    let complete: Vec<&Value> = rows.iter().filter(|r| r["State"] == "complete").collect();
    assert_eq!(complete.len(), 3, "{rows:#?}");
    assert!(
        complete.iter().all(|r| r["DesiredState"] == "Complete"),
        "{rows:#?}"
    );
    let ls = lab.shoal_must(&["service", "ls"]);
    assert!(ls.contains("0/0 (3/3 completed)"), "{ls}");
    let listing = lab.shoal_must(&["service", "ls", "--format", "json"]);
    assert!(listing.contains("replicated job"), "{listing}");

    // Nothing runs them again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.service_ps("batch").len(), 3);
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// Nodes of `service`'s tasks in `state`.
fn on(lab: &Lab, service: &str, state: &str) -> Vec<String> {
    lab.service_ps(service)
        .iter()
        .filter(|r| r["State"] == state)
        .map(|r| r["Node"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_global_service_and_a_global_job_follow_a_node_joining() {
    let mut lab = test_lab(LabConfig {
        workers: 2,
        unjoined_workers: 1,
        ..LabConfig::new("jobs2")
    });
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service", "create", "--name", "agent", "--mode", "global", &image,
    ]);
    lab.shoal_must(&[
        "service",
        "create",
        "--name",
        "setup",
        "--mode",
        "global-job",
        &image,
        "true",
    ]);
    let mut nodes = on(&lab, "agent", "running");
    nodes.sort();
    assert_eq!(nodes, ["m1", "w1"]);
    assert_eq!(on(&lab, "setup", "complete").len(), 2);

    lab.join_worker("w2").expect("w2 joins");
    let timeout = Duration::from_secs(60);
    lab.wait_until("the global service running on w2", timeout, || {
        let running = on(&lab, "agent", "running");
        if running.iter().any(|n| n == "w2") {
            Ok(())
        } else {
            Err(format!("running on {running:?}"))
        }
    })
    .expect("global service on w2");
    lab.wait_until("the global job completed on w2", timeout, || {
        let done = on(&lab, "setup", "complete");
        if done.iter().any(|n| n == "w2") {
            Ok(())
        } else {
            Err(format!("completed on {done:?}"))
        }
    })
    .expect("global job on w2");
    assert_eq!(lab.service_ps("agent").len(), 3);
    assert_eq!(lab.service_ps("setup").len(), 3);
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
