//! `<lab-root>/lab.json`: what a lab is made of, so a later command (`down`,
//! `env`, `exec`, or an `up` meeting a stale lab) can find it.

use std::path::{Path, PathBuf};

use super::plan::Host;
use super::Error;

pub const FILE: &str = "lab.json";

/// One process the lab started.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Proc {
    pub host: String,
    pub name: String,
    pub pid: i32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub name: String,
    pub root: PathBuf,
    /// Third octet of the lab subnet 10.201.<octet>.0/24.
    pub octet: u8,
    pub bridge: String,
    pub hosts: Vec<Host>,
    /// In start order; stopped in reverse.
    pub processes: Vec<Proc>,
    /// `host:port` of the lab registry.
    pub registry: String,
    /// `unix://…` address of the first manager's control socket.
    pub shoal_host: String,
}

impl Record {
    pub fn path(root: &Path) -> PathBuf {
        root.join(FILE)
    }

    /// Reads the record under `root`; `None` when there is none.
    pub fn load(root: &Path) -> Result<Option<Record>, Error> {
        load_json(&Self::path(root))
    }

    /// Writes the record atomically (a crash never leaves half a file).
    pub fn save(&self) -> Result<(), Error> {
        save_json(&Self::path(&self.root), self)
    }

    pub fn host(&self, name: &str) -> Result<&Host, Error> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| Error::UnknownHost {
                lab: self.name.clone(),
                host: name.to_string(),
            })
    }
}

/// A lab record file (`lab.json`, the VM lab's `vmlab.json`); `None` when
/// there is none.
pub(crate) fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| Error::Record {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes a lab record file atomically (a crash never leaves half a file).
pub(crate) fn save_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|source| Error::Record {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename to {}", path.display()), e))
}
