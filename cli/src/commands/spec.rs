//! Service specs from command-line flags: the flags `service create` and
//! `service update` share, and the edits `update` makes to a spec it read.

use std::time::Duration;

use clap::{Args, ValueEnum};
use shoal_proto::types::v1::{
    endpoint_spec, restart_policy, service_spec, update_config, ContainerSpec, DnsConfig,
    EndpointSpec, GlobalJob, GlobalMode, PortConfig, ReplicatedJob, ReplicatedMode, RestartPolicy,
    ServiceSpec, TaskSpec, UpdateConfig,
};

use super::parse;
use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

impl Mode {
    pub fn is_job(self) -> bool {
        matches!(self, Mode::ReplicatedJob | Mode::GlobalJob)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartCondition {
    Any,
    OnFailure,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailureAction {
    Pause,
    Continue,
    Rollback,
}

/// `--rollback-failure-action`: docker offers no rollback of a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollbackFailureAction {
    Pause,
    Continue,
}

/// Flags that set one field of the spec, for both `create` and `update`; unset flags leave
/// the field as it is.
#[derive(Debug, Clone, Default, Args)]
pub struct SpecFlags {
    /// Number of tasks
    #[arg(long, value_name = "N")]
    pub replicas: Option<u64>,
    /// Number of job tasks to run concurrently (default equal to --replicas)
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u64>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Container hostname
    #[arg(long, value_name = "HOSTNAME")]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "CMD", value_parser = parse::words)]
    pub entrypoint: Option<parse::Words>,
    /// Signal to stop the container
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub stop_grace_period: Option<Duration>,
    /// Restart when condition is met
    #[arg(long, value_enum, value_name = "CONDITION")]
    pub restart_condition: Option<RestartCondition>,
    /// Delay between restart attempts (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub restart_delay: Option<Duration>,
    /// Maximum number of restarts before giving up (0 = unlimited)
    #[arg(long, value_name = "N")]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub restart_window: Option<Duration>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once)
    #[arg(long, value_name = "N")]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub update_delay: Option<Duration>,
    /// Update order
    #[arg(long, value_enum, value_name = "ORDER")]
    pub update_order: Option<UpdateOrder>,
    /// Action on update failure
    #[arg(long, value_enum, value_name = "ACTION")]
    pub update_failure_action: Option<FailureAction>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub update_monitor: Option<Duration>,
    /// Failure rate to tolerate during an update (0 to 1)
    #[arg(long, value_name = "RATIO")]
    pub update_max_failure_ratio: Option<f32>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once)
    #[arg(long, value_name = "N")]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub rollback_delay: Option<Duration>,
    /// Rollback order
    #[arg(long, value_enum, value_name = "ORDER")]
    pub rollback_order: Option<UpdateOrder>,
    /// Action on rollback failure
    #[arg(long, value_enum, value_name = "ACTION")]
    pub rollback_failure_action: Option<RollbackFailureAction>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub rollback_monitor: Option<Duration>,
    /// Failure rate to tolerate during a rollback (0 to 1)
    #[arg(long, value_name = "RATIO")]
    pub rollback_max_failure_ratio: Option<f32>,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long, value_enum, value_name = "MODE")]
    pub endpoint_mode: Option<EndpointMode>,
    /// Maximum number of tasks per node (default 0 = unlimited)
    #[arg(long, value_name = "N")]
    pub replicas_max_per_node: Option<u64>,
    #[command(flatten)]
    pub resources: super::resources::ResourceFlags,
    #[command(flatten)]
    pub health: super::healthcheck::HealthFlags,
    #[command(flatten)]
    pub switches: super::runtime::SwitchFlags,
    #[command(flatten)]
    pub logging: super::logging::LogFlags,
}

impl SpecFlags {
    /// Writes every given flag into `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) -> Result<(), Error> {
        if let Some(replicas) = self.replicas {
            set_replicas(spec, replicas)?;
        }
        if let Some(max) = self.max_concurrent {
            match &mut spec.mode {
                Some(service_spec::Mode::ReplicatedJob(job)) => job.max_concurrent = max,
                _ => {
                    return Err(Error::Input(
                        "max-concurrent can only be used with replicated-job mode".into(),
                    ))
                }
            }
        }
        if let Some(mode) = self.endpoint_mode {
            let endpoint = spec.endpoint.get_or_insert_with(EndpointSpec::default);
            endpoint.mode = match mode {
                EndpointMode::Vip => endpoint_spec::Mode::Vip,
                EndpointMode::Dnsrr => endpoint_spec::Mode::Dnsrr,
            } as i32;
        }
        if let Some(max) = self.replicas_max_per_node {
            spec.task
                .get_or_insert_with(Default::default)
                .max_replicas_per_node = max;
        }
        self.resources
            .apply(spec.task.get_or_insert_with(Default::default));
        self.logging
            .apply(spec.task.get_or_insert_with(Default::default))?;
        let container = container_mut(spec);
        if let Some(user) = &self.user {
            container.user = user.clone();
        }
        if let Some(dir) = &self.workdir {
            container.workdir = dir.clone();
        }
        if let Some(hostname) = &self.hostname {
            container.hostname = hostname.clone();
        }
        if let Some(entrypoint) = &self.entrypoint {
            container.command = entrypoint.0.clone();
        }
        if let Some(signal) = &self.stop_signal {
            container.stop_signal = signal.clone();
        }
        if let Some(grace) = self.stop_grace_period {
            container.stop_grace_period_ms = parse::millis(grace);
        }
        self.health.apply(container)?;
        self.switches.apply(container);

        let restart = restart_mut(spec);
        if let Some(condition) = self.restart_condition {
            restart.condition = match condition {
                RestartCondition::Any => restart_policy::Condition::Any,
                RestartCondition::OnFailure => restart_policy::Condition::OnFailure,
                RestartCondition::None => restart_policy::Condition::None,
            } as i32;
        }
        if let Some(delay) = self.restart_delay {
            restart.delay_ms = Some(parse::millis(delay));
        }
        if let Some(max) = self.restart_max_attempts {
            restart.max_attempts = max;
        }
        if let Some(window) = self.restart_window {
            restart.window_ms = parse::millis(window);
        }

        let update = spec.update.get_or_insert_with(default_update_config);
        RolloutFlags {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            order: self.update_order,
            failure_action: self.update_failure_action,
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
        }
        .apply(update, "update")?;
        let rollback = RolloutFlags {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            order: self.rollback_order,
            failure_action: self.rollback_failure_action.map(|a| match a {
                RollbackFailureAction::Pause => FailureAction::Pause,
                RollbackFailureAction::Continue => FailureAction::Continue,
            }),
            monitor: self.rollback_monitor,
            max_failure_ratio: self.rollback_max_failure_ratio,
        };
        if rollback.any() {
            // docker's rule: a spec without a rollback config gets the
            // defaults only when a flag names one.
            let config = spec.rollback.get_or_insert_with(default_update_config);
            rollback.apply(config, "rollback")?;
        }
        Ok(())
    }
}

/// The `--update-*` or `--rollback-*` flags of one rollout config.
struct RolloutFlags {
    parallelism: Option<u64>,
    delay: Option<Duration>,
    order: Option<UpdateOrder>,
    failure_action: Option<FailureAction>,
    monitor: Option<Duration>,
    max_failure_ratio: Option<f32>,
}

impl RolloutFlags {
    fn any(&self) -> bool {
        self.parallelism.is_some()
            || self.delay.is_some()
            || self.order.is_some()
            || self.failure_action.is_some()
            || self.monitor.is_some()
            || self.max_failure_ratio.is_some()
    }

    /// `which`: `update` or `rollback`, as the flags are named.
    fn apply(&self, config: &mut UpdateConfig, which: &str) -> Result<(), Error> {
        if let Some(parallelism) = self.parallelism {
            config.parallelism = parallelism;
        }
        if let Some(delay) = self.delay {
            config.delay_ms = parse::millis(delay);
        }
        if let Some(order) = self.order {
            config.order = match order {
                UpdateOrder::StopFirst => update_config::Order::StopFirst,
                UpdateOrder::StartFirst => update_config::Order::StartFirst,
            } as i32;
        }
        if let Some(action) = self.failure_action {
            config.failure_action = match action {
                FailureAction::Pause => update_config::FailureAction::Pause,
                FailureAction::Continue => update_config::FailureAction::Continue,
                FailureAction::Rollback => update_config::FailureAction::Rollback,
            } as i32;
        }
        if let Some(monitor) = self.monitor {
            config.monitor_ms = parse::millis(monitor);
        }
        if let Some(ratio) = self.max_failure_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(Error::Input(format!(
                    "--{which}-max-failure-ratio {ratio} is not between 0 and 1"
                )));
            }
            config.max_failure_ratio = ratio;
        }
        Ok(())
    }
}

/// docker's `updatePlacementConstraints`: the added ones appended, then
/// every one named for removal (the whole expression) dropped, sorted.
pub fn edit_constraints(constraints: &mut Vec<String>, add: &[String], rm: &[String]) {
    constraints.extend(add.iter().cloned());
    constraints.retain(|c| !rm.contains(c));
    constraints.sort();
}

/// Docker's CLI defaults, for an update and a rollback alike: one task at
/// a time, each watched for 5 s, pause on failure, stop-first.
pub fn default_update_config() -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        monitor_ms: 5_000,
        ..Default::default()
    }
}

/// A new spec as `service create` starts it, before flags.
pub fn new_spec(name: String, image: String, args: Vec<String>, mode: Mode) -> ServiceSpec {
    let mut spec = ServiceSpec {
        name,
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image,
                args,
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(match mode {
            Mode::Replicated => service_spec::Mode::Replicated(ReplicatedMode { replicas: 1 }),
            Mode::Global => service_spec::Mode::Global(GlobalMode {}),
            Mode::ReplicatedJob => service_spec::Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 1,
                total_completions: 1,
            }),
            Mode::GlobalJob => service_spec::Mode::GlobalJob(GlobalJob {}),
        }),
        update: Some(default_update_config()),
        rollback: Some(default_update_config()),
        ..Default::default()
    };
    if mode.is_job() {
        // docker's default for jobs: a task that completed is done.
        restart_mut(&mut spec).condition = restart_policy::Condition::OnFailure as i32;
    }
    spec
}

pub fn set_replicas(spec: &mut ServiceSpec, replicas: u64) -> Result<(), Error> {
    match &mut spec.mode {
        Some(service_spec::Mode::Replicated(r)) => {
            r.replicas = replicas;
            Ok(())
        }
        None => {
            spec.mode = Some(service_spec::Mode::Replicated(ReplicatedMode { replicas }));
            Ok(())
        }
        Some(service_spec::Mode::ReplicatedJob(j)) => {
            j.total_completions = replicas;
            Ok(())
        }
        Some(service_spec::Mode::Global(_) | service_spec::Mode::GlobalJob(_)) => {
            Err(Error::Input(format!(
                "service {}: replicas can only be used with replicated or replicated-job mode",
                spec.name
            )))
        }
    }
}

pub fn container_mut(spec: &mut ServiceSpec) -> &mut ContainerSpec {
    spec.task
        .get_or_insert_with(TaskSpec::default)
        .container
        .get_or_insert_with(ContainerSpec::default)
}

fn restart_mut(spec: &mut ServiceSpec) -> &mut RestartPolicy {
    spec.task
        .get_or_insert_with(TaskSpec::default)
        .restart
        .get_or_insert_with(RestartPolicy::default)
}

pub fn ports_mut(spec: &mut ServiceSpec) -> &mut Vec<PortConfig> {
    &mut spec
        .endpoint
        .get_or_insert_with(EndpointSpec::default)
        .ports
}

/// `service create --dns ... --dns-search ... --dns-option ...`: the
/// container's resolver settings, or none when no flag names any.
pub fn dns_config(
    nameservers: &[String],
    search: &[String],
    options: &[String],
) -> Option<DnsConfig> {
    let config = DnsConfig {
        nameservers: nameservers.to_vec(),
        search: search.to_vec(),
        options: options.to_vec(),
    };
    (config != DnsConfig::default()).then_some(config)
}

/// What `service update` adds to and removes from one list of the resolver
/// settings (`--dns-add`/`--dns-rm`, ...).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListEdit<'a> {
    pub add: &'a [String],
    pub rm: &'a [String],
}

impl ListEdit<'_> {
    fn is_empty(&self) -> bool {
        self.add.is_empty() && self.rm.is_empty()
    }

    /// docker's edit of a DNS list: the entries there, then the added ones,
    /// each once, without the removed ones (also when just added). Unlike
    /// docker, the list is not sorted afterwards: the order of nameservers
    /// and search domains is the order the resolver tries them in.
    fn apply(&self, list: &mut Vec<String>, same: impl Fn(&str, &str) -> bool) {
        let mut out: Vec<String> = Vec::with_capacity(list.len() + self.add.len());
        for entry in list.iter().chain(self.add) {
            if !out.iter().any(|e| e == entry) && !self.rm.iter().any(|r| same(r, entry)) {
                out.push(entry.clone());
            }
        }
        *list = out;
    }
}

/// `service update --dns-add/--dns-rm --dns-search-add/--dns-search-rm
/// --dns-option-add/--dns-option-rm`: edits the container's resolver
/// settings; without any of these flags it is left as it is, and settings
/// left with nothing in them are none.
pub fn edit_dns(
    container: &mut ContainerSpec,
    nameservers: ListEdit<'_>,
    search: ListEdit<'_>,
    options: ListEdit<'_>,
) {
    if nameservers.is_empty() && search.is_empty() && options.is_empty() {
        return;
    }
    let mut config = container.dns_config.take().unwrap_or_default();
    // A server to remove matches however its address is written.
    nameservers.apply(&mut config.nameservers, |rm, entry| {
        parse::ip_address(rm).is_ok_and(|ip| ip == entry) || rm == entry
    });
    search.apply(&mut config.search, |rm, entry| rm == entry);
    options.apply(&mut config.options, |rm, entry| rm == entry);
    container.dns_config = (config != DnsConfig::default()).then_some(config);
}

/// Sets `KEY=VALUE` entries in an env list, replacing an existing entry of the same key.
pub fn env_add(env: &mut Vec<String>, entry: &str) {
    let key = env_key(entry);
    match env.iter_mut().find(|e| env_key(e) == key) {
        Some(existing) => *existing = entry.to_string(),
        None => env.push(entry.to_string()),
    }
}

/// Removes the entry of `key` (given as `KEY` or `KEY=...`).
pub fn env_rm(env: &mut Vec<String>, key: &str) {
    let key = env_key(key);
    env.retain(|e| env_key(e) != key);
}

fn env_key(entry: &str) -> &str {
    entry.split('=').next().unwrap_or(entry)
}

/// `--publish-rm`: a target port (`80`, `80/udp`) or a full publish spec; removes the ports
/// with that target port and protocol.
pub fn publish_rm(ports: &mut Vec<PortConfig>, spec: &str) -> Result<(), String> {
    let targets: Vec<(u32, i32)> = parse::publish(spec)?
        .iter()
        .map(|p| (p.target_port, p.protocol))
        .collect();
    ports.retain(|p| !targets.contains(&(p.target_port, p.protocol)));
    Ok(())
}

/// `--publish-add`: replaces a port with the same target port and protocol, else appends.
pub fn publish_add(ports: &mut Vec<PortConfig>, new: Vec<PortConfig>) {
    for port in new {
        match ports
            .iter_mut()
            .find(|p| p.target_port == port.target_port && p.protocol == port.protocol)
        {
            Some(existing) => *existing = port,
            None => ports.push(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_only_what_they_name() {
        let mut spec = new_spec("web".into(), "busybox".into(), vec![], Mode::Replicated);
        spec.task
            .as_mut()
            .and_then(|t| t.container.as_mut())
            .expect("container")
            .user = "nobody".into();
        let flags = SpecFlags {
            replicas: Some(3),
            stop_grace_period: Some(Duration::from_secs(2)),
            restart_condition: Some(RestartCondition::OnFailure),
            restart_delay: Some(Duration::ZERO),
            update_order: Some(UpdateOrder::StartFirst),
            entrypoint: Some(parse::Words(vec!["sh".into(), "-c".into()])),
            ..Default::default()
        };
        flags.apply(&mut spec).expect("apply");
        let task = spec.task.as_ref().expect("task");
        let container = task.container.as_ref().expect("container");
        assert_eq!(container.user, "nobody");
        assert_eq!(container.stop_grace_period_ms, 2000);
        assert_eq!(container.command, ["sh", "-c"]);
        let restart = task.restart.as_ref().expect("restart");
        assert_eq!(
            restart.condition,
            restart_policy::Condition::OnFailure as i32
        );
        assert_eq!(restart.delay_ms, Some(0));
        let update = spec.update.as_ref().expect("update");
        assert_eq!(update.order, update_config::Order::StartFirst as i32);
        assert_eq!(update.parallelism, 1);
        assert_eq!(
            spec.mode,
            Some(service_spec::Mode::Replicated(ReplicatedMode {
                replicas: 3
            }))
        );
    }

    #[test]
    fn replicas_are_refused_for_global_services() {
        let mut spec = new_spec("agent".into(), "busybox".into(), vec![], Mode::Global);
        let err = set_replicas(&mut spec, 2).expect_err("global");
        assert!(
            err.to_string()
                .contains("replicated or replicated-job mode"),
            "{err}"
        );
    }

    #[test]
    fn hostname_flag_sets_the_container_hostname() {
        let mut spec = new_spec("web".into(), "busybox".into(), vec![], Mode::Replicated);
        SpecFlags {
            hostname: Some("web-1".into()),
            ..Default::default()
        }
        .apply(&mut spec)
        .expect("apply");
        assert_eq!(container_mut(&mut spec).hostname, "web-1");
        SpecFlags::default().apply(&mut spec).expect("apply");
        assert_eq!(container_mut(&mut spec).hostname, "web-1", "kept");
        SpecFlags {
            hostname: Some(String::new()),
            ..Default::default()
        }
        .apply(&mut spec)
        .expect("apply");
        assert_eq!(
            container_mut(&mut spec).hostname,
            "",
            "--hostname \"\" clears it"
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dns_config_is_none_without_flags() {
        assert_eq!(dns_config(&[], &[], &[]), None);
        assert_eq!(
            dns_config(&strings(&["10.0.0.2"]), &[], &strings(&["ndots:2"])),
            Some(DnsConfig {
                nameservers: strings(&["10.0.0.2"]),
                search: vec![],
                options: strings(&["ndots:2"]),
            })
        );
    }

    #[test]
    fn dns_edits_add_once_remove_and_keep_the_order() {
        let mut container = ContainerSpec {
            dns_config: dns_config(
                &strings(&["10.0.0.2", "2001:db8::1"]),
                &strings(&["b.example", "a.example"]),
                &strings(&["ndots:2"]),
            ),
            ..Default::default()
        };
        let add = strings(&["1.1.1.1", "10.0.0.2"]);
        let rm = strings(&["2001:db8:0:0::1"]);
        let search_add = strings(&["c.example"]);
        let search_rm = strings(&["a.example", "nowhere.example"]);
        let option_add = strings(&["use-vc", "edns0"]);
        let option_rm = strings(&["use-vc"]);
        edit_dns(
            &mut container,
            ListEdit { add: &add, rm: &rm },
            ListEdit {
                add: &search_add,
                rm: &search_rm,
            },
            ListEdit {
                add: &option_add,
                rm: &option_rm,
            },
        );
        assert_eq!(
            container.dns_config,
            Some(DnsConfig {
                nameservers: strings(&["10.0.0.2", "1.1.1.1"]),
                search: strings(&["b.example", "c.example"]),
                options: strings(&["ndots:2", "edns0"]),
            })
        );
        // No DNS flag: untouched.
        let before = container.clone();
        edit_dns(
            &mut container,
            ListEdit::default(),
            ListEdit::default(),
            ListEdit::default(),
        );
        assert_eq!(container, before);
        // Everything removed: no settings at all.
        let all = strings(&["10.0.0.2", "1.1.1.1"]);
        let search = strings(&["b.example", "c.example"]);
        let options = strings(&["ndots:2", "edns0"]);
        edit_dns(
            &mut container,
            ListEdit { add: &[], rm: &all },
            ListEdit {
                add: &[],
                rm: &search,
            },
            ListEdit {
                add: &[],
                rm: &options,
            },
        );
        assert_eq!(container.dns_config, None);
    }

    #[test]
    fn env_edits_replace_by_key() {
        let mut env = vec!["A=1".to_string(), "B=2".to_string()];
        env_add(&mut env, "A=3");
        env_add(&mut env, "C=4");
        env_rm(&mut env, "B");
        assert_eq!(env, ["A=3", "C=4"]);
    }

    #[test]
    fn publish_edits_match_target_and_protocol() {
        let mut ports = parse::publish("8080:80").expect("port");
        ports.extend(parse::publish("53:53/udp").expect("port"));
        publish_add(&mut ports, parse::publish("9090:80").expect("port"));
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].published_port, 9090);
        publish_rm(&mut ports, "53").expect("rm");
        assert_eq!(ports.len(), 2, "53/tcp is not 53/udp");
        publish_rm(&mut ports, "53/udp").expect("rm");
        assert_eq!(ports.len(), 1);
        publish_rm(&mut ports, "published=1,target=80").expect("rm");
        assert!(ports.is_empty());
    }
}
