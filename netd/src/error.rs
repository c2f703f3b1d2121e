//! netd's error type: every variant says which kernel object or file the
//! failing step was about, so a log line is enough to find the cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or view names something netd refuses before touching the
    /// kernel (bad id, unparsable address, name collision).
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },

    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },

    #[error("nftables: {0}")]
    Nft(#[from] nftables::helper::NftablesError),

    #[error("nftables: {0}")]
    NftJson(#[from] serde_json::Error),

    /// The DNS server could not open a socket where it was asked to answer
    /// (the address is not on this host yet, or the port is taken).
    #[error("DNS: cannot listen on {proto} {addr}: {source}")]
    DnsListen {
        proto: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The WireGuard mesh device (kernel or boringtun) failed a step.
    #[error("WireGuard: {op}: {source}")]
    WireGuard {
        op: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("a worker thread of netd stopped unexpectedly while {0}")]
    Thread(&'static str),

    /// Several independent best-effort steps failed (teardown).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn netlink(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
        let op = op.into();
        move |source| Error::Netlink { op, source }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let op = op.into();
        move |source| Error::Sys { op, source }
    }

    /// Folds the errors of a best-effort sequence into one result.
    pub(crate) fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }
}

/// The errno a netlink request failed with, if it was refused by the kernel.
pub(crate) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}
