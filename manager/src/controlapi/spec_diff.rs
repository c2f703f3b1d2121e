//! What a new service spec changes, field by field, in `service inspect`'s
//! (docker's) names: the plan of `stack deploy --dry-run` and `stack diff`.
//!
//! Each spec is flattened into leaves (a path and its value as text; unset
//! and empty values leave no leaf), and the leaves compared. Every field of
//! every message is named by a destructuring without `..`, so a field added
//! to the protocol does not compile until it is shown here too.

use std::collections::{BTreeMap, HashMap};

use shoal_proto::control::v1::FieldChange;
use shoal_proto::types::v1::{
    endpoint_spec, mount, restart_policy, service_spec, update_config, ConfigReference,
    ContainerSpec, DnsConfig, EndpointSpec, HealthConfig, LogDriver, Mount, PlacementPreference,
    PortConfig, PortProtocol, PublishMode, RegistryAuth, ResourceRequirements, RestartPolicy,
    SecretReference, ServiceSpec, TaskSpec, Ulimit, UpdateConfig,
};

/// The fields `after` changes in `before`, in the order of the flattening
/// (docker's order of keys); an entry unset on one side has an empty value
/// there. Two specs that differ only where both leave no leaf (an explicit
/// default against none) give one change of the whole `Spec`.
pub fn changes(before: &ServiceSpec, after: &ServiceSpec) -> Vec<FieldChange> {
    let old = Leaves::of(before);
    let new = Leaves::of(after);
    let mut paths: Vec<&String> = new.order.iter().collect();
    paths.extend(old.order.iter().filter(|p| !new.values.contains_key(*p)));
    let mut changes: Vec<FieldChange> = paths
        .into_iter()
        .filter_map(|path| {
            let was = old.values.get(path);
            let is = new.values.get(path);
            if was.map(|l| &l.compared) == is.map(|l| &l.compared) {
                return None;
            }
            let shown = |leaf: Option<&Leaf>| leaf.map(|l| l.shown.clone()).unwrap_or_default();
            let (before, mut after) = (shown(was), shown(is));
            if before == after {
                // Only what is not shown changed (a password).
                after.push_str(" (changed)");
            }
            Some(FieldChange {
                path: path.clone(),
                before,
                after,
            })
        })
        .collect();
    if changes.is_empty() && before != after {
        changes.push(FieldChange {
            path: "Spec".into(),
            before: "defaults".into(),
            after: "the same defaults, written out".into(),
        });
    }
    changes
}

struct Leaf {
    shown: String,
    /// What is compared: the shown text, or more (a password, an id).
    compared: String,
}

#[derive(Default)]
struct Leaves {
    order: Vec<String>,
    values: HashMap<String, Leaf>,
}

impl Leaves {
    fn of(spec: &ServiceSpec) -> Leaves {
        let mut leaves = Leaves::default();
        service(&mut leaves, spec);
        leaves
    }

    fn put(&mut self, path: String, shown: String, compared: String) {
        if shown.is_empty() && compared.is_empty() {
            return;
        }
        if !self.values.contains_key(&path) {
            self.order.push(path.clone());
        }
        self.values.insert(path, Leaf { shown, compared });
    }

    fn text(&mut self, path: &str, value: &str) {
        self.put(path.into(), value.into(), value.into());
    }

    fn number(&mut self, path: &str, value: impl Into<i128>) {
        let value = value.into();
        if value != 0 {
            self.text(path, &value.to_string());
        }
    }

    /// A number whose 0 means something (0 replicas, parallelism 0: all).
    fn count(&mut self, path: &str, value: u64) {
        self.text(path, &value.to_string());
    }

    fn flag(&mut self, path: &str, value: bool) {
        if value {
            self.text(path, "true");
        }
    }

    fn millis(&mut self, path: &str, ms: u64) {
        if ms > 0 {
            self.text(path, &duration_text(ms));
        }
    }

    fn list(&mut self, path: &str, values: &[String]) {
        if !values.is_empty() {
            self.text(path, &format!("{values:?}"));
        }
    }

    fn map(&mut self, path: &str, map: &HashMap<String, String>) {
        let sorted: BTreeMap<&String, &String> = map.iter().collect();
        for (key, value) in sorted {
            // An empty value is a value (`--label tier=`): shown as "".
            let shown = if value.is_empty() { "\"\"" } else { value };
            self.text(&format!("{path}[{key}]"), shown);
        }
    }
}

fn service(leaves: &mut Leaves, spec: &ServiceSpec) {
    let ServiceSpec {
        name,
        labels,
        task,
        mode,
        update,
        endpoint,
        networks,
        network_aliases,
        rollback,
    } = spec;
    leaves.text("Name", name);
    leaves.map("Labels", labels);
    if let Some(task) = task {
        task_template(leaves, task);
    }
    leaves.list("TaskTemplate.Networks", networks);
    for aliases in network_aliases {
        let shoal_proto::types::v1::NetworkAliasesSpec { network, aliases } = aliases;
        leaves.list(
            &format!("TaskTemplate.Networks[{network}].Aliases"),
            aliases,
        );
    }
    match mode {
        Some(service_spec::Mode::Replicated(r)) => {
            let shoal_proto::types::v1::ReplicatedMode { replicas } = r;
            leaves.text("Mode", "replicated");
            leaves.count("Mode.Replicated.Replicas", *replicas);
        }
        None => {
            // The manager's default: one replica.
            leaves.text("Mode", "replicated");
            leaves.count("Mode.Replicated.Replicas", 1);
        }
        Some(service_spec::Mode::Global(_)) => leaves.text("Mode", "global"),
        Some(service_spec::Mode::ReplicatedJob(job)) => {
            let shoal_proto::types::v1::ReplicatedJob {
                max_concurrent,
                total_completions,
            } = job;
            leaves.text("Mode", "replicated-job");
            leaves.number("Mode.ReplicatedJob.MaxConcurrent", *max_concurrent);
            leaves.count("Mode.ReplicatedJob.TotalCompletions", *total_completions);
        }
        Some(service_spec::Mode::GlobalJob(_)) => leaves.text("Mode", "global-job"),
    }
    if let Some(update) = update {
        update_config(leaves, "UpdateConfig", update);
    }
    if let Some(rollback) = rollback {
        update_config(leaves, "RollbackConfig", rollback);
    }
    if let Some(endpoint) = endpoint {
        endpoint_spec(leaves, endpoint);
    }
}

fn task_template(leaves: &mut Leaves, task: &TaskSpec) {
    let TaskSpec {
        container,
        restart,
        resources,
        constraints,
        secrets,
        force_update,
        max_replicas_per_node,
        preferences,
        configs,
        log_driver,
    } = task;
    if let Some(container) = container {
        container_spec(leaves, container);
    }
    for reference in secrets {
        secret(leaves, reference);
    }
    for reference in configs {
        config(leaves, reference);
    }
    if let Some(resources) = resources {
        resource_requirements(leaves, resources);
    }
    if let Some(restart) = restart {
        restart_policy(leaves, restart);
    }
    let mut constraints = constraints.clone();
    constraints.sort();
    leaves.list("TaskTemplate.Placement.Constraints", &constraints);
    let preferences: Vec<String> = preferences
        .iter()
        .map(|p| {
            let PlacementPreference { spread_descriptor } = p;
            format!("spread={spread_descriptor}")
        })
        .collect();
    leaves.list("TaskTemplate.Placement.Preferences", &preferences);
    leaves.number("TaskTemplate.Placement.MaxReplicas", *max_replicas_per_node);
    if let Some(driver) = log_driver {
        let LogDriver { name, options } = driver;
        leaves.text("TaskTemplate.LogDriver.Name", name);
        leaves.map("TaskTemplate.LogDriver.Options", options);
    }
    leaves.number("TaskTemplate.ForceUpdate", *force_update);
}

fn container_spec(leaves: &mut Leaves, container: &ContainerSpec) {
    const AT: &str = "TaskTemplate.ContainerSpec";
    let ContainerSpec {
        image,
        command,
        args,
        env,
        user,
        workdir,
        labels,
        stop_signal,
        stop_grace_period_ms,
        hostname,
        dns_config,
        healthcheck,
        groups,
        read_only,
        capability_add,
        capability_drop,
        no_new_privileges,
        init,
        ulimits,
        sysctls,
        hosts,
        tty,
        open_stdin,
        mounts,
        registry_auth,
    } = container;
    let at = |field: &str| format!("{AT}.{field}");
    leaves.text(&at("Image"), image);
    leaves.map(&at("Labels"), labels);
    leaves.list(&at("Command"), command);
    leaves.list(&at("Args"), args);
    leaves.text(&at("Hostname"), hostname);
    // By variable: one changed value is one change, wherever it stands.
    let env: HashMap<String, String> = env
        .iter()
        .map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            (key.to_string(), value.to_string())
        })
        .collect();
    leaves.map(&at("Env"), &env);
    leaves.text(&at("Dir"), workdir);
    leaves.text(&at("User"), user);
    leaves.list(&at("Groups"), groups);
    leaves.flag(&at("TTY"), *tty);
    leaves.flag(&at("OpenStdin"), *open_stdin);
    leaves.flag(&at("ReadOnly"), *read_only);
    for m in mounts {
        let (target, text) = mount_text(m);
        leaves.text(&at(&format!("Mounts[{target}]")), &text);
    }
    leaves.text(&at("StopSignal"), stop_signal);
    leaves.millis(&at("StopGracePeriod"), *stop_grace_period_ms);
    if let Some(check) = healthcheck {
        let HealthConfig {
            test,
            interval_ms,
            timeout_ms,
            retries,
            start_period_ms,
            start_interval_ms,
        } = check;
        leaves.list(&at("Healthcheck.Test"), test);
        leaves.millis(&at("Healthcheck.Interval"), *interval_ms);
        leaves.millis(&at("Healthcheck.Timeout"), *timeout_ms);
        leaves.number(&at("Healthcheck.Retries"), *retries);
        leaves.millis(&at("Healthcheck.StartPeriod"), *start_period_ms);
        leaves.millis(&at("Healthcheck.StartInterval"), *start_interval_ms);
    }
    leaves.list(&at("Hosts"), hosts);
    if let Some(dns) = dns_config {
        let DnsConfig {
            nameservers,
            search,
            options,
        } = dns;
        leaves.list(&at("DNSConfig.Nameservers"), nameservers);
        leaves.list(&at("DNSConfig.Search"), search);
        leaves.list(&at("DNSConfig.Options"), options);
    }
    leaves.flag(&at("Init"), *init);
    leaves.map(&at("Sysctls"), sysctls);
    leaves.list(&at("CapabilityAdd"), capability_add);
    leaves.list(&at("CapabilityDrop"), capability_drop);
    leaves.flag(&at("NoNewPrivileges"), *no_new_privileges);
    for limit in ulimits {
        let Ulimit { name, soft, hard } = limit;
        leaves.text(&at(&format!("Ulimits[{name}]")), &format!("{soft}:{hard}"));
    }
    if let Some(auth) = registry_auth {
        let RegistryAuth {
            username,
            password,
            server,
        } = auth;
        leaves.put(
            at("RegistryAuth"),
            format!("{username}@{server}"),
            format!("{username}\0{password}\0{server}"),
        );
    }
}

/// A mount's target and the mount in `--mount` syntax.
fn mount_text(m: &Mount) -> (&str, String) {
    let Mount {
        r#type,
        source,
        target,
        read_only,
        tmpfs_size_bytes,
        tmpfs_mode,
        volume_nocopy,
        volume_labels,
        volume_driver_options,
        volume_driver,
        bind_propagation,
    } = m;
    let kind = match mount::Type::try_from(*r#type).unwrap_or(mount::Type::Bind) {
        mount::Type::Bind => "bind",
        mount::Type::Volume => "volume",
        mount::Type::Tmpfs => "tmpfs",
    };
    let mut parts = vec![format!("type={kind}")];
    if !source.is_empty() {
        parts.push(format!("source={source}"));
    }
    if *read_only {
        parts.push("readonly".into());
    }
    if !bind_propagation.is_empty() {
        parts.push(format!("bind-propagation={bind_propagation}"));
    }
    if *volume_nocopy {
        parts.push("volume-nocopy".into());
    }
    if !volume_driver.is_empty() {
        parts.push(format!("volume-driver={volume_driver}"));
    }
    for (key, value) in volume_labels.iter().collect::<BTreeMap<_, _>>() {
        parts.push(format!("volume-label={key}={value}"));
    }
    for (key, value) in volume_driver_options.iter().collect::<BTreeMap<_, _>>() {
        parts.push(format!("volume-opt={key}={value}"));
    }
    if *tmpfs_size_bytes > 0 {
        parts.push(format!("tmpfs-size={tmpfs_size_bytes}"));
    }
    if *tmpfs_mode > 0 {
        parts.push(format!("tmpfs-mode={tmpfs_mode:o}"));
    }
    (target, parts.join(","))
}

/// A secret or config reference in `--secret` syntax; the id is compared,
/// not shown (a secret made again under its name is another secret).
fn file_reference(
    leaves: &mut Leaves,
    list: &str,
    (id, name, target, uid, gid, mode): (&str, &str, &str, &str, &str, Option<u32>),
) {
    let key = if target.is_empty() { name } else { target };
    let mut parts = vec![format!("source={name}")];
    for (what, value) in [("uid", uid), ("gid", gid)] {
        if !value.is_empty() {
            parts.push(format!("{what}={value}"));
        }
    }
    if let Some(mode) = mode {
        parts.push(format!("mode={mode:04o}"));
    }
    let shown = parts.join(",");
    let compared = format!("{shown}\0{id}");
    leaves.put(
        format!("TaskTemplate.ContainerSpec.{list}[{key}]"),
        shown,
        compared,
    );
}

fn secret(leaves: &mut Leaves, reference: &SecretReference) {
    let SecretReference {
        secret_id,
        secret_name,
        target,
        uid,
        gid,
        mode,
    } = reference;
    file_reference(
        leaves,
        "Secrets",
        (secret_id, secret_name, target, uid, gid, *mode),
    );
}

fn config(leaves: &mut Leaves, reference: &ConfigReference) {
    let ConfigReference {
        config_id,
        config_name,
        target,
        uid,
        gid,
        mode,
    } = reference;
    file_reference(
        leaves,
        "Configs",
        (config_id, config_name, target, uid, gid, *mode),
    );
}

fn resource_requirements(leaves: &mut Leaves, resources: &ResourceRequirements) {
    let ResourceRequirements {
        limit_nano_cpus,
        limit_memory_bytes,
        reserve_nano_cpus,
        reserve_memory_bytes,
        limit_pids,
    } = resources;
    const AT: &str = "TaskTemplate.Resources";
    leaves.number(&format!("{AT}.Limits.NanoCPUs"), *limit_nano_cpus);
    leaves.number(&format!("{AT}.Limits.MemoryBytes"), *limit_memory_bytes);
    leaves.number(&format!("{AT}.Limits.Pids"), *limit_pids);
    leaves.number(&format!("{AT}.Reservations.NanoCPUs"), *reserve_nano_cpus);
    leaves.number(
        &format!("{AT}.Reservations.MemoryBytes"),
        *reserve_memory_bytes,
    );
}

fn restart_policy(leaves: &mut Leaves, policy: &RestartPolicy) {
    let RestartPolicy {
        condition,
        delay_ms,
        max_attempts,
        window_ms,
    } = policy;
    use restart_policy::Condition;
    let condition = match Condition::try_from(*condition).unwrap_or(Condition::Any) {
        Condition::Any => "any",
        Condition::OnFailure => "on-failure",
        Condition::None => "none",
    };
    const AT: &str = "TaskTemplate.RestartPolicy";
    leaves.text(&format!("{AT}.Condition"), condition);
    if let Some(delay) = delay_ms {
        // Set to 0 is not unset (5 s): shown.
        leaves.text(&format!("{AT}.Delay"), &duration_text(*delay));
    }
    leaves.number(&format!("{AT}.MaxAttempts"), *max_attempts);
    leaves.millis(&format!("{AT}.Window"), *window_ms);
}

fn update_config(leaves: &mut Leaves, at: &str, config: &UpdateConfig) {
    let UpdateConfig {
        parallelism,
        delay_ms,
        order,
        failure_action,
        monitor_ms,
        max_failure_ratio,
    } = config;
    use update_config::{FailureAction, Order};
    let order = match Order::try_from(*order).unwrap_or(Order::StopFirst) {
        Order::StopFirst => "stop-first",
        Order::StartFirst => "start-first",
    };
    let failure_action =
        match FailureAction::try_from(*failure_action).unwrap_or(FailureAction::Pause) {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        };
    leaves.count(&format!("{at}.Parallelism"), *parallelism);
    leaves.millis(&format!("{at}.Delay"), *delay_ms);
    leaves.text(&format!("{at}.FailureAction"), failure_action);
    leaves.millis(&format!("{at}.Monitor"), *monitor_ms);
    if *max_failure_ratio != 0.0 {
        leaves.text(
            &format!("{at}.MaxFailureRatio"),
            &max_failure_ratio.to_string(),
        );
    }
    leaves.text(&format!("{at}.Order"), order);
}

fn endpoint_spec(leaves: &mut Leaves, endpoint: &EndpointSpec) {
    let EndpointSpec { ports, mode } = endpoint;
    let mode = match endpoint_spec::Mode::try_from(*mode).unwrap_or(endpoint_spec::Mode::Vip) {
        endpoint_spec::Mode::Vip => "vip",
        endpoint_spec::Mode::Dnsrr => "dnsrr",
    };
    leaves.text("EndpointSpec.Mode", mode);
    for port in ports {
        let PortConfig {
            name,
            protocol,
            target_port,
            published_port,
            publish_mode,
        } = port;
        let protocol = match PortProtocol::try_from(*protocol).unwrap_or(PortProtocol::Tcp) {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        };
        let publish_mode =
            match PublishMode::try_from(*publish_mode).unwrap_or(PublishMode::Ingress) {
                PublishMode::Ingress => "ingress",
                PublishMode::Host => "host",
            };
        let published = if *published_port == 0 {
            "any".to_string()
        } else {
            published_port.to_string()
        };
        let mut text = format!("published={published},mode={publish_mode}");
        if !name.is_empty() {
            text.push_str(&format!(",name={name}"));
        }
        leaves.text(
            &format!("EndpointSpec.Ports[{target_port}/{protocol}]"),
            &text,
        );
    }
}

/// Milliseconds as Go prints a duration (`1m30s`, `250ms`), as the CLI
/// takes them.
fn duration_text(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) && ms < 60_000 {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{}s", ms as f64 / 1000.0)
        };
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        text.push_str(&format!("{m}m"));
    }
    text.push_str(&format!("{s}s"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::ReplicatedMode;

    fn web(image: &str, replicas: u64, env: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: "st_web".into(),
            labels: [("tier".to_string(), "front".to_string())].into(),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: image.into(),
                    env: env.iter().map(|e| e.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
            ..Default::default()
        }
    }

    fn shown(changes: &[FieldChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{}: {:?} -> {:?}", c.path, c.before, c.after))
            .collect()
    }

    #[test]
    fn an_update_lists_the_fields_it_changes_in_dockers_names() {
        let before = web("nginx:1.25", 2, &["A=1", "B=2"]);
        let after = web("nginx:1.27", 3, &["B=2", "A=2", "C=3"]);
        assert_eq!(
            shown(&changes(&before, &after)),
            [
                r#"TaskTemplate.ContainerSpec.Image: "nginx:1.25" -> "nginx:1.27""#,
                r#"TaskTemplate.ContainerSpec.Env[A]: "1" -> "2""#,
                r#"TaskTemplate.ContainerSpec.Env[C]: "" -> "3""#,
                r#"Mode.Replicated.Replicas: "2" -> "3""#,
            ],
            "the order of env entries is no change"
        );
        assert!(changes(&before, &before).is_empty());
        // Scaled to 0 is a value, not an unset field.
        let gone = changes(&before, &web("nginx:1.25", 0, &["A=1", "B=2"]));
        assert_eq!(shown(&gone), [r#"Mode.Replicated.Replicas: "2" -> "0""#]);
    }

    #[test]
    fn removed_fields_come_after_and_hidden_values_are_never_shown() {
        let mut before = web("busybox", 1, &[]);
        before.labels.insert("old".into(), "x".into());
        let auth = |password: &str| RegistryAuth {
            username: "ci".into(),
            password: password.into(),
            server: "reg:5000".into(),
        };
        container(&mut before).registry_auth = Some(auth("one"));
        let mut after = web("busybox", 1, &[]);
        container(&mut after).registry_auth = Some(auth("two"));
        let changes = shown(&changes(&before, &after));
        assert_eq!(
            changes,
            [
                r#"TaskTemplate.ContainerSpec.RegistryAuth: "ci@reg:5000" -> "ci@reg:5000 (changed)""#,
                r#"Labels[old]: "x" -> """#,
            ]
        );
        assert!(changes
            .iter()
            .all(|c| !c.contains("one") && !c.contains("two")));
    }

    fn container(spec: &mut ServiceSpec) -> &mut ContainerSpec {
        spec.task
            .get_or_insert_with(Default::default)
            .container
            .get_or_insert_with(Default::default)
    }

    #[test]
    fn explicit_defaults_still_name_a_change() {
        let before = web("busybox", 1, &[]);
        let mut after = before.clone();
        after
            .task
            .as_mut()
            .unwrap()
            .container
            .as_mut()
            .unwrap()
            .healthcheck = Some(HealthConfig::default());
        assert_eq!(
            changes(&before, &after)
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>(),
            ["Spec"]
        );
    }

    #[test]
    fn durations_read_as_the_cli_takes_them() {
        assert_eq!(duration_text(250), "250ms");
        assert_eq!(duration_text(1500), "1.5s");
        assert_eq!(duration_text(5000), "5s");
        assert_eq!(duration_text(90_000), "1m30s");
        assert_eq!(duration_text(3_600_000), "1h0m0s");
    }
}
