//! Node failure on a real lab (issue 11): a worker whose daemons are all
//! killed and whose namespace is cut off is marked down after the grace
//! period, its tasks run elsewhere within grace + 5 s, and when it comes
//! back its stale containers (still running all along) are stopped, never
//! duplicated: the service never has more running tasks than replicas.

use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// Heartbeat period (the manager's default, Swarm's 5 s) times Swarm's
/// grace multiplier of 3.
const GRACE: Duration = Duration::from_secs(15);
/// The node health check runs once a period after the grace ran out.
const PERIOD: Duration = Duration::from_secs(5);
const REPLICAS: usize = 4;

/// `service ps web --format json`: every task.
fn tasks(lab: &Lab) -> Vec<Value> {
    lab.service_ps("web")
}

/// Nodes of the tasks meant to run that run.
fn running_on(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .filter(|r| r["DesiredState"] == "Running" && r["State"] == "running")
        .map(|r| r["Node"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Tasks whose container runs, whatever they are meant to do.
fn observed_running(rows: &[Value]) -> usize {
    rows.iter().filter(|r| r["State"] == "running").count()
}

#[test]
fn a_dead_workers_tasks_run_elsewhere_and_are_never_duplicated_when_it_returns() {
    let mut lab = test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new("nodefail")
    });
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        &REPLICAS.to_string(),
        "--constraint",
        "node.role==worker",
        &image,
    ]);
    let before = running_on(&tasks(&lab));
    assert_eq!(before.len(), REPLICAS);
    let dead = "w1";
    let stale = before.iter().filter(|n| *n == dead).count();
    assert!(stale > 0, "nothing on {dead}: {before:?}");
    let stale_pids = lab.running_task_pids(dead).expect("w1's containers");

    // Every shoal daemon of w1 dies and w1 is off the network; its
    // containers (containerd's shims) live on, as on a partitioned host.
    for daemon in ["shoal-agent", "shoal-netd", "shoal-manager"] {
        lab.kill9(dead, daemon).expect("kill");
    }
    lab.cut(dead).expect("cut w1 off");
    let died = Instant::now();
    let moved = lab
        .wait_until(
            "w1's tasks running on w2",
            GRACE + PERIOD + Duration::from_secs(20),
            || {
                let on = running_on(&tasks(&lab));
                if on.len() == REPLICAS && on.iter().all(|n| n != dead) {
                    Ok(died.elapsed())
                } else {
                    Err(format!("running on {on:?}"))
                }
            },
        )
        .expect("rescheduled");
    eprintln!("w1's tasks ran elsewhere {moved:?} after it died");
    assert!(
        moved <= GRACE + PERIOD + Duration::from_secs(5),
        "rescheduled {moved:?} after the node died: more than grace + 5 s"
    );
    let nodes = lab.shoal_must(&["node", "ls", "--format", "json"]);
    assert!(nodes.contains("\"Down\""), "w1 not down: {nodes}");

    // w1 returns: its agent stops the stale containers; no slot is doubled.
    lab.heal(dead).expect("heal");
    for daemon in ["shoal-manager", "shoal-netd", "shoal-agent"] {
        lab.start_again(dead, daemon).expect("restart");
    }
    let returned = Instant::now();
    let mut most = 0;
    lab.wait_until("w1's stale tasks stopped", Duration::from_secs(40), || {
        let rows = tasks(&lab);
        let live = running_on(&rows).len();
        assert!(live <= REPLICAS, "{live} running of {REPLICAS}: {rows:#?}");
        most = most.max(observed_running(&rows));
        let pids = lab.running_task_pids(dead).map_err(|e| e.to_string())?;
        if observed_running(&rows) == REPLICAS && pids.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} tasks observed running, {} containers left on w1",
                observed_running(&rows),
                pids.len()
            ))
        }
    })
    .expect("stale tasks stopped");
    eprintln!(
        "w1's {} stale containers ({:?}) stopped {:?} after it returned; at most {most} tasks observed running",
        stale,
        stale_pids,
        returned.elapsed()
    );
    // And it stays so.
    std::thread::sleep(Duration::from_secs(3));
    let rows = tasks(&lab);
    assert_eq!(running_on(&rows).len(), REPLICAS, "{rows:#?}");
    assert_eq!(observed_running(&rows), REPLICAS, "{rows:#?}");
    let stale_rows = rows
        .iter()
        .filter(|r| r["Node"] == dead && r["DesiredState"] == "Shutdown")
        .count();
    assert_eq!(stale_rows, stale, "{rows:#?}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
