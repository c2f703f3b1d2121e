//! `<root>/vmlab.json`: what a VM lab is made of, so a later command
//! (`down`, `env`, `exec`, or an `up` meeting a crashed run's lab) finds it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::lab::{record, Error};

use super::qemu::{Accel, BoxImage};
use super::ssh::Ssh;

pub const FILE: &str = "vmlab.json";

/// One VM of the lab.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmHost {
    /// m1, m2, …, w1, w2, …
    pub name: String,
    /// `manager` or `worker`.
    pub role: String,
    /// On the lab network (inside the lab's namespace).
    pub addr: Ipv4Addr,
    /// 127.0.0.1:<ssh_port> reaches the VM's sshd.
    pub ssh_port: u16,
    /// Its NIC on the lab bridge.
    pub tap: String,
    /// QEMU's pid, once started.
    pub pid: Option<i32>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub root: PathBuf,
    pub netns: String,
    pub image: BoxImage,
    pub bin_dir: PathBuf,
    pub accel: Accel,
    /// `host:port` of the lab registry, as the VMs reach it.
    pub registry: String,
    /// 127.0.0.1:<manager_port> reaches m1's manager (mTLS).
    pub manager_port: u16,
    /// An admin client bundle for that port.
    pub bundle: PathBuf,
    pub vms: Vec<VmHost>,
}

impl VmRecord {
    pub fn path(root: &Path) -> PathBuf {
        root.join(FILE)
    }

    /// The record under `root`; `None` when there is none.
    pub fn load(root: &Path) -> Result<Option<VmRecord>, Error> {
        record::load_json(&Self::path(root))
    }

    /// Writes the record atomically.
    pub fn save(&self) -> Result<(), Error> {
        record::save_json(&Self::path(&self.root), self)
    }

    pub fn vm(&self, name: &str) -> Result<&VmHost, Error> {
        self.vms
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| Error::UnknownHost {
                lab: self.name.clone(),
                host: name.to_string(),
            })
    }

    pub fn ssh(&self, vm: &str) -> Result<Ssh, Error> {
        Ok(Ssh::new(self.vm(vm)?.ssh_port, &self.image.ssh_key()))
    }

    /// `export` lines pointing a shell's `shoal` at the lab.
    pub fn env_lines(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_default();
        format!(
            "export SHOAL_HOST=tcp://127.0.0.1:{}\nexport SHOAL_TLS_DIR={}\n\
             export SHOAL_REGISTRY={}\nexport SHOAL_VM_LAB_ROOT={}\nexport PATH={}:{}\n\
             export SHOAL_CONNECT_TIMEOUT=30\n",
            self.manager_port,
            self.bundle.display(),
            self.registry,
            self.root.display(),
            self.bin_dir.display(),
            path
        )
    }
}
