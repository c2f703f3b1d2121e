//! Looking at the cluster from inside a task: its network namespace (netd
//! keeps one per task, under the host's netd state dir), a DNS query to
//! the embedded server its resolv.conf names, HTTP through it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::lab::Lab;

/// Where netd of `host` keeps the network namespace of task `task_id`.
pub fn task_netns(lab: &Lab, host: &str, task_id: &str) -> PathBuf {
    lab.root().join(host).join("netd/netns").join(task_id)
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
