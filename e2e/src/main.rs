//! `shoal-lab`: a shoal cluster of test hosts (network namespaces) on this
//! machine, for trying shoal out and for the end-to-end tests.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use shoal_e2e::lab::{self, Lab, LabConfig, Role};

#[derive(Parser)]
#[command(
    name = "shoal-lab",
    about = "A shoal cluster of test hosts on this machine"
)]
struct Cli {
    /// The one folder under which every lab host keeps its state and data.
    #[arg(
        long,
        env = "SHOAL_LAB_ROOT",
        default_value = "/var/lib/shoal-lab",
        global = true
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the lab: registry host, manager and worker hosts, and the cluster.
    Up {
        #[arg(long, default_value_t = 1)]
        managers: u32,
        #[arg(long, default_value_t = 0)]
        workers: u32,
        /// Names the lab's namespaces (`shl-<name>.<host>`) and links.
        #[arg(long, env = "SHOAL_LAB_NAME", default_value = "lab")]
        name: String,
        /// Only hosts, registry and containerds: no shoal daemons, no cluster.
        #[arg(long)]
        no_shoal: bool,
        /// Do not push the test images (web:v1, web:v2, crash:v1).
        #[arg(long)]
        no_images: bool,
    },
    /// Stop everything the lab started and remove its state.
    Down,
    /// Run a command inside a test host (reg, m1, w1, …).
    Exec {
        host: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print the address of a test host.
    Addr { host: String },
    /// Print `export` lines pointing a shell at the lab (SHOAL_HOST, SHOAL_REGISTRY,
    /// SHOAL_LAB_ROOT, and PATH with shoal first): `eval "$(shoal-lab env)"`.
    Env,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Up {
            managers,
            workers,
            name,
            no_shoal,
            no_images,
        } => {
            let config = LabConfig {
                managers,
                workers,
                root: Some(cli.root.clone()),
                shoal: !no_shoal,
                images: !no_images,
                ..LabConfig::new(name)
            };
            let lab = Lab::up(config).context("bringing the lab up")?;
            println!(
                "lab {} is up under {} ({}, this machine is {})",
                lab.name(),
                lab.root().display(),
                lab.subnet(),
                lab.gateway()
            );
            for host in lab.hosts() {
                let role = match host.role {
                    Role::Registry => format!("registry {}", lab.registry()),
                    other => other.to_string(),
                };
                println!("  {:<4} {:<15} {role}", host.name, host.addr);
            }
            lab.detach();
        }
        Cmd::Down => {
            lab::down_at(&cli.root).context("tearing the lab down")?;
        }
        Cmd::Exec { host, command } => {
            let record = lab::recorded(&cli.root)?;
            let Some((program, args)) = command.split_first() else {
                bail!("exec needs a command");
            };
            let err = lab::host_command(&record, &host, program)?
                .args(args)
                .exec();
            bail!("running {program} in {host}: {err}");
        }
        Cmd::Addr { host } => {
            let record = lab::recorded(&cli.root)?;
            println!("{}", record.host(&host)?.addr);
        }
        Cmd::Env => {
            let record = lab::recorded(&cli.root)?;
            print!("{}", lab::env_lines(&record, &lab::bin_dir()?)?);
        }
    }
    Ok(())
}
