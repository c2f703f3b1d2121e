//! `shoal-bench`: start-up and rolling-update speed of a one-host shoal,
//! against bare containerd on the same host in the same run.
//!
//! Each round measures, on a fresh lab host:
//! - baseline: `ctr run -d` of N containers of web:v1, 8 in parallel (bare
//!   containerd, no networking, image already pulled);
//! - `service create --replicas N` until N tasks run;
//! - `service update --image web:v2` (parallelism 1 and 10) until every task
//!   runs v2.
//!
//! Prints each figure's median over the rounds and its ratio to the baseline.
//! Run it from a release build: see the README's benchmarks section.

#[path = "../bench/mod.rs"]
mod bench;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bench::{median, rss_mib, wait_running};
use clap::Parser;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_proto::control::v1::control_client::ControlClient;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "shoal start-up and update benchmark against bare containerd")]
struct Args {
    /// Rounds (each figure is the median over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Replicas per service.
    #[arg(long, default_value_t = 50)]
    replicas: usize,
    /// Skip the parallelism-1 update (about a minute per round).
    #[arg(long)]
    skip_serial_update: bool,
}

async fn control(lab: &Lab) -> Result<ControlClient<Channel>> {
    Ok(lab.control_client("m1").await?)
}

fn daemons_rss(lab: &Lab) -> f64 {
    ["shoal-manager", "shoal-agent", "shoal-netd"]
        .iter()
        .filter_map(|d| lab.pid("m1", d))
        .map(rss_mib)
        .sum()
}

fn ctr(lab: &Lab, args: &[&str]) -> Result<()> {
    let socket = lab.containerd_socket("m1")?;
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "bench"])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Bare containerd: N containers of the image, 8 at a time, as `ctr run -d`.
fn baseline(lab: &Lab, image: &str, n: usize) -> Result<f64> {
    ctr(lab, &["images", "pull", "--plain-http", image])?;
    let ids: Vec<String> = (0..n).map(|i| format!("bare-{i}")).collect();
    let started = Instant::now();
    for chunk in ids.chunks(8) {
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = chunk
                .iter()
                .map(|id| s.spawn(move || ctr(lab, &["run", "-d", "--null-io", image, id])))
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("ctr thread panicked"))??;
            }
            Ok(())
        })?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for id in &ids {
        let _ = ctr(lab, &["tasks", "kill", "-s", "SIGKILL", id]);
    }
    std::thread::sleep(Duration::from_millis(500));
    for id in &ids {
        let _ = ctr(lab, &["tasks", "delete", "-f", id]);
        let _ = ctr(lab, &["containers", "delete", id]);
    }
    Ok(elapsed)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let lab = Lab::up(LabConfig {
        replace: true,
        ..LabConfig::new("bench")
    })?;
    let registry = lab.registry().to_string();
    let v1 = format!("{registry}/web:v1");
    let v2 = format!("{registry}/web:v2");
    let rt = tokio::runtime::Runtime::new()?;
    let n = args.replicas;
    let (mut base, mut create, mut update1, mut update10) = (vec![], vec![], vec![], vec![]);
    let mut memory = vec![];
    for round in 1..=args.rounds {
        base.push(baseline(&lab, &v1, n)?);
        let name = format!("bench{round}");
        let replicas = n.to_string();
        let started = Instant::now();
        lab.shoal_ok([
            "service",
            "create",
            "-d",
            "--name",
            &name,
            "--replicas",
            &replicas,
            "--restart-delay",
            "0s",
            "--stop-grace-period",
            "2s",
            &v1,
        ])?;
        rt.block_on(async { wait_running(&mut control(&lab).await?, &name, n).await })?;
        create.push(started.elapsed().as_secs_f64());
        memory.push(daemons_rss(&lab));

        let started = Instant::now();
        lab.shoal_ok([
            "service",
            "update",
            "-d",
            "--update-parallelism",
            "10",
            "--image",
            &v2,
            &name,
        ])?;
        rt.block_on(async { wait_running(&mut control(&lab).await?, &name, n).await })?;
        update10.push(started.elapsed().as_secs_f64());

        if !args.skip_serial_update {
            let started = Instant::now();
            lab.shoal_ok([
                "service",
                "update",
                "-d",
                "--update-parallelism",
                "1",
                "--image",
                &v1,
                &name,
            ])?;
            rt.block_on(async { wait_running(&mut control(&lab).await?, &name, n).await })?;
            update1.push(started.elapsed().as_secs_f64());
        }
        lab.shoal_ok(["service", "rm", &name])?;
        eprintln!(
            "round {round}: baseline {:.2}s, create {:.2}s, update/10 {:.2}s, update/1 {:?}",
            base[round - 1],
            create[round - 1],
            update10[round - 1],
            update1.last()
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let b = median(base);
    println!(
        "shoal benchmark, {n} replicas, {} rounds (medians)",
        args.rounds
    );
    println!("  bare containerd, {n} containers 8 at a time: {b:.2} s (baseline)");
    let c = median(create);
    println!("  service create --replicas {n} to all running: {c:.2} s ({:.2}x baseline; target <= 1.2x)", c / b);
    let mem = median(memory);
    println!("  manager + agent + netd resident memory at {n} tasks: {mem:.1} MiB (target < 64; dockerd here: 125)");
    let u10 = median(update10);
    println!(
        "  rolling image update, parallelism 10: {u10:.2} s (Swarm 20.10 here: 18 s, ratio {:.2})",
        u10 / 18.0
    );
    if !update1.is_empty() {
        let u1 = median(update1);
        println!("  rolling image update, parallelism 1: {u1:.2} s (Swarm 20.10 here: 92 s, ratio {:.2})", u1 / 92.0);
    }
    lab.down()?;
    Ok(())
}
