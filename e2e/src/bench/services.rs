//! Steps of the benchmarks that time services on a one-host lab
//! (`shoal-bench`, `shoal-bench-mounts-logs`): a change timed until its
//! tasks run, and a removal that leaves the host quiet. Included as a
//! module of its own (`#[path]`) by the binaries that use it.

use std::time::{Duration, Instant};

use anyhow::Result;
use shoal_e2e::lab::Lab;

use super::bench::wait_running;

/// The services' `--stop-grace-period`, and `shoal-bench`'s floor's wait
/// before SIGKILL (the web images exit at SIGTERM, so neither side waits
/// it out).
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// `service create -d` of `replicas` tasks of `image`, restarting at once
/// and stopped with [`STOP_GRACE`]; `extra` adds flags, `command` replaces
/// the image's.
pub fn create_service(
    lab: &Lab,
    name: &str,
    replicas: usize,
    image: &str,
    extra: &[&str],
    command: &[&str],
) -> Result<()> {
    let replicas = replicas.to_string();
    let grace = format!("{}s", STOP_GRACE.as_secs());
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &replicas,
        "--restart-delay",
        "0s",
        "--stop-grace-period",
        &grace,
    ];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(command);
    lab.shoal_ok(args)?;
    Ok(())
}

/// Times `change` from its start until `replicas` tasks of the service run
/// its new spec and none of the old one is left.
pub fn timed_until_running(
    lab: &Lab,
    rt: &tokio::runtime::Runtime,
    name: &str,
    replicas: usize,
    change: impl FnOnce() -> Result<()>,
) -> Result<f64> {
    let started = Instant::now();
    change()?;
    rt.block_on(async {
        wait_running(&mut lab.control_client("m1").await?, name, replicas).await
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// `service rm`, then waits until its containers are gone, so that the next
/// measure starts on a quiet host.
pub fn remove_service(lab: &Lab, name: &str) -> Result<()> {
    lab.shoal_ok(["service", "rm", name])?;
    lab.wait_until(
        &format!("the containers of {name} gone"),
        Duration::from_secs(120),
        || match lab.running_task_pids("m1") {
            Ok(pids) if pids.is_empty() => Ok(()),
            Ok(pids) => Err(format!("{} still running", pids.len())),
            Err(e) => Err(e.to_string()),
        },
    )?;
    Ok(())
}
