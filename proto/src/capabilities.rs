//! Linux capability names as users write them (`NET_ADMIN`, `cap_net_admin`,
//! `ALL`), read the same way by the control API (which refuses unknown ones)
//! and by the agent (which turns them into the OCI spec's).

/// `cap_add: [ALL]`, `cap_drop: [ALL]`: every capability.
pub const ALL: &str = "ALL";

/// Every capability of Linux 6.x, in the kernel's order, without `CAP_`.
pub const KNOWN: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default set for a container.
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The canonical name (`NET_ADMIN`, or [`ALL`]) of what a user wrote, in
/// any case, with or without `CAP_`; `None` for no capability.
pub fn canonical(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == ALL {
        return Some(ALL);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    KNOWN.iter().copied().find(|known| *known == bare)
}

/// The set a container gets: docker's default set, less `drop`, plus `add`
/// (docker's order: dropping `ALL` empties the set before adding; adding
/// `ALL` gives every capability). Unknown names are left out; the control
/// API refuses them before a task exists.
pub fn effective(add: &[String], drop: &[String]) -> Vec<&'static str> {
    let add: Vec<&str> = add.iter().filter_map(|n| canonical(n)).collect();
    let drop: Vec<&str> = drop.iter().filter_map(|n| canonical(n)).collect();
    if add.contains(&ALL) {
        return KNOWN.to_vec();
    }
    let mut set: Vec<&'static str> = if drop.contains(&ALL) {
        Vec::new()
    } else {
        DEFAULT
            .iter()
            .copied()
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for cap in add {
        if let Some(known) = canonical(cap) {
            if !set.contains(&known) {
                set.push(known);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_read_in_any_case_with_or_without_the_prefix() {
        assert_eq!(canonical("net_admin"), Some("NET_ADMIN"));
        assert_eq!(canonical("CAP_SYS_TIME"), Some("SYS_TIME"));
        assert_eq!(canonical("all"), Some(ALL));
        assert_eq!(canonical("CAP_FLY"), None);
        assert_eq!(KNOWN.len(), 41);
    }

    #[test]
    fn drops_apply_before_adds_and_all_means_every_capability() {
        assert_eq!(effective(&[], &[]), DEFAULT);
        assert!(effective(&[], &names(&["ALL"])).is_empty());
        assert_eq!(
            effective(&names(&["net_bind_service"]), &names(&["ALL"])),
            ["NET_BIND_SERVICE"]
        );
        let without_raw = effective(&names(&["SYS_TIME"]), &names(&["CAP_NET_RAW"]));
        assert!(!without_raw.contains(&"NET_RAW"));
        assert!(without_raw.contains(&"SYS_TIME"));
        assert_eq!(effective(&names(&["ALL"]), &names(&["ALL"])).len(), 41);
    }
}
