//! The logging binary containerd's shim starts for each of shoal's
//! containers whose output a plain file cannot take (a terminal's): the
//! shim hands it the container's stdout and stderr as fds 3 and 4 and
//! waits until fd 5 is closed; it appends both streams to the task's log
//! file until they end. Started as `shoal-logger path <log file>`
//! (containerd's `binary://` URI: `?path=<log file>`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .windows(2)
        .find(|w| w[0] == "path")
        .map(|w| w[1].clone());
    let Some(path) = path else {
        eprintln!("shoal-logger: usage: shoal-logger path <log file>");
        std::process::exit(2);
    };
    let log = match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => Arc::new(Mutex::new(f)),
        Err(e) => {
            eprintln!("shoal-logger: open {path}: {e}");
            std::process::exit(1);
        }
    };
    // SAFETY: the shim passes these three descriptors to this process, and
    // nothing else in it owns them.
    let (stdout, stderr, ready) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    // Closing the ready pipe tells the shim the logger runs.
    drop(ready);
    let copiers: Vec<_> = [stdout, stderr]
        .into_iter()
        .map(|stream| {
            let log = log.clone();
            std::thread::spawn(move || copy(stream, &log))
        })
        .collect();
    for copier in copiers {
        let _ = copier.join();
    }
}

/// Appends what `stream` yields to the log until it ends; a failed write
/// (a full disk) drops the chunk rather than blocking the container.
fn copy(mut stream: File, log: &Mutex<File>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
                let _ = file.write_all(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
