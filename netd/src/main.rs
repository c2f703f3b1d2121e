//! `shoal-netd`: the node's network daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use shoal_netd::manager_watch::ManagerWatch;
use shoal_netd::{Dataplane, DataplaneConfig};
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
    /// Where the embedded DNS server forwards names that are not the
    /// cluster's, for tasks without their own `--dns` (ADDR or ADDR:PORT,
    /// repeatable); `none` forwards nowhere (unknown names get NXDOMAIN).
    /// Default: the nameservers of this host's /etc/resolv.conf.
    #[arg(
        long = "dns-upstream",
        env = "SHOAL_NETD_DNS_UPSTREAMS",
        value_delimiter = ','
    )]
    dns_upstreams: Vec<String>,
}

/// The embedded DNS server's default upstreams, from the flags or the
/// host's resolv.conf.
fn dns_upstreams(flags: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    if flags.is_empty() {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        return Ok(shoal_netd::dns::upstreams_from_resolv_conf(&text));
    }
    if flags.iter().any(|f| f == "none") {
        return Ok(Vec::new());
    }
    flags
        .iter()
        .map(|f| {
            f.parse::<SocketAddr>()
                .or_else(|_| f.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("--dns-upstream {f:?}: not an address or address:port"))
        })
        .collect()
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

    let config = DataplaneConfig {
        dns_upstreams: dns_upstreams(&args.dns_upstreams)?,
        ..DataplaneConfig::default()
    };
    let dataplane = Arc::new(
        Dataplane::open_with(&args.state_dir, config)
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
