//! What a lab leaves on the machine, and removing it.

use std::path::Path;

use super::{mounts, network, plan, process, record};

/// Everything of the lab `name` (kept under `root`) still on the machine:
/// network namespaces, root-namespace links, processes, mounts, the root dir.
pub fn leaks_at(name: &str, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    found.extend(
        network::netns_with_prefix(&plan::netns_prefix(name))
            .into_iter()
            .map(|n| format!("network namespace {n}")),
    );
    found.extend(
        network::links_of(&plan::bridge_name(name), &plan::veth_prefix(name))
            .into_iter()
            .map(|l| format!("link {l}")),
    );
    found.extend(
        process::lab_processes(root)
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
    );
    found.extend(
        mounts::under(root)
            .into_iter()
            .map(|m| format!("mount {}", m.display())),
    );
    if root.exists() {
        found.push(format!("directory {}", root.display()));
    }
    found
}

/// Removes everything of the lab `name` under `root`, whoever started it:
/// processes (deepest first), mounts, namespaces and links, then the root
/// directory if it is a lab's. Best effort: returns every error met.
pub fn sweep(name: &str, root: &Path) -> Vec<String> {
    let mut errors: Vec<String> = process::kill_all(root)
        .into_iter()
        .map(|(pid, cmd)| format!("process {pid} survived SIGKILL: {cmd}"))
        .collect();
    errors.extend(mounts::unmount_under(root));
    errors.extend(network::destroy(name));
    errors.extend(remove_root(root));
    errors
}

/// Removes `root` only when it is a lab's (holds a lab record) or is empty:
/// a mistyped `SHOAL_LAB_ROOT` must never cost someone their files.
fn remove_root(root: &Path) -> Option<String> {
    let ours = record::Record::path(root).exists()
        || std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
    if !root.exists() {
        return None;
    }
    if !ours {
        return Some(format!(
            "not removing {}: it holds no {} (not a lab root)",
            root.display(),
            record::FILE
        ));
    }
    std::fs::remove_dir_all(root)
        .err()
        .map(|e| format!("remove {}: {e}", root.display()))
}
