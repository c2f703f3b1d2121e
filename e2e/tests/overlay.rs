//! Overlay networks across a three-node lab (one manager, two workers),
//! with real containers: a stack of three services on two networks, as a
//! real stack file writes it; service names resolve from inside a task
//! through the embedded DNS server its resolv.conf names, the VIP balances
//! over tasks on every node, a published port answers on every node, and
//! networks keep apart what the file keeps apart.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::probe::{in_netns, lookup, task_netns};
use shoal_e2e::test_lab;
use shoal_proto::types::v1::Task;

fn lab(name: &str) -> Lab {
    test_lab(LabConfig {
        workers: 2,
        ..LabConfig::new(name)
    })
}

/// A running task of a service, where it runs.
#[derive(Debug, Clone)]
struct Placed {
    task: Task,
    /// The lab host (m1, w1, w2) of its node.
    host: String,
}

impl Placed {
    fn id(&self) -> String {
        self.task
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default()
    }

    /// Its address and gateway on the network called `network` (the
    /// stack's full network name).
    fn on(&self, network: &str) -> (Ipv4Addr, Ipv4Addr) {
        let a = self
            .task
            .networks
            .iter()
            .find(|a| a.network_name == network)
            .unwrap_or_else(|| panic!("task {} is not on {network}", self.id()));
        let ip = |s: &str| s.split('/').next().unwrap_or_default().parse().expect("ip");
        (ip(&a.address), ip(&a.gateway))
    }
}

/// The running tasks of `service`, with their hosts.
fn running(lab: &Lab, service: &str) -> Vec<Placed> {
    let hosts = shoal_e2e::probe::node_hostnames(lab);
    shoal_e2e::probe::service_tasks(lab, service)
        .into_iter()
        .filter(|t| t.observed_state() == shoal_proto::types::v1::TaskState::Running)
        .map(|task| Placed {
            host: hosts.get(&task.node_id).cloned().unwrap_or_default(),
            task,
        })
        .collect()
}

/// `GET /` from inside `netns`; the body.
fn get_from(netns: &std::path::Path, addr: SocketAddr) -> std::io::Result<String> {
    in_netns(netns, || {
        shoal_e2e::fixtures::http_get(addr, "/", Duration::from_secs(3)).map(|(_, body)| body)
    })
}

const STACK: &str = r#"
version: "3.8"
services:
  web:
    image: ${SHOAL_REGISTRY}/web:v1
    deploy:
      replicas: 3
    networks:
      front:
        aliases: [www]
    ports:
      - "8080:80"
  client:
    image: ${SHOAL_REGISTRY}/web:v1
    networks:
      - front
  db:
    image: ${SHOAL_REGISTRY}/web:v1
    networks:
      - back
networks:
  front:
    driver: overlay
  back:
    driver: overlay
"#;

#[test]
fn a_stack_on_two_networks_resolves_balances_across_nodes_and_keeps_networks_apart() {
    let lab = lab("t-overlay");
    let file = lab.root().join("shop.yml");
    std::fs::write(&file, STACK).expect("write the stack file");
    lab.shoal_ok(["stack", "deploy", "-c", &file.to_string_lossy(), "shop"])
        .expect("stack deploy");
    lab.wait_until(
        "the stack's five tasks running",
        Duration::from_secs(90),
        || {
            let n = running(&lab, "shop_web").len()
                + running(&lab, "shop_client").len()
                + running(&lab, "shop_db").len();
            if n == 5 {
                Ok(())
            } else {
                Err(format!("{n} running"))
            }
        },
    )
    .expect("stack converges");
    let web = running(&lab, "shop_web");
    assert_eq!(web.len(), 3, "{web:?}");
    let hosts: BTreeSet<&str> = web.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(
        hosts.len(),
        3,
        "web's tasks spread over the three nodes: {hosts:?}"
    );
    let client = running(&lab, "shop_client").pop().expect("the client task");
    let db = running(&lab, "shop_db").pop().expect("the db task");
    let netns = task_netns(&lab, &client.host, &client.id());
    let (_, dns) = client.on("shop_front");

    // Names, from inside the client's namespace, at the server its
    // resolv.conf names (the gateway of its first network).
    let ask = |name: &str| {
        in_netns(&netns, || lookup(dns, name, Duration::from_secs(3)))
            .unwrap_or_else(|e| panic!("DNS query for {name}: {e}"))
    };
    let vip = ask("web");
    assert_eq!(vip.code, ResponseCode::NoError, "{vip:?}");
    assert_eq!(vip.addrs.len(), 1, "web answers with its VIP: {vip:?}");
    assert_eq!(
        ask("shop_web").addrs,
        vip.addrs,
        "the full name answers the same"
    );
    assert_eq!(ask("www").addrs, vip.addrs, "the alias answers the same");
    let mut expected: Vec<Ipv4Addr> = web.iter().map(|t| t.on("shop_front").0).collect();
    expected.sort();
    // Within a second of the managers seeing the last task run, every
    // node's DNS answers with it.
    lab.wait_until(
        "tasks.web to list every task",
        Duration::from_secs(1),
        || {
            let mut tasks = ask("tasks.web").addrs;
            tasks.sort();
            if tasks == expected {
                Ok(())
            } else {
                Err(format!("tasks.web: {tasks:?}, expected {expected:?}"))
            }
        },
    )
    .expect("tasks.web lists every task");
    for unknown in ["db", "shop_db", "nosuchservice"] {
        let answer = ask(unknown);
        assert_eq!(answer.code, ResponseCode::NXDomain, "{unknown}: {answer:?}");
        assert!(
            answer.took < Duration::from_secs(1),
            "{unknown} took {:?}",
            answer.took
        );
    }

    // 30 requests through the VIP reach web's tasks on all three nodes.
    let vip = SocketAddr::new(vip.addrs[0].into(), 80);
    let mut served: BTreeSet<String> = BTreeSet::new();
    for i in 0..30 {
        let body = get_from(&netns, vip).unwrap_or_else(|e| panic!("request {i} to web: {e}"));
        served.insert(
            body.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string(),
        );
    }
    let hostnames: BTreeSet<String> = web.iter().map(|t| t.task.hostname(&t.host)).collect();
    assert_eq!(served, hostnames, "the VIP balanced over every task");

    // db is on a network the client is not on: not reachable either.
    let (db_addr, _) = db.on("shop_back");
    assert!(
        get_from(&netns, SocketAddr::new(db_addr.into(), 80)).is_err(),
        "the client reached db across networks"
    );

    // The published port answers on every node, from the lab's own side.
    for host in ["m1", "w1", "w2"] {
        let addr = lab.host_addr(host).expect("host address");
        let (status, body) = lab
            .http_get(addr, 8080, "/")
            .unwrap_or_else(|e| panic!("{host}:8080: {e}"));
        assert_eq!(status, 200, "{host}: {body}");
        assert!(body.starts_with("web v1 "), "{host}: {body}");
    }

    // stack rm leaves none of the stack's networks on any node.
    let ids: Vec<String> = ["shop_front", "shop_back"]
        .iter()
        .map(|n| {
            let out = lab.shoal_ok(["network", "inspect", n]).expect("inspect");
            let v: serde_json::Value = serde_json::from_str(&out).expect("json");
            v[0]["Id"].as_str().expect("Id").to_string()
        })
        .collect();
    lab.shoal_ok(["stack", "rm", "shop"]).expect("stack rm");
    lab.wait_until(
        "no node keeps the stack's networks",
        Duration::from_secs(60),
        || {
            for host in ["m1", "w1", "w2"] {
                let out = lab
                    .exec(host, &["ip", "-o", "link"])
                    .map_err(|e| e.to_string())?;
                let links = String::from_utf8_lossy(&out.stdout).into_owned();
                for id in &ids {
                    let prefix = &id[..id.len().min(10)];
                    if links.contains(&format!("sh-{prefix}"))
                        || links.contains(&format!("vx-{prefix}"))
                    {
                        return Err(format!("{host} still has network {id}"));
                    }
                }
            }
            Ok(())
        },
    )
    .expect("networks gone everywhere");

    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// Requests `addr` from `netns` (or the root namespace) until `stop`;
/// counts (successes, failures) and the bodies seen.
fn hammer(
    netns: Option<std::path::PathBuf>,
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>, BTreeSet<String>)> {
    std::thread::spawn(move || {
        let once = || match &netns {
            Some(ns) => get_from(ns, addr),
            None => {
                shoal_e2e::fixtures::http_get(addr, "/", Duration::from_secs(3)).map(|(_, b)| b)
            }
        };
        let (mut ok, mut failed, mut bodies) = (0, Vec::new(), BTreeSet::new());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match once() {
                Ok(body) if body.starts_with("web ") => {
                    ok += 1;
                    bodies.insert(
                        body.split_whitespace()
                            .nth(1)
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                Ok(body) => failed.push(format!("unexpected body {body:?}")),
                Err(e) => failed.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = ok;
        (ok, failed, bodies)
    })
}

#[test]
fn a_rolling_update_fails_no_request_through_the_vip_or_the_published_port() {
    let lab = lab("t-ovl-update");
    let image = |v: &str| format!("{}/web:{v}", lab.registry());
    lab.shoal_ok(["network", "create", "-d", "overlay", "front"])
        .expect("network");
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "4",
        "--network",
        "front",
        "--publish",
        "8080:80",
        "--update-parallelism",
        "1",
        &image("v1"),
    ])
    .expect("web");
    client_on(&lab, "front");
    let client = running(&lab, "client").pop().expect("client task");
    let netns = task_netns(&lab, &client.host, &client.id());
    let (_, dns) = client.on("front");
    let vip = in_netns(&netns, || lookup(dns, "web", Duration::from_secs(3))).expect("web's VIP");
    let vip = SocketAddr::new(vip.addrs[0].into(), 80);
    let mesh = SocketAddr::new(lab.host_addr("w1").expect("w1").into(), 8080);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let through_vip = hammer(Some(netns), vip, stop.clone());
    let through_mesh = hammer(None, mesh, stop.clone());
    lab.shoal_ok(["service", "update", "--image", &image("v2"), "web"])
        .expect("rolling update converges");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (what, worker) in [("VIP", through_vip), ("published port", through_mesh)] {
        let (ok, failed, versions) = worker.join().expect("client thread");
        assert!(
            failed.is_empty(),
            "{} of {} requests through the {what} failed: {failed:?}",
            failed.len(),
            ok + failed.len()
        );
        assert!(
            versions.contains("v1") && versions.contains("v2"),
            "{what} saw {versions:?}"
        );
    }
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn a_connection_through_a_vip_survives_netd_killed_and_a_dead_node_leaves_every_table() {
    use std::io::{BufRead, BufReader, Write};
    let mut lab = lab("t-ovl-faults");
    lab.shoal_ok(["network", "create", "-d", "overlay", "front"])
        .expect("network");
    echo_and_client(&lab, "front");
    let client = running(&lab, "client").pop().expect("client task");
    let netns = task_netns(&lab, &client.host, &client.id());
    let (_, dns) = client.on("front");
    let vip = in_netns(&netns, || lookup(dns, "echo", Duration::from_secs(3))).expect("VIP");
    let vip = SocketAddr::new(vip.addrs[0].into(), 7000);

    // A long-lived connection through the VIP, across netd's kill -9.
    let mut conn = in_netns(&netns, || {
        std::net::TcpStream::connect_timeout(&vip, Duration::from_secs(3))
    })
    .expect("connect through the VIP");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut exchange = |line: &str| {
        conn.write_all(format!("{line}\n").as_bytes())
            .expect("send");
        let mut got = String::new();
        reader.read_line(&mut got).expect("echo");
        got.trim().to_string()
    };
    assert_eq!(exchange("before"), "before");
    lab.kill9_and_restart(&client.host, "shoal-netd")
        .expect("netd killed and started again");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(exchange("after netd came back"), "after netd came back");

    // A worker dies: the other nodes drop its tasks from their tables.
    let dead = if client.host == "w2" { "w1" } else { "w2" };
    let dead_addr = lab.host_addr(dead).expect("address").to_string();
    let others: Vec<&str> = ["m1", "w1", "w2"]
        .into_iter()
        .filter(|h| *h != dead)
        .collect();
    assert!(
        others
            .iter()
            .any(|h| fdb_dsts(&lab, h).contains(&dead_addr)),
        "no entry for {dead} to begin with"
    );
    for daemon in ["shoal-agent", "shoal-netd"] {
        lab.kill9(dead, daemon).expect("kill");
    }
    lab.wait_until(
        &format!("{dead}'s tasks gone from the others' tables"),
        Duration::from_secs(60),
        || match others
            .iter()
            .find(|h| fdb_dsts(&lab, h).contains(&dead_addr))
        {
            None => Ok(()),
            Some(h) => Err(format!("{h} still forwards to {dead}")),
        },
    )
    .expect("entries removed");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

/// An echo service (3 tasks, TCP 7000) and a client service, both on
/// `network`.
fn echo_and_client(lab: &Lab, network: &str) {
    let image = format!("{}/web:v1", lab.registry());
    let echo = [
        "service",
        "create",
        "--name",
        "echo",
        "--replicas",
        "3",
        "--network",
        network,
        &image,
        "nc",
        "-ll",
        "-p",
        "7000",
        "-e",
        "cat",
    ];
    lab.shoal_ok(echo).expect("echo");
    client_on(lab, network);
}

/// A service `client` (one task that just runs) on `network`.
fn client_on(lab: &Lab, network: &str) {
    let image = format!("{}/web:v1", lab.registry());
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "client",
        "--network",
        network,
        &image,
    ])
    .expect("client");
}

/// The VTEPs a host's overlay devices forward to.
fn fdb_dsts(lab: &Lab, host: &str) -> BTreeSet<String> {
    let out = lab
        .exec(host, &["bridge", "-j", "fdb", "show"])
        .expect("bridge fdb");
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| e["dst"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn an_encrypted_network_between_nodes_never_crosses_the_underlay_in_the_clear() {
    use shoal_e2e::probe::{contains, Capture};
    use std::io::{BufRead, BufReader, Write};
    let lab = lab("t-ovl-secret");
    // Keys rotate on the cluster's schedule, no faster than once a minute.
    let refused = lab
        .shoal(["swarm", "update", "--network-key-rotation", "30s"])
        .expect("run shoal");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--network-key-rotation"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    lab.shoal_ok(["swarm", "update", "--network-key-rotation", "6h"])
        .expect("a rotation of 6h");
    lab.shoal_ok([
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "secret",
    ])
    .expect("encrypted network");
    echo_and_client(&lab, "secret");
    let client = running(&lab, "client").pop().expect("client task");
    let remote = running(&lab, "echo")
        .into_iter()
        .find(|t| t.host != client.host)
        .expect("an echo task on another node");
    let netns = task_netns(&lab, &client.host, &client.id());
    let target = SocketAddr::new(remote.on("secret").0.into(), 7000);
    let host_ns = std::path::PathBuf::from(format!(
        "/run/netns/{}",
        lab.host(&client.host).expect("host").netns
    ));
    let exchange = |marker: &str| -> String {
        in_netns(&netns, || {
            let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3))
                .expect("connect across nodes");
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            s.write_all(format!("{marker}\n").as_bytes()).expect("send");
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).expect("echo");
            line.trim().to_string()
        })
    };
    let capture = Capture::start(&host_ns, "eth0");
    let marker = "shoal-lab-secret-4d2f";
    assert_eq!(exchange(marker), marker);
    let frames = capture.finish();
    assert!(
        !contains(&frames, marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    assert!(!frames.is_empty(), "the capture saw nothing");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}

#[test]
fn the_mesh_answers_on_every_node_with_the_client_address_and_host_mode_stays_local() {
    let lab = lab("t-ovl-mesh");
    let image = format!("{}/web:v1", lab.registry());
    // busybox httpd gives CGI scripts the client's address.
    let who = r##"mkdir -p /w/cgi-bin && printf "#!/bin/sh\nprintf \"Content-Type: text/plain\\\\r\\\\n\\\\r\\\\n%%s\\\\n\" \"\$REMOTE_ADDR\"\n" > /w/cgi-bin/who && chmod +x /w/cgi-bin/who && exec httpd -f -p 80 -h /w"##;
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "who",
        "--publish",
        "8081:80",
        &image,
        "sh",
        "-c",
        who,
    ])
    .expect("who");
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "local",
        "--publish",
        "mode=host,published=8082,target=80",
        &image,
    ])
    .expect("local");
    let who_host = running(&lab, "who").pop().expect("who's task").host;
    let local_host = running(&lab, "local").pop().expect("local's task").host;
    let client = lab.gateway().to_string();
    for host in ["m1", "w1", "w2"] {
        let addr = lab.host_addr(host).expect("address");
        let (status, body) = lab
            .wait_until(
                &format!("{host}:8081 answers"),
                Duration::from_secs(10),
                || lab.http_get(addr, 8081, "/cgi-bin/who"),
            )
            .expect("the mesh answers");
        assert_eq!(status, 200, "{host}: {body}");
        // httpd writes it as an IPv4-mapped IPv6 address.
        let seen = body
            .trim()
            .trim_start_matches("[::ffff:")
            .trim_end_matches(']');
        assert_eq!(
            seen, client,
            "{host} (task on {who_host}): the backend saw another address than the client's"
        );
        if host == local_host {
            // Running means its process started, not that httpd listens
            // yet: the port answers within moments.
            let local = lab.wait_until(
                &format!("{host}:8082 answers"),
                Duration::from_secs(10),
                || lab.http_get(addr, 8082, "/"),
            );
            assert!(
                local.is_ok(),
                "{host} runs local's task but does not answer: {local:?}"
            );
        } else {
            let local = lab.http_get(addr, 8082, "/");
            assert!(
                local.is_err(),
                "{host} answers a host-mode port without a task: {local:?}"
            );
        }
    }
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
