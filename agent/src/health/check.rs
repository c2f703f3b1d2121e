//! The check a task runs: docker's merge of the service's settings over the
//! image's `HEALTHCHECK`, field by field (an empty test or a zero value
//! inherits), then docker's defaults.

use std::time::Duration;

use shoal_proto::types::v1::HealthConfig;

use crate::executor::ImageHealthcheck;

/// Docker's defaults (`daemon/health.go`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u64 = 3;

/// A health check ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What to exec in the container.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Failures in this period after the start do not count; a success ends it.
    pub start_period: Duration,
    /// The interval while in the start period (and not yet healthy).
    pub start_interval: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u64,
}

fn first_set(values: [Duration; 2], default: Duration) -> Duration {
    values.into_iter().find(|d| !d.is_zero()).unwrap_or(default)
}

impl Check {
    /// The check of a task whose service says `service` and whose image says
    /// `image`; `None` when there is none or it is disabled (`NONE`). A test
    /// of a kind docker does not know (the control API refuses it in a
    /// service) counts as none.
    pub fn effective(
        service: Option<&HealthConfig>,
        image: Option<&ImageHealthcheck>,
    ) -> Option<Check> {
        let service = service.cloned().unwrap_or_default();
        let image = image.cloned().unwrap_or_default();
        let test = if service.test.is_empty() {
            image.test.clone()
        } else {
            service.test.clone()
        };
        let argv = match test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        let ms = Duration::from_millis;
        Some(Check {
            argv,
            interval: first_set([ms(service.interval_ms), image.interval], DEFAULT_INTERVAL),
            timeout: first_set([ms(service.timeout_ms), image.timeout], DEFAULT_TIMEOUT),
            start_period: first_set(
                [ms(service.start_period_ms), image.start_period],
                Duration::ZERO,
            ),
            start_interval: first_set(
                [ms(service.start_interval_ms), image.start_interval],
                DEFAULT_START_INTERVAL,
            ),
            retries: [service.retries, image.retries]
                .into_iter()
                .find(|r| *r != 0)
                .unwrap_or(DEFAULT_RETRIES),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn image_check() -> ImageHealthcheck {
        ImageHealthcheck {
            test: strings(&["CMD", "check", "--quick"]),
            interval: Duration::from_secs(2),
            retries: 5,
            ..ImageHealthcheck::default()
        }
    }

    #[test]
    fn the_image_check_applies_with_dockers_defaults() {
        let check = Check::effective(None, Some(&image_check())).unwrap();
        assert_eq!(check.argv, strings(&["check", "--quick"]));
        assert_eq!(check.interval, Duration::from_secs(2));
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!(check.start_period, Duration::ZERO);
        assert_eq!(check.start_interval, DEFAULT_START_INTERVAL);
        assert_eq!(check.retries, 5);
    }

    #[test]
    fn the_service_overrides_field_by_field() {
        let service = HealthConfig {
            test: strings(&["CMD-SHELL", "test -f /tmp/ok"]),
            timeout_ms: 500,
            ..HealthConfig::default()
        };
        let check = Check::effective(Some(&service), Some(&image_check())).unwrap();
        assert_eq!(check.argv, strings(&["/bin/sh", "-c", "test -f /tmp/ok"]));
        assert_eq!(check.timeout, Duration::from_millis(500));
        // Not set in the service: the image's.
        assert_eq!(check.interval, Duration::from_secs(2));
        assert_eq!(check.retries, 5);
        // Settings without a test keep the image's test.
        let interval_only = HealthConfig {
            interval_ms: 1000,
            ..HealthConfig::default()
        };
        let check = Check::effective(Some(&interval_only), Some(&image_check())).unwrap();
        assert_eq!(check.argv, strings(&["check", "--quick"]));
        assert_eq!(check.interval, Duration::from_secs(1));
    }

    #[test]
    fn none_disables_and_nothing_means_none() {
        let none = HealthConfig {
            test: strings(&["NONE"]),
            ..HealthConfig::default()
        };
        assert_eq!(Check::effective(Some(&none), Some(&image_check())), None);
        assert_eq!(Check::effective(None, None), None);
        assert_eq!(Check::effective(Some(&HealthConfig::default()), None), None);
        let unknown = HealthConfig {
            test: strings(&["BOGUS", "x"]),
            ..HealthConfig::default()
        };
        assert_eq!(Check::effective(Some(&unknown), None), None);
    }
}
