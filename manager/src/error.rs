//! The manager's error: what a request or a component failed on, with its
//! causes kept as sources (not flattened into strings), and its mapping to
//! gRPC status codes, in one place for every server of the manager.

use tonic::Status;

use crate::seal::SealError;
use crate::store::StoreError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// What the store or a check of the request refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The embedded database under the store and the Raft log.
    #[error("{context}")]
    Db {
        context: String,
        #[source]
        source: sled::Error,
    },
    /// Raft refused or failed (no quorum, shut down, storage).
    #[error("{context}")]
    Raft {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error("{context}")]
    Seal {
        context: String,
        #[source]
        source: SealError,
    },
    /// Reaching another manager (joining, read index) failed.
    #[error("{context}")]
    Peer {
        context: String,
        #[source]
        source: BoxError,
    },
    /// Anything else, with its cause.
    #[error("{context}")]
    Other {
        context: String,
        #[source]
        source: BoxError,
    },
}

/// Attaches what the manager was doing to a failure.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T, ManagerError>;
}

macro_rules! context_for {
    ($($source:ty => $variant:ident),* $(,)?) => {$(
        impl<T> Context<T> for Result<T, $source> {
            fn context(self, what: impl Into<String>) -> Result<T, ManagerError> {
                self.map_err(|source| ManagerError::$variant {
                    context: what.into(),
                    source: source.into(),
                })
            }
        }
    )*};
}

context_for!(
    std::io::Error => Io,
    sled::Error => Db,
    SealError => Seal,
);

impl ManagerError {
    pub fn raft(context: impl Into<String>, source: impl Into<BoxError>) -> ManagerError {
        ManagerError::Raft {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn peer(context: impl Into<String>, source: impl Into<BoxError>) -> ManagerError {
        ManagerError::Peer {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn other(context: impl Into<String>, source: impl Into<BoxError>) -> ManagerError {
        ManagerError::Other {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The error and its causes on one line.
    pub fn chain(&self) -> String {
        shoal_identity::error_chain(self)
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        match e {
            StoreError::NotFound(m) => Status::not_found(m),
            StoreError::AlreadyExists(m) => Status::already_exists(m),
            StoreError::InvalidArgument(m) => Status::invalid_argument(m),
            StoreError::Conflict(m) => Status::aborted(m),
            StoreError::Unavailable(m) => Status::unavailable(m),
            StoreError::Internal(m) => Status::internal(m),
        }
    }
}

impl From<ManagerError> for Status {
    fn from(e: ManagerError) -> Status {
        let message = e.chain();
        match e {
            ManagerError::Store(e) => Status::from(e),
            ManagerError::Seal {
                source: SealError::Locked,
                ..
            } => Status::unavailable(message),
            ManagerError::Seal {
                source: SealError::BadUnlockKey | SealError::WrongUnlockKey,
                ..
            } => Status::invalid_argument(message),
            ManagerError::Raft { .. } | ManagerError::Peer { .. } => Status::unavailable(message),
            ManagerError::Io { .. }
            | ManagerError::Db { .. }
            | ManagerError::Seal { .. }
            | ManagerError::Other { .. } => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_cause_and_maps_to_one_status() {
        let io = std::fs::read("/nonexistent/shoal-test").context("read the manager identity");
        let e = io.unwrap_err();
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        let status = Status::from(e);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().starts_with("read the manager identity: "),
            "{}",
            status.message()
        );
        let refused = ManagerError::from(StoreError::InvalidArgument("bad".into()));
        assert_eq!(Status::from(refused).code(), tonic::Code::InvalidArgument);
    }
}
