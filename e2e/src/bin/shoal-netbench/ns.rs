//! Running the measurements inside network namespaces: the lab's test
//! hosts (`/run/netns/<netns>`), the tasks' (netd keeps one per task
//! under its state dir) and the ends of the bare kernel path (`floor.rs`,
//! `/proc/<pid>/fd/<fd>`). Our own probes run on threads that join the
//! namespace (a socket stays in the namespace it was made in); iperf3 runs
//! through `nsenter --net`. Nothing here changes a namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Runs `f` on a fresh thread that has joined the network namespace at `ns`.
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if !ns.exists() {
        bail!("no network namespace at {}", ns.display());
    }
    shoal_e2e::probe::in_netns(ns, f)
}

/// Bytes of one request and of one response.
const MESSAGE: usize = 64;
/// Round trips made before the timed ones (connection warm-up).
const WARM_UP: usize = 100;

/// Where one measurement's traffic goes: a client in one namespace, a
/// server in another, and the address the client dials (which may be a
/// VIP or a published port that leads to the server).
#[derive(Debug, Clone)]
pub struct Route {
    pub client_ns: PathBuf,
    pub server_ns: PathBuf,
    pub addr: IpAddr,
    /// iperf3's port as the client dials it.
    pub iperf_port: u16,
    /// The request/response server's port as the client dials it.
    pub rr_port: u16,
}

/// `n` timed request/response round trips of [`MESSAGE`] bytes over one
/// TCP connection (TCP_NODELAY on both ends), after a warm-up: a server
/// thread in the server's namespace listens on `listen_port` for this one
/// connection and echoes; a client thread in the client's namespace dials.
pub fn round_trips(path: &Route, listen_port: u16, n: usize) -> Result<Vec<Duration>> {
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let server = s.spawn(move || {
            in_netns(&path.server_ns, move || {
                let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, listen_port))
                    .with_context(|| format!("listen on port {listen_port}"))?;
                listener.set_nonblocking(true)?;
                let _ = ready_tx.send(());
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut conn = loop {
                    match listener.accept() {
                        Ok((conn, _)) => break conn,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if Instant::now() > deadline {
                                bail!("no connection reached the server within 10 s");
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                drop(listener);
                conn.set_nonblocking(false)?;
                conn.set_nodelay(true)?;
                conn.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = [0u8; MESSAGE];
                loop {
                    match conn.read_exact(&mut buf) {
                        Ok(()) => conn.write_all(&buf)?,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
            })
        });
        let client = in_netns(&path.client_ns, move || {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| anyhow!("the server did not start listening"))?;
            let target = SocketAddr::new(path.addr, path.rr_port);
            let mut conn = TcpStream::connect_timeout(&target, Duration::from_secs(3))
                .with_context(|| format!("connect to {target}"))?;
            conn.set_nodelay(true)?;
            conn.set_read_timeout(Some(Duration::from_secs(3)))?;
            let out = [0x5au8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            let mut rtts = Vec::with_capacity(n);
            for i in 0..WARM_UP + n {
                let started = Instant::now();
                conn.write_all(&out)?;
                conn.read_exact(&mut back)
                    .with_context(|| format!("round trip {i} to {target}"))?;
                if i >= WARM_UP {
                    rtts.push(started.elapsed());
                }
            }
            Ok(rtts)
        });
        let served = server
            .join()
            .map_err(|_| anyhow!("server thread panicked"))?;
        let rtts = client?;
        served?;
        Ok(rtts)
    })
}

/// The `q` quantile (0..=1) of some durations, in microseconds.
pub fn quantile_us(xs: &[Duration], q: f64) -> f64 {
    let mut us: Vec<f64> = xs.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(|a, b| a.total_cmp(b));
    if us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * us.len() as f64).ceil() as usize;
    us[rank.clamp(1, us.len()) - 1]
}

/// Fails unless `iperf3` and `nsenter` can be run.
pub fn check_tools() -> Result<()> {
    let iperf = Command::new("iperf3").arg("--version").output();
    if !iperf.is_ok_and(|o| o.status.success()) {
        bail!(
            "iperf3 not found: shoal-netbench measures throughput with Debian's iperf3 \
             (install it with ./scripts/install-deps, or apt-get install iperf3)"
        );
    }
    let nsenter = Command::new("nsenter").arg("--version").output();
    if !nsenter.is_ok_and(|o| o.status.success()) {
        bail!("nsenter not found (Debian's util-linux)");
    }
    Ok(())
}

/// An `iperf3 -s` inside a namespace, stopped when dropped.
pub struct Iperf3Server {
    child: Child,
    what: String,
}

impl Iperf3Server {
    /// Starts it and waits until it listens on `port`.
    pub fn start(ns: &Path, port: u16, what: &str) -> Result<Iperf3Server> {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["iperf3", "-s", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn nsenter iperf3 -s")?;
        let mut server = Iperf3Server {
            child,
            what: what.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !listens(server.child.id(), port) {
            if let Some(status) = server.child.try_wait()? {
                bail!("iperf3 -s in {what} exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("iperf3 -s in {what} not listening on {port} after 5 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("iperf3 -s in {} exited: {status}", server.what);
        }
        Ok(server)
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid`'s network namespace has a TCP socket listening
/// on `port` (its `/proc/<pid>/net/tcp*` shows that namespace's sockets).
fn listens(pid: u32, port: u16) -> bool {
    let local = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&local) && cols[3] == "0A"
            })
        })
    })
}

/// One iperf3 TCP test of `secs` seconds from the client's namespace to
/// `addr:port`; the receiver's rate in Gbit/s.
pub fn iperf3(path: &Route, secs: u32) -> Result<f64> {
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", path.client_ns.display()))
        .args(["iperf3", "-c", &path.addr.to_string()])
        .args(["-p", &path.iperf_port.to_string()])
        .args(["-t", &secs.to_string(), "-J", "--connect-timeout", "3000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn nsenter iperf3 -c")?;
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs) + 20);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("iperf3 -c {}:{} did not finish", path.addr, path.iperf_port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3 -c {}:{}: {error}", path.addr, path.iperf_port);
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .ok_or_else(|| anyhow!("iperf3 report without end.sum_received"))
}
