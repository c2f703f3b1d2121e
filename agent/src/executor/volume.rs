//! Named volumes of the local driver, on the node that runs the task:
//! a directory per volume (`<state dir>/volumes/<name>/_data`, as docker's
//! `/var/lib/docker/volumes`), made on first use and kept when the task
//! goes. With driver options (`type`, `o`, `device`) the volume is that
//! mount (an NFS export, a tmpfs, a block device), mounted on first use.
//! A volume still empty when a task mounts it gets the image's content at
//! the mount path first, unless the mount says `nocopy`.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use containerd_client::types::Mount;
use nix::mount::{MntFlags, MsFlags};

/// What the agent records of a volume beside its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

const RECORD: &str = "volume.json";

pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("volumes")
}

/// Docker's rule for volume names.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Makes the volume if it is new (recording its options) and mounts it if
/// its driver options say so; its data directory.
pub(crate) fn ensure(
    state_dir: &Path,
    name: &str,
    options: &HashMap<String, String>,
    labels: &HashMap<String, String>,
) -> Result<PathBuf, String> {
    if !valid_name(name) {
        return Err(format!(
            "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ));
    }
    let dir = root(state_dir).join(name);
    let data = dir.join("_data");
    let record_path = dir.join(RECORD);
    let record = match read_record(&record_path) {
        Some(record) => record,
        None => {
            std::fs::create_dir_all(&data)
                .map_err(|e| format!("create {}: {e}", data.display()))?;
            let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755));
            let record = VolumeRecord {
                name: name.to_string(),
                driver: "local".to_string(),
                labels: labels.clone(),
                options: options.clone(),
                created_at: now_ms(),
            };
            let text = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
            std::fs::write(&record_path, text)
                .map_err(|e| format!("write {}: {e}", record_path.display()))?;
            record
        }
    };
    if !record.options.is_empty() && !is_mount_point(&data) {
        mount_device(&record.options, &data).map_err(|e| format!("volume {name}: {e}"))?;
    }
    Ok(data)
}

fn read_record(path: &Path) -> Option<VolumeRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The local driver's `type`, `o` and `device`, as `mount -t type -o o device`.
fn mount_device(options: &HashMap<String, String>, at: &Path) -> Result<(), String> {
    let kind = options.get("type").map(String::as_str).unwrap_or("none");
    let device = options.get("device").map(String::as_str).unwrap_or(kind);
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        match option {
            "" => {}
            "ro" => flags |= MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other),
        }
    }
    let data = data.join(",");
    nix::mount::mount(
        Some(device),
        at,
        (kind != "none").then_some(kind),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| format!("mount {device} (type {kind}) at {}: {e}", at.display()))
}

fn is_mount_point(path: &Path) -> bool {
    let wanted = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(wanted.as_ref()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub(crate) fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Copies the image's content at `image_path` into `into` (owners, modes
/// and symlinks kept), reading the image from its snapshot mounted
/// read-only at `scratch`. Nothing at that path copies nothing.
pub(crate) fn populate(
    snapshot: &[Mount],
    scratch: &Path,
    image_path: &str,
    into: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(scratch)?;
    let result = super::user::mount_all(snapshot, scratch).and_then(|()| {
        let from = scratch.join(image_path.trim_start_matches('/'));
        // A symlink in the image could lead out of it: only a real directory is copied.
        match std::fs::symlink_metadata(&from) {
            Ok(meta) if meta.is_dir() => {
                copy_tree(&from, into)?;
                let _ = std::fs::set_permissions(into, meta.permissions());
                let _ = std::os::unix::fs::chown(into, Some(meta.uid()), Some(meta.gid()));
                Ok(())
            }
            _ => Ok(()),
        }
    });
    let _ = nix::mount::umount2(scratch, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(scratch);
    result
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&source)?;
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&source)?;
            std::os::unix::fs::symlink(link, &target)?;
        } else if meta.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&source, &target)?;
            std::fs::set_permissions(&target, meta.permissions())?;
        } else if meta.is_file() {
            std::fs::copy(&source, &target)?;
        } else {
            // Devices, sockets and FIFOs are not content to copy.
            continue;
        }
        let _ = std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()));
    }
    Ok(())
}

/// Every volume on this node.
pub fn list(state_dir: &Path) -> Vec<VolumeRecord> {
    let mut out: Vec<VolumeRecord> = std::fs::read_dir(root(state_dir))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| read_record(&e.path().join(RECORD)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Removes a volume and its data (unmounting its device first).
pub fn remove(state_dir: &Path, name: &str) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!("invalid volume name {name:?}"));
    }
    let dir = root(state_dir).join(name);
    if !dir.exists() {
        return Err(format!("no such volume: {name}"));
    }
    let data = dir.join("_data");
    if is_mount_point(&data) {
        nix::mount::umount2(&data, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmount {}: {e}", data.display()))?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_made_once_recorded_and_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let labels: HashMap<String, String> = [("app".to_string(), "db".to_string())].into();
        let data = ensure(dir.path(), "pgdata", &HashMap::new(), &labels).unwrap();
        assert!(is_empty(&data));
        std::fs::write(data.join("row"), "1").unwrap();
        let again = ensure(dir.path(), "pgdata", &HashMap::new(), &HashMap::new()).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.join("row")).unwrap(),
            "1",
            "kept"
        );
        let listed = list(dir.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].labels["app"], "db", "the first use's labels stay");
        remove(dir.path(), "pgdata").unwrap();
        assert!(list(dir.path()).is_empty());
        assert!(remove(dir.path(), "pgdata")
            .unwrap_err()
            .contains("no such volume"));
        assert!(ensure(dir.path(), "../etc", &HashMap::new(), &HashMap::new()).is_err());
        assert!(valid_name("a.b-c_1") && !valid_name("-x") && !valid_name(""));
    }
}
