//! An overlay network across two nodes (two host namespaces joined by an
//! underlay link), built from the managers' view alone: static FDB and
//! neighbour entries, no flooding, no learning (root only).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use shoal_e2e::probe::{contains, Capture};
use shoal_netd::Dataplane;
use shoal_proto::dispatcher::v1::{NetworkView, NodePeer, TaskAddress};
use shoal_proto::netd::v1::AttachTaskRequest;

const NODE1: (&str, &str) = ("node-one", "192.168.88.1");
const NODE2: (&str, &str) = ("node-two", "192.168.88.2");
const VXLAN: &str = "vx-netalpha00";

/// Two nodes whose host namespaces share an underlay link.
fn two_nodes(tag: &str) -> (Host, Host) {
    let one = Host::new(&format!("{tag}1"));
    let two = Host::new(&format!("{tag}2"));
    ip(
        &one.ns.name,
        &[
            "link",
            "add",
            "under",
            "type",
            "veth",
            "peer",
            "name",
            "under",
            "netns",
            &two.ns.name,
        ],
    );
    for (host, (_, addr)) in [(&one, NODE1), (&two, NODE2)] {
        ip(
            &host.ns.name,
            &["addr", "add", &format!("{addr}/24"), "dev", "under"],
        );
        ip(&host.ns.name, &["link", "set", "under", "up"]);
    }
    (one, two)
}

/// The view both nodes get, for `node`: both nodes ready (or only the
/// `ready` ones) and the given task addresses (task, node, address).
fn view(node: &str, ready: &[(&str, &str)], tasks: &[(&str, &str, &str)]) -> NetworkView {
    NetworkView {
        networks: vec![network()],
        node_id: node.into(),
        nodes: ready
            .iter()
            .map(|(id, addr)| NodePeer {
                node_id: (*id).into(),
                addr: (*addr).into(),
                wireguard_public_key: String::new(),
                // Used where the network is the ingress network.
                ingress_address: if *id == NODE1.0 {
                    "10.0.1.254"
                } else {
                    "10.0.1.253"
                }
                .into(),
            })
            .collect(),
        addresses: tasks
            .iter()
            .map(|(task, node, addr)| TaskAddress {
                task_id: (*task).into(),
                node_id: (*node).into(),
                network_id: NET_ID.into(),
                address: (*addr).into(),
            })
            .collect(),
        ..Default::default()
    }
}

fn attach(task: &str, address: &str) -> AttachTaskRequest {
    AttachTaskRequest {
        task_id: task.into(),
        networks: vec![attachment(address)],
        hostname: task.into(),
        ..Default::default()
    }
}

/// `bridge -j fdb show dev VXLAN` in the host: (mac, dst) of entries with a destination.
fn fdb(host: &Host) -> Vec<(String, String)> {
    let out = run(Command::new("ip").args([
        "netns",
        "exec",
        &host.ns.name,
        "bridge",
        "-j",
        "fdb",
        "show",
        "dev",
        VXLAN,
    ]));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("fdb json");
    let mut v: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            Some((
                e["mac"].as_str()?.to_string(),
                e["dst"].as_str()?.to_string(),
            ))
        })
        .collect();
    v.sort();
    v
}

/// `ip -j neigh show dev VXLAN`: (address, mac).
fn neighbours(host: &Host) -> Vec<(String, String)> {
    let out = ip(&host.ns.name, &["-j", "neigh", "show", "dev", VXLAN]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("neigh json");
    let mut v: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            Some((
                e["dst"].as_str()?.to_string(),
                e["lladdr"].as_str()?.to_string(),
            ))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn tasks_on_two_nodes_talk_over_the_overlay_and_leave_its_tables_when_they_go() {
    let (mut one, two) = two_nodes("ovl");
    let tasks = [
        ("task-aaaa-0001", NODE1.0, "10.0.1.2"),
        ("task-bbbb-0002", NODE2.0, "10.0.1.3"),
    ];
    let both = [NODE1, NODE2];
    let state1 = one.state_dir().to_path_buf();
    let ns1 = one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("open 1");
        dp.apply_view(&view(NODE1.0, &both, &tasks))
            .await
            .expect("view 1");
        dp.attach_task(&attach("task-aaaa-0001", "10.0.1.2/24"))
            .await
            .expect("attach 1")
    });
    let state2 = two.state_dir().to_path_buf();
    let ns2 = two.block_on(|| async move {
        let dp = Dataplane::open(&state2).await.expect("open 2");
        dp.apply_view(&view(NODE2.0, &both, &tasks))
            .await
            .expect("view 2");
        dp.attach_task(&attach("task-bbbb-0002", "10.0.1.3/24"))
            .await
            .expect("attach 2")
    });

    // Each node knows exactly the other node's task, nothing to flood to.
    assert_eq!(
        fdb(&one),
        vec![("02:42:0a:00:01:03".to_string(), NODE2.1.to_string())]
    );
    assert_eq!(
        neighbours(&one),
        vec![("10.0.1.3".to_string(), "02:42:0a:00:01:03".to_string())]
    );
    assert_eq!(
        fdb(&two),
        vec![("02:42:0a:00:01:02".to_string(), NODE1.1.to_string())]
    );

    // A TCP exchange from the task on node one to the task on node two.
    one.spawn_in(&ns2, &["busybox", "nc", "-ll", "-p", "7000", "-e", "cat"]);
    assert!(
        eventually(Duration::from_secs(5), || listening(&ns2, 7000)
            .then_some(()))
        .is_some(),
        "echo server did not start"
    );
    let addr: SocketAddr = "10.0.1.3:7000".parse().expect("addr");
    let echoed = eventually(Duration::from_secs(5), || {
        in_ns(&ns1, || {
            use std::io::{BufRead, BufReader, Write};
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"over the overlay\n").ok()?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).ok()?;
            Some(line)
        })
    });
    assert_eq!(echoed.as_deref(), Some("over the overlay\n"));

    // Node two goes down: node one forgets its tasks at the next view.
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&view(NODE1.0, &[NODE1], &tasks))
            .await
            .expect("view without node two");
    });
    assert_eq!(fdb(&one), vec![]);
    assert_eq!(neighbours(&one), vec![]);

    // It comes back; then its task stops: added again, then removed.
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&view(NODE1.0, &both, &tasks))
            .await
            .expect("node two back");
    });
    assert_eq!(fdb(&one).len(), 1);
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&view(NODE1.0, &both, &tasks[..1]))
            .await
            .expect("task two gone");
    });
    assert_eq!(fdb(&one), vec![]);
    assert_eq!(neighbours(&one), vec![]);

    // The VXLAN device learns nothing and answers ARP itself.
    let out = ip(&one.ns.name, &["-j", "-d", "link", "show", VXLAN]);
    let link: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("link json");
    let info = &link[0]["linkinfo"]["info_data"];
    assert_eq!(info["learning"], false, "{info}");
    assert_eq!(info["proxy"], true, "{info}");
    assert_eq!(link[0]["mtu"], 1450);
}

#[test]
fn a_network_is_built_only_on_nodes_with_its_tasks() {
    let (one, two) = two_nodes("only");
    let tasks = [("task-aaaa-0001", NODE1.0, "10.0.1.2")];
    let both = [NODE1, NODE2];
    let state2 = two.state_dir().to_path_buf();
    two.block_on(|| async move {
        let dp = Dataplane::open(&state2).await.expect("open 2");
        dp.apply_view(&view(NODE2.0, &both, &tasks))
            .await
            .expect("view 2");
    });
    assert!(
        link(&two.links(), VXLAN).is_none(),
        "node two built a network it has no task on"
    );
    assert!(link(&two.links(), "sh-netalpha00").is_none());
    drop(one);
}

/// Serves `<name> <peer address>` to every connection on `port`, from a
/// thread inside `netns` (lives until the test process ends).
fn serve_peer_addr(netns: &std::path::Path, port: u16, name: &'static str) {
    use std::io::Write;
    use std::os::fd::AsFd;
    let file = std::fs::File::open(netns).expect("open namespace");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
        ready_tx.send(()).expect("ready");
        for mut conn in listener.incoming().flatten() {
            let peer = conn
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = writeln!(conn, "{name} {peer}");
        }
    });
    ready_rx.recv().expect("server started");
}

fn read_line_from(netns: &std::path::Path, addr: SocketAddr) -> std::io::Result<String> {
    in_ns(netns, || {
        use std::io::{BufRead, BufReader};
        let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_string())
    })
}

#[test]
fn a_vip_balances_over_tasks_on_both_nodes_and_backends_see_the_client() {
    use shoal_proto::dispatcher::v1::{Backend, ServiceEndpoints};
    use shoal_proto::types::v1::VirtualIp;
    let (one, two) = two_nodes("vip");
    let tasks = [
        ("task-clnt-0001", NODE1.0, "10.0.1.2"),
        ("task-webA-0002", NODE1.0, "10.0.1.3"),
        ("task-webB-0003", NODE2.0, "10.0.1.4"),
    ];
    let both = [NODE1, NODE2];
    let web = |backends: &[(&str, &str, &str)]| ServiceEndpoints {
        service_id: "svc-web".into(),
        service_name: "web".into(),
        virtual_ips: vec![VirtualIp {
            network_id: NET_ID.into(),
            addr: "10.0.1.100/24".into(),
        }],
        backends: backends
            .iter()
            .map(|(task, node, addr)| Backend {
                task_id: (*task).into(),
                node_id: (*node).into(),
                address: (*addr).into(),
                network_id: NET_ID.into(),
                hostname: (*task).into(),
            })
            .collect(),
        ..Default::default()
    };
    let with = |node: &str, backends: &[(&str, &str, &str)]| NetworkView {
        services: vec![web(backends)],
        ..view(node, &both, &tasks)
    };
    let v1 = with(NODE1.0, &tasks[1..]);
    let state1 = one.state_dir().to_path_buf();
    let (client, web_a) = one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("open 1");
        dp.apply_view(&v1).await.expect("view 1");
        let c = dp
            .attach_task(&attach("task-clnt-0001", "10.0.1.2/24"))
            .await
            .expect("client");
        let a = dp
            .attach_task(&attach("task-webA-0002", "10.0.1.3/24"))
            .await
            .expect("web a");
        (c, a)
    });
    let v2 = with(NODE2.0, &tasks[1..]);
    let state2 = two.state_dir().to_path_buf();
    let web_b = two.block_on(|| async move {
        let dp = Dataplane::open(&state2).await.expect("open 2");
        dp.apply_view(&v2).await.expect("view 2");
        dp.attach_task(&attach("task-webB-0003", "10.0.1.4/24"))
            .await
            .expect("web b")
    });
    serve_peer_addr(&web_a, 7000, "a");
    serve_peer_addr(&web_b, 7000, "b");

    let vip: SocketAddr = "10.0.1.100:7000".parse().expect("addr");
    let mut answers: Vec<String> = (0..10)
        .map(|_| read_line_from(&client, vip).expect("request through the VIP"))
        .collect();
    answers.sort();
    answers.dedup();
    // Both tasks answered, and each saw the client's own address.
    assert_eq!(answers, ["a 10.0.1.2", "b 10.0.1.2"]);

    // Draining task b (it is about to stop) takes it out at once; with no
    // backend left the VIP refuses instead of hanging.
    let v1 = with(NODE1.0, &tasks[1..]);
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&v1).await.expect("view again");
        dp.drain_task("task-webA-0002").await.expect("drain");
    });
    for _ in 0..4 {
        assert_eq!(read_line_from(&client, vip).expect("request"), "b 10.0.1.2");
    }
    let v1 = with(NODE1.0, &[]);
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&v1).await.expect("no backends");
    });
    let started = std::time::Instant::now();
    let refused = read_line_from(&client, vip).expect_err("a VIP without tasks must refuse");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn networks_do_not_reach_each_other_and_an_internal_one_has_no_way_out() {
    use shoal_proto::types::v1::{Meta, Network, NetworkAttachment, NetworkSpec};
    let host = Host::new("iso");
    let other = Network {
        meta: Some(Meta {
            id: "netbeta00002".into(),
            ..Default::default()
        }),
        spec: Some(NetworkSpec {
            internal: true,
            ..Default::default()
        }),
        vni: 4102,
        subnet: "10.0.2.0/24".into(),
        gateway: "10.0.2.1".into(),
        ..Default::default()
    };
    let on_other = |task: &str, address: &str| AttachTaskRequest {
        task_id: task.into(),
        networks: vec![NetworkAttachment {
            network_id: "netbeta00002".into(),
            network_name: "beta".into(),
            vni: 4102,
            address: address.into(),
            gateway: "10.0.2.1".into(),
            subnet: "10.0.2.0/24".into(),
        }],
        hostname: task.into(),
        ..Default::default()
    };
    let view = NetworkView {
        networks: vec![network(), other],
        ..view(NODE1.0, &[NODE1], &[])
    };
    let state = host.state_dir().to_path_buf();
    let (alpha, beta) = host.block_on(|| async move {
        let dp = Dataplane::open(&state).await.expect("open");
        dp.apply_view(&view).await.expect("view");
        let a = dp
            .attach_task(&attach("task-alph-0001", "10.0.1.2/24"))
            .await
            .expect("alpha");
        let b = dp
            .attach_task(&on_other("task-beta-0002", "10.0.2.2/24"))
            .await
            .expect("beta");
        (a, b)
    });
    serve_peer_addr(&beta, 7000, "beta");
    serve_peer_addr(&host.client.path(), 7001, "outside");
    // The internal network's own task answers on its bridge's side...
    assert!(succeeds_in(
        &beta,
        &["busybox", "ping", "-c1", "-W2", "10.0.2.1"]
    ));
    // ...but alpha cannot reach it through the node,
    let to_beta: SocketAddr = "10.0.2.2:7000".parse().expect("addr");
    assert!(
        read_line_from(&alpha, to_beta).is_err(),
        "alpha reached the other network"
    );
    // alpha goes out (NAT) while the internal task has no route out at all.
    let outside: SocketAddr = "192.168.77.2:7001".parse().expect("addr");
    assert_eq!(
        read_line_from(&alpha, outside).expect("alpha goes out"),
        format!("outside {HOST_ADDR}")
    );
    let err = read_line_from(&beta, outside).expect_err("internal task went out");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENETUNREACH), "{err}");
}

#[test]
fn a_published_port_answers_on_a_node_without_tasks_and_reaches_them_on_another() {
    use shoal_proto::dispatcher::v1::{Backend, ServiceEndpoints};
    use shoal_proto::types::v1::{PortConfig, PortProtocol, PublishMode};
    let (one, two) = two_nodes("mesh");
    let mut ingress = network();
    ingress.ingress = true;
    let tasks = [("task-webA-0001", NODE1.0, "10.0.1.3")];
    let both = [NODE1, NODE2];
    let web = |mode: PublishMode| ServiceEndpoints {
        service_id: "svc-web".into(),
        service_name: "web".into(),
        ports: vec![PortConfig {
            protocol: PortProtocol::Tcp as i32,
            target_port: 7000,
            published_port: 8080,
            publish_mode: mode as i32,
            ..Default::default()
        }],
        backends: vec![Backend {
            task_id: tasks[0].0.into(),
            node_id: NODE1.0.into(),
            address: tasks[0].2.into(),
            network_id: NET_ID.into(),
            hostname: "web-a".into(),
        }],
        ..Default::default()
    };
    let with = |node: &str, mode: PublishMode| NetworkView {
        networks: vec![ingress.clone()],
        services: vec![web(mode)],
        ..view(node, &both, &tasks)
    };
    let v1 = with(NODE1.0, PublishMode::Ingress);
    let state1 = one.state_dir().to_path_buf();
    let web_a = one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("open 1");
        dp.apply_view(&v1).await.expect("view 1");
        dp.attach_task(&attach(tasks[0].0, "10.0.1.3/24"))
            .await
            .expect("web a")
    });
    let v2 = with(NODE2.0, PublishMode::Ingress);
    let state2 = two.state_dir().to_path_buf();
    two.block_on(|| async move {
        let dp = Dataplane::open(&state2).await.expect("open 2");
        dp.apply_view(&v2).await.expect("view 2");
    });
    // Node two builds the ingress network with no task of its own on it.
    let bridge = link(&two.links(), "sh-netalpha00")
        .cloned()
        .expect("ingress bridge on node two");
    assert_eq!(ipv4_addrs(&bridge), ["10.0.1.1/24", "10.0.1.253/24"]);
    serve_peer_addr(&web_a, 7000, "a");

    // From node two's outside client, to node two's own address: the task
    // on node one answers, and sees the client's real address.
    let on_two: SocketAddr = format!("{HOST_ADDR}:8080").parse().expect("addr");
    assert_eq!(
        read_line_from(&two.client.path(), on_two).expect("through node two's mesh"),
        "a 192.168.77.2"
    );
    // Host mode: only node one, where the task is, opens the port.
    let v2 = with(NODE2.0, PublishMode::Host);
    let state2 = two.state_dir().to_path_buf();
    two.block_on(|| async move {
        let dp = Dataplane::open(&state2).await.expect("reopen 2");
        dp.apply_view(&v2).await.expect("host mode on two");
    });
    let v1 = with(NODE1.0, PublishMode::Host);
    let state1 = one.state_dir().to_path_buf();
    one.block_on(|| async move {
        let dp = Dataplane::open(&state1).await.expect("reopen 1");
        dp.apply_view(&v1).await.expect("host mode on one");
    });
    assert!(
        read_line_from(&two.client.path(), on_two).is_err(),
        "node two still answers"
    );
    let on_one: SocketAddr = format!("{HOST_ADDR}:8080").parse().expect("addr");
    assert!(read_line_from(&one.client.path(), on_one)
        .expect("node one answers at its task")
        .starts_with("a "));
}

/// A node's data plane kept open for a whole test (the WireGuard mesh of
/// a userspace device lives as long as its `Dataplane`), on a thread inside
/// the node's namespace.
struct LiveNode {
    tx: std::sync::mpsc::Sender<Cmd>,
}

enum Cmd {
    Key(std::sync::mpsc::Sender<String>),
    Rotate(std::sync::mpsc::Sender<String>),
    View(NetworkView, std::sync::mpsc::Sender<()>),
    Attach(
        AttachTaskRequest,
        std::sync::mpsc::Sender<std::path::PathBuf>,
    ),
}

impl LiveNode {
    fn open(host: &Host) -> LiveNode {
        let (tx, rx) = std::sync::mpsc::channel::<Cmd>();
        let state = host.state_dir().to_path_buf();
        spawn_in(&host.ns.path(), move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let dp = Dataplane::open(&state).await.expect("open");
                while let Ok(cmd) = rx.recv() {
                    match cmd {
                        Cmd::Key(reply) => {
                            let _ = reply.send(dp.wireguard_public_key().await);
                        }
                        Cmd::Rotate(reply) => {
                            dp.rotate_key_now().await.expect("rotate");
                            let _ = reply.send(dp.wireguard_public_key().await);
                        }
                        Cmd::View(view, reply) => {
                            dp.apply_view(&view).await.expect("apply view");
                            let _ = reply.send(());
                        }
                        Cmd::Attach(req, reply) => {
                            let _ = reply.send(dp.attach_task(&req).await.expect("attach"));
                        }
                    }
                }
            });
        });
        LiveNode { tx }
    }

    fn ask<T>(&self, cmd: impl FnOnce(std::sync::mpsc::Sender<T>) -> Cmd) -> T {
        let (reply, answer) = std::sync::mpsc::channel();
        self.tx.send(cmd(reply)).expect("node thread");
        answer.recv().expect("node thread answered")
    }
}

/// Sends `marker` to the echo server at `addr` from inside `netns`; the echo.
fn echo(netns: &std::path::Path, addr: SocketAddr, marker: &str) -> Option<String> {
    eventually(Duration::from_secs(5), || {
        in_ns(netns, || {
            use std::io::{BufRead, BufReader, Write};
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(format!("{marker}\n").as_bytes()).ok()?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).ok()?;
            Some(line.trim().to_string())
        })
    })
}

#[test]
fn an_encrypted_network_crosses_the_underlay_only_inside_wireguard() {
    use shoal_proto::types::v1::{Meta, Network, NetworkAttachment, NetworkSpec};
    let (mut one, two) = two_nodes("wg");
    let secret = Network {
        meta: Some(Meta {
            id: "netsecret001".into(),
            ..Default::default()
        }),
        spec: Some(NetworkSpec {
            encrypted: true,
            ..Default::default()
        }),
        vni: 4200,
        subnet: "10.0.5.0/24".into(),
        gateway: "10.0.5.1".into(),
        ..Default::default()
    };
    let on_secret = |task: &str, address: &str| AttachTaskRequest {
        task_id: task.into(),
        networks: vec![NetworkAttachment {
            network_id: "netsecret001".into(),
            network_name: "secret".into(),
            vni: 4200,
            address: address.into(),
            gateway: "10.0.5.1".into(),
            subnet: "10.0.5.0/24".into(),
        }],
        hostname: task.into(),
        ..Default::default()
    };
    let (n1, n2) = (LiveNode::open(&one), LiveNode::open(&two));
    let mut keys = [n1.ask(Cmd::Key), n2.ask(Cmd::Key)];
    let view_for = |node: &str, keys: &[String; 2]| {
        let mut v = view(
            node,
            &[NODE1, NODE2],
            &[
                ("task-plain-001", NODE1.0, "10.0.1.2"),
                ("task-plain-002", NODE2.0, "10.0.1.3"),
            ],
        );
        v.networks.push(secret.clone());
        for (peer, key) in v.nodes.iter_mut().zip(keys) {
            peer.wireguard_public_key = key.clone();
        }
        for (task, node, addr) in [
            ("task-secrt-001", NODE1.0, "10.0.5.2"),
            ("task-secrt-002", NODE2.0, "10.0.5.3"),
        ] {
            v.addresses.push(TaskAddress {
                task_id: task.into(),
                node_id: node.into(),
                network_id: "netsecret001".into(),
                address: addr.into(),
            });
        }
        v
    };
    n1.ask(|r| Cmd::View(view_for(NODE1.0, &keys), r));
    n2.ask(|r| Cmd::View(view_for(NODE2.0, &keys), r));
    let plain1 = n1.ask(|r| Cmd::Attach(attach("task-plain-001", "10.0.1.2/24"), r));
    let plain2 = n2.ask(|r| Cmd::Attach(attach("task-plain-002", "10.0.1.3/24"), r));
    let secret1 = n1.ask(|r| Cmd::Attach(on_secret("task-secrt-001", "10.0.5.2/24"), r));
    let secret2 = n2.ask(|r| Cmd::Attach(on_secret("task-secrt-002", "10.0.5.3/24"), r));
    one.spawn_in(
        &plain2,
        &["busybox", "nc", "-ll", "-p", "7000", "-e", "cat"],
    );
    one.spawn_in(
        &secret2,
        &["busybox", "nc", "-ll", "-p", "7000", "-e", "cat"],
    );

    // The encrypted network's MTU leaves room for VXLAN inside WireGuard.
    let links = links_in(&secret1);
    assert_eq!(link(&links, "eth0").expect("eth0")["mtu"], 1350);

    let capture = Capture::start(&one.ns.path(), "under");
    let marker = "shoal-marker-7f3a9c";
    assert_eq!(
        echo(&secret1, "10.0.5.3:7000".parse().expect("addr"), marker).as_deref(),
        Some(marker),
        "no exchange over the encrypted network"
    );
    let frames = capture.finish();
    assert!(
        !contains(&frames, marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    assert!(
        contains(&frames, &51820u16.to_be_bytes()),
        "no WireGuard traffic seen: the capture saw {} frames",
        frames.len()
    );

    // The same exchange on the plain network is readable (the capture works).
    let capture = Capture::start(&one.ns.path(), "under");
    let marker = "shoal-plain-0b1d2e";
    assert_eq!(
        echo(&plain1, "10.0.1.3:7000".parse().expect("addr"), marker).as_deref(),
        Some(marker)
    );
    assert!(
        contains(&capture.finish(), marker.as_bytes()),
        "the capture saw nothing"
    );

    // Node one rotates its key; once both nodes have the view that says
    // so, the encrypted network works on the new key.
    let old = keys[0].clone();
    keys[0] = n1.ask(Cmd::Rotate);
    assert_ne!(keys[0], old, "the rotated key is a new one");
    n2.ask(|r| Cmd::View(view_for(NODE2.0, &keys), r));
    n1.ask(|r| Cmd::View(view_for(NODE1.0, &keys), r));
    let marker = "after-rotation";
    let started = std::time::Instant::now();
    assert_eq!(
        echo(&secret1, "10.0.5.3:7000".parse().expect("addr"), marker).as_deref(),
        Some(marker),
        "the encrypted network after a key rotation"
    );
    // The peer that learnt the new key handshakes at once.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the first exchange after the rotation took {:?}",
        started.elapsed()
    );
}
