//! What the benchmark binaries share (`shoal-bench`, `shoal-netbench`):
//! medians over rounds, resident memory of a process, waiting for a
//! service's tasks through the control API. Each binary includes this file
//! as its own module (`#[path]`), so it stays out of the library the test
//! suites link.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::control::v1::{GetServiceRequest, ListTasksRequest};
use shoal_proto::types::v1::TaskState;
use tonic::transport::Channel;

/// The median of the figures of some rounds (NaN for none).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Resident memory of a process (VmRSS), in MiB; NaN when it is gone.
pub fn rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Waits until `want` tasks of the service run its current spec (and none
/// of an older spec is still alive), for at most 600 s.
pub async fn wait_running(
    client: &mut ControlClient<Channel>,
    service: &str,
    want: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let svc = client
            .get_service(GetServiceRequest {
                id_or_name: service.into(),
            })
            .await?
            .into_inner()
            .service
            .context("no service")?;
        let id = svc.meta.clone().unwrap_or_default().id;
        let tasks = client
            .list_tasks(ListTasksRequest {
                service_ids: vec![id],
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks;
        let running = tasks
            .iter()
            .filter(|t| t.spec_version == svc.spec_version)
            .filter(|t| t.observed_state() == TaskState::Running)
            .filter(|t| t.desired_state <= TaskState::Running as i32)
            .count();
        let old = tasks
            .iter()
            .filter(|t| t.spec_version != svc.spec_version && !t.observed_state().is_terminal())
            .count();
        if running >= want && old == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{service}: only {running}/{want} running after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
