//! The check of a service's logging driver (`--log-driver`, `--log-opt`,
//! compose `logging`): the drivers the agent keeps logs with and the
//! options each takes, in docker's words where docker refuses the same.
//! The reading itself is `shoal_proto::log_driver`, the agent's too: what
//! is accepted here is what the node's logger runs with.

use shoal_proto::log_driver::{self, LogConfigError};
use shoal_proto::types::v1::LogDriver;

use super::{field, more, refusal, size, MAX_LOG_FILES, MAX_LOG_FILE_BYTES};
use crate::store::StoreError;

const DRIVER_FLAGS: &str = "--log-driver, logging.driver";
const OPT_FLAGS: &str = "--log-opt, logging.options";

pub(super) fn log_driver(s: &str, driver: &LogDriver) -> Result<(), StoreError> {
    field(s, "logging driver", DRIVER_FLAGS, &driver.name)?;
    let mut keys: Vec<&String> = driver.options.keys().collect();
    keys.sort();
    for key in &keys {
        field(s, "log opt", OPT_FLAGS, key)?;
    }
    let config = match log_driver::parse(driver) {
        Ok(config) => config,
        Err(LogConfigError::UnknownDriver(name)) => {
            return Err(refusal(
                s,
                format!(
                    "logging driver {name:?} is not supported: shoal keeps logs with \
                     json-file, local or none ({DRIVER_FLAGS})"
                ),
            ))
        }
        Err(LogConfigError::MaxFileTooLarge(files)) => {
            return Err(more(
                s,
                format!("max-file of {files}"),
                OPT_FLAGS,
                MAX_LOG_FILES.to_string(),
            ))
        }
        Err(e) => return Err(refusal(s, format!("{e} ({OPT_FLAGS})"))),
    };
    match config {
        Some(config) if config.max_size > MAX_LOG_FILE_BYTES => Err(more(
            s,
            format!("max-size of {}", size(i128::from(config.max_size))),
            OPT_FLAGS,
            size(i128::from(MAX_LOG_FILE_BYTES)),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(name: &str, options: &[(&str, &str)]) -> LogDriver {
        LogDriver {
            name: name.into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn refusal_of(name: &str, options: &[(&str, &str)]) -> String {
        match log_driver("service web", &driver(name, options)) {
            Err(StoreError::InvalidArgument(m)) => m,
            other => panic!("{name} {options:?}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_supported_drivers_and_options_are_accepted() {
        for (name, options) in [
            ("json-file", &[("max-size", "10m"), ("max-file", "3")][..]),
            ("json-file", &[("compress", "true"), ("max-file", "2")]),
            ("local", &[("max-size", "1g"), ("compress", "false")]),
            ("local", &[]),
            ("none", &[]),
            // compose `logging:` without `driver`: the default, json-file.
            ("", &[("max-size", "512k")]),
            ("", &[]),
        ] {
            log_driver("service web", &driver(name, options))
                .unwrap_or_else(|e| panic!("{name} {options:?}: {e:?}"));
        }
    }

    #[test]
    fn an_unknown_driver_is_refused_naming_what_shoal_supports() {
        assert_eq!(
            refusal_of("gelf", &[]),
            "service web: logging driver \"gelf\" is not supported: shoal keeps logs with \
             json-file, local or none (--log-driver, logging.driver)"
        );
    }

    #[test]
    fn unknown_and_docker_only_options_are_refused() {
        assert_eq!(
            refusal_of("json-file", &[("foo", "1")]),
            "service web: unknown log opt 'foo' for json-file log driver (--log-opt, logging.options)"
        );
        assert!(refusal_of("local", &[("foo", "1")])
            .contains("unknown log opt 'foo' for local log driver"));
        for key in ["labels", "labels-regex", "env", "env-regex", "tag", "mode"] {
            let m = refusal_of("json-file", &[(key, "x")]);
            assert!(
                m.contains(&format!(
                    "log opt '{key}' of the json-file log driver is not supported by shoal"
                )),
                "{m}"
            );
        }
        let m = refusal_of("none", &[("max-size", "1m")]);
        assert!(
            m.contains("the none log driver takes no options, not 'max-size'"),
            "{m}"
        );
        // The option named is the same whatever the map's order.
        let m = refusal_of("json-file", &[("zzz", "1"), ("aaa", "1")]);
        assert!(m.contains("'aaa'"), "{m}");
    }

    #[test]
    fn malformed_values_are_refused_with_dockers_reason() {
        for (options, wanted) in [
            (
                &[("max-size", "lots")][..],
                "invalid value for max-size: lots: invalid size: 'lots'",
            ),
            (
                &[("max-size", "10x")],
                "invalid value for max-size: 10x: invalid suffix: 'x'",
            ),
            (&[("max-size", "0")], "max-size must be a positive number"),
            (
                &[("max-size", "2t")],
                "max-size of 2 TiB (--log-opt, logging.options) is more than shoal allows (max 100 GiB)",
            ),
            (&[("max-file", "0")], "max-file cannot be less than 1"),
            (&[("max-file", "-3")], "max-file cannot be less than 1"),
            (
                &[("max-file", "three")],
                "invalid value for max-file: three: not a whole number",
            ),
            (
                &[("max-file", "100000")],
                "max-file of 100000 (--log-opt, logging.options) is more than shoal allows (max 100)",
            ),
            (
                &[("compress", "yes")],
                "invalid boolean value for compress: 'yes' (true or false)",
            ),
            (
                &[("compress", "true"), ("max-file", "1")],
                "compress cannot be true when max-file is less than 2",
            ),
        ] {
            let m = refusal_of("json-file", options);
            assert!(m.starts_with("service web: "), "{m}");
            assert!(m.contains(wanted), "{options:?}: {m:?} does not say {wanted:?}");
        }
    }
}
