//! Test harness: throwaway "host" network namespaces, each with its own netd
//! state dir, and helpers to run code and commands inside namespaces. The
//! harness (not netd) may use `ip`. Everything made here is removed on drop,
//! also when a test fails.

#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use shoal_proto::dispatcher::v1::{Backend, NetworkView, ServiceEndpoints};
use shoal_proto::types::v1::{
    Meta, Network, NetworkAttachment, PortConfig, PortProtocol, PublishMode,
};

pub fn must_be_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests need root (network namespaces, nftables): \
         run the suite as root, as CI does (./scripts/test)"
    );
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn ip(ns: &str, args: &[&str]) -> Output {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// A named namespace under /run/netns, deleted on drop.
pub struct NamedNs {
    pub name: String,
}

impl NamedNs {
    pub fn new(tag: &str) -> NamedNs {
        let name = format!("shoalt-{}-{tag}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = NamedNs { name };
        ip(&ns.name, &["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for NamedNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A test host: a namespace standing for a node, a netd state dir, and a
/// client namespace wired to the host (client 192.168.77.2, host 192.168.77.1).
pub struct Host {
    pub ns: NamedNs,
    pub client: NamedNs,
    pub state: tempfile::TempDir,
    pub children: Vec<Child>,
}

pub const HOST_ADDR: &str = "192.168.77.1";

impl Host {
    pub fn new(tag: &str) -> Host {
        must_be_root();
        let ns = NamedNs::new(&format!("{tag}-h"));
        let client = NamedNs::new(&format!("{tag}-c"));
        let state = tempfile::Builder::new()
            .prefix("shoal-netd-test-")
            .tempdir()
            .expect("state dir");
        let host = Host {
            ns,
            client,
            state,
            children: Vec::new(),
        };
        ip(
            &host.ns.name,
            &[
                "link",
                "add",
                "uplink",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.client.name,
            ],
        );
        ip(
            &host.ns.name,
            &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", "uplink"],
        );
        ip(&host.ns.name, &["link", "set", "uplink", "up"]);
        ip(
            &host.client.name,
            &["addr", "add", "192.168.77.2/24", "dev", "eth0"],
        );
        ip(&host.client.name, &["link", "set", "eth0", "up"]);
        ip(
            &host.client.name,
            &["route", "add", "default", "via", HOST_ADDR],
        );
        host
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Runs `f` on a thread inside the host namespace, on its own runtime:
    /// what netd would see if it ran on that node.
    pub fn block_on<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        in_ns(&self.ns.path(), move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
    }

    /// Starts a long-running command inside a namespace; killed on drop.
    pub fn spawn_in(&mut self, netns: &Path, args: &[&str]) {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        self.children.push(child);
    }

    /// The host's nft table as JSON objects, or None without a table.
    pub fn nft_table(&self) -> Option<Vec<serde_json::Value>> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.name,
                "nft",
                "-j",
                "list",
                "table",
                "inet",
                "shoal",
            ])
            .output()
            .expect("nft");
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft json");
        Some(v["nftables"].as_array().cloned().unwrap_or_default())
    }

    pub fn nft_rules(&self) -> Vec<serde_json::Value> {
        self.nft_table()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.get("rule").cloned())
            .collect()
    }

    /// Links of the host namespace (ip -j link).
    pub fn links(&self) -> Vec<serde_json::Value> {
        links_in(&self.ns.path())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Unmount whatever netd mounted under the state dir, deepest first.
        let root = self.state.path().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Runs `f` on a new thread inside the namespace at `path`.
pub fn in_ns<F, T>(path: &Path, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let file = std::fs::File::open(path).expect("open namespace");
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    })
}

pub fn links_in(netns: &Path) -> Vec<serde_json::Value> {
    let out = run(Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-j", "addr", "show"]));
    serde_json::from_slice(&out.stdout).expect("ip -j json")
}

pub fn link<'a>(links: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    links.iter().find(|l| l["ifname"] == name)
}

pub fn ipv4_addrs(link: &serde_json::Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["family"] == "inet")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a command inside a namespace and returns whether it succeeded.
pub fn succeeds_in(netns: &Path, args: &[&str]) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Connects from inside `netns` to `addr`, sends `send`, and returns all it
/// reads until the peer closes (or `read_for` passes).
pub fn tcp_exchange(netns: &Path, addr: SocketAddr, send: &str) -> std::io::Result<String> {
    in_ns(netns, || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(send.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` in `netns`.
pub fn listening(netns: &Path, port: u16) -> bool {
    in_ns(netns, || TcpStream::connect(("127.0.0.1", port)).is_ok())
}

/// Whether a TCP socket listens on `port` in `netns` (without connecting,
/// for ports the firewall refuses).
pub fn tcp_listener_in(netns: &Path, port: u16) -> bool {
    let out = run(Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ss", "-Hltn", &format!("sport = :{port}")]));
    !out.stdout.is_empty()
}

/// Retries `f` until it returns Some or `within` passes.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Spawns `f` on a thread inside the namespace at `path`.
pub fn spawn_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(path).expect("open namespace");
    std::thread::spawn(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

// ---------------------------------------------------------------- fixtures

pub const NET_ID: &str = "netalpha0001";
pub const VNI: u32 = 4101;
pub const SUBNET: &str = "10.0.1.0/24";
pub const GATEWAY: &str = "10.0.1.1";

pub fn attachment(address: &str) -> NetworkAttachment {
    NetworkAttachment {
        network_id: NET_ID.into(),
        network_name: "alpha".into(),
        vni: VNI,
        address: address.into(),
        gateway: GATEWAY.into(),
        subnet: SUBNET.into(),
    }
}

pub fn network() -> Network {
    Network {
        meta: Some(Meta {
            id: NET_ID.into(),
            ..Default::default()
        }),
        vni: VNI,
        subnet: SUBNET.into(),
        gateway: GATEWAY.into(),
        ..Default::default()
    }
}

pub fn service(
    id: &str,
    published: u32,
    target: u32,
    backends: &[(&str, &str)],
) -> ServiceEndpoints {
    ServiceEndpoints {
        service_id: id.into(),
        service_name: format!("svc-{id}"),
        ports: vec![PortConfig {
            name: "web".into(),
            protocol: PortProtocol::Tcp as i32,
            target_port: target,
            published_port: published,
            publish_mode: PublishMode::Ingress as i32,
        }],
        backends: backends
            .iter()
            .map(|(task, addr)| Backend {
                task_id: (*task).into(),
                node_id: "node1".into(),
                address: (*addr).into(),
                network_id: NET_ID.into(),
                hostname: (*task).into(),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn view(services: Vec<ServiceEndpoints>) -> NetworkView {
    NetworkView {
        networks: vec![network()],
        services,
        node_id: "node1".into(),
        ..Default::default()
    }
}
