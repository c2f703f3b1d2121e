//! `shoal swarm ...`: creating the cluster.

use clap::{Args, Subcommand};
use shoal_proto::control::v1::InitClusterRequest;

use super::{Error, Io};
use crate::client::Session;

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Advertised address (format: <ip|hostname>[:port])
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Listen address (format: <ip|hostname>[:port]); its host is advertised when
    /// --advertise-addr is not given and it names one
    #[arg(long, value_name = "ADDR")]
    pub listen_addr: Option<String>,
    /// Force create a new cluster from current state
    #[arg(long)]
    pub force_new_cluster: bool,
}

pub async fn run(
    session: &mut Session,
    command: SwarmCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        SwarmCommand::Init(args) => init(session, args, io).await,
    }
}

pub async fn init(session: &mut Session, args: InitArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let advertise_addr = advertise_addr(&args)?;
    let response = session
        .client
        .init_cluster(InitClusterRequest {
            advertise_addr,
            spec: None,
            hostname: local_hostname(),
            force_new_cluster: args.force_new_cluster,
        })
        .await?
        .into_inner();
    writeln!(
        io.out,
        "Swarm initialized: current node ({}) is now a manager.",
        response.node_id
    )?;
    Ok(())
}

/// The address to advertise: `--advertise-addr`, else the host of a specific
/// `--listen-addr`, else empty (the manager picks its own).
fn advertise_addr(args: &InitArgs) -> Result<String, Error> {
    if let Some(addr) = &args.advertise_addr {
        if addr.trim().is_empty() {
            return Err(Error::Input("--advertise-addr must not be empty".into()));
        }
        return Ok(addr.clone());
    }
    let Some(listen) = &args.listen_addr else {
        return Ok(String::new());
    };
    let unspecified = ["", "0.0.0.0", "[::]", "::"];
    let host = match listen.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => host,
        _ => listen.as_str(),
    };
    if unspecified.contains(&host) {
        return Ok(String::new());
    }
    Ok(listen.clone())
}

/// This machine's hostname, for the node's description.
pub fn local_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(advertise: Option<&str>, listen: Option<&str>) -> InitArgs {
        InitArgs {
            advertise_addr: advertise.map(str::to_string),
            listen_addr: listen.map(str::to_string),
            force_new_cluster: false,
        }
    }

    #[test]
    fn advertise_address_falls_back_to_a_specific_listen_address() {
        let pick = |a, l| advertise_addr(&args(a, l)).expect("valid");
        assert_eq!(pick(Some("10.0.0.1"), Some("10.0.0.2:4242")), "10.0.0.1");
        assert_eq!(pick(None, Some("10.0.0.2:4242")), "10.0.0.2:4242");
        assert_eq!(pick(None, Some("0.0.0.0:4242")), "");
        assert_eq!(pick(None, Some("[::]:4242")), "");
        assert_eq!(pick(None, None), "");
        assert!(advertise_addr(&args(Some(" "), None)).is_err());
    }
}
