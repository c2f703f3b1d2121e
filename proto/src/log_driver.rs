//! A task's logging driver (`--log-driver`, `--log-opt`, compose
//! `logging`) as the logger's settings: which format, how large a file
//! grows before it is rotated, how many files are kept, whether rotated
//! files are gzipped. Refusals are in docker's words where docker refuses
//! the same.
//!
//! One reading for the control API, which refuses a bad driver before
//! anything is written, and the agent, which starts the task's logger
//! with it. (Its error implements `Display` by hand: this crate has no
//! thiserror.)

use std::collections::HashMap;
use std::fmt;

use crate::types::v1::LogDriver;

/// The encoding of a task's log files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// docker's `json-file`: one JSON object per line.
    JsonFile,
    /// docker's `local`: length-framed protobuf entries.
    Local,
}

impl Format {
    /// The driver's name, as users write it.
    pub fn driver_name(self) -> &'static str {
        match self {
            Format::JsonFile => "json-file",
            Format::Local => "local",
        }
    }
}

/// How `shoal-logger` keeps a task's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub format: Format,
    /// The size past which the current file is rotated (bytes, > 0).
    pub max_size: u64,
    /// Files kept: the current one and `max_file - 1` rotated ones (>= 1).
    pub max_file: u32,
    /// Rotated files are gzipped.
    pub compress: bool,
}

/// json-file's cap when the task sets none: docker keeps everything (until
/// the disk is full); shoal 10 MiB x 3.
pub const JSON_FILE_DEFAULT: LogConfig = LogConfig {
    format: Format::JsonFile,
    max_size: 10 * MIB,
    max_file: 3,
    compress: false,
};

/// docker's defaults for the local driver.
pub const LOCAL_DEFAULT: LogConfig = LogConfig {
    format: Format::Local,
    max_size: 20 * MIB,
    max_file: 5,
    compress: true,
};

/// The most files kept per task (the control API's limit too): a rotation
/// renames each of them.
pub const MAX_FILES: u32 = 100;

const MIB: u64 = 1024 * 1024;

/// The options json-file and local take.
const FILE_OPTIONS: &[&str] = &["max-size", "max-file", "compress"];

/// Options docker's drivers take that shoal does not honour (log
/// attributes, the tag, docker's delivery mode).
const DOCKER_ONLY_OPTIONS: &[&str] = &[
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
    "max-buffer-size",
];

impl Default for LogConfig {
    fn default() -> LogConfig {
        JSON_FILE_DEFAULT
    }
}

impl LogConfig {
    /// This configuration as a driver with every option explicit (sizes in
    /// bytes): what the executor stores in a container's labels and passes
    /// to `shoal-logger`, and what [`parse`] reads back unchanged.
    pub fn to_driver(&self) -> LogDriver {
        LogDriver {
            name: self.format.driver_name().to_string(),
            options: [
                ("max-size", self.max_size.to_string()),
                ("max-file", self.max_file.to_string()),
                ("compress", self.compress.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }
    }
}

/// Why a logging driver cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogConfigError {
    UnknownDriver(String),
    /// `none` with an option (docker ignores them; shoal refuses what it
    /// would ignore).
    NoneTakesNoOptions(String),
    UnknownOption {
        driver: String,
        key: String,
    },
    /// An option of docker's that shoal does not honour.
    UnsupportedOption {
        driver: String,
        key: String,
    },
    InvalidSize {
        value: String,
        reason: String,
    },
    SizeNotPositive,
    InvalidMaxFile(String),
    MaxFileTooSmall,
    MaxFileTooLarge(u64),
    InvalidCompress(String),
    CompressWithOneFile,
}

impl fmt::Display for LogConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogConfigError::UnknownDriver(name) => {
                write!(f, "logger: no log driver named '{name}' is registered")
            }
            LogConfigError::NoneTakesNoOptions(key) => {
                write!(f, "the none log driver takes no options, not '{key}'")
            }
            LogConfigError::UnknownOption { driver, key } => {
                write!(f, "unknown log opt '{key}' for {driver} log driver")
            }
            LogConfigError::UnsupportedOption { driver, key } => write!(
                f,
                "log opt '{key}' of the {driver} log driver is not supported by shoal (it takes {})",
                FILE_OPTIONS.join(", ")
            ),
            LogConfigError::InvalidSize { value, reason } => {
                write!(f, "invalid value for max-size: {value}: {reason}")
            }
            LogConfigError::SizeNotPositive => write!(f, "max-size must be a positive number"),
            LogConfigError::InvalidMaxFile(value) => {
                write!(f, "invalid value for max-file: {value}: not a whole number")
            }
            LogConfigError::MaxFileTooSmall => write!(f, "max-file cannot be less than 1"),
            LogConfigError::MaxFileTooLarge(files) => {
                write!(f, "max-file of {files} is more than the {MAX_FILES} shoal keeps")
            }
            LogConfigError::InvalidCompress(value) => write!(
                f,
                "invalid boolean value for compress: '{value}' (true or false)"
            ),
            LogConfigError::CompressWithOneFile => {
                write!(f, "compress cannot be true when max-file is less than 2")
            }
        }
    }
}

impl std::error::Error for LogConfigError {}

/// The logger's settings for `driver`; `None` for `none` (nothing kept).
/// An empty name is json-file (compose's `logging:` without a driver).
pub fn parse(driver: &LogDriver) -> Result<Option<LogConfig>, LogConfigError> {
    let name = if driver.name.is_empty() {
        "json-file"
    } else {
        driver.name.as_str()
    };
    // Sorted, so the option a refusal names is the same at every try.
    let mut keys: Vec<&str> = driver.options.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let defaults = match name {
        "none" => {
            return match keys.first() {
                Some(key) => Err(LogConfigError::NoneTakesNoOptions(key.to_string())),
                None => Ok(None),
            }
        }
        "json-file" => JSON_FILE_DEFAULT,
        "local" => LOCAL_DEFAULT,
        other => return Err(LogConfigError::UnknownDriver(other.to_string())),
    };
    for key in &keys {
        let option = |key: &str| (name.to_string(), key.to_string());
        if DOCKER_ONLY_OPTIONS.contains(key) {
            let (driver, key) = option(key);
            return Err(LogConfigError::UnsupportedOption { driver, key });
        }
        if !FILE_OPTIONS.contains(key) {
            let (driver, key) = option(key);
            return Err(LogConfigError::UnknownOption { driver, key });
        }
    }
    file_options(defaults, &driver.options).map(Some)
}

fn file_options(
    defaults: LogConfig,
    options: &HashMap<String, String>,
) -> Result<LogConfig, LogConfigError> {
    let mut config = defaults;
    if let Some(value) = options.get("max-size") {
        config.max_size = size_in_bytes(value).map_err(|reason| LogConfigError::InvalidSize {
            value: value.clone(),
            reason,
        })?;
        if config.max_size == 0 {
            return Err(LogConfigError::SizeNotPositive);
        }
    }
    if let Some(value) = options.get("max-file") {
        let files =
            whole_number(value).ok_or_else(|| LogConfigError::InvalidMaxFile(value.clone()))?;
        if files < 1 {
            return Err(LogConfigError::MaxFileTooSmall);
        }
        config.max_file = match u32::try_from(files) {
            Ok(files) if files <= MAX_FILES => files,
            _ => {
                return Err(LogConfigError::MaxFileTooLarge(
                    u64::try_from(files).unwrap_or(u64::MAX),
                ))
            }
        };
    }
    match options.get("compress") {
        Some(value) => {
            config.compress =
                go_bool(value).ok_or_else(|| LogConfigError::InvalidCompress(value.clone()))?;
            // Only rotated files are compressed: with one file there are none.
            if config.compress && config.max_file < 2 {
                return Err(LogConfigError::CompressWithOneFile);
            }
        }
        // local compresses by default; with one file there is nothing to.
        None => config.compress = defaults.compress && config.max_file >= 2,
    }
    Ok(config)
}

/// A log file size as docker reads it (go-units' `RAMInBytes`: `10m` is
/// 10 MiB); the error is go-units'.
pub fn size_in_bytes(value: &str) -> Result<u64, String> {
    crate::units::ram_in_bytes(value).map(|bytes| bytes.max(0) as u64)
}

/// Go's `strconv.Atoi` for a count: a sign, then digits. Wide, so that a
/// huge count is too large rather than malformed.
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

    fn parsed(name: &str, options: &[(&str, &str)]) -> Option<LogConfig> {
        parse(&driver(name, options)).unwrap_or_else(|e| panic!("{name} {options:?}: {e}"))
    }

    fn refusal(name: &str, options: &[(&str, &str)]) -> String {
        match parse(&driver(name, options)) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("{name} {options:?}: accepted as {c:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_driver() {
        assert_eq!(parsed("", &[]), Some(JSON_FILE_DEFAULT));
        assert_eq!(parsed("json-file", &[]), Some(JSON_FILE_DEFAULT));
        assert_eq!(parsed("local", &[]), Some(LOCAL_DEFAULT));
        assert_eq!(parsed("none", &[]), None);
        assert_eq!(JSON_FILE_DEFAULT.max_size, 10 << 20);
        assert_eq!(LOCAL_DEFAULT.max_size, 20 << 20);
    }

    #[test]
    fn options_override_the_defaults() {
        let config = parsed(
            "json-file",
            &[
                ("max-size", "512k"),
                ("max-file", "7"),
                ("compress", "true"),
            ],
        );
        assert_eq!(
            config,
            Some(LogConfig {
                format: Format::JsonFile,
                max_size: 512 * 1024,
                max_file: 7,
                compress: true,
            })
        );
        let local = parsed("local", &[("max-size", "1g"), ("compress", "false")]);
        assert_eq!(
            local.map(|c| (c.max_size, c.compress)),
            Some((1 << 30, false))
        );
        // local's default compression needs a rotated file to compress.
        assert_eq!(
            parsed("local", &[("max-file", "1")]).map(|c| c.compress),
            Some(false)
        );
    }

    #[test]
    fn a_config_survives_its_driver_form() {
        for config in [JSON_FILE_DEFAULT, LOCAL_DEFAULT] {
            assert_eq!(parse(&config.to_driver()), Ok(Some(config)));
        }
    }

    #[test]
    fn sizes_are_read_in_dockers_units() {
        for (value, bytes) in [
            ("10m", 10 << 20),
            ("1g", 1 << 30),
            ("512k", 512 << 10),
            ("100", 100),
            ("1.5 KiB", 1536),
            ("2MB", 2 << 20),
            ("7b", 7),
        ] {
            assert_eq!(size_in_bytes(value), Ok(bytes), "{value}");
        }
        assert_eq!(size_in_bytes("lots"), Err("invalid size: 'lots'".into()));
        assert_eq!(size_in_bytes("10x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(size_in_bytes("-1"), Err("invalid size: '-1'".into()));
    }

    #[test]
    fn bad_drivers_and_options_are_refused_in_dockers_words() {
        assert_eq!(
            refusal("gelf", &[]),
            "logger: no log driver named 'gelf' is registered"
        );
        assert_eq!(
            refusal("json-file", &[("foo", "1")]),
            "unknown log opt 'foo' for json-file log driver"
        );
        assert_eq!(
            refusal("local", &[("zzz", "1"), ("aaa", "1")]),
            "unknown log opt 'aaa' for local log driver"
        );
        assert!(refusal("json-file", &[("tag", "x")]).contains("not supported by shoal"));
        assert_eq!(
            refusal("none", &[("max-size", "1m")]),
            "the none log driver takes no options, not 'max-size'"
        );
        assert_eq!(
            refusal("json-file", &[("max-file", "0")]),
            "max-file cannot be less than 1"
        );
        assert_eq!(
            refusal("json-file", &[("max-file", "three")]),
            "invalid value for max-file: three: not a whole number"
        );
        assert!(refusal("json-file", &[("max-file", "101")]).contains("more than the 100"));
        assert_eq!(
            refusal("json-file", &[("max-size", "0")]),
            "max-size must be a positive number"
        );
        assert_eq!(
            refusal("json-file", &[("max-size", "big")]),
            "invalid value for max-size: big: invalid size: 'big'"
        );
        assert_eq!(
            refusal("local", &[("compress", "yes")]),
            "invalid boolean value for compress: 'yes' (true or false)"
        );
        assert_eq!(
            refusal("json-file", &[("compress", "true"), ("max-file", "1")]),
            "compress cannot be true when max-file is less than 2"
        );
    }
}
