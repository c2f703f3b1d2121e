//! Rotation of a log directory's files, as docker's `LogFile` does it: the
//! current file becomes `.1`, each rotated file moves one up, the one past
//! `max_file - 1` goes; and the gzipping of a rotated file.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::driver::Format;
use super::files::{self, COMPRESSING_SUFFIX};

/// Moves the current file out of the way (to `.1`, or, with one file
/// kept, away altogether); its writer creates the next current file.
pub(super) fn rotate(dir: &Path, format: Format, max_file: u32) -> io::Result<()> {
    let current = files::current(dir, format);
    if max_file <= 1 {
        return remove_if_present(&current);
    }
    let oldest = max_file - 1;
    for gzipped in [false, true] {
        remove_if_present(&files::rotated(dir, format, oldest, gzipped))?;
    }
    for number in (1..oldest).rev() {
        for gzipped in [false, true] {
            let from = files::rotated(dir, format, number, gzipped);
            match std::fs::rename(&from, files::rotated(dir, format, number + 1, gzipped)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    std::fs::rename(&current, files::rotated(dir, format, 1, false))
}

/// Gzips `.1` into `.1.gz` and removes `.1`. The compressed file is
/// written under a temporary name first, so that no reader sees half of
/// it; until `.1` goes a reader may find both, with the same records.
pub(super) fn compress_newest(dir: &Path, format: Format) -> io::Result<()> {
    let plain = files::rotated(dir, format, 1, false);
    let gzipped = files::rotated(dir, format, 1, true);
    let partial = format!("{}{COMPRESSING_SUFFIX}", gzipped.display());
    let mut input = BufReader::new(File::open(&plain)?);
    let mut encoder = GzEncoder::new(File::create(&partial)?, Compression::default());
    let written = io::copy(&mut input, &mut encoder)
        .and_then(|_| encoder.finish())
        .and_then(|mut file| file.flush());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &gzipped)?;
    std::fs::remove_file(&plain)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
