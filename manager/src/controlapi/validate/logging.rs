//! The check of a service's logging driver (`--log-driver`, `--log-opt`,
//! compose `logging`): the drivers the agent keeps logs with and the
//! options each takes, in docker's words where docker refuses the same.
//!
//! The size and count parsing is std only and kept here on purpose: the
//! agent reads the same options when it starts a task's logger, and the
//! two could later share one function in shoal-proto.

use std::collections::HashMap;

use shoal_proto::types::v1::LogDriver;

use super::{field, more, refusal, size, MAX_LOG_FILES, MAX_LOG_FILE_BYTES};
use crate::store::StoreError;

const DRIVER_FLAGS: &str = "--log-driver, logging.driver";
const OPT_FLAGS: &str = "--log-opt, logging.options";

/// The drivers the agent keeps logs with.
const DRIVERS: &[&str] = &["json-file", "local", "none"];

/// What a driver without a name is: docker's compose `logging:` without
/// `driver` keeps the default driver, with the options given.
const DEFAULT_DRIVER: &str = "json-file";

/// The options of json-file and local.
const FILE_OPTIONS: &[&str] = &["max-size", "max-file", "compress"];

/// Options docker's json-file and local take that shoal does not honour
/// (log attributes, the log tag, docker's delivery mode): refused, so nobody
/// believes their logs carry what the agent never writes.
const DOCKER_ONLY_OPTIONS: &[&str] = &[
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
    "max-buffer-size",
];

pub(super) fn log_driver(s: &str, driver: &LogDriver) -> Result<(), StoreError> {
    field(s, "logging driver", DRIVER_FLAGS, &driver.name)?;
    let name = if driver.name.is_empty() {
        DEFAULT_DRIVER
    } else {
        driver.name.as_str()
    };
    // Sorted, so the option a refusal names is the same at every try.
    let mut keys: Vec<&String> = driver.options.keys().collect();
    keys.sort();
    for key in &keys {
        field(s, "log opt", OPT_FLAGS, key)?;
    }
    if !DRIVERS.contains(&name) {
        return Err(refusal(
            s,
            format!(
                "logging driver {name:?} is not supported: shoal keeps logs with \
                 json-file, local or none ({DRIVER_FLAGS})"
            ),
        ));
    }
    if name != "none" {
        return file_options(s, name, &keys, &driver.options);
    }
    // docker's none ignores options; shoal refuses what would be ignored.
    match keys.first() {
        Some(key) => Err(refusal(
            s,
            format!("the none log driver takes no options, not '{key}' ({OPT_FLAGS})"),
        )),
        None => Ok(()),
    }
}

/// json-file's and local's options: which keys, then each value.
fn file_options(
    s: &str,
    driver: &str,
    keys: &[&String],
    options: &HashMap<String, String>,
) -> Result<(), StoreError> {
    let refuse = |message: String| Err(refusal(s, format!("{message} ({OPT_FLAGS})")));
    for key in keys {
        if DOCKER_ONLY_OPTIONS.contains(&key.as_str()) {
            return refuse(format!(
                "log opt '{key}' of the {driver} log driver is not supported by shoal \
                 (it takes {})",
                FILE_OPTIONS.join(", ")
            ));
        }
        if !FILE_OPTIONS.contains(&key.as_str()) {
            return refuse(format!("unknown log opt '{key}' for {driver} log driver"));
        }
    }
    if let Some(value) = options.get("max-size") {
        let bytes = match size_in_bytes(value) {
            Ok(bytes) => bytes,
            Err(why) => return refuse(format!("invalid value for max-size: {value}: {why}")),
        };
        if bytes == 0 {
            return refuse("max-size must be a positive number".into());
        }
        if bytes > MAX_LOG_FILE_BYTES {
            return Err(more(
                s,
                format!("max-size of {}", size(i128::from(bytes))),
                OPT_FLAGS,
                size(i128::from(MAX_LOG_FILE_BYTES)),
            ));
        }
    }
    let max_file = match options.get("max-file") {
        Some(value) => {
            let Some(files) = whole_number(value) else {
                return refuse(format!(
                    "invalid value for max-file: {value}: not a whole number"
                ));
            };
            if files < 1 {
                return refuse("max-file cannot be less than 1".into());
            }
            if files > i128::from(MAX_LOG_FILES) {
                return Err(more(
                    s,
                    format!("max-file of {files}"),
                    OPT_FLAGS,
                    MAX_LOG_FILES.to_string(),
                ));
            }
            Some(files)
        }
        None => None,
    };
    if let Some(value) = options.get("compress") {
        let Some(compress) = go_bool(value) else {
            return refuse(format!(
                "invalid boolean value for compress: '{value}' (true or false)"
            ));
        };
        // Only rotated files are compressed: with one file there are none.
        if compress && max_file == Some(1) {
            return refuse("compress cannot be true when max-file is less than 2".into());
        }
    }
    Ok(())
}

/// A log file size as docker writes it: go-units' grammar (a number,
/// possibly with a fraction, an optional space, then `k`, `m`, `g`, `t` or
/// `p` in any case, optionally followed by `b` or `ib`; `b` or nothing is
/// bytes) with 1024-based units (`10m` is 10 MiB), and go-units' messages.
pub fn size_in_bytes(value: &str) -> Result<u64, String> {
    let invalid_size = || format!("invalid size: '{value}'");
    let sep = value
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid_size)?;
    // `sep` is an ASCII character's index, so both slices are on boundaries.
    let (number, suffix) = if value.as_bytes()[sep] == b' ' {
        (&value[..sep], &value[sep + 1..])
    } else {
        (&value[..=sep], &value[sep + 1..])
    };
    let plain = !number.is_empty()
        && number.chars().any(|c| c.is_ascii_digit())
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    if !plain {
        return Err(invalid_size());
    }
    let amount: f64 = number.parse().map_err(|_| invalid_size())?;
    let invalid_suffix = || format!("invalid suffix: '{suffix}'");
    let lower = suffix.to_ascii_lowercase();
    let unit: u32 = match lower.as_bytes() {
        [] | [b'b'] => 0,
        [unit, rest @ ..] if suffix.len() <= 3 => {
            let power = match unit {
                b'k' => 1,
                b'm' => 2,
                b'g' => 3,
                b't' => 4,
                b'p' => 5,
                _ => return Err(invalid_suffix()),
            };
            if !matches!(rest, [] | [b'b'] | [b'i', b'b']) {
                return Err(invalid_suffix());
            }
            power
        }
        _ => return Err(invalid_suffix()),
    };
    let bytes = amount * 1024f64.powi(unit as i32);
    // Beyond u64 is far beyond any limit; saturate and let the caller say so.
    Ok(if bytes >= u64::MAX as f64 {
        u64::MAX
    } else {
        bytes as u64
    })
}

/// Go's `strconv.Atoi` for what a file count is written as (a sign, then
/// digits); `None` for anything else. Wider than needed, so a huge count is
/// a count over the limit rather than a syntax error.
fn whole_number(value: &str) -> Option<i128> {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Go's `strconv.ParseBool`, which docker reads `compress` with.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
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

    #[test]
    fn sizes_read_as_docker_writes_them_in_binary_units() {
        for (text, bytes) in [
            ("10m", 10 << 20),
            ("1g", 1 << 30),
            ("512k", 512 << 10),
            ("4096", 4096),
            ("100b", 100),
            ("1.5k", 1536),
            ("2 MiB", 2 << 20),
            ("3MB", 3 << 20),
            ("1T", 1 << 40),
        ] {
            assert_eq!(size_in_bytes(text), Ok(bytes), "{text}");
        }
        for (text, why) in [
            ("", "invalid size: ''"),
            ("m", "invalid size: 'm'"),
            ("-1m", "invalid size: '-1m'"),
            ("1.2.3", "invalid size: '1.2.3'"),
            ("10q", "invalid suffix: 'q'"),
            ("10mm", "invalid suffix: 'mm'"),
            ("10kibb", "invalid suffix: 'kibb'"),
            ("10bb", "invalid suffix: 'bb'"),
        ] {
            assert_eq!(size_in_bytes(text), Err(why.to_string()), "{text}");
        }
        assert_eq!(size_in_bytes("99999999999p"), Ok(u64::MAX), "saturates");
    }

    #[test]
    fn whole_numbers_and_booleans_read_as_go_reads_them() {
        assert_eq!(whole_number("+3"), Some(3));
        assert_eq!(whole_number("-1"), Some(-1));
        assert_eq!(whole_number("3.0"), None);
        assert_eq!(whole_number(""), None);
        assert_eq!(go_bool("T"), Some(true));
        assert_eq!(go_bool("False"), Some(false));
        assert_eq!(go_bool("yes"), None);
    }
}
