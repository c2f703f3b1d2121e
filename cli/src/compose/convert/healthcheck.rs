//! compose `healthcheck` as docker's `convertHealthcheck` reads it: `test`
//! as a list (`["CMD", ...]`, `["CMD-SHELL", cmd]`, `["NONE"]`) or a plain
//! string (a `CMD-SHELL` command), the durations and `retries`, and
//! `disable: true` for `["NONE"]`.

use shoal_proto::types::v1::HealthConfig;

use super::super::duration::parse_go_duration;
use super::super::node::{KeyPath, Node};
use super::{Converter, Result};

/// Docker's smallest health check duration, in nanoseconds.
const MINIMUM_NANOS: i64 = 1_000_000;

impl Converter<'_> {
    pub(super) fn healthcheck(&self, node: &Node, path: &KeyPath) -> Result<HealthConfig> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        let mut check = HealthConfig::default();
        let mut disable = false;
        for (key, value) in entries {
            let p = path.key(key);
            match key.as_str() {
                "test" => {
                    check.test = match value {
                        Node::Str(command) => vec!["CMD-SHELL".into(), command.clone()],
                        other => self.command(other, &p)?,
                    }
                }
                "interval" => check.interval_ms = self.health_duration(value, &p, "Interval")?,
                "timeout" => check.timeout_ms = self.health_duration(value, &p, "Timeout")?,
                "start_period" => {
                    check.start_period_ms = self.health_duration(value, &p, "StartPeriod")?
                }
                "start_interval" => {
                    check.start_interval_ms = self.health_duration(value, &p, "StartInterval")?
                }
                "retries" => check.retries = self.unsigned(value, &p)?,
                "disable" => disable = matches!(value, Node::Bool(true)),
                _ => {}
            }
        }
        if disable {
            if !check.test.is_empty() {
                return Err(self
                    .src
                    .invalid(path, "test and disable can't be set at the same time"));
            }
            return Ok(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            });
        }
        Ok(check)
    }

    /// A duration in milliseconds; under a millisecond (but not 0) is
    /// refused in docker's words.
    fn health_duration(&self, node: &Node, path: &KeyPath, field: &str) -> Result<u64> {
        let text = self.string(node, path)?;
        let nanos = parse_go_duration(&text).map_err(|e| self.src.invalid(path, e))?;
        if nanos < 0 {
            return Err(self.src.invalid(path, "must not be a negative duration"));
        }
        if nanos != 0 && nanos < MINIMUM_NANOS {
            return Err(self.src.invalid(
                path,
                format!("{field} in Healthcheck cannot be less than 1ms"),
            ));
        }
        Ok((nanos / 1_000_000) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use shoal_proto::types::v1::HealthConfig;

    use crate::compose::{load_str, ComposeError, Stack};

    fn load(services: &str) -> Result<Stack, ComposeError> {
        let text = format!("version: \"3.12\"\nservices:\n{services}");
        load_str(&text, "stack.yml", &HashMap::new())
    }

    fn checks(services: &str) -> HashMap<String, Option<HealthConfig>> {
        let stack = load(services).unwrap_or_else(|e| panic!("load: {e}"));
        assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
        stack
            .services
            .iter()
            .map(|s| {
                let container = s.spec.task.as_ref().and_then(|t| t.container.as_ref());
                (
                    s.name.clone(),
                    container.and_then(|c| c.healthcheck.clone()),
                )
            })
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn healthcheck_reads_as_docker_stack_config_does() {
        // The same file through `docker stack config -c`: a plain string is
        // CMD-SHELL, lists stay as written, `disable` is NONE.
        let got = checks(concat!(
            "  a:\n    image: x\n    healthcheck:\n",
            "      test: wget -q http://127.0.0.1/ || exit 1\n",
            "      interval: 1s\n      timeout: 500ms\n      retries: 2\n",
            "      start_period: 10s\n      start_interval: 2s\n",
            "  b:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n",
            "  c:\n    image: x\n    healthcheck:\n      disable: true\n",
            "  d:\n    image: x\n    healthcheck:\n      test: [\"NONE\"]\n",
            "  e:\n    image: x\n",
        ));
        assert_eq!(
            got["a"],
            Some(HealthConfig {
                test: strings(&["CMD-SHELL", "wget -q http://127.0.0.1/ || exit 1"]),
                interval_ms: 1000,
                timeout_ms: 500,
                retries: 2,
                start_period_ms: 10_000,
                start_interval_ms: 2000,
            })
        );
        let test = |name: &str| got[name].as_ref().map(|c| c.test.clone());
        assert_eq!(test("b"), Some(strings(&["CMD", "true"])));
        assert_eq!(test("c"), Some(strings(&["NONE"])));
        assert_eq!(test("d"), Some(strings(&["NONE"])));
        assert_eq!(got["e"], None);
    }

    #[test]
    fn disable_with_a_test_and_sub_millisecond_durations_are_refused() {
        let both = load("  c:\n    image: x\n    healthcheck:\n      disable: true\n      test: [\"CMD\", \"true\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("test and disable can't be set at the same time"),
            "{both}"
        );
        let short = load("  c:\n    image: x\n    healthcheck:\n      interval: 500us\n")
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("Interval in Healthcheck cannot be less than 1ms"),
            "{short}"
        );
    }
}
