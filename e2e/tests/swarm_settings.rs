//! The cluster settings of `swarm init` and `swarm update` on a real lab
//! (issue 13): a cluster made with a 2 s dispatcher heartbeat, snapshots
//! every 100 entries and its first node drained shows them in `shoal info`,
//! keeps tasks off the drained node, snapshots when 100 entries are applied,
//! takes `swarm update --dispatcher-heartbeat 3s` at once, and marks a node
//! whose agent died down within the grace that period gives (3 periods,
//! judged once a period), not the default's 15 s. Remotely, a viewer bundle
//! reads `info` through a context exported and imported elsewhere, and a
//! deployer may not change the settings.

use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

/// `shoal info --format json`.
fn info(lab: &Lab) -> Value {
    let out = lab.shoal_must(&["info", "--format", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("info is not JSON ({e}): {out}"))
}

fn node_state(lab: &Lab, node: &str) -> String {
    lab.shoal_must(&["node", "inspect", node, "--format", "{{.Status.State}}"])
        .trim()
        .to_string()
}

#[test]
fn init_settings_show_in_info_take_effect_and_follow_swarm_update() {
    let mut lab = test_lab(LabConfig {
        workers: 1,
        init_args: [
            "--dispatcher-heartbeat",
            "2s",
            "--snapshot-interval",
            "100",
            "--max-snapshots",
            "1",
            "--availability",
            "drain",
        ]
        .map(String::from)
        .to_vec(),
        ..LabConfig::new("t-settings")
    });

    // What init set, as `shoal info` shows it (docker's fields and text).
    let shown = info(&lab);
    let spec = &shown["Swarm"]["Cluster"]["Spec"];
    assert_eq!(
        spec["Dispatcher"]["HeartbeatPeriod"], 2_000_000_000u64,
        "{shown:#}"
    );
    assert_eq!(spec["Raft"]["SnapshotInterval"], 100, "{shown:#}");
    assert_eq!(spec["Raft"]["KeepOldSnapshots"], 1, "{shown:#}");
    assert_eq!(shown["Swarm"]["Managers"], 1);
    assert_eq!(shown["Swarm"]["Nodes"], 2);
    assert_eq!(shown["Swarm"]["Cluster"]["DataPathPort"], 4789);
    let m1 = lab.host_addr("m1").expect("m1").to_string();
    assert_eq!(shown["Swarm"]["NodeAddr"], m1.as_str());
    let text = lab.shoal_must(&["info"]);
    for line in [
        " Swarm: active",
        "  Is Manager: true",
        "   Heartbeat Period: 2 seconds",
        "   Snapshot Interval: 100",
        "   Number of Old Snapshots to Retain: 1",
        "   Election Timeout: 500ms to 1s",
        &format!("   {m1}:4242"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let system = lab.shoal_must(&["system", "info", "--format", "{{.Swarm.NodeID}}"]);
    assert_eq!(system.trim(), shown["Swarm"]["NodeID"].as_str().unwrap());

    // The first node is drained: a service's tasks all go to the worker.
    let availability = lab.shoal_must(&[
        "node",
        "inspect",
        "m1",
        "--format",
        "{{.Spec.Availability}}",
    ]);
    assert_eq!(availability.trim(), "drain");
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_must(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        &image,
    ]);
    let tasks = lab.service_ps("web");
    let running: Vec<&str> = tasks
        .iter()
        .filter(|t| t["DesiredState"] == "Running")
        .filter_map(|t| t["Node"].as_str())
        .collect();
    assert_eq!(running, ["w1", "w1", "w1"], "{tasks:#?}");

    // Snapshots every 100 entries: writes until the manager has applied
    // past 100, and then it has a snapshot that recent.
    let mut writes = 0;
    let snapshot = lab
        .wait_until("a snapshot past entry 100", Duration::from_secs(90), || {
            let raft = info(&lab)["Swarm"]["Raft"].clone();
            let (applied, snapshot) = (
                raft["AppliedIndex"].as_u64().unwrap_or(0),
                raft["SnapshotIndex"].as_u64().unwrap_or(0),
            );
            if snapshot >= 100 {
                return Ok((applied, snapshot));
            }
            writes += 1;
            lab.shoal_must(&[
                "service",
                "update",
                "-d",
                "--label-add",
                &format!("write={writes}"),
                "web",
            ]);
            Err(format!("applied {applied}, snapshot at {snapshot}"))
        })
        .expect("snapshotted");
    eprintln!(
        "applied {}, snapshot at {} after {writes} writes",
        snapshot.0, snapshot.1
    );
    assert!(
        snapshot.0 - snapshot.1 < 100 + 50,
        "snapshot at {} lags applied {} by more than the interval",
        snapshot.1,
        snapshot.0
    );

    // A deployer may not change the settings; a viewer reads them through
    // a context exported here and imported on "another machine".
    let work = tempfile::tempdir().expect("tempdir");
    let manager = format!("tcp://{m1}:4242");
    let bundles = [("ci", "deployer"), ("dash", "viewer")]
        .map(|(name, role)| lab.client_bundle(work.path(), name, role));
    let here = lab.remote(work.path().join("here"));
    for (name, bundle) in [("ci", &bundles[0]), ("dash", &bundles[1])] {
        here.ok(&[
            "context",
            "create",
            name,
            "--host",
            &manager,
            "--bundle",
            &bundle.to_string_lossy(),
        ]);
    }
    let stderr = here.refused(&[
        "--context",
        "ci",
        "swarm",
        "update",
        "--dispatcher-heartbeat",
        "1s",
    ]);
    assert!(stderr.contains("a deployer bundle may not"), "{stderr}");
    let export = work.path().join("dash.shoalcontext");
    here.ok(&["context", "export", "dash", &export.to_string_lossy()]);
    let there = lab.remote(work.path().join("there"));
    there.ok(&["context", "import", "board", &export.to_string_lossy()]);
    let remote = there.ok(&[
        "--context",
        "board",
        "info",
        "--format",
        "{{.ClientInfo.Context}} {{.Swarm.Cluster.ID}}",
    ]);
    assert_eq!(
        remote.trim(),
        format!(
            "board {}",
            shown["Swarm"]["Cluster"]["ID"].as_str().unwrap()
        )
    );

    // A bad setting changes nothing; a good one shows at once.
    let bad = lab
        .shoal([
            "swarm",
            "update",
            "--dispatcher-heartbeat",
            "3s",
            "--snapshot-interval",
            "0",
        ])
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--snapshot-interval"), "{stderr}");
    let spec = &info(&lab)["Swarm"]["Cluster"]["Spec"];
    assert_eq!(spec["Dispatcher"]["HeartbeatPeriod"], 2_000_000_000u64);
    lab.shoal_must(&["swarm", "update", "--dispatcher-heartbeat", "3s"]);
    let spec = &info(&lab)["Swarm"]["Cluster"]["Spec"];
    assert_eq!(spec["Dispatcher"]["HeartbeatPeriod"], 3_000_000_000u64);
    assert!(lab
        .shoal_must(&["info"])
        .contains("   Heartbeat Period: 3 seconds\n"));

    // w1's agent dies. It has beaten at 3 s since its first heartbeat after
    // the update: down 9 s after its last beat, seen within a period.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(node_state(&lab, "w1"), "ready");
    lab.kill9("w1", "shoal-agent").expect("kill w1's agent");
    let died = Instant::now();
    // Its last beat was at most 3 s before: not down for 6 s at least.
    while died.elapsed() < Duration::from_secs(5) {
        assert_eq!(node_state(&lab, "w1"), "ready", "down too early");
        std::thread::sleep(Duration::from_millis(500));
    }
    let down = lab
        .wait_until("w1 down", Duration::from_secs(30), || {
            match node_state(&lab, "w1").as_str() {
                "down" => Ok(died.elapsed()),
                other => Err(format!("w1 is {other}")),
            }
        })
        .expect("w1 marked down");
    eprintln!("w1 was marked down {down:?} after its agent died");
    assert!(
        down <= Duration::from_secs(14),
        "down {down:?} after the agent died: more than 3 periods of 3 s + one period + slack"
    );
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
