//! Root CA rotation completes while a service keeps serving (3 managers, 2
//! workers): `shoal swarm ca --rotate` renews every node from a new root,
//! the old root leaves every node's trust, no request to the published port
//! fails meanwhile, no container restarts, and joining takes the new token
//! while the old one is refused with a message that says why.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::require_root;
use shoal_identity::{trust, NodeIdentity};
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::SessionRequest;

const HOSTS: [&str; 5] = ["m1", "m2", "m3", "w1", "w2"];
const PORT: u16 = 8380;
const REPLICAS: usize = 5;

fn node_dir(lab: &Lab, host: &str) -> std::path::PathBuf {
    lab.root().join(host).join("node")
}

/// Requests the published port on each address in turn until stopped;
/// returns (requests, failures with when and why).
fn client(
    addrs: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut requests, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            for addr in &addrs {
                requests += 1;
                let target = SocketAddr::from((*addr, PORT));
                match shoal_e2e::fixtures::http_get(target, "/", Duration::from_secs(3)) {
                    Ok((200, body)) if body.starts_with("web v1 ") => {}
                    Ok((status, body)) => {
                        failures.push(format!("{:?} {target}: {status} {body}", start.elapsed()))
                    }
                    Err(e) => failures.push(format!("{:?} {target}: {e}", start.elapsed())),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (requests, failures)
    })
}

fn pids(lab: &Lab) -> BTreeMap<&'static str, Vec<u32>> {
    HOSTS
        .iter()
        .map(|h| {
            let mut p = lab.running_task_pids(h).expect("task pids");
            p.sort();
            (*h, p)
        })
        .collect()
}

#[test]
fn root_ca_rotation_completes_while_a_service_keeps_serving() {
    require_root();
    let lab = Lab::up(LabConfig {
        managers: 3,
        workers: 2,
        replace: true,
        ..LabConfig::new("t-ca-rot")
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"));
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "rot-web",
        "--replicas",
        &REPLICAS.to_string(),
        "-p",
        &format!("{PORT}:80"),
        &image,
    ])
    .expect("service create converges");
    let before = lab
        .wait_until("5 running tasks", Duration::from_secs(60), || {
            let p = pids(&lab);
            let n: usize = p.values().map(Vec::len).sum();
            if n == REPLICAS {
                Ok(p)
            } else {
                Err(format!("{n} running"))
            }
        })
        .expect("replicas");
    // The routing mesh answers on the nodes that run a task (see
    // ARCHITECTURE: known limits), so the client asks those.
    let addrs: Vec<Ipv4Addr> = before
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(h, _)| lab.host_addr(h).expect("addr"))
        .collect();
    for addr in &addrs {
        lab.wait_until("published port answers", Duration::from_secs(20), || {
            lab.http_get(*addr, PORT, "/")
        })
        .expect("published port");
    }
    let old_root = NodeIdentity::load(&node_dir(&lab, "m1"))
        .expect("m1 identity")
        .ca_pem;
    let old_w1 = NodeIdentity::load(&node_dir(&lab, "w1")).expect("w1 identity");
    let old_token = lab
        .shoal_ok(["swarm", "join-token", "-q", "worker"])
        .expect("token")
        .trim()
        .to_string();
    let shown = lab.shoal_ok(["swarm", "ca"]).expect("swarm ca");
    assert!(trust::same_bundle(&shown, &old_root), "{shown}");

    let stop = Arc::new(AtomicBool::new(false));
    let requests = client(addrs.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let rotate = lab
        .shoal(["swarm", "ca", "--rotate"])
        .expect("run swarm ca --rotate");
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = requests.join().expect("client thread");
    let progress = String::from_utf8_lossy(&rotate.stderr).into_owned();
    assert!(rotate.status.success(), "swarm ca --rotate: {progress}");
    eprintln!(
        "rotation of 5 nodes took {took:?}; {sent} requests, {} failed",
        failures.len()
    );
    eprintln!("{progress}");
    assert!(
        progress.contains("5 of 5 nodes trust only the new root"),
        "{progress}"
    );
    assert!(progress.contains("join tokens changed"), "{progress}");
    assert!(
        failures.is_empty(),
        "requests failed during the rotation: {failures:#?}"
    );
    assert!(sent > 20, "the client sent only {sent} requests");

    // Every node holds a certificate of the new root and trusts only it.
    let new_root = String::from_utf8_lossy(&rotate.stdout).into_owned();
    assert!(!trust::same_bundle(&new_root, &old_root));
    for host in HOSTS {
        let identity = NodeIdentity::load(&node_dir(&lab, host)).expect("identity");
        let chain = identity.chain().expect("chain");
        assert!(
            trust::issued_by(&chain[0], &new_root),
            "{host}'s node.crt is not from the new root"
        );
        assert!(
            trust::same_bundle(&identity.ca_pem, &new_root),
            "{host}'s ca.crt is not the new root alone"
        );
    }
    // The old root is trusted no more: w1's old certificate is refused.
    let m1 = format!("{}:4242", lab.host_addr("m1").expect("m1"));
    let old_cert = NodeIdentity {
        ca_pem: new_root.clone(),
        ..old_w1
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let refused = runtime.block_on(async {
        match shoal_identity::connect(&m1, &old_cert).await {
            Err(_) => true,
            Ok(channel) => DispatcherClient::new(channel)
                .session(SessionRequest::default())
                .await
                .is_err(),
        }
    });
    assert!(refused, "a certificate of the old root was accepted");

    // Nothing restarted; every node is Ready.
    assert_eq!(pids(&lab), before, "container pids changed");
    let nodes = lab.shoal_ok(["node", "ls"]).expect("node ls");
    let ready = nodes
        .lines()
        .skip(1)
        .filter(|l| l.contains("Ready"))
        .count();
    assert_eq!(ready, HOSTS.len(), "{nodes}");

    // Joining: the new token works, the old one is refused and says why.
    let token = lab
        .shoal_ok(["swarm", "join-token", "-q", "worker"])
        .expect("token")
        .trim()
        .to_string();
    assert_ne!(token, old_token);
    let join = |token: &str, dir: &std::path::Path| {
        lab.shoal([
            "swarm",
            "join",
            "--token",
            token,
            "--node-dir",
            &dir.to_string_lossy(),
            "--hostname",
            "late",
            &m1,
        ])
        .expect("run shoal swarm join")
    };
    let work = tempfile::tempdir().expect("tempdir");
    let out = join(&old_token, &work.path().join("old"));
    assert!(!out.status.success(), "the old token joined");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root CA rotation"), "{err}");
    let out = join(&token, &work.path().join("new"));
    assert!(out.status.success(), "{out:?}");
    let joined = NodeIdentity::load(&work.path().join("new")).expect("joined identity");
    assert!(trust::issued_by(
        &joined.chain().expect("chain")[0],
        &new_root
    ));
    assert!(trust::same_bundle(&joined.ca_pem, &new_root));

    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
