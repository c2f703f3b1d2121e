//! One service as docker's `types.ServiceConfig` holds it (`LoadService`).

use std::collections::HashMap;

use super::super::node::{KeyPath, Node};
use super::super::ports::expand_short;
use super::super::shlex;
use super::shape::{
    bool_pointer, bytes, count, duration, extras, flag, int, key_values, list, mapping, sort_keys,
    strict_string, string, string_list, string_map, text, Fields,
};
use super::Context;
use crate::compose::ComposeError;

type Result<T> = std::result::Result<T, ComposeError>;

pub fn service(node: &Node, path: &KeyPath, ctx: &Context) -> Result<Node> {
    let get = |key: &str| node.get(key);
    let at = |key: &str| path.key(key);
    let mut f = Fields::new();
    f.put("build", build(get("build")));
    f.put("cap_add", list(get("cap_add")));
    f.put("cap_drop", list(get("cap_drop")));
    f.put("cgroupns_mode", string(get("cgroupns_mode")));
    f.put("cgroup_parent", string(get("cgroup_parent")));
    f.put(
        "command",
        shell_command(get("command"), &at("command"), ctx)?,
    );
    f.put(
        "configs",
        file_references(get("configs"), &at("configs"), ctx)?,
    );
    f.put("container_name", string(get("container_name")));
    f.put("credential_spec", credential_spec(get("credential_spec")));
    f.put("depends_on", list(get("depends_on")));
    f.put("deploy", deploy(get("deploy"), &at("deploy"), ctx)?);
    f.put("devices", list(get("devices")));
    f.put("dns", string_list(get("dns")));
    f.put("dns_search", string_list(get("dns_search")));
    f.put("domainname", string(get("domainname")));
    f.put(
        "entrypoint",
        shell_command(get("entrypoint"), &at("entrypoint"), ctx)?,
    );
    f.put("environment", environment(node, path, ctx)?);
    f.put("env_file", string_list(get("env_file")));
    f.put("expose", list(get("expose")));
    f.put("external_links", list(get("external_links")));
    f.put("extra_hosts", hosts_list(get("extra_hosts")));
    f.put("hostname", string(get("hostname")));
    f.put(
        "healthcheck",
        healthcheck(get("healthcheck"), &at("healthcheck"), ctx)?,
    );
    f.put("image", string(get("image")));
    f.put("init", bool_pointer(get("init")));
    f.put("ipc", string(get("ipc")));
    f.put("isolation", string(get("isolation")));
    f.put("labels", mapping(get("labels")));
    f.put("links", list(get("links")));
    f.put("logging", logging(get("logging")));
    f.put("mac_address", string(get("mac_address")));
    f.put("network_mode", string(get("network_mode")));
    f.put("networks", networks(get("networks")));
    f.put("pid", string(get("pid")));
    f.put("ports", ports(get("ports"), &at("ports"), ctx)?);
    f.put("privileged", flag(get("privileged")));
    f.put("read_only", flag(get("read_only")));
    f.put("restart", string(get("restart")));
    f.put(
        "secrets",
        file_references(get("secrets"), &at("secrets"), ctx)?,
    );
    f.put("security_opt", list(get("security_opt")));
    f.put(
        "shm_size",
        strict_string(get("shm_size"), "shm_size", &at("shm_size"), ctx)?,
    );
    f.put("stdin_open", flag(get("stdin_open")));
    f.put(
        "stop_grace_period",
        duration(
            get("stop_grace_period"),
            &at("stop_grace_period"),
            true,
            ctx,
        )?,
    );
    f.put("stop_signal", string(get("stop_signal")));
    f.put("sysctls", mapping(get("sysctls")));
    f.put("tmpfs", string_list(get("tmpfs")));
    f.put("tty", flag(get("tty")));
    f.put("ulimits", ulimits(get("ulimits")));
    f.put("user", string(get("user")));
    f.put("userns_mode", string(get("userns_mode")));
    f.put("volumes", volumes(get("volumes"), &at("volumes"), ctx)?);
    f.put("working_dir", string(get("working_dir")));
    f.extend(extras(node));
    Ok(f.node())
}

fn build(node: Option<&Node>) -> Option<Node> {
    let mut f = Fields::new();
    match node? {
        Node::Str(context) => f.put("context", Some(Node::Str(context.clone()))),
        map @ Node::Map(_) => {
            let get = |key: &str| map.get(key);
            f.put("context", string(get("context")));
            f.put("dockerfile", string(get("dockerfile")));
            f.put("args", mapping_with_equals(get("args")));
            f.put("labels", mapping(get("labels")));
            f.put("cache_from", string_list(get("cache_from")));
            f.put("extra_hosts", hosts_list(get("extra_hosts")));
            f.put("network", string(get("network")));
            f.put("target", string(get("target")));
        }
        _ => {}
    }
    f.non_empty()
}

/// docker's `ShellCommand`: a string is split as a shell would (shlex).
fn shell_command(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    match node {
        Some(Node::Str(s)) => {
            let words = shlex::split(s).map_err(|e| ctx.invalid(path, e))?;
            Ok((!words.is_empty()).then(|| Node::Seq(words.into_iter().map(Node::Str).collect())))
        }
        other => Ok(list(other)),
    }
}

/// `secrets:` / `configs:` of a service: a name is `{source: name}`.
fn file_references(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(Node::Seq(items)) = node else {
        return Ok(None);
    };
    let references = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut f = Fields::new();
            match item {
                Node::Map(_) => {
                    f.put("source", string(item.get("source")));
                    f.put("target", string(item.get("target")));
                    f.put("uid", string(item.get("uid")));
                    f.put("gid", string(item.get("gid")));
                    f.put(
                        "mode",
                        count(item.get("mode"), &path.index(i).key("mode"), ctx)?,
                    );
                }
                other => f.put("source", other.scalar_string().map(Node::Str)),
            }
            Ok(f.node())
        })
        .collect::<Result<Vec<Node>>>()?;
    Ok((!references.is_empty()).then_some(Node::Seq(references)))
}

fn credential_spec(node: Option<&Node>) -> Option<Node> {
    let node = node?;
    let mut f = Fields::new();
    for key in ["config", "file", "registry"] {
        f.put(key, string(node.get(key)));
    }
    f.non_empty()
}

/// `environment` with `env_file` read into it (`resolveEnvironment`): the
/// files first, then the service's own entries; an entry without a value
/// (or with an empty one) takes the loading environment's, when it has one.
fn environment(service: &Node, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let mut merged: Vec<(String, Option<String>)> = Vec::new();
    let mut set = |entries: Vec<(String, Option<String>)>| {
        for (key, value) in entries {
            let value = match (&value, ctx.env.get(&key)) {
                (None, Some(from_env)) => Some(from_env.clone()),
                (Some(v), Some(from_env)) if v.is_empty() => Some(from_env.clone()),
                _ => value,
            };
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => merged.push((key, value)),
            }
        }
    };
    let files = match string_list(service.get("env_file")) {
        Some(Node::Seq(files)) => files,
        _ => Vec::new(),
    };
    for (i, file) in files.iter().enumerate() {
        let Node::Str(file) = file else { continue };
        let file_path = ctx.absolute(file);
        let file_path_at = match service.get("env_file") {
            Some(Node::Seq(_)) => path.key("env_file").index(i),
            _ => path.key("env_file"),
        };
        let vars = crate::env_file::read(std::path::Path::new(&file_path), ctx.env)
            .map_err(|e| ctx.invalid(&file_path_at, e))?;
        set(vars.into_iter().map(|(k, v)| (k, Some(v))).collect());
    }
    if let Some(node) = service.get("environment") {
        set(key_values(node, '='));
    }
    let entries: Vec<(String, Node)> = merged
        .into_iter()
        .map(|(k, v)| (k, v.map_or(Node::Null, Node::Str)))
        .collect();
    Ok((!entries.is_empty()).then(|| Node::Map(sort_keys(entries))))
}

/// docker's `MappingWithEquals`: like `Labels`, but a key without `=` (or
/// with a null value) stays null.
fn mapping_with_equals(node: Option<&Node>) -> Option<Node> {
    let entries: Vec<(String, Node)> = key_values(node?, '=')
        .into_iter()
        .map(|(k, v)| (k, v.map_or(Node::Null, Node::Str)))
        .collect();
    (!entries.is_empty()).then(|| Node::Map(sort_keys(entries)))
}

/// docker's `HostsList`: `host:ip` entries, from a mapping (sorted, nulls
/// dropped) or a list of `host=ip` / `host:ip`; brackets around an IPv6
/// address are dropped.
fn hosts_list(node: Option<&Node>) -> Option<Node> {
    let pairs: Vec<String> = match node? {
        Node::Map(entries) => {
            let mut pairs: Vec<String> = entries
                .iter()
                .filter_map(|(k, v)| v.scalar_string().map(|v| format!("{k}:{v}")))
                .collect();
            pairs.sort();
            pairs
        }
        Node::Seq(items) => items
            .iter()
            .filter_map(Node::scalar_string)
            .filter_map(|item| {
                item.split_once('=')
                    .or_else(|| item.split_once(':'))
                    .map(|(h, ip)| format!("{h}:{ip}"))
            })
            .collect(),
        _ => return None,
    };
    let entries: Vec<Node> = pairs
        .into_iter()
        .map(|pair| {
            let (host, ip) = pair.split_once(':').unwrap_or((&pair, ""));
            let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
                Some(inner) if ip.len() > 2 => inner,
                _ => ip,
            };
            Node::Str(format!("{host}:{ip}"))
        })
        .collect();
    (!entries.is_empty()).then_some(Node::Seq(entries))
}

fn healthcheck(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node @ Node::Map(_)) = node else {
        return Ok(None);
    };
    let get = |key: &str| node.get(key);
    let mut f = Fields::new();
    let test = match get("test") {
        Some(Node::Str(s)) => Some(Node::Seq(vec![
            Node::Str("CMD-SHELL".to_string()),
            Node::Str(s.clone()),
        ])),
        other => list(other),
    };
    f.put("test", test);
    for (key, value) in [("timeout", "timeout"), ("interval", "interval")] {
        f.put(key, duration(get(value), &path.key(value), true, ctx)?);
    }
    f.put("retries", count(get("retries"), &path.key("retries"), ctx)?);
    for key in ["start_period", "start_interval"] {
        f.put(key, duration(get(key), &path.key(key), true, ctx)?);
    }
    f.put("disable", flag(get("disable")));
    Ok(Some(f.node()))
}

fn logging(node: Option<&Node>) -> Option<Node> {
    let node @ Node::Map(_) = node? else {
        return None;
    };
    let mut f = Fields::new();
    f.put("driver", string(node.get("driver")));
    f.put("options", string_map(node.get("options")));
    Some(f.node())
}

/// A service's `networks`: a list names networks without settings (null).
fn networks(node: Option<&Node>) -> Option<Node> {
    let entries: Vec<(String, Node)> = match node? {
        Node::Seq(items) => items
            .iter()
            .filter_map(Node::scalar_string)
            .map(|name| (name, Node::Null))
            .collect(),
        Node::Map(entries) => entries
            .iter()
            .map(|(name, settings)| {
                let value = match settings {
                    Node::Map(_) => {
                        let mut f = Fields::new();
                        f.put("aliases", list(settings.get("aliases")));
                        f.put("driver_opts", string_map(settings.get("driver_opts")));
                        f.put("ipv4_address", string(settings.get("ipv4_address")));
                        f.put("ipv6_address", string(settings.get("ipv6_address")));
                        f.node()
                    }
                    _ => Node::Null,
                };
                (name.clone(), value)
            })
            .collect(),
        _ => return None,
    };
    (!entries.is_empty()).then(|| Node::Map(sort_keys(entries)))
}

/// `ports`: every short form expanded as docker's `toServicePortConfigs`
/// expands it (one entry per port of a range, mode `ingress`).
fn ports(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(Node::Seq(items)) = node else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let spec = match item {
            Node::Int(n) => n.to_string(),
            Node::Str(s) => s.clone(),
            Node::Map(_) => {
                let mut f = Fields::new();
                f.put("mode", string(item.get("mode")));
                f.put("target", int(item.get("target")));
                f.put("published", int(item.get("published")));
                f.put("protocol", string(item.get("protocol")));
                out.push(f.node());
                continue;
            }
            other => {
                let go_type = if matches!(other, Node::Float(_)) {
                    "float64"
                } else {
                    "bool"
                };
                return Err(ctx.invalid(&path.index(i), format!("invalid type {go_type} for port")));
            }
        };
        for entry in expand_short(&spec).map_err(|e| ctx.invalid(&path.index(i), e))? {
            let mut f = Fields::new();
            f.put("mode", Some(Node::Str(entry.mode)));
            f.put("target", Some(Node::Int(entry.target.into())));
            f.put(
                "published",
                (entry.published != 0).then(|| Node::Int(entry.published.into())),
            );
            f.put("protocol", Some(Node::Str(entry.protocol)));
            out.push(f.node());
        }
    }
    Ok((!out.is_empty()).then_some(Node::Seq(out)))
}

/// `ulimits`: a number is a single limit, written as the number.
fn ulimits(node: Option<&Node>) -> Option<Node> {
    let Node::Map(entries) = node? else {
        return None;
    };
    let entries: Vec<(String, Node)> = entries
        .iter()
        .map(|(name, limit)| {
            let value = match limit {
                Node::Int(single) if *single != 0 => Node::Int(*single),
                Node::Map(_) => {
                    let mut f = Fields::new();
                    f.put("soft", int(limit.get("soft")));
                    f.put("hard", int(limit.get("hard")));
                    f.node()
                }
                _ => Node::Map(Vec::new()),
            };
            (name.clone(), value)
        })
        .collect();
    (!entries.is_empty()).then(|| Node::Map(sort_keys(entries)))
}

/// `volumes` of a service: short specs parsed as docker's `volumespec.Parse`
/// parses them, bind sources made absolute (`~` is `$HOME`).
fn volumes(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(Node::Seq(items)) = node else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let mut volume = match item {
            Node::Str(spec) => parse_volume(spec).map_err(|e| ctx.invalid(&at, e))?,
            Node::Map(_) => Volume::from_node(item),
            other => {
                return Err(ctx.invalid(
                    &at,
                    format!("invalid type {} for service volume", other.type_name()),
                ))
            }
        };
        if volume.kind == "bind" {
            if volume.source.is_empty() {
                return Err(ctx.invalid(
                    &at,
                    "invalid mount config for type \"bind\": field Source must not be empty",
                ));
            }
            volume.source = bind_source(&volume.source, ctx.env, ctx);
        }
        out.push(volume.node());
    }
    Ok((!out.is_empty()).then_some(Node::Seq(out)))
}

fn bind_source(source: &str, env: &HashMap<String, String>, ctx: &Context) -> String {
    let expanded = match (source.strip_prefix('~'), env.get("HOME")) {
        (Some(rest), Some(home)) => format!("{home}{rest}"),
        _ => source.to_string(),
    };
    if expanded.starts_with('/') {
        expanded
    } else {
        ctx.absolute(&expanded)
    }
}

/// docker's `volumespec.VolumeConfig`.
#[derive(Default)]
struct Volume {
    kind: String,
    source: String,
    target: String,
    read_only: bool,
    consistency: String,
    /// `Some` when set (a pointer in docker's type): the propagation.
    bind: Option<Option<String>>,
    /// `Some(nocopy)` when set.
    volume: Option<bool>,
    /// `Some(size)` when set.
    tmpfs: Option<Option<Node>>,
}

impl Volume {
    fn from_node(node: &Node) -> Volume {
        let section = |key: &str| node.get(key).filter(|n| matches!(n, Node::Map(_)));
        Volume {
            kind: text(node.get("type")).unwrap_or_default(),
            source: text(node.get("source")).unwrap_or_default(),
            target: text(node.get("target")).unwrap_or_default(),
            read_only: matches!(node.get("read_only"), Some(Node::Bool(true))),
            consistency: text(node.get("consistency")).unwrap_or_default(),
            bind: section("bind").map(|b| text(b.get("propagation")).filter(|p| !p.is_empty())),
            volume: section("volume").map(|v| matches!(v.get("nocopy"), Some(Node::Bool(true)))),
            tmpfs: section("tmpfs").map(|t| int(t.get("size"))),
        }
    }

    fn node(self) -> Node {
        let mut f = Fields::new();
        let non_empty = |s: String| (!s.is_empty()).then_some(Node::Str(s));
        f.put("type", non_empty(self.kind));
        f.put("source", non_empty(self.source));
        f.put("target", non_empty(self.target));
        f.put("read_only", self.read_only.then_some(Node::Bool(true)));
        f.put("consistency", non_empty(self.consistency));
        f.put(
            "bind",
            self.bind.map(|p| {
                let mut b = Fields::new();
                b.put("propagation", p.map(Node::Str));
                b.node()
            }),
        );
        f.put(
            "volume",
            self.volume.map(|nocopy| {
                let mut v = Fields::new();
                v.put("nocopy", nocopy.then_some(Node::Bool(true)));
                v.node()
            }),
        );
        f.put(
            "tmpfs",
            self.tmpfs.map(|size| {
                let mut t = Fields::new();
                t.put("size", size);
                t.node()
            }),
        );
        f.node()
    }
}

const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// docker's `volumespec.Parse` (Linux paths): `[SOURCE:]TARGET[:OPTIONS]`.
fn parse_volume(spec: &str) -> std::result::Result<Volume, String> {
    let mut volume = Volume::default();
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".to_string()),
        1 | 2 => {
            volume.target = spec.to_string();
            volume.kind = "volume".to_string();
            return Ok(volume);
        }
        _ => {}
    }
    let mut buffer = String::new();
    let chars: Vec<char> = spec.chars().collect();
    for i in 0..=chars.len() {
        let c = chars.get(i).copied();
        let windows_drive = c == Some(':')
            && buffer.chars().count() == 1
            && buffer.chars().all(char::is_alphabetic);
        match c {
            Some(':') if windows_drive => buffer.push(':'),
            Some(':') | None => {
                let end = c.is_none();
                if let Err(e) = populate(&mut volume, &buffer, end) {
                    return Err(format!("invalid spec: {spec}: {e}"));
                }
                buffer.clear();
            }
            Some(other) => buffer.push(other),
        }
    }
    volume.kind = if volume.source.is_empty() || !is_file_path(&volume.source) {
        "volume"
    } else {
        "bind"
    }
    .to_string();
    Ok(volume)
}

fn populate(volume: &mut Volume, buffer: &str, end: bool) -> std::result::Result<(), &'static str> {
    if buffer.is_empty() {
        return Err("empty section between colons");
    }
    if volume.source.is_empty() && end {
        volume.target = buffer.to_string();
        return Ok(());
    }
    if volume.source.is_empty() {
        volume.source = buffer.to_string();
        return Ok(());
    }
    if volume.target.is_empty() {
        volume.target = buffer.to_string();
        return Ok(());
    }
    if !end {
        return Err("too many colons");
    }
    for option in buffer.split(',') {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "nocopy" => volume.volume = Some(true),
            p if PROPAGATIONS.contains(&p) => volume.bind = Some(Some(p.to_string())),
            _ => {}
        }
    }
    Ok(())
}

fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) {
        return true;
    }
    let chars: Vec<char> = source.chars().collect();
    if chars.len() == 1 {
        return false;
    }
    source.starts_with("\\\\") || (chars[0].is_alphabetic() && chars[1] == ':')
}

fn deploy(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node @ Node::Map(_)) = node else {
        return Ok(None);
    };
    let get = |key: &str| node.get(key);
    let mut f = Fields::new();
    f.put("mode", string(get("mode")));
    f.put(
        "replicas",
        count(get("replicas"), &path.key("replicas"), ctx)?,
    );
    f.put("labels", mapping(get("labels")));
    for key in ["update_config", "rollback_config"] {
        f.put(key, update_config(get(key), &path.key(key), ctx)?);
    }
    f.put(
        "resources",
        resources(get("resources"), &path.key("resources"), ctx)?,
    );
    f.put(
        "restart_policy",
        restart_policy(get("restart_policy"), &path.key("restart_policy"), ctx)?,
    );
    f.put("placement", placement(get("placement")));
    f.put("endpoint_mode", string(get("endpoint_mode")));
    Ok(f.non_empty())
}

fn update_config(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node @ Node::Map(_)) = node else {
        return Ok(None);
    };
    let get = |key: &str| node.get(key);
    let mut f = Fields::new();
    f.put(
        "parallelism",
        count(get("parallelism"), &path.key("parallelism"), ctx)?,
    );
    f.put(
        "delay",
        duration(get("delay"), &path.key("delay"), false, ctx)?,
    );
    f.put("failure_action", string(get("failure_action")));
    f.put(
        "monitor",
        duration(get("monitor"), &path.key("monitor"), false, ctx)?,
    );
    f.put(
        "max_failure_ratio",
        match get("max_failure_ratio") {
            Some(Node::Int(i)) if *i != 0 => Some(Node::Int(*i)),
            Some(Node::Float(x)) if *x != 0.0 => Some(Node::Float(*x)),
            _ => None,
        },
    );
    f.put("order", string(get("order")));
    Ok(Some(f.node()))
}

fn resources(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node) = node else {
        return Ok(None);
    };
    let mut f = Fields::new();
    for key in ["limits", "reservations"] {
        let Some(section @ Node::Map(_)) = node.get(key) else {
            continue;
        };
        let mut s = Fields::new();
        s.put("cpus", string(section.get("cpus")));
        s.put(
            "memory",
            bytes(section.get("memory"), &path.key(key).key("memory"), ctx)?,
        );
        if key == "limits" {
            s.put("pids", int(section.get("pids")));
        } else {
            s.put(
                "generic_resources",
                generic_resources(section.get("generic_resources")),
            );
        }
        f.put(key, Some(s.node()));
    }
    Ok(f.non_empty())
}

fn generic_resources(node: Option<&Node>) -> Option<Node> {
    let Some(Node::Seq(items)) = node else {
        return None;
    };
    let out: Vec<Node> = items
        .iter()
        .map(|item| {
            let mut f = Fields::new();
            if let Some(spec @ Node::Map(_)) = item.get("discrete_resource_spec") {
                let mut d = Fields::new();
                d.put(
                    "kind",
                    Some(Node::Str(text(spec.get("kind")).unwrap_or_default())),
                );
                d.put(
                    "value",
                    Some(int(spec.get("value")).unwrap_or(Node::Int(0))),
                );
                f.put("discrete_resource_spec", Some(d.node()));
            }
            f.node()
        })
        .collect();
    (!out.is_empty()).then_some(Node::Seq(out))
}

fn restart_policy(node: Option<&Node>, path: &KeyPath, ctx: &Context) -> Result<Option<Node>> {
    let Some(node @ Node::Map(_)) = node else {
        return Ok(None);
    };
    let get = |key: &str| node.get(key);
    let mut f = Fields::new();
    f.put("condition", string(get("condition")));
    f.put(
        "delay",
        duration(get("delay"), &path.key("delay"), true, ctx)?,
    );
    f.put(
        "max_attempts",
        count(get("max_attempts"), &path.key("max_attempts"), ctx)?,
    );
    f.put(
        "window",
        duration(get("window"), &path.key("window"), true, ctx)?,
    );
    Ok(Some(f.node()))
}

fn placement(node: Option<&Node>) -> Option<Node> {
    let node = node?;
    let mut f = Fields::new();
    f.put("constraints", list(node.get("constraints")));
    let preferences = match node.get("preferences") {
        Some(Node::Seq(items)) if !items.is_empty() => Some(Node::Seq(
            items
                .iter()
                .map(|p| {
                    let mut s = Fields::new();
                    s.put("spread", string(p.get("spread")));
                    s.node()
                })
                .collect(),
        )),
        _ => None,
    };
    f.put("preferences", preferences);
    f.put(
        "max_replicas_per_node",
        int(node.get("max_replicas_per_node")),
    );
    f.non_empty()
}
