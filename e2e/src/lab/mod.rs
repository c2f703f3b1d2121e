//! The test lab: a small cluster of test hosts (network namespaces on a lab
//! bridge) running a registry, containerd and the shoal daemons. It is both
//! the `shoal-lab` command users drive and the harness every end-to-end test
//! brings up.
//!
//! Every name a lab creates on the machine derives from its unique name, so
//! labs run side by side; dropping a [`Lab`] tears everything down, and
//! [`leaks`] lists whatever of a lab is still on the machine.

pub(crate) mod cluster;
pub(crate) mod command;
mod error;
mod leaks;
mod mounts;
mod network;
mod partition;
mod plan;
pub(crate) mod process;
pub(crate) mod record;
mod remote;
mod wait;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use crate::fixtures::{self, Containerd, Registry};

pub use cluster::json_lines;
pub use error::Error;
pub use plan::{Host, Role};
pub use record::{Proc, Record};
pub use remote::RemoteCli;
pub use wait::wait_until;

/// How long the lab waits for a daemon to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a probe of a host's service waits for an answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// What lab to bring up.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Unique on the machine; every namespace, link and the default root
    /// derive from it. 1..=32 characters of `a-z`, `0-9`, `-`.
    pub name: String,
    pub managers: u32,
    pub workers: u32,
    /// Where hosts keep their state (`<root>/<host>/…`); defaults to
    /// `$TMPDIR/shoal-lab/<name>`.
    pub root: Option<PathBuf>,
    /// Where the shoal binaries are; `SHOAL_BIN_DIR` overrides, and the
    /// default is the cargo target dir of the running executable.
    pub bin_dir: Option<PathBuf>,
    /// Start the shoal daemons and create the cluster; without it the lab is
    /// only hosts, registry and containerds.
    pub shoal: bool,
    /// Push the test images (web:v1, web:v2, crash:v1) into the registry.
    pub images: bool,
    /// Tear down a lab of the same name found on the machine (a crashed
    /// earlier run) instead of refusing to start.
    pub replace: bool,
    pub ready_timeout: Duration,
    /// The last this many workers are hosts with containerd but not in the
    /// cluster until [`Lab::join_worker`] joins them (a node joining later).
    pub unjoined_workers: u32,
    /// Flags `shoal swarm init` gets on the first manager besides its
    /// `--advertise-addr` (e.g. `--dispatcher-heartbeat 2s`).
    pub init_args: Vec<String>,
}

impl LabConfig {
    /// One manager, no workers, shoal daemons and test images, refusing to
    /// replace a running lab.
    pub fn new(name: impl Into<String>) -> Self {
        LabConfig {
            name: name.into(),
            managers: 1,
            workers: 0,
            root: None,
            bin_dir: None,
            shoal: true,
            images: true,
            replace: false,
            ready_timeout: READY_TIMEOUT,
            unjoined_workers: 0,
            init_args: Vec::new(),
        }
    }
}

/// A running lab; dropping it tears it down (see [`Lab::down`]).
pub struct Lab {
    record: Record,
    bin_dir: PathBuf,
    ready_timeout: Duration,
    /// Fixture processes the lab owns while attached, by host.
    containerds: Vec<(String, Containerd)>,
    registry: Option<Registry>,
    /// Daemons spawned by this process, kept to reap them.
    children: Vec<Child>,
    /// Set once torn down or detached: Drop then does nothing.
    done: bool,
}

/// Everything of the lab `name` still on the machine, for a lab kept under
/// the default root. Empty once the lab is down.
pub fn leaks(name: &str) -> Vec<String> {
    leaks::leaks_at(name, &plan::default_root(name))
}

/// [`leaks`] for a lab kept under `root`.
pub fn leaks_at(name: &str, root: &Path) -> Vec<String> {
    leaks::leaks_at(name, root)
}

/// Tears down the lab recorded under `root` (by `shoal-lab up` or a crashed
/// test), whoever started it. Nothing under `root` is not an error.
pub fn down_at(root: &Path) -> Result<(), Error> {
    let root = absolute(root)?;
    match Record::load(&root)? {
        Some(record) => finish(&record, stop_recorded(&record)),
        None if !root.exists() => Ok(()),
        None => Err(Error::ForeignRoot { root }),
    }
}

/// The lab recorded under `root`, for commands that act on a running lab.
pub fn recorded(root: &Path) -> Result<Record, Error> {
    let root = absolute(root)?;
    Record::load(&root)?.ok_or_else(|| {
        Error::Config(format!(
            "no lab under {} (no {}): start one with `./scripts/lab up`",
            root.display(),
            record::FILE
        ))
    })
}

/// The `export` lines that point a shell at a recorded lab and put the shoal
/// CLI in `bin_dir` first on its `PATH` (the rest of `PATH` kept as the
/// shell has it when it evaluates them).
pub fn env_lines(record: &Record, bin_dir: &Path) -> Result<String, Error> {
    let bin_dir = absolute(bin_dir)?;
    let bin = bin_dir.to_string_lossy();
    if bin.contains(':') {
        return Err(Error::Config(format!(
            "{bin} cannot go on PATH (it holds a ':'): set SHOAL_BIN_DIR to another directory"
        )));
    }
    Ok(format!(
        "export SHOAL_HOST={}\nexport SHOAL_REGISTRY={}\nexport SHOAL_LAB_ROOT={}\n\
         export PATH={}\"${{PATH:+:$PATH}}\"\n",
        shell_quote(&record.shoal_host),
        shell_quote(&record.registry),
        shell_quote(&record.root.to_string_lossy()),
        shell_quote(&bin),
    ))
}

/// Where the shoal binaries are, for commands acting on a running lab:
/// `SHOAL_BIN_DIR`, else the directory the running executable was built
/// into (`shoal-lab` sits next to `shoal`).
pub fn bin_dir() -> Result<PathBuf, Error> {
    absolute(&cluster::bin_dir(None)?)
}

/// A task's error in a row of [`Lab::service_ps`], without the quotes docker's
/// `.Error` puts around it.
pub fn task_error(row: &serde_json::Value) -> &str {
    let shown = row["Error"].as_str().unwrap_or_default();
    shown
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(shown)
}

/// A command that runs `program` inside `host` of a recorded lab.
pub fn host_command(record: &Record, host: &str, program: &str) -> Result<Command, Error> {
    let host = record.host(host)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.netns, program]);
    Ok(cmd)
}

impl Lab {
    /// Brings a lab up: network, registry (with the test images), a
    /// containerd per node and, with `config.shoal`, the shoal daemons and a
    /// cluster whose nodes are Ready. On failure everything started so far is
    /// torn down again.
    ///
    /// Blocking; do not call it from inside a tokio runtime (it runs one to
    /// push the test images).
    pub fn up(config: LabConfig) -> Result<Lab, Error> {
        plan::validate_name(&config.name)?;
        plan::hosts(&config.name, 0, config.managers, config.workers)?;
        let bin_dir = cluster::bin_dir(config.bin_dir.as_deref())?;
        if config.shoal {
            cluster::check_bins(&bin_dir)?;
        }
        let root = match &config.root {
            Some(r) => absolute(r)?,
            None => plan::default_root(&config.name),
        };
        clear_previous(&config, &root)?;

        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let bridge = plan::bridge_name(&config.name);
        let octet = network::create_bridge(&bridge)?;
        let hosts = plan::hosts(&config.name, octet, config.managers, config.workers)?;
        let registry = format!("{}:{}", hosts[0].addr, cluster::REGISTRY_PORT);
        let shoal_host = format!(
            "unix://{}",
            cluster::NodeDirs::new(&root, "m1")
                .control_socket()
                .display()
        );
        let record = Record {
            name: config.name.clone(),
            root,
            octet,
            bridge,
            hosts,
            processes: Vec::new(),
            registry,
            shoal_host,
        };
        // From here on the lab exists: any early return drops it, which tears
        // down what was made so far.
        let mut lab = Lab {
            record,
            bin_dir,
            ready_timeout: config.ready_timeout,
            containerds: Vec::new(),
            registry: None,
            children: Vec::new(),
            done: false,
        };
        lab.record.save()?;
        if let Err(e) = lab.build(&config) {
            // The daemons' logs say why; the teardown below would take them.
            lab.keep_logs();
            return Err(e);
        }
        Ok(lab)
    }

    fn build(&mut self, config: &LabConfig) -> Result<(), Error> {
        for host in self.record.hosts.clone() {
            network::create_host(&host, &self.record.bridge)?;
            let logs = cluster::NodeDirs::new(&self.record.root, &host.name).logs();
            std::fs::create_dir_all(&logs)
                .map_err(|e| Error::io(format!("create {}", logs.display()), e))?;
        }
        self.start_registry()?;
        if config.images {
            self.push_images()?;
        }
        let nodes: Vec<Host> = self
            .record
            .hosts
            .iter()
            .filter(|h| h.role != Role::Registry)
            .cloned()
            .collect();
        for node in &nodes {
            self.start_containerd(node)?;
        }
        if config.shoal {
            let (first, others) = nodes
                .split_first()
                .ok_or_else(|| Error::Config("a lab needs at least one manager".into()))?;
            let later = usize::try_from(config.unjoined_workers)
                .unwrap_or(usize::MAX)
                .min(others.len());
            self.start_first_manager(first, &config.init_args)?;
            for node in &others[..others.len() - later] {
                self.join(node)?;
            }
            self.wait_ready_nodes(nodes.len() - later)?;
        }
        Ok(())
    }

    fn start_registry(&mut self) -> Result<(), Error> {
        let reg = self.record.hosts[0].clone();
        let dir = self.host_dir(&reg.name).join("registry");
        let listen = SocketAddr::new(IpAddr::V4(reg.addr), cluster::REGISTRY_PORT);
        let registry =
            Registry::start(listen, &dir, Some(&reg.netns)).map_err(|e| Error::Fixture {
                what: format!("registry on {}", reg.name),
                detail: e.to_string(),
            })?;
        self.registry = Some(registry);
        self.link_log(&reg.name, "registry", &dir.join("registry.log"));
        self.adopt(&reg.name, "registry", &dir.join("config.yml"))
    }

    fn push_images(&self) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start a runtime to push images", e))?;
        runtime
            .block_on(fixtures::images::build_and_push(&self.record.registry))
            .map_err(|e| Error::Fixture {
                what: format!("pushing test images to {}", self.record.registry),
                detail: e.to_string(),
            })
    }

    fn start_containerd(&mut self, host: &Host) -> Result<(), Error> {
        let dir = cluster::NodeDirs::new(&self.record.root, &host.name).containerd();
        let containerd =
            Containerd::start(&dir, Some(&host.netns)).map_err(|e| Error::Fixture {
                what: format!("containerd on {}", host.name),
                detail: e.to_string(),
            })?;
        self.containerds.push((host.name.clone(), containerd));
        self.link_log(&host.name, "containerd", &dir.join("containerd.log"));
        self.adopt(&host.name, "containerd", &dir.join("config.toml"))
    }

    /// Records the pid of a process a fixture started, found by a path on its
    /// command line, so `down` from another process can stop it.
    fn adopt(&mut self, host: &str, name: &str, config: &Path) -> Result<(), Error> {
        if let Some(pid) = process::find(&self.record.root, &config.to_string_lossy()) {
            self.record.processes.push(Proc {
                host: host.into(),
                name: name.into(),
                pid,
            });
        }
        self.record.save()
    }

    /// Fixtures log next to their state; the link gathers every log of a
    /// host in `<host>/logs/`.
    fn link_log(&self, host: &str, name: &str, target: &Path) {
        let link = self.host_dir(host).join("logs").join(format!("{name}.log"));
        let _ = std::os::unix::fs::symlink(target, link);
    }

    fn spawn_daemon(&mut self, host: &Host, bin: &str, args: &[String]) -> Result<(), Error> {
        let log = self.log_path(&host.name, bin);
        let child = process::spawn(&host.netns, &self.bin_dir.join(bin), args, &log)?;
        let pid = i32::try_from(child.id())
            .map_err(|_| Error::Config(format!("pid of {bin} out of range")))?;
        self.children.push(child);
        self.record.processes.push(Proc {
            host: host.name.clone(),
            name: bin.into(),
            pid,
        });
        self.record.save()
    }

    /// Starts a host's manager daemon and waits for its control socket.
    fn start_manager_daemon(&mut self, host: &Host, dirs: &cluster::NodeDirs) -> Result<(), Error> {
        self.spawn_daemon(host, cluster::MANAGER, &cluster::manager_args(dirs))?;
        let socket = dirs.control_socket();
        // Connect, not just look: a socket file is no proof of a listener.
        self.wait_daemons(&format!("control socket {}", socket.display()), || {
            std::os::unix::net::UnixStream::connect(&socket).map(drop)
        })
    }

    /// Starts the first manager, creates the cluster on it and starts its
    /// netd and agent.
    fn start_first_manager(&mut self, host: &Host, init_args: &[String]) -> Result<(), Error> {
        let dirs = cluster::NodeDirs::new(&self.record.root, &host.name);
        std::fs::create_dir_all(dirs.run())
            .map_err(|e| Error::io(format!("create {}", dirs.run().display()), e))?;
        self.start_manager_daemon(host, &dirs)?;
        let addr = host.addr.to_string();
        let mut args = vec!["swarm", "init", "--advertise-addr", &addr];
        args.extend(init_args.iter().map(String::as_str));
        let init = self.shoal(&args)?;
        if !init.status.success() {
            return Err(Error::Command {
                cmd: format!("shoal {}", args.join(" ")),
                status: init.status.to_string(),
                stderr: String::from_utf8_lossy(&init.stderr).trim().to_string(),
            });
        }
        let manager = format!("127.0.0.1:{}", cluster::MANAGER_PORT);
        self.spawn_daemon(host, cluster::NETD, &cluster::netd_args(&dirs, &manager))?;
        let containerd = dirs.containerd().join("containerd.sock");
        let registry = self.record.registry.clone();
        let args = cluster::agent_args(&dirs, &containerd, &manager, &registry, &host.name);
        self.spawn_daemon(host, cluster::AGENT, &args)
    }

    /// The `shoal` CLI binary the lab uses (for calls with other flags than
    /// [`Lab::shoal`]'s).
    pub fn cli_path(&self) -> PathBuf {
        self.bin_dir.join(cluster::CLI)
    }

    /// A client bundle for `name` with `role`, written to `dir/NAME.bundle`
    /// over the local socket.
    pub fn client_bundle(&self, dir: &Path, name: &str, role: &str) -> PathBuf {
        let path = dir.join(format!("{name}.bundle"));
        let out = self
            .shoal_ok([
                "swarm",
                "client-bundle",
                "create",
                name,
                "--role",
                role,
                "-o",
                &path.to_string_lossy(),
            ])
            .unwrap_or_else(|e| panic!("create bundle {name}: {e}"));
        assert!(out.contains(&format!("role {role}")), "{out}");
        path
    }

    /// The CLI as a remote user with config dir `config` runs it: only
    /// contexts and flags choose a manager.
    pub fn remote(&self, config: PathBuf) -> RemoteCli<'_> {
        RemoteCli::new(self, config)
    }

    /// The pid of a lab process (`shoal-manager`, `containerd`, ...) on a host.
    pub fn pid(&self, host: &str, name: &str) -> Option<i32> {
        self.record
            .processes
            .iter()
            .find(|p| p.host == host && p.name == name)
            .map(|p| p.pid)
    }

    /// `kill -9` of one of a host's shoal daemons (`shoal-manager`,
    /// `shoal-agent`, `shoal-netd`), then the same daemon started again with
    /// the same flags: a crash and restart, as an operator would see it.
    pub fn kill9_and_restart(&mut self, host: &str, daemon: &str) -> Result<(), Error> {
        self.kill9(host, daemon)?;
        self.start_again(host, daemon)
    }

    /// `kill -9` of one of a host's shoal daemons.
    pub fn kill9(&mut self, host: &str, daemon: &str) -> Result<(), Error> {
        let index = self
            .record
            .processes
            .iter()
            .position(|p| p.host == host && p.name == daemon)
            .ok_or_else(|| Error::Config(format!("no {daemon} runs on {host}")))?;
        let pid = self.record.processes[index].pid;
        if let Some(child) = self.children.iter_mut().find(|c| c.id() as i32 == pid) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.retain(|c| c.id() as i32 != pid);
        self.record.processes.remove(index);
        self.record.save()
    }

    /// Starts a killed shoal daemon of a host again, with its usual flags.
    pub fn start_again(&mut self, host: &str, daemon: &str) -> Result<(), Error> {
        let host = self.host(host)?.clone();
        let dirs = cluster::NodeDirs::new(&self.record.root, &host.name);
        let args = match daemon {
            cluster::MANAGER => cluster::manager_args(&dirs),
            cluster::NETD => cluster::netd_args(&dirs, &self.manager_of(&host)?),
            cluster::AGENT => {
                let containerd = dirs.containerd().join("containerd.sock");
                let registry = self.record.registry.clone();
                let manager = self.manager_of(&host)?;
                cluster::agent_args(&dirs, &containerd, &manager, &registry, &host.name)
            }
            other => return Err(Error::Config(format!("{other} is not a shoal daemon"))),
        };
        self.spawn_daemon(&host, daemon, &args)
    }

    /// Cuts test host `host` off the lab network, both ways: its daemons
    /// keep running and talk over loopback, but no packet crosses between it
    /// and any other host until [`Lab::heal`]. Tearing the lab down needs no
    /// heal first.
    pub fn cut(&self, host: &str) -> Result<(), Error> {
        partition::cut(self.host(host)?)
    }

    /// Puts a host cut by [`Lab::cut`] back on the lab network.
    pub fn heal(&self, host: &str) -> Result<(), Error> {
        partition::heal(self.host(host)?)
    }

    /// Whether `host` is cut off the lab network right now.
    pub fn is_cut(&self, host: &str) -> Result<bool, Error> {
        partition::is_cut(self.host(host)?)
    }

    /// `unix://…/control.sock` of the manager daemon on `host`, for the
    /// CLI's `--host` (a write there is forwarded to the leader). Workers
    /// run one too, idle until promoted.
    pub fn manager_socket(&self, host: &str) -> Result<String, Error> {
        let host = self.host(host)?;
        if host.role == Role::Registry {
            return Err(Error::Config(format!("{} is not a node", host.name)));
        }
        let dirs = cluster::NodeDirs::new(&self.record.root, &host.name);
        Ok(format!("unix://{}", dirs.control_socket().display()))
    }

    /// A control API client on the manager daemon of `host`, through its
    /// local socket (what the benchmarks drive the cluster with).
    pub async fn control_client(
        &self,
        host: &str,
    ) -> Result<
        shoal_proto::control::v1::control_client::ControlClient<tonic::transport::Channel>,
        Error,
    > {
        let socket =
            cluster::NodeDirs::new(&self.record.root, &self.host(host)?.name).control_socket();
        let shown = socket.display().to_string();
        let channel = tonic::transport::Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| Error::Config(format!("connect to {shown}: {e}")))?;
        Ok(
            shoal_proto::control::v1::control_client::ControlClient::new(channel)
                .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
    }

    /// The manager a node's daemons talk to: their own on managers, m1's
    /// from workers.
    fn manager_of(&self, host: &Host) -> Result<String, Error> {
        if host.role == Role::Manager {
            return Ok(format!("127.0.0.1:{}", cluster::MANAGER_PORT));
        }
        let m1 = self.host("m1")?;
        Ok(format!("{}:{}", m1.addr, cluster::MANAGER_PORT))
    }

    /// Adds a node to the cluster the way an operator does: `shoal swarm
    /// join-token -q worker|manager` on m1, `shoal swarm join` on the node
    /// (the node's manager daemon runs first; a manager's joins Raft), then
    /// its netd and agent.
    fn join(&mut self, node: &Host) -> Result<(), Error> {
        let dirs = cluster::NodeDirs::new(&self.record.root, &node.name);
        std::fs::create_dir_all(dirs.run())
            .map_err(|e| Error::io(format!("create {}", dirs.run().display()), e))?;
        let manager = node.role == Role::Manager;
        let role = if manager { "manager" } else { "worker" };
        let token = self.shoal_ok(["swarm", "join-token", "-q", role])?;
        // Every node runs a manager daemon, idle on workers until a
        // promotion, as every Docker node runs dockerd.
        self.start_manager_daemon(node, &dirs)?;
        let m1 = format!("{}:{}", self.host("m1")?.addr, cluster::MANAGER_PORT);
        let mut args = cluster::join_args(&dirs, token.trim(), &m1, &node.name);
        if manager {
            let local = format!("unix://{}", dirs.control_socket().display());
            args.splice(0..0, ["--host".to_string(), local]);
            args.extend(["--advertise-addr".to_string(), node.addr.to_string()]);
            // The remote address stays last.
            let remote = args.remove(args.len() - 3);
            args.push(remote);
        }
        let cli = self
            .bin_dir
            .join(cluster::CLI)
            .to_string_lossy()
            .into_owned();
        let out = command::output(self.command(&node.name, &cli)?.args(&args))?;
        if !out.status.success() {
            return Err(Error::Command {
                cmd: format!("shoal swarm join on {}", node.name),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let manager = self.manager_of(node)?;
        self.spawn_daemon(node, cluster::NETD, &cluster::netd_args(&dirs, &manager))?;
        let containerd = dirs.containerd().join("containerd.sock");
        let registry = self.record.registry.clone();
        let args = cluster::agent_args(&dirs, &containerd, &manager, &registry, &node.name);
        self.spawn_daemon(node, cluster::AGENT, &args)
    }

    /// Joins a worker host the lab left out of the cluster
    /// ([`LabConfig::unjoined_workers`]), as an operator would, and waits
    /// until every joined node is ready.
    pub fn join_worker(&mut self, name: &str) -> Result<(), Error> {
        let host = self.host(name)?.clone();
        if self.pid(name, cluster::AGENT).is_some() {
            return Err(Error::Config(format!("{name} is in the cluster already")));
        }
        self.join(&host)?;
        let joined = self
            .record
            .hosts
            .iter()
            .filter(|h| self.pid(&h.name, cluster::AGENT).is_some())
            .count();
        self.wait_ready_nodes(joined)
    }

    fn wait_ready_nodes(&mut self, expected: usize) -> Result<(), Error> {
        let what = format!("{expected} Ready node(s) in `shoal node ls`");
        let shoal = self.bin_dir.join(cluster::CLI);
        let host = self.record.shoal_host.clone();
        self.wait_daemons(&what, || {
            let out = command::output(
                Command::new(&shoal)
                    .args(["--host", &host])
                    .args(["node", "ls", "--format", "json"]),
            )
            .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            let ready = cluster::ready_nodes(&String::from_utf8_lossy(&out.stdout))?;
            if ready >= expected {
                Ok(())
            } else {
                Err(format!("{ready} Ready"))
            }
        })
    }

    /// Polls `probe` until it holds, failing at once (with the log tail) when
    /// one of the lab's daemons exits, and at the timeout with every log tail.
    fn wait_daemons<E: std::fmt::Display>(
        &mut self,
        what: &str,
        mut probe: impl FnMut() -> Result<(), E>,
    ) -> Result<(), Error> {
        let mut exited = None;
        let procs = self.record.processes.clone();
        let children = &mut self.children;
        let result = wait_until(what, self.ready_timeout, || {
            for (child, proc) in children.iter_mut().zip(daemon_procs(&procs)) {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some((proc.clone(), status.to_string()));
                    return Ok(());
                }
            }
            probe().map_err(|e| e.to_string())
        });
        if let Some((proc, status)) = exited {
            let log = self.log_path(&proc.host, &proc.name);
            return Err(Error::Exited {
                what: format!("{} on {}", proc.name, proc.host),
                status,
                tail: process::tail(&log, 20),
                log,
            });
        }
        result.map_err(|e| match e {
            Error::Timeout {
                what,
                timeout,
                detail,
            } => Error::Timeout {
                what,
                timeout,
                detail: format!("{detail}\n{}", self.log_tails()),
            },
            other => other,
        })
    }

    fn log_tails(&self) -> String {
        daemon_procs(&self.record.processes)
            .map(|p| {
                format!(
                    "--- {} on {}:\n{}",
                    p.name,
                    p.host,
                    process::tail(&self.log_path(&p.host, &p.name), 15)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn host_dir(&self, host: &str) -> PathBuf {
        plan::host_dir(&self.record.root, host)
    }

    /// `<root>/<host>/logs/<proc>.log`: where a lab process logs.
    pub fn log_path(&self, host: &str, proc: &str) -> PathBuf {
        self.host_dir(host).join("logs").join(format!("{proc}.log"))
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The one folder under which every host keeps its state (`<root>/<host>/`).
    pub fn root(&self) -> &Path {
        &self.record.root
    }

    /// `host:port` of the lab registry, as image references want it.
    pub fn registry(&self) -> &str {
        &self.record.registry
    }

    /// Where [`Lab::start_guarded_registry`] listens (`host:port`); the
    /// lab's agents reach it over plain HTTP.
    pub fn guarded_registry(&self) -> String {
        cluster::guarded_registry(&self.record.registry)
    }

    /// A password-protected registry on the registry host (at
    /// [`Lab::guarded_registry`]), serving the lab's images to `user` with
    /// `password` only; it stops when dropped.
    pub fn start_guarded_registry(&self, user: &str, password: &str) -> Result<Registry, Error> {
        let reg = &self.record.hosts[0];
        let images = self
            .registry
            .as_ref()
            .ok_or_else(|| Error::Config("the lab has no registry".into()))?;
        let listen = SocketAddr::new(IpAddr::V4(reg.addr), cluster::GUARDED_REGISTRY_PORT);
        let dir = self.host_dir(&reg.name).join("guarded-registry");
        Registry::start_guarded(listen, &dir, Some(&reg.netns), images, user, password).map_err(
            |e| Error::Fixture {
                what: format!("password-protected registry on {}", reg.name),
                detail: e.to_string(),
            },
        )
    }

    /// `unix://…/control.sock` of the first manager, as `SHOAL_HOST` takes it.
    pub fn shoal_host(&self) -> &str {
        &self.record.shoal_host
    }

    /// The lab subnet, `10.201.X.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}/24", plan::addr(self.record.octet, 0))
    }

    /// The root namespace's address on the lab bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        plan::addr(self.record.octet, 1)
    }

    pub fn hosts(&self) -> &[Host] {
        &self.record.hosts
    }

    pub fn host(&self, name: &str) -> Result<&Host, Error> {
        self.record.host(name)
    }

    pub fn host_addr(&self, name: &str) -> Result<Ipv4Addr, Error> {
        Ok(self.host(name)?.addr)
    }

    /// The `export` lines `shoal-lab env` prints for this lab (with this
    /// lab's shoal binaries on `PATH`).
    pub fn env(&self) -> Result<String, Error> {
        env_lines(&self.record, &self.bin_dir)
    }

    /// Runs the shoal CLI against the lab (from the root namespace, through
    /// the first manager's control socket).
    pub fn shoal<I, S>(&self, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        command::output(
            Command::new(self.bin_dir.join(cluster::CLI))
                .args(["--host", &self.record.shoal_host])
                .env("SHOAL_REGISTRY", &self.record.registry)
                .args(args),
        )
    }

    /// [`Lab::shoal`] that fails unless the command succeeds; returns stdout.
    pub fn shoal_ok<I, S>(&self, args: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.shoal(&args)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        Err(Error::Command {
            cmd: format!("shoal {}", shown.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// A test's step: [`Lab::shoal_ok`], panicking with the command and
    /// why when it fails.
    pub fn shoal_must(&self, args: &[&str]) -> String {
        self.shoal_ok(args)
            .unwrap_or_else(|e| panic!("shoal {}: {e}", args.join(" ")))
    }

    /// `service ps SERVICE --no-trunc --format json`: the service's tasks as
    /// docker's JSON rows, ids, images and errors in full (a test's step:
    /// panics when it fails). [`task_error`] reads a row's error.
    pub fn service_ps(&self, service: &str) -> Vec<serde_json::Value> {
        let json = self.shoal_must(&["service", "ps", "--no-trunc", service, "--format", "json"]);
        json_lines(&json).unwrap_or_else(|e| panic!("service ps {service}: {e}"))
    }

    /// A command running `program` inside test host `host`.
    pub fn command(&self, host: &str, program: &str) -> Result<Command, Error> {
        host_command(&self.record, host, program)
    }

    /// Runs `cmd[0] cmd[1..]` inside test host `host`, capturing its output
    /// whatever its exit status.
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Result<Output, Error> {
        let (program, args) = cmd
            .split_first()
            .ok_or_else(|| Error::Config("exec needs a command".into()))?;
        command::output(self.command(host, program)?.args(args))
    }

    /// `GET path` on `addr:port` from the root namespace (plain HTTP/1.0,
    /// 3 s timeout); returns the status code and body.
    pub fn http_get(&self, addr: Ipv4Addr, port: u16, path: &str) -> Result<(u16, String), Error> {
        let target = SocketAddr::new(IpAddr::V4(addr), port);
        fixtures::http_get(target, path, HTTP_TIMEOUT)
            .map_err(|e| Error::io(format!("GET http://{target}{path}"), e))
    }

    /// The containerd socket of node host `host`.
    pub fn containerd_socket(&self, host: &str) -> Result<PathBuf, Error> {
        self.containerds
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, c)| c.socket().to_path_buf())
            .ok_or_else(|| Error::UnknownHost {
                lab: self.record.name.clone(),
                host: host.to_string(),
            })
    }

    /// Pids of the containers running on a host (containerd tasks in shoal's
    /// namespace, as `ctr tasks ls` shows them).
    pub fn running_task_pids(&self, host: &str) -> Result<Vec<u32>, Error> {
        let socket = self.containerd_socket(host)?;
        let out = command::output(Command::new("ctr").arg("--address").arg(&socket).args([
            "--namespace",
            cluster::CONTAINERD_NAMESPACE,
            "tasks",
            "ls",
        ]))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(2) == Some("RUNNING"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect())
    }

    /// See [`wait_until`].
    pub fn wait_until<T, E: std::fmt::Display>(
        &self,
        what: &str,
        timeout: Duration,
        probe: impl FnMut() -> Result<T, E>,
    ) -> Result<T, Error> {
        wait_until(what, timeout, probe)
    }

    /// What of this lab is still on the machine.
    pub fn leaks(&self) -> Vec<String> {
        leaks::leaks_at(&self.record.name, &self.record.root)
    }

    /// Leaves the lab running after this value is gone (`shoal-lab up`): its
    /// processes keep going and `down_at(root)` stops them later.
    pub fn detach(mut self) -> Record {
        self.done = true;
        // A fixture's Drop stops its process; the lab's record owns them now.
        for (_, containerd) in self.containerds.drain(..) {
            std::mem::forget(containerd);
        }
        std::mem::forget(self.registry.take());
        self.record.clone()
    }

    /// Tears the lab down: stops the daemons, containerds and registry, then
    /// removes whatever of the lab is left (processes, mounts, namespaces,
    /// links, the root dir). Fails with every error met and every leak left.
    pub fn down(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        self.done = true;
        for child in self.children.iter_mut().rev() {
            process::stop_child(child, process::GRACE);
        }
        // Containerds first (their Drop deletes tasks and containers through
        // containerd), the registry last.
        while let Some((_, containerd)) = self.containerds.pop() {
            drop(containerd);
        }
        drop(self.registry.take());
        let errors = stop_recorded(&self.record);
        finish(&self.record, errors)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        if !self.done {
            if let Err(e) = self.teardown() {
                eprintln!("lab {}: {e}", self.record.name);
            }
        }
    }
}

impl Lab {
    /// A failed test's lab goes, its logs stay: copied to
    /// `$TMPDIR/shoal-lab-logs/<lab>/<host>/` for whoever reads the failure.
    fn keep_logs(&self) {
        let dest = std::env::temp_dir()
            .join("shoal-lab-logs")
            .join(&self.record.name);
        let _ = std::fs::remove_dir_all(&dest);
        for host in &self.record.hosts {
            let logs = self.host_dir(&host.name).join("logs");
            let Ok(entries) = std::fs::read_dir(&logs) else {
                continue;
            };
            let to = dest.join(&host.name);
            if std::fs::create_dir_all(&to).is_err() {
                continue;
            }
            for entry in entries.flatten() {
                // Links to fixtures' logs are followed: the copy is the text.
                let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
            }
        }
        eprintln!("lab {}: logs kept in {}", self.record.name, dest.display());
    }
}

/// The recorded processes that are shoal daemons (spawned by the lab itself,
/// in the order of `Lab::children`).
fn daemon_procs(procs: &[Proc]) -> impl Iterator<Item = &Proc> {
    procs
        .iter()
        .filter(|p| [cluster::MANAGER, cluster::NETD, cluster::AGENT].contains(&p.name.as_str()))
}

/// Stops the recorded processes, last started first, then sweeps the lab.
fn stop_recorded(record: &Record) -> Vec<String> {
    for proc in record.processes.iter().rev() {
        process::stop(proc.pid, &record.root, process::GRACE);
    }
    leaks::sweep(&record.name, &record.root)
}

fn finish(record: &Record, errors: Vec<String>) -> Result<(), Error> {
    let leaks = leaks::leaks_at(&record.name, &record.root);
    if errors.is_empty() && leaks.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown { errors, leaks })
    }
}

/// Deals with what an earlier lab of the same name left: a running lab is
/// refused (or replaced when asked), a dead one's remains are swept.
fn clear_previous(config: &LabConfig, root: &Path) -> Result<(), Error> {
    let has_record = Record::path(root).exists();
    let empty_or_missing = std::fs::read_dir(root).map_or(true, |mut d| d.next().is_none());
    if !has_record && !empty_or_missing {
        return Err(Error::ForeignRoot {
            root: root.to_path_buf(),
        });
    }
    let root_entry = format!("directory {}", root.display());
    let live: Vec<String> = leaks::leaks_at(&config.name, root)
        .into_iter()
        .filter(|l| *l != root_entry)
        .collect();
    let running = live
        .iter()
        .any(|l| l.starts_with("process") || l.starts_with("network namespace"));
    if running && !config.replace {
        return Err(Error::AlreadyUp {
            name: config.name.clone(),
            root: root.to_path_buf(),
        });
    }
    let errors = match Record::load(root) {
        Ok(Some(record)) => stop_recorded(&record),
        _ => leaks::sweep(&config.name, root),
    };
    finish_named(&config.name, root, errors)
}

fn finish_named(name: &str, root: &Path, errors: Vec<String>) -> Result<(), Error> {
    let leaks = leaks::leaks_at(name, root);
    if errors.is_empty() && leaks.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown { errors, leaks })
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::io(format!("resolve {}", path.display()), e))
}

/// Single-quotes `s` for a POSIX shell when it holds anything unusual.
fn shell_quote(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@".contains(c));
    if plain && !s.is_empty() {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use super::{env_lines, shell_quote, Record};

    fn record(root: &str) -> Record {
        Record {
            name: "t".into(),
            root: PathBuf::from(root),
            octet: 0,
            bridge: "shlb-t".into(),
            hosts: Vec::new(),
            processes: Vec::new(),
            registry: "10.201.0.10:5000".into(),
            shoal_host: format!("unix://{root}/m1/run/control.sock"),
        }
    }

    /// What `eval "$(shoal-lab env)"` leaves in a clean bash.
    fn eval_in_bash(lines: &str, path: &str) -> String {
        let out = Command::new("env")
            .args([
                "-i",
                &format!("PATH={path}"),
                "/bin/bash",
                "--noprofile",
                "--norc",
            ])
            .arg("-c")
            .arg(r#"set -e; eval "$1"; printf '%s\n' "$PATH" "$SHOAL_HOST" "$SHOAL_LAB_ROOT""#)
            .arg("bash")
            .arg(lines)
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn env_lines_put_the_bin_dir_first_on_path_and_keep_the_rest() {
        let lines = env_lines(&record("/tmp/lab root"), Path::new("/opt/it's/bin")).unwrap();
        assert_eq!(
            eval_in_bash(&lines, "/usr/bin:/bin"),
            "/opt/it's/bin:/usr/bin:/bin\nunix:///tmp/lab root/m1/run/control.sock\n/tmp/lab root\n"
        );
        // An empty PATH gains no empty entry (which would mean the cwd).
        let out = eval_in_bash(&lines, "");
        assert_eq!(out.lines().next(), Some("/opt/it's/bin"), "{out}");
    }

    #[test]
    fn env_lines_refuse_a_bin_dir_path_cannot_hold() {
        assert!(env_lines(&record("/tmp/l"), Path::new("/opt/a:b")).is_err());
    }

    #[test]
    fn env_values_are_quoted_only_when_needed() {
        assert_eq!(
            shell_quote("unix:///var/lib/x/control.sock"),
            "unix:///var/lib/x/control.sock"
        );
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
