//! Turns one validated compose service into a shoal `ServiceSpec`, the way docker's
//! cli/compose/convert maps compose onto a Swarm service, and reports every key shoal ignores.

use std::collections::{BTreeMap, HashMap};

use shoal_proto::types::v1::{
    restart_policy, service_spec, update_config, ConfigReference, ContainerSpec, DnsConfig,
    EndpointSpec, GlobalJob, GlobalMode, NetworkAliasesSpec, PlacementPreference, PortConfig,
    PortProtocol, PublishMode, ReplicatedJob, ReplicatedMode, RestartPolicy, SecretReference,
    ServiceSpec, TaskSpec, UpdateConfig,
};

use super::duration::parse_go_duration;
use super::error::ComposeError;
use super::node::{KeyPath, Node};
use super::ports::{expand_short, PortEntry};
use super::shlex;
use super::source::Source;
use crate::file_reference::FileReference;

mod env_file;
mod healthcheck;
mod logging;
mod resources;
mod runtime;
mod volumes;

const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "deploy",
    "labels",
    "user",
    "working_dir",
    "hostname",
    "dns",
    "dns_search",
    "stop_signal",
    "stop_grace_period",
    "restart",
    "secrets",
    "configs",
    "networks",
    "healthcheck",
    "read_only",
    "init",
    "tty",
    "stdin_open",
    "cap_add",
    "cap_drop",
    "group_add",
    "extra_hosts",
    "sysctls",
    "ulimits",
    "tmpfs",
    "security_opt",
    "env_file",
    "volumes",
    "logging",
];

const DEPLOY_KEYS: &[&str] = &[
    "mode",
    "replicas",
    "labels",
    "restart_policy",
    "update_config",
    "rollback_config",
    "placement",
    "resources",
];

/// `deploy.placement` as read.
#[derive(Default)]
struct Placement {
    constraints: Vec<String>,
    preferences: Vec<PlacementPreference>,
    max_replicas_per_node: u64,
}

pub struct Converter<'a> {
    pub src: &'a Source<'a>,
    /// The compose file relative paths are read beside.
    pub base: &'a std::path::Path,
    pub env: &'a HashMap<String, String>,
    pub warnings: &'a mut Vec<String>,
}

type Result<T> = std::result::Result<T, ComposeError>;

impl Converter<'_> {
    fn unsupported(&mut self, service: &str, key: &str) {
        // docker's own warning lines name these already.
        let dockers = super::DOCKER_UNSUPPORTED.contains(&key)
            || super::DOCKER_DEPRECATED.iter().any(|(k, _)| *k == key);
        if dockers {
            return;
        }
        self.warnings.push(format!(
            "service {service:?}: key {key:?} is not supported yet and was ignored"
        ));
    }

    fn string(&self, node: &Node, path: &KeyPath) -> Result<String> {
        match node {
            Node::Str(s) => Ok(s.clone()),
            other => Err(self
                .src
                .invalid(path, format!("must be a string, not {}", other.type_name()))),
        }
    }

    fn unsigned(&self, node: &Node, path: &KeyPath) -> Result<u64> {
        let value = match node {
            Node::Int(i) => i128::from(*i),
            Node::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i128,
            other => {
                return Err(self.src.invalid(
                    path,
                    format!("must be an integer, not {}", other.type_name()),
                ))
            }
        };
        u64::try_from(value).map_err(|_| self.src.invalid(path, "must not be negative"))
    }

    fn duration_ms(&self, node: &Node, path: &KeyPath) -> Result<u64> {
        let text = self.string(node, path)?;
        let nanos = parse_go_duration(&text).map_err(|e| self.src.invalid(path, e))?;
        u64::try_from(nanos / 1_000_000)
            .map_err(|_| self.src.invalid(path, "must not be a negative duration"))
    }

    fn command(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        match node {
            Node::Str(s) => shlex::split(s).map_err(|e| self.src.invalid(path, e)),
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(item, &path.index(i)))
                .collect(),
            other => Err(self.src.invalid(
                path,
                format!("must be a string or list, not {}", other.type_name()),
            )),
        }
    }

    /// `labels` / `deploy.labels`: list of `K=V` (a bare `K` means an empty value) or mapping
    /// (null means empty), values rendered like Go's `fmt.Sprint`.
    fn labels(&self, node: &Node, path: &KeyPath) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        match node {
            Node::Map(entries) => {
                for (k, v) in entries {
                    let value = match v {
                        Node::Null => String::new(),
                        other => other.scalar_string().ok_or_else(|| {
                            self.src.invalid(&path.key(k), "must be a string or number")
                        })?,
                    };
                    out.insert(k.clone(), value);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let text = self.string(item, &path.index(i))?;
                    let (k, v) = text.split_once('=').unwrap_or((&text, ""));
                    out.insert(k.to_string(), v.to_string());
                }
            }
            Node::Null => {}
            other => {
                return Err(self.src.invalid(
                    path,
                    format!("must be a mapping or list, not {}", other.type_name()),
                ))
            }
        }
        Ok(out)
    }

    /// `environment` over the `env_file` variables (`base`), with docker's
    /// resolution: a variable of `environment` without a value (`- K`, `K:`
    /// or an empty value) takes the value from the environment; one that
    /// stays without a value is left out (and hides the file's value).
    fn environment(
        &self,
        base: BTreeMap<String, Option<String>>,
        node: &Node,
        path: &KeyPath,
    ) -> Result<Vec<String>> {
        let mut vars: BTreeMap<String, Option<String>> = BTreeMap::new();
        match node {
            Node::Map(entries) => {
                for (k, v) in entries {
                    let value = match v {
                        Node::Null => None,
                        other => Some(other.scalar_string().ok_or_else(|| {
                            self.src
                                .invalid(&path.key(k), "must be a string, number or null")
                        })?),
                    };
                    vars.insert(k.clone(), value);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let text = self.string(item, &path.index(i))?;
                    match text.split_once('=') {
                        Some((k, v)) => vars.insert(k.to_string(), Some(v.to_string())),
                        None => vars.insert(text, None),
                    };
                }
            }
            Node::Null => {}
            other => {
                return Err(self.src.invalid(
                    path,
                    format!("must be a mapping or list, not {}", other.type_name()),
                ))
            }
        }
        let resolved = vars.into_iter().map(|(k, v)| {
            let from_env = self.env.get(&k);
            let value = match (v, from_env) {
                (None, Some(e)) => Some(e.clone()),
                (Some(v), Some(e)) if v.is_empty() => Some(e.clone()),
                (v, _) => v,
            };
            (k, value)
        });
        let mut merged = base;
        merged.extend(resolved);
        let mut out: Vec<String> = merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        out.sort();
        Ok(out)
    }

    /// A service's `secrets`: names (short syntax) or `source`, `target`,
    /// `uid`, `gid`, `mode` (long syntax). Names are the compose keys of the
    /// top-level `secrets`; the stack maps them to cluster names.
    fn file_references(&self, node: &Node, path: &KeyPath) -> Result<Vec<FileReference>> {
        let Node::Seq(items) = node else {
            return Err(self.src.invalid(path, "must be a list"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = path.index(i);
            let mut reference = FileReference::default();
            match item {
                Node::Str(name) => reference.name = name.clone(),
                Node::Map(entries) => {
                    for (k, v) in entries {
                        let kp = item_path.key(k);
                        match k.as_str() {
                            "source" => reference.name = self.string(v, &kp)?,
                            "target" => reference.target = self.string(v, &kp)?,
                            "uid" => reference.uid = self.string(v, &kp)?,
                            "gid" => reference.gid = self.string(v, &kp)?,
                            "mode" => {
                                let mode = self.unsigned(v, &kp)?;
                                reference.mode =
                                    Some(u32::try_from(mode).map_err(|_| {
                                        self.src.invalid(&kp, "is not a file mode")
                                    })?);
                            }
                            _ => {}
                        }
                    }
                }
                other => {
                    return Err(self.src.invalid(
                        &item_path,
                        format!("must be a string or mapping, not {}", other.type_name()),
                    ))
                }
            }
            out.push(reference);
        }
        Ok(out)
    }

    /// A service's `networks`: a list of keys, or a mapping of keys to
    /// per-network settings, of which `aliases` become the service's extra
    /// DNS names on that network and the others are named in a warning.
    /// Keys are those of the top-level `networks`; the stack maps them to
    /// cluster names (in both lists).
    fn networks(
        &mut self,
        service: &str,
        node: &Node,
        path: &KeyPath,
    ) -> Result<(Vec<String>, Vec<NetworkAliasesSpec>)> {
        let mut out = Vec::new();
        let mut aliases = Vec::new();
        match node {
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.push(self.string(item, &path.index(i))?);
                }
            }
            Node::Map(entries) => {
                for (network, settings) in entries {
                    if let Node::Map(settings) = settings {
                        for (key, value) in settings {
                            if key.starts_with("x-") {
                                continue;
                            }
                            if key == "aliases" {
                                let names = self.string_list(value, &path.key(network).key(key))?;
                                if !names.is_empty() {
                                    aliases.push(NetworkAliasesSpec {
                                        network: network.clone(),
                                        aliases: names.into_iter().map(|(name, _)| name).collect(),
                                    });
                                }
                                continue;
                            }
                            self.warnings.push(format!(
                                "service {service:?}: network {network:?}: key {key:?} is not supported yet and was ignored"
                            ));
                        }
                    }
                    out.push(network.clone());
                }
            }
            Node::Null => {}
            other => {
                return Err(self.src.invalid(
                    path,
                    format!("must be a list or mapping, not {}", other.type_name()),
                ))
            }
        }
        Ok((out, aliases))
    }

    /// docker's `string_or_list` (`dns`, `dns_search`) and `list_of_strings`:
    /// the strings, each with its path.
    fn string_list(&self, node: &Node, path: &KeyPath) -> Result<Vec<(String, KeyPath)>> {
        match node {
            Node::Str(s) => Ok(vec![(s.clone(), path.clone())]),
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = path.index(i);
                    Ok((self.string(item, &p)?, p))
                })
                .collect(),
            other => Err(self.src.invalid(
                path,
                format!("must be a string or list, not {}", other.type_name()),
            )),
        }
    }

    /// `dns`: the nameservers, as docker's convert reads them (IP addresses,
    /// written back as docker writes them). An address that is not one is
    /// refused here, at its line (docker's loader lets it through and its
    /// deploy drops it or fails on it later); an empty entry (`dns: ${UNSET}`)
    /// names no server.
    fn nameservers(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (entry, p) in self.string_list(node, path)? {
            if entry.is_empty() {
                continue;
            }
            let ip = entry.trim().parse::<std::net::IpAddr>().map_err(|_| {
                self.src
                    .invalid(&p, format!("must be an IP address, not {entry:?}"))
            })?;
            out.push(ip.to_string());
        }
        Ok(out)
    }

    /// `dns_search`: the search domains as written (the manager checks
    /// them); an empty entry names none.
    fn search_domains(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        Ok(self
            .string_list(node, path)?
            .into_iter()
            .map(|(entry, _)| entry)
            .filter(|entry| !entry.is_empty())
            .collect())
    }

    fn ports(&mut self, service: &str, node: &Node, path: &KeyPath) -> Result<Vec<PortConfig>> {
        let Node::Seq(items) = node else {
            return Err(self.src.invalid(path, "must be a list"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = path.index(i);
            let entries: Vec<PortEntry> = match item {
                Node::Str(spec) => {
                    expand_short(spec).map_err(|e| self.src.invalid(&item_path, e))?
                }
                Node::Int(n) => {
                    expand_short(&n.to_string()).map_err(|e| self.src.invalid(&item_path, e))?
                }
                Node::Map(_) => vec![self.long_port(item, &item_path)?],
                other => {
                    return Err(self.src.invalid(
                        &item_path,
                        format!(
                            "must be a string, integer or mapping, not {}",
                            other.type_name()
                        ),
                    ))
                }
            };
            for entry in entries {
                if let Some(ip) = &entry.ignored_host_ip {
                    self.warnings.push(format!(
                        "service {service:?}: port {}: publishing on host address {ip} is not supported; the port is published on all addresses",
                        item.scalar_string().unwrap_or_default()
                    ));
                }
                let protocol = match entry.protocol.as_str() {
                    "tcp" | "" => PortProtocol::Tcp,
                    "udp" => PortProtocol::Udp,
                    other => {
                        return Err(self.src.invalid(
                            &item_path,
                            format!("protocol {other:?} is not supported (tcp or udp)"),
                        ))
                    }
                };
                let mode = match entry.mode.as_str() {
                    "ingress" | "" => PublishMode::Ingress,
                    "host" => PublishMode::Host,
                    other => {
                        return Err(self.src.invalid(
                            &item_path,
                            format!("unknown publish mode {other:?} (ingress or host)"),
                        ))
                    }
                };
                out.push(PortConfig {
                    name: String::new(),
                    protocol: protocol as i32,
                    target_port: u32::from(entry.target),
                    published_port: u32::from(entry.published),
                    publish_mode: mode as i32,
                });
            }
        }
        Ok(out)
    }

    fn long_port(&self, node: &Node, path: &KeyPath) -> Result<PortEntry> {
        let port = |key: &str| -> Result<u16> {
            match node.get(key) {
                None => Ok(0),
                Some(v) => {
                    let p = self.unsigned(v, &path.key(key))?;
                    u16::try_from(p).map_err(|_| {
                        self.src
                            .invalid(&path.key(key), "must be a port number (0-65535)")
                    })
                }
            }
        };
        let text = |key: &str| -> Result<String> {
            node.get(key)
                .map(|v| self.string(v, &path.key(key)))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(PortEntry {
            target: port("target")?,
            published: port("published")?,
            protocol: text("protocol")?,
            mode: text("mode")?,
            ignored_host_ip: None,
        })
    }

    fn restart_policy(&self, node: &Node, path: &KeyPath) -> Result<RestartPolicy> {
        let mut policy = RestartPolicy::default();
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        for (k, v) in entries {
            let p = path.key(k);
            match k.as_str() {
                "condition" => {
                    policy.condition = match self.string(v, &p)?.as_str() {
                        "any" | "" => restart_policy::Condition::Any,
                        "on-failure" => restart_policy::Condition::OnFailure,
                        "none" => restart_policy::Condition::None,
                        other => {
                            return Err(self.src.invalid(
                                &p,
                                format!(
                                    "unknown restart condition {other:?} (none, on-failure or any)"
                                ),
                            ))
                        }
                    } as i32
                }
                "delay" => policy.delay_ms = Some(self.duration_ms(v, &p)?),
                "max_attempts" => policy.max_attempts = self.unsigned(v, &p)?,
                "window" => policy.window_ms = self.duration_ms(v, &p)?,
                _ => {}
            }
        }
        Ok(policy)
    }

    /// The legacy service-level `restart`, which docker converts when `deploy.restart_policy`
    /// is absent.
    fn legacy_restart(&self, node: &Node, path: &KeyPath) -> Result<Option<RestartPolicy>> {
        let text = self.string(node, path)?;
        let (name, count) = match text.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (text.as_str(), None),
        };
        let condition = match name {
            "" => return Ok(None),
            "no" => restart_policy::Condition::None,
            "always" | "unless-stopped" => restart_policy::Condition::Any,
            "on-failure" => restart_policy::Condition::OnFailure,
            other => {
                return Err(self.src.invalid(
                    path,
                    format!("invalid restart policy: unknown policy {other:?} (no, always, on-failure or unless-stopped)"),
                ))
            }
        };
        let max_attempts = match count {
            None => 0,
            Some(_) if condition != restart_policy::Condition::OnFailure => {
                return Err(self.src.invalid(
                    path,
                    "maximum retry count can only be used with 'on-failure'",
                ))
            }
            Some(c) => c.parse::<u64>().map_err(|_| {
                self.src.invalid(
                    path,
                    format!("invalid restart policy: bad retry count {c:?}"),
                )
            })?,
        };
        Ok(Some(RestartPolicy {
            condition: condition as i32,
            max_attempts,
            ..Default::default()
        }))
    }

    fn update_config(&self, node: &Node, path: &KeyPath) -> Result<UpdateConfig> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        // Docker defaults parallelism to 1 once update_config is given.
        let mut cfg = UpdateConfig {
            parallelism: 1,
            ..Default::default()
        };
        for (k, v) in entries {
            let p = path.key(k);
            match k.as_str() {
                "parallelism" => cfg.parallelism = self.unsigned(v, &p)?,
                "delay" => cfg.delay_ms = self.duration_ms(v, &p)?,
                "monitor" => cfg.monitor_ms = self.duration_ms(v, &p)?,
                "order" => {
                    cfg.order = match self.string(v, &p)?.as_str() {
                        "stop-first" | "" => update_config::Order::StopFirst,
                        "start-first" => update_config::Order::StartFirst,
                        other => {
                            return Err(self.src.invalid(
                                &p,
                                format!("unknown order {other:?} (stop-first or start-first)"),
                            ))
                        }
                    } as i32
                }
                "failure_action" => {
                    cfg.failure_action = match self.string(v, &p)?.as_str() {
                        "pause" | "" => update_config::FailureAction::Pause,
                        "continue" => update_config::FailureAction::Continue,
                        "rollback" => update_config::FailureAction::Rollback,
                        other => {
                            return Err(self.src.invalid(
                                &p,
                                format!(
                                "unknown failure action {other:?} (pause, continue or rollback)"
                            ),
                            ))
                        }
                    } as i32
                }
                "max_failure_ratio" => {
                    cfg.max_failure_ratio = match v {
                        Node::Int(i) => *i as f32,
                        Node::Float(f) => *f as f32,
                        other => {
                            return Err(self.src.invalid(
                                &p,
                                format!("must be a number, not {}", other.type_name()),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// `deploy.placement`: `constraints` and `preferences` (`- spread:
    /// node.labels.zone`), as written (the manager checks them), and
    /// `max_replicas_per_node`.
    fn placement(&mut self, service: &str, node: &Node, path: &KeyPath) -> Result<Placement> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        let mut placement = Placement::default();
        for (key, value) in entries {
            let p = path.key(key);
            match key.as_str() {
                "constraints" => {
                    placement.constraints = self
                        .string_list(value, &p)?
                        .into_iter()
                        .map(|(c, _)| c)
                        .collect()
                }
                "preferences" => placement.preferences = self.preferences(value, &p)?,
                "max_replicas_per_node" => {
                    placement.max_replicas_per_node = self.unsigned(value, &p)?
                }
                k if k.starts_with("x-") => {}
                other => self.unsupported(service, &format!("deploy.placement.{other}")),
            }
        }
        Ok(placement)
    }

    /// `deploy.placement.preferences`: a list of `{spread: DESCRIPTOR}`
    /// (docker's schema allows nothing else in an entry).
    fn preferences(&self, node: &Node, path: &KeyPath) -> Result<Vec<PlacementPreference>> {
        let Node::Seq(items) = node else {
            return Err(self.src.invalid(path, "must be a list"));
        };
        let mut preferences = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Node::Map(entries) = item else {
                return Err(self.src.invalid(&p, "must be a mapping"));
            };
            for (key, value) in entries {
                if key == "spread" {
                    preferences.push(PlacementPreference {
                        spread_descriptor: self.string(value, &p.key(key))?,
                    });
                }
            }
        }
        Ok(preferences)
    }

    pub fn service(&mut self, name: &str, node: &Node, path: &KeyPath) -> Result<ServiceSpec> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        let mut container = ContainerSpec::default();
        let mut spec = ServiceSpec::default();
        let mut restart = None;
        let mut legacy_restart = None;
        let mut update = None;
        let mut rollback = None;
        let mut replicas = None;
        let mut mode = String::new();
        let mut ports = Vec::new();
        let mut secrets = Vec::new();
        let mut configs = Vec::new();
        let mut dns = DnsConfig::default();
        let mut placement = Placement::default();
        let mut resources = None;
        let mut environment = None;
        let mut env_file = BTreeMap::new();
        let mut log_driver = None;
        for (key, value) in entries {
            let p = path.key(key);
            if key.starts_with("x-") {
                continue;
            }
            if !SERVICE_KEYS.contains(&key.as_str()) {
                self.unsupported(name, key);
                continue;
            }
            if self.runtime_key(name, key, value, &p, &mut container)? {
                continue;
            }
            match key.as_str() {
                "image" => container.image = self.string(value, &p)?,
                "command" => container.args = self.command(value, &p)?,
                "entrypoint" => container.command = self.command(value, &p)?,
                "environment" => environment = Some((value, p)),
                "env_file" => env_file = self.env_file(value, &p)?,
                "labels" => container.labels = self.labels(value, &p)?,
                "user" => container.user = self.string(value, &p)?,
                "working_dir" => container.workdir = self.string(value, &p)?,
                "hostname" => container.hostname = self.string(value, &p)?,
                "dns" => dns.nameservers = self.nameservers(value, &p)?,
                "dns_search" => dns.search = self.search_domains(value, &p)?,
                "stop_signal" => container.stop_signal = self.string(value, &p)?,
                "healthcheck" => container.healthcheck = Some(self.healthcheck(value, &p)?),
                "logging" => log_driver = Some(self.logging(value, &p)?),
                "stop_grace_period" => {
                    container.stop_grace_period_ms = self.duration_ms(value, &p)?
                }
                "restart" => legacy_restart = Some((value, p)),
                "ports" => ports = self.ports(name, value, &p)?,
                "secrets" => {
                    secrets = self
                        .file_references(value, &p)?
                        .into_iter()
                        .map(SecretReference::from)
                        .collect()
                }
                "configs" => {
                    configs = self
                        .file_references(value, &p)?
                        .into_iter()
                        .map(ConfigReference::from)
                        .collect()
                }
                "networks" => {
                    (spec.networks, spec.network_aliases) = self.networks(name, value, &p)?
                }
                "deploy" => {
                    let deploy_entries = match value {
                        Node::Map(e) => e.as_slice(),
                        _ => &[],
                    };
                    for (dk, dv) in deploy_entries {
                        let dp = p.key(dk);
                        if dk.starts_with("x-") {
                            continue;
                        }
                        if !DEPLOY_KEYS.contains(&dk.as_str()) {
                            self.unsupported(name, &format!("deploy.{dk}"));
                            continue;
                        }
                        match dk.as_str() {
                            "mode" => mode = self.string(dv, &dp)?,
                            "replicas" => replicas = Some((self.unsigned(dv, &dp)?, dp)),
                            "labels" => spec.labels = self.labels(dv, &dp)?,
                            "restart_policy" => restart = Some(self.restart_policy(dv, &dp)?),
                            "update_config" => update = Some(self.update_config(dv, &dp)?),
                            // The same keys, docker's same reading.
                            "rollback_config" => rollback = Some(self.update_config(dv, &dp)?),
                            "placement" => placement = self.placement(name, dv, &dp)?,
                            "resources" => resources = Some(self.resources(name, dv, &dp)?),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        container.env = match environment {
            Some((value, p)) => self.environment(env_file, value, &p)?,
            None => self.environment(env_file, &Node::Null, path)?,
        };
        if container.image.is_empty() {
            return Err(self
                .src
                .invalid(path, "has no image; every service needs one to be deployed"));
        }
        if restart.is_none() {
            if let Some((value, p)) = legacy_restart {
                restart = self.legacy_restart(value, &p)?;
            }
        }
        let mode_path = path.key("deploy").key("mode");
        spec.mode = Some(match mode.as_str() {
            "replicated" | "" => service_spec::Mode::Replicated(ReplicatedMode {
                replicas: replicas.as_ref().map_or(1, |(n, _)| *n),
            }),
            "global" => {
                if let Some((_, p)) = replicas {
                    return Err(self
                        .src
                        .invalid(&p, "replicas can only be used with replicated mode"));
                }
                service_spec::Mode::Global(GlobalMode {})
            }
            // docker's convertDeployMode: `replicas` is both the
            // completions and how many run at once.
            "replicated-job" => {
                let replicas = replicas.as_ref().map_or(1, |(n, _)| *n);
                service_spec::Mode::ReplicatedJob(ReplicatedJob {
                    max_concurrent: replicas,
                    total_completions: replicas,
                })
            }
            "global-job" => {
                if let Some((_, p)) = replicas {
                    return Err(self.src.invalid(
                        &p,
                        "replicas can only be used with replicated or replicated-job mode",
                    ));
                }
                service_spec::Mode::GlobalJob(GlobalJob {})
            }
            other => {
                return Err(self.src.invalid(
                    &mode_path,
                    format!(
                        "unknown mode {other:?} (replicated, global, replicated-job or global-job)"
                    ),
                ))
            }
        });
        // docker's convertDNSConfig: settings only when there is one.
        if dns != DnsConfig::default() {
            container.dns_config = Some(dns);
        }
        spec.task = Some(TaskSpec {
            container: Some(container),
            restart,
            secrets,
            configs,
            constraints: placement.constraints,
            max_replicas_per_node: placement.max_replicas_per_node,
            preferences: placement.preferences,
            resources,
            log_driver,
            ..Default::default()
        });
        spec.update = update;
        spec.rollback = rollback;
        if !ports.is_empty() {
            spec.endpoint = Some(EndpointSpec {
                ports,
                ..Default::default()
            });
        }
        Ok(spec)
    }
}
