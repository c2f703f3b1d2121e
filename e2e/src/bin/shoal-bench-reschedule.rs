//! `shoal-bench-reschedule`: rescheduling after node death (issue 11,
//! target ≤ 5 s after the grace period). On a lab of 1 manager and 2
//! workers, a service of `--replicas` tasks on the workers; each round
//! kills every shoal daemon of the worker that has tasks and cuts it off,
//! then measures until all its tasks run on the other worker: from the
//! moment `node ls` shows it down, and from the grace period's end (15 s
//! after it died). The worker then returns (its stale tasks stop) before
//! the next round. Prints the medians.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::Value;
use shoal_e2e::lab::{Lab, LabConfig};

#[path = "../bench/mod.rs"]
#[allow(dead_code)]
mod bench;
use bench::median;

/// Heartbeat period (5 s) times Swarm's grace multiplier (3).
const GRACE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
const DAEMONS: [&str; 3] = ["shoal-agent", "shoal-netd", "shoal-manager"];

#[derive(Parser)]
#[command(about = "shoal benchmark: rescheduling after a worker dies")]
struct Args {
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, default_value_t = 6)]
    replicas: usize,
}

/// The rows of a list command's `--format json` (one object per line).
fn json(lab: &Lab, args: &[&str]) -> Result<Vec<Value>> {
    let out = lab
        .shoal_ok(args)
        .with_context(|| format!("shoal {}", args.join(" ")))?;
    shoal_e2e::lab::json_lines(&out).map_err(|e| anyhow::anyhow!("shoal {}: {e}", args.join(" ")))
}

/// Nodes of the service's tasks meant to run that run.
fn running_on(lab: &Lab) -> Result<Vec<String>> {
    Ok(json(lab, &["service", "ps", "web", "--format", "json"])?
        .iter()
        .filter(|r| r["DesiredState"] == "Running" && r["State"] == "running")
        .map(|r| r["Node"].as_str().unwrap_or_default().to_string())
        .collect())
}

fn node_status(lab: &Lab, hostname: &str) -> Result<String> {
    let nodes = json(lab, &["node", "ls", "--format", "json"])?;
    let node = nodes
        .iter()
        .find(|n| n["Hostname"] == hostname)
        .with_context(|| format!("{hostname} not in node ls"))?;
    Ok(node["Status"].as_str().unwrap_or_default().to_string())
}

fn wait<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe()? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// One death of `dead`: (seconds from marked down, seconds from the grace
/// period's end) until its tasks run elsewhere.
fn round(lab: &mut Lab, dead: &str, replicas: usize) -> Result<(f64, f64)> {
    for daemon in DAEMONS {
        lab.kill9(dead, daemon)?;
    }
    lab.cut(dead)?;
    let died = Instant::now();
    let mut down_at = None;
    let moved_at = wait("tasks running elsewhere", GRACE * 3, || {
        if down_at.is_none() && node_status(lab, dead)? == "Down" {
            down_at = Some(Instant::now());
        }
        let on = running_on(lab)?;
        Ok(
            (down_at.is_some() && on.len() == replicas && on.iter().all(|n| n != dead))
                .then(Instant::now),
        )
    })?;
    let down_at = down_at.context("never marked down")?;
    let after_down = moved_at.duration_since(down_at).as_secs_f64();
    let after_grace = moved_at.duration_since(died).as_secs_f64() - GRACE.as_secs_f64();
    // Back for the next round: its stale tasks stop.
    lab.heal(dead)?;
    for daemon in DAEMONS.iter().rev() {
        lab.start_again(dead, daemon)?;
    }
    wait(
        "the worker ready, its stale tasks stopped",
        GRACE * 2,
        || {
            let ready = node_status(lab, dead)? == "Ready";
            Ok((ready && lab.running_task_pids(dead)?.is_empty()).then_some(()))
        },
    )?;
    Ok((after_down, after_grace))
}

fn run(lab: &mut Lab, args: &Args) -> Result<()> {
    let image = format!("{}/web:v1", lab.registry());
    let replicas = args.replicas.to_string();
    lab.shoal_ok([
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        &replicas,
        "--constraint",
        "node.role==worker",
        &image,
    ])?;
    let (mut after_down, mut after_grace) = (Vec::new(), Vec::new());
    for i in 0..args.rounds {
        // The worker that has tasks dies (after a round, the survivor has all).
        let on = running_on(lab)?;
        let dead = if on.iter().any(|n| n == "w1") {
            "w1"
        } else {
            "w2"
        };
        let (down, grace) = round(lab, dead, args.replicas)?;
        println!(
            "round {}: {dead} died; its tasks ran elsewhere {down:.2} s after it was marked down, \
             {grace:.2} s after the grace period",
            i + 1
        );
        after_down.push(down);
        after_grace.push(grace);
    }
    println!(
        "rescheduling after node death ({} tasks, {} rounds): median {:.2} s after the grace period \
         (target <= 5 s), {:.2} s after the node was marked down",
        args.replicas,
        args.rounds,
        median(after_grace),
        median(after_down)
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut lab = Lab::up(LabConfig {
        workers: 2,
        replace: true,
        ..LabConfig::new("reschedbench")
    })?;
    let result = run(&mut lab, &args);
    lab.down()?;
    result
}
