//! Health checks, docker's rules: the check a task runs (`check.rs`: the
//! service's settings over the image's `HEALTHCHECK`, then docker's
//! defaults) and the probing that judges the container (`monitor.rs`: start
//! period, intervals, timeout, consecutive failures). The probe runs inside
//! the container through containerd's exec (`ContainerProbe`).
//!
//! What a task does with the verdict is swarmkit's rule, in `task_runner.rs`:
//! it stays `starting` until its first healthy probe, and once unhealthy it
//! leaves the load balancers, is stopped and fails.

mod check;
mod monitor;

pub use check::Check;
pub use monitor::{
    spawn, ContainerProbe, Health, HealthChange, Monitor, Probe, ProbeResult, SinceStart, Timer,
};

/// How much of a failing probe's output travels in a task's status.
pub const REPORTED_OUTPUT: usize = 300;

/// `output` trimmed and cut to [`REPORTED_OUTPUT`] bytes (on a character
/// boundary), for the task's status.
pub fn reported_output(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.len() <= REPORTED_OUTPUT {
        return trimmed.to_string();
    }
    let mut end = REPORTED_OUTPUT;
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &trimmed[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_output_is_trimmed_and_short() {
        assert_eq!(reported_output("  no file\n"), "no file");
        let long = "é".repeat(400);
        let cut = reported_output(&long);
        assert!(cut.len() <= REPORTED_OUTPUT + 3);
        assert!(cut.ends_with("..."));
    }
}
