//! The health check flags `service create` and `service update` share
//! (docker's `--health-*` and `--no-healthcheck`), applied as docker's CLI
//! applies them: `--health-cmd` is a `CMD-SHELL` test, a flag left out
//! keeps what the spec has, `--no-healthcheck` alone disables the image's
//! check and refuses any `--health-*` beside it.

use std::time::Duration;

use clap::Args;
use shoal_proto::types::v1::{ContainerSpec, HealthConfig};

use super::{parse, Error};

#[derive(Debug, Clone, Default, Args)]
pub struct HealthFlags {
    /// Command to run to check health
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub health_interval: Option<Duration>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub health_timeout: Option<Duration>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u64>,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub health_start_period: Option<Duration>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub health_start_interval: Option<Duration>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

/// Docker's smallest health check duration (0 means "inherit").
const MINIMUM: Duration = Duration::from_millis(1);

/// Milliseconds of a health check duration, refusing what docker refuses:
/// a duration under a millisecond other than 0.
fn millis(d: Duration, field: &str) -> Result<u64, Error> {
    if !d.is_zero() && d < MINIMUM {
        return Err(Error::Input(format!(
            "{field} in Healthcheck cannot be less than 1ms"
        )));
    }
    Ok(parse::millis(d))
}

impl HealthFlags {
    fn any_setting(&self) -> bool {
        self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some()
    }

    /// Writes the given flags into the container's health check.
    pub fn apply(&self, container: &mut ContainerSpec) -> Result<(), Error> {
        if !self.any_setting() && !self.no_healthcheck {
            return Ok(());
        }
        if self.no_healthcheck {
            if self.any_setting() {
                return Err(Error::Input(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            container.healthcheck = Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            });
            return Ok(());
        }
        let check = container
            .healthcheck
            .get_or_insert_with(HealthConfig::default);
        if check.test.first().is_some_and(|t| t == "NONE") {
            check.test.clear();
        }
        if let Some(d) = self.health_interval {
            check.interval_ms = millis(d, "Interval")?;
        }
        if let Some(d) = self.health_timeout {
            check.timeout_ms = millis(d, "Timeout")?;
        }
        if let Some(d) = self.health_start_period {
            check.start_period_ms = millis(d, "StartPeriod")?;
        }
        if let Some(d) = self.health_start_interval {
            check.start_interval_ms = millis(d, "StartInterval")?;
        }
        if let Some(retries) = self.health_retries {
            check.retries = retries;
        }
        if let Some(cmd) = &self.health_cmd {
            check.test = if cmd.is_empty() {
                Vec::new()
            } else {
                vec!["CMD-SHELL".into(), cmd.clone()]
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        health: HealthFlags,
    }

    fn applied(args: &[&str], container: &mut ContainerSpec) -> Result<(), Error> {
        let cli = Cli::try_parse_from(std::iter::once("shoal").chain(args.iter().copied()))
            .map_err(|e| Error::Input(e.to_string()))?;
        cli.health.apply(container)
    }

    #[test]
    fn health_flags_make_a_cmd_shell_check() {
        let mut container = ContainerSpec::default();
        applied(
            &[
                "--health-cmd",
                "test -f /tmp/ok",
                "--health-interval",
                "1s",
                "--health-timeout",
                "500ms",
                "--health-retries",
                "2",
                "--health-start-period",
                "1m",
                "--health-start-interval",
                "2s",
            ],
            &mut container,
        )
        .unwrap();
        assert_eq!(
            container.healthcheck,
            Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
                interval_ms: 1000,
                timeout_ms: 500,
                retries: 2,
                start_period_ms: 60_000,
                start_interval_ms: 2000,
            })
        );
    }

    #[test]
    fn update_changes_only_the_given_fields() {
        let mut container = ContainerSpec {
            healthcheck: Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval_ms: 1000,
                retries: 3,
                ..HealthConfig::default()
            }),
            ..ContainerSpec::default()
        };
        applied(&["--health-retries", "5"], &mut container).unwrap();
        let check = container.healthcheck.clone().unwrap();
        assert_eq!(check.test, ["CMD-SHELL", "true"]);
        assert_eq!((check.interval_ms, check.retries), (1000, 5));
        // No flag at all: untouched.
        applied(&[], &mut container).unwrap();
        assert_eq!(container.healthcheck, Some(check));
        // An empty --health-cmd goes back to the image's test.
        applied(&["--health-cmd", ""], &mut container).unwrap();
        assert!(container.healthcheck.as_ref().unwrap().test.is_empty());
    }

    #[test]
    fn no_healthcheck_disables_and_refuses_other_health_flags() {
        let mut container = ContainerSpec::default();
        applied(&["--no-healthcheck"], &mut container).unwrap();
        assert_eq!(container.healthcheck.as_ref().unwrap().test, ["NONE"]);
        let err = applied(
            &["--no-healthcheck", "--health-retries", "2"],
            &mut container,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "--no-healthcheck conflicts with --health-* options");
        // A setting after NONE turns the image's check back on.
        applied(&["--health-interval", "2s"], &mut container).unwrap();
        let check = container.healthcheck.unwrap();
        assert!(check.test.is_empty());
        assert_eq!(check.interval_ms, 2000);
    }

    #[test]
    fn durations_under_a_millisecond_are_refused_as_docker_does() {
        let mut container = ContainerSpec::default();
        let err = applied(&["--health-interval", "500us"], &mut container)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "Interval in Healthcheck cannot be less than 1ms");
        applied(&["--health-timeout", "0"], &mut container).unwrap();
        assert_eq!(container.healthcheck.unwrap().timeout_ms, 0);
        assert!(applied(&["--health-interval", "-1s"], &mut ContainerSpec::default()).is_err());
    }
}
