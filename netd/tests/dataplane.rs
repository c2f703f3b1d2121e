//! The data plane against the real kernel, each test in its own throwaway
//! host namespace (root only).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use shoal_netd::Dataplane;
use shoal_proto::netd::v1::AttachTaskRequest;

fn attach_req(task: &str, address: &str) -> AttachTaskRequest {
    AttachTaskRequest {
        task_id: task.into(),
        networks: vec![attachment(address)],
        hostname: task.into(),
        ..Default::default()
    }
}

fn ifindex(links: &[serde_json::Value], name: &str) -> u64 {
    link(links, name)
        .and_then(|l| l["ifindex"].as_u64())
        .unwrap_or_else(|| panic!("no link {name}"))
}

#[test]
fn two_tasks_get_eth0_and_reach_each_other_and_the_gateway() {
    let host = Host::new("ping");
    let state = host.state_dir().to_path_buf();
    let (ns1, ns2) = host.block_on(|| async move {
        let dp = Dataplane::open(&state).await.expect("open");
        let ns1 = dp
            .attach_task(&attach_req("task-one-0001", "10.0.1.2/24"))
            .await
            .expect("attach 1");
        let ns2 = dp
            .attach_task(&attach_req("task-two-0002", "10.0.1.3/24"))
            .await
            .expect("attach 2");
        (ns1, ns2)
    });
    assert_eq!(ns1, host.state_dir().join("netns/task-one-0001"));

    for (ns, addr) in [(&ns1, "10.0.1.2/24"), (&ns2, "10.0.1.3/24")] {
        let links = links_in(ns);
        let eth0 = link(&links, "eth0").expect("eth0 in the task namespace");
        assert_eq!(ipv4_addrs(eth0), vec![addr.to_string()]);
        assert_eq!(eth0["operstate"], "UP");
        assert_eq!(eth0["mtu"], 1450);
    }
    let links = host.links();
    let bridge = link(&links, "sh-netalpha00").expect("bridge");
    assert_eq!(ipv4_addrs(bridge), vec!["10.0.1.1/24".to_string()]);
    for name in ["vttask-one-00", "vttask-two-00", "vx-netalpha00"] {
        let l = link(&links, name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(l["master"], "sh-netalpha00", "{name} not on the bridge");
    }

    assert!(
        succeeds_in(&ns1, &["busybox", "ping", "-c1", "-W2", "10.0.1.3"]),
        "task 1 cannot ping task 2"
    );
    assert!(
        succeeds_in(&ns2, &["busybox", "ping", "-c1", "-W2", "10.0.1.2"]),
        "task 2 cannot ping task 1"
    );
    assert!(
        succeeds_in(&ns1, &["busybox", "ping", "-c1", "-W2", "10.0.1.1"]),
        "task 1 cannot ping the gateway"
    );
    // The default route leads out of the overlay (outbound NAT to the client).
    assert!(
        succeeds_in(&ns1, &["busybox", "ping", "-c1", "-W2", "192.168.77.2"]),
        "task 1 cannot leave the node"
    );
}

#[test]
fn attach_is_idempotent_and_failed_attach_leaves_nothing() {
    let host = Host::new("idem");
    let state = host.state_dir().to_path_buf();
    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.attach_task(&attach_req("task-idem", "10.0.1.7/24"))
                .await
                .expect("attach");
        }
    });
    let index = ifindex(&host.links(), "vttask-idem");
    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.attach_task(&attach_req("task-idem", "10.0.1.7/24"))
                .await
                .expect("attach again");
            assert_eq!(dp.list_attachments().await.len(), 1);
        }
    });
    assert_eq!(
        ifindex(&host.links(), "vttask-idem"),
        index,
        "second attach recreated the veth"
    );

    // A second network whose bridge name collides with the first's fails
    // after the namespace and the first veth were made: both must go.
    let mut other = attachment("10.0.2.5/24");
    other.network_id = "netalpha0002".into();
    other.subnet = "10.0.2.0/24".into();
    other.gateway = "10.0.2.1".into();
    let req = AttachTaskRequest {
        task_id: "task-broken".into(),
        networks: vec![attachment("10.0.1.9/24"), other],
        hostname: String::new(),
        ..Default::default()
    };
    let err = host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.attach_task(&req)
                .await
                .expect_err("colliding bridge names must fail")
        }
    });
    assert!(err.to_string().contains("sh-netalpha00"), "{err}");
    assert!(
        link(&host.links(), "vttask-broke").is_none(),
        "veth left after a failed attach"
    );
    assert!(
        !host.state_dir().join("netns/task-broken").exists(),
        "namespace left after a failed attach"
    );
}

#[test]
fn published_port_balances_over_both_backends_and_empty_services_refuse() {
    let mut host = Host::new("mesh");
    let state = host.state_dir().to_path_buf();
    let (ns1, ns2) = host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            let ns1 = dp
                .attach_task(&attach_req("task-web-1", "10.0.1.2/24"))
                .await
                .expect("attach 1");
            let ns2 = dp
                .attach_task(&attach_req("task-web-2", "10.0.1.3/24"))
                .await
                .expect("attach 2");
            dp.apply_view(&view(vec![
                service(
                    "svcweb",
                    8080,
                    80,
                    &[("task-web-1", "10.0.1.2"), ("task-web-2", "10.0.1.3")],
                ),
                service("svcempty", 9090, 80, &[]),
            ]))
            .await
            .expect("apply view");
            (ns1, ns2)
        }
    });
    host.spawn_in(
        &ns1,
        &[
            "busybox",
            "nc",
            "-ll",
            "-p",
            "80",
            "-e",
            "echo",
            "backend-one",
        ],
    );
    host.spawn_in(
        &ns2,
        &[
            "busybox",
            "nc",
            "-ll",
            "-p",
            "80",
            "-e",
            "echo",
            "backend-two",
        ],
    );
    // A process of the node itself listening on the empty service's port:
    // the routing mesh owns the port, so it must still refuse.
    let host_ns = host.ns.path();
    host.spawn_in(
        &host_ns,
        &[
            "busybox",
            "nc",
            "-ll",
            "-p",
            "9090",
            "-e",
            "echo",
            "not-the-mesh",
        ],
    );
    let ready = eventually(Duration::from_secs(5), || {
        (listening(&ns1, 80) && listening(&ns2, 80) && tcp_listener_in(&host_ns, 9090))
            .then_some(())
    });
    assert!(ready.is_some(), "backends did not start");

    let published: SocketAddr = format!("{HOST_ADDR}:8080").parse().expect("addr");
    let loopback: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    for (from, to) in [(host.client.path(), published), (host_ns.clone(), loopback)] {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let answer = tcp_exchange(&from, to, "")
                .unwrap_or_else(|e| panic!("{to} from {}: {e}", from.display()));
            seen.insert(answer.trim().to_string());
        }
        let expected: BTreeSet<String> = ["backend-one", "backend-two"].map(String::from).into();
        assert_eq!(seen, expected, "{to} from {}", from.display());
    }

    let refused = tcp_exchange(
        &host.client.path(),
        format!("{HOST_ADDR}:9090").parse().expect("addr"),
        "",
    );
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "port of a service without backends: {refused:?}"
    );

    // The service leaves the view: its rules go, the other's stay.
    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.apply_view(&view(vec![service("svcempty", 9090, 80, &[])]))
                .await
                .expect("apply");
        }
    });
    let rules = serde_json::to_string(&host.nft_rules()).expect("json");
    assert!(
        !rules.contains("svcweb") && !rules.contains("8080"),
        "{rules}"
    );
    assert!(rules.contains("svcempty"), "{rules}");
    assert!(
        tcp_exchange(&host.client.path(), published, "").is_err(),
        "removed service still answers"
    );
}

#[test]
fn detach_and_removing_the_service_leave_nothing() {
    let host = Host::new("gone");
    let state = host.state_dir().to_path_buf();
    let paths: Vec<PathBuf> = host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            let a = dp
                .attach_task(&attach_req("task-gone-1", "10.0.1.2/24"))
                .await
                .expect("attach");
            let b = dp
                .attach_task(&attach_req("task-gone-2", "10.0.1.3/24"))
                .await
                .expect("attach");
            dp.apply_view(&view(vec![service(
                "svcgone",
                8081,
                80,
                &[("t1", "10.0.1.2"), ("t2", "10.0.1.3")],
            )]))
            .await
            .expect("view");
            vec![a, b]
        }
    });
    assert!(!host.nft_rules().is_empty());

    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.detach_task("task-gone-1").await.expect("detach");
            dp.detach_task("task-gone-2").await.expect("detach");
            dp.detach_task("task-gone-2").await.expect("detach twice");
            dp.detach_task("never-attached")
                .await
                .expect("detach unknown");
            assert!(dp.list_attachments().await.is_empty());
            // The network and the service leave the view.
            dp.apply_view(&Default::default())
                .await
                .expect("empty view");
        }
    });

    let links = host.links();
    let ours: Vec<&str> = links
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("vt") || n.starts_with("sh-") || n.starts_with("vx-"))
        .collect();
    assert!(ours.is_empty(), "links left: {ours:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for p in &paths {
        assert!(!p.exists(), "{} left", p.display());
        assert!(
            !mountinfo.contains(&*p.to_string_lossy()),
            "{} still mounted",
            p.display()
        );
    }
    assert!(
        host.nft_table().is_none(),
        "nft table left: {:?}",
        host.nft_table()
    );
}

#[test]
fn restarted_dataplane_keeps_connections_and_veths() {
    let mut host = Host::new("restart");
    let state = host.state_dir().to_path_buf();
    let svc = || {
        view(vec![service(
            "svcecho",
            7070,
            80,
            &[("task-echo", "10.0.1.2")],
        )])
    };
    let ns = host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            let ns = dp
                .attach_task(&attach_req("task-echo", "10.0.1.2/24"))
                .await
                .expect("attach");
            dp.apply_view(&svc()).await.expect("view");
            ns
        }
    });
    host.spawn_in(&ns, &["busybox", "nc", "-ll", "-p", "80", "-e", "cat"]);
    assert!(
        eventually(Duration::from_secs(5), || listening(&ns, 80).then_some(())).is_some(),
        "echo backend did not start"
    );
    let index = ifindex(&host.links(), "vttask-echo");

    // An open connection through the published port, held across the restart.
    let client_ns = std::fs::File::open(host.client.path()).expect("client ns");
    let conn = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&client_ns),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .expect("setns");
            let addr: SocketAddr = format!("{HOST_ADDR}:7070").parse().expect("addr");
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect")
        })
        .join()
        .expect("connect thread")
    });
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut echo = |conn: &TcpStream, text: &str| {
        (&*conn)
            .write_all(format!("{text}\n").as_bytes())
            .expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        line.trim().to_string()
    };
    assert_eq!(echo(&conn, "before"), "before");

    // A new netd over the same state dir: adopts, then gets the same view.
    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("reopen");
            let listed = dp.list_attachments().await;
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].task_id, "task-echo");
            assert_eq!(listed[0].netns_path, ns.to_string_lossy());
            dp.apply_view(&svc()).await.expect("view after restart");
            dp.attach_task(&attach_req("task-echo", "10.0.1.2/24"))
                .await
                .expect("re-attach");
        }
    });
    assert_eq!(
        echo(&conn, "after"),
        "after",
        "connection broken by the restart"
    );
    assert_eq!(
        ifindex(&host.links(), "vttask-echo"),
        index,
        "veth recreated by the restart"
    );
    drop(conn);
    // New connections still reach the backend.
    let fresh = in_ns(&host.client.path(), || {
        let addr: SocketAddr = format!("{HOST_ADDR}:7070").parse().expect("addr");
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .expect("connect after restart");
        conn.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        (&conn).write_all(b"fresh\n").expect("write");
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).expect("read");
        line
    });
    assert_eq!(fresh.trim(), "fresh");
}

#[test]
fn an_address_handed_to_a_new_task_answers_at_once() {
    // A rolling update stops a task and gives its address to the
    // replacement: the node's neighbour cache still holds the old task's
    // entry, which must stay right for the new one.
    let host = Host::new("reuse");
    let state = host.state_dir().to_path_buf();
    let attach = |task: &'static str, address: &'static str| {
        let state = state.clone();
        host.block_on(move || async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.attach_task(&attach_req(task, address))
                .await
                .expect("attach")
        })
    };
    // Another task keeps the bridge up (with no port left, the kernel
    // would flush the bridge's neighbour entries and hide the problem).
    attach("task-stay-0003", "10.0.1.9/24");
    let ping = ["busybox", "ping", "-c1", "-W2", "10.0.1.5"];
    let old = attach("task-old-0001", "10.0.1.5/24");
    assert!(
        succeeds_in(&host.ns.path(), &ping),
        "the first task does not answer"
    );
    host.block_on(|| {
        let state = state.clone();
        async move {
            let dp = Dataplane::open(&state).await.expect("open");
            dp.detach_task("task-old-0001").await.expect("detach");
        }
    });
    assert!(!old.exists());
    let new = attach("task-new-0002", "10.0.1.5/24");
    assert!(
        succeeds_in(&host.ns.path(), &ping),
        "the node cannot reach the new holder of 10.0.1.5"
    );
    let links = links_in(&new);
    let eth0 = link(&links, "eth0").expect("eth0");
    assert_eq!(
        eth0["address"], "02:42:0a:00:01:05",
        "the MAC follows the address"
    );
    // The bridge keeps its own MAC while ports come and go (one that
    // followed its ports would leave the tasks' cached gateway stale).
    let links = host.links();
    let bridge = link(&links, "sh-netalpha00").expect("bridge");
    assert_eq!(bridge["address"], "02:42:0a:00:01:01");
}
