//! A task's secrets and configs as files: written to a tmpfs mounted for
//! the task under the agent's state directory (memory, never the node's
//! disk) and bound read-only into the container, secrets at
//! `/run/secrets/<target>` (or an absolute target), configs at their
//! absolute target. Each file has the reference's uid, gid and mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use shoal_proto::types::v1::{Config, ConfigReference, Secret, SecretReference};

const DEFAULT_MODE: u32 = 0o444;

/// One file a task gets.
pub struct TaskFile {
    /// `secret db_password`, `config nginx_conf`: for messages.
    pub what: String,
    pub data: Vec<u8>,
    /// The absolute path in the container.
    pub target: String,
    pub uid: String,
    pub gid: String,
    /// Default 0444.
    pub mode: Option<u32>,
}

/// The files of a task's secret references; a secret the node was not sent
/// rejects the task.
pub fn secrets(
    references: &[SecretReference],
    secrets: &HashMap<String, Secret>,
) -> Result<Vec<TaskFile>, String> {
    references
        .iter()
        .map(|r| {
            let secret = secrets
                .get(&r.secret_id)
                .ok_or_else(|| format!("secret {} is not available on this node", r.secret_name))?;
            Ok(TaskFile {
                what: format!("secret {}", r.secret_name),
                data: secret
                    .spec
                    .as_ref()
                    .map(|s| s.data.clone())
                    .unwrap_or_default(),
                target: if r.target.starts_with('/') {
                    r.target.clone()
                } else {
                    format!("/run/secrets/{}", r.target)
                },
                uid: r.uid.clone(),
                gid: r.gid.clone(),
                mode: r.mode,
            })
        })
        .collect()
}

/// The files of a task's config references, each value as `render` makes
/// it (a templated config is rendered for the task).
pub fn configs(
    references: &[ConfigReference],
    configs: &HashMap<String, Config>,
    render: impl Fn(&Config) -> Result<Vec<u8>, String>,
) -> Result<Vec<TaskFile>, String> {
    references
        .iter()
        .map(|r| {
            let config = configs
                .get(&r.config_id)
                .ok_or_else(|| format!("config {} is not available on this node", r.config_name))?;
            Ok(TaskFile {
                what: format!("config {}", r.config_name),
                data: render(config).map_err(|e| format!("config {}: {e}", r.config_name))?,
                target: if r.target.starts_with('/') {
                    r.target.clone()
                } else {
                    format!("/{}", r.target)
                },
                uid: r.uid.clone(),
                gid: r.gid.clone(),
                mode: r.mode,
            })
        })
        .collect()
}

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
        .map_err(|_| format!("{what} {field:?} must be numeric"))
}

/// Writes the task's files; returns (host file, container path) pairs.
pub fn materialize(
    state_dir: &Path,
    task_id: &str,
    files: &[TaskFile],
) -> Result<Vec<(PathBuf, String)>, String> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_of(state_dir, task_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if !is_mount_point(&dir) {
        // Room for every file, with a page each to spare.
        let bytes: usize = files.iter().map(|f| f.data.len() + 4096).sum();
        let size = format!("size={},mode=0755", bytes.max(2 << 20));
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(size.as_str()),
        )
        .map_err(|e| {
            format!(
                "mount a tmpfs for the task's files at {}: {e}",
                dir.display()
            )
        })?;
    }
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let what = &file.what;
        // Files are named by position: targets may be paths.
        let path = dir.join(format!("{i}"));
        std::fs::write(&path, &file.data).map_err(|e| format!("write {what}: {e}"))?;
        let mode = file.mode.unwrap_or(DEFAULT_MODE) & 0o7777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {what}: {e}"))?;
        let uid = number(&file.uid, &format!("{what}: uid"), 0)?;
        let gid = number(&file.gid, &format!("{what}: gid"), 0)?;
        nix::unistd::chown(&path, Some(uid.into()), Some(gid.into()))
            .map_err(|e| format!("chown {what}: {e}"))?;
        out.push((path, file.target.clone()));
    }
    Ok(out)
}

/// Unmounts and removes a task's files; nothing to do if it had none.
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
