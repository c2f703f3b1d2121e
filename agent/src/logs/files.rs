//! The files of a task's log directory: the current one (`json.log` or
//! `local.log`, after the format) and the rotated ones, `.1` the newest,
//! each plain or gzipped (`json.log.2.gz`). Which base name the directory
//! holds tells its format.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::driver::Format;

/// Suffix of a rotated file being compressed (never read).
pub const COMPRESSING_SUFFIX: &str = ".tmp";

/// The current file's name.
pub fn file_name(format: Format) -> &'static str {
    match format {
        Format::JsonFile => "json.log",
        Format::Local => "local.log",
    }
}

/// The file being written.
pub fn current(dir: &Path, format: Format) -> PathBuf {
    dir.join(file_name(format))
}

/// Rotated file `number` (1: the newest), plain or gzipped.
pub fn rotated(dir: &Path, format: Format, number: u32, gzipped: bool) -> PathBuf {
    let gz = if gzipped { ".gz" } else { "" };
    dir.join(format!("{}.{number}{gz}", file_name(format)))
}

/// A rotated file. While it is being compressed both of its forms exist,
/// with the same records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedFile {
    pub number: u32,
    pub plain: Option<PathBuf>,
    pub gzipped: Option<PathBuf>,
}

impl RotatedFile {
    /// Its records' bytes, decompressed; the plain form first, the gzipped
    /// one if the plain one was compressed away meanwhile.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        if let Some(plain) = &self.plain {
            match File::open(plain) {
                Ok(file) => return Ok(Box::new(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.gzipped.is_none() => {
                    let gzipped = PathBuf::from(format!("{}.gz", plain.display()));
                    return Ok(Box::new(GzDecoder::new(File::open(gzipped)?)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match &self.gzipped {
            Some(gzipped) => Ok(Box::new(GzDecoder::new(File::open(gzipped)?))),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    /// A path to name in errors.
    pub fn path(&self) -> &Path {
        self.plain
            .as_deref()
            .or(self.gzipped.as_deref())
            .unwrap_or(Path::new(""))
    }
}

/// What a log directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFiles {
    pub format: Format,
    /// Oldest first.
    pub rotated: Vec<RotatedFile>,
    /// Whether the current file exists (between a rotation's rename and
    /// the new file's creation it does not).
    pub has_current: bool,
}

/// The log files in `dir`; `None` when it holds none (yet). `NotFound`
/// when `dir` itself is gone.
pub fn list(dir: &Path) -> io::Result<Option<LogFiles>> {
    let mut found: Option<LogFiles> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        for format in [Format::JsonFile, Format::Local] {
            let base = file_name(format);
            let Some(rest) = name.strip_prefix(base) else {
                continue;
            };
            let files = found.get_or_insert_with(|| LogFiles {
                format,
                rotated: Vec::new(),
                has_current: false,
            });
            // One format per directory; anything else is not ours.
            if files.format != format {
                continue;
            }
            if rest.is_empty() {
                files.has_current = true;
                continue;
            }
            let Some((number, gzipped)) = rotation_number(rest) else {
                continue;
            };
            let index = match files.rotated.iter().position(|r| r.number == number) {
                Some(index) => index,
                None => {
                    files.rotated.push(RotatedFile {
                        number,
                        plain: None,
                        gzipped: None,
                    });
                    files.rotated.len() - 1
                }
            };
            let path = Some(dir.join(name));
            if gzipped {
                files.rotated[index].gzipped = path;
            } else {
                files.rotated[index].plain = path;
            }
        }
    }
    if let Some(files) = &mut found {
        files.rotated.sort_by_key(|r| std::cmp::Reverse(r.number));
    }
    Ok(found)
}

/// `.3` or `.3.gz` after the base name: (3, gzipped).
fn rotation_number(suffix: &str) -> Option<(u32, bool)> {
    let rest = suffix.strip_prefix('.')?;
    let (digits, gzipped) = match rest.strip_suffix(".gz") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok().filter(|n| *n > 0)?, gzipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_listed_oldest_first_with_its_format() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "local.log",
            "local.log.1",
            "local.log.1.gz",
            "local.log.2.gz",
            "local.log.10.gz",
            "local.log.3.gz.tmp",
            "closed",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let files = list(dir.path()).unwrap().unwrap();
        assert_eq!(files.format, Format::Local);
        assert!(files.has_current);
        let numbers: Vec<u32> = files.rotated.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [10, 2, 1]);
        assert!(files.rotated[2].plain.is_some() && files.rotated[2].gzipped.is_some());
        assert!(files.rotated[1].plain.is_none());

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(list(empty.path()).unwrap(), None);
        let gone = empty.path().join("gone");
        assert_eq!(
            list(&gone).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }
}
