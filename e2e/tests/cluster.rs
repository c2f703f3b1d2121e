//! A multi-host lab (one manager, two workers): nodes join with tokens, the
//! scheduler spreads tasks over them, and every wrong credential is refused
//! with a message that says which: a worker certificate at the control API
//! or the Raft transport, a rotated, foreign or malformed token, a removed
//! node.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::{require_root, test_lab};
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::SessionRequest;

fn lab(name: &str) -> Lab {
    test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new(name)
    })
}

/// The CLI against m1 over TCP with the certificate bundle in `tls_dir`.
fn shoal_tcp(
    lab: &Lab,
    m1: &str,
    tls_dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(lab.cli_path())
        .args([
            "--host",
            &format!("tcp://{m1}"),
            "--tls-dir",
            &tls_dir.to_string_lossy(),
        ])
        .args(args)
        .output()
        .expect("run shoal")
}

fn node_dir(lab: &Lab, host: &str) -> std::path::PathBuf {
    lab.root().join(host).join("node")
}

#[test]
fn workers_join_with_a_token_and_get_tasks_spread_over_them() {
    let lab = lab("t-cl-join");
    let nodes = lab.shoal_ok(["node", "ls"]).expect("node ls");
    let lines: Vec<&str> = nodes.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{nodes}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Ready") && l.contains("Active")),
        "{nodes}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some("m1") && l.contains("Leader")),
        "{nodes}"
    );

    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "spread",
        "--replicas",
        "6",
        &image,
    ])
    .expect("service create converges");
    let ps = lab
        .shoal_ok(["service", "ps", "--format", "json", "spread"])
        .expect("service ps");
    let tasks = shoal_e2e::lab::json_lines(&ps).expect("json");
    let nodes: BTreeSet<&str> = tasks.iter().filter_map(|t| t["Node"].as_str()).collect();
    assert_eq!(nodes.len(), 3, "6 replicas spread over all 3 nodes: {ps}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn wrong_credentials_are_refused_and_say_which() {
    let lab = lab("t-cl-deny");
    let m1 = format!("{}:4242", lab.host_addr("m1").expect("m1"));

    // A worker's certificate cannot use the control API.
    let w1_dir = node_dir(&lab, "w1");
    let out = shoal_tcp(&lab, &m1, &w1_dir, &["node", "ls"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("worker certificate cannot use the control API"),
        "{stderr}"
    );
    // Nor the managers' Raft transport: a worker cannot vote, append to the
    // log or forward writes.
    let w1 = shoal_identity::NodeIdentity::load(&w1_dir).expect("w1 identity");
    let raft_refusal = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            use shoal_proto::raft::v1::{raft_client::RaftClient, RaftMessage};
            let channel = shoal_identity::connect(&m1, &w1).await.expect("connect");
            RaftClient::new(channel)
                .forward_write(RaftMessage { data: Vec::new() })
                .await
                .expect_err("a worker forwarded a raft write")
        });
    assert_eq!(raft_refusal.code(), tonic::Code::PermissionDenied);
    assert!(
        raft_refusal
            .message()
            .contains("managers of this cluster only"),
        "{}",
        raft_refusal.message()
    );
    // The manager's own certificate can.
    let out = shoal_tcp(&lab, &m1, &node_dir(&lab, "m1"), &["node", "ls"]);
    assert!(out.status.success(), "{out:?}");

    let join = |token: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = lab
            .shoal([
                "swarm",
                "join",
                "--token",
                token,
                "--node-dir",
                &dir.path().join("node").to_string_lossy(),
                &m1,
            ])
            .expect("run shoal");
        assert!(!out.status.success(), "join with {token:?} succeeded");
        assert!(
            !dir.path().join("node").exists(),
            "a refused join wrote an identity"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let old = lab
        .shoal_ok(["swarm", "join-token", "-q", "worker"])
        .expect("token");
    let old = old.trim().to_string();
    let rotated = lab
        .shoal_ok(["swarm", "join-token", "-q", "--rotate", "worker"])
        .expect("rotate");
    assert_ne!(rotated.trim(), old);
    let err = join(&old);
    assert!(err.contains("rotated"), "{err}");
    let mut parts: Vec<String> = old.split('-').map(str::to_string).collect();
    parts[2] = "0".repeat(64);
    let err = join(&parts.join("-"));
    assert!(err.contains("does not match"), "{err}");
    let err = join("SHLTKN-1-nonsense");
    assert!(err.contains("malformed join token"), "{err}");

    // A removed node is refused at once.
    let w2 = shoal_identity::NodeIdentity::load(&node_dir(&lab, "w2")).expect("w2 identity");
    lab.shoal_ok(["node", "rm", "--force", "w2"])
        .expect("node rm");
    let removed_at = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let refusal = runtime.block_on(async {
        let channel = shoal_identity::connect(&m1, &w2).await.expect("connect");
        DispatcherClient::new(channel)
            .session(SessionRequest::default())
            .await
            .expect_err("a removed node opened a session")
    });
    assert!(removed_at.elapsed() < Duration::from_secs(1));
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied);
    assert!(
        refusal.message().contains("removed"),
        "{}",
        refusal.message()
    );
    let nodes = lab.shoal_ok(["node", "ls"]).expect("node ls");
    // By hostname: ids are random and may contain "w2".
    let hosts: Vec<&str> = nodes
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(!hosts.contains(&"w2"), "{nodes}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// The CLI against one manager's local socket.
fn shoal_on(lab: &Lab, manager: &str, args: &[&str]) -> std::process::Output {
    let socket = lab.root().join(manager).join("run/control.sock");
    std::process::Command::new(lab.cli_path())
        .args(["--host", &format!("unix://{}", socket.display())])
        .args(args)
        .output()
        .expect("run shoal")
}

/// Pids of the running containerd tasks on a host.
fn running_pids(lab: &Lab, host: &str) -> BTreeSet<u32> {
    lab.running_task_pids(host)
        .expect("tasks")
        .into_iter()
        .collect()
}

#[test]
fn a_killed_leader_is_replaced_and_writes_go_on_while_tasks_keep_running() {
    require_root();
    let mut lab = Lab::up(LabConfig {
        managers: 3,
        workers: 1,
        replace: true,
        ..LabConfig::new("t-cl-ha")
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"));
    let nodes = lab.shoal_ok(["node", "ls"]).expect("node ls");
    assert_eq!(nodes.matches("Leader").count(), 1, "{nodes}");
    assert_eq!(nodes.matches("Reachable").count(), 2, "{nodes}");

    let image = format!("{}/web:v1", lab.registry());
    // A write through a follower is forwarded to the leader.
    let out = shoal_on(
        &lab,
        "m2",
        &[
            "service",
            "create",
            "--name",
            "ha",
            "--replicas",
            "4",
            &image,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let hosts = ["m1", "m2", "m3", "w1"];
    let before: Vec<BTreeSet<u32>> = hosts.iter().map(|h| running_pids(&lab, h)).collect();

    lab.kill9("m1", "shoal-manager").expect("kill the leader");
    let killed = Instant::now();
    let mut last = String::new();
    let accepted = loop {
        let out = shoal_on(&lab, "m2", &["service", "scale", "-d", "ha=5"]);
        if out.status.success() {
            break killed.elapsed();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no write accepted: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("first write accepted {accepted:?} after the leader was killed");
    let out = shoal_on(&lab, "m3", &["node", "ls"]);
    let nodes = String::from_utf8_lossy(&out.stdout);
    assert!(
        nodes.lines().any(|l| {
            matches!(l.split_whitespace().nth(1), Some("m2" | "m3")) && l.contains("Leader")
        }),
        "{nodes}"
    );
    // The tasks that ran before still run, untouched.
    for (host, pids) in hosts.iter().zip(&before) {
        let now = running_pids(&lab, host);
        assert!(pids.is_subset(&now), "{host}: {pids:?} -> {now:?}");
    }
    // The fifth replica runs too: agents whose manager died fail over.
    lab.wait_until("5 tasks running", Duration::from_secs(30), || {
        let n: usize = hosts.iter().map(|h| running_pids(&lab, h).len()).sum();
        if n == 5 {
            Ok(())
        } else {
            Err(format!("{n} running"))
        }
    })
    .expect("fifth replica");
    // netd on the host whose manager died fails over too: a port published
    // now is programmed there.
    let out = shoal_on(
        &lab,
        "m2",
        &[
            "service", "create", "-d", "--name", "late", "-p", "9191:80", &image,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    lab.wait_until(
        "m1's netd programs the new port",
        Duration::from_secs(20),
        || {
            let rules = lab
                .exec("m1", &["nft", "list", "table", "inet", "shoal"])
                .map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&rules.stdout).contains("9191") {
                Ok(())
            } else {
                Err("port 9191 not in m1's rules".to_string())
            }
        },
    )
    .expect("netd failover");
    drop(last);
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn with_autolock_a_restarted_manager_stays_locked_until_unlocked() {
    require_root();
    let mut lab = Lab::up(LabConfig {
        replace: true,
        ..LabConfig::new("t-cl-lock")
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"));
    let out = lab
        .shoal_ok(["swarm", "update", "--autolock=true"])
        .expect("turn autolock on");
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key in: {out}"))
        .to_string();
    let quiet = lab
        .shoal_ok(["swarm", "unlock-key", "-q"])
        .expect("unlock-key");
    assert_eq!(quiet.trim(), key);
    // The key keeper re-wraps the data key at once; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    lab.kill9_and_restart("m1", "shoal-manager")
        .expect("restart");
    let locked = lab
        .wait_until(
            "the restarted manager answers",
            Duration::from_secs(20),
            || {
                let out = shoal_on(&lab, "m1", &["node", "ls"]);
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                if err.contains("locked") {
                    Ok(err)
                } else {
                    Err(format!("{out:?}"))
                }
            },
        )
        .expect("locked");
    assert!(locked.contains("shoal swarm unlock"), "{locked}");
    let unlock = |key: &str| {
        use std::io::Write;
        let socket = lab.root().join("m1/run/control.sock");
        let mut child = std::process::Command::new(lab.cli_path())
            .args([
                "--host",
                &format!("unix://{}", socket.display()),
                "swarm",
                "unlock",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run shoal");
        writeln!(child.stdin.take().expect("stdin"), "{key}").expect("write key");
        child.wait_with_output().expect("wait")
    };
    let wrong = unlock(&format!("SWMKEY-1-{}", "0".repeat(64)));
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong"),
        "{wrong:?}"
    );
    let right = unlock(&key);
    assert!(right.status.success(), "{right:?}");
    let out = shoal_on(&lab, "m1", &["node", "ls"]);
    assert!(out.status.success(), "{out:?}");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
