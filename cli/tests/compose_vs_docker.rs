//! Differential test: shoal's compose loader against docker's own (`docker stack config`, which
//! runs docker's schema check, interpolation and merge without a daemon).
//!
//! For every fixture in tests/compose/ (with its variables from a `.env` file next to it, given
//! to both loaders), both must accept or both must reject, and for accepted files every field
//! shoal supports must come out the same. `shoal_rejects_*` fixtures are the documented
//! exceptions: docker's loader accepts them, but `docker stack deploy` would fail on them later
//! (daemon or conversion), or shoal lacks what they ask for (sctp ports, a logging driver other
//! than json-file, local or none), and shoal refuses them up front. `beyond_docker_*` fixtures
//! are the other way round: keys of the Compose Specification that docker's v3 schema refuses
//! and shoal reads by design (a secret's `environment`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use serde_norway::Value;
use shoal_cli::compose::{load_file, ComposeError, Stack};
use shoal_proto::types::v1::{
    restart_policy, service_spec, update_config, PortProtocol, PublishMode, ServiceSpec,
};
use support::{docker_env, require_docker};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose")
}

struct DockerResult {
    config: Option<Value>,
    stderr: String,
}

fn docker_config(fixture: &Path, env: &HashMap<String, String>) -> DockerResult {
    let out = Command::new("docker")
        .args(["stack", "config", "-c"])
        .arg(fixture)
        .env_clear()
        .envs(env)
        .output()
        .expect("run docker stack config");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let config = out.status.success().then(|| {
        serde_norway::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "docker printed unparsable YAML for {}: {e}",
                fixture.display()
            )
        })
    });
    DockerResult { config, stderr }
}

/// Parses what Go's `Duration.String` prints (`1m30s`, `1.5s`, `500ms`, `0s`) into ms.
fn go_duration_ms(s: &str) -> u64 {
    let mut total_ns = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().expect("duration number");
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "µs" | "us" => 1e3,
            "ns" => 1.0,
            other => panic!("unknown unit {other} in {s}"),
        };
        total_ns += n * scale;
        rest = &rest[unit_len..];
    }
    (total_ns / 1e6).round() as u64
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn list_of(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items.iter().map(str_of).collect(),
        Some(other) => panic!("expected a list, got {other:?}"),
    }
}

fn map_of(v: Option<&Value>) -> HashMap<String, String> {
    match v {
        None | Some(Value::Null) => HashMap::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    str_of(k),
                    if v.is_null() {
                        String::new()
                    } else {
                        str_of(v)
                    },
                )
            })
            .collect(),
        Some(other) => panic!("expected a mapping, got {other:?}"),
    }
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .unwrap_or_else(|| panic!("expected an unsigned number, got {v:?}"))
}

/// Checks every field shoal supports of one service against docker's view of it.
fn compare_service(fixture: &str, name: &str, docker: &Value, spec: &ServiceSpec) {
    let ctx = format!("{fixture}: service {name}");
    let task = spec.task.as_ref().expect("task spec");
    let c = task.container.as_ref().expect("container spec");
    let get = |k: &str| docker.get(k);

    assert_eq!(
        c.image,
        get("image").map(str_of).unwrap_or_default(),
        "{ctx}: image"
    );
    assert_eq!(c.args, list_of(get("command")), "{ctx}: command");
    assert_eq!(c.command, list_of(get("entrypoint")), "{ctx}: entrypoint");
    for (key, ours) in [
        ("user", &c.user),
        ("working_dir", &c.workdir),
        ("hostname", &c.hostname),
        ("stop_signal", &c.stop_signal),
    ] {
        assert_eq!(
            *ours,
            get(key).map(str_of).unwrap_or_default(),
            "{ctx}: {key}"
        );
    }
    assert_eq!(
        c.stop_grace_period_ms,
        get("stop_grace_period")
            .map(|v| go_duration_ms(&str_of(v)))
            .unwrap_or(0),
        "{ctx}: stop_grace_period"
    );

    // Docker keeps unresolved variables as null (passed bare to the daemon); shoal leaves them out.
    let mut env: Vec<String> = match get("environment") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{}={}", str_of(k), str_of(v)))
            .collect(),
        Some(other) => panic!("{ctx}: environment is {other:?}"),
    };
    env.sort();
    assert_eq!(c.env, env, "{ctx}: environment");
    assert_eq!(c.labels, map_of(get("labels")), "{ctx}: labels");
    compare_runtime(&ctx, docker, c);

    // docker's convertLogDriver: `logging` present is the driver (no
    // `driver`: the empty name, the default one), absent is none.
    let log_driver = get("logging").map(|l| shoal_proto::types::v1::LogDriver {
        name: l.get("driver").map(str_of).unwrap_or_default(),
        options: map_of(l.get("options")),
    });
    assert_eq!(task.log_driver, log_driver, "{ctx}: logging");

    // `dns` and `dns_search` as docker's convertDNSConfig reads them:
    // nameservers as IP addresses (written back in their usual form), no
    // settings when neither lists anything; empty entries name nothing.
    let nameservers: Vec<String> = list_of(get("dns"))
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::IpAddr>()
                .unwrap_or_else(|_| panic!("{ctx}: docker's dns {s:?} is no IP address"))
                .to_string()
        })
        .collect();
    let search: Vec<String> = list_of(get("dns_search"))
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let expected_dns = (!nameservers.is_empty() || !search.is_empty()).then(|| {
        shoal_proto::types::v1::DnsConfig {
            nameservers,
            search,
            options: Vec::new(),
        }
    });
    assert_eq!(c.dns_config, expected_dns, "{ctx}: dns, dns_search");

    let ports: Vec<(u32, u32, i32, i32)> = match get("ports") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|p| {
                let protocol = match p.get("protocol").map(str_of).as_deref() {
                    Some("udp") => PortProtocol::Udp as i32,
                    Some("tcp") | None => PortProtocol::Tcp as i32,
                    Some(other) => panic!("{ctx}: protocol {other}"),
                };
                let mode = match p.get("mode").map(str_of).as_deref() {
                    Some("host") => PublishMode::Host as i32,
                    Some("ingress") | None => PublishMode::Ingress as i32,
                    Some(other) => panic!("{ctx}: mode {other}"),
                };
                (
                    p.get("target").map(u64_of).unwrap_or(0) as u32,
                    p.get("published").map(u64_of).unwrap_or(0) as u32,
                    protocol,
                    mode,
                )
            })
            .collect(),
        Some(other) => panic!("{ctx}: ports is {other:?}"),
    };
    let ours: Vec<(u32, u32, i32, i32)> = spec
        .endpoint
        .as_ref()
        .map(|e| {
            e.ports
                .iter()
                .map(|p| (p.target_port, p.published_port, p.protocol, p.publish_mode))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ours, ports, "{ctx}: ports");

    let deploy = get("deploy").cloned().unwrap_or(Value::Null);
    let d = |k: &str| deploy.get(k);
    assert_eq!(spec.labels, map_of(d("labels")), "{ctx}: deploy.labels");
    let expected_mode = match d("mode").map(str_of).as_deref() {
        Some("global") => service_spec::Mode::Global(Default::default()),
        Some("global-job") => service_spec::Mode::GlobalJob(Default::default()),
        // docker's convertDeployMode: replicas is completions and concurrency.
        Some("replicated-job") => {
            let replicas = d("replicas").map(u64_of).unwrap_or(1);
            service_spec::Mode::ReplicatedJob(shoal_proto::types::v1::ReplicatedJob {
                max_concurrent: replicas,
                total_completions: replicas,
            })
        }
        _ => service_spec::Mode::Replicated(shoal_proto::types::v1::ReplicatedMode {
            replicas: d("replicas").map(u64_of).unwrap_or(1),
        }),
    };
    assert_eq!(spec.mode, Some(expected_mode), "{ctx}: mode/replicas");

    match d("restart_policy") {
        None => {}
        Some(rp) => {
            let ours = task.restart.as_ref().expect("restart policy");
            let condition = match rp.get("condition").map(str_of).as_deref() {
                Some("none") => restart_policy::Condition::None,
                Some("on-failure") => restart_policy::Condition::OnFailure,
                Some("any") | None => restart_policy::Condition::Any,
                Some(other) => panic!("{ctx}: condition {other}"),
            };
            assert_eq!(ours.condition, condition as i32, "{ctx}: restart condition");
            assert_eq!(
                ours.delay_ms,
                rp.get("delay").map(|v| go_duration_ms(&str_of(v))),
                "{ctx}: restart delay"
            );
            assert_eq!(
                ours.max_attempts,
                rp.get("max_attempts").map(u64_of).unwrap_or(0),
                "{ctx}: max_attempts"
            );
            assert_eq!(
                ours.window_ms,
                rp.get("window")
                    .map(|v| go_duration_ms(&str_of(v)))
                    .unwrap_or(0),
                "{ctx}: window"
            );
        }
    }

    match d("update_config") {
        None => assert_eq!(spec.update, None, "{ctx}: update_config"),
        Some(uc) => {
            let ours = spec.update.as_ref().expect("update config");
            assert_eq!(
                ours.parallelism,
                uc.get("parallelism").map(u64_of).unwrap_or(1),
                "{ctx}: parallelism"
            );
            for (key, value) in [("delay", ours.delay_ms), ("monitor", ours.monitor_ms)] {
                assert_eq!(
                    value,
                    uc.get(key).map(|v| go_duration_ms(&str_of(v))).unwrap_or(0),
                    "{ctx}: update {key}"
                );
            }
            let order = match uc.get("order").map(str_of).as_deref() {
                Some("start-first") => update_config::Order::StartFirst,
                _ => update_config::Order::StopFirst,
            };
            assert_eq!(ours.order, order as i32, "{ctx}: order");
            let action = match uc.get("failure_action").map(str_of).as_deref() {
                Some("continue") => update_config::FailureAction::Continue,
                Some("rollback") => update_config::FailureAction::Rollback,
                _ => update_config::FailureAction::Pause,
            };
            assert_eq!(ours.failure_action, action as i32, "{ctx}: failure_action");
            let ratio = uc
                .get("max_failure_ratio")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            assert_eq!(
                ours.max_failure_ratio, ratio as f32,
                "{ctx}: max_failure_ratio"
            );
        }
    }
}

/// The keys of what a container gets beyond its command, docker's
/// normalized form against shoal's spec.
fn compare_runtime(ctx: &str, docker: &Value, c: &shoal_proto::types::v1::ContainerSpec) {
    let get = |k: &str| docker.get(k);
    let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
    for (key, ours) in [
        ("read_only", c.read_only),
        ("init", c.init),
        ("tty", c.tty),
        ("stdin_open", c.open_stdin),
    ] {
        assert_eq!(ours, flag(key), "{ctx}: {key}");
    }
    assert_eq!(c.capability_add, list_of(get("cap_add")), "{ctx}: cap_add");
    assert_eq!(
        c.capability_drop,
        list_of(get("cap_drop")),
        "{ctx}: cap_drop"
    );
    // `volumes` (docker writes each in the long syntax) and `tmpfs`, as
    // (type, source, target, read-only, nocopy) of each mount.
    type MountKey = (String, String, String, bool, bool);
    let mut expected: Vec<MountKey> = match get("volumes") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| {
                let field = |k: &str| v.get(k).map(str_of).unwrap_or_default();
                let nocopy = v
                    .get("volume")
                    .and_then(|o| o.get("nocopy"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let ro = v.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                (field("type"), field("source"), field("target"), ro, nocopy)
            })
            .collect(),
        Some(other) => panic!("{ctx}: volumes is {other:?}"),
    };
    expected.extend(
        list_of(get("tmpfs"))
            .into_iter()
            .map(|t| ("tmpfs".to_string(), String::new(), t, false, false)),
    );
    let kind = |m: &shoal_proto::types::v1::Mount| match m.r#type() {
        shoal_proto::types::v1::mount::Type::Bind => "bind",
        shoal_proto::types::v1::mount::Type::Volume => "volume",
        shoal_proto::types::v1::mount::Type::Tmpfs => "tmpfs",
    };
    let mut ours: Vec<MountKey> = c
        .mounts
        .iter()
        .map(|m| {
            (
                kind(m).to_string(),
                m.source.clone(),
                m.target.clone(),
                m.read_only,
                m.volume_nocopy,
            )
        })
        .collect();
    expected.sort();
    ours.sort();
    assert_eq!(ours, expected, "{ctx}: volumes, tmpfs");
    assert_eq!(c.sysctls, map_of(get("sysctls")), "{ctx}: sysctls");
    let hosts: Vec<String> = list_of(get("extra_hosts"))
        .iter()
        .map(|entry| {
            let (host, ip) = entry.split_once(':').expect("host:ip");
            format!("{ip} {host}")
        })
        .collect();
    assert_eq!(c.hosts, hosts, "{ctx}: extra_hosts");
    let no_new_privileges = list_of(get("security_opt"))
        .iter()
        .any(|o| o == "no-new-privileges:true" || o == "no-new-privileges");
    assert_eq!(
        c.no_new_privileges, no_new_privileges,
        "{ctx}: security_opt"
    );
    let ulimits: Vec<(String, i64, i64)> = match get("ulimits") {
        None => Vec::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(name, v)| {
                let n = |v: &Value| v.as_i64().expect("a number");
                match v {
                    Value::Mapping(_) => (str_of(name), n(&v["soft"]), n(&v["hard"])),
                    single => (str_of(name), n(single), n(single)),
                }
            })
            .collect(),
        Some(other) => panic!("{ctx}: ulimits is {other:?}"),
    };
    let ours: Vec<(String, i64, i64)> = c
        .ulimits
        .iter()
        .map(|u| (u.name.clone(), u.soft, u.hard))
        .collect();
    assert_eq!(ours, ulimits, "{ctx}: ulimits");
}

fn compare_stack(fixture: &str, docker: &Value, ours: &Stack, docker_stderr: &str) {
    let docker_services = match docker.get("services") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Default::default(),
    };
    let mut docker_names: Vec<String> = docker_services.keys().map(str_of).collect();
    let mut our_names: Vec<String> = ours.services.iter().map(|s| s.name.clone()).collect();
    docker_names.sort();
    our_names.sort();
    assert_eq!(our_names, docker_names, "{fixture}: service names");
    for s in &ours.services {
        let docker_service = docker_services
            .get(s.name.as_str())
            .unwrap_or_else(|| panic!("{fixture}: docker lacks service {}", s.name));
        compare_service(fixture, &s.name, docker_service, &s.spec);
    }
    compare_networks(fixture, docker, ours);
    // Docker warns about each host address it drops; shoal must warn about the same ones.
    let docker_ip_warnings = docker_stderr.matches("ignoring IP-address").count();
    let our_ip_warnings = ours
        .warnings
        .iter()
        .filter(|w| w.contains("host address"))
        .count();
    assert_eq!(
        our_ip_warnings, docker_ip_warnings,
        "{fixture}: host address warnings"
    );
}

/// Top-level networks and the networks each service names.
fn compare_networks(fixture: &str, docker: &Value, ours: &Stack) {
    let docker_networks = match docker.get("networks") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Default::default(),
    };
    let mut docker_keys: Vec<String> = docker_networks.keys().map(str_of).collect();
    let mut our_keys: Vec<String> = ours.networks.iter().map(|n| n.key.clone()).collect();
    docker_keys.sort();
    our_keys.sort();
    assert_eq!(our_keys, docker_keys, "{fixture}: network keys");
    for network in &ours.networks {
        let ctx = format!("{fixture}: network {}", network.key);
        let d = &docker_networks[network.key.as_str()];
        let get = |k: &str| d.get(k);
        let external = get("external").and_then(Value::as_bool).unwrap_or(false);
        assert_eq!(network.external, external, "{ctx}: external");
        let expected_name = match (get("name").map(str_of), external) {
            (Some(name), _) => name,
            (None, true) => network.key.clone(),
            (None, false) => format!("stack_{}", network.key),
        };
        assert_eq!(network.cluster_name("stack"), expected_name, "{ctx}: name");
        if external {
            continue;
        }
        let spec = &network.spec;
        let driver = get("driver").map(str_of).unwrap_or_default();
        let driver = if driver.is_empty() {
            "overlay".into()
        } else {
            driver
        };
        assert_eq!(spec.driver, driver, "{ctx}: driver");
        for (key, ours) in [("attachable", spec.attachable), ("internal", spec.internal)] {
            let theirs = get(key).and_then(Value::as_bool).unwrap_or(false);
            assert_eq!(ours, theirs, "{ctx}: {key}");
        }
        let encrypted = get("driver_opts")
            .and_then(|o| o.get("encrypted"))
            .is_some();
        assert_eq!(spec.encrypted, encrypted, "{ctx}: driver_opts.encrypted");
        assert_eq!(spec.labels, map_of(get("labels")), "{ctx}: labels");
        let subnet = get("ipam")
            .and_then(|i| i.get("config"))
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("subnet"))
            .map(str_of)
            .unwrap_or_default();
        assert_eq!(spec.subnet, subnet, "{ctx}: subnet");
    }
    let docker_services = match docker.get("services") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Default::default(),
    };
    for service in &ours.services {
        let theirs = docker_services
            .get(service.name.as_str())
            .and_then(|s| s.get("networks"));
        // `stack config` shows the file's own keys; the implicit `default`
        // of a service naming none comes later, at deploy, in both.
        let mut theirs: Vec<String> = match theirs {
            Some(Value::Mapping(m)) => m.keys().map(str_of).collect(),
            Some(Value::Sequence(items)) => items.iter().map(str_of).collect(),
            _ => Vec::new(),
        };
        theirs.sort();
        let mut mine = service.spec.networks.clone();
        mine.sort();
        assert_eq!(
            mine, theirs,
            "{fixture}: service {}: networks",
            service.name
        );
        // Each network's aliases (by the file's key; the stack maps both to
        // the deployed name), none for a network without.
        let mut their_aliases: Vec<(String, Vec<String>)> = match docker_services
            .get(service.name.as_str())
            .and_then(|s| s.get("networks"))
        {
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| (str_of(k), list_of(v.get("aliases"))))
                .filter(|(_, aliases)| !aliases.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        their_aliases.sort();
        let mut my_aliases: Vec<(String, Vec<String>)> = service
            .spec
            .network_aliases
            .iter()
            .map(|a| (a.network.clone(), a.aliases.clone()))
            .collect();
        my_aliases.sort();
        assert_eq!(
            my_aliases, their_aliases,
            "{fixture}: service {}: network aliases",
            service.name
        );
    }
}

/// For each fixture both loaders refuse: what docker's message says and
/// what shoal's says of the same reason (case aside). shoal's message adds
/// the file, line and column; where docker's words are a Go decoder's
/// (`decoding failed`, `json: unsupported type`), shoal names the key and
/// the fault in its own.
const REASONS: &[(&str, &str, &str)] = &[
    (
        "err_external_name_conflict.yml",
        "network.external.name and network.name conflict",
        "network.external.name and network.name conflict",
    ),
    (
        "err_external_volume_driver.yml",
        "conflicting parameters \"external\" and \"driver\" specified for volume \"v\"",
        "conflicting parameters \"external\" and \"driver\" specified for volume \"v\"",
    ),
    (
        "err_shm_size_number.yml",
        "'shm_size' expected type 'string', got unconvertible type 'int'",
        "'shm_size' expected type 'string', got unconvertible type 'int'",
    ),
    (
        "err_bad_brace.yml",
        "invalid interpolation format",
        "invalid interpolation format \"${a b}\"",
    ),
    (
        "err_bad_duration.yml",
        "stop_grace_period must be a string",
        "stop_grace_period must be a string",
    ),
    (
        "err_bad_order.yml",
        "order must be one of",
        "order must be one of",
    ),
    (
        "err_bad_port.yml",
        "ports.0 does not match format 'ports'",
        "ports.0 does not match format 'ports'",
    ),
    (
        "err_bad_port_proto.yml",
        "ports.0 does not match format 'ports'",
        "ports.0 does not match format 'ports'",
    ),
    (
        "err_bad_port_range.yml",
        "ports.0 does not match format 'ports'",
        "ports.0 does not match format 'ports'",
    ),
    (
        "err_cast_failure.yml",
        "failed to cast to expected type",
        "failed to cast to expected type",
    ),
    (
        "err_command_number.yml",
        "command must be a string",
        "command must be a string",
    ),
    (
        "err_dns_number.yml",
        "dns must be a string",
        "dns must be a string",
    ),
    (
        "err_dns_opt.yml",
        "additional property dns_opt is not allowed",
        "additional property dns_opt is not allowed",
    ),
    (
        "err_duplicate_key.yml",
        "mapping key \"image\" already defined",
        "duplicate entry with key \"image\"",
    ),
    (
        "err_env_bool.yml",
        "debug must be a string, number or null",
        "debug must be a string, number or null",
    ),
    (
        "err_env_file_bad_name.yml",
        "variable 'bad name' contains whitespaces",
        "variable 'bad name' contains whitespaces",
    ),
    (
        "err_env_file_missing.yml",
        "missing.env: no such file or directory",
        "missing.env: no such file or directory",
    ),
    (
        "err_env_list_duplicates.yml",
        "must be unique",
        "must not contain duplicate items",
    ),
    (
        "err_extends.yml",
        "forbidden properties",
        "forbidden property extends",
    ),
    (
        "err_float_port.yml",
        "invalid type float64 for port",
        "ports.0 invalid type float64 for port",
    ),
    (
        "err_int_service_name.yml",
        "unsupported type",
        "non-string key 1",
    ),
    (
        "err_labels_nested.yml",
        "labels.a must be a string, number or null",
        "labels.a must be a string, number or null",
    ),
    (
        "err_logging_bool_option.yml",
        "compress must be a string, number or null",
        "compress must be a string, number or null",
    ),
    (
        "err_lone_dollar.yml",
        "invalid interpolation format",
        "invalid interpolation format \"cost $ 5\"",
    ),
    (
        "err_long_port_extra.yml",
        "additional property host_ip is not allowed",
        "additional property host_ip is not allowed",
    ),
    (
        "err_negative_replicas.yml",
        "'deploy.replicas', -1 overflows uint",
        "deploy.replicas -1 overflows uint",
    ),
    (
        "err_network_priority.yml",
        "additional property priority is not allowed",
        "additional property priority is not allowed",
    ),
    (
        "err_not_a_mapping.yml",
        "top-level object must be a mapping",
        "top-level object must be a mapping",
    ),
    (
        "err_order_before_3_4.yml",
        "additional property order is not allowed",
        "additional property order is not allowed",
    ),
    (
        "err_replicas_fraction.yml",
        "replicas must be a integer",
        "replicas must be an integer",
    ),
    (
        "err_replicas_quoted.yml",
        "replicas must be a integer",
        "replicas must be an integer",
    ),
    (
        "err_replicas_word.yml",
        "replicas must be a integer",
        "replicas must be an integer",
    ),
    (
        "err_required_empty.yml",
        "required variable tag is missing a value: tag must not be empty",
        "required variable tag is missing a value: tag must not be empty",
    ),
    (
        "err_required_missing.yml",
        "required variable tag is missing a value: set tag first",
        "required variable tag is missing a value: set tag first",
    ),
    (
        "err_service_not_mapping.yml",
        "services.web must be a mapping",
        "services.web must be a mapping",
    ),
    (
        "err_shlex_after_interpolation.yml",
        "eof found when expecting closing quote",
        "eof found when expecting closing quote",
    ),
    (
        "err_unknown_deploy_key.yml",
        "additional property replica is not allowed",
        "additional property replica is not allowed",
    ),
    (
        "err_unknown_service_key.yml",
        "additional property foo is not allowed",
        "additional property foo is not allowed",
    ),
    (
        "err_unknown_top_level_key.yml",
        "(root) additional property foo is not allowed",
        "(root) additional property foo is not allowed",
    ),
    (
        "err_unterminated_quote.yml",
        "eof found when expecting closing quote",
        "eof found when expecting closing quote",
    ),
    (
        "err_version_2.yml",
        "unsupported compose file version: 2",
        "unsupported compose file version: 2",
    ),
    (
        "err_version_number.yml",
        "version must be a string",
        "version must be a string",
    ),
    (
        "err_yaml_indent.yml",
        "did not find expected key",
        "did not find expected key",
    ),
    (
        "err_yaml_syntax.yml",
        "did not find expected node content",
        "did not find expected node content",
    ),
];

/// Both loaders refused `fixture`: for the same reason, as [`REASONS`] says.
fn same_reason(fixture: &str, docker: &str, shoal: &str) {
    let Some((_, theirs, ours)) = REASONS.iter().find(|(f, _, _)| *f == fixture) else {
        panic!("{fixture}: add its reason to REASONS (docker: {docker:?}, shoal: {shoal:?})");
    };
    assert!(
        docker.to_lowercase().contains(theirs),
        "{fixture}: docker's message {docker:?} lacks {theirs:?}"
    );
    assert!(
        shoal.to_lowercase().contains(ours),
        "{fixture}: shoal's message {shoal:?} lacks {ours:?}"
    );
}

#[test]
fn compose_loader_matches_docker_stack_config() {
    require_docker();
    let home = tempfile::tempdir().expect("temp home");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 40, "fixtures missing: {fixtures:?}");

    let mut failures = Vec::new();
    for fixture in &fixtures {
        let name = fixture
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let env = docker_env(&fixture.with_extension("env"), home.path());
        let docker = docker_config(fixture, &env);
        let ours: Result<Stack, ComposeError> = load_file(fixture, &env);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (&docker.config, &ours) {
                (Some(cfg), Ok(stack)) => {
                    assert!(
                        name.starts_with("ok_"),
                        "{name}: both loaders accept it, but the fixture is named as if it failed"
                    );
                    compare_stack(&name, cfg, stack, &docker.stderr);
                }
                (None, Err(e)) => {
                    eprintln!("{name}\n  docker: {}\n  shoal:  {e}", docker.stderr.trim());
                    assert!(
                        name.starts_with("err_"),
                        "{name}: both loaders reject it, but the fixture is named as if it loaded"
                    );
                    same_reason(&name, &docker.stderr, &e.to_string());
                }
                (Some(_), Err(e)) => assert!(
                    name.starts_with("shoal_rejects_"),
                    "{name}: docker accepts it, shoal rejects it: {e}"
                ),
                // A key of the Compose Specification that docker's v3 schema
                // lacks, which shoal reads by design.
                (None, Ok(_)) if name.starts_with("beyond_docker_") => {}
                (None, Ok(stack)) => panic!(
                    "{name}: docker rejects it ({}), shoal accepts it: {stack:?}",
                    docker.stderr.trim()
                ),
            }
        }));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn errors_point_at_the_offending_line() {
    // Position checks against the fixtures, independent of docker.
    let cases = [
        ("err_unknown_service_key.yml", 5, 5),
        ("err_replicas_word.yml", 5, 17),
        ("err_required_missing.yml", 3, 12),
        ("err_yaml_syntax.yml", 5, 1),
        ("err_bad_port.yml", 5, 9),
        ("err_duplicate_key.yml", 3, 5),
        ("shoal_rejects_bad_nameserver.yml", 5, 20),
        ("shoal_rejects_log_driver_gelf.yml", 6, 15),
        ("err_env_file_missing.yml", 5, 15),
        ("err_env_file_bad_name.yml", 5, 15),
    ];
    let env = HashMap::new();
    for (file, line, column) in cases {
        let err = load_file(&fixtures_dir().join(file), &env).expect_err(file);
        let loc = err
            .location()
            .unwrap_or_else(|| panic!("{file}: no location in {err}"));
        assert_eq!((loc.line, loc.column), (line, column), "{file}: {err}");
        assert!(err.to_string().contains(file), "{file}: {err}");
    }
}
