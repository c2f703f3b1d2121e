//! Placement on a real lab (issue 11): a constraint no node meets keeps the
//! task pending with Swarm's kind of reason in `service ps`, and it runs,
//! on the node that fits, as soon as `node update --label-add` makes one
//! fit; a drained node's tasks move to the others.

use std::time::Duration;

use serde_json::Value;
use shoal_e2e::lab::{task_error, Lab, LabConfig};
use shoal_e2e::test_lab;

/// `service ps SERVICE --format json`: the tasks meant to run.
fn desired_running(lab: &Lab, service: &str) -> Vec<Value> {
    lab.service_ps(service)
        .into_iter()
        .filter(|r| r["DesiredState"] == "Running")
        .collect()
}

#[test]
fn a_constraint_no_node_meets_keeps_the_task_pending_until_a_label_makes_one_fit() {
    let lab = test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new("place1")
    });
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service",
        "create",
        "--detach",
        "--name",
        "zoned",
        "--constraint",
        "node.labels.zone==b",
        &image,
    ]);
    let timeout = Duration::from_secs(60);
    let reason = lab
        .wait_until("the task pending with a reason", timeout, || {
            let rows = desired_running(&lab, "zoned");
            let row = rows.first().ok_or("no task yet")?;
            let error = task_error(row).to_string();
            if row["State"] == "pending" && error.contains("no suitable node") {
                Ok(error)
            } else {
                Err(format!("not pending with a reason: {row}"))
            }
        })
        .expect("pending");
    assert!(
        reason.contains("scheduling constraints not satisfied on 3 nodes"),
        "Swarm's kind of reason: {reason}"
    );

    lab.shoal_must(&["node", "update", "--label-add", "zone=b", "w2"]);
    let node = lab
        .wait_until("the task running once w2 fits", timeout, || {
            let rows = desired_running(&lab, "zoned");
            let row = rows.first().ok_or("no task")?;
            if row["State"] == "running" {
                Ok(row["Node"].as_str().unwrap_or_default().to_string())
            } else {
                Err(format!("not running yet: {row}"))
            }
        })
        .expect("placed");
    assert_eq!(node, "w2", "the only node that fits");

    // Draining w2 moves nothing elsewhere (no other node fits): the task
    // goes pending again; a second labelled node takes it.
    lab.shoal_must(&["node", "update", "--label-add", "zone=b", "w1"]);
    lab.shoal_must(&["node", "update", "--availability", "drain", "w2"]);
    let moved = lab
        .wait_until("the task moved off the drained node", timeout, || {
            let rows = desired_running(&lab, "zoned");
            match rows.iter().find(|r| r["State"] == "running") {
                Some(r) if r["Node"] != "w2" => {
                    Ok(r["Node"].as_str().unwrap_or_default().to_string())
                }
                _ => Err(format!("tasks: {rows:?}")),
            }
        })
        .expect("moved");
    assert_eq!(moved, "w1");
    lab.down().expect("lab down leaves nothing");
}
