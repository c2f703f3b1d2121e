//! `shoal-vm-lab`: a shoal cluster of Debian VMs (QEMU) on this machine,
//! each with its own kernel; see `shoal_e2e::vmlab` and `./scripts/vm-lab`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use shoal_e2e::vmlab::{self, Accel, VmLab, VmLabConfig, VmRecord};

#[derive(Parser)]
#[command(
    name = "shoal-vm-lab",
    about = "A shoal cluster of Debian VMs on this machine"
)]
struct Cli {
    /// Names the lab's namespace (`shvm-<name>`) and taps.
    #[arg(
        long,
        env = "SHOAL_VM_LAB_NAME",
        default_value = "vmlab",
        global = true
    )]
    name: String,
    /// Where the VMs' disks, logs and the lab record live
    /// (default /var/lib/shoal-vm-lab/<name>).
    #[arg(long, env = "SHOAL_VM_LAB_ROOT", global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or reuse) the box, boot the VMs and make them a cluster.
    Up {
        #[arg(long, default_value_t = 1)]
        managers: u32,
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// MiB of memory per VM.
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        /// kvm or tcg; default: KVM if a guest boots under it, else TCG.
        #[arg(long, env = "SHOAL_VM_ACCEL")]
        accel: Option<String>,
    },
    /// Stop the VMs and remove everything the lab made.
    Down,
    /// Run a command in a VM (m1, w1, …) over SSH.
    Exec {
        vm: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print `export` lines pointing a shell at the lab: `eval "$(shoal-vm-lab env)"`.
    Env,
    /// List the VMs: name, role, address on the lab network, SSH port.
    Status,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-vm-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn recorded(cli: &Cli) -> Result<VmRecord> {
    let root = root(cli);
    VmRecord::load(&root)?.with_context(|| {
        format!(
            "no VM lab under {} (run `./scripts/vm-lab up`)",
            root.display()
        )
    })
}

fn root(cli: &Cli) -> PathBuf {
    cli.root
        .clone()
        .unwrap_or_else(|| vmlab::default_root(&cli.name))
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Cmd::Up {
            managers,
            workers,
            memory,
            accel,
        } => {
            let accel = match accel.as_deref() {
                None => None,
                Some("kvm") => Some(Accel::Kvm),
                Some("tcg") => Some(Accel::Tcg),
                Some(other) => bail!("--accel {other}: kvm or tcg"),
            };
            let config = VmLabConfig {
                managers: *managers,
                workers: *workers,
                memory_mib: *memory,
                root: Some(root(&cli)),
                accel,
                ..VmLabConfig::new(cli.name.clone())
            };
            let lab = VmLab::up(config).context("bringing the VM lab up")?;
            print_status(lab.record());
            lab.detach();
        }
        Cmd::Down => {
            let record = recorded(&cli)?;
            vmlab::teardown(&record).context("tearing the VM lab down")?;
        }
        Cmd::Exec { vm, command } => {
            let record = recorded(&cli)?;
            let script = command.join(" ");
            let err = record.ssh(vm)?.command(&script).exec();
            bail!("ssh to {vm}: {err}");
        }
        Cmd::Env => print!("{}", recorded(&cli)?.env_lines()),
        Cmd::Status => print_status(&recorded(&cli)?),
    }
    Ok(())
}

fn print_status(record: &VmRecord) {
    println!(
        "VM lab {} ({:?}), registry {}, manager on 127.0.0.1:{}",
        record.name, record.accel, record.registry, record.manager_port
    );
    for vm in &record.vms {
        println!(
            "  {:<4} {:<8} {:<12} ssh 127.0.0.1:{}",
            vm.name, vm.role, vm.addr, vm.ssh_port
        );
    }
}
