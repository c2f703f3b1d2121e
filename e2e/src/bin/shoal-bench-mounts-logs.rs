//! `shoal-bench-mounts-logs`: what a task's volumes, configs and logs cost
//! (issue 12), on a one-host lab.
//!
//! Each round measures:
//! - `service create --replicas N` of web:v1 until every task runs
//!   (baseline), then the same with a named volume of its own per task
//!   (`data-{{.Task.Slot}}`, made and filled from the image on first use)
//!   and a config each, so the ratio is the price of those mounts;
//! - `service logs` of a service of N tasks that each wrote L lines: the
//!   time from the CLI call to its first line, and lines per second over
//!   the whole read (the CLI's output read through a pipe).
//!
//! Prints medians over the rounds. Run it from a release build: see the
//! README's benchmarks section.

#[path = "../bench/mod.rs"]
mod bench;
#[path = "../bench/services.rs"]
mod services;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench::{median, rss_mib, wait_running};
use clap::Parser;
use services::{create_service, remove_service, timed_until_running};
use shoal_e2e::lab::{Lab, LabConfig};

#[derive(Parser)]
#[command(about = "shoal benchmark of task volumes, configs and logs")]
struct Args {
    /// Rounds (each figure is the median over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Replicas per service.
    #[arg(long, default_value_t = 50)]
    replicas: usize,
    /// Lines each task of the logging service writes.
    #[arg(long, default_value_t = 2000)]
    lines: usize,
}

#[derive(Default)]
struct Figures {
    plain: Vec<f64>,
    mounted: Vec<f64>,
    first_line: Vec<f64>,
    lines_per_s: Vec<f64>,
    /// Resident memory of one task's `shoal-logger`, MiB (mean per round).
    logger_rss: Vec<f64>,
}

/// Every `shoal-logger` process on the machine (the lab's only).
fn logger_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "shoal-logger")
        })
        .collect()
}

/// [`create_service`] of web:v1.
fn create(lab: &Lab, name: &str, replicas: usize, extra: &[&str], command: &[&str]) -> Result<()> {
    let image = format!("{}/web:v1", lab.registry());
    create_service(lab, name, replicas, &image, extra, command)
}

/// Runs `service logs NAME` once: (seconds to the first line, lines read,
/// seconds in all).
fn read_logs(lab: &Lab, name: &str) -> Result<(f64, usize, f64)> {
    let started = Instant::now();
    let mut child = Command::new(lab.cli_path())
        .args(["--host", lab.shoal_host(), "service", "logs", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start shoal service logs")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut first = None;
    let mut lines = 0usize;
    for line in BufReader::new(stdout).split(b'\n') {
        line?;
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        lines += 1;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("service logs {name}: {status}");
    }
    Ok((first.unwrap_or(0.0), lines, started.elapsed().as_secs_f64()))
}

fn round(
    lab: &Lab,
    rt: &tokio::runtime::Runtime,
    args: &Args,
    r: usize,
    figures: &mut Figures,
) -> Result<()> {
    let n = args.replicas;
    let plain = format!("plain{r}");
    let create_plain = || create(lab, &plain, n, &[], &[]);
    figures
        .plain
        .push(timed_until_running(lab, rt, &plain, n, create_plain)?);
    remove_service(lab, &plain)?;

    let config = format!("benchcfg{r}");
    let file = std::env::temp_dir().join(format!("shoal-bench-{config}"));
    std::fs::write(&file, "worker_processes 1;\n")?;
    lab.shoal_ok(["config", "create", &config, &file.to_string_lossy()])?;
    let mounted = format!("mounted{r}");
    let volume = format!("type=volume,source=bench{r}-{{{{.Task.Slot}}}},target=/data");
    let config_flag = format!("source={config},target=/etc/bench.conf");
    let extra = ["--mount", volume.as_str(), "--config", config_flag.as_str()];
    let create_mounted = || create(lab, &mounted, n, &extra, &[]);
    figures
        .mounted
        .push(timed_until_running(lab, rt, &mounted, n, create_mounted)?);
    remove_service(lab, &mounted)?;
    lab.shoal_ok(["config", "rm", &config])?;
    let _ = std::fs::remove_file(&file);
    lab.shoal_ok(["volume", "prune", "-f"])?;

    let chatty = format!("chatty{r}");
    let script = format!(
        "i=0; while [ $i -lt {} ]; do i=$((i+1)); echo \"line $i of a task that writes a log\"; done; \
         echo done > /tmp/done; exec sleep 3600",
        args.lines
    );
    create(lab, &chatty, n, &[], &["sh", "-c", &script])?;
    rt.block_on(async {
        let mut client = lab.control_client("m1").await?;
        wait_running(&mut client, &chatty, n).await
    })?;
    let want = n * args.lines;
    lab.wait_until("every line written", Duration::from_secs(120), || {
        let (_, lines, _) = read_logs(lab, &chatty).map_err(|e| e.to_string())?;
        if lines >= want {
            Ok(())
        } else {
            Err(format!("{lines} of {want}"))
        }
    })?;
    let loggers = logger_pids();
    if !loggers.is_empty() {
        let rss: f64 = loggers.iter().copied().map(rss_mib).sum();
        figures.logger_rss.push(rss / loggers.len() as f64);
    }
    let (first, lines, total) = read_logs(lab, &chatty)?;
    figures.first_line.push(first);
    figures.lines_per_s.push(lines as f64 / total);
    remove_service(lab, &chatty)?;
    eprintln!(
        "round {r}: plain {:.2}s, volume+config {:.2}s, logs first line {:.3}s, {:.0} lines/s",
        figures.plain[r - 1],
        figures.mounted[r - 1],
        first,
        lines as f64 / total
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.replicas == 0 || args.lines == 0 {
        bail!("--rounds, --replicas and --lines must be at least 1");
    }
    let lab = Lab::up(LabConfig {
        replace: true,
        ..LabConfig::new("bench-ml")
    })?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut figures = Figures::default();
    for r in 1..=args.rounds {
        round(&lab, &rt, &args, r, &mut figures)?;
    }
    let n = args.replicas;
    println!(
        "shoal task mounts and logs benchmark, {n} replicas, {} rounds (medians)",
        args.rounds
    );
    let plain = median(figures.plain);
    let mounted = median(figures.mounted);
    println!("  service create --replicas {n} to all running: {plain:.2} s (baseline)");
    println!(
        "  the same with a named volume of its own (filled from the image) and a config per task: \
         {mounted:.2} s ({:.2}x baseline)",
        mounted / plain
    );
    println!(
        "  service logs of {n} tasks x {} lines (json-file): first line after {:.3} s, {:.0} lines/s",
        args.lines,
        median(figures.first_line),
        median(figures.lines_per_s)
    );
    if !figures.logger_rss.is_empty() {
        println!(
            "  shoal-logger (one per task, started by the runc shim): {:.2} MiB resident each",
            median(figures.logger_rss)
        );
    }
    lab.down()?;
    Ok(())
}
