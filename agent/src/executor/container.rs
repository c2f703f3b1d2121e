//! Container lifecycle: create, start, wait, stop, remove, list.

use super::cgroup::Layout;
use super::lease::Lease;
use super::pull::{normalize_reference, PulledImage};
use super::spec::{self, HostFiles};
use super::user::{self, ResolvedUser};
use super::{logging, volume, ContainerLogs, TaskMount};
use super::{
    ContainerInfo, ContainerRun, Executor, ExecutorError, Result, TaskStatus, LABEL_OPEN_STDIN,
    LABEL_SERVICE_ID, LABEL_SERVICE_NAME, LABEL_STOP_GRACE_MS, LABEL_STOP_SIGNAL, LABEL_TASK_ID,
    LABEL_TTY,
};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, GetRequest, KillRequest, ListContainersRequest,
    StartRequest, WaitRequest,
};
use containerd_client::types::v1::{Process, Status};
use containerd_client::types::Mount;
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// How long to wait for a task to die after SIGKILL before giving up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Default grace period when a container has no (valid) label.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Parse `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(signal: &str) -> Option<Signal> {
    if let Ok(number) = signal.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = signal.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

/// containerd's rule for ids: alphanumerics separated by single `.`, `_` or `-`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 76
        && id
            .split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn status_of(process: &Process) -> TaskStatus {
    match Status::try_from(process.status) {
        Ok(Status::Created) => TaskStatus::Created,
        Ok(Status::Running) => TaskStatus::Running,
        Ok(Status::Paused) | Ok(Status::Pausing) => TaskStatus::Paused,
        Ok(Status::Stopped) => TaskStatus::Stopped,
        _ => TaskStatus::Unknown,
    }
}

fn info_of(container: Container, task: Option<&Process>) -> ContainerInfo {
    let status = task.map(status_of).unwrap_or(TaskStatus::None);
    ContainerInfo {
        id: container.id,
        image: container.image,
        labels: container.labels,
        status,
        pid: task.map(|t| t.pid).filter(|pid| *pid != 0),
        exit_code: task
            .filter(|_| status == TaskStatus::Stopped)
            .map(|t| t.exit_status as i32),
    }
}

fn not_found(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
}

impl Executor {
    /// Create the container for `run`: a snapshot of its image (which must have been pulled)
    /// and a container record with the runtime spec and shoal's labels. No process runs yet.
    pub async fn create(&self, run: &ContainerRun) -> Result<()> {
        if !valid_id(&run.id) {
            return Err(ExecutorError::Spec {
                id: run.id.clone(),
                message: "container ids are alphanumerics separated by '.', '_' or '-'".to_string(),
            });
        }
        let name = normalize_reference(&run.image)?;
        let image = self
            .local_image(&name)
            .await?
            .ok_or_else(|| ExecutorError::ImageNotPresent(name.clone()))?;
        let lease = self.create_lease("create").await?;
        let created = self.create_leased(&lease, run, &image).await;
        let deleted = self.delete_lease(lease).await;
        created?;
        deleted
    }

    async fn create_leased(
        &self,
        lease: &Lease,
        run: &ContainerRun,
        image: &PulledImage,
    ) -> Result<()> {
        let id = run.id.as_str();
        let config = image.config.config().as_ref();
        let stop_signal = [
            run.stop_signal.clone(),
            config
                .and_then(|c| c.stop_signal().clone())
                .unwrap_or_default(),
            "SIGTERM".to_string(),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
        let signal = parse_signal(&stop_signal).ok_or_else(|| ExecutorError::Signal {
            id: id.to_string(),
            signal: stop_signal.clone(),
        })?;
        let hostname = if run.hostname.is_empty() {
            id.to_string()
        } else {
            run.hostname.clone()
        };

        let (mounts, prepared) = self.prepare_rootfs(lease, id, &image.chain_id).await?;
        let built = match self.with_volumes(run, &mounts).await {
            Ok(run) => self.build_spec(&run, image, &mounts, &hostname).await,
            Err(e) => Err(e),
        };
        let outcome = match built {
            Ok(spec_json) => {
                let mut labels = run.labels.clone();
                labels.insert(LABEL_TASK_ID.to_string(), id.to_string());
                if !run.service_id.is_empty() {
                    labels.insert(LABEL_SERVICE_ID.to_string(), run.service_id.clone());
                }
                if !run.service_name.is_empty() {
                    labels.insert(LABEL_SERVICE_NAME.to_string(), run.service_name.clone());
                }
                labels.insert(LABEL_STOP_SIGNAL.to_string(), signal.as_str().to_string());
                labels.insert(
                    LABEL_STOP_GRACE_MS.to_string(),
                    run.stop_grace.as_millis().to_string(),
                );
                if run.tty {
                    labels.insert(LABEL_TTY.to_string(), "true".to_string());
                }
                if run.open_stdin {
                    labels.insert(LABEL_OPEN_STDIN.to_string(), "true".to_string());
                }
                labels.extend(logging::labels(run.logs));
                let container = Container {
                    id: id.to_string(),
                    labels,
                    image: image.name.clone(),
                    runtime: Some(Runtime {
                        name: self.config.runtime.clone(),
                        options: None,
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE_URL.to_string(),
                        value: spec_json,
                    }),
                    snapshotter: self.config.snapshotter.clone(),
                    snapshot_key: id.to_string(),
                    ..Container::default()
                };
                self.containers()
                    .create(self.request(
                        CreateContainerRequest {
                            container: Some(container),
                        },
                        Some(lease),
                    ))
                    .await
                    .map(|_| ())
                    .map_err(ExecutorError::containerd("create container", id))
            }
            Err(e) => Err(e),
        };
        if outcome.is_err() && prepared {
            self.remove_snapshot(id).await;
            let _ = std::fs::remove_dir_all(self.container_dir(id));
        }
        // The task is `starting` once created, and a reader of its logs may
        // come then: it must find the directory to watch.
        if let (Ok(()), ContainerLogs::Kept(_)) = (&outcome, run.logs) {
            let dir = self.log_dir(id);
            std::fs::create_dir_all(&dir).map_err(ExecutorError::io("create", &dir))?;
        }
        outcome
    }

    /// Prepare the container's writable snapshot on the image's chain; reuse it when a previous
    /// attempt left one. Returns the mounts and whether this call made it.
    async fn prepare_rootfs(
        &self,
        lease: &Lease,
        id: &str,
        chain_id: &str,
    ) -> Result<(Vec<Mount>, bool)> {
        let prepared = self
            .snapshots()
            .prepare(self.request(
                PrepareSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: id.to_string(),
                    parent: chain_id.to_string(),
                    labels: HashMap::new(),
                },
                Some(lease),
            ))
            .await;
        match prepared {
            Ok(response) => Ok((response.into_inner().mounts, true)),
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                Ok((self.snapshot_mounts(id).await?, false))
            }
            Err(status) => Err(ExecutorError::containerd("prepare snapshot", id)(status)),
        }
    }

    async fn snapshot_mounts(&self, id: &str) -> Result<Vec<Mount>> {
        Ok(self
            .snapshots()
            .mounts(self.request(
                MountsRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: id.to_string(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("snapshot mounts", id))?
            .into_inner()
            .mounts)
    }

    async fn remove_snapshot(&self, id: &str) {
        let _ = self
            .snapshots()
            .remove(self.request(
                RemoveSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: id.to_string(),
                },
                None,
            ))
            .await;
    }

    async fn build_spec(
        &self,
        run: &ContainerRun,
        image: &PulledImage,
        mounts: &[Mount],
        hostname: &str,
    ) -> Result<Vec<u8>> {
        let id = run.id.as_str();
        let user_spec = if run.user.is_empty() {
            image
                .config
                .config()
                .as_ref()
                .and_then(|c| c.user().clone())
                .unwrap_or_default()
        } else {
            run.user.clone()
        };
        let resolved = self
            .resolve_user(id, &user_spec, &run.groups, mounts)
            .await?;
        let files = self.host_files(run, hostname)?;
        let spec = spec::build(
            run,
            &image.config,
            &resolved,
            hostname,
            &self.cgroups_path(id),
            &files,
            Layout::of_host().swap_limit_supported(),
        )
        .map_err(|message| ExecutorError::Spec {
            id: id.to_string(),
            message,
        })?;
        serde_json::to_vec(&spec).map_err(|e| ExecutorError::Spec {
            id: id.to_string(),
            message: e.to_string(),
        })
    }

    /// `run` with its volumes made on this node (a new, empty one filled
    /// from the image at its target unless `nocopy`) and bound as directories.
    async fn with_volumes(&self, run: &ContainerRun, snapshot: &[Mount]) -> Result<ContainerRun> {
        let mut run = run.clone();
        let state_dir = self.state_dir().to_path_buf();
        for mount in &mut run.mounts {
            let TaskMount::Volume {
                name,
                target,
                read_only,
                nocopy,
                options,
                labels,
            } = mount
            else {
                continue;
            };
            let fail = |message: String| ExecutorError::Spec {
                id: run.id.clone(),
                message,
            };
            let data = volume::ensure(&state_dir, name, options, labels).map_err(fail)?;
            if !*nocopy && volume::is_empty(&data) {
                let scratch = state_dir.join("mnt").join(format!("{}-volume", run.id));
                let (snapshot, image_path, into) =
                    (snapshot.to_vec(), target.clone(), data.clone());
                tokio::task::spawn_blocking(move || {
                    volume::populate(&snapshot, &scratch, &image_path, &into)
                })
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(|e| fail(format!("copy the image's {target} into volume {name}: {e}")))?;
            }
            *mount = TaskMount::Bind {
                source: data,
                target: target.clone(),
                read_only: *read_only,
                propagation: String::new(),
            };
        }
        Ok(run)
    }

    async fn resolve_user(
        &self,
        id: &str,
        user: &str,
        groups: &[String],
        mounts: &[Mount],
    ) -> Result<ResolvedUser> {
        let fail = |message: String| ExecutorError::User {
            id: id.to_string(),
            user: user.to_string(),
            message,
        };
        if !user::needs_lookup(user) && !user::groups_need_lookup(groups) {
            let mut resolved = user::resolve(user, None, None).map_err(fail)?;
            user::add_groups(&mut resolved, groups, None).map_err(fail)?;
            return Ok(resolved);
        }
        let target = self.state_dir().join("mnt").join(id);
        let mounts = mounts.to_vec();
        let (passwd, group) =
            tokio::task::spawn_blocking(move || user::read_account_files(&mounts, &target))
                .await
                .map_err(|e| fail(format!("reading the image's account files: {e}")))?
                .map_err(|e| fail(format!("mount the image to read /etc/passwd: {e}")))?;
        let mut resolved =
            user::resolve(user, passwd.as_deref(), group.as_deref()).map_err(fail)?;
        user::add_groups(&mut resolved, groups, group.as_deref()).map_err(fail)?;
        Ok(resolved)
    }

    /// `/etc/hostname`, `/etc/hosts` and (with nameservers, or on the host network)
    /// `/etc/resolv.conf` for the container, and the init binary of an `--init` task.
    fn host_files(&self, run: &ContainerRun, hostname: &str) -> Result<HostFiles> {
        let dir = self.container_dir(&run.id);
        std::fs::create_dir_all(&dir).map_err(ExecutorError::io("create", &dir))?;
        let write = |name: &str, contents: String| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(ExecutorError::io("write", &path))?;
            Ok(path)
        };
        let host_network = run.netns.is_none();
        let mut hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string()
        };
        if !hosts.is_empty() && !hosts.ends_with('\n') {
            hosts.push('\n');
        }
        if let Some(address) = run.address {
            hosts.push_str(&format!("{address}\t{hostname}\n"));
        }
        for (name, address) in &run.extra_hosts {
            hosts.push_str(&format!("{address}\t{name}\n"));
        }
        let resolv_conf = if !run.dns_servers.is_empty() {
            let mut text: String = run
                .dns_servers
                .iter()
                .map(|server| format!("nameserver {server}\n"))
                .collect();
            if !run.dns_search.is_empty() {
                text.push_str(&format!("search {}\n", run.dns_search.join(" ")));
            }
            if !run.dns_options.is_empty() {
                text.push_str(&format!("options {}\n", run.dns_options.join(" ")));
            }
            Some(write("resolv.conf", text)?)
        } else if host_network {
            std::fs::read_to_string("/etc/resolv.conf")
                .ok()
                .map(|text| write("resolv.conf", text))
                .transpose()?
        } else {
            None
        };
        let init = if run.init {
            let binary = &self.config.init_binary;
            if !binary.is_file() {
                return Err(ExecutorError::Spec {
                    id: run.id.clone(),
                    message: format!(
                        "--init: this node has no init binary at {} (Debian's package tini)",
                        binary.display()
                    ),
                });
            }
            Some(binary.clone())
        } else {
            None
        };
        Ok(HostFiles {
            hosts: Some(write("hosts", hosts)?),
            hostname: Some(write("hostname", format!("{hostname}\n"))?),
            resolv_conf,
            init,
        })
    }

    async fn get_task(&self, id: &str) -> Result<Option<Process>> {
        match self
            .tasks()
            .get(self.request(
                GetRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
        {
            Ok(response) => Ok(response.into_inner().process),
            Err(status) if not_found(&status) => Ok(None),
            Err(status) => Err(ExecutorError::containerd("get task", id)(status)),
        }
    }

    pub(super) async fn get_container(&self, id: &str) -> Result<Option<Container>> {
        match self
            .containers()
            .get(self.request(GetContainerRequest { id: id.to_string() }, None))
            .await
        {
            Ok(response) => Ok(response.into_inner().container),
            Err(status) if not_found(&status) => Ok(None),
            Err(status) => Err(ExecutorError::containerd("get container", id)(status)),
        }
    }

    async fn delete_task(&self, id: &str) -> Result<()> {
        match self
            .tasks()
            .delete(self.request(
                DeleteTaskRequest {
                    container_id: id.to_string(),
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if not_found(&status) => Ok(()),
            Err(status) => Err(ExecutorError::containerd("delete task", id)(status)),
        }
    }

    /// Start the container's task (creating it, with stdout and stderr written by
    /// `shoal-logger` into [`Executor::log_dir`] in the format of its logging driver, or
    /// discarded for driver `none`); returns the pid. Starting a running task returns its
    /// pid; a stopped task is replaced by a fresh one (whose logger appends to the same
    /// files).
    pub async fn start(&self, id: &str) -> Result<u32> {
        let Some(container) = self.get_container(id).await? else {
            return Err(ExecutorError::NotFound(id.to_string()));
        };
        let flag = |label: &str| container.labels.get(label).is_some_and(|v| v == "true");
        if let Some(task) = self.get_task(id).await? {
            match status_of(&task) {
                TaskStatus::Running | TaskStatus::Paused => return Ok(task.pid),
                TaskStatus::Created => return self.start_task(id).await,
                _ => self.delete_task(id).await?,
            }
        }
        let mounts = self.snapshot_mounts(id).await?;
        let spec_error = |message: String| ExecutorError::Spec {
            id: id.to_string(),
            message,
        };
        let logs = logging::from_labels(&container.labels)
            .map_err(|e| spec_error(format!("logging driver: {e}")))?;
        let terminal = flag(LABEL_TTY);
        let open_stdin = flag(LABEL_OPEN_STDIN);
        let dir = self.log_dir(id);
        let logger = &self.config.logger_binary;
        let output =
            logging::output(logs, &dir, logger, terminal, open_stdin).map_err(spec_error)?;
        if let ContainerLogs::Kept(_) = logs {
            std::fs::create_dir_all(&dir).map_err(ExecutorError::io("create", &dir))?;
        }
        let (io, fifo_logger) = match output {
            logging::Output::Shim(io) => (io, false),
            logging::Output::FifoLogger(args) => {
                let io = logging::start_fifo_logger(logger, &self.container_dir(id), &args)
                    .await
                    .map_err(spec_error)?;
                (io, true)
            }
        };
        let stdin = if open_stdin {
            self.open_stdin(id)?
        } else {
            String::new()
        };
        let created = self
            .tasks()
            .create(self.request(
                CreateTaskRequest {
                    container_id: id.to_string(),
                    rootfs: mounts,
                    stdin,
                    stdout: io.stdout.clone(),
                    stderr: io.stderr.clone(),
                    terminal,
                    ..CreateTaskRequest::default()
                },
                None,
            ))
            .await;
        if let Err(status) = created {
            // No shim will write to the FIFOs: let their logger end.
            if fifo_logger {
                logging::release_fifos(&io);
            }
            return Err(ExecutorError::containerd("create task", id)(status));
        }
        self.start_task(id).await
    }

    /// A FIFO for the container's stdin whose writing end this executor
    /// holds until the container is removed; its path. (A restarted agent
    /// cannot hold it again: the container then reads end of file.)
    fn open_stdin(&self, id: &str) -> Result<String> {
        let dir = self.container_dir(id);
        std::fs::create_dir_all(&dir).map_err(ExecutorError::io("create", &dir))?;
        let path = dir.join("stdin");
        match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(ExecutorError::io("mkfifo", &path)(e.into())),
        }
        // Read and write: opening a FIFO so never waits for the other end.
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(ExecutorError::io("open", &path))?;
        self.open_stdins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), held);
        Ok(path.display().to_string())
    }

    async fn start_task(&self, id: &str) -> Result<u32> {
        Ok(self
            .tasks()
            .start(self.request(
                StartRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("start task", id))?
            .into_inner()
            .pid)
    }

    /// The container's cgroups path in its spec: containerd's
    /// `/<namespace>/<id>`.
    pub fn cgroups_path(&self, id: &str) -> String {
        format!("/{}/{}", self.config.namespace, id)
    }

    /// Whether the OOM killer killed a process of the container (read from
    /// its cgroup, so before the task is deleted).
    pub fn oom_killed(&self, id: &str) -> bool {
        Layout::of_host()
            .oom_kills(&self.cgroups_path(id))
            .is_some_and(|kills| kills > 0)
    }

    /// Wait for the task to exit and return its exit code (128+signal when killed). Dropping
    /// the future cancels only the wait.
    pub async fn wait(&self, id: &str) -> Result<i32> {
        let response = self
            .tasks()
            .wait(self.request(
                WaitRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("wait task", id))?;
        Ok(response.into_inner().exit_status as i32)
    }

    /// Send `signal`; false when there was no live process to signal.
    async fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<bool> {
        match self
            .tasks()
            .kill(self.request(
                KillRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    signal: signal as u32,
                    all,
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(true),
            // containerd says NotFound for a missing task and for one that already exited.
            Err(status) if not_found(&status) => Ok(false),
            Err(status) => Err(ExecutorError::containerd("kill task", id)(status)),
        }
    }

    /// Stop the task: its stop signal, then SIGKILL once the grace period (both from the
    /// container's labels) has passed. Returns when the task has exited; a task that is not
    /// running is left alone.
    pub async fn stop(&self, id: &str) -> Result<()> {
        let container = self
            .get_container(id)
            .await?
            .ok_or_else(|| ExecutorError::NotFound(id.to_string()))?;
        let signal = container
            .labels
            .get(LABEL_STOP_SIGNAL)
            .and_then(|s| parse_signal(s))
            .unwrap_or(Signal::SIGTERM);
        let grace = container
            .labels
            .get(LABEL_STOP_GRACE_MS)
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_GRACE);
        match self.get_task(id).await? {
            Some(task) if matches!(status_of(&task), TaskStatus::Stopped) => return Ok(()),
            None => return Ok(()),
            Some(_) => {}
        }
        if !self.kill(id, signal, false).await? {
            return Ok(());
        }
        if tokio::time::timeout(grace, self.wait(id)).await.is_ok() {
            return Ok(());
        }
        self.kill_and_wait(id).await
    }

    async fn kill_and_wait(&self, id: &str) -> Result<()> {
        if !self.kill(id, Signal::SIGKILL, true).await? {
            return Ok(());
        }
        match tokio::time::timeout(KILL_TIMEOUT, self.wait(id)).await {
            Ok(waited) => waited.map(|_| ()),
            Err(_) => Err(ExecutorError::Containerd {
                op: "kill task",
                id: id.to_string(),
                code: tonic::Code::DeadlineExceeded,
                message: format!("still running {KILL_TIMEOUT:?} after SIGKILL"),
            }),
        }
    }

    /// Remove the container and everything it owns: task (killed if running; deleting it
    /// ends its logger), container record, snapshot and generated files; its logs stay
    /// ([`Executor::remove_logs`]). Removing what is gone is fine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        if let Some(task) = self.get_task(id).await? {
            if !matches!(status_of(&task), TaskStatus::Stopped) {
                self.kill_and_wait(id).await?;
            }
            self.delete_task(id).await?;
        }
        match self
            .containers()
            .delete(self.request(DeleteContainerRequest { id: id.to_string() }, None))
            .await
        {
            Ok(_) => {}
            Err(status) if not_found(&status) => {}
            Err(status) => return Err(ExecutorError::containerd("delete container", id)(status)),
        }
        match self
            .snapshots()
            .remove(self.request(
                RemoveSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: id.to_string(),
                },
                None,
            ))
            .await
        {
            Ok(_) => {}
            Err(status) if not_found(&status) => {}
            Err(status) => return Err(ExecutorError::containerd("remove snapshot", id)(status)),
        }
        self.open_stdins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecutorError::io("remove", dir)(e)),
        }
    }

    /// Removes a task's logs, which outlive its container as long as the
    /// managers keep the task (`service logs` of a task that failed).
    pub fn remove_logs(&self, id: &str) -> Result<()> {
        let logs = self.log_dir(id);
        match std::fs::remove_dir_all(&logs) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ExecutorError::io("remove", logs)(e)),
        }
    }

    /// The tasks whose logs this node holds.
    pub fn logged_tasks(&self) -> Vec<String> {
        let root = self.log_dir("");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Every container in the namespace with its task's state: what a restarted agent adopts.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let containers = self
            .containers()
            .list(self.request(ListContainersRequest { filters: vec![] }, None))
            .await
            .map_err(ExecutorError::containerd("list containers", ""))?
            .into_inner()
            .containers;
        // Per-container Get rather than Tasks.List: containerd 1.6 leaves stopped tasks out of
        // its list, and their exit codes are what a restarted agent must report.
        let mut infos = Vec::with_capacity(containers.len());
        for container in containers {
            let task = self.get_task(&container.id).await?;
            infos.push(info_of(container, task.as_ref()));
        }
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    /// One container, if it exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let Some(container) = self.get_container(id).await? else {
            return Ok(None);
        };
        let task = self.get_task(id).await?;
        Ok(Some(info_of(container, task.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("quit"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }

    #[test]
    fn ids_follow_containerds_rules() {
        assert!(valid_id("task-1.a_b"));
        assert!(!valid_id(""));
        assert!(!valid_id("a--b"));
        assert!(!valid_id("a/b"));
    }
}
