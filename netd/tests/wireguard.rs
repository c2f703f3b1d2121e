//! The WireGuard mesh against the real kernel: two "nodes" (network
//! namespaces joined by a veth pair, IPv4 underlay) each with a mesh,
//! peered with each other (root only; userspace boringtun devices, so the
//! tests mean the same on kernels with and without WireGuard).

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use shoal_e2e::probe::{contains, Capture};
use shoal_netd::wireguard::{
    mesh_addr, Backend, BackendChoice, Mesh, MeshConfig, MeshPeer, NodeKey, DEFAULT_LISTEN_PORT,
    DEVICE_NAME, USERSPACE_THREADS, USERSPACE_THREAD_NAME,
};

/// Tests that run meshes in this process take turns: they count the
/// device threads of the process.
static IN_PROCESS_MESHES: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    IN_PROCESS_MESHES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const A_UNDERLAY: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const B_UNDERLAY: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

/// Two node namespaces joined by a veth pair (`wgu0` in a, `wgu1` in b);
/// deleting the namespaces on drop removes the pair too.
struct Underlay {
    a: NamedNs,
    b: NamedNs,
}

impl Underlay {
    fn new(tag: &str) -> Underlay {
        must_be_root();
        let u = Underlay {
            a: NamedNs::new(&format!("{tag}-a")),
            b: NamedNs::new(&format!("{tag}-b")),
        };
        ip(
            &u.a.name,
            &[
                "link", "add", "wgu0", "type", "veth", "peer", "name", "wgu1", "netns", &u.b.name,
            ],
        );
        ip(
            &u.a.name,
            &["addr", "add", "192.168.77.1/24", "dev", "wgu0"],
        );
        ip(
            &u.b.name,
            &["addr", "add", "192.168.77.2/24", "dev", "wgu1"],
        );
        ip(&u.a.name, &["link", "set", "wgu0", "up"]);
        ip(&u.b.name, &["link", "set", "wgu1", "up"]);
        u
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn mesh_in(ns: &NamedNs) -> Mesh {
    let file = std::fs::File::open(ns.path()).expect("open namespace");
    Mesh::new(file).with_backend(BackendChoice::Userspace)
}

fn config(node: &str, key: &NodeKey, peers: Vec<MeshPeer>) -> MeshConfig {
    MeshConfig {
        node_id: node.into(),
        key: key.clone(),
        listen_port: DEFAULT_LISTEN_PORT,
        underlay_mtu: 1500,
        peers,
    }
}

fn peer(node: &str, key: &NodeKey, underlay: Ipv4Addr) -> MeshPeer {
    MeshPeer {
        node_id: node.into(),
        public_key: key.public_key(),
        endpoint: SocketAddr::new(IpAddr::V4(underlay), DEFAULT_LISTEN_PORT),
    }
}

/// Threads of this process called like boringtun's.
fn device_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map(|c| c.trim() == USERSPACE_THREAD_NAME)
                .unwrap_or(false)
        })
        .count()
}

/// Sends `payload` from `from` (in namespace `from_ns`) to a UDP echo
/// server on `to` (in `to_ns`), up to `tries` times; whether the echo came
/// back.
fn udp_echo(
    from_ns: &Path,
    from: IpAddr,
    to_ns: &Path,
    to: SocketAddr,
    payload: &[u8],
    tries: usize,
) -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = {
        let stop = stop.clone();
        spawn_in(to_ns, move || {
            let sock = UdpSocket::bind(to).expect("bind echo server");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], peer);
                }
            }
        })
    };
    ready_rx.recv().expect("echo server ready");
    let payload = payload.to_vec();
    let echoed = spawn_in(from_ns, move || {
        let sock = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind client");
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for _ in 0..tries {
            sock.send_to(&payload, to).expect("send");
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n] == payload[..] {
                    return true;
                }
            }
        }
        false
    })
    .join()
    .expect("client thread");
    stop.store(true, Ordering::Relaxed);
    server.join().expect("echo server thread");
    echoed
}

/// Ethernet frames carrying IPv4 UDP from or to `port`.
fn udp_frames(frames: &[Vec<u8>], port: u16) -> usize {
    frames
        .iter()
        .filter(|f| {
            if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 17 {
                return false;
            }
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let udp = &f[14 + ihl..];
            udp.len() >= 4
                && (u16::from_be_bytes([udp[0], udp[1]]) == port
                    || u16::from_be_bytes([udp[2], udp[3]]) == port)
        })
        .count()
}

fn has_device(ns: &NamedNs) -> bool {
    succeeds_in(&ns.path(), &["ip", "link", "show", DEVICE_NAME])
}

#[test]
fn two_nodes_talk_over_the_mesh_and_nothing_readable_crosses_the_underlay() {
    let _turn = turn();
    let started = Instant::now();
    let u = Underlay::new("wgmesh");
    let rt = runtime();
    let threads_before = device_threads();
    let (key_a, key_b) = (NodeKey::generate(), NodeKey::generate());
    let (addr_a, addr_b) = (mesh_addr("node-a"), mesh_addr("node-b"));
    let bad = MeshPeer {
        node_id: "node-bad".into(),
        public_key: "this-is-no-key".into(),
        endpoint: "192.168.77.3:51820".parse().unwrap(),
    };
    let cfg_a = config(
        "node-a",
        &key_a,
        vec![bad.clone(), peer("node-b", &key_b, B_UNDERLAY)],
    );
    let cfg_b = config("node-b", &key_b, vec![peer("node-a", &key_a, A_UNDERLAY)]);
    let mesh_a = mesh_in(&u.a);
    let mesh_b = mesh_in(&u.b);

    let report_a = rt.block_on(mesh_a.ensure(&cfg_a)).expect("ensure a");
    let report_b = rt.block_on(mesh_b.ensure(&cfg_b)).expect("ensure b");
    assert_eq!(report_a.backend, Backend::Userspace);
    assert_eq!(report_a.address, addr_a);
    assert_eq!(report_a.mtu, 1420);
    assert_eq!(report_a.public_key, key_a.public_key());
    assert_eq!(report_a.added, vec!["node-b".to_string()]);
    assert_eq!(report_b.added, vec!["node-a".to_string()]);
    // The bad key is refused by name; the good peer is configured anyway.
    assert_eq!(report_a.refused.len(), 1, "{:?}", report_a.refused);
    assert_eq!(report_a.refused[0].node_id, "node-bad");
    let why = report_a.refused[0].error.to_string();
    assert!(
        why.contains("node-bad") && why.contains("this-is-no-key"),
        "{why}"
    );

    // The device: MTU, up, its /64, the /64 route into it.
    for (ns, addr) in [(&u.a, addr_a), (&u.b, addr_b)] {
        let links = links_in(&ns.path());
        let wg = link(&links, DEVICE_NAME).expect("mesh device");
        assert_eq!(wg["mtu"], 1420);
        assert!(
            wg["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{wg}"
        );
        let v6: Vec<String> = wg["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["family"] == "inet6" && i["scope"] == "global")
            .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
            .collect();
        assert_eq!(v6, vec![format!("{addr}/64")]);
        let routes = run(Command::new("ip").args([
            "-n",
            &ns.name,
            "-6",
            "route",
            "show",
            "dev",
            DEVICE_NAME,
        ]))
        .stdout;
        assert!(
            String::from_utf8_lossy(&routes).contains("fdc5:5a1::/64"),
            "{}",
            String::from_utf8_lossy(&routes)
        );
    }
    assert_eq!(device_threads() - threads_before, 2 * USERSPACE_THREADS);
    // boringtun made no UAPI socket file (netd speaks to it over a pair).
    assert!(!Path::new("/run/wireguard/shoal-wg.sock").exists());

    // (a) the mesh carries traffic both ways, (b) never readable on the
    // underlay.
    let marker = format!("shoal-mesh-marker-{}", std::process::id());
    let capture = Capture::start(&u.a.path(), "wgu0");
    assert!(
        udp_echo(
            &u.a.path(),
            IpAddr::V6(addr_a),
            &u.b.path(),
            SocketAddr::new(IpAddr::V6(addr_b), 7001),
            marker.as_bytes(),
            10,
        ),
        "no UDP echo from node b's mesh address"
    );
    assert!(
        udp_echo(
            &u.b.path(),
            IpAddr::V6(addr_b),
            &u.a.path(),
            SocketAddr::new(IpAddr::V6(addr_a), 7002),
            marker.as_bytes(),
            10,
        ),
        "no UDP echo from node a's mesh address"
    );
    let frames = capture.finish();
    assert!(
        udp_frames(&frames, DEFAULT_LISTEN_PORT) >= 6,
        "the mesh traffic should cross wgu0 as WireGuard UDP: {} frames, {} of them WireGuard",
        frames.len(),
        udp_frames(&frames, DEFAULT_LISTEN_PORT)
    );
    assert!(
        !contains(&frames, marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    // The same capture sees the marker when it goes over the underlay
    // itself.
    let capture = Capture::start(&u.a.path(), "wgu0");
    assert!(udp_echo(
        &u.a.path(),
        IpAddr::V4(A_UNDERLAY),
        &u.b.path(),
        SocketAddr::new(IpAddr::V4(B_UNDERLAY), 7003),
        marker.as_bytes(),
        5,
    ));
    let frames = capture.finish();
    assert!(
        contains(&frames, marker.as_bytes()),
        "the capture missed the plain marker"
    );

    // (c) ensure again with the same config: nothing sent to the device,
    // the session stays (its handshake does not get younger).
    std::thread::sleep(Duration::from_millis(1200));
    let peer_of = |mesh: &Mesh, key: &NodeKey| {
        let status = rt.block_on(mesh.status()).expect("status").expect("device");
        status
            .peers
            .into_iter()
            .find(|p| p.public_key == key.public_key())
    };
    let before = peer_of(&mesh_a, &key_b).expect("peer b on a");
    let age_before = before.handshake_age.expect("a session with b");
    assert!(age_before >= Duration::from_secs(1), "{age_before:?}");
    let again_a = rt.block_on(mesh_a.ensure(&cfg_a)).expect("ensure a again");
    let again_b = rt.block_on(mesh_b.ensure(&cfg_b)).expect("ensure b again");
    for r in [&again_a, &again_b] {
        assert!(
            r.added.is_empty() && r.updated.is_empty() && r.removed.is_empty(),
            "{r:?}"
        );
    }
    assert_eq!(again_a.refused.len(), 1);
    assert!(udp_echo(
        &u.a.path(),
        IpAddr::V6(addr_a),
        &u.b.path(),
        SocketAddr::new(IpAddr::V6(addr_b), 7004),
        b"same session",
        3,
    ));
    let after = peer_of(&mesh_a, &key_b).expect("peer b on a");
    let age_after = after.handshake_age.expect("still a session with b");
    assert!(
        age_after >= age_before,
        "a new handshake happened: {age_before:?} then {age_after:?}"
    );
    assert!(after.tx_bytes > before.tx_bytes && after.rx_bytes > before.rx_bytes);

    // Adding and removing another peer leaves b's session alone too.
    let mut three = cfg_a.clone();
    let key_c = NodeKey::generate();
    three
        .peers
        .push(peer("node-c", &key_c, Ipv4Addr::new(192, 168, 77, 3)));
    let r = rt.block_on(mesh_a.ensure(&three)).expect("ensure with c");
    assert_eq!(r.added, vec!["node-c".to_string()]);
    assert!(r.updated.is_empty() && r.removed.is_empty(), "{r:?}");
    let r = rt
        .block_on(mesh_a.ensure(&cfg_a))
        .expect("ensure without c");
    assert_eq!(r.removed, vec![key_c.public_key()]);
    assert!(r.added.is_empty() && r.updated.is_empty(), "{r:?}");
    assert!(udp_echo(
        &u.a.path(),
        IpAddr::V6(addr_a),
        &u.b.path(),
        SocketAddr::new(IpAddr::V6(addr_b), 7008),
        b"still the same session",
        3,
    ));
    let age = peer_of(&mesh_a, &key_b).unwrap().handshake_age.unwrap();
    assert!(age >= age_before, "{age_before:?} then {age:?}");

    // A changed endpoint is set (boringtun: the peer is replaced, so it
    // starts a new session), and a change back works again.
    let mut moved = cfg_a.clone();
    moved.peers[1].endpoint.set_port(DEFAULT_LISTEN_PORT + 1);
    let r = rt.block_on(mesh_a.ensure(&moved)).expect("ensure moved");
    assert_eq!(r.updated, vec!["node-b".to_string()]);
    let endpoint = peer_of(&mesh_a, &key_b).unwrap().endpoint;
    assert_eq!(
        endpoint,
        Some(SocketAddr::new(
            IpAddr::V4(B_UNDERLAY),
            DEFAULT_LISTEN_PORT + 1
        ))
    );
    let r = rt.block_on(mesh_a.ensure(&cfg_a)).expect("ensure back");
    assert_eq!(r.updated, vec!["node-b".to_string()]);
    assert!(udp_echo(
        &u.a.path(),
        IpAddr::V6(addr_a),
        &u.b.path(),
        SocketAddr::new(IpAddr::V6(addr_b), 7005),
        b"after the move",
        10,
    ));

    // A peer the config no longer names is gone from the device, and the
    // mesh no longer reaches it.
    let alone = config("node-a", &key_a, Vec::new());
    let r = rt
        .block_on(mesh_a.ensure(&alone))
        .expect("ensure without b");
    assert_eq!(r.removed, vec![key_b.public_key()]);
    let status = rt.block_on(mesh_a.status()).unwrap().unwrap();
    assert!(status.peers.is_empty(), "{:?}", status.peers);
    assert!(!udp_echo(
        &u.a.path(),
        IpAddr::V6(addr_a),
        &u.b.path(),
        SocketAddr::new(IpAddr::V6(addr_b), 7006),
        b"to a removed peer",
        2,
    ));

    // (d) teardown leaves no link, no socket file, no thread; twice is fine.
    rt.block_on(mesh_a.teardown()).expect("teardown a");
    rt.block_on(mesh_b.teardown()).expect("teardown b");
    rt.block_on(mesh_a.teardown()).expect("teardown a again");
    assert!(!has_device(&u.a) && !has_device(&u.b));
    assert!(!Path::new("/run/wireguard/shoal-wg.sock").exists());
    assert_eq!(device_threads(), threads_before);
    assert!(rt.block_on(mesh_a.status()).unwrap().is_none());
    eprintln!("mesh scenario took {:?}", started.elapsed());
}

#[test]
fn a_lost_device_is_replaced_and_a_foreign_link_is_refused() {
    let _turn = turn();
    let u = Underlay::new("wgfix");
    let rt = runtime();
    let threads_before = device_threads();
    let key = NodeKey::generate();
    let cfg = config("node-a", &key, Vec::new());
    let mesh = mesh_in(&u.a);
    rt.block_on(mesh.ensure(&cfg)).expect("ensure");
    // Someone deletes the TUN device: the next ensure starts a new one
    // (and the old device's threads are gone).
    ip(&u.a.name, &["link", "del", DEVICE_NAME]);
    let r = rt
        .block_on(mesh.ensure(&cfg))
        .expect("ensure after the loss");
    assert_eq!(r.backend, Backend::Userspace);
    assert!(has_device(&u.a));
    assert_eq!(device_threads() - threads_before, USERSPACE_THREADS);
    let status = rt.block_on(mesh.status()).unwrap().unwrap();
    assert_eq!(status.public_key, Some(key.public_key()));
    assert_eq!(status.listen_port, DEFAULT_LISTEN_PORT);
    rt.block_on(mesh.teardown()).expect("teardown");
    assert_eq!(device_threads(), threads_before);

    // A link of another kind called shoal-wg is not netd's to take over.
    ip(&u.b.name, &["link", "add", DEVICE_NAME, "type", "bridge"]);
    let err = rt
        .block_on(mesh_in(&u.b).ensure(&config("node-b", &key, Vec::new())))
        .expect_err("a bridge has the name");
    assert!(err.to_string().contains("bridge"), "{err}");
    assert_eq!(device_threads(), threads_before);
}

#[test]
fn auto_uses_kernel_wireguard_exactly_where_the_kernel_has_it() {
    let _turn = turn();
    let u = Underlay::new("wgauto");
    let rt = runtime();
    let kernel_has_it = succeeds_in(
        &u.b.path(),
        &["ip", "link", "add", "wgprobe", "type", "wireguard"],
    );
    let file = std::fs::File::open(u.a.path()).unwrap();
    let mesh = Mesh::new(file);
    let key = NodeKey::generate();
    let r = rt
        .block_on(mesh.ensure(&config("node-a", &key, Vec::new())))
        .expect("ensure");
    let expected = if kernel_has_it {
        Backend::Kernel
    } else {
        Backend::Userspace
    };
    assert_eq!(r.backend, expected);
    rt.block_on(mesh.teardown()).expect("teardown");
    assert!(!has_device(&u.a));
}

#[test]
fn the_node_key_stays_on_the_node_private_and_survives_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = NodeKey::path(dir.path());
    let first = NodeKey::load_or_create(dir.path()).expect("make key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 44, "base64 of 32 bytes");
    assert_ne!(
        text.trim(),
        first.public_key(),
        "the file holds the private key"
    );
    let reloaded = NodeKey::load_or_create(dir.path()).expect("load key");
    assert_eq!(reloaded.public_key(), first.public_key());

    let rotated = NodeKey::rotate(dir.path()).expect("rotate");
    assert_ne!(rotated.public_key(), first.public_key());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        NodeKey::load_or_create(dir.path()).unwrap().public_key(),
        rotated.public_key()
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("wg-private.key")]);
}

const SIGNAL_CHILD_NS: &str = "SHOAL_WG_SIGNAL_CHILD_NS";

/// boringtun's device handles SIGINT and SIGTERM itself when it serves a
/// UAPI socket file; netd's does not, so netd's own handlers (tokio's, as
/// in main) still see both signals, and the mesh lives on until netd
/// tears it down. Run in a child process: the signals go to the process.
#[test]
fn sigint_and_sigterm_still_reach_netd_with_a_userspace_mesh() {
    must_be_root();
    let ns = NamedNs::new("wgsig");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "signal_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGNAL_CHILD_NS, ns.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let hit = line.contains(what);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    };
    let steps = (|| {
        if !wait_for("CHILD READY") {
            return Err("the child did not start its mesh");
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        if !wait_for("CHILD GOT SIGINT, MESH ALIVE") {
            return Err("SIGINT did not reach the child's handler with the mesh alive");
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        if !wait_for("CHILD GOT SIGTERM, MESH ALIVE") {
            return Err("SIGTERM did not reach the child's handler with the mesh alive");
        }
        if !wait_for("CHILD TORE DOWN") {
            return Err("the child did not tear its mesh down");
        }
        Ok(())
    })();
    if steps.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    if let Err(why) = steps {
        panic!("{why}; child said: {seen:#?}");
    }
    assert!(status.success(), "child: {status}; {seen:#?}");
    assert!(!has_device(&ns));
}

/// The child of the test above (run only by it).
#[test]
#[ignore = "run by sigint_and_sigterm_still_reach_netd_with_a_userspace_mesh"]
fn signal_child() {
    use tokio::signal::unix::{signal, SignalKind};
    let Some(ns) = std::env::var_os(SIGNAL_CHILD_NS) else {
        return;
    };
    let rt = runtime();
    rt.block_on(async move {
        let mesh = Mesh::new(std::fs::File::open(PathBuf::from(ns)).unwrap())
            .with_backend(BackendChoice::Userspace);
        let key = NodeKey::generate();
        let other = NodeKey::generate();
        let cfg = config("node-a", &key, vec![peer("node-b", &other, B_UNDERLAY)]);
        mesh.ensure(&cfg).await.expect("ensure");
        // As netd's main: the data plane first, then the handlers.
        let mut term = signal(SignalKind::terminate()).unwrap();
        let mut int = signal(SignalKind::interrupt()).unwrap();
        println!("CHILD READY");
        let limit = Duration::from_secs(15);
        tokio::time::timeout(limit, int.recv())
            .await
            .expect("no SIGINT");
        // The device answers and its threads run: boringtun did not take
        // the signal for itself.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(mesh.status().await.expect("status").is_some());
        assert_eq!(device_threads(), USERSPACE_THREADS);
        println!("CHILD GOT SIGINT, MESH ALIVE");
        tokio::time::timeout(limit, term.recv())
            .await
            .expect("no SIGTERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(mesh.status().await.expect("status").is_some());
        assert_eq!(device_threads(), USERSPACE_THREADS);
        println!("CHILD GOT SIGTERM, MESH ALIVE");
        mesh.teardown().await.expect("teardown");
        assert_eq!(device_threads(), 0);
        println!("CHILD TORE DOWN");
    });
}
