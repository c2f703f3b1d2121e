use std::path::PathBuf;

/// What went wrong talking to containerd or a registry.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("connect to containerd at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("invalid containerd namespace {0:?}")]
    Namespace(String),
    #[error("invalid image reference {reference:?}: {message}")]
    Reference { reference: String, message: String },
    /// A pull failed; `message` is the registry's (or containerd's) own words.
    #[error("pull {image} from {registry}: {message}")]
    Pull {
        image: String,
        registry: String,
        message: String,
    },
    #[error("image {0} is not present; pull it first")]
    ImageNotPresent(String),
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    /// A containerd call failed.
    #[error("{op} {id}: {message}")]
    Containerd {
        op: &'static str,
        id: String,
        code: tonic::Code,
        message: String,
    },
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {id}: user {user:?}: {message}")]
    User {
        id: String,
        user: String,
        message: String,
    },
    #[error("container {id}: invalid stop signal {signal:?}")]
    Signal { id: String, signal: String },
    #[error("container {id}: runtime spec: {message}")]
    Spec { id: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ExecutorError {
    pub(crate) fn containerd(
        op: &'static str,
        id: impl Into<String>,
    ) -> impl FnOnce(tonic::Status) -> ExecutorError {
        let id = id.into();
        move |status| ExecutorError::Containerd {
            op,
            id,
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ExecutorError {
        let path = path.into();
        move |source| ExecutorError::Io { what, path, source }
    }

    /// The gRPC code when containerd refused the call.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ExecutorError::Containerd { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = ExecutorError> = std::result::Result<T, E>;
