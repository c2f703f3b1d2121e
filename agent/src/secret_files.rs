//! A task's secrets as files: written to a tmpfs mounted for the task under
//! the agent's state directory (memory, never the node's disk) and bound
//! read-only into the container at `/run/secrets/<target>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use shoal_proto::types::v1::{Secret, SecretReference};

const DEFAULT_MODE: u32 = 0o444;

fn dir_of(state_dir: &Path, task_id: &str) -> PathBuf {
    state_dir.join("secrets").join(task_id)
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(wanted.as_ref()))
}

fn number(field: &str, what: &str, default: u32) -> Result<u32, String> {
    if field.is_empty() {
        return Ok(default);
    }
    field
        .parse()
        .map_err(|_| format!("secret {what} {field:?} must be numeric"))
}

/// Writes the task's secrets; returns (host file, container path) pairs.
pub fn materialize(
    state_dir: &Path,
    task_id: &str,
    references: &[SecretReference],
    secrets: &HashMap<String, Secret>,
) -> Result<Vec<(PathBuf, String)>, String> {
    if references.is_empty() {
        return Ok(Vec::new());
    }
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_of(state_dir, task_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if !is_mount_point(&dir) {
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=2m,mode=0755"),
        )
        .map_err(|e| format!("mount a tmpfs for the secrets at {}: {e}", dir.display()))?;
    }
    let mut files = Vec::new();
    for (i, reference) in references.iter().enumerate() {
        let secret = secrets.get(&reference.secret_id).ok_or_else(|| {
            format!(
                "secret {} is not available on this node",
                reference.secret_name
            )
        })?;
        let data = secret
            .spec
            .as_ref()
            .map(|s| s.data.as_slice())
            .unwrap_or_default();
        // Files are named by position: targets may be paths.
        let file = dir.join(format!("{i}"));
        std::fs::write(&file, data)
            .map_err(|e| format!("write secret {}: {e}", reference.secret_name))?;
        let mode = reference.mode.unwrap_or(DEFAULT_MODE) & 0o7777;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod secret {}: {e}", reference.secret_name))?;
        let uid = number(&reference.uid, "uid", 0)?;
        let gid = number(&reference.gid, "gid", 0)?;
        nix::unistd::chown(&file, Some(uid.into()), Some(gid.into()))
            .map_err(|e| format!("chown secret {}: {e}", reference.secret_name))?;
        let target = if reference.target.starts_with('/') {
            reference.target.clone()
        } else {
            format!("/run/secrets/{}", reference.target)
        };
        files.push((file, target));
    }
    Ok(files)
}

/// Unmounts and removes a task's secrets; nothing to do if it had none.
pub fn remove(state_dir: &Path, task_id: &str) -> Result<(), String> {
    let dir = dir_of(state_dir, task_id);
    if !dir.exists() {
        return Ok(());
    }
    if is_mount_point(&dir) {
        nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmount {}: {e}", dir.display()))?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))
}
