//! The logger's side: a container's streams cut into records (lines, and
//! 16 KiB pieces of longer ones), stamped, appended to the current file of
//! its log directory, which is rotated when the next record would take it
//! past `max_size`.
//!
//! Rotated files are all gzipped when `compress` is set (docker gzips each
//! one as it is rotated, too), on a thread of their own so that the
//! container's output is not held up meanwhile; the next rotation waits
//! for it.
//!
//! Record times are strictly increasing within one writer (a record read
//! in the same nanosecond as the last one, or after the clock went back,
//! gets the last time plus one): a reader resuming after a rotation finds
//! its place by time.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use shoal_proto::types::v1::{log_record::Stream, LogRecord};

use super::driver::{Format, LogConfig};
use super::format::{encode, RecordReader};
use super::{files, rotation, CLOSED_MARKER, MAX_RECORD_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum LogWriteError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("compress the rotated log in {}: the compressing thread panicked", dir.display())]
    Compressor { dir: PathBuf },
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogWriteError + 'a {
    move |source| LogWriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Appends records to a log directory's current file.
pub struct LogWriter {
    dir: PathBuf,
    config: LogConfig,
    file: File,
    /// The current file's size, with what `pending` holds written.
    size: u64,
    /// Encoded records not yet written (one stream's chunk at a time).
    pending: Vec<u8>,
    last_time_ns: i64,
    compressing: Option<JoinHandle<io::Result<()>>>,
}

impl LogWriter {
    /// Opens (creating it and `dir` if needed) the current file of `dir`
    /// for appending: a container started again continues its log. A
    /// record cut short at its end (a logger killed mid-write) is cut
    /// off, so that what follows can be read. A `closed` marker left by
    /// the previous logger goes.
    pub fn open(dir: &Path, config: LogConfig) -> Result<LogWriter, LogWriteError> {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let marker = dir.join(CLOSED_MARKER);
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("remove", &marker)(e))
            }
            _ => {}
        }
        let path = files::current(dir, config.format);
        let file = open_current(&path)?;
        let size = whole_records_length(&file, &path, config.format)?;
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            config,
            file,
            size,
            pending: Vec::with_capacity(MAX_RECORD_BYTES),
            last_time_ns: 0,
            compressing: None,
        })
    }

    /// Adds one record of `stream` (`data` with its newline, or a partial
    /// piece), stamped now. It is written at the next [`LogWriter::flush`],
    /// or earlier when a rotation comes first.
    pub fn append(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogWriteError> {
        let time_ns = now_ns().max(self.last_time_ns + 1);
        self.last_time_ns = time_ns;
        let record = LogRecord {
            task_id: String::new(),
            time_ns,
            stream: stream as i32,
            data: data.to_vec(),
        };
        let before = self.pending.len();
        encode(self.config.format, &record, &mut self.pending);
        let length = (self.pending.len() - before) as u64;
        let held = self.size + before as u64;
        // A file takes at least one record, however large.
        if held > 0 && held + length > self.config.max_size {
            let record = self.pending.split_off(before);
            self.flush()?;
            self.rotate()?;
            self.pending = record;
        }
        Ok(())
    }

    /// Writes the records appended so far. On failure (a full disk) they
    /// are dropped rather than kept to grow without bound.
    pub fn flush(&mut self) -> Result<(), LogWriteError> {
        let written = self.file.write_all(&self.pending);
        if written.is_ok() {
            self.size += self.pending.len() as u64;
        }
        self.pending.clear();
        let path = files::current(&self.dir, self.config.format);
        written.map_err(io_error("write", &path))
    }

    /// Flushes, waits for a compression under way, and marks the directory
    /// closed: nothing more will be written to it.
    pub fn finish(mut self) -> Result<(), LogWriteError> {
        let flushed = self.flush();
        let compressed = self.wait_for_compression();
        flushed?;
        compressed?;
        let marker = self.dir.join(CLOSED_MARKER);
        File::create(&marker).map_err(io_error("create", &marker))?;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogWriteError> {
        self.wait_for_compression()?;
        let (dir, format) = (self.dir.clone(), self.config.format);
        rotation::rotate(&dir, format, self.config.max_file)
            .map_err(io_error("rotate the log in", &dir))?;
        let path = files::current(&dir, format);
        self.file = open_current(&path)?;
        self.size = 0;
        if self.config.compress && self.config.max_file >= 2 {
            let spawned = std::thread::Builder::new()
                .name("compress".into())
                .spawn(move || rotation::compress_newest(&dir, format));
            match spawned {
                Ok(handle) => self.compressing = Some(handle),
                // No thread to be had: compress here, holding the output up.
                Err(_) => rotation::compress_newest(&self.dir, format)
                    .map_err(io_error("compress the rotated log in", &self.dir))?,
            }
        }
        Ok(())
    }

    fn wait_for_compression(&mut self) -> Result<(), LogWriteError> {
        let Some(handle) = self.compressing.take() else {
            return Ok(());
        };
        match handle.join() {
            Ok(done) => done.map_err(io_error("compress the rotated log in", &self.dir)),
            Err(_) => Err(LogWriteError::Compressor {
                dir: self.dir.clone(),
            }),
        }
    }
}

fn open_current(path: &Path) -> Result<File, LogWriteError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_error("open", path))
}

/// The current file's length once a record cut short at its end, if any,
/// is cut off.
fn whole_records_length(file: &File, path: &Path, format: Format) -> Result<u64, LogWriteError> {
    let size = file.metadata().map_err(io_error("stat", path))?.len();
    if size == 0 || ends_with_whole_record(file, size, format) {
        return Ok(size);
    }
    let mut records = RecordReader::new(File::open(path).map_err(io_error("open", path))?, format);
    // Damage inside the file is left for readers to skip; what matters is
    // where the whole records end.
    while let Ok(Some(_)) = records.next_record() {}
    let whole = records.consumed();
    file.set_len(whole).map_err(io_error("truncate", path))?;
    Ok(whole)
}

/// A cheap look at the file's end: a newline for json-file, a trailing
/// length matching its leading twin for local.
fn ends_with_whole_record(file: &File, size: u64, format: Format) -> bool {
    match format {
        Format::JsonFile => {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, size - 1).is_ok() && last[0] == b'\n'
        }
        Format::Local => {
            let mut tail = [0u8; 4];
            if size < 8 || file.read_exact_at(&mut tail, size - 4).is_err() {
                return false;
            }
            let length = u64::from(u32::from_be_bytes(tail));
            let mut head = [0u8; 4];
            size >= length + 8
                && file.read_exact_at(&mut head, size - length - 8).is_ok()
                && head == tail
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Copies `input` (one of a container's streams) into `writer` until its
/// end: each line a record, a line longer than 16 KiB cut into 16 KiB
/// partial pieces, what is left at the end a partial piece too. Write
/// failures drop the records (the container's output must not block);
/// a read failure ends the stream.
pub fn copy_lines(mut input: impl Read, stream: Stream, writer: &Mutex<LogWriter>) {
    let mut buf = vec![0u8; MAX_RECORD_BYTES];
    let mut filled = 0;
    loop {
        let read = match input.read(&mut buf[filled..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(read) => read,
            Err(_) => 0,
        };
        let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
        if read == 0 {
            if filled > 0 {
                let _ = writer.append(stream, &buf[..filled]);
            }
            let _ = writer.flush();
            return;
        }
        filled += read;
        let mut start = 0;
        while let Some(end) = buf[start..filled].iter().position(|&b| b == b'\n') {
            let _ = writer.append(stream, &buf[start..start + end + 1]);
            start += end + 1;
        }
        if start == 0 && filled == buf.len() {
            let _ = writer.append(stream, &buf);
            start = filled;
        }
        let _ = writer.flush();
        drop(writer);
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}
