//! Objects as the inspect commands show them: services as `service inspect`
//! (JSON shaped like docker's: `Spec.TaskTemplate.ContainerSpec.Image`,
//! durations in nanoseconds, enums by name, and docker's `--pretty` text),
//! networks as `docker network inspect` shows a swarm overlay network.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};
use shoal_proto::types::v1::{
    restart_policy, service_spec, update_config, update_status, ContainerSpec, HealthConfig,
    Network, PortConfig, PublishMode, ResourceRequirements, RestartPolicy, Service, ServiceSpec,
    UpdateConfig, UpdateStatus,
};

use super::parse::{format_duration, protocol_name};
use super::{collect_errors, Error};
use crate::output::format::InspectFormat;
use crate::output::rfc3339;
use crate::units;

fn nanos(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

fn sorted(labels: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// An inspect command's output: the objects found as `format` shows them
/// (docker's indented JSON array by default), then every reference that
/// failed as the command's error. When every one failed, only the errors.
pub fn write_inspected(
    found: Vec<Value>,
    errors: Vec<Error>,
    format: &InspectFormat,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    if !found.is_empty() || errors.is_empty() {
        out.write_all(format.render(found)?.as_bytes())?;
    }
    collect_errors(errors)
}

/// docker's `network inspect` of a swarm overlay network (what a manager
/// answers for one with no local containers).
pub fn network_json(network: &Network) -> Value {
    let meta = network.meta.clone().unwrap_or_default();
    let spec = network.spec.clone().unwrap_or_default();
    let mut config = Map::new();
    config.insert("Subnet".into(), json!(network.subnet));
    config.insert("Gateway".into(), json!(network.gateway));
    if !network.ip_range.is_empty() {
        config.insert("IPRange".into(), json!(network.ip_range));
    }
    let mut options = Map::new();
    options.insert(
        "com.docker.network.driver.overlay.vxlanid_list".into(),
        json!(network.vni.to_string()),
    );
    if spec.encrypted {
        options.insert("encrypted".into(), json!(""));
    }
    json!({
        "Name": spec.name,
        "Id": meta.id,
        "Created": rfc3339(meta.created_at),
        "Scope": super::network::SCOPE,
        "Driver": super::network::driver(network),
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [Value::Object(config)],
        },
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "Ingress": network.ingress,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": null,
        "Options": Value::Object(options),
        "Labels": sorted(&spec.labels),
    })
}

pub fn service_json(service: &Service) -> Value {
    let meta = service.meta.clone().unwrap_or_default();
    let mut object = Map::new();
    object.insert("ID".into(), json!(meta.id));
    object.insert("Version".into(), json!({ "Index": meta.version }));
    object.insert("CreatedAt".into(), json!(rfc3339(meta.created_at)));
    object.insert("UpdatedAt".into(), json!(rfc3339(meta.updated_at)));
    object.insert(
        "Spec".into(),
        spec_json(&service.spec.clone().unwrap_or_default()),
    );
    if let Some(previous) = &service.previous_spec {
        object.insert("PreviousSpec".into(), spec_json(previous));
    }
    let spec_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[]);
    let virtual_ips: Vec<Value> = service
        .virtual_ips
        .iter()
        .map(|v| json!({ "NetworkID": v.network_id, "Addr": v.addr }))
        .collect();
    let mode = endpoint_mode(service.spec.as_ref());
    object.insert(
        "Endpoint".into(),
        json!({
            "Spec": { "Mode": mode, "Ports": ports_json(spec_ports) },
            "Ports": ports_json(&service.endpoint_ports),
            "VirtualIPs": virtual_ips,
        }),
    );
    if let Some(status) = &service.update_status {
        object.insert("UpdateStatus".into(), update_status_json(status));
    }
    object.insert("SpecVersion".into(), json!(service.spec_version));
    Value::Object(object)
}

pub fn spec_json(spec: &ServiceSpec) -> Value {
    let task = spec.task.clone().unwrap_or_default();
    let mut template = Map::new();
    let mut container = container_json(&task.container.clone().unwrap_or_default());
    // docker's `File` of a secret or config reference.
    let file = |target: &str, uid: &str, gid: &str, mode: Option<u32>| {
        let id = |s: &str| {
            if s.is_empty() {
                "0".to_string()
            } else {
                s.to_string()
            }
        };
        json!({ "Name": target, "UID": id(uid), "GID": id(gid), "Mode": mode.unwrap_or(0o444) })
    };
    if !task.secrets.is_empty() {
        container["Secrets"] = task
            .secrets
            .iter()
            .map(|r| {
                json!({
                    "File": file(&r.target, &r.uid, &r.gid, r.mode),
                    "SecretID": r.secret_id,
                    "SecretName": r.secret_name,
                })
            })
            .collect();
    }
    if !task.configs.is_empty() {
        container["Configs"] = task
            .configs
            .iter()
            .map(|r| {
                json!({
                    "File": file(&r.target, &r.uid, &r.gid, r.mode),
                    "ConfigID": r.config_id,
                    "ConfigName": r.config_name,
                })
            })
            .collect();
    }
    template.insert("ContainerSpec".into(), container);
    if let Some(resources) = &task.resources {
        template.insert("Resources".into(), resources_json(resources));
    }
    template.insert(
        "RestartPolicy".into(),
        restart_json(&task.restart.unwrap_or_default()),
    );
    let mut placement = json!({ "Constraints": task.constraints });
    if !task.preferences.is_empty() {
        let preferences: Vec<Value> = task
            .preferences
            .iter()
            .map(|p| json!({ "Spread": { "SpreadDescriptor": p.spread_descriptor } }))
            .collect();
        placement["Preferences"] = json!(preferences);
    }
    if task.max_replicas_per_node > 0 {
        placement["MaxReplicas"] = json!(task.max_replicas_per_node);
    }
    template.insert("Placement".into(), placement);
    // Where docker keeps a service's networks (its top-level
    // `Spec.Networks` is deprecated), each with its aliases; left out when
    // there are none, as docker does.
    let networks: Vec<Value> = spec
        .networks
        .iter()
        .map(|n| {
            let mut attachment = Map::new();
            attachment.insert("Target".into(), json!(n));
            let aliases: Vec<&String> = spec
                .network_aliases
                .iter()
                .filter(|a| &a.network == n)
                .flat_map(|a| &a.aliases)
                .collect();
            if !aliases.is_empty() {
                attachment.insert("Aliases".into(), json!(aliases));
            }
            Value::Object(attachment)
        })
        .collect();
    if !networks.is_empty() {
        template.insert("Networks".into(), json!(networks));
    }
    if let Some(driver) = super::logging::inspect_json(task.log_driver.as_ref()) {
        template.insert("LogDriver".into(), driver);
    }
    let mode = match &spec.mode {
        Some(service_spec::Mode::Global(_)) => json!({ "Global": {} }),
        Some(service_spec::Mode::Replicated(r)) => {
            json!({ "Replicated": { "Replicas": r.replicas } })
        }
        Some(service_spec::Mode::ReplicatedJob(j)) => json!({
            "ReplicatedJob": {
                "MaxConcurrent": j.max_concurrent,
                "TotalCompletions": j.total_completions,
            }
        }),
        Some(service_spec::Mode::GlobalJob(_)) => json!({ "GlobalJob": {} }),
        None => json!({ "Replicated": { "Replicas": 1 } }),
    };
    let mut object = Map::new();
    object.insert("Name".into(), json!(spec.name));
    object.insert("Labels".into(), json!(sorted(&spec.labels)));
    object.insert("TaskTemplate".into(), Value::Object(template));
    object.insert("Mode".into(), mode);
    if let Some(update) = &spec.update {
        object.insert("UpdateConfig".into(), update_config_json(update));
    }
    if let Some(rollback) = &spec.rollback {
        object.insert("RollbackConfig".into(), update_config_json(rollback));
    }
    let ports = spec
        .endpoint
        .as_ref()
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[]);
    object.insert(
        "EndpointSpec".into(),
        json!({ "Mode": endpoint_mode(Some(spec)), "Ports": ports_json(ports) }),
    );
    Value::Object(object)
}

fn container_json(c: &ContainerSpec) -> Value {
    let mut object = Map::new();
    object.insert("Image".into(), json!(c.image));
    object.insert("Labels".into(), json!(sorted(&c.labels)));
    let mut optional = |key: &str, value: Value, present: bool| {
        if present {
            object.insert(key.into(), value);
        }
    };
    optional("Command", json!(c.command), !c.command.is_empty());
    optional("Args", json!(c.args), !c.args.is_empty());
    optional("Hostname", json!(c.hostname), !c.hostname.is_empty());
    optional("Env", json!(c.env), !c.env.is_empty());
    optional("Dir", json!(c.workdir), !c.workdir.is_empty());
    optional("User", json!(c.user), !c.user.is_empty());
    optional(
        "StopSignal",
        json!(c.stop_signal),
        !c.stop_signal.is_empty(),
    );
    optional(
        "StopGracePeriod",
        json!(nanos(c.stop_grace_period_ms)),
        c.stop_grace_period_ms > 0,
    );
    if let Some(dns) = &c.dns_config {
        let mut config = Map::new();
        for (key, list) in [
            ("Nameservers", &dns.nameservers),
            ("Search", &dns.search),
            ("Options", &dns.options),
        ] {
            if !list.is_empty() {
                config.insert(key.into(), json!(list));
            }
        }
        object.insert("DNSConfig".into(), Value::Object(config));
    }
    if let Some(check) = &c.healthcheck {
        object.insert("Healthcheck".into(), healthcheck_json(check));
    }
    super::runtime::inspect_fields(c, &mut object);
    Value::Object(object)
}

/// docker's `Healthcheck`: durations in nanoseconds, every field
/// `omitempty`.
fn healthcheck_json(h: &HealthConfig) -> Value {
    let mut object = Map::new();
    if !h.test.is_empty() {
        object.insert("Test".into(), json!(h.test));
    }
    for (key, ms) in [
        ("Interval", h.interval_ms),
        ("Timeout", h.timeout_ms),
        ("StartPeriod", h.start_period_ms),
        ("StartInterval", h.start_interval_ms),
    ] {
        if ms > 0 {
            object.insert(key.into(), json!(nanos(ms)));
        }
    }
    if h.retries > 0 {
        object.insert("Retries".into(), json!(h.retries));
    }
    Value::Object(object)
}

/// docker's `Resources`: a field that is 0 (none) is left out, as docker's
/// `omitempty` does.
fn resources_json(r: &ResourceRequirements) -> Value {
    let set = |pairs: &[(&str, i64)]| -> Value {
        let fields: Map<String, Value> = pairs
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Value::Object(fields)
    };
    json!({
        "Limits": set(&[
            ("NanoCPUs", r.limit_nano_cpus),
            ("MemoryBytes", r.limit_memory_bytes),
            ("Pids", r.limit_pids),
        ]),
        "Reservations": set(&[
            ("NanoCPUs", r.reserve_nano_cpus),
            ("MemoryBytes", r.reserve_memory_bytes),
        ]),
    })
}

pub fn condition_name(raw: i32) -> &'static str {
    match restart_policy::Condition::try_from(raw).unwrap_or(restart_policy::Condition::Any) {
        restart_policy::Condition::Any => "any",
        restart_policy::Condition::OnFailure => "on-failure",
        restart_policy::Condition::None => "none",
    }
}

fn restart_json(r: &RestartPolicy) -> Value {
    let mut object = Map::new();
    object.insert("Condition".into(), json!(condition_name(r.condition)));
    if let Some(delay) = r.delay_ms {
        object.insert("Delay".into(), json!(nanos(delay)));
    }
    object.insert("MaxAttempts".into(), json!(r.max_attempts));
    if r.window_ms > 0 {
        object.insert("Window".into(), json!(nanos(r.window_ms)));
    }
    Value::Object(object)
}

pub fn order_name(raw: i32) -> &'static str {
    match update_config::Order::try_from(raw).unwrap_or(update_config::Order::StopFirst) {
        update_config::Order::StopFirst => "stop-first",
        update_config::Order::StartFirst => "start-first",
    }
}

pub fn failure_action_name(raw: i32) -> &'static str {
    use update_config::FailureAction as A;
    match A::try_from(raw).unwrap_or(A::Pause) {
        A::Pause => "pause",
        A::Continue => "continue",
        A::Rollback => "rollback",
    }
}

fn update_config_json(u: &UpdateConfig) -> Value {
    json!({
        "Parallelism": u.parallelism,
        "Delay": nanos(u.delay_ms),
        "FailureAction": failure_action_name(u.failure_action),
        "Monitor": nanos(u.monitor_ms),
        "MaxFailureRatio": u.max_failure_ratio,
        "Order": order_name(u.order),
    })
}

fn update_status_json(s: &UpdateStatus) -> Value {
    use update_status::State;
    let state = match State::try_from(s.state).unwrap_or(State::Unknown) {
        State::Unknown => "unknown",
        State::Updating => "updating",
        State::Paused => "paused",
        State::Completed => "completed",
        State::RollbackStarted => "rollback_started",
        State::RollbackCompleted => "rollback_completed",
        State::RollbackPaused => "rollback_paused",
    };
    let mut object = Map::new();
    object.insert("State".into(), json!(state));
    if s.started_at > 0 {
        object.insert("StartedAt".into(), json!(rfc3339(s.started_at)));
    }
    if s.completed_at > 0 {
        object.insert("CompletedAt".into(), json!(rfc3339(s.completed_at)));
    }
    object.insert("Message".into(), json!(s.message));
    Value::Object(object)
}

pub fn publish_mode_name(raw: i32) -> &'static str {
    match PublishMode::try_from(raw).unwrap_or(PublishMode::Ingress) {
        PublishMode::Ingress => "ingress",
        PublishMode::Host => "host",
    }
}

/// `vip` or `dnsrr`, as docker names them.
fn endpoint_mode(spec: Option<&shoal_proto::types::v1::ServiceSpec>) -> &'static str {
    use shoal_proto::types::v1::endpoint_spec::Mode;
    let mode = spec.and_then(|s| s.endpoint.as_ref()).map_or(0, |e| e.mode);
    if mode == Mode::Dnsrr as i32 {
        "dnsrr"
    } else {
        "vip"
    }
}

fn ports_json(ports: &[PortConfig]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let mut object = Map::new();
                if !p.name.is_empty() {
                    object.insert("Name".into(), json!(p.name));
                }
                object.insert("Protocol".into(), json!(protocol_name(p.protocol)));
                object.insert("TargetPort".into(), json!(p.target_port));
                object.insert("PublishedPort".into(), json!(p.published_port));
                object.insert(
                    "PublishMode".into(),
                    json!(publish_mode_name(p.publish_mode)),
                );
                Value::Object(object)
            })
            .collect(),
    )
}

fn ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

/// docker's `service inspect --pretty`.
pub fn pretty(service: &Service) -> String {
    let mut t = String::new();
    let spec = service.spec.clone().unwrap_or_default();
    let meta = service.meta.clone().unwrap_or_default();
    let task = spec.task.clone().unwrap_or_default();
    let container = task.container.clone().unwrap_or_default();
    let line = |t: &mut String, key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(t, "{:<19} {value}", format!("{key}:"));
    };
    line(&mut t, "ID", &meta.id);
    line(&mut t, "Name", &spec.name);
    if !spec.labels.is_empty() {
        let _ = writeln!(t, "Labels:");
        for (k, v) in sorted(&spec.labels) {
            let _ = writeln!(t, " {k}={v}");
        }
    }
    match &spec.mode {
        Some(service_spec::Mode::Global(_)) => line(&mut t, "Service Mode", &"Global"),
        Some(service_spec::Mode::Replicated(r)) => {
            line(&mut t, "Service Mode", &"Replicated");
            line(&mut t, " Replicas", &r.replicas);
        }
        Some(service_spec::Mode::ReplicatedJob(j)) => {
            line(&mut t, "Service Mode", &"ReplicatedJob");
            line(&mut t, " Max Concurrent", &j.max_concurrent);
            line(&mut t, " Total Completions", &j.total_completions);
        }
        Some(service_spec::Mode::GlobalJob(_)) => line(&mut t, "Service Mode", &"GlobalJob"),
        None => line(&mut t, "Service Mode", &"Replicated"),
    }
    if let Some(status) = &service.update_status {
        let state = update_status_json(status);
        let _ = writeln!(t, "UpdateStatus:");
        line(&mut t, " State", &state["State"].as_str().unwrap_or(""));
        if status.started_at > 0 {
            line(&mut t, " Started", &rfc3339(status.started_at));
        }
        if status.completed_at > 0 {
            line(&mut t, " Completed", &rfc3339(status.completed_at));
        }
        line(&mut t, " Message", &status.message);
    }
    if let Some(previous) = &service.previous_spec {
        // What `service rollback` returns to (`service history` has more).
        let image = previous
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .map_or("", |c| c.image.as_str());
        let _ = writeln!(t, "PreviousSpec:");
        line(&mut t, " Image", &image);
    }
    if !task.constraints.is_empty()
        || !task.preferences.is_empty()
        || task.max_replicas_per_node > 0
    {
        let _ = writeln!(t, "Placement:");
        if !task.constraints.is_empty() {
            line(&mut t, " Constraints", &format!("{:?}", task.constraints));
        }
        if !task.preferences.is_empty() {
            line(
                &mut t,
                " Preferences",
                &super::placement::shown(&task.preferences),
            );
        }
        if task.max_replicas_per_node > 0 {
            line(&mut t, " Max Replicas", &task.max_replicas_per_node);
        }
    }
    for (title, order, config) in [
        ("UpdateConfig", " Update order", &spec.update),
        ("RollbackConfig", " Rollback order", &spec.rollback),
    ] {
        let Some(u) = config else { continue };
        let _ = writeln!(t, "{title}:");
        line(&mut t, " Parallelism", &u.parallelism);
        if u.delay_ms > 0 {
            line(&mut t, " Delay", &ms(u.delay_ms));
        }
        line(
            &mut t,
            " On failure",
            &failure_action_name(u.failure_action),
        );
        if u.monitor_ms > 0 {
            line(&mut t, " Monitoring Period", &ms(u.monitor_ms));
        }
        line(&mut t, " Max failure ratio", &u.max_failure_ratio);
        line(&mut t, order, &order_name(u.order));
    }
    let _ = writeln!(t, "ContainerSpec:");
    line(&mut t, " Image", &container.image);
    if !container.command.is_empty() {
        line(&mut t, " Command", &container.command.join(" "));
    }
    if !container.args.is_empty() {
        line(&mut t, " Args", &container.args.join(" "));
    }
    if !container.env.is_empty() {
        line(&mut t, " Env", &container.env.join(" "));
    }
    if !container.workdir.is_empty() {
        line(&mut t, " Dir", &container.workdir);
    }
    if !container.user.is_empty() {
        line(&mut t, " User", &container.user);
    }
    if !container.stop_signal.is_empty() {
        line(&mut t, " StopSignal", &container.stop_signal);
    }
    if container.stop_grace_period_ms > 0 {
        line(
            &mut t,
            " StopGracePeriod",
            &ms(container.stop_grace_period_ms),
        );
    }
    if let Some(h) = &container.healthcheck {
        pretty_healthcheck(&mut t, h);
    }
    if let Some(r) = &task.restart {
        let _ = writeln!(t, "RestartPolicy:");
        line(&mut t, " Condition", &condition_name(r.condition));
        if let Some(delay) = r.delay_ms {
            line(&mut t, " Delay", &ms(delay));
        }
        line(&mut t, " Max attempts", &r.max_attempts);
    }
    // docker's place for it: after the container, before the resources.
    super::logging::pretty(&mut t, task.log_driver.as_ref());
    if let Some(r) = &task.resources {
        pretty_resources(&mut t, r, &line);
    }
    let ports = if service.endpoint_ports.is_empty() {
        spec.endpoint.map(|e| e.ports).unwrap_or_default()
    } else {
        service.endpoint_ports.clone()
    };
    if !ports.is_empty() {
        let _ = writeln!(t, "Ports:");
        for p in &ports {
            let _ = writeln!(t, " PublishedPort = {}", p.published_port);
            let _ = writeln!(t, "  Protocol = {}", protocol_name(p.protocol));
            let _ = writeln!(t, "  TargetPort = {}", p.target_port);
            let _ = writeln!(t, "  PublishMode = {}", publish_mode_name(p.publish_mode));
        }
    }
    t
}

/// docker's Healthcheck block of `--pretty` (inside ContainerSpec).
fn pretty_healthcheck(t: &mut String, h: &HealthConfig) {
    let _ = writeln!(t, " Healthcheck:");
    let _ = writeln!(t, "  Interval = {}", ms(h.interval_ms));
    let _ = writeln!(t, "  Retries = {}", h.retries);
    let _ = writeln!(t, "  StartPeriod = {}", ms(h.start_period_ms));
    let _ = writeln!(t, "  Timeout = {}", ms(h.timeout_ms));
    if !h.test.is_empty() {
        let _ = writeln!(t, "  Tests:");
        for test in &h.test {
            let _ = writeln!(t, "   Test = {test}");
        }
    }
}

/// docker's Resources block of `--pretty`: reservations and limits, each
/// shown only when set.
fn pretty_resources(
    t: &mut String,
    r: &ResourceRequirements,
    line: &dyn Fn(&mut String, &str, &dyn std::fmt::Display),
) {
    let reservations = r.reserve_nano_cpus > 0 || r.reserve_memory_bytes > 0;
    let limits = r.limit_nano_cpus > 0 || r.limit_memory_bytes > 0 || r.limit_pids > 0;
    if !reservations && !limits {
        return;
    }
    let _ = writeln!(t, "Resources:");
    if reservations {
        let _ = writeln!(t, " Reservations:");
        if r.reserve_nano_cpus > 0 {
            line(t, "  CPU", &units::cpus_shown(r.reserve_nano_cpus));
        }
        if r.reserve_memory_bytes > 0 {
            line(t, "  Memory", &units::bytes_shown(r.reserve_memory_bytes));
        }
    }
    if limits {
        let _ = writeln!(t, " Limits:");
        if r.limit_nano_cpus > 0 {
            line(t, "  CPU", &units::cpus_shown(r.limit_nano_cpus));
        }
        if r.limit_memory_bytes > 0 {
            line(t, "  Memory", &units::bytes_shown(r.limit_memory_bytes));
        }
        if r.limit_pids > 0 {
            line(t, "  PIDs", &r.limit_pids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::parse;
    use crate::commands::spec::{new_spec, Mode, SpecFlags};

    fn sample() -> Service {
        let mut spec = new_spec(
            "web".into(),
            "busybox:1".into(),
            vec!["httpd".into(), "-f".into()],
            Mode::Replicated,
        );
        SpecFlags {
            replicas: Some(3),
            stop_grace_period: Some(Duration::from_secs(2)),
            restart_condition: Some(crate::commands::spec::RestartCondition::OnFailure),
            ..Default::default()
        }
        .apply(&mut spec)
        .expect("flags");
        spec.labels
            .insert("com.docker.stack.namespace".into(), "web".into());
        spec.endpoint = Some(shoal_proto::types::v1::EndpointSpec {
            ports: parse::publish("8080:80/udp").expect("port"),
            ..Default::default()
        });
        Service {
            meta: Some(shoal_proto::types::v1::Meta {
                id: "svc1".into(),
                version: 7,
                created_at: 0,
                updated_at: 1000,
            }),
            endpoint_ports: spec.endpoint.clone().map(|e| e.ports).unwrap_or_default(),
            spec: Some(spec),
            spec_version: 1,
            ..Default::default()
        }
    }

    #[test]
    fn inspect_json_has_dockers_shape_and_enum_names() {
        let v = service_json(&sample());
        assert_eq!(v["ID"], "svc1");
        assert_eq!(v["Version"]["Index"], 7);
        assert_eq!(v["UpdatedAt"], "1970-01-01T00:00:01.000Z");
        let spec = &v["Spec"];
        assert_eq!(spec["Name"], "web");
        assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 3);
        assert_eq!(spec["Labels"]["com.docker.stack.namespace"], "web");
        let c = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["Image"], "busybox:1");
        assert_eq!(c["Args"], json!(["httpd", "-f"]));
        assert_eq!(c["StopGracePeriod"], 2_000_000_000u64);
        assert!(c.get("Command").is_none());
        assert_eq!(
            spec["TaskTemplate"]["RestartPolicy"]["Condition"],
            "on-failure"
        );
        assert_eq!(spec["UpdateConfig"]["Order"], "stop-first");
        assert_eq!(spec["UpdateConfig"]["FailureAction"], "pause");
        let port = &v["Endpoint"]["Ports"][0];
        assert_eq!(port["Protocol"], "udp");
        assert_eq!(port["PublishedPort"], 8080);
        assert_eq!(port["PublishMode"], "ingress");
    }

    #[test]
    fn inspect_shows_networks_with_aliases_hostname_and_dns_where_docker_does() {
        let mut service = sample();
        let spec = service.spec.as_mut().expect("spec");
        spec.networks = vec!["backend".into(), "front".into()];
        spec.network_aliases = vec![shoal_proto::types::v1::NetworkAliasesSpec {
            network: "backend".into(),
            aliases: vec!["db".into(), "primary".into()],
        }];
        let container = crate::commands::spec::container_mut(spec);
        container.hostname = "web-host".into();
        container.dns_config = Some(shoal_proto::types::v1::DnsConfig {
            nameservers: vec!["10.0.0.2".into()],
            search: vec!["example.com".into()],
            options: vec!["ndots:2".into()],
        });
        let v = service_json(&service);
        let template = &v["Spec"]["TaskTemplate"];
        assert_eq!(
            template["Networks"],
            json!([
                { "Target": "backend", "Aliases": ["db", "primary"] },
                { "Target": "front" },
            ])
        );
        assert!(
            v["Spec"].get("Networks").is_none(),
            "docker's deprecated place"
        );
        let c = &template["ContainerSpec"];
        assert_eq!(c["Hostname"], "web-host");
        assert_eq!(
            c["DNSConfig"],
            json!({
                "Nameservers": ["10.0.0.2"],
                "Search": ["example.com"],
                "Options": ["ndots:2"],
            })
        );

        // Without them: no Hostname, no DNSConfig (docker's omitempty), no networks.
        let v = service_json(&sample());
        let c = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
        assert!(
            c.get("Hostname").is_none() && c.get("DNSConfig").is_none(),
            "{c}"
        );
        assert!(v["Spec"]["TaskTemplate"].get("Networks").is_none());
        // Only the lists that have entries, as docker's omitempty.
        let mut service = sample();
        crate::commands::spec::container_mut(service.spec.as_mut().expect("spec")).dns_config =
            Some(shoal_proto::types::v1::DnsConfig {
                search: vec!["example.com".into()],
                ..Default::default()
            });
        let v = service_json(&service);
        assert_eq!(
            v["Spec"]["TaskTemplate"]["ContainerSpec"]["DNSConfig"],
            json!({ "Search": ["example.com"] })
        );
    }

    #[test]
    fn resources_and_preferences_show_as_docker_shows_them() {
        let mut service = sample();
        let task = service.spec.as_mut().unwrap().task.as_mut().unwrap();
        task.resources = Some(ResourceRequirements {
            limit_nano_cpus: 500_000_000,
            limit_memory_bytes: 64 << 20,
            limit_pids: 100,
            reserve_memory_bytes: 1 << 30,
            ..Default::default()
        });
        task.preferences = vec![shoal_proto::types::v1::PlacementPreference {
            spread_descriptor: "node.labels.zone".into(),
        }];
        let v = service_json(&service);
        let template = &v["Spec"]["TaskTemplate"];
        assert_eq!(
            template["Resources"],
            json!({
                "Limits": { "NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864, "Pids": 100 },
                "Reservations": { "MemoryBytes": 1_073_741_824 },
            })
        );
        assert_eq!(
            template["Placement"]["Preferences"],
            json!([{ "Spread": { "SpreadDescriptor": "node.labels.zone" } }])
        );
        let text = pretty(&service);
        let line = |k: &str, v: &str| format!("{:<19} {v}\n", format!("{k}:"));
        let resources = format!(
            "Resources:\n Reservations:\n{}{}{}{}{}",
            line("  Memory", "1GiB"),
            " Limits:\n",
            line("  CPU", "0.5"),
            line("  Memory", "64MiB"),
            line("  PIDs", "100"),
        );
        assert!(text.contains(&resources), "{text}");
        assert!(
            text.contains(&line(" Preferences", "[spread=node.labels.zone]")),
            "{text}"
        );
    }

    #[test]
    fn healthcheck_shows_in_dockers_json_and_pretty_text() {
        let mut service = sample();
        let check = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
            interval_ms: 1000,
            retries: 2,
            ..HealthConfig::default()
        };
        let container = service
            .spec
            .as_mut()
            .and_then(|s| s.task.as_mut())
            .and_then(|t| t.container.as_mut())
            .expect("container");
        container.healthcheck = Some(check);
        let v = service_json(&service);
        assert_eq!(
            v["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"],
            json!({
                "Test": ["CMD-SHELL", "test -f /tmp/ok"],
                "Interval": 1_000_000_000u64,
                "Retries": 2,
            })
        );
        let text = pretty(&service);
        for expected in [
            " Healthcheck:\n",
            "  Interval = 1s\n",
            "  Retries = 2\n",
            "   Test = CMD-SHELL\n",
            "   Test = test -f /tmp/ok\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        // No check: no key, as docker's omitempty.
        let plain = service_json(&sample());
        assert!(plain["Spec"]["TaskTemplate"]["ContainerSpec"]
            .get("Healthcheck")
            .is_none());
    }

    #[test]
    fn pretty_reads_like_docker() {
        let text = pretty(&sample());
        let line = |k: &str, v: &str| format!("{:<19} {v}\n", format!("{k}:"));
        assert!(text.contains(&line("Name", "web")), "{text}");
        assert!(text.contains(&line(" Replicas", "3")), "{text}");
        assert!(text.contains(&line(" Args", "httpd -f")), "{text}");
        assert!(text.contains(&line(" StopGracePeriod", "2s")), "{text}");
        assert!(text.contains(&line(" Condition", "on-failure")), "{text}");
        assert!(
            text.contains(" PublishedPort = 8080\n  Protocol = udp\n"),
            "{text}"
        );
    }

    #[test]
    fn network_json_has_the_keys_of_docker_network_inspect() {
        let mut network = Network {
            meta: Some(shoal_proto::types::v1::Meta {
                id: "k3x9v2m4n8q1w7e5r6t0y2u4i".into(),
                created_at: 1_709_210_096_789,
                ..Default::default()
            }),
            spec: Some(shoal_proto::types::v1::NetworkSpec {
                name: "backend".into(),
                labels: [("team".to_string(), "a".to_string())].into(),
                attachable: true,
                ..Default::default()
            }),
            vni: 4097,
            subnet: "10.55.0.0/24".into(),
            gateway: "10.55.0.1".into(),
            ..Default::default()
        };
        let v = network_json(&network);
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        // docker 28's keys for a swarm network seen from a manager (no Peers: no local containers).
        assert_eq!(
            keys,
            [
                "Attachable",
                "ConfigFrom",
                "ConfigOnly",
                "Containers",
                "Created",
                "Driver",
                "EnableIPv4",
                "EnableIPv6",
                "IPAM",
                "Id",
                "Ingress",
                "Internal",
                "Labels",
                "Name",
                "Options",
                "Scope"
            ]
        );
        assert_eq!(v["Name"], "backend");
        assert_eq!(v["Id"], "k3x9v2m4n8q1w7e5r6t0y2u4i");
        assert_eq!(v["Created"], "2024-02-29T12:34:56.789Z");
        assert_eq!(v["Scope"], "swarm");
        assert_eq!(v["Driver"], "overlay", "an empty driver is overlay");
        assert_eq!(v["EnableIPv6"], false);
        assert_eq!(
            v["IPAM"],
            json!({
                "Driver": "default",
                "Options": null,
                "Config": [{ "Subnet": "10.55.0.0/24", "Gateway": "10.55.0.1" }],
            })
        );
        assert_eq!(
            (v["Internal"].clone(), v["Attachable"].clone()),
            (json!(false), json!(true))
        );
        assert_eq!(v["Ingress"], false);
        assert_eq!(
            v["Options"],
            json!({ "com.docker.network.driver.overlay.vxlanid_list": "4097" })
        );
        assert_eq!(v["Labels"], json!({ "team": "a" }));

        network.ip_range = "10.55.0.128/25".into();
        if let Some(spec) = network.spec.as_mut() {
            spec.encrypted = true;
        }
        let v = network_json(&network);
        assert_eq!(v["IPAM"]["Config"][0]["IPRange"], "10.55.0.128/25");
        assert_eq!(v["Options"]["encrypted"], "");

        // The cluster's ingress network, as docker shows its own.
        let ingress = Network {
            spec: Some(shoal_proto::types::v1::NetworkSpec {
                name: "ingress".into(),
                driver: "overlay".into(),
                ..Default::default()
            }),
            vni: 4096,
            subnet: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            ingress: true,
            ..Default::default()
        };
        let v = network_json(&ingress);
        assert_eq!(v["Ingress"], true);
        assert_eq!(
            (v["Attachable"].clone(), v["Labels"].clone()),
            (json!(false), json!({}))
        );
        assert_eq!(
            v["Options"],
            json!({ "com.docker.network.driver.overlay.vxlanid_list": "4096" })
        );
    }
}
