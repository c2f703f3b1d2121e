//! `shoal-agent`: runs a node's tasks.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use shoal_agent::executor::{Executor, ExecutorConfig};
use shoal_agent::session::{Agent, AgentConfig};
use shoal_agent::task_runner::Context;

#[derive(Parser)]
#[command(
    version,
    about = "shoal agent: runs the node's tasks through containerd"
)]
struct Args {
    #[arg(long, default_value = "/var/lib/shoal/agent")]
    state_dir: PathBuf,
    /// The node's identity (key, certificate, CA).
    #[arg(long, default_value = "/var/lib/shoal/node")]
    node_dir: PathBuf,
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    #[arg(long, default_value = "shoal")]
    containerd_namespace: String,
    #[arg(long, default_value = "/run/shoal/netd.sock")]
    netd_socket: PathBuf,
    /// The control socket of this host's manager process: promotion and
    /// demotion start and stop it as a manager.
    #[arg(long, default_value = "/run/shoal/control.sock")]
    manager_socket: PathBuf,
    /// A manager's address (host:port).
    #[arg(long, default_value = "127.0.0.1:4242")]
    manager: String,
    /// A registry (host:port) to reach over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The init that `--init` tasks run as PID 1 (a static binary).
    #[arg(long, default_value = shoal_agent::executor::DEFAULT_INIT_BINARY)]
    init_binary: std::path::PathBuf,
    /// How long a task that takes traffic stays up after it left the load
    /// balancers, for the other nodes to apply that (milliseconds)
    #[arg(long, default_value_t = shoal_agent::task_runner::DRAIN_GRACE.as_millis() as u64)]
    drain_grace_ms: u64,
    /// The node's name in `node ls`; defaults to the host name.
    #[arg(long)]
    hostname: Option<String>,
    /// The address other nodes reach this node on.
    #[arg(long, default_value = "")]
    advertise_addr: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("create {}", args.state_dir.display()))?;
    let mut config = ExecutorConfig::new(&args.containerd_socket, &args.state_dir);
    config.namespace = args.containerd_namespace.clone();
    config.insecure_registries = args.insecure_registries.clone();
    config.init_binary = args.init_binary.clone();
    let executor = Executor::connect(config)
        .await
        .with_context(|| format!("containerd at {}", args.containerd_socket.display()))?;
    let (session_tx, session_rx) = tokio::sync::watch::channel(None);
    let reporter = shoal_agent::reporter::spawn(session_rx);
    let hostname = match args.hostname {
        Some(h) => h,
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into()),
    };
    let mut ctx = Context::new(
        executor,
        args.netd_socket.clone(),
        reporter,
        hostname.clone(),
    );
    ctx.drain_grace = std::time::Duration::from_millis(args.drain_grace_ms);
    let ctx = Arc::new(ctx);
    let agent = Agent::new(
        AgentConfig {
            node_dir: args.node_dir,
            manager: args.manager,
            manager_socket: args.manager_socket,
            hostname,
            advertise_addr: args.advertise_addr,
        },
        ctx,
        session_tx,
    );
    tokio::select! {
        _ = agent.run() => {}
        _ = shutdown_signal() => {
            // Tasks keep running: the next agent adopts them.
            tracing::info!("agent stopping; tasks keep running");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
