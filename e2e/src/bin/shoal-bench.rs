//! `shoal-bench`: start-up and rolling-update speed of a one-host shoal,
//! against bare containerd on the same host in the same run.
//!
//! Each round measures, on the same lab host:
//! - baseline: `ctr run -d` of N containers of web:v1, 8 in parallel (bare
//!   containerd, image already pulled);
//! - floor of the serial update: bare containerd replacing those N
//!   containers by web:v2 one at a time (SIGTERM, exit awaited, task and
//!   container deleted, `ctr run -d` of the new one);
//! - `service create --replicas N` until N tasks run;
//! - `service update --image` with parallelism 10, then 1 (delay 0 s,
//!   monitor 0 s) until every task runs the new image;
//! - a service of N tasks with a health check every second updated with
//!   parallelism 5 (delay 0 s, monitor 0 s) until every new task is healthy.
//!
//! Prints each figure's median over the rounds and its ratio to the
//! figure of bare containerd measured in the same run; Swarm's published
//! figures for this machine are printed beside them for reference. Run it
//! from a release build: see the README's benchmarks section.

#[path = "../bench/bare_containerd.rs"]
mod bare_containerd;
#[path = "../bench/mod.rs"]
mod bench;
#[path = "../bench/services.rs"]
mod services;

use anyhow::{bail, Result};
use bare_containerd::BareContainers;
use bench::{median, rss_mib};
use clap::Parser;
use services::{create_service, remove_service, timed_until_running, STOP_GRACE};
use shoal_e2e::fixtures::images::WEB_PORT;
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::{GetServiceRequest, ListTasksRequest};
use shoal_proto::types::v1::{HealthState, TaskState};
use tonic::transport::Channel;

/// The health-checked service probes every second, as `web:checked` does.
const HEALTH_INTERVAL: &str = "1s";
/// Swarm's published figures on this machine (issue 11): 50 tasks, image
/// update, no health check. Not measured by this tool.
const SWARM_TASKS: usize = 50;
const SWARM_PARALLELISM_1_S: f64 = 88.0;
const SWARM_PARALLELISM_10_S: f64 = 15.6;

#[derive(Parser)]
#[command(about = "shoal start-up and update benchmark against bare containerd")]
struct Args {
    /// Rounds (each figure is the median over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Replicas per service.
    #[arg(long, default_value_t = 50)]
    replicas: usize,
    /// Skip the parallelism-1 update and its bare containerd floor (about
    /// a minute per round).
    #[arg(long)]
    skip_serial_update: bool,
    /// Skip the health-checked update with parallelism 5 (about 20 s per
    /// round at 50 replicas).
    #[arg(long)]
    skip_health_update: bool,
}

/// Every round's figures, in seconds (memory in MiB).
#[derive(Default)]
struct Figures {
    baseline: Vec<f64>,
    floor: Vec<f64>,
    create: Vec<f64>,
    memory: Vec<f64>,
    update10: Vec<f64>,
    update1: Vec<f64>,
    health_update5: Vec<f64>,
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

/// `service update -d --image` with `parallelism`, no delay between tasks
/// and no monitor window (Swarm's default monitor, and shoal's, is 5 s).
fn update_image(lab: &Lab, name: &str, parallelism: u32, image: &str) -> Result<()> {
    let parallelism = parallelism.to_string();
    lab.shoal_ok([
        "service",
        "update",
        "-d",
        "--update-parallelism",
        &parallelism,
        "--update-delay",
        "0s",
        "--update-monitor",
        "0s",
        "--image",
        image,
        name,
    ])?;
    Ok(())
}

/// Fails unless every running task of the service's current spec has a
/// healthy check: proof that the health-checked figure waited for health.
async fn check_healthy(client: &mut ControlClient<Channel>, name: &str) -> Result<()> {
    let service = client
        .get_service(GetServiceRequest {
            id_or_name: name.into(),
        })
        .await?
        .into_inner()
        .service
        .unwrap_or_default();
    let tasks = client
        .list_tasks(ListTasksRequest {
            service_ids: vec![service.meta.unwrap_or_default().id],
            ..Default::default()
        })
        .await?
        .into_inner()
        .tasks;
    let running: Vec<_> = tasks
        .iter()
        .filter(|t| t.spec_version == service.spec_version)
        .filter(|t| t.observed_state() == TaskState::Running)
        .collect();
    let unchecked = running
        .iter()
        .filter(|t| t.status.as_ref().map(|s| s.health()) != Some(HealthState::Healthy))
        .count();
    if running.is_empty() || unchecked > 0 {
        bail!(
            "{name}: {unchecked} of {} running tasks without a healthy check result: \
             the health check is not in effect",
            running.len()
        );
    }
    Ok(())
}

/// One round on the lab, adding its figures.
fn round(
    lab: &Lab,
    rt: &tokio::runtime::Runtime,
    args: &Args,
    round: usize,
    figures: &mut Figures,
) -> Result<()> {
    let registry = lab.registry();
    let v1 = format!("{registry}/web:v1");
    let v2 = format!("{registry}/web:v2");
    let n = args.replicas;

    let mut bare = BareContainers::new(lab)?;
    bare.pull(&v1)?;
    bare.pull(&v2)?;
    let baseline = bare.start_all(&v1, n)?;
    figures.baseline.push(baseline.as_secs_f64());
    if !args.skip_serial_update {
        let floor = bare.replace_serially(&v2, STOP_GRACE)?;
        figures.floor.push(floor.as_secs_f64());
    }
    bare.remove_all()?;

    let name = format!("bench{round}");
    let create = || create_service(lab, &name, n, &v1, &[], &[]);
    let created = timed_until_running(lab, rt, &name, n, create)?;
    figures.create.push(created);
    figures.memory.push(daemons_rss(lab));
    let update10 = || update_image(lab, &name, 10, &v2);
    let updated10 = timed_until_running(lab, rt, &name, n, update10)?;
    figures.update10.push(updated10);
    if !args.skip_serial_update {
        let update1 = || update_image(lab, &name, 1, &v1);
        let updated1 = timed_until_running(lab, rt, &name, n, update1)?;
        figures.update1.push(updated1);
    }
    remove_service(lab, &name)?;

    if !args.skip_health_update {
        let name = format!("bench{round}h");
        let check = format!("wget -q -O /dev/null http://127.0.0.1:{WEB_PORT}/");
        let health = [
            "--health-cmd",
            &check,
            "--health-interval",
            HEALTH_INTERVAL,
            "--health-timeout",
            "1s",
            "--health-retries",
            "2",
        ];
        let create = || create_service(lab, &name, n, &v1, &health, &[]);
        timed_until_running(lab, rt, &name, n, create)?;
        rt.block_on(async { check_healthy(&mut control(lab).await?, &name).await })?;
        let update5 = || update_image(lab, &name, 5, &v2);
        let updated5 = timed_until_running(lab, rt, &name, n, update5)?;
        figures.health_update5.push(updated5);
        rt.block_on(async { check_healthy(&mut control(lab).await?, &name).await })?;
        remove_service(lab, &name)?;
    }

    let last = |xs: &[f64]| xs.last().map_or("skipped".into(), |x| format!("{x:.2}s"));
    eprintln!(
        "round {round}: baseline {}, create {}, update/10 {}, floor/1 {}, update/1 {}, \
         health update/5 {}",
        last(&figures.baseline),
        last(&figures.create),
        last(&figures.update10),
        last(&figures.floor),
        last(&figures.update1),
        last(&figures.health_update5),
    );
    Ok(())
}

fn report(args: &Args, figures: Figures) {
    let n = args.replicas;
    let grace = STOP_GRACE.as_secs();
    println!(
        "shoal benchmark, {n} replicas, {} rounds (medians)",
        args.rounds
    );
    let b = median(figures.baseline);
    println!("  bare containerd, {n} containers 8 at a time: {b:.2} s (baseline)");
    let c = median(figures.create);
    println!(
        "  service create --replicas {n} to all running: {c:.2} s ({:.2}x baseline; target <= 1.2x)",
        c / b
    );
    let mem = median(figures.memory);
    println!(
        "  manager + agent + netd resident memory at {n} tasks: {mem:.1} MiB (target < 64; dockerd here: 125)"
    );
    println!(
        "  rolling image updates, each timed from the CLI call until all {n} tasks run the new \
         image and none of the old is left; --update-delay 0s --update-monitor 0s (no monitor \
         window: Swarm's default, and shoal's, is 5 s per batch), stop-first, \
         --stop-grace-period {grace}s, no networks or published ports:"
    );
    let u10 = median(figures.update10);
    println!("    parallelism 10: {u10:.2} s");
    let mut swarm_ratios = vec![("parallelism 10", u10, SWARM_PARALLELISM_10_S)];
    if !figures.update1.is_empty() {
        let u1 = median(figures.update1);
        let floor = median(figures.floor);
        println!(
            "    parallelism 1: {u1:.2} s ({:.2}x the floor; target <= 1.2x)",
            u1 / floor
        );
        println!(
            "      floor, bare containerd replacing the {n} containers one at a time: {floor:.2} s \
             (each in turn: SIGTERM, SIGKILL after {grace} s, exit awaited; task, container and \
             snapshot deleted; ctr run -d of the other image, which returns once it runs; a \
             fresh network namespace with loopback only; no shoal)"
        );
        swarm_ratios.push(("parallelism 1", u1, SWARM_PARALLELISM_1_S));
    }
    if !figures.health_update5.is_empty() {
        let h5 = median(figures.health_update5);
        println!(
            "    parallelism 5 with a health check: {h5:.2} s (a probe every {HEALTH_INTERVAL}, the \
             first {HEALTH_INTERVAL} after the start; a new task counts once healthy)"
        );
    }
    println!(
        "  for reference, Swarm's published figures on this machine (issue 11; not measured in \
         this run): {SWARM_TASKS} tasks, image update, no health check: parallelism 1 in \
         {SWARM_PARALLELISM_1_S} s, parallelism 10 in {SWARM_PARALLELISM_10_S} s"
    );
    if n == SWARM_TASKS {
        let ratios: Vec<String> = swarm_ratios
            .iter()
            .map(|(what, shoal, swarm)| format!("{what} {:.2}", shoal / swarm))
            .collect();
        println!("    shoal's time over Swarm's: {}", ratios.join(", "));
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.replicas == 0 {
        bail!("--rounds and --replicas must be at least 1");
    }
    // Dropped on every way out, errors included: the lab goes with it.
    let lab = Lab::up(LabConfig {
        replace: true,
        ..LabConfig::new("bench")
    })?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut figures = Figures::default();
    for r in 1..=args.rounds {
        round(&lab, &rt, &args, r, &mut figures)?;
    }
    report(&args, figures);
    lab.down()?;
    Ok(())
}
