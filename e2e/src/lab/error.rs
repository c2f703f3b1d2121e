use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong bringing a lab up, using it or tearing it down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid lab configuration: {0}")]
    Config(String),
    #[error("lab {name:?} is already up under {root}: run `./scripts/lab down` first")]
    AlreadyUp { name: String, root: PathBuf },
    #[error(
        "{root} exists and is not a lab root (no lab.json in it, not empty): refusing to use it"
    )]
    ForeignRoot { root: PathBuf },
    #[error("no free /24 left for a lab in 10.201.0.0/16")]
    NoSubnet,
    #[error("no host {host:?} in lab {lab:?}")]
    UnknownHost { lab: String, host: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("lab record {path}: {source}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {detail}")]
    Fixture { what: String, detail: String },
    #[error("{what} not ready within {timeout:?}: {detail}")]
    Timeout {
        what: String,
        timeout: Duration,
        detail: String,
    },
    #[error("{what} exited early ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        what: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("lab teardown met {} error(s) and left {} thing(s) behind:\n{}", errors.len(), leaks.len(), errors.iter().chain(leaks).cloned().collect::<Vec<_>>().join("\n"))]
    Teardown {
        errors: Vec<String>,
        leaks: Vec<String>,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
