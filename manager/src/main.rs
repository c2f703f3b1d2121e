//! `shoal-manager`: a manager node's daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use shoal_manager::runtime::{Manager, ManagerConfig};

#[derive(Parser)]
#[command(
    version,
    about = "shoal manager: cluster state (Raft), control API, scheduling"
)]
struct Args {
    /// Where the sealed store and its keys live.
    #[arg(long, default_value = "/var/lib/shoal/manager")]
    state_dir: PathBuf,
    /// The node's identity (key, certificate, CA), shared with agent and netd.
    #[arg(long, default_value = "/var/lib/shoal/node")]
    node_dir: PathBuf,
    /// The local CLI's socket (root only).
    #[arg(long, default_value = "/run/shoal/control.sock")]
    control_socket: PathBuf,
    /// The mTLS port for nodes, managers and remote CLIs.
    #[arg(long, default_value = "0.0.0.0:4242")]
    listen: SocketAddr,
    /// Raft log entries between snapshots.
    #[arg(long, env = "SHOAL_SNAPSHOT_EVERY", default_value_t = 10_000)]
    snapshot_every: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let manager = Manager::new(ManagerConfig {
        state_dir: args.state_dir,
        node_dir: args.node_dir,
        control_socket: args.control_socket,
        listen: args.listen,
        snapshot_every: args.snapshot_every,
    });
    manager.run().await
}
