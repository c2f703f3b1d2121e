//! The checks on what a container asks of its node beyond its command:
//! capabilities, ulimits, sysctls, extra hosts, groups and mounts. What
//! only the node can know (a bind's source exists there) the agent checks
//! when the task starts.

use std::collections::BTreeSet;
use std::net::IpAddr;

use shoal_proto::capabilities;
use shoal_proto::types::v1::{mount, ContainerSpec, Mount};

use super::{field, list_len, refusal};
use crate::store::StoreError;

/// At most this many mounts, ulimits, sysctls, hosts or groups each.
const MAX_RUNTIME_ENTRIES: usize = 1_000;

/// docker's `--ulimit` names.
const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Kernel parameters a container's namespaces own (docker's list): others
/// would change the whole node.
const NAMESPACED_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];
const NAMESPACED_SYSCTL_PREFIXES: &[&str] = &["fs.mqueue.", "net."];

const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

pub(super) fn runtime_options(s: &str, c: &ContainerSpec) -> Result<(), StoreError> {
    for (flags, list) in [
        ("--cap-add, cap_add", &c.capability_add),
        ("--cap-drop, cap_drop", &c.capability_drop),
    ] {
        list_len(s, "capabilities", flags, list.len(), MAX_RUNTIME_ENTRIES)?;
        for name in list {
            if capabilities::canonical(name).is_none() {
                return Err(refusal(s, format!("unknown capability {name:?} ({flags})")));
            }
        }
    }
    list_len(
        s,
        "ulimits",
        "--ulimit, ulimits",
        c.ulimits.len(),
        MAX_RUNTIME_ENTRIES,
    )?;
    let mut seen = BTreeSet::new();
    for u in &c.ulimits {
        if !ULIMITS.contains(&u.name.as_str()) {
            return Err(refusal(
                s,
                format!(
                    "unknown ulimit {:?} (--ulimit, ulimits; one of {})",
                    u.name,
                    ULIMITS.join(", ")
                ),
            ));
        }
        if !seen.insert(u.name.as_str()) {
            return Err(refusal(s, format!("ulimit {} given twice", u.name)));
        }
        if u.soft < 0 || u.hard < 0 {
            return Err(refusal(
                s,
                format!("ulimit {}: limits cannot be negative", u.name),
            ));
        }
        if u.soft > u.hard {
            return Err(refusal(
                s,
                format!(
                    "ulimit {}: soft limit {} is more than the hard limit {}",
                    u.name, u.soft, u.hard
                ),
            ));
        }
    }
    list_len(
        s,
        "sysctls",
        "--sysctl, sysctls",
        c.sysctls.len(),
        MAX_RUNTIME_ENTRIES,
    )?;
    for (key, value) in &c.sysctls {
        field(s, "sysctl", "--sysctl, sysctls", key)?;
        field(s, "sysctl value", "--sysctl, sysctls", value)?;
        let namespaced = NAMESPACED_SYSCTLS.contains(&key.as_str())
            || NAMESPACED_SYSCTL_PREFIXES
                .iter()
                .any(|p| key.starts_with(p) && key.len() > p.len());
        if !namespaced {
            return Err(refusal(
                s,
                format!(
                    "sysctl {key:?} is not namespaced: a task may set only {}, fs.mqueue.* and net.* \
                     (--sysctl, sysctls)",
                    NAMESPACED_SYSCTLS.join(", ")
                ),
            ));
        }
    }
    list_len(
        s,
        "extra hosts",
        "--host, extra_hosts",
        c.hosts.len(),
        MAX_RUNTIME_ENTRIES,
    )?;
    for line in &c.hosts {
        field(s, "extra host", "--host, extra_hosts", line)?;
        let mut words = line.split_whitespace();
        let ip_ok = words.next().is_some_and(|w| w.parse::<IpAddr>().is_ok());
        if !ip_ok || words.next().is_none() {
            return Err(refusal(
                s,
                format!("extra host {line:?} is not `IP hostname` (--host, extra_hosts)"),
            ));
        }
    }
    list_len(
        s,
        "groups",
        "--group, group_add",
        c.groups.len(),
        MAX_RUNTIME_ENTRIES,
    )?;
    for group in &c.groups {
        field(s, "group", "--group, group_add", group)?;
        if group.is_empty() || group.contains(':') {
            return Err(refusal(
                s,
                format!("group {group:?} is neither a name nor a gid (--group, group_add)"),
            ));
        }
    }
    list_len(
        s,
        "mounts",
        "--mount, volumes",
        c.mounts.len(),
        MAX_RUNTIME_ENTRIES,
    )?;
    if let Some(auth) = &c.registry_auth {
        for (what, value) in [
            ("registry user", &auth.username),
            ("registry password", &auth.password),
            ("registry", &auth.server),
        ] {
            field(s, what, "--with-registry-auth", value)?;
        }
    }
    let mut targets = BTreeSet::new();
    for m in &c.mounts {
        mount_spec(s, m)?;
        if !targets.insert(m.target.trim_end_matches('/')) {
            return Err(refusal(s, format!("duplicate mount point: {}", m.target)));
        }
    }
    Ok(())
}

fn mount_spec(s: &str, m: &Mount) -> Result<(), StoreError> {
    field(s, "mount target", "--mount, volumes", &m.target)?;
    field(s, "mount source", "--mount, volumes", &m.source)?;
    let invalid = |kind: &str, why: String| {
        refusal(s, format!("invalid mount config for type {kind:?}: {why}"))
    };
    let kind = match m.r#type() {
        mount::Type::Bind => "bind",
        mount::Type::Volume => "volume",
        mount::Type::Tmpfs => "tmpfs",
    };
    if !m.target.starts_with('/') {
        return Err(invalid(
            kind,
            format!(
                "invalid mount path: '{}' mount path must be absolute",
                m.target
            ),
        ));
    }
    if m.target.trim_end_matches('/').is_empty() {
        return Err(invalid(
            kind,
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    let tmpfs_options = m.tmpfs_size_bytes != 0 || m.tmpfs_mode != 0;
    let volume_options = m.volume_nocopy
        || !m.volume_labels.is_empty()
        || !m.volume_driver_options.is_empty()
        || !m.volume_driver.is_empty();
    match m.r#type() {
        mount::Type::Bind => {
            if m.source.is_empty() {
                return Err(invalid(kind, "field Source must not be empty".into()));
            }
            if !m.source.starts_with('/') {
                return Err(invalid(
                    kind,
                    format!(
                        "invalid mount path: '{}' mount path must be absolute",
                        m.source
                    ),
                ));
            }
            if !m.bind_propagation.is_empty()
                && !PROPAGATIONS.contains(&m.bind_propagation.as_str())
            {
                return Err(invalid(
                    kind,
                    format!(
                        "unknown propagation {:?} ({})",
                        m.bind_propagation,
                        PROPAGATIONS.join(", ")
                    ),
                ));
            }
            if tmpfs_options || volume_options {
                return Err(invalid(
                    kind,
                    "only bind options are allowed with a bind mount".into(),
                ));
            }
        }
        mount::Type::Tmpfs => {
            if !m.source.is_empty() {
                return Err(invalid(kind, "field Source must not be specified".into()));
            }
            if m.tmpfs_size_bytes < 0 {
                return Err(invalid(kind, "tmpfs size cannot be negative".into()));
            }
            if m.tmpfs_mode > 0o7777 {
                return Err(invalid(
                    kind,
                    format!("tmpfs mode {:o} is not a file mode", m.tmpfs_mode),
                ));
            }
            if volume_options || !m.bind_propagation.is_empty() {
                return Err(invalid(
                    kind,
                    "only tmpfs options are allowed with a tmpfs mount".into(),
                ));
            }
        }
        mount::Type::Volume => {
            if !volume_name_ok(&m.source) {
                return Err(invalid(
                    kind,
                    format!(
                        "invalid volume name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                        m.source
                    ),
                ));
            }
            if !matches!(m.volume_driver.as_str(), "" | "local") {
                return Err(invalid(
                    kind,
                    format!(
                        "unknown volume driver {:?}: shoal has the local driver only",
                        m.volume_driver
                    ),
                ));
            }
            if let Some(key) = m
                .volume_driver_options
                .keys()
                .find(|k| !matches!(k.as_str(), "type" | "o" | "device"))
            {
                return Err(invalid(
                    kind,
                    format!("invalid option key {key:?} for the local driver (type, o, device)"),
                ));
            }
            if tmpfs_options || !m.bind_propagation.is_empty() {
                return Err(invalid(
                    kind,
                    "only volume options are allowed with a volume mount".into(),
                ));
            }
        }
    }
    Ok(())
}

/// docker's volume names; a name with Swarm's placeholders
/// (`data-{{.Task.Slot}}`) is checked outside them here, and whole once
/// the node has rendered it.
fn volume_name_ok(source: &str) -> bool {
    let mut literal = String::new();
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        // A placeholder stands for at least one allowed character.
        literal.push('x');
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return false,
        }
    }
    literal.push_str(rest);
    source.is_empty()
        || (literal
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && literal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Ulimit;

    fn check(c: ContainerSpec) -> Result<(), String> {
        runtime_options("service web", &c).map_err(|e| e.to_string())
    }

    #[test]
    fn capabilities_ulimits_and_sysctls_are_refused_unless_known() {
        let caps = |add: &[&str]| ContainerSpec {
            capability_add: add.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(check(caps(&["NET_ADMIN", "cap_sys_time", "ALL"])).is_ok());
        let err = check(caps(&["CAP_FLY"])).unwrap_err();
        assert!(err.contains("unknown capability \"CAP_FLY\""), "{err}");
        let ulimit = |name: &str, soft, hard| ContainerSpec {
            ulimits: vec![Ulimit {
                name: name.into(),
                soft,
                hard,
            }],
            ..Default::default()
        };
        assert!(check(ulimit("nofile", 1024, 2048)).is_ok());
        assert!(check(ulimit("files", 1, 1))
            .unwrap_err()
            .contains("unknown ulimit"));
        assert!(check(ulimit("nproc", 20, 10))
            .unwrap_err()
            .contains("more than the hard"));
        let sysctl = |k: &str| ContainerSpec {
            sysctls: [(k.to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        assert!(check(sysctl("net.ipv4.ip_forward")).is_ok());
        assert!(check(sysctl("kernel.shmmax")).is_ok());
        let err = check(sysctl("kernel.panic")).unwrap_err();
        assert!(err.contains("not namespaced"), "{err}");
        assert!(check(sysctl("net.")).is_err());
    }

    #[test]
    fn mounts_are_refused_with_dockers_reasons() {
        let one = |m: Mount| ContainerSpec {
            mounts: vec![m],
            ..Default::default()
        };
        let tmpfs = Mount {
            r#type: mount::Type::Tmpfs as i32,
            target: "/tmp".into(),
            tmpfs_size_bytes: 1 << 20,
            ..Default::default()
        };
        assert!(check(one(tmpfs.clone())).is_ok());
        let err = check(one(Mount {
            target: "tmp".into(),
            ..tmpfs.clone()
        }))
        .unwrap_err();
        assert!(err.contains("mount path must be absolute"), "{err}");
        let err = check(one(Mount {
            source: "/x".into(),
            ..tmpfs.clone()
        }))
        .unwrap_err();
        assert!(err.contains("field Source must not be specified"), "{err}");
        let bind = Mount {
            r#type: mount::Type::Bind as i32,
            source: "relative".into(),
            target: "/data".into(),
            ..Default::default()
        };
        assert!(check(one(bind.clone()))
            .unwrap_err()
            .contains("must be absolute"));
        let err = check(ContainerSpec {
            mounts: vec![tmpfs.clone(), tmpfs],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("duplicate mount point: /tmp"), "{err}");
        let volume = |source: &str, driver: &str, option: Option<&str>| Mount {
            r#type: mount::Type::Volume as i32,
            source: source.into(),
            target: "/data".into(),
            volume_driver: driver.into(),
            volume_driver_options: option
                .map(|k| [(k.to_string(), "x".to_string())].into())
                .unwrap_or_default(),
            ..Default::default()
        };
        assert!(check(one(volume("pgdata", "local", Some("type")))).is_ok());
        assert!(
            check(one(volume("", "", None))).is_ok(),
            "an anonymous volume"
        );
        let err = check(one(volume("pgdata", "flocker", None))).unwrap_err();
        assert!(err.contains("unknown volume driver \"flocker\""), "{err}");
        assert!(check(one(volume("../x", "", None)))
            .unwrap_err()
            .contains("invalid volume name"));
        // Swarm's placeholders: the node renders them.
        assert!(check(one(volume("data-{{.Task.Slot}}", "", None))).is_ok());
        assert!(check(one(volume("{{.Service.Name}}_db", "", None))).is_ok());
        for bad in ["data/{{.Task.Slot}}", "data-{{.Task.Slot"] {
            assert!(check(one(volume(bad, "", None))).is_err(), "{bad}");
        }
        assert!(check(one(volume("pgdata", "", Some("size"))))
            .unwrap_err()
            .contains("invalid option key"));
        let hosts = ContainerSpec {
            hosts: vec!["db 10.0.0.1".into()],
            ..Default::default()
        };
        assert!(check(hosts).unwrap_err().contains("IP hostname"));
    }
}
