//! `--log-driver` and `--log-opt` of `service create` and `service update`,
//! and the service's logging driver as `service inspect` shows it. Which
//! drivers and options exist is the manager's to say (it refuses the
//! others before anything is written); the CLI only reads the flags.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Args;
use serde_json::{json, Map, Value};
use shoal_proto::types::v1::{LogDriver, TaskSpec};

use super::Error;

/// The same on `create` and `update`: docker's `--log-driver` sets the
/// driver and its options together (on `update` it replaces both).
#[derive(Debug, Clone, Default, Args)]
pub struct LogFlags {
    /// Logging driver for service (json-file, local or none)
    #[arg(long, value_name = "DRIVER", value_parser = driver_name)]
    pub log_driver: Option<String>,
    /// Logging driver options (KEY=VALUE: max-size, max-file, compress), with --log-driver
    #[arg(long, value_name = "KEY=VALUE", value_parser = log_opt)]
    pub log_opt: Vec<(String, String)>,
}

impl LogFlags {
    /// docker's `updateLogDriver` and `toLogDriver`: `--log-driver` gives
    /// the driver and all its options (`--log-opt`, nothing kept of the
    /// old ones). docker drops `--log-opt` without `--log-driver` silently;
    /// shoal refuses it, so no option is lost unnoticed.
    pub fn apply(&self, task: &mut TaskSpec) -> Result<(), Error> {
        match &self.log_driver {
            Some(name) => {
                task.log_driver = Some(LogDriver {
                    name: name.clone(),
                    // A key given twice: the last one counts, as in docker.
                    options: self.log_opt.iter().cloned().collect(),
                })
            }
            None if !self.log_opt.is_empty() => {
                return Err(Error::Usage(
                    "--log-opt requires --log-driver: give the driver with all its options".into(),
                ))
            }
            None => {}
        }
        Ok(())
    }
}

fn driver_name(input: &str) -> Result<String, String> {
    if input.trim().is_empty() {
        return Err("a logging driver name is needed (json-file, local or none)".into());
    }
    Ok(input.to_string())
}

/// `--log-opt max-size=10m`. docker takes a bare `KEY` as an empty value;
/// no option of shoal's drivers means anything empty, so say so here.
fn log_opt(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!(
            "invalid log opt {input:?}: log opts are KEY=VALUE (e.g. max-size=10m)"
        )),
    }
}

/// docker's `TaskTemplate.LogDriver` (`Name` and `Options`, each left out
/// when empty, as docker's `omitempty`); `None` for a service without one.
pub fn inspect_json(driver: Option<&LogDriver>) -> Option<Value> {
    let driver = driver?;
    let mut object = Map::new();
    if !driver.name.is_empty() {
        object.insert("Name".into(), json!(driver.name));
    }
    if !driver.options.is_empty() {
        object.insert("Options".into(), json!(sorted(driver)));
    }
    Some(Value::Object(object))
}

/// docker's `Log Driver:` block of `service inspect --pretty`.
pub fn pretty(t: &mut String, driver: Option<&LogDriver>) {
    let Some(driver) = driver else { return };
    let _ = writeln!(t, "Log Driver:");
    if !driver.name.is_empty() {
        let _ = writeln!(t, " {:<18} {}", "Name:", driver.name);
    }
    if !driver.options.is_empty() {
        let _ = writeln!(t, " LogOpts:");
        for (key, value) in sorted(driver) {
            if value.is_empty() {
                let _ = writeln!(t, "  {key}");
            } else {
                let _ = writeln!(t, "  {key}:       {value}");
            }
        }
    }
}

/// The options in a stable order (for `service history`'s comparison too).
pub fn sorted(driver: &LogDriver) -> BTreeMap<&str, &str> {
    driver
        .options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(driver: Option<&str>, opts: &[&str]) -> LogFlags {
        LogFlags {
            log_driver: driver.map(|d| driver_name(d).unwrap()),
            log_opt: opts.iter().map(|o| log_opt(o).unwrap()).collect(),
        }
    }

    #[test]
    fn the_driver_comes_with_all_its_options_and_replaces_the_old_ones() {
        let mut task = TaskSpec::default();
        flags(Some("json-file"), &["max-size=10m", "max-file=3"])
            .apply(&mut task)
            .unwrap();
        let driver = task.log_driver.clone().unwrap();
        assert_eq!(driver.name, "json-file");
        assert_eq!(driver.options["max-size"], "10m");
        assert_eq!(driver.options["max-file"], "3");
        flags(Some("local"), &["max-size=1m"])
            .apply(&mut task)
            .unwrap();
        let driver = task.log_driver.clone().unwrap();
        assert_eq!(driver.name, "local");
        assert_eq!(
            driver.options.keys().collect::<Vec<_>>(),
            ["max-size"],
            "the old options went with the old driver"
        );
        // No flag: the driver stays.
        flags(None, &[]).apply(&mut task).unwrap();
        assert_eq!(task.log_driver.unwrap().name, "local");
    }

    #[test]
    fn options_without_a_driver_are_refused() {
        let mut task = TaskSpec::default();
        let err = flags(None, &["max-size=1m"]).apply(&mut task).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("--log-opt requires --log-driver"),
            "{err}"
        );
        assert_eq!(task.log_driver, None);
    }

    #[test]
    fn flags_read_key_value_and_a_name() {
        assert_eq!(
            log_opt("max-size=10m").unwrap(),
            ("max-size".into(), "10m".into())
        );
        assert_eq!(log_opt("tag=a=b").unwrap(), ("tag".into(), "a=b".into()));
        assert!(log_opt("max-size").is_err());
        assert!(log_opt("=1").is_err());
        assert!(driver_name("").is_err());
        assert_eq!(driver_name("none").unwrap(), "none");
    }

    #[test]
    fn inspect_shows_dockers_shape() {
        let driver = LogDriver {
            name: "json-file".into(),
            options: [("max-size".to_string(), "1m".to_string())].into(),
        };
        assert_eq!(
            inspect_json(Some(&driver)).unwrap(),
            json!({ "Name": "json-file", "Options": { "max-size": "1m" } })
        );
        let none = LogDriver {
            name: "none".into(),
            options: Default::default(),
        };
        assert_eq!(
            inspect_json(Some(&none)).unwrap(),
            json!({ "Name": "none" })
        );
        assert_eq!(inspect_json(None), None);
        let mut text = String::new();
        pretty(&mut text, Some(&driver));
        assert_eq!(
            text,
            "Log Driver:\n Name:              json-file\n LogOpts:\n  max-size:       1m\n"
        );
    }
}
