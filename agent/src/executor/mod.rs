//! Runs task containers through containerd (1.6 and later) and pulls their images.
//!
//! containerd 1.6 has no transfer service, so pulls are done here: `oci-client` talks to the
//! registry, blobs go into containerd's content store, layers are unpacked with the diff and
//! snapshot services, and the image is registered with GC labels like containerd's own client
//! sets. Containers carry everything a restarted agent needs (task id, service, stop signal and
//! grace period) as labels, so [`Executor::list`] is enough to adopt them.

mod cgroup;
mod container;
mod content;
mod error;
mod exec;
mod healthcheck;
mod lease;
mod logging;
mod pull;
mod spec;
mod user;
pub mod volume;

#[cfg(test)]
mod tests;

pub use error::{ExecutorError, Result};
pub use exec::ExecOutput;
pub use healthcheck::ImageHealthcheck;
pub use pull::PulledImage;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::logs::LogConfig;

/// Label: the task id a container runs.
pub const LABEL_TASK_ID: &str = "shoal.task.id";
/// Label: the id of the service the task belongs to.
pub const LABEL_SERVICE_ID: &str = "shoal.service.id";
/// Label: the name of the service the task belongs to.
pub const LABEL_SERVICE_NAME: &str = "shoal.service.name";
/// Label: the signal [`Executor::stop`] sends first.
pub const LABEL_STOP_SIGNAL: &str = "shoal.stop.signal";
/// Label: milliseconds [`Executor::stop`] waits before SIGKILL.
pub const LABEL_STOP_GRACE_MS: &str = "shoal.stop.grace-ms";
/// Label: the container has a pseudo-terminal (its task is created with one).
pub const LABEL_TTY: &str = "shoal.tty";
/// Label: the container's stdin stays open (a FIFO the agent holds).
pub const LABEL_OPEN_STDIN: &str = "shoal.stdin-open";
/// Label: the container's logging driver (`json-file`, `local`, `none`);
/// absent on containers of agents before logging drivers: json-file.
pub const LABEL_LOG_DRIVER: &str = "shoal.log.driver";
/// Label prefix: the driver's options, every one explicit
/// (`shoal.log.opt.max-size` in bytes, `max-file`, `compress`).
pub const LABEL_LOG_OPT_PREFIX: &str = "shoal.log.opt.";

/// How to reach containerd and where to keep per-container files.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// The containerd namespace holding shoal's images and containers.
    pub namespace: String,
    /// The snapshotter to unpack into and run from.
    pub snapshotter: String,
    /// The containerd runtime (shim) name.
    pub runtime: String,
    /// Logs (`logs/<id>/`, see [`crate::logs`]) and generated `/etc` files
    /// (`containers/<id>/`).
    pub state_dir: PathBuf,
    /// Registries (`host:port`) reached over plain HTTP; all others use HTTPS.
    pub insecure_registries: Vec<String>,
    /// The host's init for `--init` tasks: a static binary (Debian's
    /// `tini-static`), bound read-only into the container.
    pub init_binary: PathBuf,
    /// `shoal-logger`, which containerd's shim starts to write each
    /// container's output into its log directory, in its logging driver's
    /// format.
    pub logger_binary: PathBuf,
}

impl ExecutorConfig {
    /// Defaults for everything but the socket and state directory.
    pub fn new(socket: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> ExecutorConfig {
        ExecutorConfig {
            socket: socket.into(),
            namespace: "shoal".to_string(),
            snapshotter: "overlayfs".to_string(),
            runtime: "io.containerd.runc.v2".to_string(),
            state_dir: state_dir.into(),
            insecure_registries: Vec::new(),
            init_binary: PathBuf::from(DEFAULT_INIT_BINARY),
            logger_binary: default_logger_binary(),
        }
    }
}

/// `shoal-logger` beside the running executable (the agent's, or a test's
/// one directory further down, in cargo's `deps/`).
fn default_logger_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("/usr/local/bin"));
    [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join("shoal-logger"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join("shoal-logger"))
}

/// Where Debian's `tini` package puts its static build.
pub const DEFAULT_INIT_BINARY: &str = "/usr/bin/tini-static";

/// What to run: one container for one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerRun {
    /// Container id; shoal uses the task id.
    pub id: String,
    /// Image reference, as given to [`Executor::pull`].
    pub image: String,
    /// Replaces the image's entrypoint (and drops its cmd) when non-empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when non-empty.
    pub args: Vec<String>,
    /// `KEY=value`, merged over the image's environment.
    pub env: Vec<String>,
    /// `name`, `uid`, `name:group` or `uid:gid`; empty means the image's user.
    pub user: String,
    /// Empty means the image's working directory, else `/`.
    pub workdir: String,
    /// Extra container labels (the executor adds its own `shoal.*` labels).
    pub labels: HashMap<String, String>,
    pub service_id: String,
    pub service_name: String,
    /// Empty means the container id.
    pub hostname: String,
    /// The task's network namespace (made by netd); `None` shares the host's network.
    pub netns: Option<PathBuf>,
    /// Entries for `/etc/hosts` beyond localhost and the container's own name.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Address to map the hostname to in `/etc/hosts`.
    pub address: Option<IpAddr>,
    /// Nameservers for `/etc/resolv.conf`; empty keeps the image's file (or the host's when
    /// sharing the host network).
    pub dns_servers: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    /// `options` of `/etc/resolv.conf` (`ndots:2`, ...).
    pub dns_options: Vec<String>,
    /// Signal name (`SIGTERM`, `TERM`) or number; empty means SIGTERM.
    pub stop_signal: String,
    /// Time between the stop signal and SIGKILL.
    pub stop_grace: Duration,
    /// Host files bound read-only into the container (secrets, from a tmpfs
    /// on the host): (host path, absolute path in the container).
    pub read_only_files: Vec<(PathBuf, String)>,
    /// The container's cgroup limits.
    pub limits: Limits,
    /// Supplementary groups: names from the image's `/etc/group`, or gids.
    pub groups: Vec<String>,
    /// How far the container is confined beyond docker's defaults.
    pub confinement: Confinement,
    /// An init ([`ExecutorConfig::init_binary`]) as PID 1 in front of the command.
    pub init: bool,
    /// A pseudo-terminal for stdin, stdout and stderr.
    pub tty: bool,
    /// Stdin never at end of file.
    pub open_stdin: bool,
    /// `RLIMIT_*` by docker's names (`nofile`, `nproc`, ...): (name, soft, hard).
    pub ulimits: Vec<(String, u64, u64)>,
    /// Namespaced kernel parameters.
    pub sysctls: HashMap<String, String>,
    /// Filesystems mounted over the image's.
    pub mounts: Vec<TaskMount>,
    /// Where stdout and stderr go.
    pub logs: ContainerLogs,
}

/// Where a container's stdout and stderr go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerLogs {
    /// Files in [`Executor::log_dir`], written by `shoal-logger`.
    Kept(LogConfig),
    /// Nowhere (logging driver `none`).
    Discarded,
}

impl Default for ContainerLogs {
    /// json-file with shoal's cap, as for a task that names no driver.
    fn default() -> ContainerLogs {
        ContainerLogs::Kept(LogConfig::default())
    }
}

impl From<Option<LogConfig>> for ContainerLogs {
    fn from(config: Option<LogConfig>) -> ContainerLogs {
        config.map_or(ContainerLogs::Discarded, ContainerLogs::Kept)
    }
}

/// A container's privileges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The root filesystem mounted read-only.
    pub read_only: bool,
    /// Capabilities added to docker's default set (`NET_ADMIN`, `ALL`).
    pub capability_add: Vec<String>,
    /// Capabilities dropped from it (applied first).
    pub capability_drop: Vec<String>,
    /// Setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
}

/// A filesystem mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskMount {
    /// A host directory or file: a bind mount, or a volume's directory.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
        /// `rprivate` when empty.
        propagation: String,
    },
    Tmpfs {
        target: String,
        /// 0: the kernel's default.
        size_bytes: i64,
        /// 0: 1777.
        mode: u32,
        read_only: bool,
    },
    /// A named volume of the local driver, made on this node on first use
    /// and kept ([`volume`]); bound into the container like a directory.
    Volume {
        name: String,
        target: String,
        read_only: bool,
        /// Not filled from the image's content at the target when new.
        nocopy: bool,
        /// The local driver's `type`, `o`, `device`.
        options: HashMap<String, String>,
        labels: HashMap<String, String>,
    },
}

impl TaskMount {
    pub fn target(&self) -> &str {
        match self {
            TaskMount::Bind { target, .. }
            | TaskMount::Tmpfs { target, .. }
            | TaskMount::Volume { target, .. } => target,
        }
    }
}

/// A task's cgroup limits (`--limit-memory`, `--limit-cpu`,
/// `--limit-pids`); 0 means none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

/// The state of a container's task as containerd reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// No task: created but never started, or its task was deleted.
    None,
    Created,
    Running,
    Paused,
    Stopped,
    Unknown,
}

/// A container found in containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub status: TaskStatus,
    /// The task's init pid, when a task exists.
    pub pid: Option<u32>,
    /// Set once the task has stopped.
    pub exit_code: Option<i32>,
}

impl ContainerInfo {
    /// The task id label, if the container was created by shoal.
    pub fn task_id(&self) -> Option<&str> {
        self.labels.get(LABEL_TASK_ID).map(String::as_str)
    }
}

/// Drives containerd for one agent. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Executor {
    channel: Channel,
    namespace: MetadataValue<tonic::metadata::Ascii>,
    config: Arc<ExecutorConfig>,
    registry: Arc<oci_client::Client>,
    /// The writing end of each `stdin_open` container's stdin FIFO: held
    /// here, so the container never reads end of file.
    open_stdins: Arc<std::sync::Mutex<HashMap<String, std::fs::File>>>,
}

/// A registry client. It keeps the first credentials it was given for a
/// registry (oci-client's auth store), so the shared one pulls
/// anonymously and a pull with credentials gets a client of its own.
pub(crate) fn registry_client(config: &ExecutorConfig) -> oci_client::Client {
    oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::HttpsExcept(
            config.insecure_registries.clone(),
        ),
        platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
        ..oci_client::client::ClientConfig::default()
    })
}

impl Executor {
    /// Dial containerd. The connection is lazy about failures after this point: calls fail
    /// with [`ExecutorError::Containerd`] (code `Unavailable`) while containerd is down.
    pub async fn connect(config: ExecutorConfig) -> Result<Executor> {
        install_crypto_provider();
        let namespace = MetadataValue::try_from(config.namespace.as_str())
            .map_err(|_| ExecutorError::Namespace(config.namespace.clone()))?;
        if config.namespace.is_empty() {
            return Err(ExecutorError::Namespace(config.namespace.clone()));
        }
        let channel = containerd_client::connect(&config.socket)
            .await
            .map_err(|source| ExecutorError::Connect {
                socket: config.socket.clone(),
                source,
            })?;
        let registry = registry_client(&config);
        Ok(Executor {
            channel,
            namespace,
            config: Arc::new(config),
            registry: Arc::new(registry),
            open_stdins: Arc::default(),
        })
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// The directory of a container's log files (unless its driver is
    /// `none`), which [`crate::logs::read`] reads.
    pub fn log_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("logs").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("containers").join(id)
    }

    fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// Wrap a message with the namespace header (and a lease, so GC keeps what a multi-step
    /// operation creates before anything references it).
    fn request<T>(&self, message: T, lease: Option<&lease::Lease>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("containerd-namespace", self.namespace.clone());
        if let Some(lease) = lease {
            metadata.insert("containerd-lease", lease.header());
        }
        request
    }

    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }
    fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }
    fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }
}

/// rustls needs a process-wide provider before reqwest builds a client; installing twice is
/// harmless (the second attempt just reports the first).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
