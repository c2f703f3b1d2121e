//! `shoal-bench-stack-deploy`: the wall time of `stack deploy
//! --detach=false` (issue 13), on a lab of a manager and a worker.
//!
//! Each round deploys a stack of N services (web:v1, one replica each)
//! and times the CLI from its start until it exits, converged: the compose
//! file loaded, the images' digests resolved in the registry, the stack
//! written, every task running and verified stable (docker's 5 s). The
//! stack is removed between rounds (`stack rm --detach=false`, untimed).
//! A first, untimed deploy puts the image on the nodes, so every round
//! is alike. The same is done for a 3-service stack, the size of the
//! stack Docker Swarm was measured with on these machines.
//!
//! Prints medians over the rounds, and the ratio against Docker Swarm:
//! 3 services in 18.3 s, measured on these machines. Docker waits for the
//! services in turn, each until it converged and stayed so for 5 s, so
//! its time grows with the number of services: its figure for N services
//! is taken as 18.3 s × N / 3, its own per-service cost, which is what a
//! sequential wait gives. Run it from a release build: see the README's
//! benchmarks section.

#[path = "../bench/mod.rs"]
// Only its median is needed here.
#[allow(dead_code)]
mod bench;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bench::median;
use clap::Parser;
use shoal_e2e::lab::{Lab, LabConfig};

/// Docker Swarm, measured on these machines: `docker stack deploy
/// --detach=false` of a 3-service stack.
const DOCKER_SERVICES: usize = 3;
const DOCKER_SECONDS: f64 = 18.3;

#[derive(Parser)]
#[command(about = "shoal benchmark of stack deploy --detach=false")]
struct Args {
    /// Rounds (each figure is the median over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Services of the large stack.
    #[arg(long, default_value_t = 10)]
    services: usize,
}

/// A compose file of `n` services of web:v1.
fn write_stack(lab: &Lab, dir: &Path, n: usize) -> Result<std::path::PathBuf> {
    let mut text = String::from("services:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  s{i}:\n    image: {}/web:v1\n    stop_grace_period: 2s\n",
            lab.registry()
        ));
    }
    let path = dir.join(format!("stack{n}.yml"));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Runs `shoal ARGS` against the lab, reaching its (plain HTTP) registry
/// to resolve digests as a pipeline's CLI would; fails unless it succeeds.
fn shoal(lab: &Lab, args: &[&str]) -> Result<()> {
    let out = Command::new(lab.cli_path())
        .args(["--host", lab.shoal_host()])
        .env("SHOAL_INSECURE_REGISTRIES", lab.registry())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run shoal {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "shoal {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Seconds of one `stack deploy --detach=false` of `file`, the stack
/// removed afterwards.
fn deploy_once(lab: &Lab, file: &Path) -> Result<f64> {
    let file = file.to_string_lossy();
    let started = Instant::now();
    shoal(
        lab,
        &["stack", "deploy", "--detach=false", "-c", &file, "bench"],
    )?;
    let took = started.elapsed().as_secs_f64();
    shoal(lab, &["stack", "rm", "--detach=false", "bench"])?;
    Ok(took)
}

/// The median over `rounds` deploys of `file`, after an untimed one.
fn measure(lab: &Lab, file: &Path, rounds: usize, label: &str) -> Result<f64> {
    deploy_once(lab, file)?;
    let mut times = Vec::new();
    for r in 1..=rounds {
        let took = deploy_once(lab, file)?;
        eprintln!("{label}, round {r}: {took:.2} s");
        times.push(took);
    }
    Ok(median(times))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.services == 0 {
        bail!("--rounds and --services must be at least 1");
    }
    let lab = Lab::up(LabConfig {
        workers: 1,
        replace: true,
        ..LabConfig::new("bench-sd")
    })?;
    let dir = tempfile::tempdir()?;
    let n = args.services;
    let large = write_stack(&lab, dir.path(), n)?;
    let small = write_stack(&lab, dir.path(), DOCKER_SERVICES)?;
    let shoal_large = measure(&lab, &large, args.rounds, &format!("{n} services"))?;
    let shoal_small = measure(
        &lab,
        &small,
        args.rounds,
        &format!("{DOCKER_SERVICES} services"),
    )?;
    let docker_large = DOCKER_SECONDS * n as f64 / DOCKER_SERVICES as f64;
    println!(
        "shoal stack deploy --detach=false benchmark, 1 manager + 1 worker, {} rounds (medians; \
         each includes the 5 s every service must stay up, docker's check too)",
        args.rounds
    );
    println!(
        "  {DOCKER_SERVICES} services: {shoal_small:.2} s; Docker Swarm measured {DOCKER_SECONDS} s \
         on these machines: {:.2}x faster",
        DOCKER_SECONDS / shoal_small
    );
    println!(
        "  {n} services: {shoal_large:.2} s; Docker Swarm waits for each service in turn \
         ({:.1} s each as measured), so {docker_large:.1} s: {:.2}x faster",
        DOCKER_SECONDS / DOCKER_SERVICES as f64,
        docker_large / shoal_large
    );
    lab.down()?;
    Ok(())
}
