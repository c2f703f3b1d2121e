//! `shoal-netd`: the node's network daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use shoal_netd::manager_watch::ManagerWatch;
use shoal_netd::Dataplane;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(name = "shoal-netd", about = "shoal's network daemon", version)]
struct Args {
    /// Where task namespaces and attachment records live.
    #[arg(
        long,
        env = "SHOAL_NETD_STATE_DIR",
        default_value = "/var/lib/shoal/netd"
    )]
    state_dir: PathBuf,
    /// The node's identity (written by the agent when the node joins).
    #[arg(long, env = "SHOAL_NODE_DIR", default_value = "/var/lib/shoal/node")]
    node_dir: PathBuf,
    /// The local API socket (root only).
    #[arg(
        long,
        env = "SHOAL_NETD_SOCKET",
        default_value = "/run/shoal/netd.sock"
    )]
    socket: PathBuf,
    /// A manager's address (host:port) to watch the network view from.
    #[arg(long, env = "SHOAL_MANAGER", default_value = "127.0.0.1:4242")]
    manager: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let dataplane = Arc::new(
        Dataplane::open(&args.state_dir)
            .await
            .with_context(|| format!("open the data plane in {}", args.state_dir.display()))?,
    );
    let mut sigterm = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: stopping (the data plane stays as it is)"),
            _ = sigint.recv() => tracing::info!("SIGINT: stopping (the data plane stays as it is)"),
        }
    };
    let forget = Arc::new(tokio::sync::Notify::new());
    let watch = ManagerWatch {
        dataplane: dataplane.clone(),
        node_dir: args.node_dir.clone(),
        manager: args.manager.clone(),
        forget: forget.clone(),
    };
    // Stopping tears nothing down: tasks keep their network, and the next
    // netd adopts it.
    tokio::select! {
        served = shoal_netd::server::serve(dataplane, forget, &args.socket, shutdown) => {
            served.context("netd API")?;
        }
        () = watch.run() => {}
    }
    Ok(())
}
