//! `shoal-vm-bench`: the VM lab's figures (README, benchmarks).
//!
//! - the box build, cached (and, with `--cold`, from nothing: the cache is
//!   emptied first);
//! - bringing the VM lab up (3 VMs, a Ready cluster) with the box cached;
//! - TCP throughput between two VMs (iperf3 from the box, one test of a few
//!   seconds per round): VM to VM directly (the baseline), a task to a task
//!   over a plain overlay, and over an encrypted one (kernel WireGuard),
//!   medians over the rounds and ratios against the baseline of the same
//!   run.
//!
//! Under emulation (TCG) the absolute figures say little about a real NIC;
//! the ratios say what the overlay and the encryption cost on the same
//! (emulated) CPU.

#[path = "../bench/mod.rs"]
#[allow(dead_code)] // the VM lab is driven through the CLI, not the control API
mod bench;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use shoal_e2e::vmlab::{self, VmLab, VmLabConfig};

#[derive(Parser)]
#[command(about = "shoal VM lab benchmark: box build, lab up, overlay throughput between VMs")]
struct Args {
    /// Rounds of the throughput measurements (medians over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each iperf3 test.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Build the box from nothing first (empties the box cache).
    #[arg(long)]
    cold: bool,
}

const STACK: &str = r#"
services:
  srv:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [plain, secure]
  cli:
    image: ${SHOAL_REGISTRY}/web:v1
    networks: [plain, secure]
networks:
  plain: {}
  secure:
    driver_opts:
      encrypted: ""
"#;
const PORT: u16 = 5201;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.cold {
        let cache =
            std::env::var("SHOAL_VM_CACHE").unwrap_or_else(|_| "/var/cache/shoal-vm".into());
        let _ = std::fs::remove_dir_all(&cache);
    }
    let started = Instant::now();
    vmlab::build_box().context("box build")?;
    let box_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let lab = VmLab::up(VmLabConfig::new("bench")).context("VM lab up")?;
    let up_secs = started.elapsed().as_secs_f64();
    let result = measure(&lab, &args);
    lab.down().context("VM lab down")?;
    let (vms, figures) = result?;

    println!(
        "shoal VM lab benchmark ({:?} VMs), {} rounds (medians)",
        vms.0, args.rounds
    );
    let cold = if args.cold { "from nothing" } else { "cached" };
    println!("  box build ({cold}):         {box_secs:>7.1} s");
    println!("  VM lab up (3 VMs Ready):   {up_secs:>7.1} s");
    let underlay = bench::median(figures["underlay"].clone());
    let plain = bench::median(figures["plain"].clone());
    let secure = bench::median(figures["encrypted"].clone());
    println!("  throughput {} -> {}:", vms.1, vms.2);
    println!("    VM to VM (baseline):     {underlay:>7.2} Gbit/s");
    println!(
        "    plain overlay:           {plain:>7.2} Gbit/s  {:.2}x the baseline",
        plain / underlay
    );
    println!(
        "    encrypted (kernel WG):   {secure:>7.2} Gbit/s  {:.2}x plain, {:.2}x the baseline",
        secure / plain,
        secure / underlay
    );
    Ok(())
}

type Figures = BTreeMap<&'static str, Vec<f64>>;

/// `((accel, client VM, server VM), figures)`.
fn measure(lab: &VmLab, args: &Args) -> Result<((vmlab::Accel, String, String), Figures)> {
    let record = lab.record();
    let stack = record.root.join("bench.yml");
    std::fs::write(&stack, STACK)?;
    shoal(
        lab,
        &[
            "stack",
            "deploy",
            "--detach=false",
            "-c",
            &stack.to_string_lossy(),
            "vb",
        ],
    )?;
    let (srv_task, srv_vm) = task_of(lab, "vb_srv")?;
    let (cli_task, cli_vm) = task_of(lab, "vb_cli")?;
    if srv_vm == cli_vm {
        bail!("srv and cli both run on {srv_vm}: nothing crosses between VMs");
    }
    let srv_addr = record.vm(&srv_vm)?.addr.to_string();
    let plain_addr = task_address(lab, &srv_vm, &srv_task, "vb_plain")?;
    let secure_addr = task_address(lab, &srv_vm, &srv_task, "vb_secure")?;
    let srv_ns = format!("/var/lib/shoal/netd/netns/{srv_task}");
    let cli_ns = format!("/var/lib/shoal/netd/netns/{cli_task}");
    lab.exec(&srv_vm, &format!("iperf3 -s -D -p {PORT}"))?;
    lab.exec(
        &srv_vm,
        &format!("nsenter --net={srv_ns} iperf3 -s -D -p {PORT}"),
    )?;
    let mut figures = Figures::new();
    for round in 0..args.rounds {
        let paths = [
            ("underlay", String::new(), &srv_addr),
            ("plain", format!("nsenter --net={cli_ns} "), &plain_addr),
            (
                "encrypted",
                format!("nsenter --net={cli_ns} "),
                &secure_addr,
            ),
        ];
        for (kind, prefix, addr) in paths {
            let json = lab.exec(
                &cli_vm,
                &format!("{prefix}iperf3 -c {addr} -p {PORT} -t {} -J", args.seconds),
            )?;
            let gbps = gbps(&json).with_context(|| format!("{kind}, round {round}"))?;
            eprintln!("round {round}: {kind} {gbps:.2} Gbit/s");
            figures.entry(kind).or_default().push(gbps);
        }
    }
    Ok(((record.accel, cli_vm, srv_vm), figures))
}

fn gbps(iperf_json: &str) -> Result<f64> {
    let report: serde_json::Value =
        serde_json::from_str(iperf_json).context("iperf3 printed no JSON")?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3: {error}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .ok_or_else(|| anyhow!("iperf3 report without end.sum_received"))
}

fn shoal(lab: &VmLab, args: &[&str]) -> Result<String> {
    Ok(lab.shoal(args)?)
}

/// The one running task of a service: (task id, VM).
fn task_of(lab: &VmLab, service: &str) -> Result<(String, String)> {
    let rows = shoal_e2e::lab::json_lines(&shoal(
        lab,
        &["service", "ps", "--no-trunc", service, "--format", "json"],
    )?)
    .map_err(|e| anyhow!(e))?;
    rows.iter()
        .find(|r| r["State"] == "running")
        .map(|r| {
            (
                r["ID"].as_str().unwrap_or_default().to_string(),
                r["Node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .ok_or_else(|| anyhow!("no running task of {service}"))
}

/// The task's address on a network: the address in its namespace inside the
/// network's subnet.
fn task_address(lab: &VmLab, vm: &str, task: &str, network: &str) -> Result<String> {
    let inspect: serde_json::Value =
        serde_json::from_str(&shoal(lab, &["network", "inspect", network])?)?;
    let subnet = inspect[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .ok_or_else(|| anyhow!("network inspect {network}: no subnet"))?
        .to_string();
    let prefix = subnet
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}."))
        .ok_or_else(|| anyhow!("subnet {subnet}"))?;
    let json = lab.exec(
        vm,
        &format!("nsenter --net=/var/lib/shoal/netd/netns/{task} ip -j -4 addr show"),
    )?;
    let links: Vec<serde_json::Value> = serde_json::from_str(&json)?;
    links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .find(|a| a.starts_with(&prefix))
        .ok_or_else(|| anyhow!("{task} has no address in {subnet} ({network})"))
}
