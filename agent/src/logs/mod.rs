//! Task logs on the node: what a container writes to stdout and stderr,
//! kept in its log directory (`<state>/logs/<task id>/`) by `shoal-logger`
//! in the format of the task's logging driver, and read back for
//! `service logs`.
//!
//! - [`driver`]: a task's `LogDriver` (name and options, docker's) as a
//!   [`LogConfig`] (`shoal_proto::log_driver`, which the control API
//!   checks services with).
//! - [`format`]: one record in docker's `json-file` or `local` encoding.
//! - [`files`]: the names of the current and rotated files of a directory.
//! - [`writer`]: the logger's side: lines cut into records, appended, rotated.
//! - [`reader`]: history (tail, since) and, with follow, what comes after,
//!   across rotations, until the logger has closed the directory.

pub use shoal_proto::log_driver as driver;
pub mod files;
mod follow;
pub mod format;
pub mod reader;
mod rotation;
pub mod writer;

#[cfg(test)]
mod tests;

pub use driver::{parse, Format, LogConfig, LogConfigError};
pub use reader::{read, LogReadError};
pub use writer::LogWriter;

/// The longest record: a longer line is cut into pieces of this size, each
/// a partial record (docker's copier does the same).
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// The empty file `shoal-logger` creates in the directory once both of the
/// container's streams ended and every record is written: a following
/// reader ends when it has read everything and this exists.
pub const CLOSED_MARKER: &str = "closed";
