//! Following a log directory after its history: woken by inotify (any
//! change in the directory: a write, a rename, a new file, the marker, the
//! directory's removal), the reader reads what was added to the current
//! file; when another file has taken the current name (a rotation), it
//! finishes the one it holds, reads the rotated files written since its
//! last record (more than one when it lagged behind), and goes on with the
//! new current file from its start.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use shoal_proto::types::v1::LogRecord;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc::Sender;

use super::driver::Format;
use super::files::{self, LogFiles, RotatedFile};
use super::format::RecordReader;
use super::reader::{io_error, CurrentFile, Cursor, Filter, LogReadError, Position};
use super::CLOSED_MARKER;

/// An inotify watch on a log directory.
pub(super) struct DirWatch {
    fd: AsyncFd<WatchFd>,
}

struct WatchFd(Inotify);

impl AsRawFd for WatchFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// What woke a watch.
enum Change {
    Files,
    DirectoryGone,
}

impl DirWatch {
    pub fn new(dir: &Path) -> Result<DirWatch, LogReadError> {
        let failed = |source| LogReadError::Watch {
            path: dir.to_path_buf(),
            source,
        };
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(failed)?;
        let events = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        inotify.add_watch(dir, events).map_err(failed)?;
        // SAFETY: `WatchFd` owns the inotify descriptor for as long as the
        // `AsyncFd` lives and always answers that same descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(WatchFd(inotify), Interest::READABLE) }
            .map_err(|e| io_error(dir)(e.into_parts().1))?;
        Ok(DirWatch { fd })
    }

    /// Waits for the next change (the events are only a wake-up: the
    /// caller looks at the files again).
    async fn changed(&self, dir: &Path) -> Result<Change, LogReadError> {
        let gone =
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
        loop {
            let mut ready = self.fd.readable().await.map_err(io_error(dir))?;
            match ready.get_inner().0.read_events() {
                Ok(events) if events.iter().any(|e| e.mask.intersects(gone)) => {
                    return Ok(Change::DirectoryGone)
                }
                Ok(_) => return Ok(Change::Files),
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(source) => {
                    return Err(LogReadError::Watch {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }
}

/// Follows `dir` from `position` until the logger has closed it and all is
/// sent, the directory goes, or `tx` closes.
pub(super) async fn follow(
    dir: &Path,
    watch: DirWatch,
    position: Position,
    filter: &Filter,
    tx: &Sender<LogRecord>,
) -> Result<(), LogReadError> {
    let mut follower = Follower {
        dir,
        filter,
        tx,
        current: position.current,
        cursor: position.cursor,
    };
    loop {
        // Seen before reading: whatever was written before the marker
        // appeared is then read below.
        let closed = dir.join(CLOSED_MARKER).exists();
        if !follower.catch_up().await? {
            return Ok(());
        }
        if closed {
            return Ok(());
        }
        tokio::select! {
            change = watch.changed(dir) => {
                if let Change::DirectoryGone = change? {
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

struct Follower<'a> {
    dir: &'a Path,
    filter: &'a Filter,
    tx: &'a Sender<LogRecord>,
    current: Option<CurrentFile>,
    cursor: Cursor,
}

impl Follower<'_> {
    /// Reads everything the directory holds beyond the cursor; false when
    /// the reader is gone (the receiver, or the directory).
    async fn catch_up(&mut self) -> Result<bool, LogReadError> {
        loop {
            if let Some(current) = &mut self.current {
                if !current.damaged {
                    let sent = send_all(
                        &mut current.records,
                        &mut current.resuming,
                        &mut self.cursor,
                        self.filter,
                        self.tx,
                    )
                    .await;
                    match sent {
                        Ok(true) => {}
                        Ok(false) => return Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            tracing::warn!("log in {}: {e}; not read further", self.dir.display());
                            current.damaged = true;
                        }
                        Err(e) => return Err(io_error(self.dir)(e)),
                    }
                }
            }
            let files = match files::list(self.dir) {
                Ok(Some(files)) => files,
                Ok(None) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_error(self.dir)(e)),
            };
            let path = files::current(self.dir, files.format);
            let on_disk = match std::fs::metadata(&path) {
                Ok(meta) => (meta.dev(), meta.ino()),
                // Between a rotation's rename and the new file.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(io_error(&path)(e)),
            };
            if self.current.as_ref().is_some_and(|c| c.id == on_disk) {
                return Ok(true);
            }
            // Another file at the current name: what was rotated since the
            // last record read, then the new file.
            for rotated in since(&files, self.cursor.last_time_ns) {
                if !self.send_rotated(rotated, files.format).await? {
                    return Ok(false);
                }
            }
            self.current = match CurrentFile::open(&path, files.format, true) {
                Ok(current) => Some(current),
                // Rotated again already: look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&path)(e)),
            };
        }
    }

    async fn send_rotated(
        &mut self,
        rotated: &RotatedFile,
        format: Format,
    ) -> Result<bool, LogReadError> {
        let reader = match rotated.open() {
            Ok(reader) => reader,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_error(rotated.path())(e)),
        };
        let mut records = RecordReader::new(reader, format);
        let sent = send_all(
            &mut records,
            &mut true,
            &mut self.cursor,
            self.filter,
            self.tx,
        )
        .await;
        match sent {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let path = rotated.path().display();
                tracing::warn!("log {path}: {e}; the rest of it is skipped");
                Ok(true)
            }
            other => other.map_err(io_error(rotated.path())),
        }
    }
}

/// The rotated files (oldest first) holding records after `after_ns`: the
/// newest ones whose first record is later.
fn since(files: &LogFiles, after_ns: i64) -> &[RotatedFile] {
    let mut start = files.rotated.len();
    for (index, rotated) in files.rotated.iter().enumerate().rev() {
        match first_time(rotated, files.format) {
            Some(time_ns) if time_ns > after_ns => start = index,
            _ => break,
        }
    }
    &files.rotated[start..]
}

fn first_time(rotated: &RotatedFile, format: Format) -> Option<i64> {
    let mut records = RecordReader::new(rotated.open().ok()?, format);
    records.next_record().ok()?.map(|r| r.time_ns)
}

/// Sends what `records` holds now; false when the receiver went.
async fn send_all<R: Read>(
    records: &mut RecordReader<R>,
    resuming: &mut bool,
    cursor: &mut Cursor,
    filter: &Filter,
    tx: &Sender<LogRecord>,
) -> io::Result<bool> {
    while let Some(record) = records.next_record()? {
        if !cursor.advance(&record, resuming) {
            continue;
        }
        if let Some(record) = filter.admit(record) {
            if tx.send(record).await.is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
