//! One lab VM as a QEMU process: a copy-on-write disk over the box, the
//! box's kernel booted directly, two NICs (a tap on the lab's own network,
//! and QEMU's user network, restricted, that only carries the ports the lab
//! forwards from 127.0.0.1), the shoal binaries shared read-only over 9p.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::lab::Error;

use crate::lab::command::run;
use crate::lab::process;

/// How the VMs execute: KVM where it runs guests, QEMU's own emulation
/// (TCG) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn qemu_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg,thread=multi",
        }
    }
}

/// What the box build left in its directory (see `vagrant/box/build`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BoxImage {
    pub dir: PathBuf,
}

impl BoxImage {
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    fn cmdline(&self) -> Result<String, Error> {
        let path = self.dir.join("cmdline");
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::io(format!("read {}", path.display()), e))
    }
}

/// One VM to start.
pub struct VmSpec<'a> {
    pub name: &'a str,
    /// Its address on the lab network, with the prefix (`10.203.0.11/24`).
    pub cidr: String,
    pub dir: &'a Path,
    pub tap: &'a str,
    pub memory_mib: u32,
    /// Distinct per VM: QEMU gives every NIC the same MAC unless told.
    pub mac: [u8; 6],
    /// Guest ports forwarded from 127.0.0.1: (host port, guest port).
    pub forwards: Vec<(u16, u16)>,
    /// Shared read-only as 9p tag `shoal` (mounted at /opt/shoal/share).
    pub share: &'a Path,
}

impl VmSpec<'_> {
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
}

/// Starts the VM (QEMU daemonizes once the machine is set up) and returns
/// QEMU's pid. The tap is created in the calling namespace.
pub fn start(vm: &VmSpec, image: &BoxImage, accel: Accel) -> Result<i32, Error> {
    std::fs::create_dir_all(vm.dir)
        .map_err(|e| Error::io(format!("create {}", vm.dir.display()), e))?;
    let disk = vm.disk();
    let _ = std::fs::remove_file(&disk);
    let _ = std::fs::remove_file(vm.serial_log());
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(image.disk())
        .arg(&disk))?;
    let append = format!(
        "{} shoal.hostname={} shoal.ip={} shoal.mgmt=1 shoal.share=shoal",
        image.cmdline()?,
        vm.name,
        vm.cidr
    );
    let mut user_net = "user,id=mgmt,restrict=on".to_string();
    for (host, guest) in &vm.forwards {
        user_net.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-name",
        vm.name,
        "-machine",
        "q35",
        "-nodefaults",
        "-no-reboot",
    ])
    .args(["-accel", accel.qemu_arg(), "-cpu", "max", "-smp", "1"])
    .args(["-m", &vm.memory_mib.to_string()])
    .arg("-kernel")
    .arg(image.kernel())
    .arg("-initrd")
    .arg(image.initrd())
    .args(["-append", &append])
    .arg("-drive")
    .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
    .arg("-netdev")
    .arg(format!(
        "tap,id=lab,ifname={},script=no,downscript=no",
        vm.tap
    ))
    .arg("-device")
    .arg(format!(
        "virtio-net-pci,netdev=lab,mac={}",
        mac_text(vm.mac)
    ))
    .args([
        "-netdev",
        &user_net,
        "-device",
        "virtio-net-pci,netdev=mgmt",
    ])
    .arg("-virtfs")
    .arg(format!(
        "local,path={},mount_tag=shoal,security_model=none,readonly=on",
        vm.share.display()
    ))
    .arg("-serial")
    .arg(format!("file:{}", vm.serial_log().display()))
    .args(["-monitor", "none", "-display", "none", "-daemonize"])
    .arg("-pidfile")
    .arg(vm.pidfile());
    run(&mut cmd)?;
    let text = std::fs::read_to_string(vm.pidfile())
        .map_err(|e| Error::io(format!("read {}", vm.pidfile().display()), e))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Config(format!("QEMU wrote no pid to {}", vm.pidfile().display())))
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a guest under KVM gets as far as printing on its serial port:
/// on some machines `/dev/kvm` opens and the guest then hangs at its first
/// instruction (nested virtualisation that does not run guests).
pub fn kvm_boots(vm: &VmSpec, image: &BoxImage, within: Duration) -> Result<bool, Error> {
    if !Path::new("/dev/kvm").exists() {
        return Ok(false);
    }
    let pid = match start(vm, image, Accel::Kvm) {
        Ok(pid) => pid,
        Err(_) => return Ok(false),
    };
    let deadline = Instant::now() + within;
    let mut printed = false;
    while Instant::now() < deadline {
        if std::fs::metadata(vm.serial_log()).is_ok_and(|m| m.len() > 0) {
            printed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    process::stop(pid, vm.dir, Duration::from_secs(5));
    Ok(printed)
}
