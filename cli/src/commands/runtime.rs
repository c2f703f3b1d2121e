//! The flags of `service create` and `service update` that set what a
//! container gets beyond its command, docker's names and forms:
//! `--read-only`, `--init`, `-t/--tty`, `--cap-add/--cap-drop`,
//! `--group`, `--add-host host:ip` (docker's `--host`, which is the manager's
//! address in shoal), `--sysctl k=v`, `--ulimit name=soft[:hard]`,
//! `--mount type=...,...`; `update` edits the lists with `-add`/`-rm`.
//! Beyond docker: `--no-new-privileges` (compose's `security_opt`).

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{json, Map, Value};
use shoal_proto::types::v1::{mount, ContainerSpec, Mount, Ulimit};

use crate::units;

/// Switches of both `create` and `update` (`--read-only=false` turns one off).
#[derive(Debug, Clone, Default, Args)]
pub struct SwitchFlags {
    /// Mount the container's root filesystem as read only
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub init: Option<bool>,
    /// Allocate a pseudo-TTY
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tty: Option<bool>,
    /// Setuid binaries and file capabilities grant the container nothing
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub no_new_privileges: Option<bool>,
}

impl SwitchFlags {
    pub fn apply(&self, container: &mut ContainerSpec) {
        let fields = [
            (self.read_only, &mut container.read_only),
            (self.init, &mut container.init),
            (self.tty, &mut container.tty),
            (self.no_new_privileges, &mut container.no_new_privileges),
        ];
        for (flag, field) in fields {
            if let Some(on) = flag {
                *field = on;
            }
        }
    }
}

/// The lists `service create` sets.
#[derive(Debug, Clone, Default, Args)]
pub struct CreateFlags {
    /// Add Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Set one or more supplementary user groups for the container
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Set one or more custom host-to-IP mappings (host:ip); docker's
    /// `--host`, which names the manager here (docker run's name)
    #[arg(long, value_name = "HOST:IP", value_parser = host)]
    pub add_host: Vec<String>,
    /// Attach a filesystem mount to the service
    #[arg(long, value_name = "MOUNT", value_parser = mount_flag)]
    pub mount: Vec<Mount>,
    /// Sysctl options
    #[arg(long, value_name = "KEY=VALUE", value_parser = sysctl)]
    pub sysctl: Vec<(String, String)>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long, value_name = "ULIMIT", value_parser = ulimit)]
    pub ulimit: Vec<Ulimit>,
}

impl CreateFlags {
    pub fn apply(&self, container: &mut ContainerSpec) {
        container.capability_add = self.cap_add.clone();
        container.capability_drop = self.cap_drop.clone();
        container.groups = self.group.clone();
        container.hosts = self.add_host.clone();
        container.mounts = self.mount.clone();
        container.sysctls = self.sysctl.iter().cloned().collect();
        container.ulimits = self.ulimit.clone();
    }
}

/// The edits `service update` makes to those lists.
#[derive(Debug, Clone, Default, Args)]
pub struct UpdateFlags {
    /// Add Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Add an additional supplementary user group to the container
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Remove a previously added supplementary user group from the container
    #[arg(long, value_name = "GROUP")]
    pub group_rm: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "HOST:IP", value_parser = host)]
    pub host_add: Vec<String>,
    /// Remove a custom host-to-IP mapping (host:ip, or host for every one of it)
    #[arg(long, value_name = "HOST[:IP]")]
    pub host_rm: Vec<String>,
    /// Add or update a mount on a service
    #[arg(long, value_name = "MOUNT", value_parser = mount_flag)]
    pub mount_add: Vec<Mount>,
    /// Remove a mount by its target path
    #[arg(long, value_name = "PATH")]
    pub mount_rm: Vec<String>,
    /// Add or update a Sysctl option
    #[arg(long, value_name = "KEY=VALUE", value_parser = sysctl)]
    pub sysctl_add: Vec<(String, String)>,
    /// Remove a Sysctl option
    #[arg(long, value_name = "KEY")]
    pub sysctl_rm: Vec<String>,
    /// Add or update a ulimit option (name=soft[:hard])
    #[arg(long, value_name = "ULIMIT", value_parser = ulimit)]
    pub ulimit_add: Vec<Ulimit>,
    /// Remove a ulimit option
    #[arg(long, value_name = "NAME")]
    pub ulimit_rm: Vec<String>,
}

impl UpdateFlags {
    pub fn apply(&self, c: &mut ContainerSpec) {
        // docker's updateCapabilities: an added capability is no longer
        // dropped, a dropped one no longer added.
        let same = |a: &String, b: &String| a.eq_ignore_ascii_case(b);
        for cap in &self.cap_add {
            c.capability_drop.retain(|d| !same(d, cap));
            if !c.capability_add.iter().any(|a| same(a, cap)) {
                c.capability_add.push(cap.clone());
            }
        }
        for cap in &self.cap_drop {
            c.capability_add.retain(|a| !same(a, cap));
            if !c.capability_drop.iter().any(|d| same(d, cap)) {
                c.capability_drop.push(cap.clone());
            }
        }
        c.groups.retain(|g| !self.group_rm.contains(g));
        for group in &self.group_add {
            if !c.groups.contains(group) {
                c.groups.push(group.clone());
            }
        }
        // `--host-rm host` removes every line of that host, `host:ip` the one.
        c.hosts.retain(|line| {
            !self.host_rm.iter().any(|rm| match host(rm) {
                Ok(exact) => *line == exact,
                Err(_) => line.split_whitespace().skip(1).any(|name| name == rm),
            })
        });
        for line in &self.host_add {
            if !c.hosts.contains(line) {
                c.hosts.push(line.clone());
            }
        }
        let rm_target = |target: &str| {
            let t = target.trim_end_matches('/');
            self.mount_rm.iter().any(|rm| rm.trim_end_matches('/') == t)
                || self
                    .mount_add
                    .iter()
                    .any(|m| m.target.trim_end_matches('/') == t)
        };
        c.mounts.retain(|m| !rm_target(&m.target));
        c.mounts.extend(self.mount_add.iter().cloned());
        for key in &self.sysctl_rm {
            c.sysctls.remove(key);
        }
        c.sysctls.extend(self.sysctl_add.iter().cloned());
        c.ulimits.retain(|u| {
            !self.ulimit_rm.contains(&u.name) && !self.ulimit_add.iter().any(|a| a.name == u.name)
        });
        c.ulimits.extend(self.ulimit_add.iter().cloned());
        c.ulimits.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// What of these `service inspect` shows, in docker's `ContainerSpec`
/// shape (each key only when set, as docker's `omitempty`).
pub fn inspect_fields(c: &ContainerSpec, object: &mut Map<String, Value>) {
    let mut optional = |key: &str, value: Value, present: bool| {
        if present {
            object.insert(key.into(), value);
        }
    };
    optional("Groups", json!(c.groups), !c.groups.is_empty());
    optional("TTY", json!(true), c.tty);
    optional("OpenStdin", json!(true), c.open_stdin);
    optional("ReadOnly", json!(true), c.read_only);
    optional(
        "Mounts",
        Value::Array(c.mounts.iter().map(mount_json).collect()),
        !c.mounts.is_empty(),
    );
    optional("Hosts", json!(c.hosts), !c.hosts.is_empty());
    optional("Init", json!(true), c.init);
    let sysctls: BTreeMap<&String, &String> = c.sysctls.iter().collect();
    optional("Sysctls", json!(sysctls), !c.sysctls.is_empty());
    optional(
        "CapabilityAdd",
        json!(c.capability_add),
        !c.capability_add.is_empty(),
    );
    optional(
        "CapabilityDrop",
        json!(c.capability_drop),
        !c.capability_drop.is_empty(),
    );
    optional(
        "Ulimits",
        Value::Array(
            c.ulimits
                .iter()
                .map(|u| json!({ "Name": u.name, "Hard": u.hard, "Soft": u.soft }))
                .collect(),
        ),
        !c.ulimits.is_empty(),
    );
    optional(
        "Privileges",
        json!({ "NoNewPrivileges": true }),
        c.no_new_privileges,
    );
}

fn mount_json(m: &Mount) -> Value {
    let mut object = Map::new();
    let kind = match m.r#type() {
        mount::Type::Bind => "bind",
        mount::Type::Volume => "volume",
        mount::Type::Tmpfs => "tmpfs",
    };
    object.insert("Type".into(), json!(kind));
    if !m.source.is_empty() {
        object.insert("Source".into(), json!(m.source));
    }
    object.insert("Target".into(), json!(m.target));
    if m.read_only {
        object.insert("ReadOnly".into(), json!(true));
    }
    match m.r#type() {
        mount::Type::Bind if !m.bind_propagation.is_empty() => {
            object.insert(
                "BindOptions".into(),
                json!({ "Propagation": m.bind_propagation }),
            );
        }
        mount::Type::Tmpfs if m.tmpfs_size_bytes != 0 || m.tmpfs_mode != 0 => {
            let mut options = Map::new();
            if m.tmpfs_size_bytes != 0 {
                options.insert("SizeBytes".into(), json!(m.tmpfs_size_bytes));
            }
            if m.tmpfs_mode != 0 {
                options.insert("Mode".into(), json!(m.tmpfs_mode));
            }
            object.insert("TmpfsOptions".into(), Value::Object(options));
        }
        mount::Type::Volume => {
            let labels: BTreeMap<&String, &String> = m.volume_labels.iter().collect();
            let options: BTreeMap<&String, &String> = m.volume_driver_options.iter().collect();
            let mut volume = Map::new();
            if m.volume_nocopy {
                volume.insert("NoCopy".into(), json!(true));
            }
            if !labels.is_empty() {
                volume.insert("Labels".into(), json!(labels));
            }
            if !m.volume_driver.is_empty() || !options.is_empty() {
                volume.insert(
                    "DriverConfig".into(),
                    json!({ "Name": m.volume_driver, "Options": options }),
                );
            }
            if !volume.is_empty() {
                object.insert("VolumeOptions".into(), Value::Object(volume));
            }
        }
        _ => {}
    }
    Value::Object(object)
}

/// `--host db:10.0.0.9` (docker's `host:ip`; an IPv6 address may follow the
/// first colon) as Swarm's line `10.0.0.9 db`.
pub fn host(input: &str) -> Result<String, String> {
    let (name, ip) = input
        .split_once(':')
        .or_else(|| input.split_once('='))
        .ok_or_else(|| format!("bad format for add-host: {input:?}"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address in add-host: {ip:?}"));
    }
    Ok(format!("{ip} {name}"))
}

fn sysctl(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("invalid argument {input:?}: sysctls are KEY=VALUE")),
    }
}

/// docker's `--ulimit nofile=1024:2048` (`name=soft[:hard]`; hard defaults to soft).
pub fn ulimit(input: &str) -> Result<Ulimit, String> {
    let (name, limits) = input
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {input}"))?;
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {input}"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => {
            let n = number(limits)?;
            (n, n)
        }
    };
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// docker's `--mount` CSV: `type=bind|volume|tmpfs` (default volume),
/// `source|src`, `target|destination|dst`, `readonly|ro[=bool]`,
/// `bind-propagation`, `volume-nocopy[=bool]`, `volume-label=k=v`,
/// `volume-driver`, `volume-opt=k=v`, `tmpfs-size`, `tmpfs-mode` (octal).
pub fn mount_flag(input: &str) -> Result<Mount, String> {
    let mut m = Mount {
        r#type: mount::Type::Volume as i32,
        ..Default::default()
    };
    let mut labels = BTreeMap::new();
    let mut options = BTreeMap::new();
    let bool_of = |key: &str, value: Option<&str>| match value.map(str::to_ascii_lowercase) {
        None => Ok(true),
        Some(v) if matches!(v.as_str(), "1" | "true") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false") => Ok(false),
        Some(v) => Err(format!("invalid value for {key}: {v}")),
    };
    for field in input.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let needs = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        match key.as_str() {
            "type" => {
                m.r#type = match needs(value)?.to_ascii_lowercase().as_str() {
                    "bind" => mount::Type::Bind,
                    "volume" => mount::Type::Volume,
                    "tmpfs" => mount::Type::Tmpfs,
                    other => {
                        return Err(format!(
                            "invalid mount type {other:?} (bind, volume, tmpfs)"
                        ))
                    }
                } as i32
            }
            "source" | "src" => m.source = needs(value)?,
            "target" | "dst" | "destination" => m.target = needs(value)?,
            "readonly" | "ro" => m.read_only = bool_of(&key, value)?,
            "bind-propagation" => m.bind_propagation = needs(value)?,
            "volume-nocopy" => m.volume_nocopy = bool_of(&key, value)?,
            "volume-driver" => m.volume_driver = needs(value)?,
            "volume-label" | "volume-opt" => {
                let pair = needs(value)?;
                let (k, v) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
                let into = if key == "volume-label" {
                    &mut labels
                } else {
                    &mut options
                };
                into.insert(k.to_string(), v.to_string());
            }
            "tmpfs-size" => m.tmpfs_size_bytes = units::ram_in_bytes(&needs(value)?)?,
            "tmpfs-mode" => {
                let mode = needs(value)?;
                m.tmpfs_mode = u32::from_str_radix(&mode, 8)
                    .map_err(|_| format!("invalid value for tmpfs-mode: {mode}"))?
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.is_empty() {
        return Err("target is required".to_string());
    }
    m.volume_labels = labels.into_iter().collect();
    m.volume_driver_options = options.into_iter().collect();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_read_as_docker_reads_them() {
        let m = mount_flag("type=tmpfs,dst=/tmp,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(m.r#type(), mount::Type::Tmpfs);
        assert_eq!(
            (m.target.as_str(), m.tmpfs_size_bytes, m.tmpfs_mode),
            ("/tmp", 64 << 20, 0o1770)
        );
        let m = mount_flag("type=bind,src=/srv/www,target=/var/www,readonly").unwrap();
        assert_eq!(m.r#type(), mount::Type::Bind);
        assert!(m.read_only);
        let m = mount_flag("source=data,target=/data,volume-nocopy,volume-opt=type=nfs").unwrap();
        assert_eq!(m.r#type(), mount::Type::Volume, "docker's default type");
        assert!(m.volume_nocopy);
        assert_eq!(m.volume_driver_options["type"], "nfs");
        assert_eq!(
            mount_flag("type=bind,src=/x").unwrap_err(),
            "target is required"
        );
        assert!(mount_flag("type=disk,target=/x").is_err());
        assert!(mount_flag("target=/x,colour=blue").is_err());
    }

    #[test]
    fn hosts_sysctls_and_ulimits_take_dockers_forms() {
        assert_eq!(host("db:10.0.0.9").unwrap(), "10.0.0.9 db");
        assert_eq!(host("v6:::1").unwrap(), "::1 v6");
        assert!(host("db:not-ip").is_err());
        let u = ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(ulimit("nproc=64").unwrap().hard, 64);
        assert!(ulimit("nproc=64:32").is_err());
        assert!(sysctl("net.core.somaxconn=1024").is_ok());
        assert!(sysctl("=1").is_err());
    }

    #[test]
    fn update_edits_each_list_as_docker_does() {
        let mut c = ContainerSpec {
            capability_drop: vec!["NET_RAW".into()],
            hosts: vec!["10.0.0.1 db".into(), "10.0.0.2 cache".into()],
            mounts: vec![mount_flag("type=tmpfs,target=/tmp").unwrap()],
            ulimits: vec![ulimit("nofile=10").unwrap()],
            ..Default::default()
        };
        UpdateFlags {
            cap_add: vec!["net_raw".into(), "SYS_TIME".into()],
            host_rm: vec!["db".into()],
            host_add: vec![host("queue:10.0.0.3").unwrap()],
            mount_add: vec![mount_flag("type=tmpfs,target=/tmp/,tmpfs-size=1m").unwrap()],
            ulimit_add: vec![ulimit("nofile=20").unwrap()],
            ..Default::default()
        }
        .apply(&mut c);
        assert!(c.capability_drop.is_empty(), "{:?}", c.capability_drop);
        assert_eq!(c.capability_add, ["net_raw", "SYS_TIME"]);
        assert_eq!(c.hosts, ["10.0.0.2 cache", "10.0.0.3 queue"]);
        assert_eq!(c.mounts.len(), 1);
        assert_eq!(c.mounts[0].tmpfs_size_bytes, 1 << 20);
        assert_eq!(c.ulimits[0].soft, 20);
    }
}
