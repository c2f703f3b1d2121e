//! `shoal-bench-cluster`: multi-host figures on a lab of 3 managers and 1
//! worker. Prints medians:
//! - leader failover: from `kill -9` of the leader's manager to the first
//!   write accepted through another manager (10 rounds);
//! - Raft write throughput: service writes committed per second, 8 clients
//!   writing concurrently through the leader;
//! - worker join: from `shoal swarm join` to the node Ready in `node ls`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::CreateServiceRequest;
use shoal_proto::types::v1::{service_spec, ContainerSpec, ReplicatedMode, ServiceSpec, TaskSpec};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "shoal multi-host benchmark: failover, raft throughput, join")]
struct Args {
    #[arg(long, default_value_t = 10)]
    failovers: usize,
    /// Writes per throughput round (3 rounds).
    #[arg(long, default_value_t = 400)]
    writes: usize,
    #[arg(long, default_value_t = 5)]
    joins: usize,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn cli(lab: &Lab, manager: &str, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(lab.cli_path())
        .args(["--host", &lab.manager_socket(manager)?])
        .args(args)
        .output()?)
}

fn leader(lab: &Lab, ask: &[&str]) -> Result<String> {
    for manager in ask {
        if let Ok(out) = cli(lab, manager, &["node", "ls"]) {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(line) = text.lines().find(|l| l.contains("Leader")) {
                for m in ["m1", "m2", "m3"] {
                    if line.split_whitespace().any(|w| w == m) {
                        return Ok(m.to_string());
                    }
                }
            }
        }
    }
    bail!("no leader found")
}

async fn control(lab: &Lab, manager: &str) -> Result<ControlClient<Channel>> {
    Ok(lab.control_client(manager).await?)
}

fn empty_service(name: String) -> ServiceSpec {
    ServiceSpec {
        name,
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "bench/none:v1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(service_spec::Mode::Replicated(ReplicatedMode {
            replicas: 0,
        })),
        ..Default::default()
    }
}

fn failover(lab: &mut Lab, round: usize) -> Result<f64> {
    let leader = leader(lab, &["m1", "m2", "m3"])?;
    let other = ["m1", "m2", "m3"]
        .into_iter()
        .find(|m| *m != leader)
        .unwrap_or("m2");
    lab.kill9(&leader, "shoal-manager")?;
    let killed = Instant::now();
    let name = format!("fo{round}");
    loop {
        let out = cli(
            lab,
            other,
            &[
                "service",
                "create",
                "-d",
                "--name",
                &name,
                "--replicas",
                "0",
                "bench/none:v1",
            ],
        )?;
        if out.status.success() {
            break;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no write accepted 30 s after the leader was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = killed.elapsed().as_secs_f64();
    lab.start_again(&leader, "shoal-manager")?;
    // Let it rejoin before the next round.
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(20) {
        if cli(lab, &leader, &["node", "ls"]).is_ok_and(|o| o.status.success()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(elapsed)
}

async fn throughput(lab: &Lab, round: usize, writes: usize) -> Result<f64> {
    let leader = leader(lab, &["m1", "m2", "m3"])?;
    let clients = 8;
    let started = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let mut client = control(lab, &leader).await?;
        let per = writes / clients;
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                let spec = empty_service(format!("tp{round}-{c}-{i}"));
                client
                    .create_service(CreateServiceRequest { spec: Some(spec) })
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(writes as f64 / started.elapsed().as_secs_f64())
}

fn join(lab: &mut Lab) -> Result<f64> {
    let node_dir = lab.root().join("w1").join("node");
    lab.kill9("w1", "shoal-agent")?;
    lab.kill9("w1", "shoal-netd")?;
    cli(lab, "m1", &["node", "rm", "--force", "w1"])?;
    std::fs::remove_dir_all(&node_dir).ok();
    let token =
        String::from_utf8(cli(lab, "m1", &["swarm", "join-token", "-q", "worker"])?.stdout)?;
    let m1 = format!("{}:4242", lab.host_addr("m1")?);
    let started = Instant::now();
    let out = lab
        .command("w1", &lab.cli_path().to_string_lossy())?
        .args(["swarm", "join", "--token", token.trim(), "--node-dir"])
        .arg(&node_dir)
        .args(["--hostname", "w1", &m1])
        .output()?;
    if !out.status.success() {
        bail!("join: {}", String::from_utf8_lossy(&out.stderr));
    }
    lab.start_again("w1", "shoal-netd")?;
    lab.start_again("w1", "shoal-agent")?;
    loop {
        let out = cli(lab, "m1", &["node", "ls"])?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text
            .lines()
            .any(|l| l.contains("w1") && l.contains("Ready"))
        {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("w1 not ready 60 s after join: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut lab = Lab::up(LabConfig {
        managers: 3,
        workers: 1,
        replace: true,
        images: false,
        ..LabConfig::new("bench-cluster")
    })
    .context("lab up")?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut failovers = Vec::new();
    for round in 0..args.failovers {
        failovers.push(failover(&mut lab, round)?);
        eprintln!("failover {round}: {:.2}s", failovers[round]);
    }
    let mut rates = Vec::new();
    for round in 0..3 {
        rates.push(rt.block_on(throughput(&lab, round, args.writes))?);
        eprintln!("throughput round {round}: {:.0} writes/s", rates[round]);
    }
    let mut joins = Vec::new();
    for round in 0..args.joins {
        joins.push(join(&mut lab)?);
        eprintln!("join {round}: {:.2}s", joins[round]);
    }
    println!("shoal multi-host benchmark (3 managers, 1 worker; medians)");
    println!(
        "  leader failover, kill -9 to first accepted write: {:.2} s over {} rounds",
        median(failovers),
        args.failovers
    );
    println!(
        "  raft write throughput, 8 concurrent clients: {:.0} service writes/s (3 rounds of {})",
        median(rates),
        args.writes
    );
    println!(
        "  worker join to Ready: {:.2} s over {} joins",
        median(joins),
        args.joins
    );
    lab.down()?;
    Ok(())
}
