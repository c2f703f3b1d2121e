//! `shoal-schedbench`: scheduling at scale. A real manager (a one-manager
//! lab) and many simulated nodes (`sim.rs`: real joins and real mTLS
//! sessions, tasks reported running at once, no containers), then services
//! created in steps up to the target task count. For each step it prints:
//! - tasks placed per second: from the first create call until every new
//!   task reached its node's session;
//! - tasks running per second: until every one of them was reported
//!   running and the report acknowledged;
//! - the manager's resident memory, and per 1,000 tasks.
//!
//! The simulated tasks are on an overlay network no real node builds
//! (the manager's own node takes no task: the services ask for workers),
//! so nothing reaches the kernel. Run it from a release build: see the
//! README's benchmarks section.

// Shared with the other benchmarks; this one needs only part of it.
#[allow(dead_code)]
#[path = "../../bench/mod.rs"]
mod bench;
mod sim;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::rss_mib;
use clap::Parser;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::{
    CreateNetworkRequest, CreateServiceRequest, ListNodesRequest, ListTasksRequest,
};
use shoal_proto::types::v1::{
    service_spec, ContainerSpec, NetworkSpec, NodeState, ReplicatedMode, ServiceSpec, TaskSpec,
    TaskState,
};
use tonic::transport::Channel;

use sim::{Counters, SimNode};

#[derive(Parser)]
#[command(about = "shoal scheduling at scale: simulated nodes against a real manager")]
struct Args {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Total tasks after each step (comma-separated, increasing).
    #[arg(long, default_value = "10000,50000,100000", value_delimiter = ',')]
    steps: Vec<u64>,
    /// Replicas of each service created.
    #[arg(long, default_value_t = 1000)]
    replicas: u64,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 16)]
    join_parallelism: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps.windows(2).any(|w| w[0] >= w[1]) || args.steps.is_empty() {
        bail!("--steps must be increasing task totals, e.g. 10000,50000,100000");
    }
    let lab = Lab::up(LabConfig {
        images: false,
        replace: true,
        ..LabConfig::new("schedbench")
    })?;
    let result = tokio::runtime::Runtime::new()
        .context("tokio runtime")
        .and_then(|rt| rt.block_on(run(&lab, &args)));
    lab.down()?;
    result
}

async fn run(lab: &Lab, args: &Args) -> Result<()> {
    let manager = format!("{}:4242", lab.host_addr("m1")?);
    let manager_pid = lab
        .pid("m1", "shoal-manager")
        .context("no manager process on m1")?;
    let token = lab.shoal_ok(["swarm", "join-token", "-q", "worker"])?;
    let mut control = lab.control_client("m1").await?;
    let idle_rss = rss_mib(manager_pid);

    // Join every simulated node, a few at a time, and open its session.
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let mut joined = 0;
    let indexes: Vec<usize> = (0..args.nodes).collect();
    for chunk in indexes.chunks(args.join_parallelism.max(1)) {
        let joins = chunk.iter().map(|&i| {
            let (manager, token) = (manager.clone(), token.trim().to_string());
            async move { SimNode::join(&manager, &token, i).await }
        });
        for node in spawn_all(joins).await {
            let node = node??;
            let (manager, counters) = (manager.clone(), counters.clone());
            tokio::spawn(async move {
                if let Err(e) = node.run(manager, counters).await {
                    eprintln!("simulated node: {e:#}");
                }
            });
            joined += 1;
        }
    }
    wait_ready(&mut control, joined + 1).await?;
    let join_secs = started.elapsed().as_secs_f64();
    println!(
        "{} simulated nodes joined and ready in {join_secs:.1} s ({:.0} nodes/s); manager {:.1} MiB idle, {:.1} MiB with the nodes",
        joined,
        joined as f64 / join_secs,
        idle_rss,
        rss_mib(manager_pid)
    );

    control
        .create_network(CreateNetworkRequest {
            spec: Some(NetworkSpec {
                name: "sim".into(),
                driver: "overlay".into(),
                subnet: "172.16.0.0/12".into(),
                ..Default::default()
            }),
        })
        .await
        .context("create the simulated tasks' network")?;

    println!();
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>10} {:>14}",
        "tasks", "new", "placed/s", "running/s", "mgr MiB", "MiB/1k tasks"
    );
    let mut total = 0u64;
    let mut service_index = 0usize;
    for &target in &args.steps {
        let new = target - total;
        let before = counters.running.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let mut creates = Vec::new();
        let mut left = new;
        while left > 0 {
            let replicas = left.min(args.replicas);
            left -= replicas;
            service_index += 1;
            let mut client = control.clone();
            let spec = simulated_service(format!("sim{service_index:04}"), replicas);
            creates.push(tokio::spawn(async move {
                client
                    .create_service(CreateServiceRequest { spec: Some(spec) })
                    .await
            }));
        }
        for create in creates {
            create.await?.context("create a service")?;
        }
        let placed = wait_count(&counters.assigned, target, "placed").await?;
        let running = wait_count(&counters.running, target, "running").await?;
        let placed_secs = placed.duration_since(t0).as_secs_f64();
        let running_secs = running.duration_since(t0).as_secs_f64();
        confirm_running(&mut control, target).await?;
        let rss = rss_mib(manager_pid);
        total = target;
        println!(
            "{:>8} {:>9} {:>12.0} {:>12.0} {:>10.1} {:>14.2}",
            total,
            new,
            new as f64 / placed_secs,
            (counters.running.load(Ordering::Relaxed) - before) as f64 / running_secs,
            rss,
            (rss - idle_rss) / (total as f64 / 1000.0)
        );
    }
    let refused = counters.refused.load(Ordering::Relaxed);
    if refused > 0 {
        println!("({refused} status reports were refused and sent again)");
    }
    Ok(())
}

/// Runs the futures concurrently, on the runtime's threads.
async fn spawn_all<F>(futures: impl Iterator<Item = F>) -> Vec<Result<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.context("a join task failed"));
    }
    out
}

fn simulated_service(name: String, replicas: u64) -> ServiceSpec {
    ServiceSpec {
        name,
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                // Never pulled: only simulated nodes run these tasks.
                image: "sim/none:v1".into(),
                ..Default::default()
            }),
            constraints: vec!["node.role==worker".into()],
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
        networks: vec!["sim".into()],
        ..Default::default()
    }
}

/// Waits until the counter reaches `want`; when it did.
async fn wait_count(
    counter: &std::sync::atomic::AtomicU64,
    want: u64,
    what: &str,
) -> Result<Instant> {
    let start = Instant::now();
    let mut said = start;
    loop {
        let now = counter.load(Ordering::Relaxed);
        if now >= want {
            return Ok(Instant::now());
        }
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("only {now} of {want} tasks {what} after 30 minutes");
        }
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!("  ... {now} of {want} tasks {what}");
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ready(control: &mut ControlClient<Channel>, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let nodes = control
            .list_nodes(ListNodesRequest {})
            .await?
            .into_inner()
            .nodes;
        let ready = nodes
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .is_some_and(|s| s.state == NodeState::Ready as i32)
            })
            .count();
        if ready >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {want} nodes ready after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The store agrees: `want` tasks are running.
async fn confirm_running(control: &mut ControlClient<Channel>, want: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let tasks = control
            .list_tasks(ListTasksRequest::default())
            .await?
            .into_inner()
            .tasks;
        let running = tasks
            .iter()
            .filter(|t| t.observed_state() == TaskState::Running)
            .count() as u64;
        if running >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the store shows {running} of {want} tasks running");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
