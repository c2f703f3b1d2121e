//! netd's records of attached tasks, one file per task under
//! `<state-dir>/attachments/`. Interface names carry only a prefix of the
//! task id, so these records are what lets a restarted netd list its tasks
//! and find their veths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use shoal_proto::netd::v1::TaskAttachment;

use crate::error::{Error, Result};

const SUFFIX: &str = ".pb";

#[derive(Debug, Clone)]
pub struct AttachmentStore {
    dir: PathBuf,
}

impl AttachmentStore {
    pub fn open(dir: PathBuf) -> Result<AttachmentStore> {
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        Ok(AttachmentStore { dir })
    }

    fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}{SUFFIX}"))
    }

    /// Every readable record; unreadable ones are logged and skipped (the
    /// task's namespace file still lets netd clean it up).
    pub fn load_all(&self) -> Result<BTreeMap<String, TaskAttachment>> {
        let mut out = BTreeMap::new();
        let entries =
            std::fs::read_dir(&self.dir).map_err(Error::io("read directory", &self.dir))?;
        for entry in entries {
            let path = entry
                .map_err(Error::io("read directory", &self.dir))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some(&SUFFIX[1..]) {
                continue;
            }
            match read(&path) {
                Ok(record) => {
                    out.insert(record.task_id.clone(), record);
                }
                Err(e) => tracing::warn!(error = %e, "skipping unreadable attachment record"),
            }
        }
        Ok(out)
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn save(&self, record: &TaskAttachment) -> Result<()> {
        let path = self.path(&record.task_id);
        let tmp = self.dir.join(format!(".{}.tmp", record.task_id));
        std::fs::write(&tmp, record.encode_to_vec()).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("rename into", &path))
    }

    pub fn remove(&self, task_id: &str) -> Result<()> {
        let path = self.path(task_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path)(e)),
        }
    }
}

fn read(path: &Path) -> Result<TaskAttachment> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    TaskAttachment::decode(bytes.as_slice()).map_err(|e| {
        Error::invalid(
            format!("attachment record {}", path.display()),
            e.to_string(),
        )
    })
}
