//! Checks of user-given specs before anything is written, against the
//! limits below. Every duration, count and size the control API accepts has
//! one; a refusal names the object, the field as the docker CLI and compose
//! call it, and the limit:
//!
//! `service web: restart window 200000h (--restart-window, deploy.restart_policy.window) is more than shoal allows (max 168h)`
//!
//! The limits are generous for real use and small enough that the
//! orchestrator's arithmetic on them (unix milliseconds as `i64`, sums of
//! resources over a node's tasks) cannot overflow.

use std::fmt::Write as _;

use shoal_proto::types::v1::{
    service_spec::Mode, ConfigSpec, ContainerSpec, HealthConfig, NetworkSpec, NodeAvailability,
    NodeSpec, ResourceRequirements, RestartPolicy, SecretSpec, ServiceSpec, TaskSpec, UpdateConfig,
};

use crate::store::StoreError;

mod cluster;
mod logging;
mod runtime;

pub use cluster::{dispatcher_heartbeat, keep_old_snapshots, snapshot_interval};

// ------------------------------------------------------------- the limits

const HOUR_MS: u64 = 3_600_000;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;
const NANO_CPUS_PER_CPU: i64 = 1_000_000_000;

/// Tasks of one replicated service: beyond this a service is a mistake (a
/// typo'd scale), and every task is a store record and a scheduling pass.
pub const MAX_REPLICAS: u64 = 10_000;
/// `--restart-delay`: a week. A task waiting longer than that to restart is
/// a stopped service (say so with `--restart-condition none`). Added to a
/// death time in ms, it stays far from `i64::MAX`.
pub const MAX_RESTART_DELAY_MS: u64 = 168 * HOUR_MS;
/// `--restart-window`: a week. The orchestrator counts the restarts since
/// `now - window`; a week of history is more than any policy needs.
pub const MAX_RESTART_WINDOW_MS: u64 = 168 * HOUR_MS;
/// `--restart-max-attempts` (0 = unlimited): a thousand. Every task
/// carries the times of the restarts its policy still counts (up to this
/// many), so the bound is a bound on task records; more attempts than this
/// is "unlimited" in all but name.
pub const MAX_RESTART_ATTEMPTS: u64 = 1_000;
/// `--stop-grace-period`: a week. A drain, an update or a removal waits for
/// it before the container is killed.
pub const MAX_STOP_GRACE_PERIOD_MS: u64 = 168 * HOUR_MS;
/// `--health-interval`, `--health-timeout`, `--health-start-period`,
/// `--health-start-interval`: a day. A probe a day is no health check, and a
/// start period longer than that never ends in practice.
pub const MAX_HEALTH_DURATION_MS: u64 = 24 * HOUR_MS;
/// `--health-retries`: a thousand consecutive failures before a task is
/// unhealthy is "never" in all but name.
pub const MAX_HEALTH_RETRIES: u64 = 1_000;
/// `--update-parallelism` (0 = all at once): more tasks at a time than a
/// service can have means nothing.
pub const MAX_UPDATE_PARALLELISM: u64 = MAX_REPLICAS;
/// `--update-delay`: a week between batches; added to a start time in ms.
pub const MAX_UPDATE_DELAY_MS: u64 = 168 * HOUR_MS;
/// `--update-monitor`: a week of watching each batch for failures.
pub const MAX_UPDATE_MONITOR_MS: u64 = 168 * HOUR_MS;
/// `--limit-cpu` / `--reserve-cpu`: 8192 CPUs, the most a Linux kernel
/// supports (`NR_CPUS` with `MAXSMP`). In nano CPUs, summed over
/// [`MAX_REPLICAS`] tasks, still far inside `i64`.
pub const MAX_NANO_CPUS: i64 = 8192 * NANO_CPUS_PER_CPU;
/// `--limit-cpu`: docker's smallest CPU limit (0.01 CPU); 0 means no limit.
pub const MIN_LIMIT_NANO_CPUS: i64 = NANO_CPUS_PER_CPU / 100;
/// `--limit-memory` / `--reserve-memory`: 64 TiB, more than the largest
/// machines have; summed over [`MAX_REPLICAS`] tasks, still inside `i64`.
pub const MAX_MEMORY_BYTES: i64 = 64 * TIB as i64;
/// `--limit-memory`: docker's smallest memory limit (6 MiB): below it the
/// container is killed before it starts. 0 means no limit.
pub const MIN_LIMIT_MEMORY_BYTES: i64 = 6 * MIB as i64;
/// `--limit-pids`: Linux's `PID_MAX_LIMIT` on 64-bit (4M); a cgroup can
/// never hold more processes. 0 means no limit.
pub const MAX_PIDS: i64 = 4 * 1024 * 1024;
/// `--placement-pref`: placement preferences of one service (each a level
/// of grouping the scheduler walks for every task).
pub const MAX_PREFERENCES: usize = 16;
/// `--publish`: ports of one service. Each published port is forwarding
/// state on every node; ranges of a few thousand (RTP media) fit.
pub const MAX_PORTS: usize = 10_000;
/// `--network`: attachments of one task (each an interface and an address).
pub const MAX_NETWORKS: usize = 100;
/// `--env`, `--entrypoint`, the command's arguments: entries of each list.
pub const MAX_EXEC_ENTRIES: usize = 1_000;
/// One environment entry or argument: Linux's `MAX_ARG_STRLEN` (128 KiB);
/// a longer one makes `exec` fail with E2BIG.
pub const MAX_EXEC_ENTRY_BYTES: usize = 128 * KIB as usize;
/// Entrypoint, arguments and environment together: 1 MiB, half of Linux's
/// default `ARG_MAX` (2 MiB), leaving room for the image's own environment.
pub const MAX_EXEC_BYTES: usize = MIB as usize;
/// `--label`, `--container-label`: entries of one label map.
pub const MAX_LABELS: usize = 1_000;
/// Keys and values of one label map together: 64 KiB. Service labels are
/// copied into every task record.
pub const MAX_LABELS_BYTES: usize = 64 * KIB as usize;
/// `--constraint`: placement constraints of one service.
pub const MAX_CONSTRAINTS: usize = 100;
/// `--secret`: secrets of one service (each a file on a tmpfs in every
/// container, up to [`MAX_SECRET_BYTES`]).
pub const MAX_SECRET_REFERENCES: usize = 100;
/// The largest file mode of a secret: permission bits, `0o7777`.
pub const MAX_SECRET_MODE: u32 = 0o7777;
/// Single-line strings (image, user, workdir, stop signal, constraints,
/// network names, secret targets, uid, gid): `PATH_MAX`, 4 KiB.
pub const MAX_FIELD_BYTES: usize = 4 * KIB as usize;
/// `--hostname`: Linux's `HOST_NAME_MAX` (64); `sethostname` refuses more.
pub const MAX_HOSTNAME_BYTES: usize = 64;
/// `--network name=N,alias=A`: aliases of a service on one network.
pub const MAX_ALIASES: usize = 64;
/// `--dns`, `--dns-search`, `--dns-option`: entries of each (glibc reads
/// at most 3 nameservers and 6 search domains; a few more do no harm).
pub const MAX_DNS_ENTRIES: usize = 16;
/// A DNS name (an alias, a search domain): RFC 1035's 253 characters.
pub const MAX_DNS_NAME_BYTES: usize = 253;
/// A secret's value: Swarm's limit, 500 KiB.
pub const MAX_SECRET_BYTES: usize = 500 * KIB as usize;
/// `--cert-expiry`: at least an hour (Swarm's minimum) and stored in hours.
pub const MIN_CERT_EXPIRY_MS: u64 = HOUR_MS;
/// `--cert-expiry`: ten years, half the life of the root CA (20 years), so
/// a node certificate never outlives its issuer by design, and far inside
/// what certificate dates can express.
pub const MAX_CERT_EXPIRY_MS: u64 = 87_600 * HOUR_MS;
/// `--dispatcher-heartbeat` (0 = the default, 5 s): the agent never beats
/// faster than every 100 ms.
pub const MIN_HEARTBEAT_PERIOD_MS: u32 = 100;
/// `--dispatcher-heartbeat`: an hour. A node is down after a few missed
/// periods; slower than this, a dead node goes unnoticed for hours.
pub const MAX_HEARTBEAT_PERIOD_MS: u32 = 3_600_000;
/// `--network-key-rotation`: at least a minute (every rotation is a
/// handshake with every peer), at most a year.
pub const MIN_NETWORK_KEY_ROTATION_MS: u64 = 60_000;
pub const MAX_NETWORK_KEY_ROTATION_MS: u64 = 8_760 * HOUR_MS;
/// `--snapshot-interval`: at least 10 log entries between snapshots (each
/// is the whole state, encoded and sealed), at most a million (the log
/// behind the last snapshot stays on every manager's disk until the next).
pub const MIN_SNAPSHOT_INTERVAL: u64 = 10;
pub const MAX_SNAPSHOT_INTERVAL: u64 = 1_000_000;
/// `--max-snapshots`: older snapshots each manager keeps; each is a copy of
/// the whole state on its disk.
pub const MAX_KEEP_OLD_SNAPSHOTS: u64 = 100;
/// Address pools at `swarm init`: a handful is all anyone needs.
pub const MAX_ADDR_POOLS: usize = 64;
/// Network blocks of at most /29: room for a gateway and a few tasks.
pub const MAX_POOL_MASK_LENGTH: u32 = 29;
/// `--log-opt max-size`: one log file of a task, 100 GiB. A log file larger
/// than that fills a node's disk; it is no log anyone reads.
pub const MAX_LOG_FILE_BYTES: u64 = 100 * GIB;
/// `--log-opt max-file`: files kept per task, a hundred. `service logs`
/// reads through all of them, and the node keeps them all.
pub const MAX_LOG_FILES: u32 = shoal_proto::log_driver::MAX_FILES;

// ------------------------------------------------------------- the checks

pub fn service_spec(spec: &ServiceSpec) -> Result<(), StoreError> {
    let invalid = |m: String| Err(StoreError::InvalidArgument(m));
    object_name("service", &spec.name)?;
    let subject = format!("service {}", spec.name);
    let s = subject.as_str();
    let container = spec.task.as_ref().and_then(|t| t.container.as_ref());
    match container {
        Some(c) if !c.image.trim().is_empty() => {}
        _ => return invalid(format!("{s}: an image is required")),
    }
    if let Some(c) = container {
        for env in &c.env {
            if env.is_empty() || env.starts_with('=') {
                return invalid(format!("{s}: invalid environment entry {env:?}"));
            }
        }
    }
    if let Some(Mode::Replicated(r)) = &spec.mode {
        at_most(
            s,
            format!("{} replicas", r.replicas),
            "--replicas, deploy.replicas",
            r.replicas,
            MAX_REPLICAS,
            MAX_REPLICAS.to_string(),
        )?;
    }
    if let Some(Mode::ReplicatedJob(job)) = &spec.mode {
        for (what, flag, n) in [
            (
                "completions",
                "--replicas, deploy.replicas",
                job.total_completions,
            ),
            ("concurrent tasks", "--max-concurrent", job.max_concurrent),
        ] {
            at_most(
                s,
                format!("{n} {what}"),
                flag,
                n,
                MAX_REPLICAS,
                MAX_REPLICAS.to_string(),
            )?;
        }
    }
    labels(s, "service", "--label, deploy.labels", &spec.labels)?;
    let per_node = spec.task.as_ref().map_or(0, |t| t.max_replicas_per_node);
    if per_node > 0 && matches!(spec.mode, Some(Mode::Global(_)) | Some(Mode::GlobalJob(_))) {
        return invalid(format!(
            "{s}: replicas-max-per-node can only be used with replicated mode"
        ));
    }
    if let Some(task) = &spec.task {
        task_spec(s, task)?;
    }
    if let Some(update) = &spec.update {
        update_config(s, update, Rollout::Update)?;
    }
    if let Some(rollback) = &spec.rollback {
        update_config(s, rollback, Rollout::Rollback)?;
    }
    if let Some(endpoint) = &spec.endpoint {
        list_len(
            s,
            "published ports",
            "--publish, ports",
            endpoint.ports.len(),
            MAX_PORTS,
        )?;
    }
    list_len(
        s,
        "networks",
        "--network, networks",
        spec.networks.len(),
        MAX_NETWORKS,
    )?;
    for network in &spec.networks {
        field(s, "network name", "--network, networks", network)?;
    }
    for entry in &spec.network_aliases {
        if !spec.networks.contains(&entry.network) {
            return invalid(format!(
                "{s}: aliases for network {} that the service is not attached to",
                entry.network
            ));
        }
        list_len(
            s,
            &format!("aliases on network {}", entry.network),
            "--network alias=, networks.aliases",
            entry.aliases.len(),
            MAX_ALIASES,
        )?;
        for alias in &entry.aliases {
            dns_name(s, "alias", "--network alias=, networks.aliases", alias)?;
        }
    }
    Ok(())
}

/// A name others look up: labels of letters, digits, `-` and `_`,
/// separated by dots, 63 bytes each, 253 in all.
fn dns_name(s: &str, what: &str, flags: &str, name: &str) -> Result<(), StoreError> {
    let labels_ok = name.trim_end_matches('.').split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if name.is_empty() || name.len() > MAX_DNS_NAME_BYTES || !labels_ok {
        return Err(refusal(
            s,
            format!(
                "invalid {what} {name:?} ({flags}): use DNS labels of up to 63 letters, digits, '-' or '_', separated by dots"
            ),
        ));
    }
    Ok(())
}

fn dns_config(s: &str, dns: &shoal_proto::types::v1::DnsConfig) -> Result<(), StoreError> {
    let lists = [
        ("nameservers", "--dns, dns", &dns.nameservers),
        ("search domains", "--dns-search, dns_search", &dns.search),
        ("resolver options", "--dns-option, dns_opt", &dns.options),
    ];
    for (plural, flags, list) in lists {
        list_len(s, plural, flags, list.len(), MAX_DNS_ENTRIES)?;
    }
    for server in &dns.nameservers {
        if server.parse::<std::net::IpAddr>().is_err() {
            return Err(refusal(
                s,
                format!("invalid nameserver {server:?} (--dns, dns): an IP address"),
            ));
        }
    }
    for domain in &dns.search {
        dns_name(s, "search domain", "--dns-search, dns_search", domain)?;
    }
    for option in &dns.options {
        if option.is_empty()
            || option.len() > 64
            || option.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(refusal(
                s,
                format!("invalid resolver option {option:?} (--dns-option, dns_opt)"),
            ));
        }
    }
    Ok(())
}

fn task_spec(s: &str, task: &TaskSpec) -> Result<(), StoreError> {
    if let Some(c) = &task.container {
        container_spec(s, c)?;
    }
    if let Some(r) = &task.restart {
        restart_policy(s, r)?;
    }
    if let Some(r) = &task.resources {
        resources(s, r)?;
    }
    let flags = "--constraint, deploy.placement.constraints";
    list_len(
        s,
        "placement constraints",
        flags,
        task.constraints.len(),
        MAX_CONSTRAINTS,
    )?;
    for constraint in &task.constraints {
        field(s, "placement constraint", flags, constraint)?;
        if let Err(why) = crate::scheduler::constraint::parse(constraint) {
            return Err(refusal(
                s,
                format!("invalid placement constraint {constraint:?} ({flags}): {why}"),
            ));
        }
    }
    let flags = "--placement-pref, deploy.placement.preferences";
    list_len(
        s,
        "placement preferences",
        flags,
        task.preferences.len(),
        MAX_PREFERENCES,
    )?;
    for preference in &task.preferences {
        let descriptor = &preference.spread_descriptor;
        field(s, "placement preference", flags, descriptor)?;
        if let Err(why) = crate::scheduler::spread::check_descriptor(descriptor) {
            return Err(refusal(
                s,
                format!("invalid placement preference spread={descriptor} ({flags}): {why}"),
            ));
        }
    }
    at_most(
        s,
        format!("{} replicas per node", task.max_replicas_per_node),
        "--replicas-max-per-node, deploy.placement.max_replicas_per_node",
        task.max_replicas_per_node,
        MAX_REPLICAS,
        MAX_REPLICAS.to_string(),
    )?;
    if let Some(driver) = &task.log_driver {
        logging::log_driver(s, driver)?;
    }
    let flags = "--secret, secrets";
    list_len(
        s,
        "secrets",
        flags,
        task.secrets.len(),
        MAX_SECRET_REFERENCES,
    )?;
    for secret in &task.secrets {
        field(s, "secret", flags, &secret.secret_name)?;
        field(s, "secret", flags, &secret.secret_id)?;
        field(
            s,
            "secret target",
            "--secret target=, secrets.target",
            &secret.target,
        )?;
        field(s, "secret uid", "--secret uid=, secrets.uid", &secret.uid)?;
        field(s, "secret gid", "--secret gid=, secrets.gid", &secret.gid)?;
        if let Some(mode) = secret.mode {
            at_most(
                s,
                format!("secret mode {mode:#o}"),
                "--secret mode=, secrets.mode",
                u64::from(mode),
                u64::from(MAX_SECRET_MODE),
                format!("{MAX_SECRET_MODE:#o}"),
            )?;
        }
    }
    Ok(())
}

fn container_spec(s: &str, c: &ContainerSpec) -> Result<(), StoreError> {
    field(s, "image", "IMAGE, image", &c.image)?;
    field(s, "user", "--user, user", &c.user)?;
    field(s, "working directory", "--workdir, working_dir", &c.workdir)?;
    field(
        s,
        "stop signal",
        "--stop-signal, stop_signal",
        &c.stop_signal,
    )?;
    if c.hostname.len() > MAX_HOSTNAME_BYTES {
        return Err(more(
            s,
            format!("hostname of {} bytes", c.hostname.len()),
            "--hostname, hostname",
            MAX_HOSTNAME_BYTES.to_string() + " bytes",
        ));
    }
    let lists: [(&str, &str, &str, &[String]); 3] = [
        (
            "entrypoint words",
            "entrypoint word",
            "--entrypoint, entrypoint",
            &c.command,
        ),
        ("arguments", "argument", "--args, command", &c.args),
        (
            "environment variables",
            "environment variable",
            "--env, environment",
            &c.env,
        ),
    ];
    let mut total = 0usize;
    for (plural, singular, flags, list) in lists {
        list_len(s, plural, flags, list.len(), MAX_EXEC_ENTRIES)?;
        for (i, entry) in list.iter().enumerate() {
            if entry.len() > MAX_EXEC_ENTRY_BYTES {
                // Name the entry without echoing all of it.
                let which: String = if singular == "environment variable" {
                    entry
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(64)
                        .collect()
                } else {
                    format!("#{}", i + 1)
                };
                return Err(more(
                    s,
                    format!("{singular} {which} of {}", size(entry.len() as i128)),
                    flags,
                    size(MAX_EXEC_ENTRY_BYTES as i128),
                ));
            }
            total += entry.len() + 1;
        }
    }
    if total > MAX_EXEC_BYTES {
        return Err(more(
            s,
            format!(
                "entrypoint, arguments and environment of {} together",
                size(total as i128)
            ),
            "--entrypoint, --args, --env, entrypoint, command, environment",
            size(MAX_EXEC_BYTES as i128),
        ));
    }
    labels(s, "container", "--container-label, labels", &c.labels)?;
    runtime::runtime_options(s, c)?;
    if let Some(dns) = &c.dns_config {
        dns_config(s, dns)?;
    }
    at_most(
        s,
        format!("stop grace period {}", duration(c.stop_grace_period_ms)),
        "--stop-grace-period, stop_grace_period",
        c.stop_grace_period_ms,
        MAX_STOP_GRACE_PERIOD_MS,
        duration(MAX_STOP_GRACE_PERIOD_MS),
    )?;
    match &c.healthcheck {
        Some(check) => healthcheck(s, check),
        None => Ok(()),
    }
}

/// Docker's forms of a test (empty: the image's; `NONE`; `CMD` and its
/// words; `CMD-SHELL` and its command), and the limits on the durations and
/// retries. (Durations under a millisecond, which docker refuses, cannot be
/// written in milliseconds; the CLI and the compose loader refuse them.)
fn healthcheck(s: &str, h: &HealthConfig) -> Result<(), StoreError> {
    const TEST: &str = "--health-cmd, --no-healthcheck, healthcheck.test";
    let malformed =
        |why: &str| refusal(s, format!("health check test {:?} ({TEST}) {why}", h.test));
    match h.test.first().map(String::as_str) {
        None => {}
        Some("NONE") if h.test.len() == 1 => {}
        Some("NONE") => return Err(malformed("takes nothing after NONE")),
        Some("CMD") if h.test.len() > 1 => {}
        Some("CMD-SHELL") if h.test.len() == 2 => {}
        Some("CMD") | Some("CMD-SHELL") => {
            return Err(malformed("needs a command (CMD-SHELL: exactly one)"))
        }
        Some(_) => return Err(malformed("must start with NONE, CMD or CMD-SHELL")),
    }
    list_len(
        s,
        "health check test words",
        TEST,
        h.test.len(),
        MAX_EXEC_ENTRIES,
    )?;
    for word in &h.test {
        if word.len() > MAX_EXEC_ENTRY_BYTES {
            return Err(more(
                s,
                format!("health check test word of {}", size(word.len() as i128)),
                TEST,
                size(MAX_EXEC_ENTRY_BYTES as i128),
            ));
        }
    }
    for (what, flags, ms) in [
        (
            "interval",
            "--health-interval, healthcheck.interval",
            h.interval_ms,
        ),
        (
            "timeout",
            "--health-timeout, healthcheck.timeout",
            h.timeout_ms,
        ),
        (
            "start period",
            "--health-start-period, healthcheck.start_period",
            h.start_period_ms,
        ),
        (
            "start interval",
            "--health-start-interval, healthcheck.start_interval",
            h.start_interval_ms,
        ),
    ] {
        at_most(
            s,
            format!("health check {what} {}", duration(ms)),
            flags,
            ms,
            MAX_HEALTH_DURATION_MS,
            duration(MAX_HEALTH_DURATION_MS),
        )?;
    }
    at_most(
        s,
        format!("health check retries {}", h.retries),
        "--health-retries, healthcheck.retries",
        h.retries,
        MAX_HEALTH_RETRIES,
        MAX_HEALTH_RETRIES.to_string(),
    )
}

fn restart_policy(s: &str, r: &RestartPolicy) -> Result<(), StoreError> {
    if let Some(delay) = r.delay_ms {
        at_most(
            s,
            format!("restart delay {}", duration(delay)),
            "--restart-delay, deploy.restart_policy.delay",
            delay,
            MAX_RESTART_DELAY_MS,
            duration(MAX_RESTART_DELAY_MS),
        )?;
    }
    at_most(
        s,
        format!("restart window {}", duration(r.window_ms)),
        "--restart-window, deploy.restart_policy.window",
        r.window_ms,
        MAX_RESTART_WINDOW_MS,
        duration(MAX_RESTART_WINDOW_MS),
    )?;
    at_most(
        s,
        format!("restart max attempts {}", r.max_attempts),
        "--restart-max-attempts, deploy.restart_policy.max_attempts",
        r.max_attempts,
        MAX_RESTART_ATTEMPTS,
        format!("{MAX_RESTART_ATTEMPTS}; 0 means unlimited"),
    )
}

/// Which rollout a config paces: its words in messages (the CLI's flags and
/// compose's keys).
#[derive(Clone, Copy)]
enum Rollout {
    Update,
    Rollback,
}

impl Rollout {
    fn word(self) -> &'static str {
        match self {
            Rollout::Update => "update",
            Rollout::Rollback => "rollback",
        }
    }
}

fn update_config(s: &str, u: &UpdateConfig, rollout: Rollout) -> Result<(), StoreError> {
    let w = rollout.word();
    let source = |field: &str, key: &str| format!("--{w}-{field}, deploy.{w}_config.{key}");
    at_most(
        s,
        format!("{w} parallelism {}", u.parallelism),
        &source("parallelism", "parallelism"),
        u.parallelism,
        MAX_UPDATE_PARALLELISM,
        format!("{MAX_UPDATE_PARALLELISM}; 0 means all at once"),
    )?;
    at_most(
        s,
        format!("{w} delay {}", duration(u.delay_ms)),
        &source("delay", "delay"),
        u.delay_ms,
        MAX_UPDATE_DELAY_MS,
        duration(MAX_UPDATE_DELAY_MS),
    )?;
    at_most(
        s,
        format!("{w} monitor {}", duration(u.monitor_ms)),
        &source("monitor", "monitor"),
        u.monitor_ms,
        MAX_UPDATE_MONITOR_MS,
        duration(MAX_UPDATE_MONITOR_MS),
    )?;
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(StoreError::InvalidArgument(format!(
            "{s}: {w} max failure ratio {} ({}) is not between 0 and 1",
            u.max_failure_ratio,
            source("max-failure-ratio", "max_failure_ratio"),
        )));
    }
    Ok(())
}

fn resources(s: &str, r: &ResourceRequirements) -> Result<(), StoreError> {
    const LIMIT_CPU: &str = "--limit-cpu, deploy.resources.limits.cpus";
    const RESERVE_CPU: &str = "--reserve-cpu, deploy.resources.reservations.cpus";
    const LIMIT_MEMORY: &str = "--limit-memory, deploy.resources.limits.memory";
    const RESERVE_MEMORY: &str = "--reserve-memory, deploy.resources.reservations.memory";
    const LIMIT_PIDS: &str = "--limit-pids, deploy.resources.limits.pids";
    struct Amount {
        what: &'static str,
        flags: &'static str,
        value: i64,
        /// The smallest non-zero value (0 always means "none").
        min: i64,
        max: i64,
        show: fn(i64) -> String,
    }
    let amounts = [
        Amount {
            what: "CPU limit",
            flags: LIMIT_CPU,
            value: r.limit_nano_cpus,
            min: MIN_LIMIT_NANO_CPUS,
            max: MAX_NANO_CPUS,
            show: cpus,
        },
        Amount {
            what: "CPU reservation",
            flags: RESERVE_CPU,
            value: r.reserve_nano_cpus,
            min: 0,
            max: MAX_NANO_CPUS,
            show: cpus,
        },
        Amount {
            what: "memory limit",
            flags: LIMIT_MEMORY,
            value: r.limit_memory_bytes,
            min: MIN_LIMIT_MEMORY_BYTES,
            max: MAX_MEMORY_BYTES,
            show: |b| size(i128::from(b)),
        },
        Amount {
            what: "memory reservation",
            flags: RESERVE_MEMORY,
            value: r.reserve_memory_bytes,
            min: 0,
            max: MAX_MEMORY_BYTES,
            show: |b| size(i128::from(b)),
        },
        Amount {
            what: "pids limit",
            flags: LIMIT_PIDS,
            value: r.limit_pids,
            min: 0,
            max: MAX_PIDS,
            show: |n| n.to_string(),
        },
    ];
    for a in &amounts {
        let shown = format!("{} {}", a.what, (a.show)(a.value));
        if a.value < 0 || (a.value != 0 && a.value < a.min) {
            let min = if a.min > 0 {
                format!("{}; 0 means no limit", (a.show)(a.min))
            } else {
                "0".into()
            };
            return Err(less(s, shown, a.flags, min));
        }
        if a.value > a.max {
            return Err(more(s, shown, a.flags, (a.show)(a.max)));
        }
    }
    for (limit, reservation) in [(&amounts[0], &amounts[1]), (&amounts[2], &amounts[3])] {
        if limit.value != 0 && limit.value < reservation.value {
            return Err(StoreError::InvalidArgument(format!(
                "{s}: {} {} ({}) is below the {} {} ({})",
                limit.what,
                (limit.show)(limit.value),
                limit.flags,
                reservation.what,
                (reservation.show)(reservation.value),
                reservation.flags,
            )));
        }
    }
    Ok(())
}

/// `swarm update --cert-expiry` / `swarm ca --cert-expiry`: the lifetime of
/// node certificates, in whole hours (as the cluster stores it).
/// A node's spec as `node update` leaves it: its labels within the limits
/// of service labels, each key a non-empty single line.
pub fn node_spec(spec: &NodeSpec) -> Result<(), StoreError> {
    let flags = "--label-add";
    labels("", "node", flags, &spec.labels)?;
    for (key, value) in &spec.labels {
        if key.trim().is_empty() {
            return Err(refusal(
                "",
                format!("invalid label {key:?} ({flags}): empty name"),
            ));
        }
        if key.chars().chain(value.chars()).any(|c| c.is_control()) {
            return Err(refusal(
                "",
                format!("invalid label {key:?} ({flags}): control characters"),
            ));
        }
    }
    if NodeAvailability::try_from(spec.availability).is_err() {
        return Err(refusal(
            "",
            format!(
                "invalid availability {} (--availability): active, pause or drain",
                spec.availability
            ),
        ));
    }
    Ok(())
}

pub fn cert_expiry(expiry_ms: u64) -> Result<u32, StoreError> {
    let flags = "--cert-expiry";
    let shown = format!("certificate expiry {}", duration(expiry_ms));
    if expiry_ms < MIN_CERT_EXPIRY_MS {
        return Err(less("", shown, flags, duration(MIN_CERT_EXPIRY_MS)));
    }
    if expiry_ms > MAX_CERT_EXPIRY_MS {
        return Err(more("", shown, flags, duration(MAX_CERT_EXPIRY_MS)));
    }
    if !expiry_ms.is_multiple_of(HOUR_MS) {
        return Err(StoreError::InvalidArgument(format!(
            "{shown} ({flags}) is not a whole number of hours"
        )));
    }
    // At most 87600: fits.
    Ok((expiry_ms / HOUR_MS) as u32)
}

/// A secret's value and labels (its name is checked where it is created).
pub fn secret_spec(spec: &SecretSpec) -> Result<(), StoreError> {
    let subject = format!("secret {}", spec.name);
    let flags = "secret create FILE, secrets.file";
    if spec.data.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "{subject}: the value ({flags}) is empty"
        )));
    }
    if spec.data.len() > MAX_SECRET_BYTES {
        return Err(more(
            &subject,
            format!("value of {}", size(spec.data.len() as i128)),
            flags,
            size(MAX_SECRET_BYTES as i128),
        ));
    }
    labels(
        &subject,
        "secret",
        "secret create --label, secrets.labels",
        &spec.labels,
    )
}

/// Swarm's limit on a config's value (`MaxConfigSize`).
pub const MAX_CONFIG_BYTES: usize = 1000 * KIB as usize;

/// A config's name, value and labels; `template_driver` is empty or
/// `golang`.
pub fn config_spec(spec: &ConfigSpec) -> Result<(), StoreError> {
    object_name("config", &spec.name)?;
    let subject = format!("config {}", spec.name);
    let flags = "config create FILE, configs.file";
    if spec.data.len() > MAX_CONFIG_BYTES {
        return Err(more(
            &subject,
            format!("value of {}", size(spec.data.len() as i128)),
            flags,
            size(MAX_CONFIG_BYTES as i128),
        ));
    }
    if !matches!(spec.template_driver.as_str(), "" | "golang") {
        return Err(refusal(
            &subject,
            format!(
                "unknown template driver {:?} (--template-driver, configs.template_driver: golang)",
                spec.template_driver
            ),
        ));
    }
    labels(
        &subject,
        "config",
        "config create --label, configs.labels",
        &spec.labels,
    )
}

/// The dispatcher heartbeat period of a cluster spec (0: the default),
/// checked by `init_cluster`.
pub fn network_key_rotation(rotation_ms: u64) -> Result<(), StoreError> {
    if rotation_ms < MIN_NETWORK_KEY_ROTATION_MS {
        return Err(less(
            "",
            format!("network key rotation {}", duration(rotation_ms)),
            "--network-key-rotation",
            duration(MIN_NETWORK_KEY_ROTATION_MS),
        ));
    }
    at_most(
        "",
        format!("network key rotation {}", duration(rotation_ms)),
        "--network-key-rotation",
        rotation_ms,
        MAX_NETWORK_KEY_ROTATION_MS,
        duration(MAX_NETWORK_KEY_ROTATION_MS),
    )
}

/// The heartbeat period of a cluster spec (`swarm init`): 0 is the
/// default, anything else is checked as `swarm update` checks it.
pub fn heartbeat_period(period_ms: u32) -> Result<(), StoreError> {
    if period_ms == 0 {
        return Ok(());
    }
    dispatcher_heartbeat(period_ms.into()).map(drop)
}

/// A network spec before the allocator looks at it (which checks the
/// addresses against the cluster's other networks).
pub fn network_spec(spec: &NetworkSpec) -> Result<(), StoreError> {
    object_name("network", &spec.name)?;
    match spec.driver.as_str() {
        "" | "overlay" => {}
        other => {
            return Err(StoreError::InvalidArgument(format!(
                "network {}: driver {other} is not supported: shoal's networks span the cluster (-d overlay)",
                spec.name
            )))
        }
    }
    let subject = format!("network {}", spec.name);
    field(&subject, "subnet", "--subnet", &spec.subnet)?;
    field(&subject, "gateway", "--gateway", &spec.gateway)?;
    field(&subject, "ip range", "--ip-range", &spec.ip_range)?;
    labels(
        &subject,
        "network",
        "network create --label, networks.labels",
        &spec.labels,
    )
}

/// `swarm init --default-addr-pool CIDR... --default-addr-pool-mask-length N`.
pub fn addr_pool(pools: &[String], mask_length: u32) -> Result<(), StoreError> {
    let invalid = |m: String| Err(StoreError::InvalidArgument(m));
    if pools.len() > MAX_ADDR_POOLS {
        return invalid(format!(
            "{} default address pools (--default-addr-pool) is more than shoal allows (max {MAX_ADDR_POOLS})",
            pools.len()
        ));
    }
    let mut parsed = Vec::new();
    for pool in pools {
        let Some(subnet) = crate::allocator::Subnet::parse(pool) else {
            return invalid(format!(
                "invalid default address pool {pool:?} (--default-addr-pool): expected an IPv4 CIDR such as 10.20.0.0/16"
            ));
        };
        if let Some(other) = parsed
            .iter()
            .find(|p: &&crate::allocator::Subnet| p.overlaps(&subnet))
        {
            return invalid(format!(
                "default address pools {other} and {subnet} overlap"
            ));
        }
        parsed.push(subnet);
    }
    if mask_length != 0 {
        let widest = parsed
            .iter()
            .map(|p| u32::from(p.prefix))
            .max()
            .unwrap_or(8);
        if !(widest..=MAX_POOL_MASK_LENGTH).contains(&mask_length) {
            return invalid(format!(
                "default address pool mask length {mask_length} (--default-addr-pool-mask-length) must be between {widest} (the pool's own) and {MAX_POOL_MASK_LENGTH}"
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------- helpers

/// Names become DNS names and kernel object labels: keep them plain.
fn object_name(kind: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "the {kind} needs a name"
        )));
    }
    let name_ok = name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !name_ok {
        return Err(StoreError::InvalidArgument(format!(
            "invalid {kind} name {name:?}: use up to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )));
    }
    Ok(())
}

fn labels(
    s: &str,
    whose: &str,
    flags: &str,
    map: &std::collections::HashMap<String, String>,
) -> Result<(), StoreError> {
    list_len(s, &format!("{whose} labels"), flags, map.len(), MAX_LABELS)?;
    let bytes: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_LABELS_BYTES {
        return Err(more(
            s,
            format!("{whose} labels of {} together", size(bytes as i128)),
            flags,
            size(MAX_LABELS_BYTES as i128),
        ));
    }
    Ok(())
}

fn list_len(s: &str, plural: &str, flags: &str, len: usize, max: usize) -> Result<(), StoreError> {
    at_most(
        s,
        format!("{len} {plural}"),
        flags,
        len as u64,
        max as u64,
        max.to_string(),
    )
}

fn field(s: &str, what: &str, flags: &str, value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(more(
            s,
            format!("{what} of {}", size(value.len() as i128)),
            flags,
            size(MAX_FIELD_BYTES as i128),
        ));
    }
    Ok(())
}

fn at_most(
    s: &str,
    shown: String,
    flags: &str,
    value: u64,
    max: u64,
    max_shown: String,
) -> Result<(), StoreError> {
    if value > max {
        return Err(more(s, shown, flags, max_shown));
    }
    Ok(())
}

fn more(s: &str, shown: String, flags: &str, max: String) -> StoreError {
    refusal(
        s,
        format!("{shown} ({flags}) is more than shoal allows (max {max})"),
    )
}

fn less(s: &str, shown: String, flags: &str, min: String) -> StoreError {
    refusal(
        s,
        format!("{shown} ({flags}) is less than shoal allows (min {min})"),
    )
}

fn refusal(subject: &str, message: String) -> StoreError {
    StoreError::InvalidArgument(if subject.is_empty() {
        message
    } else {
        format!("{subject}: {message}")
    })
}

/// Milliseconds as a Go duration the CLI accepts back: `168h`, `1h30m`,
/// `2s500ms`, `0s`.
fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit_ms, unit) in [(HOUR_MS, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")] {
        if rest >= unit_ms {
            let _ = write!(out, "{}{unit}", rest / unit_ms);
            rest %= unit_ms;
        }
    }
    out
}

/// Bytes in the largest binary unit that divides them: `500 KiB`, `6 MiB`,
/// `1000 bytes`.
fn size(bytes: i128) -> String {
    const UNITS: [(i128, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    if bytes != 0 {
        for (unit, name) in UNITS {
            if bytes % unit == 0 {
                return format!("{} {name}", bytes / unit);
            }
        }
    }
    format!("{bytes} bytes")
}

/// Nano CPUs as the CLI's decimal CPUs: `8192 CPUs`, `0.005 CPUs`.
fn cpus(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let nano = nano.unsigned_abs();
    let whole = nano / NANO_CPUS_PER_CPU as u64;
    let frac = nano % NANO_CPUS_PER_CPU as u64;
    if frac == 0 {
        return format!("{sign}{whole} CPUs");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{whole}.{} CPUs", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{
        EndpointSpec, PlacementPreference, PortConfig, ReplicatedMode, SecretReference,
    };

    /// What a real service looks like: every bounded field set, well inside.
    fn web() -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            labels: [("tier".to_string(), "front".to_string())].into(),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "nginx:1.27".into(),
                    command: vec!["nginx".into()],
                    args: vec!["-g".into(), "daemon off;".into()],
                    env: vec!["MODE=prod".into()],
                    user: "www-data".into(),
                    workdir: "/srv".into(),
                    labels: [("app".to_string(), "web".to_string())].into(),
                    stop_signal: "SIGQUIT".into(),
                    stop_grace_period_ms: 30_000,
                    hostname: "web".into(),
                    dns_config: Some(shoal_proto::types::v1::DnsConfig {
                        nameservers: vec!["10.1.0.53".into()],
                        search: vec!["corp.example".into()],
                        options: vec!["ndots:2".into()],
                    }),
                    healthcheck: None,
                    groups: vec!["www-data".into()],
                    read_only: true,
                    capability_add: vec!["NET_BIND_SERVICE".into()],
                    capability_drop: vec!["ALL".into()],
                    no_new_privileges: true,
                    init: true,
                    ulimits: vec![shoal_proto::types::v1::Ulimit {
                        name: "nofile".into(),
                        soft: 1024,
                        hard: 4096,
                    }],
                    sysctls: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
                    hosts: vec!["10.1.0.9 db".into()],
                    tty: false,
                    open_stdin: false,
                    mounts: vec![shoal_proto::types::v1::Mount {
                        r#type: shoal_proto::types::v1::mount::Type::Tmpfs as i32,
                        target: "/tmp".into(),
                        tmpfs_size_bytes: 64 << 20,
                        ..Default::default()
                    }],
                    registry_auth: Some(shoal_proto::types::v1::RegistryAuth {
                        username: "ci".into(),
                        password: "secret".into(),
                        server: "registry.example:5000".into(),
                    }),
                }),
                restart: Some(RestartPolicy {
                    condition: 0,
                    delay_ms: Some(5_000),
                    max_attempts: 3,
                    window_ms: 120_000,
                }),
                resources: Some(ResourceRequirements {
                    limit_nano_cpus: 2 * NANO_CPUS_PER_CPU,
                    limit_memory_bytes: 512 * MIB as i64,
                    reserve_nano_cpus: NANO_CPUS_PER_CPU / 2,
                    reserve_memory_bytes: 256 * MIB as i64,
                    limit_pids: 100,
                }),
                constraints: vec!["node.role==worker".into()],
                secrets: vec![SecretReference {
                    secret_name: "db-password".into(),
                    target: "db".into(),
                    mode: Some(0o400),
                    ..Default::default()
                }],
                force_update: 0,
                max_replicas_per_node: 0,
                preferences: Vec::new(),
                configs: vec![shoal_proto::types::v1::ConfigReference {
                    config_name: "nginx_conf".into(),
                    target: "/etc/nginx/nginx.conf".into(),
                    ..Default::default()
                }],
                log_driver: Some(shoal_proto::types::v1::LogDriver {
                    name: "json-file".into(),
                    options: [
                        ("max-size".to_string(), "10m".to_string()),
                        ("max-file".to_string(), "3".to_string()),
                    ]
                    .into(),
                }),
            }),
            mode: Some(Mode::Replicated(ReplicatedMode { replicas: 3 })),
            update: Some(UpdateConfig {
                parallelism: 1,
                delay_ms: 10_000,
                monitor_ms: 5_000,
                max_failure_ratio: 0.2,
                ..Default::default()
            }),
            endpoint: Some(EndpointSpec {
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: 8080,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            networks: vec!["backend".into()],
            network_aliases: vec![shoal_proto::types::v1::NetworkAliasesSpec {
                network: "backend".into(),
                aliases: vec!["www".into(), "web.internal".into()],
            }],
            rollback: None,
        }
    }

    fn container(spec: &mut ServiceSpec) -> &mut ContainerSpec {
        spec.task.as_mut().unwrap().container.as_mut().unwrap()
    }
    fn task(spec: &mut ServiceSpec) -> &mut TaskSpec {
        spec.task.as_mut().unwrap()
    }
    fn restart(spec: &mut ServiceSpec) -> &mut RestartPolicy {
        spec.task.as_mut().unwrap().restart.as_mut().unwrap()
    }
    fn res(spec: &mut ServiceSpec) -> &mut ResourceRequirements {
        spec.task.as_mut().unwrap().resources.as_mut().unwrap()
    }
    fn update(spec: &mut ServiceSpec) -> &mut UpdateConfig {
        spec.update.as_mut().unwrap()
    }

    fn message(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    type Case = (fn(&mut ServiceSpec), &'static [&'static str]);

    /// Each case breaks one bound of `web()`; its message must contain each
    /// of the strings (the service, the field, its flag, the limit).
    fn refused(cases: &[Case]) {
        for (i, (break_it, wanted)) in cases.iter().enumerate() {
            let mut spec = web();
            break_it(&mut spec);
            let m = message(service_spec(&spec));
            assert!(m.starts_with("service web: "), "case {i}: {m}");
            for w in *wanted {
                assert!(m.contains(w), "case {i}: {m:?} does not say {w:?}");
            }
        }
    }

    #[test]
    fn the_network_key_rotation_is_between_a_minute_and_a_year() {
        network_key_rotation(MIN_NETWORK_KEY_ROTATION_MS).unwrap();
        network_key_rotation(MAX_NETWORK_KEY_ROTATION_MS).unwrap();
        let short = message(network_key_rotation(1_000));
        assert!(short.contains("--network-key-rotation"), "{short}");
        assert!(short.contains("1m"), "{short}");
        let long = message(network_key_rotation(MAX_NETWORK_KEY_ROTATION_MS + 1));
        assert!(long.contains("8760h"), "{long}");
    }

    #[test]
    fn a_normal_spec_is_accepted() {
        service_spec(&web()).unwrap();
        // Unset fields (defaults) are fine too.
        let mut bare = web();
        bare.task.as_mut().unwrap().restart = None;
        bare.task.as_mut().unwrap().resources = None;
        bare.update = None;
        bare.endpoint = None;
        service_spec(&bare).unwrap();
    }

    #[test]
    fn every_value_at_its_limit_is_accepted() {
        let mut spec = web();
        spec.mode = Some(Mode::Replicated(ReplicatedMode {
            replicas: MAX_REPLICAS,
        }));
        *restart(&mut spec) = RestartPolicy {
            condition: 0,
            delay_ms: Some(MAX_RESTART_DELAY_MS),
            max_attempts: MAX_RESTART_ATTEMPTS,
            window_ms: MAX_RESTART_WINDOW_MS,
        };
        *update(&mut spec) = UpdateConfig {
            parallelism: MAX_UPDATE_PARALLELISM,
            delay_ms: MAX_UPDATE_DELAY_MS,
            monitor_ms: MAX_UPDATE_MONITOR_MS,
            max_failure_ratio: 1.0,
            ..Default::default()
        };
        *res(&mut spec) = ResourceRequirements {
            limit_nano_cpus: MAX_NANO_CPUS,
            limit_memory_bytes: MAX_MEMORY_BYTES,
            reserve_nano_cpus: MAX_NANO_CPUS,
            reserve_memory_bytes: MAX_MEMORY_BYTES,
            limit_pids: MAX_PIDS,
        };
        let c = container(&mut spec);
        c.stop_grace_period_ms = MAX_STOP_GRACE_PERIOD_MS;
        c.hostname = "h".repeat(MAX_HOSTNAME_BYTES);
        c.image = "i".repeat(MAX_FIELD_BYTES);
        c.env = vec!["A=1".into(); MAX_EXEC_ENTRIES];
        c.args = vec!["x".into(); MAX_EXEC_ENTRIES];
        c.labels = (0..MAX_LABELS)
            .map(|i| (format!("l{i}"), String::new()))
            .collect();
        let t = task(&mut spec);
        t.constraints = vec!["node.role==worker".into(); MAX_CONSTRAINTS];
        t.preferences = vec![
            PlacementPreference {
                spread_descriptor: "node.labels.zone".into(),
            };
            MAX_PREFERENCES
        ];
        t.secrets = (0..MAX_SECRET_REFERENCES)
            .map(|i| SecretReference {
                secret_name: format!("s{i}"),
                target: format!("t{i}"),
                mode: Some(MAX_SECRET_MODE),
                ..Default::default()
            })
            .collect();
        spec.endpoint.as_mut().unwrap().ports = vec![PortConfig::default(); MAX_PORTS];
        spec.networks = vec!["n".into(); MAX_NETWORKS];
        spec.networks[0] = "backend".into();
        spec.network_aliases[0].aliases = vec!["a".into(); MAX_ALIASES];
        *dns(&mut spec) = shoal_proto::types::v1::DnsConfig {
            nameservers: vec!["10.0.0.1".into(); MAX_DNS_ENTRIES],
            search: vec![format!("{}.example", "d".repeat(63)); MAX_DNS_ENTRIES],
            options: vec!["o".repeat(64); MAX_DNS_ENTRIES],
        };
        task(&mut spec).log_driver = Some(shoal_proto::types::v1::LogDriver {
            name: "local".into(),
            options: [
                ("max-size".to_string(), "100g".to_string()),
                ("max-file".to_string(), MAX_LOG_FILES.to_string()),
            ]
            .into(),
        });
        service_spec(&spec).unwrap();

        // The smallest limits that mean something, and sizes at the limit.
        let mut spec = web();
        *res(&mut spec) = ResourceRequirements {
            limit_nano_cpus: MIN_LIMIT_NANO_CPUS,
            limit_memory_bytes: MIN_LIMIT_MEMORY_BYTES,
            reserve_nano_cpus: MIN_LIMIT_NANO_CPUS,
            reserve_memory_bytes: MIN_LIMIT_MEMORY_BYTES,
            limit_pids: 0,
        };
        update(&mut spec).max_failure_ratio = 0.0;
        let c = container(&mut spec);
        c.env = vec![format!("A={}", "x".repeat(MAX_EXEC_ENTRY_BYTES - 2))];
        c.command = vec![];
        c.args = vec![];
        c.labels = [("k".to_string(), "v".repeat(MAX_LABELS_BYTES - 1))].into();
        service_spec(&spec).unwrap();
        let mut spec = web();
        let c = container(&mut spec);
        // Each entry counts its terminating NUL.
        c.env = vec!["x".repeat(MAX_EXEC_BYTES / 8 - 1); 8];
        c.command = vec![];
        c.args = vec![];
        service_spec(&spec).unwrap();
    }

    #[test]
    fn durations_over_their_limit_are_refused_naming_the_field_and_the_limit() {
        refused(&[
            (
                |s| restart(s).window_ms = 200_000 * HOUR_MS,
                &[
                    "restart window 200000h",
                    "--restart-window",
                    "deploy.restart_policy.window",
                    "(max 168h)",
                ],
            ),
            (
                |s| restart(s).window_ms = MAX_RESTART_WINDOW_MS + 1,
                &["restart window 168h1ms", "(max 168h)"],
            ),
            (
                |s| restart(s).window_ms = u64::MAX,
                &["restart window", "(max 168h)"],
            ),
            (
                |s| restart(s).delay_ms = Some(MAX_RESTART_DELAY_MS + 1),
                &[
                    "restart delay 168h1ms",
                    "--restart-delay",
                    "deploy.restart_policy.delay",
                    "(max 168h)",
                ],
            ),
            (
                |s| restart(s).delay_ms = Some(u64::MAX),
                &["restart delay", "(max 168h)"],
            ),
            (
                |s| container(s).stop_grace_period_ms = MAX_STOP_GRACE_PERIOD_MS + 1_000,
                &[
                    "stop grace period 168h1s",
                    "--stop-grace-period",
                    "stop_grace_period",
                    "(max 168h)",
                ],
            ),
            (
                |s| update(s).delay_ms = u64::MAX,
                &[
                    "update delay",
                    "--update-delay",
                    "deploy.update_config.delay",
                    "(max 168h)",
                ],
            ),
            (
                |s| update(s).monitor_ms = MAX_UPDATE_MONITOR_MS + 60_000,
                &[
                    "update monitor 168h1m",
                    "--update-monitor",
                    "deploy.update_config.monitor",
                    "(max 168h)",
                ],
            ),
        ]);
    }

    #[test]
    fn malformed_constraints_are_refused_with_dockers_reason() {
        refused(&[
            (
                |s| task(s).constraints = vec!["node.role=manager".into()],
                &[
                    "invalid placement constraint \"node.role=manager\"",
                    "--constraint",
                    "deploy.placement.constraints",
                    "constraint expected one operator from ==, !=",
                ],
            ),
            (
                |s| task(s).constraints = vec!["node role==manager".into()],
                &["key 'node role' is invalid"],
            ),
            (
                |s| task(s).constraints = vec!["node.labels.zone==".into()],
                &["value '' is invalid"],
            ),
            (
                |s| task(s).constraints = vec!["node.labels.zone==>b".into()],
                &["value '>b' is invalid"],
            ),
            (
                |s| task(s).max_replicas_per_node = MAX_REPLICAS + 1,
                &[
                    "10001 replicas per node",
                    "--replicas-max-per-node",
                    "deploy.placement.max_replicas_per_node",
                    "(max 10000)",
                ],
            ),
            (
                |s| {
                    s.mode = Some(Mode::Global(Default::default()));
                    task(s).max_replicas_per_node = 1;
                },
                &["replicas-max-per-node can only be used with replicated mode"],
            ),
        ]);
        let mut spec = web();
        let t = task(&mut spec);
        t.constraints = vec![
            "node.labels.zone == b".into(),
            "node.platform.os!=windows".into(),
            "node.ip==10.0.0.1".into(),
        ];
        t.max_replicas_per_node = 2;
        service_spec(&spec).unwrap();
    }

    fn dns(spec: &mut ServiceSpec) -> &mut shoal_proto::types::v1::DnsConfig {
        spec.task
            .as_mut()
            .unwrap()
            .container
            .as_mut()
            .unwrap()
            .dns_config
            .as_mut()
            .unwrap()
    }

    #[test]
    fn bad_aliases_and_resolver_settings_are_refused_naming_the_flag() {
        refused(&[
            (
                |s| s.network_aliases[0].aliases.push("no spaces".into()),
                &["invalid alias \"no spaces\"", "--network alias="],
            ),
            (
                |s| s.network_aliases[0].network = "front".into(),
                &["aliases for network front", "not attached"],
            ),
            (
                |s| s.network_aliases[0].aliases = vec!["a".into(); MAX_ALIASES + 1],
                &["65 aliases on network backend", "(max 64)"],
            ),
            (
                |s| dns(s).nameservers.push("dns.example".into()),
                &["invalid nameserver \"dns.example\"", "--dns"],
            ),
            (
                |s| dns(s).search.push("-bad..domain".into()),
                &["invalid search domain", "--dns-search"],
            ),
            (
                |s| dns(s).options.push("ndots 2".into()),
                &["invalid resolver option", "--dns-option"],
            ),
            (
                |s| dns(s).nameservers = vec!["10.0.0.1".into(); MAX_DNS_ENTRIES + 1],
                &["17 nameservers", "(max 16)"],
            ),
        ]);
    }

    #[test]
    fn counts_over_their_limit_are_refused_naming_the_field_and_the_limit() {
        refused(&[
            (
                |s| {
                    s.mode = Some(Mode::Replicated(ReplicatedMode {
                        replicas: MAX_REPLICAS + 1,
                    }))
                },
                &[
                    "10001 replicas",
                    "--replicas",
                    "deploy.replicas",
                    "(max 10000)",
                ],
            ),
            (
                |s| restart(s).max_attempts = MAX_RESTART_ATTEMPTS + 1,
                &[
                    "restart max attempts 1001",
                    "--restart-max-attempts",
                    "deploy.restart_policy.max_attempts",
                    "(max 1000; 0 means unlimited)",
                ],
            ),
            (
                |s| update(s).parallelism = u64::MAX,
                &[
                    "update parallelism 18446744073709551615",
                    "--update-parallelism",
                    "deploy.update_config.parallelism",
                    "(max 10000",
                ],
            ),
            (
                |s| s.endpoint.as_mut().unwrap().ports = vec![PortConfig::default(); MAX_PORTS + 1],
                &["10001 published ports", "--publish", "(max 10000)"],
            ),
            (
                |s| s.networks = vec!["n".into(); MAX_NETWORKS + 1],
                &["101 networks", "--network", "(max 100)"],
            ),
            (
                |s| container(s).env = vec!["A=1".into(); MAX_EXEC_ENTRIES + 1],
                &[
                    "1001 environment variables",
                    "--env",
                    "environment",
                    "(max 1000)",
                ],
            ),
            (
                |s| container(s).command = vec!["x".into(); MAX_EXEC_ENTRIES + 1],
                &["1001 entrypoint words", "--entrypoint", "(max 1000)"],
            ),
            (
                |s| container(s).args = vec!["x".into(); MAX_EXEC_ENTRIES + 1],
                &["1001 arguments", "--args", "command", "(max 1000)"],
            ),
            (
                |s| {
                    s.labels = (0..=MAX_LABELS)
                        .map(|i| (format!("l{i}"), String::new()))
                        .collect()
                },
                &[
                    "1001 service labels",
                    "--label",
                    "deploy.labels",
                    "(max 1000)",
                ],
            ),
            (
                |s| {
                    container(s).labels = (0..=MAX_LABELS)
                        .map(|i| (format!("l{i}"), String::new()))
                        .collect()
                },
                &["1001 container labels", "--container-label", "(max 1000)"],
            ),
            (
                |s| task(s).constraints = vec!["node.role==worker".into(); MAX_CONSTRAINTS + 1],
                &[
                    "101 placement constraints",
                    "--constraint",
                    "deploy.placement.constraints",
                    "(max 100)",
                ],
            ),
            (
                |s| task(s).secrets = vec![SecretReference::default(); MAX_SECRET_REFERENCES + 1],
                &["101 secrets", "--secret", "(max 100)"],
            ),
            (
                |s| task(s).secrets[0].mode = Some(0o10000),
                &["secret mode 0o10000", "--secret mode=", "(max 0o7777)"],
            ),
        ]);
    }

    #[test]
    fn sizes_over_their_limit_are_refused_naming_the_field_and_the_limit() {
        refused(&[
            (
                |s| container(s).env = vec![format!("BIG={}", "x".repeat(MAX_EXEC_ENTRY_BYTES))],
                &["environment variable BIG of", "--env", "(max 128 KiB)"],
            ),
            (
                |s| container(s).args = vec!["x".into(), "x".repeat(MAX_EXEC_ENTRY_BYTES + 1)],
                &["argument #2 of", "--args", "(max 128 KiB)"],
            ),
            (
                |s| container(s).env = vec!["x".repeat(MAX_EXEC_ENTRY_BYTES); 9],
                &[
                    "entrypoint, arguments and environment of",
                    "--env",
                    "(max 1 MiB)",
                ],
            ),
            (
                |s| s.labels = [("k".to_string(), "v".repeat(MAX_LABELS_BYTES))].into(),
                &["service labels of 65537 bytes", "--label", "(max 64 KiB)"],
            ),
            (
                |s| container(s).image = "i".repeat(MAX_FIELD_BYTES + 1),
                &["image of 4097 bytes", "image", "(max 4 KiB)"],
            ),
            (
                |s| container(s).hostname = "h".repeat(MAX_HOSTNAME_BYTES + 1),
                &["hostname of 65 bytes", "--hostname", "(max 64 bytes)"],
            ),
            (
                |s| container(s).workdir = "/".repeat(MAX_FIELD_BYTES + 1),
                &["working directory", "--workdir", "(max 4 KiB)"],
            ),
            (
                |s| task(s).constraints = vec!["c".repeat(MAX_FIELD_BYTES + 1)],
                &["placement constraint of", "--constraint", "(max 4 KiB)"],
            ),
            (
                |s| task(s).secrets[0].target = "t".repeat(MAX_FIELD_BYTES + 1),
                &["secret target of", "--secret target=", "(max 4 KiB)"],
            ),
            (
                |s| s.networks = vec!["n".repeat(MAX_FIELD_BYTES + 1)],
                &["network name of", "--network", "(max 4 KiB)"],
            ),
            (
                |s| log_opt(s, "max-size", "101g"),
                &["max-size of 101 GiB", "--log-opt", "(max 100 GiB)"],
            ),
        ]);
    }

    fn log_opt(spec: &mut ServiceSpec, key: &str, value: &str) {
        let driver = task(spec).log_driver.get_or_insert_with(Default::default);
        driver.options.insert(key.into(), value.into());
    }

    #[test]
    fn logging_drivers_and_their_options_are_checked_with_the_task() {
        refused(&[
            (
                |s| task(s).log_driver.as_mut().unwrap().name = "gelf".into(),
                &["logging driver \"gelf\" is not supported", "--log-driver"],
            ),
            (
                |s| log_opt(s, "tag", "{{.Name}}"),
                &["log opt 'tag'", "not supported by shoal", "--log-opt"],
            ),
            (
                |s| log_opt(s, "max-file", "0"),
                &["max-file cannot be less than 1", "logging.options"],
            ),
        ]);
    }

    #[test]
    fn resources_are_refused_when_negative_absurd_or_limits_below_reservations() {
        refused(&[
            (
                |s| res(s).limit_memory_bytes = -1,
                &[
                    "memory limit -1 bytes",
                    "--limit-memory",
                    "deploy.resources.limits.memory",
                    "(min 6 MiB; 0 means no limit)",
                ],
            ),
            (
                |s| res(s).limit_memory_bytes = 1024,
                &["memory limit 1 KiB", "is less than shoal allows (min 6 MiB"],
            ),
            (
                |s| res(s).reserve_memory_bytes = -5,
                &["memory reservation -5 bytes", "--reserve-memory", "(min 0)"],
            ),
            (
                |s| res(s).limit_memory_bytes = i64::MAX,
                &["memory limit", "--limit-memory", "(max 64 TiB)"],
            ),
            (
                |s| res(s).reserve_memory_bytes = MAX_MEMORY_BYTES + 1,
                &["memory reservation", "(max 64 TiB)"],
            ),
            (
                |s| res(s).limit_nano_cpus = -NANO_CPUS_PER_CPU,
                &[
                    "CPU limit -1 CPUs",
                    "--limit-cpu",
                    "deploy.resources.limits.cpus",
                    "(min 0.01 CPUs; 0 means no limit)",
                ],
            ),
            (
                |s| res(s).limit_nano_cpus = 5_000_000,
                &["CPU limit 0.005 CPUs", "(min 0.01 CPUs"],
            ),
            (
                |s| res(s).reserve_nano_cpus = i64::MIN,
                &["CPU reservation", "--reserve-cpu", "(min 0)"],
            ),
            (
                |s| res(s).reserve_nano_cpus = MAX_NANO_CPUS + 1,
                &["CPU reservation 8192.000000001 CPUs", "(max 8192 CPUs)"],
            ),
            (
                |s| res(s).limit_memory_bytes = 128 * MIB as i64,
                &[
                    "memory limit 128 MiB (--limit-memory",
                    "is below the memory reservation 256 MiB (--reserve-memory",
                ],
            ),
            (
                |s| res(s).limit_nano_cpus = NANO_CPUS_PER_CPU / 4,
                &[
                    "CPU limit 0.25 CPUs",
                    "is below the CPU reservation 0.5 CPUs",
                ],
            ),
            (
                |s| res(s).limit_pids = -1,
                &["pids limit -1", "--limit-pids", "(min 0)"],
            ),
            (
                |s| res(s).limit_pids = MAX_PIDS + 1,
                &[
                    "pids limit 4194305",
                    "deploy.resources.limits.pids",
                    "(max 4194304)",
                ],
            ),
            (
                |s| {
                    task(s).preferences = vec![PlacementPreference {
                        spread_descriptor: "node.zone".into(),
                    }]
                },
                &[
                    "invalid placement preference spread=node.zone (--placement-pref",
                    "is not a node attribute",
                ],
            ),
            (
                |s| {
                    task(s).preferences = vec![
                        PlacementPreference {
                            spread_descriptor: "node.labels.zone".into(),
                        };
                        MAX_PREFERENCES + 1
                    ]
                },
                &["17 placement preferences", "(max 16)"],
            ),
            (
                |s| update(s).max_failure_ratio = 1.5,
                &[
                    "update max failure ratio 1.5",
                    "--update-max-failure-ratio",
                    "deploy.update_config.max_failure_ratio",
                    "not between 0 and 1",
                ],
            ),
            (
                |s| update(s).max_failure_ratio = f32::NAN,
                &["update max failure ratio NaN", "not between 0 and 1"],
            ),
            (
                |s| update(s).max_failure_ratio = f32::INFINITY,
                &["update max failure ratio inf", "not between 0 and 1"],
            ),
            (
                |s| update(s).max_failure_ratio = -0.1,
                &["update max failure ratio -0.1", "not between 0 and 1"],
            ),
        ]);
        // A reservation without a limit is fine.
        let mut spec = web();
        res(&mut spec).limit_memory_bytes = 0;
        res(&mut spec).limit_nano_cpus = 0;
        service_spec(&spec).unwrap();
    }

    #[test]
    fn cert_expiry_is_whole_hours_between_one_hour_and_ten_years() {
        assert_eq!(cert_expiry(HOUR_MS).unwrap(), 1);
        assert_eq!(cert_expiry(2160 * HOUR_MS).unwrap(), 2160);
        assert_eq!(cert_expiry(MAX_CERT_EXPIRY_MS).unwrap(), 87_600);
        for (ms, wanted) in [
            (
                0,
                "certificate expiry 0s (--cert-expiry) is less than shoal allows (min 1h)",
            ),
            (
                HOUR_MS - 1,
                "certificate expiry 59m59s999ms (--cert-expiry) is less than shoal allows (min 1h)",
            ),
            (
                MAX_CERT_EXPIRY_MS + HOUR_MS,
                "certificate expiry 87601h (--cert-expiry) is more than shoal allows (max 87600h)",
            ),
            (
                u64::MAX,
                "(--cert-expiry) is more than shoal allows (max 87600h)",
            ),
            (
                HOUR_MS + 1_000,
                "certificate expiry 1h1s (--cert-expiry) is not a whole number of hours",
            ),
        ] {
            let m = message(cert_expiry(ms).map(|_| ()));
            assert!(m.contains(wanted), "{ms}: {m}");
        }
    }

    #[test]
    fn secrets_over_500_kib_are_refused() {
        let mut spec = SecretSpec {
            name: "db".into(),
            data: vec![7; MAX_SECRET_BYTES],
            ..Default::default()
        };
        secret_spec(&spec).unwrap();
        spec.data.push(7);
        let m = message(secret_spec(&spec));
        assert!(m.starts_with("secret db: value of 512001 bytes"), "{m}");
        assert!(m.contains("secret create FILE"), "{m}");
        assert!(m.contains("is more than shoal allows (max 500 KiB)"), "{m}");
        spec.data.clear();
        let m = message(secret_spec(&spec));
        assert!(m.contains("secret db: the value"), "{m}");
        spec.data = b"x".to_vec();
        spec.labels = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), String::new()))
            .collect();
        let m = message(secret_spec(&spec));
        assert!(
            m.contains("1001 secret labels") && m.contains("(max 1000)"),
            "{m}"
        );
    }

    #[test]
    fn heartbeat_period_is_between_100ms_and_an_hour() {
        heartbeat_period(0).unwrap();
        heartbeat_period(MIN_HEARTBEAT_PERIOD_MS).unwrap();
        heartbeat_period(5_000).unwrap();
        heartbeat_period(MAX_HEARTBEAT_PERIOD_MS).unwrap();
        let m = message(heartbeat_period(99));
        assert!(
            m.contains("dispatcher heartbeat period 99ms (--dispatcher-heartbeat) is less than shoal allows (min 100ms)"),
            "{m}"
        );
        let m = message(heartbeat_period(u32::MAX));
        assert!(
            m.contains("(--dispatcher-heartbeat) is more than shoal allows (max 1h)"),
            "{m}"
        );
    }

    #[test]
    fn no_bounded_duration_overflows_millisecond_arithmetic() {
        // The orchestrator adds these to and subtracts them from unix ms.
        // 9999-12-31, in unix ms: later than any clock shoal will read.
        let now: i64 = 253_402_300_799_000;
        for max in [
            MAX_RESTART_DELAY_MS,
            MAX_RESTART_WINDOW_MS,
            MAX_STOP_GRACE_PERIOD_MS,
            MAX_UPDATE_DELAY_MS,
            MAX_UPDATE_MONITOR_MS,
            MAX_CERT_EXPIRY_MS,
        ] {
            let max = i64::try_from(max).unwrap();
            assert!(now.checked_add(max).is_some() && now.checked_sub(max).is_some());
            assert!((-now).checked_sub(max).is_some());
        }
        let tasks = i64::try_from(MAX_REPLICAS).unwrap();
        assert!(MAX_MEMORY_BYTES.checked_mul(tasks).is_some());
        assert!(MAX_NANO_CPUS.checked_mul(tasks).is_some());
    }

    #[test]
    fn values_print_as_the_cli_writes_them() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(168 * HOUR_MS), "168h");
        assert_eq!(duration(5_400_000), "1h30m");
        assert_eq!(duration(2_500), "2s500ms");
        assert_eq!(size(500 * 1024), "500 KiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(size(0), "0 bytes");
        assert_eq!(cpus(1_500_000_000), "1.5 CPUs");
        assert_eq!(cpus(0), "0 CPUs");
    }

    fn health(spec: &mut ServiceSpec) -> &mut HealthConfig {
        container(spec)
            .healthcheck
            .get_or_insert_with(HealthConfig::default)
    }

    #[test]
    fn health_checks_take_dockers_forms_and_bounds() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for test in [
            words(&[]),
            words(&["NONE"]),
            words(&["CMD", "curl", "-f", "http://localhost/"]),
            words(&["CMD-SHELL", "test -f /tmp/ok"]),
        ] {
            let mut spec = web();
            *health(&mut spec) = HealthConfig {
                test,
                interval_ms: MAX_HEALTH_DURATION_MS,
                timeout_ms: 1,
                retries: MAX_HEALTH_RETRIES,
                start_period_ms: 0,
                start_interval_ms: 1000,
            };
            service_spec(&spec).unwrap();
        }
        refused(&[
            (
                |s| health(s).test = vec!["BOGUS".into(), "x".into()],
                &[
                    "health check test",
                    "--health-cmd",
                    "NONE, CMD or CMD-SHELL",
                ],
            ),
            (
                |s| health(s).test = vec!["CMD".into()],
                &["needs a command", "healthcheck.test"],
            ),
            (
                |s| health(s).test = vec!["CMD-SHELL".into(), "a".into(), "b".into()],
                &["exactly one"],
            ),
            (
                |s| health(s).test = vec!["NONE".into(), "x".into()],
                &["nothing after NONE"],
            ),
            (
                |s| health(s).interval_ms = MAX_HEALTH_DURATION_MS + 1,
                &["health check interval", "--health-interval", "max 24h"],
            ),
            (
                |s| health(s).timeout_ms = MAX_HEALTH_DURATION_MS + 1,
                &["--health-timeout, healthcheck.timeout"],
            ),
            (
                |s| health(s).start_period_ms = MAX_HEALTH_DURATION_MS + 1,
                &["--health-start-period"],
            ),
            (
                |s| health(s).start_interval_ms = MAX_HEALTH_DURATION_MS + 1,
                &["--health-start-interval"],
            ),
            (
                |s| health(s).retries = MAX_HEALTH_RETRIES + 1,
                &["health check retries 1001", "--health-retries", "max 1000"],
            ),
        ]);
    }
}
