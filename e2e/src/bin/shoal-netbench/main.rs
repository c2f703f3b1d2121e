//! `shoal-netbench`: the data plane's figures on a lab of 3 nodes (m1, and
//! the workers w1 and w2), each against a baseline measured in the same run.
//!
//! Each round measures, over five paths from w1's side to w2's side:
//! - throughput: one iperf3 TCP test of a few seconds (Debian's iperf3, run
//!   inside the client's and the server's network namespaces);
//! - request latency: p50 and p99 of many 64-byte request/response round
//!   trips over one TCP connection (our own client and echo server, on
//!   threads inside the same namespaces);
//!
//! and the paths are:
//! - underlay: test host w1 to test host w2 directly (the baseline);
//! - bare kernel VXLAN: a namespace on w1 to one on w2 through a bridge
//!   and a VXLAN device on each host, made by netd's code with netd's
//!   parameters but with nothing of shoal in the path (see `floor.rs`):
//!   the kernel's own floor under the plain overlay, which is reported
//!   against it too;
//! - plain overlay: a task on w1 to a task on w2 over an overlay network;
//! - encrypted overlay: the same tasks over an `--opt encrypted` network
//!   (reported against plain);
//! - service VIP: the task on w1 to the service's VIP on the plain network,
//!   balanced to its one task on w2;
//! - routing mesh: the registry host (no shoal on it) to a published port
//!   on w1's address, which reaches the task on w2.
//!
//! The server-side task is a placeholder container (web:v1); iperf3 and
//! the echo server run in its namespace (netd keeps one per task), never in
//! the image. Then:
//! - discovery: a service on w2 scaled from 0 to 1 while a task on w1 polls
//!   every 10 ms: `tasks.<service>` at the embedded DNS server on its
//!   gateway, then a TCP connect to the address it got (and to the VIP);
//!   times from the scale request and from the container's start;
//! - netd's resident memory on w1 with 50 tasks there on 3 networks.
//!
//! Prints medians over the rounds and ratios; run it from a release build:
//! see the README's benchmarks section.

#[path = "../../bench/mod.rs"]
mod bench;
mod floor;
mod ns;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bench::{median, rss_mib, wait_running};
use clap::Parser;
use floor::KernelFloor;
use ns::{Iperf3Server, Route};
use shoal_e2e::lab::{self, Lab, LabConfig};
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::{
    CreateServiceRequest, GetServiceRequest, ListNodesRequest, ListTasksRequest,
    UpdateServiceRequest,
};
use shoal_proto::types::v1::{
    endpoint_spec, service_spec, ContainerSpec, EndpointSpec, PortConfig, PortProtocol,
    PublishMode, ReplicatedMode, RestartPolicy, Service, ServiceSpec, Task, TaskSpec, TaskState,
};
use tonic::transport::Channel;

/// Where the client side of every path is, and the server side.
const CLIENT_HOST: &str = "w1";
const SERVER_HOST: &str = "w2";
/// The mesh's client: a test host that runs nothing of shoal.
const OUTSIDE_HOST: &str = "reg";
/// Ports the servers listen on (iperf3, echo), in hosts and tasks alike.
const IPERF_PORT: u16 = 5201;
const RR_PORT: u16 = 7000;
/// The same, published through the routing mesh (other numbers: a
/// published port is taken on every node address, w2's too).
const MESH_IPERF_PORT: u16 = 25201;
const MESH_RR_PORT: u16 = 27000;
/// The port the `web` image serves on.
const WEB_PORT: u16 = 80;

const PLAIN: &str = "nb-plain";
const ENCRYPTED: &str = "nb-encrypted";
const THIRD: &str = "nb-third";
const SERVER: &str = "nb-server";
const CLIENT: &str = "nb-client";
const PROBE: &str = "nb-probe";

#[derive(Parser)]
#[command(
    about = "shoal network benchmark: overlay, encryption, VIP, mesh, discovery, netd memory"
)]
struct Args {
    /// Rounds of the throughput and latency measurements (medians over them).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of each iperf3 test.
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Timed request/response round trips per latency measurement.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Scale-ups of the discovery measurement.
    #[arg(long, default_value_t = 5)]
    discovery_rounds: usize,
    /// Tasks on w1 when netd's memory is read.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
}

/// The paths measured, in the order printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Underlay,
    KernelVxlan,
    Plain,
    Encrypted,
    Vip,
    Mesh,
}

const KINDS: [Kind; 6] = [
    Kind::Underlay,
    Kind::KernelVxlan,
    Kind::Plain,
    Kind::Encrypted,
    Kind::Vip,
    Kind::Mesh,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Underlay => "underlay, host w1 -> host w2",
            Kind::KernelVxlan => "bare kernel VXLAN, ns -> ns (no shoal)",
            Kind::Plain => "plain overlay, task -> task",
            Kind::Encrypted => "encrypted overlay, task -> task",
            Kind::Vip => "service VIP, task -> VIP -> task",
            Kind::Mesh => "routing mesh, reg -> w1:port -> task",
        }
    }

    /// What the path is compared with, and the target ratio if any.
    fn reference(self) -> Option<(Kind, Option<f64>)> {
        match self {
            Kind::Underlay => None,
            Kind::KernelVxlan => Some((Kind::Underlay, None)),
            Kind::Plain => Some((Kind::Underlay, Some(0.9))),
            Kind::Encrypted => Some((Kind::Plain, None)),
            Kind::Vip | Kind::Mesh => Some((Kind::Plain, Some(0.9))),
        }
    }
}

/// One path's figures over the rounds.
#[derive(Default)]
struct Figures {
    gbps: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    /// The first failure, if a measurement failed.
    error: Option<String>,
}

struct Discovery {
    /// Seconds after the scale request / after the container's start.
    resolve: Vec<(f64, f64)>,
    answer: Vec<(f64, f64)>,
    vip: Vec<(f64, f64)>,
}

struct Memory {
    idle_mib: f64,
    loaded_mib: f64,
    tasks: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ns::check_tools()?;
    let lab = Lab::up(LabConfig {
        managers: 1,
        workers: 2,
        replace: true,
        ..LabConfig::new("netbench")
    })
    .context("lab up")?;
    let (name, root) = (lab.name().to_string(), lab.root().to_path_buf());
    let result = run(&lab, &args);
    if !result.as_ref().is_ok_and(|failed| failed.is_empty()) {
        keep_logs(&lab);
    }
    let down = lab.down();
    let leaks = lab::leaks_at(&name, &root);
    let failed = result?;
    down.context("lab down")?;
    if !leaks.is_empty() {
        bail!("the lab left behind: {leaks:?}");
    }
    if !failed.is_empty() {
        bail!("not measured: {}", failed.join("; "));
    }
    Ok(())
}

/// Copies every host's logs to `$TMPDIR/shoal-lab-logs/<lab>/<host>/`
/// before the teardown takes them, for whoever reads a failure.
fn keep_logs(lab: &Lab) {
    let dest = std::env::temp_dir().join("shoal-lab-logs").join(lab.name());
    let _ = std::fs::remove_dir_all(&dest);
    for host in lab.hosts() {
        let Ok(entries) = std::fs::read_dir(lab.root().join(&host.name).join("logs")) else {
            continue;
        };
        let to = dest.join(&host.name);
        if std::fs::create_dir_all(&to).is_ok() {
            for entry in entries.flatten() {
                let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
            }
        }
    }
    eprintln!("lab {}: logs kept in {}", lab.name(), dest.display());
}

/// Measures and prints; returns the paths that could not be measured.
fn run(lab: &Lab, args: &Args) -> Result<Vec<String>> {
    let rt = tokio::runtime::Runtime::new()?;
    let mut client = rt.block_on(lab.control_client("m1"))?;
    let idle_mib = rss_mib(netd_pid(lab, CLIENT_HOST)?);
    for (net, encrypted) in [(PLAIN, false), (ENCRYPTED, true), (THIRD, false)] {
        let mut cmd = vec!["network", "create", "-d", "overlay"];
        if encrypted {
            cmd.extend(["--opt", "encrypted"]);
        }
        cmd.push(net);
        lab.shoal_ok(cmd)?;
    }
    let web = format!("{}/web:v1", lab.registry());
    let both = [PLAIN, ENCRYPTED];
    let ports = [(MESH_IPERF_PORT, IPERF_PORT), (MESH_RR_PORT, RR_PORT)];
    rt.block_on(async {
        create(
            &mut client,
            spec(SERVER, &web, 1, &both, SERVER_HOST, &ports),
        )
        .await?;
        create(&mut client, spec(CLIENT, &web, 1, &both, CLIENT_HOST, &[])).await?;
        wait_running(&mut client, SERVER, 1).await?;
        wait_running(&mut client, CLIENT, 1).await
    })?;
    let server = rt.block_on(running_task(&mut client, SERVER, SERVER_HOST))?;
    let client_task = rt.block_on(running_task(&mut client, CLIENT, CLIENT_HOST))?;
    let vip = rt.block_on(vip_on(&mut client, SERVER, PLAIN))?;
    let server_ns = task_netns(lab, SERVER_HOST, &server);
    let client_ns = task_netns(lab, CLIENT_HOST, &client_task);
    let host_ns =
        |h: &str| -> Result<PathBuf> { Ok(Path::new("/run/netns").join(&lab.host(h)?.netns)) };
    let mut routes: Vec<(Kind, Route)> = vec![
        (
            Kind::Underlay,
            Route {
                client_ns: host_ns(CLIENT_HOST)?,
                server_ns: host_ns(SERVER_HOST)?,
                addr: IpAddr::V4(lab.host_addr(SERVER_HOST)?),
                iperf_port: IPERF_PORT,
                rr_port: RR_PORT,
            },
        ),
        (
            Kind::Plain,
            task_route(&client_ns, &server_ns, address_on(&server, PLAIN)?),
        ),
        (
            Kind::Encrypted,
            task_route(&client_ns, &server_ns, address_on(&server, ENCRYPTED)?),
        ),
        (Kind::Vip, task_route(&client_ns, &server_ns, vip)),
        (
            Kind::Mesh,
            Route {
                client_ns: host_ns(OUTSIDE_HOST)?,
                server_ns: server_ns.clone(),
                addr: IpAddr::V4(lab.host_addr(CLIENT_HOST)?),
                iperf_port: MESH_IPERF_PORT,
                rr_port: MESH_RR_PORT,
            },
        ),
    ];
    // The kernel's own floor under the plain overlay, between the same
    // two hosts; a failure to build it is reported as that path's.
    let side = |h: &str| -> Result<floor::Host> {
        Ok(floor::Host {
            netns: host_ns(h)?,
            underlay: lab.host_addr(h)?,
        })
    };
    let (floor, floor_error) = match KernelFloor::build(&rt, side(CLIENT_HOST)?, side(SERVER_HOST)?)
    {
        Ok(floor) => {
            eprintln!("bare kernel VXLAN built, MTU {:?}", floor.mtus);
            (Some(floor), None)
        }
        Err(e) => {
            eprintln!("{}: {e:#}", Kind::KernelVxlan.label());
            (None, Some(format!("{e:#}")))
        }
    };
    if let Some(floor) = &floor {
        let route = Route {
            client_ns: floor.client_ns(),
            server_ns: floor.server_ns(),
            addr: floor.server_addr(),
            iperf_port: IPERF_PORT,
            rr_port: RR_PORT,
        };
        routes.insert(1, (Kind::KernelVxlan, route));
    }
    let figures = {
        // Stopped (dropped) before the services and the floor go.
        let _iperf_host = Iperf3Server::start(&host_ns(SERVER_HOST)?, IPERF_PORT, "host w2")?;
        let _iperf_task = Iperf3Server::start(&server_ns, IPERF_PORT, "the task on w2")?;
        let _iperf_floor = floor
            .as_ref()
            .map(|f| Iperf3Server::start(&f.server_ns(), IPERF_PORT, "the bare kernel end"))
            .transpose()?;
        let mut figures = measure_paths(&routes, args);
        if let Some(error) = floor_error {
            let failed = Figures {
                error: Some(error),
                ..Default::default()
            };
            figures.insert(1, (Kind::KernelVxlan, failed));
        }
        figures
    };
    drop(floor);
    let gateway = gateway_on(&client_task, PLAIN)?;
    let discovery = discovery(lab, &rt, &mut client, &client_ns, gateway, args)?;
    let memory = memory(lab, &rt, &mut client, &web, idle_mib, args.tasks)?;
    print(args, &figures, &discovery, &memory);
    Ok(figures
        .iter()
        .filter_map(|(kind, f)| Some(format!("{}: {}", kind.label(), f.error.as_ref()?)))
        .collect())
}

fn task_route(client_ns: &Path, server_ns: &Path, addr: Ipv4Addr) -> Route {
    Route {
        client_ns: client_ns.to_path_buf(),
        server_ns: server_ns.to_path_buf(),
        addr: IpAddr::V4(addr),
        iperf_port: IPERF_PORT,
        rr_port: RR_PORT,
    }
}

/// Every path once per round (paths interleaved, so a drift of the
/// machine touches them alike, in an order that turns round by round). A path that fails is kept failing: its
/// error is reported and the others are still measured.
fn measure_paths(routes: &[(Kind, Route)], args: &Args) -> Vec<(Kind, Figures)> {
    let mut all: Vec<(Kind, Figures)> = routes
        .iter()
        .map(|(k, _)| (*k, Figures::default()))
        .collect();
    // The data plane converges within a second of the tasks running; give
    // each path up to 10 s to answer before counting it as failed.
    for ((kind, route), (_, figures)) in routes.iter().zip(all.iter_mut()) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match ns::round_trips(route, RR_PORT, 10) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    figures.error = Some(format!("no answer within 10 s: {e:#}"));
                    eprintln!("{}: {e:#}", kind.label());
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    for round in 1..=args.rounds {
        // Each round starts at another path, so that no path always comes
        // right after the same other one.
        let n = routes.len();
        for i in (0..n).map(|i| (i + round - 1) % n) {
            let (kind, route) = &routes[i];
            let figures = &mut all[i].1;
            if figures.error.is_some() {
                continue;
            }
            let measured = ns::iperf3(route, args.seconds).and_then(|gbps| {
                let rtts = ns::round_trips(route, RR_PORT, args.requests)?;
                Ok((
                    gbps,
                    ns::quantile_us(&rtts, 0.5),
                    ns::quantile_us(&rtts, 0.99),
                ))
            });
            match measured {
                Ok((gbps, p50, p99)) => {
                    eprintln!(
                        "round {round}, {}: {gbps:.2} Gbit/s, p50 {p50:.0} us, p99 {p99:.0} us",
                        kind.label()
                    );
                    figures.gbps.push(gbps);
                    figures.p50_us.push(p50);
                    figures.p99_us.push(p99);
                }
                Err(e) => {
                    eprintln!("round {round}, {}: FAILED: {e:#}", kind.label());
                    figures.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    all
}

/// Scales the probe service on w2 from 0 to 1 and back, `rounds` times,
/// while a thread in the client task's namespace polls every 10 ms.
fn discovery(
    lab: &Lab,
    rt: &tokio::runtime::Runtime,
    client: &mut ControlClient<Channel>,
    client_ns: &Path,
    gateway: Ipv4Addr,
    args: &Args,
) -> Result<Discovery> {
    let web = format!("{}/web:v1", lab.registry());
    rt.block_on(create(
        client,
        spec(PROBE, &web, 0, &[PLAIN], SERVER_HOST, &[]),
    ))?;
    let vip = rt.block_on(vip_on(client, PROBE, PLAIN))?;
    let dns = SocketAddr::new(IpAddr::V4(gateway), 53);
    let name = format!("tasks.{PROBE}");
    let clk_tck = clock_ticks();
    let mut found = Discovery {
        resolve: Vec::new(),
        answer: Vec::new(),
        vip: Vec::new(),
    };
    for round in 1..=args.discovery_rounds {
        let (seen, started) = std::thread::scope(|s| -> Result<_> {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<Instant>();
            let (name, dns) = (&name, dns);
            let poller = s.spawn(move || {
                ns::in_netns(client_ns, move || {
                    // Nothing of the last round may still answer.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !lookup_a(dns, name, Duration::from_millis(200))?.is_empty()
                        || connects(SocketAddr::new(IpAddr::V4(vip), WEB_PORT))
                    {
                        if Instant::now() > deadline {
                            bail!("{name} still answers 30 s after the scale to 0");
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = ready_tx.send(());
                    let started = go_rx.recv()?;
                    poll_discovery(dns, name, vip, started)
                })
            });
            // Without the poller ready (it failed), its error says why.
            if ready_rx.recv().is_ok() {
                let started = Instant::now();
                let _ = go_tx.send(started);
                rt.block_on(scale(client, PROBE, 1))?;
            }
            drop(go_tx);
            let seen = poller.join().map_err(|_| anyhow!("poller panicked"))??;
            Ok((seen, seen.started))
        })?;
        let task = rt.block_on(running_task(client, PROBE, SERVER_HOST))?;
        let pid = task
            .status
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.pid)
            .context("the probe task reports no pid")?;
        let since_start = container_started(pid, clk_tck, started)?;
        let pair = |t: Instant| {
            let s = t.duration_since(started).as_secs_f64();
            (s, s - since_start)
        };
        found.resolve.push(pair(seen.resolved));
        found.answer.push(pair(seen.answered));
        found.vip.push(pair(seen.vip_answered));
        eprintln!(
            "discovery {round}: container started {:.3} s after the scale; from it: resolves {:.3} s, answers {:.3} s, VIP answers {:.3} s",
            since_start,
            found.resolve[round - 1].1,
            found.answer[round - 1].1,
            found.vip[round - 1].1,
        );
        // The next round starts from nothing: the task stopped, not only
        // out of the name table.
        rt.block_on(async {
            scale(client, PROBE, 0).await?;
            wait_stopped(client, PROBE).await
        })?;
    }
    Ok(found)
}

#[derive(Clone, Copy)]
struct Seen {
    /// When the scale request was sent.
    started: Instant,
    resolved: Instant,
    answered: Instant,
    vip_answered: Instant,
}

/// Polls every 10 ms (for at most 30 s): `name` at the DNS server, a TCP
/// connect to the first address it gives, a TCP connect to the VIP.
fn poll_discovery(dns: SocketAddr, name: &str, vip: Ipv4Addr, started: Instant) -> Result<Seen> {
    let (mut resolved, mut answered, mut vip_answered) = (None, None, None);
    let deadline = started + Duration::from_secs(30);
    loop {
        if resolved.is_none() {
            if let Some(addr) = lookup_a(dns, name, Duration::from_millis(200))?.first() {
                resolved = Some((Instant::now(), *addr));
            }
        }
        if let (Some((_, addr)), None) = (resolved, answered) {
            if connects(SocketAddr::new(IpAddr::V4(addr), WEB_PORT)) {
                answered = Some(Instant::now());
            }
        }
        if vip_answered.is_none() && connects(SocketAddr::new(IpAddr::V4(vip), WEB_PORT)) {
            vip_answered = Some(Instant::now());
        }
        if let (Some((r, _)), Some(a), Some(v)) = (resolved, answered, vip_answered) {
            return Ok(Seen {
                started,
                resolved: r,
                answered: a,
                vip_answered: v,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "30 s after the scale: resolved {:?}, answered {}, VIP answered {}",
                resolved.map(|r| r.1),
                answered.is_some(),
                vip_answered.is_some()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connects(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Seconds from `since` to the start of process `pid` (its start time in
/// /proc, in clock ticks since boot, against /proc/uptime now): 10 ms
/// granularity.
fn container_started(pid: u32, clk_tck: f64, since: Instant) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // Field 22 (starttime); field 3 (state) is the first after the name.
    let ticks: f64 = after_comm
        .split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .context("no start time in /proc/<pid>/stat")?;
    let now = since.elapsed().as_secs_f64();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .context("unreadable /proc/uptime")?;
    Ok(now - (uptime - ticks / clk_tck))
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// netd's VmRSS on w1 once `tasks` tasks run there, spread over the three
/// networks (one service per network), nothing else running on w1.
fn memory(
    lab: &Lab,
    rt: &tokio::runtime::Runtime,
    client: &mut ControlClient<Channel>,
    web: &str,
    idle_mib: f64,
    tasks: usize,
) -> Result<Memory> {
    lab.shoal_ok(["service", "rm", CLIENT, PROBE, SERVER])?;
    let nets = [PLAIN, ENCRYPTED, THIRD];
    rt.block_on(async {
        for (i, net) in nets.iter().enumerate() {
            let n = tasks / nets.len() + usize::from(i < tasks % nets.len());
            let name = format!("nb-mem{}", i + 1);
            create(client, spec(&name, web, n as u64, &[net], CLIENT_HOST, &[])).await?;
        }
        for (i, _) in nets.iter().enumerate() {
            let n = tasks / nets.len() + usize::from(i < tasks % nets.len());
            wait_running(client, &format!("nb-mem{}", i + 1), n).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    lab.wait_until(
        &format!("exactly {tasks} containers on {CLIENT_HOST}"),
        Duration::from_secs(60),
        || match lab.running_task_pids(CLIENT_HOST) {
            Ok(p) if p.len() == tasks => Ok(()),
            Ok(p) => Err(format!("{} running", p.len())),
            Err(e) => Err(e.to_string()),
        },
    )?;
    // Let netd settle after the burst (views, nft rewrites), then sample.
    std::thread::sleep(Duration::from_secs(3));
    let pid = netd_pid(lab, CLIENT_HOST)?;
    let samples: Vec<f64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(400));
            rss_mib(pid)
        })
        .collect();
    Ok(Memory {
        idle_mib,
        loaded_mib: median(samples),
        tasks,
    })
}

fn print(args: &Args, figures: &[(Kind, Figures)], discovery: &Discovery, memory: &Memory) {
    let get = |k: Kind| figures.iter().find(|(kind, _)| *kind == k).map(|(_, f)| f);
    let med =
        |k: Kind, f: fn(&Figures) -> &Vec<f64>| get(k).map_or(f64::NAN, |x| median(f(x).clone()));
    println!(
        "shoal network benchmark: 1 manager + 2 workers, {} rounds (medians); iperf3 TCP {} s, {} round trips of 64 B",
        args.rounds, args.seconds, args.requests
    );
    println!(
        "  {:<38} {:>8} {:>8} {:>14} {:>8} {:>8} {:>8} {:>8}",
        "path", "Gbit/s", "x under", "x ref", "target", "p50 us", "p99 us", "p50 x"
    );
    for kind in KINDS {
        let Some(f) = get(kind) else { continue };
        if let Some(e) = &f.error {
            println!("  {:<38} FAILED: {e}", kind.label());
            continue;
        }
        let gbps = med(kind, |f| &f.gbps);
        let p50 = med(kind, |f| &f.p50_us);
        let p99 = med(kind, |f| &f.p99_us);
        let under = gbps / med(Kind::Underlay, |f| &f.gbps);
        let (reference, target) = match kind.reference() {
            Some((r, t)) => (
                format!("{:.2} {}", gbps / med(r, |f| &f.gbps), short(r)),
                match t {
                    Some(t) if gbps / med(r, |f| &f.gbps) >= t => format!(">={t} ok"),
                    Some(t) => format!(">={t} MISS"),
                    None => "-".into(),
                },
            ),
            None => ("baseline".into(), "".into()),
        };
        let p50_ratio = match kind.reference() {
            Some((r, _)) => format!("{:.2} {}", p50 / med(r, |f| &f.p50_us), short(r)),
            None => "".into(),
        };
        println!(
            "  {:<38} {gbps:>8.2} {under:>8.2} {reference:>14} {target:>8} {p50:>8.0} {p99:>8.0} {p50_ratio:>8}",
            kind.label()
        );
    }
    // The plain overlay against the kernel's own VXLAN path between the
    // same hosts: what of the gap to the underlay is shoal's.
    let measured = |k: Kind| get(k).is_some_and(|f| f.error.is_none());
    if measured(Kind::Plain) && measured(Kind::KernelVxlan) {
        println!(
            "  plain overlay vs bare kernel VXLAN (the kernel's floor, {:.2}x underlay): {:.2}x throughput, p50 {:.2}x, p99 {:.2}x",
            med(Kind::KernelVxlan, |f| &f.gbps) / med(Kind::Underlay, |f| &f.gbps),
            med(Kind::Plain, |f| &f.gbps) / med(Kind::KernelVxlan, |f| &f.gbps),
            med(Kind::Plain, |f| &f.p50_us) / med(Kind::KernelVxlan, |f| &f.p50_us),
            med(Kind::Plain, |f| &f.p99_us) / med(Kind::KernelVxlan, |f| &f.p99_us),
        );
    }
    let d = |xs: &[(f64, f64)], from_start: bool| {
        median(
            xs.iter()
                .map(|p| if from_start { p.1 } else { p.0 })
                .collect(),
        )
    };
    let ok = |s: f64| if s < 1.0 { "ok" } else { "MISS" };
    println!(
        "  discovery, task on w2 seen from a task on w1 ({} scale-ups 0 -> 1, polled every 10 ms; target < 1 s from the container's start):",
        discovery.resolve.len()
    );
    for (what, xs) in [
        ("tasks.<service> resolves", &discovery.resolve),
        ("its address answers (TCP connect)", &discovery.answer),
        ("the service VIP answers", &discovery.vip),
    ] {
        println!(
            "    {what:<36} {:.3} s after the container's start ({}), {:.3} s after the scale request",
            d(xs, true),
            ok(d(xs, true)),
            d(xs, false)
        );
    }
    println!(
        "  netd resident memory on w1: {:.1} MiB with {} tasks there on 3 networks (+ ingress), {:.1} MiB before any task",
        memory.loaded_mib, memory.tasks, memory.idle_mib
    );
}

fn short(k: Kind) -> &'static str {
    match k {
        Kind::Underlay => "under",
        _ => "plain",
    }
}

/// A replicated service of `image` on `networks`, pinned to `host`,
/// publishing `(published, target)` ports through the routing mesh.
fn spec(
    name: &str,
    image: &str,
    replicas: u64,
    networks: &[&str],
    host: &str,
    ports: &[(u16, u16)],
) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                stop_grace_period_ms: 2000,
                ..Default::default()
            }),
            restart: Some(RestartPolicy {
                delay_ms: Some(0),
                ..Default::default()
            }),
            constraints: vec![format!("node.hostname == {host}")],
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
        endpoint: Some(EndpointSpec {
            ports: ports
                .iter()
                .map(|&(published, target)| PortConfig {
                    protocol: PortProtocol::Tcp as i32,
                    target_port: target.into(),
                    published_port: published.into(),
                    publish_mode: PublishMode::Ingress as i32,
                    ..Default::default()
                })
                .collect(),
            mode: endpoint_spec::Mode::Vip as i32,
        }),
        networks: networks.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

async fn create(client: &mut ControlClient<Channel>, spec: ServiceSpec) -> Result<()> {
    let name = spec.name.clone();
    client
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .map_err(|e| anyhow!("create service {name}: {}", e.message()))?;
    Ok(())
}

async fn get_service(client: &mut ControlClient<Channel>, name: &str) -> Result<Service> {
    client
        .get_service(GetServiceRequest {
            id_or_name: name.into(),
        })
        .await
        .map_err(|e| anyhow!("get service {name}: {}", e.message()))?
        .into_inner()
        .service
        .with_context(|| format!("no service {name}"))
}

async fn scale(client: &mut ControlClient<Channel>, name: &str, replicas: u64) -> Result<()> {
    let svc = get_service(client, name).await?;
    let mut spec = svc.spec.context("service without a spec")?;
    spec.mode = Some(service_spec::Mode::Replicated(ReplicatedMode { replicas }));
    let meta = svc.meta.unwrap_or_default();
    client
        .update_service(UpdateServiceRequest {
            service_id: meta.id,
            version: meta.version,
            spec: Some(spec),
        })
        .await
        .map_err(|e| anyhow!("scale {name} to {replicas}: {}", e.message()))?;
    Ok(())
}

/// Waits until no task of the service is alive (at most 30 s).
async fn wait_stopped(client: &mut ControlClient<Channel>, name: &str) -> Result<()> {
    let id = get_service(client, name).await?.meta.unwrap_or_default().id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = client
            .list_tasks(ListTasksRequest {
                service_ids: vec![id.clone()],
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks
            .iter()
            .filter(|t| !t.observed_state().is_terminal())
            .count();
        if alive == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name}: {alive} task(s) still alive 30 s after the scale to 0");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The service's one running task, checked to be on `host`.
async fn running_task(client: &mut ControlClient<Channel>, name: &str, host: &str) -> Result<Task> {
    let svc = get_service(client, name).await?;
    let tasks = client
        .list_tasks(ListTasksRequest {
            service_ids: vec![svc.meta.unwrap_or_default().id],
            only_desired_running: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .tasks;
    let task = tasks
        .into_iter()
        .find(|t| t.observed_state() == TaskState::Running)
        .with_context(|| format!("{name} has no running task"))?;
    let nodes: HashMap<String, String> = client
        .list_nodes(ListNodesRequest {})
        .await?
        .into_inner()
        .nodes
        .into_iter()
        .map(|n| {
            (
                n.meta.unwrap_or_default().id,
                n.description.unwrap_or_default().hostname,
            )
        })
        .collect();
    let on = nodes.get(&task.node_id).map_or("?", String::as_str);
    if on != host {
        bail!("{name}'s task runs on {on}, not on {host}");
    }
    Ok(task)
}

/// Where netd of `host` keeps the network namespace of `task`.
fn task_netns(lab: &Lab, host: &str, task: &Task) -> PathBuf {
    let id = task.meta.clone().unwrap_or_default().id;
    shoal_e2e::probe::task_netns(lab, host, &id)
}

/// The A records of `name` from the DNS server at `server` (port 53).
fn lookup_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>> {
    let std::net::IpAddr::V4(ip) = server.ip() else {
        bail!("DNS server {server} is not IPv4");
    };
    Ok(shoal_e2e::probe::lookup(ip, name, timeout)?.addrs)
}

fn attachment<'a>(
    task: &'a Task,
    network: &str,
) -> Result<&'a shoal_proto::types::v1::NetworkAttachment> {
    task.networks
        .iter()
        .find(|a| a.network_name == network)
        .with_context(|| format!("task has no address on {network}"))
}

fn ip_of(cidr: &str) -> Result<Ipv4Addr> {
    cidr.split('/')
        .next()
        .unwrap_or("")
        .parse()
        .with_context(|| format!("bad address {cidr:?}"))
}

fn address_on(task: &Task, network: &str) -> Result<Ipv4Addr> {
    ip_of(&attachment(task, network)?.address)
}

fn gateway_on(task: &Task, network: &str) -> Result<Ipv4Addr> {
    ip_of(&attachment(task, network)?.gateway)
}

async fn vip_on(
    client: &mut ControlClient<Channel>,
    service: &str,
    network: &str,
) -> Result<Ipv4Addr> {
    let net = client
        .get_network(shoal_proto::control::v1::GetNetworkRequest {
            id_or_name: network.into(),
        })
        .await
        .map_err(|e| anyhow!("get network {network}: {}", e.message()))?
        .into_inner()
        .network
        .and_then(|n| n.meta)
        .map(|m| m.id)
        .with_context(|| format!("no network {network}"))?;
    let svc = get_service(client, service).await?;
    let vip = svc
        .virtual_ips
        .iter()
        .find(|v| v.network_id == net)
        .with_context(|| format!("{service} has no VIP on {network}"))?;
    ip_of(&vip.addr)
}

fn netd_pid(lab: &Lab, host: &str) -> Result<i32> {
    lab.pid(host, "shoal-netd")
        .with_context(|| format!("no shoal-netd on {host}"))
}
