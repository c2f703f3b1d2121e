//! The agent's session with the managers: open the dispatcher session,
//! apply assignments as they stream in (one runner per task), heartbeat,
//! and reconnect with backoff when the session breaks. Containers of tasks
//! the managers no longer assign are removed after a complete assignment.
//! The agent also renews the node's certificate (see [`crate::renewal`]);
//! a renewed identity reopens the session with it, without touching tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::{assignments::Kind, HeartbeatRequest, SessionRequest};
use shoal_proto::types::v1::{NodeDescription, Task};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::renewal::Wanted;
use crate::task_runner::{self, Context};

pub struct AgentConfig {
    pub node_dir: PathBuf,
    pub manager: String,
    /// The control socket of this host's manager process, which the agent
    /// starts or stops as a manager when the node is promoted or demoted.
    pub manager_socket: PathBuf,
    pub hostname: String,
    /// The address other nodes reach this node on; empty lets the manager
    /// use the address the session comes from.
    pub advertise_addr: String,
}

pub struct Agent {
    config: AgentConfig,
    ctx: Arc<Context>,
    runners: HashMap<String, watch::Sender<Task>>,
    session: watch::Sender<Option<(DispatcherClient<Channel>, String)>>,
    /// What the managers want of the node's certificate, for the renewal.
    wanted: watch::Sender<Wanted>,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        ctx: Arc<Context>,
        session: watch::Sender<Option<(DispatcherClient<Channel>, String)>>,
    ) -> Self {
        Agent {
            config,
            ctx,
            runners: HashMap::new(),
            session,
            wanted: watch::Sender::new(Wanted::default()),
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let mut live: Option<Arc<LiveIdentity>> = None;
        let mut backoff = Duration::from_millis(100);
        // The configured manager first; the others the managers name later.
        let mut managers = vec![self.config.manager.clone()];
        let mut next = 0;
        loop {
            if !NodeIdentity::exists(&self.config.node_dir) {
                // Never joined, or `swarm leave` removed the identity while
                // the session was down: nothing of a swarm may run here.
                self.leave().await;
            }
            // Read at every session: a renewal (or a new join) may have
            // replaced it.
            let identity = self.wait_for_identity().await;
            let identity = match &live {
                Some(live) => {
                    if let Err(e) = live.reload() {
                        tracing::warn!("node identity: {e}");
                    }
                    live.clone()
                }
                None => {
                    let new = LiveIdentity::new(&self.config.node_dir, identity);
                    new.spawn_watch();
                    tokio::spawn(crate::renewal::run(
                        new.clone(),
                        self.config.node_dir.clone(),
                        self.config.manager.clone(),
                        self.wanted.subscribe(),
                    ));
                    live = Some(new.clone());
                    new
                }
            };
            let manager = managers[next % managers.len()].clone();
            match self.session_once(&identity, &manager, &mut managers).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!("session with {manager}: {e}");
                    // Fail over to the next manager at once; back off only
                    // once every manager has been tried.
                    next += 1;
                    if next % managers.len() != 0 {
                        self.session.send_replace(None);
                        continue;
                    }
                }
            }
            self.session.send_replace(None);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn wait_for_identity(&self) -> NodeIdentity {
        let mut said = false;
        loop {
            if NodeIdentity::exists(&self.config.node_dir) {
                match NodeIdentity::load(&self.config.node_dir) {
                    Ok(identity) => return identity,
                    Err(e) => tracing::warn!("node identity: {e}"),
                }
            } else if !said {
                tracing::info!(
                    "no node identity in {} yet: waiting for swarm init or join",
                    self.config.node_dir.display()
                );
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn session_once(
        &mut self,
        live: &LiveIdentity,
        manager: &str,
        managers: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let mut renewed = live.subscribe();
        let identity = renewed.borrow_and_update().clone();
        let channel = shoal_identity::connect(manager, &identity).await?;
        let mut client = DispatcherClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES);
        let (nano_cpus, memory_bytes) = crate::node_resources::describe();
        let description = NodeDescription {
            hostname: self.config.hostname.clone(),
            nano_cpus,
            memory_bytes,
            os: std::env::consts::OS.to_string(),
            architecture: std::env::consts::ARCH.to_string(),
            addr: self.config.advertise_addr.clone(),
            trust_digest: shoal_identity::trust::bundle_digest(&identity.ca_pem)
                .unwrap_or_default(),
        };
        let mut stream = client
            .session(SessionRequest {
                description: Some(description),
            })
            .await?
            .into_inner();
        let mut first = stream
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the session closed at once"))?;
        let session_id = first.session_id.clone();
        let mut period = Duration::from_millis(first.heartbeat_period_ms.max(100) as u64);
        tracing::info!("session {session_id} open with {manager}");
        for addr in &first.managers {
            if !managers.contains(addr) {
                managers.push(addr.clone());
            }
        }
        self.session
            .send_replace(Some((client.clone(), session_id.clone())));
        self.want(manager, first.trust);
        if let Some(role) = crate::role::wanted_change(&identity, first.node_role) {
            return self.change_role(manager, role).await;
        }
        let kept = std::mem::take(&mut first.kept_tasks);
        self.apply(first.assignments).await;
        self.remove_volumes(&first.volume_removals);
        // After the assignments: the tasks that run here keep their logs.
        self.forget_logs(first.kept_tasks_complete.then_some(&kept), &[]);
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                message = stream.message() => {
                    match message? {
                        Some(m) if !m.log_subscriptions.is_empty() => {
                            // Such a message carries nothing else.
                            let logs = self.ctx.executor.config().state_dir.join("logs");
                            for subscription in m.log_subscriptions {
                                crate::log_publisher::spawn(client.clone(), logs.clone(), subscription);
                            }
                        }
                        Some(mut m) => {
                            for addr in &m.managers {
                                if !managers.contains(addr) {
                                    managers.push(addr.clone());
                                }
                            }
                            self.want(manager, m.trust);
                            if let Some(role) = crate::role::wanted_change(&identity, m.node_role) {
                                return self.change_role(manager, role).await;
                            }
                            let kept = std::mem::take(&mut m.kept_tasks);
                            let deleted = std::mem::take(&mut m.deleted_tasks);
                            self.apply(m.assignments).await;
                            self.remove_volumes(&m.volume_removals);
                            self.forget_logs(m.kept_tasks_complete.then_some(&kept), &deleted);
                        }
                        None => anyhow::bail!("the manager closed the session"),
                    }
                }
                // A renewed certificate: reopen the session with it, so the
                // managers see the node on its new certificate. Tasks keep
                // running; the next session's complete assignment matches them.
                _ = renewed.changed() => {
                    tracing::info!("node certificate renewed: reopening the session with it");
                    return Ok(());
                }
                _ = heartbeat.tick() => {
                    if !NodeIdentity::exists(&self.config.node_dir) {
                        // `swarm leave` removed the identity: this node is
                        // no longer part of the swarm.
                        self.leave().await;
                        anyhow::bail!("left the swarm");
                    }
                    let request = HeartbeatRequest {
                        session_id: session_id.clone(),
                        volumes: self.volumes(),
                        reports_volumes: true,
                    };
                    let reply = tokio::time::timeout(period, client.heartbeat(request))
                        .await
                        .map_err(|_| anyhow::anyhow!("heartbeat timed out"))??
                        .into_inner();
                    // The cluster's period may have changed (`swarm update
                    // --dispatcher-heartbeat`): beat at the one the managers
                    // judge this node by from now on.
                    if let Some(changed) = changed_period(period, reply.period_ms) {
                        tracing::info!("heartbeat period now {changed:?}");
                        period = changed;
                        heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    }
                }
            }
        }
    }

    /// The node's volumes, as the heartbeat reports them.
    fn volumes(&self) -> Vec<shoal_proto::types::v1::NodeVolume> {
        let state_dir = &self.ctx.executor.config().state_dir;
        crate::executor::volume::list(state_dir)
            .into_iter()
            .map(|v| shoal_proto::types::v1::NodeVolume {
                mountpoint: crate::executor::volume::root(state_dir)
                    .join(&v.name)
                    .join("_data")
                    .display()
                    .to_string(),
                name: v.name,
                driver: v.driver,
                labels: v.labels,
                options: v.options,
                created_at_ms: v.created_at,
            })
            .collect()
    }

    /// Removes the logs of tasks the managers no longer keep (a task that
    /// runs here keeps its logs whatever they say).
    /// `kept`: every task the managers keep (then `deleted` is empty).
    fn forget_logs(&self, kept: Option<&Vec<String>>, deleted: &[String]) {
        let executor = &self.ctx.executor;
        let gone: Vec<String> = match kept {
            Some(kept) => {
                let kept: std::collections::HashSet<&String> = kept.iter().collect();
                executor
                    .logged_tasks()
                    .into_iter()
                    .filter(|id| !kept.contains(id))
                    .collect()
            }
            None => deleted.to_vec(),
        };
        for id in gone.iter().filter(|id| !self.runners.contains_key(*id)) {
            if let Err(e) = executor.remove_logs(id) {
                tracing::warn!("remove the logs of {id}: {e}");
            }
        }
    }

    /// `volume rm`: each volume no task here mounts goes (the next
    /// heartbeat reports it gone); one in use stays.
    fn remove_volumes(&self, names: &[String]) {
        let state_dir = &self.ctx.executor.config().state_dir;
        for name in names {
            let in_use = self.runners.values().any(|task| {
                task.borrow()
                    .spec
                    .as_ref()
                    .and_then(|s| s.container.as_ref())
                    .is_some_and(|c| {
                        c.mounts.iter().any(|m| {
                            m.r#type() == shoal_proto::types::v1::mount::Type::Volume
                                && &m.source == name
                        })
                    })
            });
            if in_use {
                tracing::warn!("volume {name} is in use here: not removed");
                continue;
            }
            match crate::executor::volume::remove(state_dir, name) {
                Ok(()) => tracing::info!("volume {name} removed"),
                Err(e) => tracing::warn!("remove volume {name}: {e}"),
            }
        }
    }

    /// Passes the cluster's trust on to the renewal, which acts on changes.
    fn want(&self, manager: &str, trust: Option<shoal_proto::dispatcher::v1::NodeTrust>) {
        let wanted = Wanted {
            manager: Some(manager.to_string()),
            trust,
        };
        self.wanted.send_if_modified(|w| {
            let changed = *w != wanted;
            *w = wanted;
            changed
        });
    }

    /// Promotion or demotion of this node; the session then starts again
    /// with the renewed certificate. Tasks keep running throughout.
    async fn change_role(&self, manager: &str, role: shoal_identity::Role) -> anyhow::Result<()> {
        let config = &self.config;
        let changed = crate::role::change(
            &config.node_dir,
            manager,
            &config.manager_socket,
            &config.advertise_addr,
            role,
        )
        .await;
        if let Err(e) = changed {
            tracing::warn!("becoming a {role:?}: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }

    /// After `swarm leave`: every task of the swarm stops and is removed.
    async fn leave(&mut self) {
        let idle =
            self.runners.is_empty() && self.ctx.executor.list().await.is_ok_and(|c| c.is_empty());
        if !idle {
            tracing::info!("this node is not in a swarm: removing its tasks");
        }
        self.session.send_replace(None);
        self.runners.clear();
        self.remove_strays(&std::collections::HashSet::new()).await;
        if let Ok(mut netd) = crate::local_api::netd(&self.ctx.netd_socket) {
            let request = shoal_proto::netd::v1::ForgetClusterRequest {};
            if let Err(e) = netd.forget_cluster(request).await {
                tracing::warn!("tell netd the node left: {}", e.message());
            }
        }
    }

    async fn apply(&mut self, assignments: Option<shoal_proto::dispatcher::v1::Assignments>) {
        let Some(assignments) = assignments else {
            return;
        };
        let complete = assignments.kind == Kind::Complete as i32;
        // Secrets and configs first: the runners started below read them.
        // Each message carries the whole set the node's tasks use.
        {
            let mut secrets = self.ctx.secrets.write().unwrap_or_else(|e| e.into_inner());
            *secrets = assignments
                .secrets
                .iter()
                .filter_map(|s| s.meta.as_ref().map(|m| (m.id.clone(), s.clone())))
                .collect();
            let mut configs = self.ctx.configs.write().unwrap_or_else(|e| e.into_inner());
            *configs = assignments
                .configs
                .iter()
                .filter_map(|c| c.meta.as_ref().map(|m| (m.id.clone(), c.clone())))
                .collect();
        }
        let mut assigned = std::collections::HashSet::new();
        for task in assignments.updated {
            let id = task.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
            assigned.insert(id.clone());
            match self.runners.get(&id) {
                Some(runner) if !runner.is_closed() => {
                    runner.send_replace(task);
                }
                _ => {
                    let runner = task_runner::spawn(self.ctx.clone(), task);
                    self.runners.insert(id, runner);
                }
            }
        }
        for id in assignments.removed {
            // Dropping the sender retires the runner, which cleans up.
            self.runners.remove(&id);
        }
        if complete {
            self.runners.retain(|id, _| assigned.contains(id));
            self.remove_strays(&assigned).await;
        }
    }

    /// Containers of tasks not assigned here any more (left from before a
    /// restart, or removed while the agent was away) are stopped and removed.
    async fn remove_strays(&self, assigned: &std::collections::HashSet<String>) {
        let executor = &self.ctx.executor;
        let containers = match executor.list().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("list containers: {e}");
                return;
            }
        };
        let mut netd = crate::local_api::netd(&self.ctx.netd_socket).ok();
        for container in containers {
            let Some(task_id) = container.task_id().map(str::to_string) else {
                continue;
            };
            if assigned.contains(&task_id) {
                continue;
            }
            tracing::info!("removing container of unassigned task {task_id}");
            let _ = executor.stop(&container.id).await;
            if let Err(e) = executor.remove(&container.id).await {
                tracing::warn!("remove {}: {e}", container.id);
            }
            let state_dir = &executor.config().state_dir;
            if let Err(e) = crate::task_files::remove(state_dir, &task_id) {
                tracing::warn!("remove the secrets and configs of {task_id}: {e}");
            }
            if let Some(netd) = netd.as_mut() {
                let request = shoal_proto::netd::v1::DetachTaskRequest { task_id };
                let _ = netd.detach_task(request).await;
            }
        }
    }
}

/// The period a heartbeat's answer tells the agent to beat at, when it is
/// not the one it beats at (0: an older manager that says nothing). Never
/// faster than every 100 ms, as at session open.
fn changed_period(current: Duration, answered_ms: u32) -> Option<Duration> {
    if answered_ms == 0 {
        return None;
    }
    let answered = Duration::from_millis(u64::from(answered_ms.max(100)));
    (answered != current).then_some(answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_answer_with_another_period_changes_the_beat() {
        let five = Duration::from_secs(5);
        assert_eq!(changed_period(five, 5_000), None);
        assert_eq!(changed_period(five, 0), None, "an answer without a period");
        assert_eq!(changed_period(five, 2_000), Some(Duration::from_secs(2)));
        assert_eq!(changed_period(five, 10), Some(Duration::from_millis(100)));
    }
}
