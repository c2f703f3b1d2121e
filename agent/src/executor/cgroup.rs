//! A task container's cgroup as runc makes it for the spec's cgroups path
//! (`/<containerd namespace>/<container id>`, the cgroupfs layout): under
//! `/sys/fs/cgroup` itself on cgroup v2, under each controller's hierarchy
//! (`/sys/fs/cgroup/memory/...`) on v1. The limits go in through the OCI
//! spec; this module only reads what the kernel says afterwards (the OOM
//! killer's count) and what the host supports (swap accounting).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy.
    V2,
    /// One hierarchy per controller.
    V1,
}

impl Layout {
    pub fn of_host() -> Layout {
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// The directory of `cgroups_path` in the hierarchy holding `controller`.
    pub fn dir(self, controller: &str, cgroups_path: &str) -> PathBuf {
        let relative = cgroups_path.trim_start_matches('/');
        match self {
            Layout::V2 => Path::new(ROOT).join(relative),
            Layout::V1 => Path::new(ROOT).join(controller).join(relative),
        }
    }

    /// Whether a memory limit can also bound swap: v1 only with swap
    /// accounting (`memory.memsw.*`); runc skips an unavailable swap limit
    /// on v2 by itself.
    pub fn swap_limit_supported(self) -> bool {
        match self {
            Layout::V2 => true,
            Layout::V1 => Path::new(ROOT)
                .join("memory")
                .join("memory.memsw.limit_in_bytes")
                .exists(),
        }
    }

    /// How many processes of the cgroup the OOM killer has killed
    /// (`memory.events` on v2, `memory.oom_control` on v1); `None` when the
    /// cgroup or the count is not there.
    pub fn oom_kills(self, cgroups_path: &str) -> Option<u64> {
        let file = match self {
            Layout::V2 => "memory.events",
            Layout::V1 => "memory.oom_control",
        };
        let text = std::fs::read_to_string(self.dir("memory", cgroups_path).join(file)).ok()?;
        oom_kill_count(&text)
    }
}

/// The `oom_kill N` line of `memory.events` / `memory.oom_control`.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_either_layout() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), Some(1));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(oom_kill_count(v1), Some(3));
        assert_eq!(oom_kill_count("under_oom 0\n"), None);
    }

    #[test]
    fn paths_follow_runcs_cgroupfs_layout() {
        assert_eq!(
            Layout::V2.dir("memory", "/shoal/t1"),
            PathBuf::from("/sys/fs/cgroup/shoal/t1")
        );
        assert_eq!(
            Layout::V1.dir("pids", "/shoal/t1"),
            PathBuf::from("/sys/fs/cgroup/pids/shoal/t1")
        );
    }
}
