//! Looking at the cluster from inside a task: its network namespace (netd
//! keeps one per task, under the host's netd state dir), a DNS query to
//! the embedded server its resolv.conf names, HTTP through it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nix::libc;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};

use shoal_proto::control::v1::{ListNodesRequest, ListServicesRequest, ListTasksRequest};
use shoal_proto::types::v1::Task;

use crate::lab::Lab;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The tasks of `service` that should run, as the manager (m1) lists them.
pub fn service_tasks(lab: &Lab, service: &str) -> Vec<Task> {
    block_on(async {
        let mut client = lab.control_client("m1").await.expect("control client");
        let services = client
            .list_services(ListServicesRequest {
                names: vec![service.to_string()],
                labels: vec![],
            })
            .await
            .expect("list services")
            .into_inner()
            .services;
        let id = services
            .first()
            .and_then(|s| s.meta.as_ref())
            .map(|m| m.id.clone())
            .unwrap_or_else(|| panic!("no service {service}"));
        client
            .list_tasks(ListTasksRequest {
                service_ids: vec![id],
                only_desired_running: true,
                ..Default::default()
            })
            .await
            .expect("list tasks")
            .into_inner()
            .tasks
    })
}

/// Node id -> hostname (the lab host: m1, w1, ...).
pub fn node_hostnames(lab: &Lab) -> BTreeMap<String, String> {
    block_on(async {
        let mut client = lab.control_client("m1").await.expect("control client");
        client
            .list_nodes(ListNodesRequest::default())
            .await
            .expect("list nodes")
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| {
                let id = n.meta.map(|m| m.id).unwrap_or_default();
                (id, n.description.map(|d| d.hostname).unwrap_or_default())
            })
            .collect()
    })
}

/// Where netd of `host` keeps the network namespace of task `task_id`.
pub fn task_netns(lab: &Lab, host: &str, task_id: &str) -> PathBuf {
    lab.root().join(host).join("netd/netns").join(task_id)
}

/// The global IPv4 addresses inside the network namespace of process `pid`.
pub fn addresses_in(pid: u32) -> Vec<Ipv4Addr> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .collect()
}

/// Runs `f` on a thread inside the network namespace at `path`.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open network namespace {}: {e}", path.display()));
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns into the task's network namespace");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    })
}

/// What a DNS server answered to an A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: ResponseCode,
    pub addrs: Vec<Ipv4Addr>,
    /// How long the answer took.
    pub took: Duration,
}

/// Asks `server` (port 53) for the A records of `name` over UDP, from the
/// calling thread's namespace; waits at most `timeout`.
pub fn lookup(server: Ipv4Addr, name: &str, timeout: Duration) -> std::io::Result<Answer> {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| std::io::Error::other(format!("bad name {name:?}: {e}")))?;
    query.add_query(Query::query(fqdn, RecordType::A));
    let packet = query
        .to_vec()
        .map_err(|e| std::io::Error::other(format!("encode the query: {e}")))?;
    let socket = UdpSocket::bind(("0.0.0.0", 0))?;
    socket.set_read_timeout(Some(timeout))?;
    let started = Instant::now();
    socket.send_to(&packet, SocketAddr::new(server.into(), 53))?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf)?;
    let took = started.elapsed();
    let reply = Message::from_vec(&buf[..n])
        .map_err(|e| std::io::Error::other(format!("decode the answer: {e}")))?;
    let addrs = reply
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(A(a)) => Some(a),
            _ => None,
        })
        .collect();
    Ok(Answer {
        code: reply.metadata.response_code,
        addrs,
        took,
    })
}

/// Spawns `f` on a thread inside the network namespace at `path`.
fn spawn_in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open network namespace {}: {e}", path.display()));
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("setns into the namespace");
        f()
    })
}

/// Every frame seen on an interface (both directions) while it runs,
/// through an AF_PACKET socket opened inside the interface's namespace.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Capture {
    pub fn start(ns: &Path, ifname: &str) -> Capture {
        let ifname = ifname.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            spawn_in_netns(ns, move || {
                let proto = (libc::ETH_P_ALL as u16).to_be();
                // SAFETY: plain socket calls on a descriptor this thread owns.
                unsafe {
                    let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32);
                    assert!(
                        fd >= 0,
                        "AF_PACKET socket: {}",
                        std::io::Error::last_os_error()
                    );
                    let name = std::ffi::CString::new(ifname.as_str()).unwrap();
                    let index = libc::if_nametoindex(name.as_ptr());
                    assert!(index > 0, "no interface {ifname}");
                    let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                    addr.sll_family = libc::AF_PACKET as u16;
                    addr.sll_protocol = proto;
                    addr.sll_ifindex = index as i32;
                    let rc = libc::bind(
                        fd,
                        &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
                    let timeout = libc::timeval {
                        tv_sec: 0,
                        tv_usec: 50_000,
                    };
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        &timeout as *const libc::timeval as *const libc::c_void,
                        std::mem::size_of::<libc::timeval>() as u32,
                    );
                    ready_tx.send(()).unwrap();
                    let mut frames = Vec::new();
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                        if n > 0 {
                            frames.push(buf[..n as usize].to_vec());
                        }
                    }
                    // Frames still queued when told to stop.
                    loop {
                        let n = libc::recv(
                            fd,
                            buf.as_mut_ptr() as *mut libc::c_void,
                            buf.len(),
                            libc::MSG_DONTWAIT,
                        );
                        if n <= 0 {
                            break;
                        }
                        frames.push(buf[..n as usize].to_vec());
                    }
                    libc::close(fd);
                    frames
                }
            })
        };
        ready_rx.recv().expect("capture ready");
        Capture { stop, thread }
    }

    pub fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("capture thread")
    }
}

/// Whether any frame holds `needle`.
pub fn contains(frames: &[Vec<u8>], needle: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.windows(needle.len()).any(|w| w == needle))
}

/// Every regular file under `dir` (symlinks not followed) that holds
/// `marker`: where a value a test gave the cluster ended up on disk.
pub fn files_holding(dir: &Path, marker: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(files_holding(&path, marker));
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}
