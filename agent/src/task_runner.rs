//! One task's life on this node: prepare (pull, network namespace, create),
//! start, watch until it exits or is told to stop, then clean up (container
//! and namespace go; the task's logs stay). Every state reached is
//! reported. A runner that finds its container already running (the agent
//! restarted) adopts it instead of starting another.
//!
//! A task with a health check (`crate::health`) follows swarmkit's rule: it
//! stays `starting` (health `starting`) until its first healthy probe, then
//! runs (health `healthy`); once unhealthy it leaves the load balancers, is
//! stopped and fails ("unhealthy container: <the probe's output>"), so its
//! restart policy replaces it. Health changes are reported as they happen,
//! with the timestamp of the state they happen in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::netd::v1::{AttachTaskRequest, DetachTaskRequest};
use shoal_proto::types::v1::{ContainerStatus, HealthState, Task, TaskState, TaskStatus};
use tokio::sync::{mpsc, watch};

use crate::executor::{self, ContainerRun, Executor};
use crate::health::{self, Check, ContainerProbe, Health, HealthChange, Monitor, SinceStart};
use crate::reporter::Reporter;

/// What every runner shares.
pub struct Context {
    pub executor: Executor,
    pub netd_socket: PathBuf,
    pub reporter: Reporter,
    /// This node's hostname, for tasks' `{{.Node.Hostname}}`.
    pub node_hostname: String,
    /// How long a task that takes traffic stays up after it left the load
    /// balancers ([`DRAIN_GRACE`] unless the agent is told otherwise).
    pub drain_grace: Duration,
    /// The secrets the managers sent for this node's tasks, by id.
    pub secrets: std::sync::RwLock<HashMap<String, shoal_proto::types::v1::Secret>>,
    /// The configs, likewise.
    pub configs: std::sync::RwLock<HashMap<String, shoal_proto::types::v1::Config>>,
    /// One pull per image at a time: fifty tasks of one image pull it once.
    pulls: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Context {
    pub fn new(
        executor: Executor,
        netd_socket: PathBuf,
        reporter: Reporter,
        node_hostname: String,
    ) -> Self {
        Context {
            executor,
            netd_socket,
            reporter,
            node_hostname,
            drain_grace: DRAIN_GRACE,
            secrets: std::sync::RwLock::new(HashMap::new()),
            configs: std::sync::RwLock::new(HashMap::new()),
            pulls: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// With the service's `--with-registry-auth` credentials, if it has them
    /// (held in memory only, for the pull).
    async fn pull(
        &self,
        image: &str,
        auth: Option<&shoal_proto::types::v1::RegistryAuth>,
    ) -> Result<(), String> {
        let lock = self
            .pulls
            .lock()
            .await
            .entry(image.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        let auth = auth.map(|a| (a.username.as_str(), a.password.as_str()));
        self.executor
            .pull(image, auth)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Runner {
    ctx: Arc<Context>,
    id: String,
    /// The latest assignment; closed when the task is no longer assigned.
    task: watch::Receiver<Task>,
    observed: TaskState,
    /// When `observed` was reached (0: not by this runner).
    since: i64,
    /// The container's health and the last failing probe's output (for a
    /// task with a check).
    health: HealthState,
    health_output: String,
}

/// A running health monitor: its changes, and the probing stopped when
/// this is dropped.
struct Probing {
    changes: mpsc::UnboundedReceiver<HealthChange>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next change of health; never, without a check.
async fn next_change(probing: &mut Option<Probing>) -> Option<HealthChange> {
    match probing {
        Some(p) => p.changes.recv().await,
        None => std::future::pending().await,
    }
}

/// The message of a report that only changes the task's health.
fn message_of(state: TaskState) -> &'static str {
    match state {
        TaskState::Running => "started",
        _ => "starting",
    }
}

impl Runner {
    fn report(
        &mut self,
        state: TaskState,
        message: &str,
        err: &str,
        container: Option<ContainerStatus>,
    ) {
        // A report that changes only the health keeps the time of its state
        // ("Running (healthy) 5 minutes ago").
        if state != self.observed || self.since == 0 {
            self.since = now_millis();
        }
        self.observed = state;
        self.ctx.reporter.report(
            &self.id,
            TaskStatus {
                state: state as i32,
                timestamp: self.since,
                message: message.to_string(),
                err: err.to_string(),
                container,
                health: self.health as i32,
                health_output: self.health_output.clone(),
            },
        );
    }

    /// Starts probing the container if the task has a health check (the
    /// service's over the image's); `health` is where it starts.
    async fn probe(&mut self, health: Health) -> Option<Probing> {
        let container = self
            .task
            .borrow()
            .spec
            .as_ref()
            .and_then(|s| s.container.clone())
            .unwrap_or_default();
        let image = match self.ctx.executor.image_healthcheck(&container.image).await {
            Ok(image) => image,
            Err(e) => {
                tracing::warn!("the health check of {}'s image: {e}", self.id);
                None
            }
        };
        let check = Check::effective(container.healthcheck.as_ref(), image.as_ref())?;
        let probe = ContainerProbe {
            executor: self.ctx.executor.clone(),
            container_id: self.id.clone(),
        };
        let timer = SinceStart(tokio::time::Instant::now());
        let (task, changes) = health::spawn(Monitor::new(check, health), probe, timer);
        Some(Probing { changes, task })
    }

    fn desired(&self) -> TaskState {
        self.task.borrow().desired()
    }

    fn container_status(&self, pid: u32, exit_code: i32) -> Option<ContainerStatus> {
        Some(ContainerStatus {
            container_id: self.id.clone(),
            pid,
            exit_code,
        })
    }

    /// Writes the task's secrets and configs; (host file, container path) pairs.
    /// Templated configs render with the task's `context` and `env`.
    fn task_files(
        &self,
        task: &Task,
        context: &serde_json::Value,
        env: &[String],
    ) -> Result<Vec<(PathBuf, String)>, String> {
        let spec = task.spec.clone().unwrap_or_default();
        let mut files = {
            let secrets = self.ctx.secrets.read().unwrap_or_else(|e| e.into_inner());
            crate::task_files::secrets(&spec.secrets, &secrets)?
        };
        {
            let configs = self.ctx.configs.read().unwrap_or_else(|e| e.into_inner());
            // What `{{config "TARGET"}}` reads: the task's configs as stored.
            let raw: Vec<(String, Vec<u8>)> =
                crate::task_files::configs(&spec.configs, &configs, |c| {
                    Ok(c.spec.as_ref().map(|s| s.data.clone()).unwrap_or_default())
                })?
                .into_iter()
                .map(|f| (f.target, f.data))
                .collect();
            let rendered = crate::task_files::configs(&spec.configs, &configs, |c| {
                crate::task_templates::render_config(c, context, env, &files, &raw)
            })?;
            files.extend(rendered);
        }
        crate::task_files::materialize(&self.ctx.executor.config().state_dir, &self.id, &files)
    }

    /// Prepares and starts the container; `Err` carries the user-facing error.
    async fn start(&mut self) -> Result<u32, (TaskState, String)> {
        let task = self.task.borrow().clone();
        let container = task
            .spec
            .as_ref()
            .and_then(|s| s.container.clone())
            .unwrap_or_default();
        self.report(TaskState::Preparing, "preparing", "", None);
        self.ctx
            .pull(&container.image, container.registry_auth.as_ref())
            .await
            .map_err(|e| (TaskState::Rejected, e))?;
        let mut netd = crate::local_api::netd(&self.ctx.netd_socket)
            .map_err(|e| (TaskState::Rejected, format!("netd: {e}")))?;
        let hostname = task.hostname(&self.ctx.node_hostname);
        let dns = container.dns_config.clone().unwrap_or_default();
        let attached = netd
            .attach_task(AttachTaskRequest {
                task_id: self.id.clone(),
                networks: task.networks.clone(),
                hostname: hostname.clone(),
                dns_upstreams: dns.nameservers.clone(),
            })
            .await
            .map_err(|e| {
                (
                    TaskState::Rejected,
                    format!("network attachment: {}", e.message()),
                )
            })?
            .into_inner();
        let context = shoal_proto::placeholders::context(&task, &self.ctx.node_hostname);
        let env = crate::task_templates::env(&container.env, &context)
            .map_err(|e| (TaskState::Rejected, e))?;
        let read_only_files = self
            .task_files(&task, &context, &env)
            .map_err(|e| (TaskState::Rejected, e))?;
        let address = task
            .networks
            .first()
            .and_then(|a| a.address.split('/').next())
            .and_then(|ip| ip.parse().ok());
        let mut run = ContainerRun {
            id: self.id.clone(),
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone(),
            env,
            user: container.user.clone(),
            workdir: container.workdir.clone(),
            labels: container.labels.clone(),
            service_id: task.service_id.clone(),
            service_name: task.service_name.clone(),
            hostname,
            netns: Some(PathBuf::from(&attached.netns_path)),
            address,
            // The embedded DNS server answers service names and forwards
            // the rest (to the task's own nameservers, if it has any).
            dns_servers: attached.dns_server.parse().into_iter().collect(),
            dns_search: dns.search.clone(),
            // Docker's default in swarm tasks: a name with dots is asked
            // as it is first, not after every search domain.
            dns_options: if dns.options.is_empty() {
                vec!["ndots:0".into()]
            } else {
                dns.options.clone()
            },
            stop_signal: container.stop_signal.clone(),
            read_only_files,
            limits: limits_of(&task),
            stop_grace: Duration::from_millis(if container.stop_grace_period_ms == 0 {
                10_000
            } else {
                container.stop_grace_period_ms
            }),
            ..Default::default()
        };
        crate::container_options::apply(&mut run, &container, &context)
            .map_err(|e| (TaskState::Rejected, e))?;
        run.logs = crate::container_options::logs(task.spec.as_ref())
            .map_err(|e| (TaskState::Rejected, e))?;
        self.ctx
            .executor
            .create(&run)
            .await
            .map_err(|e| (TaskState::Rejected, e.to_string()))?;
        self.report(TaskState::Starting, "starting", "", None);
        self.ctx
            .executor
            .start(&self.id)
            .await
            .map_err(|e| (TaskState::Failed, e.to_string()))
    }

    /// Removes what the task left on this node; best effort, errors logged.
    async fn clean_up(&self) {
        if let Err(e) = self.ctx.executor.remove(&self.id).await {
            tracing::warn!("remove container {}: {e}", self.id);
        }
        let state_dir = &self.ctx.executor.config().state_dir;
        if let Err(e) = crate::task_files::remove(state_dir, &self.id) {
            tracing::warn!("remove the secrets of {}: {e}", self.id);
        }
        match crate::local_api::netd(&self.ctx.netd_socket) {
            Ok(mut netd) => {
                let request = DetachTaskRequest {
                    task_id: self.id.clone(),
                };
                if let Err(e) = netd.detach_task(request).await {
                    tracing::warn!("detach network of {}: {}", self.id, e.message());
                }
            }
            Err(e) => tracing::warn!("netd: {e}"),
        }
    }

    /// Out of the load balancers before the stop, so that no new
    /// connection meets a container on its way out. This node's netd
    /// drains it at once; the other nodes' netds drop it when the managers'
    /// view says it is stopping, which they learn at the same commit as
    /// this agent: a task that takes traffic waits the drain grace for
    /// them (and for requests in flight) before it is stopped.
    async fn drain(&self) {
        let Ok(mut netd) = crate::local_api::netd(&self.ctx.netd_socket) else {
            return;
        };
        let request = shoal_proto::netd::v1::DrainTaskRequest {
            task_id: self.id.clone(),
        };
        if let Err(e) = netd.drain_task(request).await {
            tracing::warn!("drain {} from the load balancers: {}", self.id, e.message());
        }
        if takes_traffic(&self.task.borrow()) {
            tokio::time::sleep(self.ctx.drain_grace).await;
        }
    }

    /// Waits for the running container to exit, or stops it when told to
    /// or when its health check finds it unhealthy.
    async fn supervise(&mut self, pid: u32, mut probing: Option<Probing>) {
        let executor = self.ctx.executor.clone();
        let id = self.id.clone();
        let exited = executor.wait(&id);
        tokio::pin!(exited);
        loop {
            if self.desired() > TaskState::Running {
                drop(probing.take());
                self.drain().await;
                if let Err(e) = self.ctx.executor.stop(&self.id).await {
                    tracing::warn!("stop {}: {e}", self.id);
                }
                let code = exited.await.unwrap_or(-1);
                self.clean_up().await;
                let status = self.container_status(pid, code);
                self.report(TaskState::Shutdown, "shutdown", "", status);
                return;
            }
            tokio::select! {
                code = &mut exited => {
                    // Read before the task goes: its cgroup goes with it.
                    let oom = self.ctx.executor.oom_killed(&self.id);
                    self.clean_up().await;
                    match code {
                        Ok(0) => {
                            let status = self.container_status(pid, 0);
                            self.report(TaskState::Complete, "finished", "", status);
                        }
                        Ok(code) => {
                            let status = self.container_status(pid, code);
                            let err = exit_error(code, oom, &self.task.borrow());
                            self.report(TaskState::Failed, "failed", &err, status);
                        }
                        Err(e) => {
                            let err = e.to_string();
                            self.report(TaskState::Failed, "failed", &err, None);
                        }
                    }
                    return;
                }
                change = next_change(&mut probing) => {
                    let Some(change) = change else {
                        probing = None;
                        continue;
                    };
                    if change.health == Health::Healthy {
                        self.health = HealthState::Healthy;
                        self.health_output.clear();
                        self.report(TaskState::Running, "started", "", self.container_status(pid, 0));
                        continue;
                    }
                    // Unhealthy: out of the load balancers first (the managers'
                    // view drops it at this report, this node's netd at the
                    // drain), then stopped, then failed.
                    drop(probing.take());
                    self.health = HealthState::Unhealthy;
                    self.health_output = change.output.clone();
                    let state = self.observed;
                    self.report(state, message_of(state), "", self.container_status(pid, 0));
                    tracing::info!("task {} is unhealthy: {}", self.id, change.output);
                    self.drain().await;
                    if let Err(e) = self.ctx.executor.stop(&self.id).await {
                        tracing::warn!("stop {}: {e}", self.id);
                    }
                    let code = exited.await.unwrap_or(-1);
                    self.clean_up().await;
                    let err = if change.output.is_empty() {
                        "unhealthy container".to_string()
                    } else {
                        format!("unhealthy container: {}", change.output)
                    };
                    let status = self.container_status(pid, code);
                    self.report(TaskState::Failed, "unhealthy", &err, status);
                    return;
                }
                changed = self.task.changed() => {
                    if changed.is_err() {
                        // No longer assigned at all: stop it.
                        drop(probing.take());
                        self.drain().await;
                        let _ = self.ctx.executor.stop(&self.id).await;
                        let _ = (&mut exited).await;
                        self.clean_up().await;
                        return;
                    }
                }
            }
        }
    }

    async fn run(mut self) {
        // Adopt a container left by an earlier agent.
        let existing = self.ctx.executor.inspect(&self.id).await.ok().flatten();
        if let Some(info) = existing {
            match (info.status, info.pid) {
                (executor::TaskStatus::Running, Some(pid)) => {
                    let health = if self.health == HealthState::Healthy {
                        Health::Healthy
                    } else {
                        Health::Starting
                    };
                    let probing = self.probe(health).await;
                    if self.observed < TaskState::Running {
                        let status = self.container_status(pid, 0);
                        if probing.is_some() {
                            self.health = HealthState::Starting;
                            self.report(TaskState::Starting, "starting", "", status);
                        } else {
                            self.report(TaskState::Running, "running", "", status);
                        }
                    }
                    self.supervise(pid, probing).await;
                }
                _ => {
                    // It ended while nobody watched.
                    let code = info.exit_code.unwrap_or(-1);
                    let oom = self.ctx.executor.oom_killed(&self.id);
                    self.clean_up().await;
                    let status = self.container_status(info.pid.unwrap_or(0), code);
                    if !self.observed.is_terminal() {
                        if code == 0 {
                            self.report(TaskState::Complete, "finished", "", status);
                        } else {
                            let err = exit_error(code, oom, &self.task.borrow());
                            self.report(TaskState::Failed, "failed", &err, status);
                        }
                    }
                }
            }
            return self.linger().await;
        }
        if self.observed >= TaskState::Preparing && !self.observed.is_terminal() {
            // An earlier agent got this task going, but its container is
            // gone: the task failed; the orchestrator gives the slot a new one.
            self.clean_up().await;
            let err = "the task's container disappeared (the agent restarted?)";
            self.report(TaskState::Failed, "failed", err, None);
            return self.linger().await;
        }
        if self.observed.is_terminal() || self.desired() > TaskState::Running {
            if !self.observed.is_terminal() {
                self.report(TaskState::Shutdown, "shutdown", "", None);
            }
            self.clean_up().await;
            return self.linger().await;
        }
        if self.observed < TaskState::Accepted {
            self.report(TaskState::Accepted, "accepted", "", None);
        }
        match self.start().await {
            Ok(pid) => {
                let status = self.container_status(pid, 0);
                let probing = self.probe(Health::Starting).await;
                if probing.is_some() {
                    // Starting until the first healthy probe.
                    self.health = HealthState::Starting;
                    self.report(TaskState::Starting, "starting", "", status);
                } else {
                    self.report(TaskState::Running, "started", "", status);
                }
                self.supervise(pid, probing).await;
            }
            Err((state, err)) => {
                self.clean_up().await;
                self.report(state, "could not start", &err, None);
            }
        }
        self.linger().await
    }

    /// A finished task stays until the dispatcher stops assigning it.
    async fn linger(mut self) {
        while self.task.changed().await.is_ok() {}
    }
}

/// Starts the runner of a newly assigned task; the sender updates it, and
/// dropping the sender retires it.
pub fn spawn(ctx: Arc<Context>, task: Task) -> watch::Sender<Task> {
    let id = task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    let observed = task.observed_state();
    let status = task.status.clone().unwrap_or_default();
    let (tx, rx) = watch::channel(task);
    let runner = Runner {
        ctx,
        id,
        task: rx,
        observed,
        since: 0,
        health: status.health(),
        health_output: status.health_output,
    };
    tokio::spawn(runner.run());
    tx
}

/// The task's cgroup limits from its spec.
fn limits_of(task: &Task) -> executor::Limits {
    let r = task
        .spec
        .as_ref()
        .and_then(|s| s.resources)
        .unwrap_or_default();
    executor::Limits {
        memory_bytes: r.limit_memory_bytes,
        nano_cpus: r.limit_nano_cpus,
        pids: r.limit_pids,
    }
}

/// Swarm's `task: non-zero exit (137)`, with the reason when the OOM
/// killer struck (docker's `OOMKilled`) and the limit it hit.
fn exit_error(code: i32, oom_killed: bool, task: &Task) -> String {
    if !oom_killed {
        return format!("task: non-zero exit ({code})");
    }
    let limit = limits_of(task).memory_bytes;
    if limit > 0 {
        let mib = limit as f64 / (1024.0 * 1024.0);
        format!("task: non-zero exit ({code}): OOMKilled (memory limit {mib}MiB)")
    } else {
        format!("task: non-zero exit ({code}): OOMKilled")
    }
}

/// How long a task that takes traffic stays up after it left the load
/// balancers: the other nodes apply a view within milliseconds of its
/// commit, but a loaded node has been seen to take longer than 300 ms,
/// and a connection begun in that window to a task already gone times out
/// (its retransmitted SYNs follow the same conntrack entry). This leaves
/// room for a loaded node and for short requests already in flight
/// (`shoal-agent --drain-grace-ms` gives slower hosts more); the real fix
/// is to stop only once every node applied the view.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Whether other tasks reach this one through a load balancer: it
/// publishes ports (routing mesh), or it is on a network other than
/// ingress (VIPs and DNS answers there name it). Tasks only on ingress
/// with nothing published are stopped at once.
fn takes_traffic(task: &shoal_proto::types::v1::Task) -> bool {
    !task.endpoint_ports.is_empty() || task.networks.iter().any(|n| n.network_name != "ingress")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{ResourceRequirements, TaskSpec};

    #[test]
    fn an_oom_kill_says_so_with_the_limit() {
        let mut task = Task {
            spec: Some(TaskSpec {
                resources: Some(ResourceRequirements {
                    limit_memory_bytes: 16 << 20,
                    limit_pids: 50,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_error(1, false, &task), "task: non-zero exit (1)");
        assert_eq!(
            exit_error(137, true, &task),
            "task: non-zero exit (137): OOMKilled (memory limit 16MiB)"
        );
        assert_eq!(limits_of(&task).pids, 50);
        task.spec = None;
        assert_eq!(
            exit_error(137, true, &task),
            "task: non-zero exit (137): OOMKilled"
        );
    }
}
