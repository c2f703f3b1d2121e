//! Reading a task's logs back (`service logs`): the history first, rotated
//! files oldest first then the current one, filtered by time and cut to the
//! last `tail` records; then, when following, what the logger appends
//! after, across its rotations, until it has closed the directory
//! ([`super::CLOSED_MARKER`]), the directory goes, or the receiver does.
//!
//! The history is read on a blocking thread (it may be many files, some
//! gzipped); following waits on inotify and reads only what was added.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shoal_proto::types::v1::{LogOptions, LogRecord};
use tokio::sync::mpsc::Sender;

use super::driver::Format;
use super::files;
use super::follow::{self, DirWatch};
use super::format::RecordReader;

#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    /// The node holds no log directory for the task: it never ran here,
    /// its driver is `none`, or its logs were removed with its container.
    #[error("no logs of this task on this node")]
    NoLogs,
    #[error("read the log {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("watch the log directory {}: {source}", path.display())]
    Watch { path: PathBuf, source: nix::Error },
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogReadError + '_ {
    move |source| LogReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sends the records of the task whose log directory is `dir` to `tx`, as
/// `options` ask, each with `task_id` filled in. Without follow it returns
/// at the end of what the files hold; with it, once the logger has closed
/// the directory and everything is sent, when the directory is removed,
/// or when `tx` closes. [`LogReadError::NoLogs`] when `dir` does not exist.
pub async fn read(
    dir: &Path,
    task_id: &str,
    options: &LogOptions,
    tx: Sender<LogRecord>,
) -> Result<(), LogReadError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(LogReadError::NoLogs),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LogReadError::NoLogs),
        Err(e) => return Err(io_error(dir)(e)),
    }
    // Watching before the history is read: nothing appended meanwhile is
    // missed.
    let watch = if options.follow {
        Some(DirWatch::new(dir)?)
    } else {
        None
    };
    let filter = Filter {
        task_id: task_id.to_string(),
        since_ns: options.since_ns,
    };
    let history = {
        let (owned, filter, tail, tx) =
            (dir.to_path_buf(), filter.clone(), options.tail, tx.clone());
        tokio::task::spawn_blocking(move || send_history(&owned, &filter, tail, &tx))
            .await
            .map_err(|e| io_error(dir)(io::Error::other(e)))??
    };
    match (watch, history) {
        (Some(watch), Some(position)) => follow::follow(dir, watch, position, &filter, &tx).await,
        _ => Ok(()),
    }
}

/// Which records a reader wants, and whose they are.
#[derive(Clone, Debug)]
pub(super) struct Filter {
    pub task_id: String,
    pub since_ns: i64,
}

impl Filter {
    /// `record` with its task id, if it is wanted.
    pub fn admit(&self, mut record: LogRecord) -> Option<LogRecord> {
        if record.time_ns < self.since_ns {
            return None;
        }
        record.task_id.clone_from(&self.task_id);
        Some(record)
    }
}

/// Where reading has got to: the time of the last record read, which
/// finds the place again in the files a rotation renamed (record times
/// are strictly increasing, see [`super::writer`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Cursor {
    pub last_time_ns: i64,
}

impl Cursor {
    /// Whether `record` is new. A file opened after another (`resuming`)
    /// may repeat records already read, when a rotation showed it twice:
    /// those are skipped until the first newer one.
    pub fn advance(&mut self, record: &LogRecord, resuming: &mut bool) -> bool {
        if *resuming && record.time_ns <= self.last_time_ns {
            return false;
        }
        *resuming = false;
        self.last_time_ns = record.time_ns;
        true
    }
}

/// The current file, open where reading has got to.
pub(super) struct CurrentFile {
    pub records: RecordReader<File>,
    /// (device, inode): a rotation puts another file at its name.
    pub id: (u64, u64),
    /// Just opened after other files: see [`Cursor::advance`].
    pub resuming: bool,
    /// Its framing broke: nothing further in it can be read.
    pub damaged: bool,
}

impl CurrentFile {
    pub fn open(path: &Path, format: Format, resuming: bool) -> io::Result<CurrentFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(CurrentFile {
            records: RecordReader::new(file, format),
            id: (meta.dev(), meta.ino()),
            resuming,
            damaged: false,
        })
    }
}

/// Where the history ended, for following on from it.
pub(super) struct Position {
    pub current: Option<CurrentFile>,
    pub cursor: Cursor,
}

/// Sends the history; `None` when the receiver went meanwhile.
fn send_history(
    dir: &Path,
    filter: &Filter,
    tail: i64,
    tx: &Sender<LogRecord>,
) -> Result<Option<Position>, LogReadError> {
    let empty = Position {
        current: None,
        cursor: Cursor::default(),
    };
    let files = match files::list(dir) {
        Ok(Some(files)) => files,
        Ok(None) => return Ok(Some(empty)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(empty)),
        Err(e) => return Err(io_error(dir)(e)),
    };
    // The current file first, then the rotated ones newest first: a
    // rotation meanwhile shows a file twice (skipped the second time by
    // its times) rather than never.
    let path = files::current(dir, files.format);
    let mut current = match CurrentFile::open(&path, files.format, true) {
        Ok(current) => Some(current),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&path)(e)),
    };
    let mut rotated = Vec::new();
    for file in files.rotated.iter().rev() {
        match file.open() {
            Ok(reader) => rotated.push((file.path().to_path_buf(), reader)),
            // Rotated out meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(file.path())(e)),
        }
    }
    let mut history = History {
        filter,
        tail,
        kept: VecDeque::new(),
        tx,
        cursor: Cursor::default(),
    };
    for (path, reader) in rotated.into_iter().rev() {
        let mut records = RecordReader::new(reader, files.format);
        if !history.read(&mut records, &mut true, &path)? {
            return Ok(None);
        }
    }
    if let Some(file) = &mut current {
        let mut resuming = file.resuming;
        match history.read(&mut file.records, &mut resuming, &path) {
            Ok(true) => file.resuming = resuming,
            Ok(false) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    while let Some(record) = history.kept.pop_front() {
        if history.tx.blocking_send(record).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(Position {
        current,
        cursor: history.cursor,
    }))
}

/// The history being read: records go out at once, or, with a tail, wait
/// in `kept` until the last file is read.
struct History<'a> {
    filter: &'a Filter,
    /// Negative: all.
    tail: i64,
    kept: VecDeque<LogRecord>,
    tx: &'a Sender<LogRecord>,
    cursor: Cursor,
}

impl History<'_> {
    /// Reads `records` to their end; false when the receiver went.
    fn read<R: Read>(
        &mut self,
        records: &mut RecordReader<R>,
        resuming: &mut bool,
        path: &Path,
    ) -> Result<bool, LogReadError> {
        loop {
            let record = match records.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!("log {}: {e}; the rest of it is skipped", path.display());
                    return Ok(true);
                }
                Err(e) => return Err(io_error(path)(e)),
            };
            if !self.cursor.advance(&record, resuming) {
                continue;
            }
            let Some(record) = self.filter.admit(record) else {
                continue;
            };
            if self.tail < 0 {
                if self.tx.blocking_send(record).is_err() {
                    return Ok(false);
                }
            } else if self.tail > 0 {
                if self.kept.len() as i64 >= self.tail {
                    self.kept.pop_front();
                }
                self.kept.push_back(record);
            }
        }
    }
}
