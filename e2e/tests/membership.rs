//! Managers come and go the way an operator moves them: `node promote` and
//! `node demote` move a node in and out of the Raft group (its certificate
//! and its manager daemon follow) without touching its tasks; `swarm leave`
//! warns a manager about quorum and takes a worker's tasks away;
//! `swarm init --force-new-cluster` brings back a cluster that lost its
//! quorum, with its state.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::require_root;

fn lab(name: &str, managers: u32, workers: u32) -> Lab {
    require_root();
    let config = LabConfig {
        managers,
        workers,
        replace: true,
        ..LabConfig::new(name)
    };
    Lab::up(config).unwrap_or_else(|e| panic!("lab up: {e}"))
}

/// The CLI against the manager daemon of `host` (its local socket).
fn shoal_on(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let socket = lab.manager_socket(host).expect("manager socket");
    Command::new(lab.cli_path())
        .args(["--host", &socket])
        .args(args)
        .output()
        .expect("run shoal")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn node_dir(lab: &Lab, host: &str) -> PathBuf {
    lab.root().join(host).join("node")
}

/// `swarm leave` on `host`, with its identity directory.
fn leave(lab: &Lab, host: &str, force: bool) -> Output {
    let dir = node_dir(lab, host);
    let mut args = vec!["swarm", "leave", "--node-dir", dir.to_str().unwrap()];
    if force {
        args.push("--force");
    }
    shoal_on(lab, host, &args)
}

/// The role in `host`'s node certificate.
fn cert_role(lab: &Lab, host: &str) -> shoal_identity::Role {
    shoal_identity::NodeIdentity::load(&node_dir(lab, host))
        .expect("node identity")
        .peer
        .role
}

/// `node ls` rows as (hostname, status, manager status).
fn nodes(lab: &Lab) -> Vec<(String, String, String)> {
    let out = lab
        .shoal_ok(["node", "ls", "--format", "json"])
        .expect("node ls");
    let trimmed = out.trim();
    let values: Vec<serde_json::Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).expect("node ls JSON")
    } else {
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("node ls JSON line"))
            .collect()
    };
    values
        .iter()
        .map(|v| {
            let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (field("Hostname"), field("Status"), field("ManagerStatus"))
        })
        .collect()
}

fn ruleset(lab: &Lab, host: &str) -> String {
    let out = lab.exec(host, &["nft", "list", "ruleset"]).expect("nft");
    text(&out)
}

fn manager_status(lab: &Lab, host: &str) -> Option<String> {
    nodes(lab)
        .into_iter()
        .find(|(h, _, _)| h == host)
        .map(|(_, _, m)| m)
}

/// Waits until `host`'s MANAGER STATUS in `node ls` is `want` ("" for none).
fn wait_manager_status(lab: &Lab, host: &str, want: &str) {
    let what = format!("{host}'s manager status {want:?}");
    wait(
        lab,
        &what,
        Duration::from_secs(30),
        || match manager_status(lab, host) {
            Some(status) if status == want => Ok(()),
            other => Err(format!("{host} manager status {other:?}")),
        },
    );
}

/// The manager daemon on `host` forgot the swarm: idle, it says so.
fn wait_forgotten(lab: &Lab, host: &str) {
    let what = format!("{host}'s manager daemon forgot the swarm");
    wait(lab, &what, Duration::from_secs(30), || {
        let out = shoal_on(lab, host, &["service", "ls"]);
        match !out.status.success() && text(&out).contains("not a swarm manager") {
            true => Ok(()),
            false => Err(text(&out)),
        }
    });
}

fn wait_no_tasks(lab: &Lab, host: &str) {
    let what = format!("{host} runs no tasks");
    wait(lab, &what, Duration::from_secs(20), || {
        match lab.running_task_pids(host) {
            Ok(pids) if pids.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// Down in `node ls`: its agent's heartbeats stopped.
fn wait_down(lab: &Lab, host: &str) {
    let what = format!("{host} is down");
    wait(lab, &what, Duration::from_secs(40), || {
        match nodes(lab).iter().find(|(h, _, _)| h == host) {
            Some((_, status, _)) if status == "Down" => Ok(()),
            other => Err(format!("{host}: {other:?}")),
        }
    });
}

fn wait(lab: &Lab, what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    lab.wait_until(what, timeout, &mut check)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn promote_demote_and_leave_move_nodes_without_touching_their_tasks() {
    let lab = lab("t-mb-roles", 1, 2);
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "4",
        "-p",
        "8080:80",
        &image,
    ])
    .expect("service create converges");
    let w1_pids = lab.running_task_pids("w1").expect("w1 pids");
    wait(&lab, "w1 publishes 8080", Duration::from_secs(10), || {
        let rules = ruleset(&lab, "w1");
        match rules.contains("8080") {
            true => Ok(()),
            false => Err(rules),
        }
    });
    assert!(!w1_pids.is_empty(), "the service spreads onto w1");

    // The last manager can neither be demoted nor leave without --force.
    let demote = lab.shoal(["node", "demote", "m1"]).expect("demote m1");
    assert!(!demote.status.success());
    assert!(text(&demote).contains("last manager"), "{}", text(&demote));
    let refused = leave(&lab, "m1", false);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Removing the last manager erases all current state"),
        "{}",
        text(&refused)
    );

    // Promotion: w1's certificate becomes a manager's, its manager daemon
    // joins Raft and serves the control API; its tasks keep running.
    let promoted = lab.shoal_ok(["node", "promote", "w1"]).expect("promote w1");
    assert!(promoted.contains("promoted to a manager"), "{promoted}");
    wait_manager_status(&lab, "w1", "Reachable");
    assert_eq!(cert_role(&lab, "w1"), shoal_identity::Role::Manager);
    wait(
        &lab,
        "w1 serves the control API",
        Duration::from_secs(10),
        || {
            let out = shoal_on(&lab, "w1", &["service", "ls"]);
            match out.status.success() && text(&out).contains("web") {
                true => Ok(()),
                false => Err(text(&out)),
            }
        },
    );
    let now = lab.running_task_pids("w1").unwrap();
    assert!(
        w1_pids.iter().all(|p| now.contains(p)),
        "w1's tasks untouched by the promotion: before {w1_pids:?}, after {now:?}"
    );

    // A manager is not removed while it is in Raft.
    let rm = lab.shoal(["node", "rm", "--force", "w1"]).expect("node rm");
    assert!(!rm.status.success());
    assert!(text(&rm).contains("demote it"), "{}", text(&rm));

    // Three managers: leaving without --force gets Swarm's warning.
    lab.shoal_ok(["node", "promote", "w2"]).expect("promote w2");
    wait_manager_status(&lab, "w2", "Reachable");
    let refused = leave(&lab, "w2", false);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("participating as a manager") && text(&refused).contains("--force"),
        "{}",
        text(&refused)
    );

    // Demotion: out of Raft, a worker certificate, an idle manager daemon.
    let demoted = lab.shoal_ok(["node", "demote", "w1"]).expect("demote w1");
    assert!(demoted.contains("demoted"), "{demoted}");
    wait(
        &lab,
        "w1 is a worker again",
        Duration::from_secs(30),
        || {
            let status = manager_status(&lab, "w1");
            let role = cert_role(&lab, "w1");
            match (status.as_deref(), role) {
                (Some(""), shoal_identity::Role::Worker) => Ok(()),
                other => Err(format!("w1 manager status and certificate role {other:?}")),
            }
        },
    );
    wait_forgotten(&lab, "w1");
    lab.shoal_ok(["service", "scale", "web=5"])
        .expect("the managers accept writes after the demotion");
    let still: Vec<u32> = lab.running_task_pids("w1").unwrap();
    assert!(
        w1_pids.iter().all(|p| still.contains(p)),
        "w1's tasks survive promotion and demotion: before {w1_pids:?}, after {still:?}"
    );

    // A manager leaves with --force: the others drop it from Raft and keep
    // a quorum; its tasks go.
    let left = leave(&lab, "w2", true);
    assert!(left.status.success(), "{}", text(&left));
    wait(
        &lab,
        "w2 is out of the managers and down",
        Duration::from_secs(40),
        || match nodes(&lab).iter().find(|(h, _, _)| h == "w2") {
            Some((_, status, manager)) if manager.is_empty() && status == "Down" => Ok(()),
            other => Err(format!("w2: {other:?}")),
        },
    );
    wait_no_tasks(&lab, "w2");
    lab.shoal_ok(["node", "rm", "w2"]).expect("node rm w2");

    // A worker leaves: its tasks go, its published ports go, it shows
    // Down, and it can be removed.
    let rules = ruleset(&lab, "w1");
    assert!(rules.contains("8080"), "w1 publishes 8080:\n{rules}");
    let left = leave(&lab, "w1", false);
    assert!(left.status.success(), "{}", text(&left));
    wait_no_tasks(&lab, "w1");
    wait_down(&lab, "w1");
    wait(
        &lab,
        "w1 publishes no port",
        Duration::from_secs(10),
        || {
            let rules = ruleset(&lab, "w1");
            match rules.contains("8080") {
                false => Ok(()),
                true => Err(rules),
            }
        },
    );
    lab.shoal_ok(["node", "rm", "w1"]).expect("node rm w1");
    lab.shoal_ok(["service", "scale", "web=2"])
        .expect("the swarm goes on with m1");
    lab.down().expect("lab down");
}

#[test]
fn a_manager_demoted_while_down_forgets_and_force_new_cluster_recovers_quorum() {
    let mut lab = lab("t-mb-force", 3, 0);
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "kept",
        "--replicas",
        "2",
        &image,
    ])
    .expect("service create converges");
    let pids = lab.running_task_pids("m1").expect("m1 pids");

    // m3 is demoted while its manager is down; back, it finds out that it
    // was removed (its agent renewed to a worker certificate meanwhile, or
    // the voters refuse it) and forgets the swarm.
    lab.kill9("m3", "shoal-manager").expect("kill m3's manager");
    lab.shoal_ok(["node", "demote", "m3"]).expect("demote m3");
    wait_manager_status(&lab, "m3", "");
    lab.start_again("m3", "shoal-manager")
        .expect("start m3's manager");
    wait_forgotten(&lab, "m3");
    wait(
        &lab,
        "m3 holds a worker certificate",
        Duration::from_secs(20),
        || match cert_role(&lab, "m3") {
            shoal_identity::Role::Worker => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    lab.shoal_ok(["service", "scale", "kept=3"])
        .expect("m1 and m2 keep a quorum");

    // Autolock on: the manager that rebuilds Raft restarts itself and must
    // not come back locked.
    lab.shoal_ok(["swarm", "update", "--autolock=true"])
        .expect("autolock on");
    // m2 dies too: m1 alone has no quorum until it rebuilds the group.
    lab.kill9("m2", "shoal-manager").expect("kill m2's manager");
    let stuck = lab
        .shoal(["service", "scale", "kept=4"])
        .expect("scale without quorum");
    assert!(!stuck.status.success(), "a write without quorum fails");

    let init = lab
        .shoal(["swarm", "init", "--force-new-cluster"])
        .expect("force new cluster");
    assert!(init.status.success(), "{}", text(&init));
    assert!(text(&init).contains("only one"), "{}", text(&init));

    // The state survived: the service is there and writes commit again.
    let services = lab.shoal_ok(["service", "ls"]).expect("service ls");
    assert!(services.contains("kept"), "{services}");
    lab.shoal_ok(["service", "scale", "kept=4"])
        .expect("writes commit on the new cluster");
    wait(
        &lab,
        "m2 and m3 dropped from the managers",
        Duration::from_secs(10),
        || {
            let rows = nodes(&lab);
            let others: Vec<_> = rows.iter().filter(|(h, _, _)| h != "m1").collect();
            match others.iter().all(|(_, _, m)| m.is_empty()) {
                true => Ok(()),
                false => Err(format!("{rows:?}")),
            }
        },
    );
    assert_eq!(
        manager_status(&lab, "m1").as_deref(),
        Some("Leader"),
        "m1 leads the new cluster"
    );
    let after = lab.running_task_pids("m1").unwrap();
    assert!(
        pids.iter().all(|p| after.contains(p)),
        "m1's tasks untouched: before {pids:?}, after {after:?}"
    );
    lab.down().expect("lab down");
}
