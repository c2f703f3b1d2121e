//! Deterministic kernel names derived from cluster ids, and the checks that
//! make ids safe to use as file and interface names.
//!
//! Interface names are limited to 15 bytes (IFNAMSIZ - 1), so they carry a
//! prefix of the id; the full id is kept in the link alias (bridges) or in
//! netd's attachment records (veths), which is how collisions are detected.

use crate::error::{Error, Result};

/// Longest interface name the kernel accepts.
pub const IFNAME_MAX: usize = 15;
/// Prefix of every bridge netd owns.
pub const BRIDGE_PREFIX: &str = "sh-";
/// Prefix of every VXLAN device netd owns.
pub const VXLAN_PREFIX: &str = "vx-";
/// Prefix of the host end of every task veth.
pub const VETH_PREFIX: &str = "vt";
/// Most networks one task may be attached to (interface names eth0..eth9).
pub const MAX_TASK_NETWORKS: usize = 10;

/// Checks that an id is usable in file and interface names: non-empty,
/// at most 128 bytes, ASCII letters, digits, `-` and `_` only.
pub fn validate_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(what, "empty id"));
    }
    if id.len() > 128 {
        return Err(Error::invalid(
            what,
            format!("id {id:?} is longer than 128 bytes"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(Error::invalid(
            what,
            format!("id {id:?} contains {c:?} (only letters, digits, '-' and '_' are allowed)"),
        ));
    }
    Ok(())
}

fn prefix(id: &str, n: usize) -> &str {
    // Ids are validated ASCII, so byte slicing never splits a character.
    &id[..id.len().min(n)]
}

/// The bridge of a network: `sh-` and the first 10 characters of its id.
pub fn bridge_name(network_id: &str) -> String {
    format!("{BRIDGE_PREFIX}{}", prefix(network_id, 10))
}

/// The VXLAN device of a network: `vx-` and the first 10 characters of its id.
pub fn vxlan_name(network_id: &str) -> String {
    format!("{VXLAN_PREFIX}{}", prefix(network_id, 10))
}

/// The host end of a task's veth on its `index`-th network: `vt` and the
/// first 11 characters of the task id, plus `-<index>` after the first.
pub fn veth_host_name(task_id: &str, index: usize) -> String {
    if index == 0 {
        format!("{VETH_PREFIX}{}", prefix(task_id, 11))
    } else {
        format!("{VETH_PREFIX}{}-{index}", prefix(task_id, 11))
    }
}

/// The name of the task's interface on its `index`-th network.
pub fn task_ifname(index: usize) -> String {
    format!("eth{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let id = "abcdefghijklmnopqrstuvwxyz0123456789";
        for name in [
            bridge_name(id),
            vxlan_name(id),
            veth_host_name(id, 0),
            veth_host_name(id, MAX_TASK_NETWORKS - 1),
        ] {
            assert!(name.len() <= IFNAME_MAX, "{name} is too long");
        }
        assert_eq!(bridge_name(id), "sh-abcdefghij");
        assert_eq!(veth_host_name(id, 0), "vtabcdefghijk");
        assert_eq!(veth_host_name(id, 2), "vtabcdefghijk-2");
        assert_eq!(veth_host_name("t1", 0), "vtt1");
    }

    #[test]
    fn ids_with_path_or_odd_characters_are_refused() {
        for bad in ["", "../etc", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(validate_id("task id", bad).is_err(), "{bad:?} accepted");
        }
        validate_id("task id", "Task_1-abc").expect("plain id refused");
    }
}
