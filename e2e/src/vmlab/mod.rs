//! The VM lab: shoal on Debian VMs with kernels of their own (QEMU; KVM
//! where it runs guests, emulation otherwise), joined into a cluster the
//! way an operator does it. It proves what the namespace lab cannot: other
//! kernels, a NIC between hosts, kernel WireGuard.
//!
//! Where the traffic goes (a rule of the machines shoal is tested on): the
//! VMs' cluster network is a bridge inside a network namespace the lab
//! makes (`shvm-<name>`), holding their taps, the lab registry and nothing
//! else; from the machine, the VMs are reached only through ports QEMU
//! forwards on 127.0.0.1 (SSH on every VM, the manager's port on m1).
//!
//! The VMs boot the box that `vagrant/box/build` makes (cached), and are
//! provisioned by `vagrant/provision.sh`, the script the Vagrantfile runs.
//! Dropping a [`VmLab`] stops every VM and removes what the lab made.

mod record;
mod ssh;

pub mod qemu;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixtures::Registry;
use crate::lab::command::{ip, output, run};
use crate::lab::{cluster, process, wait_until, Error};

pub use qemu::{Accel, BoxImage};
pub use record::{VmHost, VmRecord};
pub use ssh::Ssh;

/// The lab network inside the lab's namespace (each lab has its own
/// namespace, so every lab uses the same subnet).
const BRIDGE: &str = "br0";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
const PREFIX: u8 = 24;
const REGISTRY_PORT: u16 = 5000;
const MANAGER_PORT: u16 = 4242;
/// Where `vagrant/provision.sh` goes in each VM, and where the 9p share is.
const PROVISION: &str = "/root/provision.sh";
/// Emulated VMs take seconds for a TLS handshake of a debug build.
const VM_CONNECT_TIMEOUT_SECS: u32 = 30;
/// Emulated VMs apply the managers' view seconds after its commit (one
/// measured 2.7 s), so a task that leaves the load balancers stays up
/// this long before it stops.
const VM_DRAIN_GRACE_MS: u32 = 5_000;
const SHARE: &str = "/opt/shoal/share";
/// How long a KVM guest gets to print on its serial port before the lab
/// takes KVM for broken and emulates instead.
const KVM_PROBE: Duration = Duration::from_secs(8);

/// What VM lab to bring up.
#[derive(Debug, Clone)]
pub struct VmLabConfig {
    /// 1..=8 characters of `a-z`, `0-9`: names the namespace and the taps.
    pub name: String,
    pub managers: u32,
    pub workers: u32,
    /// Where the VMs' disks, logs and the lab record live; defaults to
    /// `/var/lib/shoal-vm-lab/<name>`.
    pub root: Option<PathBuf>,
    /// The shoal binaries the VMs install; `SHOAL_BIN_DIR` or the cargo
    /// target dir of the running executable by default.
    pub bin_dir: Option<PathBuf>,
    /// `None`: KVM if a guest boots under it, else emulation; `SHOAL_VM_ACCEL`
    /// (`kvm` or `tcg`) decides where set.
    pub accel: Option<Accel>,
    pub memory_mib: u32,
    /// Push the test images (web:v1, web:v2, crash:v1) into the lab registry.
    pub images: bool,
    pub ready_timeout: Duration,
}

impl VmLabConfig {
    pub fn new(name: impl Into<String>) -> Self {
        VmLabConfig {
            name: name.into(),
            managers: 1,
            workers: 2,
            root: None,
            bin_dir: None,
            accel: None,
            memory_mib: 1024,
            images: true,
            ready_timeout: Duration::from_secs(600),
        }
    }
}

/// A running VM lab.
pub struct VmLab {
    record: VmRecord,
    registry: Option<Registry>,
    done: bool,
}

/// Where the lab keeps a lab named `name` unless told otherwise.
pub fn default_root(name: &str) -> PathBuf {
    PathBuf::from("/var/lib/shoal-vm-lab").join(name)
}

/// The namespace holding a lab's network.
pub fn netns_name(name: &str) -> String {
    format!("shvm-{name}")
}

fn validate_name(name: &str) -> Result<(), Error> {
    let ok = (1..=8).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "VM lab name {name:?}: 1 to 8 characters of a-z and 0-9"
        )))
    }
}

/// Builds the box (or finds it cached) with `vagrant/box/build`.
pub fn build_box() -> Result<BoxImage, Error> {
    let script = repo_dir().join("vagrant/box/build");
    let mut cmd = Command::new(&script);
    cmd.stderr(std::process::Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("run {}", script.display()), e))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: script.display().to_string(),
            status: out.status.to_string(),
            stderr: "see its messages above".into(),
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .ok_or_else(|| Error::Config(format!("{} printed no box directory", script.display())))?;
    Ok(BoxImage {
        dir: PathBuf::from(dir.trim()),
    })
}

/// The checkout this crate was built from (the box build and the
/// provisioning script live there).
fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `n` distinct TCP ports on 127.0.0.1, free right now (QEMU binds them a
/// moment later): all are held at once while picked, so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("find a free port", e)))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| Error::io("find a free port", e))
        })
        .collect()
}

/// The hosts of a lab: managers m1.., then workers w1.., addresses from
/// .11, each with its SSH port from `ports`.
fn plan(name: &str, managers: u32, workers: u32, ports: &[u16]) -> Result<Vec<VmHost>, Error> {
    if managers == 0 || managers + workers > 20 {
        return Err(Error::Config(
            "a VM lab has 1 or more managers and at most 20 VMs".into(),
        ));
    }
    let names = (1..=managers)
        .map(|i| (format!("m{i}"), cluster_role(true)))
        .chain((1..=workers).map(|i| (format!("w{i}"), cluster_role(false))));
    names
        .enumerate()
        .map(|(i, (vm, role))| {
            Ok(VmHost {
                tap: format!("vt{name}.{vm}"),
                addr: Ipv4Addr::new(10, 203, 0, 11 + i as u8),
                ssh_port: *ports
                    .get(i)
                    .ok_or_else(|| Error::Config("fewer ports than VMs".into()))?,
                pid: None,
                role,
                name: vm,
            })
        })
        .collect()
}

fn cluster_role(manager: bool) -> String {
    if manager { "manager" } else { "worker" }.to_string()
}

impl VmLab {
    /// Brings the lab up: box, network, registry, VMs, provisioning, and a
    /// cluster whose nodes are all Ready. On failure, everything made so far
    /// is removed again (the VMs' serial logs are kept, see the error).
    pub fn up(config: VmLabConfig) -> Result<VmLab, Error> {
        validate_name(&config.name)?;
        for tool in ["qemu-system-x86_64", "qemu-img", "ssh", "debootstrap"] {
            if !in_path(tool) {
                return Err(Error::Config(format!(
                    "the VM lab needs {tool}: run ./scripts/install-deps (packages qemu-system-x86, \
                     qemu-utils, openssh-client, debootstrap)"
                )));
            }
        }
        let bin_dir = cluster::bin_dir(config.bin_dir.as_deref())?;
        cluster::check_bins(&bin_dir)?;
        let root = config
            .root
            .clone()
            .unwrap_or_else(|| default_root(&config.name));
        if let Some(stale) = VmRecord::load(&root)? {
            // A crashed run's lab: take it down before making a new one.
            let _ = teardown(&stale);
        }
        let image = build_box()?;
        let count = (config.managers + config.workers) as usize;
        // One SSH port per VM, and m1's manager port.
        let mut ports = free_ports(count + 1)?;
        let manager_port = ports.pop().unwrap_or_default();
        let vms = plan(&config.name, config.managers, config.workers, &ports)?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let netns = netns_name(&config.name);
        let record = VmRecord {
            name: config.name.clone(),
            root: root.clone(),
            netns: netns.clone(),
            image,
            bin_dir,
            accel: Accel::Tcg,
            registry: SocketAddr::from((GATEWAY, REGISTRY_PORT)).to_string(),
            manager_port,
            bundle: root.join("client.bundle"),
            vms,
        };
        let mut lab = VmLab {
            record,
            registry: None,
            done: false,
        };
        lab.record.save()?;
        let started = Instant::now();
        if let Err(e) = lab.build(&config, started) {
            let logs = lab.keep_logs();
            if std::env::var_os("SHOAL_VM_LAB_KEEP").is_some() {
                eprintln!(
                    "VM lab {}: kept for inspection (SHOAL_VM_LAB_KEEP)",
                    config.name
                );
                lab.detach();
                return Err(Error::Fixture {
                    what: format!("VM lab {} (kept; logs in {})", config.name, logs.display()),
                    detail: e.to_string(),
                });
            }
            return Err(Error::Fixture {
                what: format!(
                    "VM lab {} (serial logs kept in {})",
                    config.name,
                    logs.display()
                ),
                detail: e.to_string(),
            });
        }
        eprintln!(
            "VM lab {}: {} VMs ready ({:?}) in {:.0} s",
            config.name,
            lab.record.vms.len(),
            lab.record.accel,
            started.elapsed().as_secs_f64()
        );
        Ok(lab)
    }

    fn build(&mut self, config: &VmLabConfig, started: Instant) -> Result<(), Error> {
        let name = self.record.name.clone();
        let progress = |what: &str| {
            eprintln!(
                "VM lab {name}: {what} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        };
        self.create_network()?;
        self.start_registry(config.images)?;
        progress("registry up");
        self.record.accel = match config.accel.or_else(accel_from_env) {
            Some(accel) => accel,
            None => self.probe_accel(config.memory_mib)?,
        };
        for i in 0..self.record.vms.len() {
            self.start_vm(i, config.memory_mib)?;
        }
        progress(&format!("VMs started ({:?})", self.record.accel));
        for vm in self.record.vms.clone() {
            let ssh = self.ssh(&vm.name)?;
            wait_until(
                &format!(
                    "SSH on {} (serial log {})",
                    vm.name,
                    self.serial_log(&vm.name).display()
                ),
                config.ready_timeout,
                || ssh.run("true"),
            )?;
            ssh.upload(include_bytes!("../../../vagrant/provision.sh"), PROVISION)?;
        }
        progress("SSH answers on every VM");
        self.provision(config.ready_timeout, &progress)
    }

    fn create_network(&self) -> Result<(), Error> {
        let ns = &self.record.netns;
        ip(["netns", "add", ns])?;
        ip(["-n", ns, "link", "set", "lo", "up"])?;
        ip(["-n", ns, "link", "add", BRIDGE, "type", "bridge"])?;
        ip([
            "-n",
            ns,
            "addr",
            "add",
            &format!("{GATEWAY}/{PREFIX}"),
            "dev",
            BRIDGE,
        ])?;
        ip(["-n", ns, "link", "set", BRIDGE, "up"])?;
        Ok(())
    }

    fn start_registry(&mut self, images: bool) -> Result<(), Error> {
        let dir = self.record.root.join("registry");
        let listen = SocketAddr::from((GATEWAY, REGISTRY_PORT));
        let registry = Registry::start(listen, &dir, Some(&self.record.netns)).map_err(|e| {
            Error::Fixture {
                what: "the VM lab's registry".into(),
                detail: e.to_string(),
            }
        })?;
        self.registry = Some(registry);
        if images {
            let registry = self.record.registry.clone();
            let netns = PathBuf::from("/run/netns").join(&self.record.netns);
            crate::probe::in_netns(&netns, move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime
                    .block_on(crate::fixtures::images::build_and_push(&registry))
                    .map_err(|e| e.to_string())
            })
            .map_err(|detail| Error::Fixture {
                what: format!("pushing the test images to {}", self.record.registry),
                detail,
            })?;
        }
        Ok(())
    }

    /// KVM if a guest prints under it within [`KVM_PROBE`], else TCG.
    fn probe_accel(&self, memory_mib: u32) -> Result<Accel, Error> {
        let dir = self.record.root.join("kvm-probe");
        let spec = qemu::VmSpec {
            name: "kvm-probe",
            cidr: format!("{GATEWAY}/{PREFIX}"),
            dir: &dir,
            tap: &format!("vt{}.probe", self.record.name),
            mac: [0x52, 0x54, 0x00, 0xcb, 0x00, 0x01],
            memory_mib,
            forwards: Vec::new(),
            share: &self.record.bin_dir,
        };
        let boots = qemu::kvm_boots(&spec, &self.record.image, KVM_PROBE)?;
        let _ = std::fs::remove_dir_all(&dir);
        if !boots {
            eprintln!(
                "VM lab {}: a guest under KVM printed nothing within {:?}; emulating (TCG)",
                self.record.name, KVM_PROBE
            );
        }
        Ok(if boots { Accel::Kvm } else { Accel::Tcg })
    }

    fn start_vm(&mut self, index: usize, memory_mib: u32) -> Result<(), Error> {
        let vm = self.record.vms[index].clone();
        let dir = self.vm_dir(&vm.name);
        let mut forwards = vec![(vm.ssh_port, 22)];
        if vm.name == "m1" {
            forwards.push((self.record.manager_port, MANAGER_PORT));
        }
        let spec = qemu::VmSpec {
            name: &vm.name,
            cidr: format!("{}/{PREFIX}", vm.addr),
            dir: &dir,
            tap: &vm.tap,
            // Locally administered, from the VM's address (unique in the lab).
            mac: {
                let [a, b, c, d] = vm.addr.octets();
                [0x52, 0x54, a, b, c, d]
            },
            memory_mib,
            forwards,
            share: &self.record.bin_dir,
        };
        let pid = qemu::start(&spec, &self.record.image, self.record.accel)?;
        self.record.vms[index].pid = Some(pid);
        self.record.save()?;
        // QEMU made the tap here; it belongs on the lab's bridge.
        ip(["link", "set", &vm.tap, "netns", &self.record.netns])?;
        ip([
            "-n",
            &self.record.netns,
            "link",
            "set",
            &vm.tap,
            "master",
            BRIDGE,
            "up",
        ])?;
        Ok(())
    }

    /// `swarm init` on m1, joins on the others (in parallel), then waits for
    /// every node to be Ready and fetches a client bundle for `env`.
    fn provision(&self, timeout: Duration, progress: &dyn Fn(&str)) -> Result<(), Error> {
        let registry = &self.record.registry;
        let (first, others) = self
            .record
            .vms
            .split_first()
            .ok_or_else(|| Error::Config("no VMs".into()))?;
        self.ssh(&first.name)?.run(&format!(
            "SHOAL_CONNECT_TIMEOUT={VM_CONNECT_TIMEOUT_SECS} SHOAL_DRAIN_GRACE_MS={VM_DRAIN_GRACE_MS} {PROVISION} {SHARE} init {} {registry}",
            first.addr
        ))?;
        progress(&format!("{} made the cluster", first.name));
        let m1 = self.ssh(&first.name)?;
        let remote = SocketAddr::from((first.addr, MANAGER_PORT));
        let worker_token = m1.run("shoal swarm join-token -q worker")?;
        let manager_token = m1.run("shoal swarm join-token -q manager")?;
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let joins: Vec<_> = others
                .iter()
                .map(|vm| {
                    let token = if vm.role == "manager" {
                        manager_token.trim()
                    } else {
                        worker_token.trim()
                    };
                    let script = format!(
                        "SHOAL_CONNECT_TIMEOUT={VM_CONNECT_TIMEOUT_SECS} SHOAL_DRAIN_GRACE_MS={VM_DRAIN_GRACE_MS} {PROVISION} {SHARE} join {} {} {remote} {token} {registry}",
                        vm.role, vm.addr
                    );
                    let ssh = self.ssh(&vm.name);
                    s.spawn(move || ssh?.run(&script).map(drop))
                })
                .collect();
            joins
                .into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| Err(Error::Config("a join panicked".into())))
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, Error>>()?;
        progress("the other VMs joined");
        let want = self.record.vms.len();
        wait_until(&format!("{want} Ready nodes"), timeout, || {
            let json = m1.run("shoal node ls --format json")?;
            match cluster::ready_nodes(&json) {
                Ok(n) if n == want => Ok(()),
                Ok(n) => Err(format!("{n} of {want} nodes Ready")),
                Err(e) => Err(e),
            }
            .map_err(|e| Error::Config(e.to_string()))
        })?;
        let bundle = m1.run(
            "rm -f /root/lab.bundle && shoal swarm client-bundle create --role admin \
             -o /root/lab.bundle vm-lab >/dev/null && cat /root/lab.bundle",
        )?;
        std::fs::write(&self.record.bundle, bundle)
            .map_err(|e| Error::io(format!("write {}", self.record.bundle.display()), e))
    }

    pub fn record(&self) -> &VmRecord {
        &self.record
    }

    pub fn ssh(&self, vm: &str) -> Result<Ssh, Error> {
        self.record.ssh(vm)
    }

    /// `shoal ARGS` on this machine, pointed at the lab as `env` points a
    /// shell (m1's manager through the forwarded port, the admin bundle);
    /// its stdout, or its stderr as the error.
    pub fn shoal(&self, args: &[&str]) -> Result<String, Error> {
        let record = &self.record;
        let mut cmd = Command::new(record.bin_dir.join("shoal"));
        cmd.args([
            "--host",
            &format!("tcp://127.0.0.1:{}", record.manager_port),
        ])
        .arg("--tls-dir")
        .arg(&record.bundle)
        .args(args)
        .env("SHOAL_REGISTRY", &record.registry)
        .env("SHOAL_CONNECT_TIMEOUT", VM_CONNECT_TIMEOUT_SECS.to_string());
        run(&mut cmd).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Cuts a VM's power: its QEMU is killed outright and the guest gets no
    /// shutdown, as a host that dies.
    pub fn power_off(&self, vm: &str) -> Result<(), Error> {
        let host = self.record.vm(vm)?;
        let pid = host
            .pid
            .ok_or_else(|| Error::Config(format!("VM {vm} was never started")))?;
        if process::kill9(pid, &self.record.root) {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "VM {vm}: QEMU (pid {pid}) would not die"
            )))
        }
    }

    /// Runs a shell script in a VM, failing unless it exits 0; its stdout.
    pub fn exec(&self, vm: &str, script: &str) -> Result<String, Error> {
        self.ssh(vm)?.run(script)
    }

    fn vm_dir(&self, vm: &str) -> PathBuf {
        self.record.root.join(vm)
    }

    pub fn serial_log(&self, vm: &str) -> PathBuf {
        self.vm_dir(vm).join("serial.log")
    }

    /// `export` lines for a shell: the shoal CLI reaches m1's manager over
    /// mTLS through the forwarded port, with an admin client bundle.
    pub fn env(&self) -> String {
        self.record.env_lines()
    }

    /// What of this lab is still on the machine.
    pub fn leaks(&self) -> Vec<String> {
        leaks(&self.record)
    }

    /// Stops the VMs and the registry and removes the namespace, taps and
    /// disks; fails listing whatever was left.
    pub fn down(mut self) -> Result<(), Error> {
        self.done = true;
        drop(self.registry.take());
        teardown(&self.record)
    }

    /// Leaves the lab running for a later `down` (the `vm-lab` command).
    pub fn detach(mut self) -> VmRecord {
        self.done = true;
        std::mem::forget(self.registry.take());
        self.record.clone()
    }

    /// Copies the VMs' serial logs out of the lab root (which teardown takes).
    fn keep_logs(&self) -> PathBuf {
        let dest = std::env::temp_dir()
            .join("shoal-vm-lab-logs")
            .join(&self.record.name);
        let _ = std::fs::remove_dir_all(&dest);
        let _ = std::fs::create_dir_all(&dest);
        for vm in &self.record.vms {
            let _ = std::fs::copy(
                self.serial_log(&vm.name),
                dest.join(format!("{}.log", vm.name)),
            );
            if let Ok(ssh) = self.ssh(&vm.name) {
                if let Ok(out) = ssh.output("journalctl -b --no-pager -u 'shoal-*' | tail -200") {
                    let _ = std::fs::write(dest.join(format!("{}.journal", vm.name)), out.stdout);
                }
            }
        }
        dest
    }
}

impl Drop for VmLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.keep_logs();
            eprintln!(
                "VM lab {}: logs kept in {}",
                self.record.name,
                logs.display()
            );
        }
        if !self.done {
            self.done = true;
            drop(self.registry.take());
            if let Err(e) = teardown(&self.record) {
                eprintln!("VM lab {}: {e}", self.record.name);
            }
        }
    }
}

fn accel_from_env() -> Option<Accel> {
    match std::env::var("SHOAL_VM_ACCEL").ok()?.as_str() {
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        _ => None,
    }
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Stops every process of the lab (QEMU, the registry), removes its
/// namespace (with the bridge and the taps in it) and its root; then fails
/// listing what is still there.
pub fn teardown(record: &VmRecord) -> Result<(), Error> {
    let mut errors = Vec::new();
    for vm in &record.vms {
        if let Some(pid) = vm.pid {
            process::stop(pid, &record.root, process::GRACE);
        }
    }
    for (pid, cmd) in process::kill_all(&record.root) {
        errors.push(format!("process {pid} would not die: {cmd}"));
    }
    if netns_exists(&record.netns) {
        if let Err(e) = ip(["netns", "del", &record.netns]) {
            errors.push(e.to_string());
        }
    }
    for vm in &record.vms {
        // A tap QEMU made but the lab never moved into its namespace.
        if link_exists(&vm.tap) {
            let _ = ip(["link", "del", &vm.tap]);
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&record.root) {
        if e.kind() != std::io::ErrorKind::NotFound {
            errors.push(format!("remove {}: {e}", record.root.display()));
        }
    }
    let leaks = leaks(record);
    if errors.is_empty() && leaks.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown { errors, leaks })
    }
}

/// Whatever of the lab is still on the machine: processes naming its root
/// (QEMU, the registry), its namespace, taps, its root dir.
pub fn leaks(record: &VmRecord) -> Vec<String> {
    let mut left: Vec<String> = process::lab_processes(&record.root)
        .into_iter()
        .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
        .collect();
    if netns_exists(&record.netns) {
        left.push(format!("network namespace {}", record.netns));
    }
    for vm in &record.vms {
        if link_exists(&vm.tap) {
            left.push(format!("link {}", vm.tap));
        }
    }
    if record.root.exists() {
        left.push(format!("directory {}", record.root.display()));
    }
    left
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn link_exists(name: &str) -> bool {
    output(Command::new("ip").args(["link", "show", name])).is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_plans_managers_then_workers_with_their_own_addresses_and_short_taps() {
        let vms = plan("vmlab", 1, 2, &[2201, 2202, 2203]).unwrap();
        let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["m1", "w1", "w2"]);
        assert_eq!(vms[0].role, "manager");
        assert_eq!(vms[2].role, "worker");
        assert_eq!(vms[1].addr, Ipv4Addr::new(10, 203, 0, 12));
        // Linux link names are at most 15 bytes.
        let ports: Vec<u16> = (3000..3020).collect();
        let longest = plan("abcdefgh", 3, 17, &ports).unwrap();
        assert!(longest.iter().all(|v| v.tap.len() <= 15), "{longest:?}");
        assert_eq!(vms[2].ssh_port, 2203);
        assert!(plan("x", 0, 2, &ports).is_err(), "no manager");
        assert!(plan("x", 10, 11, &ports).is_err(), "too many VMs");
        assert!(plan("x", 1, 2, &[1, 2]).is_err(), "a port for every VM");
        let picked = free_ports(4).unwrap();
        let distinct: std::collections::BTreeSet<u16> = picked.iter().copied().collect();
        assert_eq!(distinct.len(), 4, "{picked:?}");
    }

    #[test]
    fn lab_names_are_short_and_plain() {
        assert!(validate_name("vmlab").is_ok());
        assert!(validate_name("t1").is_ok());
        for bad in ["", "toolongname", "Upper", "a-b", "a.b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
