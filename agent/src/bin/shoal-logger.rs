//! The logging binary containerd's shim starts for each of shoal's
//! containers that keeps logs: the shim hands it the container's stdout
//! and stderr as fds 3 and 4 (a terminal's output all comes on 3) and
//! waits until fd 5 is closed. It writes both streams as records of the
//! task's logging driver into the task's log directory
//! (`shoal_agent::logs::writer`), rotating as configured, until both end;
//! then it creates the directory's `closed` marker and exits.
//!
//! Started as `shoal-logger dir <log dir> driver <name> max-size <bytes>
//! max-file <n> compress <bool>`: containerd passes each query key and
//! value of the `binary://` URI as two arguments, in no set order. With
//! driver `none` it reads and discards (a terminal's output must go
//! somewhere).
//!
//! The runc shim gives a container started with a logging binary no stdin
//! at all, so for a container with an open stdin (and no terminal) the
//! executor starts the logger itself, with `stdout-fifo <path> stderr-fifo
//! <path>` added: the shim copies the streams into those FIFOs, and the
//! logger closes its own stdout once it holds their reading ends (its
//! ready signal). Each stream then ends when the shim closes its FIFO, at
//! the container's exit.
//!
//! One runs per container, so it stays small: two threads with a 16 KiB
//! line buffer each, no async runtime.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use shoal_agent::logs::driver::{self, LogConfig};
use shoal_agent::logs::writer::{copy_lines, LogWriter};
use shoal_proto::types::v1::{log_record::Stream as StreamKind, LogDriver};

/// The shim's descriptors.
const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;

fn main() -> ExitCode {
    // The shim sends SIGTERM right after it closed the streams' writing
    // ends: what is still in the pipes must be written first (it waits 12 s
    // before SIGKILL). End of file on both streams is the signal to go.
    //
    // SAFETY: no handler runs; ignoring a signal is async-signal-safe and
    // nothing else in this process sets SIGTERM's disposition.
    let ignored = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    if let Err(e) = ignored {
        eprintln!("shoal-logger: ignore SIGTERM: {e}");
    }
    let args = match arguments(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("shoal-logger: {message}");
            return ExitCode::from(2);
        }
    };
    let (streams, ready) = match &args.fifos {
        Some((stdout, stderr)) => match (Fifo::open(stdout), Fifo::open(stderr)) {
            (Ok(stdout), Ok(stderr)) => {
                // SAFETY: fd 1 is this process's stdout, which nothing
                // else in it uses: closing it is the ready signal.
                let ready = unsafe { OwnedFd::from_raw_fd(1) };
                ([Stream::Fifo(stdout), Stream::Fifo(stderr)], ready)
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("shoal-logger: open the FIFOs: {e}");
                return ExitCode::FAILURE;
            }
        },
        // SAFETY: the shim passes these three descriptors to this process,
        // and nothing else in it owns them.
        None => unsafe {
            (
                [
                    Stream::Pipe(File::from(OwnedFd::from_raw_fd(STDOUT_FD))),
                    Stream::Pipe(File::from(OwnedFd::from_raw_fd(STDERR_FD))),
                ],
                OwnedFd::from_raw_fd(READY_FD),
            )
        },
    };
    match args.config {
        Some(config) => keep(&args.dir, config, streams, ready),
        None => {
            drop(ready);
            both(streams, |mut stream, _| {
                let _ = io::copy(&mut stream, &mut io::sink());
            });
            ExitCode::SUCCESS
        }
    }
}

fn keep(dir: &Path, config: LogConfig, streams: [Stream; 2], ready: OwnedFd) -> ExitCode {
    let writer = match LogWriter::open(dir, config) {
        Ok(writer) => Mutex::new(writer),
        Err(e) => {
            eprintln!("shoal-logger: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Closing the ready pipe tells the shim (or the executor) the logger runs.
    drop(ready);
    both(streams, |stream, kind| copy_lines(stream, kind, &writer));
    let writer = writer.into_inner().unwrap_or_else(|e| e.into_inner());
    match writer.finish() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-logger: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `copy` on stdout and stderr at once, until both end.
fn both(streams: [Stream; 2], copy: impl Fn(Stream, StreamKind) + Sync) {
    let [stdout, stderr] = streams;
    std::thread::scope(|scope| {
        let copy = &copy;
        scope.spawn(move || copy(stderr, StreamKind::Stderr));
        copy(stdout, StreamKind::Stdout);
    });
}

/// One of the container's streams.
enum Stream {
    /// A pipe from the shim.
    Pipe(File),
    Fifo(Fifo),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Pipe(file) => file.read(buf),
            Stream::Fifo(fifo) => fifo.read(buf),
        }
    }
}

/// The reading end of a FIFO the shim writes into, opened before the shim
/// opens its writing end. A FIFO without a writer reads as its end, so
/// each read waits in poll first: Linux's poll reports nothing on a FIFO
/// whose writer has not come yet, and a hang-up once the writer that came
/// has gone.
struct Fifo(File);

impl Fifo {
    fn open(path: &Path) -> io::Result<Fifo> {
        // Non-blocking: opening for reading does not wait for a writer.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)?;
        Ok(Fifo(file))
    }
}

impl Read for Fifo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// What the logger was started with.
#[derive(Debug, PartialEq)]
struct Arguments {
    dir: PathBuf,
    /// `None`: driver `none`, discard.
    config: Option<LogConfig>,
    /// The FIFOs of stdout and stderr, when the executor started it.
    fifos: Option<(PathBuf, PathBuf)>,
}

const USAGE: &str = "usage: shoal-logger dir <log dir> driver <name> [max-size <bytes>] \
                     [max-file <n>] [compress <bool>] [stdout-fifo <path> stderr-fifo <path>]";

/// The log directory, the driver's settings and the FIFOs, from `key
/// value` pairs.
fn arguments(args: impl Iterator<Item = String>) -> Result<Arguments, String> {
    let args: Vec<String> = args.collect();
    if !args.len().is_multiple_of(2) {
        return Err(format!("arguments come in key value pairs: {args:?}"));
    }
    let mut options: HashMap<String, String> = args
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let dir = options.remove("dir").map(PathBuf::from);
    let fifos = match (options.remove("stdout-fifo"), options.remove("stderr-fifo")) {
        (Some(stdout), Some(stderr)) => Some((PathBuf::from(stdout), PathBuf::from(stderr))),
        (None, None) => None,
        _ => return Err("stdout-fifo and stderr-fifo come together".to_string()),
    };
    let name = options.remove("driver").unwrap_or_default();
    let config = driver::parse(&LogDriver { name, options }).map_err(|e| e.to_string())?;
    match (dir, config) {
        (Some(dir), config) => Ok(Arguments { dir, config, fifos }),
        (None, None) => Ok(Arguments {
            dir: PathBuf::new(),
            config: None,
            fifos,
        }),
        (None, Some(_)) => Err(USAGE.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<Arguments, String> {
        arguments(words.iter().map(|w| w.to_string()))
    }

    #[test]
    fn arguments_are_pairs_in_any_order() {
        let parsed = args(&[
            "max-file", "4", "driver", "local", "dir", "/logs/t1", "max-size", "2048", "compress",
            "false",
        ])
        .unwrap();
        assert_eq!(parsed.dir, PathBuf::from("/logs/t1"));
        assert_eq!(parsed.fifos, None);
        let config = parsed.config.unwrap();
        assert_eq!(
            (config.max_size, config.max_file, config.compress),
            (2048, 4, false)
        );
        assert_eq!(args(&["driver", "none"]).unwrap().config, None);
        let fifos = args(&["dir", "/d", "stderr-fifo", "/e", "stdout-fifo", "/o"]).unwrap();
        assert_eq!(fifos.fifos, Some(("/o".into(), "/e".into())));
        assert!(
            args(&["dir", "/d", "stdout-fifo", "/o"]).is_err(),
            "one FIFO"
        );
        assert!(args(&["driver", "local"]).is_err(), "no directory");
        assert!(args(&["dir", "/x", "driver"]).is_err(), "odd count");
        assert!(args(&["dir", "/x", "driver", "gelf"]).is_err());
    }
}
