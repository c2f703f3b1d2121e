//! Where a container's output goes, as containerd's shim is told: its
//! logging driver kept in the container's labels (so a restarted agent
//! starts the task the same way), and the stdout and stderr URIs of its
//! task.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use shoal_proto::types::v1::LogDriver;

use super::{ContainerLogs, LABEL_LOG_DRIVER, LABEL_LOG_OPT_PREFIX};
use crate::logs::{self, LogConfigError};

/// The labels recording `logs`.
pub(super) fn labels(logs: ContainerLogs) -> Vec<(String, String)> {
    let driver = match logs {
        ContainerLogs::Kept(config) => config.to_driver(),
        ContainerLogs::Discarded => LogDriver {
            name: "none".to_string(),
            options: HashMap::new(),
        },
    };
    let options = driver
        .options
        .into_iter()
        .map(|(key, value)| (format!("{LABEL_LOG_OPT_PREFIX}{key}"), value));
    std::iter::once((LABEL_LOG_DRIVER.to_string(), driver.name))
        .chain(options)
        .collect()
}

/// What [`labels`] recorded; json-file's default on a container that has
/// no such labels (made by an agent before logging drivers).
pub(super) fn from_labels(
    labels: &HashMap<String, String>,
) -> Result<ContainerLogs, LogConfigError> {
    let Some(name) = labels.get(LABEL_LOG_DRIVER) else {
        return Ok(ContainerLogs::default());
    };
    let options = labels
        .iter()
        .filter_map(|(key, value)| {
            let option = key.strip_prefix(LABEL_LOG_OPT_PREFIX)?;
            Some((option.to_string(), value.clone()))
        })
        .collect();
    let driver = LogDriver {
        name: name.clone(),
        options,
    };
    logs::parse(&driver).map(ContainerLogs::from)
}

/// The task's stdout and stderr for the shim: URIs, or FIFO paths.
#[derive(Debug)]
pub(super) struct Stdio {
    pub stdout: String,
    pub stderr: String,
}

/// How a container's output is handled.
#[derive(Debug)]
pub(super) enum Output {
    /// By the shim, as these say.
    Shim(Stdio),
    /// By a logger the executor starts with these arguments, over FIFOs
    /// ([`start_fifo_logger`]): the runc shim gives a container whose
    /// output goes to a logging binary no stdin, so a container with an
    /// open stdin (and no terminal) cannot have one.
    FifoLogger(Vec<(String, String)>),
}

/// How the output of a container with `logs` is to be handled: through
/// `logger` into `dir` (which the caller makes), or nowhere. `Err` names
/// what is missing.
pub(super) fn output(
    logs: ContainerLogs,
    dir: &Path,
    logger: &Path,
    terminal: bool,
    open_stdin: bool,
) -> Result<Output, String> {
    if (matches!(logs, ContainerLogs::Kept(_)) || terminal) && !logger.is_file() {
        return Err(format!(
            "no logger binary {} on this node (shoal-logger)",
            logger.display()
        ));
    }
    let through_logger = |query: String| format!("binary://{}?{query}", logger.display());
    let uri = match logs {
        ContainerLogs::Kept(config) => {
            let driver = config.to_driver();
            let mut pairs: Vec<(String, String)> = driver.options.into_iter().collect();
            pairs.sort();
            pairs.insert(0, ("driver".to_string(), driver.name));
            pairs.insert(0, ("dir".to_string(), dir.display().to_string()));
            if open_stdin && !terminal {
                return Ok(Output::FifoLogger(pairs));
            }
            through_logger(query(&pairs))
        }
        // The shim copies a terminal only to a FIFO or a logging binary:
        // the logger discards it.
        ContainerLogs::Discarded if terminal => {
            through_logger(query(&[("driver".to_string(), "none".to_string())]))
        }
        // With no stdio at all the shim gives the container /dev/null; a
        // stdin alone makes it copy output to a FIFO, so name a sink.
        ContainerLogs::Discarded if open_stdin => "file:///dev/null".to_string(),
        ContainerLogs::Discarded => String::new(),
    };
    Ok(Output::Shim(Stdio {
        // A terminal merges stderr into stdout (its one stream).
        stderr: if terminal { String::new() } else { uri.clone() },
        stdout: uri,
    }))
}

/// How long a logger may take to open its FIFOs.
const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes the FIFOs `stdout` and `stderr` in `fifo_dir` and starts `logger`
/// on them with `args`; returns once it holds their reading ends, so that
/// nothing the container writes is lost. The logger runs in a process
/// group of its own, outliving a restart of the agent (tokio reaps it
/// when it ends while the agent runs), and ends when the shim closes the
/// FIFOs at the container's exit.
pub(super) async fn start_fifo_logger(
    logger: &Path,
    fifo_dir: &Path,
    args: &[(String, String)],
) -> Result<Stdio, String> {
    std::fs::create_dir_all(fifo_dir).map_err(|e| format!("create {}: {e}", fifo_dir.display()))?;
    let fifo = |name: &str| -> Result<String, String> {
        let path = fifo_dir.join(name);
        match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(path.display().to_string()),
            Err(e) => Err(format!("mkfifo {}: {e}", path.display())),
        }
    };
    let (stdout, stderr) = (fifo("stdout")?, fifo("stderr")?);
    let mut command = tokio::process::Command::new(logger);
    for (key, value) in args {
        command.arg(key).arg(value);
    }
    let mut child = command
        .args(["stdout-fifo", &stdout, "stderr-fifo", &stderr])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start {}: {e}", logger.display()))?;
    // It closes its stdout once it holds the FIFOs (or exits).
    let mut ready = child
        .stdout
        .take()
        .ok_or_else(|| "the logger's stdout was not piped".to_string())?;
    let mut nothing = Vec::new();
    let waited = tokio::time::timeout(LOGGER_READY_TIMEOUT, ready.read_to_end(&mut nothing)).await;
    let why = match waited {
        Err(_) => format!("not ready after {LOGGER_READY_TIMEOUT:?}"),
        Ok(Err(e)) => format!("waiting for it: {e}"),
        // Running, its FIFOs open, unless it exited (it would not before
        // the shim has opened and closed them).
        Ok(Ok(_)) => match child.try_wait() {
            Ok(None) => return Ok(Stdio { stdout, stderr }),
            Ok(Some(status)) => return Err(format!("{} {status}", logger.display())),
            Err(e) => e.to_string(),
        },
    };
    let _ = child.start_kill();
    Err(format!("{}: {why}", logger.display()))
}

/// Ends the logger of FIFOs no shim is going to write to: it sees a writer
/// come and go, which is their end.
pub(super) fn release_fifos(io: &Stdio) {
    for path in [&io.stdout, &io.stderr] {
        // Non-blocking: it fails rather than waits if no reader holds it.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path);
    }
}

fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", query_escaped(key), query_escaped(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `value` for a URI query, as Go's `url.ParseQuery` reads it back.
fn query_escaped(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::driver::LOCAL_DEFAULT;
    use crate::logs::LogConfig;

    #[test]
    fn the_driver_survives_the_labels() {
        let local = ContainerLogs::Kept(LogConfig {
            max_size: 4096,
            ..LOCAL_DEFAULT
        });
        for logs in [local, ContainerLogs::Discarded, ContainerLogs::default()] {
            let labels: HashMap<String, String> = labels(logs).into_iter().collect();
            assert_eq!(from_labels(&labels), Ok(logs));
        }
        assert_eq!(from_labels(&HashMap::new()), Ok(ContainerLogs::default()));
    }

    #[test]
    fn kept_logs_go_through_the_logger_and_discarded_ones_nowhere() {
        let logger = std::env::current_exe().unwrap();
        let dir = Path::new("/state/logs/t 1");
        let json = ContainerLogs::Kept(LogConfig::default());
        let stdio =
            |logs, terminal, open_stdin| match output(logs, dir, &logger, terminal, open_stdin) {
                Ok(Output::Shim(stdio)) => stdio,
                other => panic!("{logs:?}: {other:?}"),
            };
        let io = stdio(json, false, false);
        assert_eq!(
            io.stdout,
            format!(
                "binary://{}?dir=/state/logs/t%201&driver=json-file&compress=false\
                 &max-file=3&max-size=10485760",
                logger.display()
            )
        );
        assert_eq!(io.stderr, io.stdout);
        let tty = stdio(json, true, true);
        assert!(tty.stdout.starts_with("binary://") && tty.stderr.is_empty());
        assert!(matches!(
            output(json, dir, &logger, false, true),
            Ok(Output::FifoLogger(_))
        ));

        let none = stdio(ContainerLogs::Discarded, false, false);
        assert!(none.stdout.is_empty() && none.stderr.is_empty());
        let stdin = stdio(ContainerLogs::Discarded, false, true);
        assert_eq!(stdin.stdout, "file:///dev/null");
        let tty = stdio(ContainerLogs::Discarded, true, false);
        assert!(tty.stdout.ends_with("?driver=none"), "{}", tty.stdout);

        let missing = Path::new("/nonexistent/shoal-logger");
        assert!(output(json, dir, missing, false, false).is_err());
    }
}
