use std::fmt;
use std::path::PathBuf;

/// A 1-based position in the compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Renders `file` or `file (line L, column C)` for messages.
pub struct At<'a>(pub &'a str, pub &'a Option<Location>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(loc) => write!(f, "{} ({})", self.0, loc),
            None => f.write_str(self.0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read compose file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: YAML syntax error: {message}", At(file, location))]
    Syntax {
        file: String,
        location: Option<Location>,
        message: String,
    },
    /// A `${VAR?err}` / `${VAR:?err}` without a value, or a malformed `$` expression.
    #[error(
        "{}: invalid interpolation in {key_path}: {message}",
        At(file, location)
    )]
    Interpolation {
        file: String,
        key_path: String,
        location: Option<Location>,
        message: String,
    },
    /// The file is not valid compose (docker's schema check or conversion rejects it too).
    #[error("{}: {key_path} {message}", At(file, location))]
    Invalid {
        file: String,
        key_path: String,
        location: Option<Location>,
        message: String,
    },
    #[error("{file}: unsupported Compose file version: {version}")]
    Version { file: String, version: String },
    #[error("specify a Compose file (with --compose-file)")]
    NoFiles,
    /// Override files must share the first file's version, as docker's.
    #[error("version mismatched between two composefiles : {first} and {other}")]
    VersionMismatch { first: String, other: String },
}

impl ComposeError {
    /// The position the error points at, when it has one.
    pub fn location(&self) -> Option<Location> {
        match self {
            ComposeError::Syntax { location, .. }
            | ComposeError::Interpolation { location, .. }
            | ComposeError::Invalid { location, .. } => *location,
            ComposeError::Read { .. }
            | ComposeError::Version { .. }
            | ComposeError::NoFiles
            | ComposeError::VersionMismatch { .. } => None,
        }
    }
}
