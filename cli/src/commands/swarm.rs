//! `shoal swarm ...`: creating the cluster.

use std::time::Duration;

use clap::{Args, Subcommand};
use shoal_proto::control::v1::{InitClusterRequest, UpdateClusterSettingsRequest};
use shoal_proto::types::v1::NodeAvailability;

use super::{Error, Io};
use crate::client::Session;

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
    /// Update the swarm (autolock, certificate expiry, heartbeat, snapshots, key rotation,
    /// task history)
    Update(UpdateArgs),
    /// Unlock a locked manager (reads the unlock key from stdin)
    Unlock,
    /// Manage the unlock key
    UnlockKey(UnlockKeyArgs),
    /// Manage join tokens
    JoinToken(JoinTokenArgs),
    /// Join a swarm as a node (the token decides worker or manager)
    Join(JoinArgs),
    /// Leave the swarm (this node)
    Leave(LeaveArgs),
    /// Manage client certificate bundles for remote CLI use
    #[command(subcommand)]
    ClientBundle(super::bundle::BundleCommand),
    /// Display and rotate the root CA
    Ca(super::ca::CaArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Change manager autolocking setting (true|false)
    #[arg(long, value_name = "BOOL")]
    pub autolock: Option<bool>,
    /// Validity period for node certificates (e.g. 2160h)
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub cert_expiry: Option<Duration>,
    /// Dispatcher heartbeat period (default 5s); a node is down after 3 missed
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub dispatcher_heartbeat: Option<Duration>,
    /// Number of additional Raft snapshots to retain
    #[arg(long, value_name = "N")]
    pub max_snapshots: Option<u64>,
    /// How often every node makes a new WireGuard key for encrypted networks (default 12h)
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub network_key_rotation: Option<Duration>,
    /// Number of log entries between Raft snapshots (default 10000)
    #[arg(long, value_name = "N")]
    pub snapshot_interval: Option<u64>,
    /// Task history retention limit (default 5; negative: keep every task)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub task_history_limit: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UnlockKeyArgs {
    /// Only display the key
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate the unlock key
    #[arg(long)]
    pub rotate: bool,
}

#[derive(Debug, Args)]
pub struct JoinTokenArgs {
    /// Only display the token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate the join token (the old one is refused from now on)
    #[arg(long)]
    pub rotate: bool,
    /// worker or manager
    #[arg(value_parser = ["worker", "manager"])]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings
    #[arg(short, long)]
    pub force: bool,
    /// The node's identity directory (what `swarm join --node-dir` wrote)
    #[arg(long, value_name = "DIR", default_value = "/var/lib/shoal/node")]
    pub node_dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long)]
    pub token: String,
    /// Address other nodes reach this node on
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Listen address (format: <ip|hostname>[:port]); its host is advertised when
    /// --advertise-addr is not given and it names one
    #[arg(long, value_name = "ADDR")]
    pub listen_addr: Option<String>,
    /// Availability of the node
    #[arg(long, value_name = "AVAILABILITY", value_parser = AVAILABILITIES)]
    pub availability: Option<String>,
    /// IP address other nodes send this node's overlay traffic to
    /// [default: the advertised address]
    #[arg(long, value_name = "IP")]
    pub data_path_addr: Option<String>,
    /// Where the node's identity (key, certificate, CA) is written: the
    /// directory shoal-agent and shoal-netd read with --node-dir
    #[arg(long, value_name = "DIR", default_value = "/var/lib/shoal/node")]
    pub node_dir: std::path::PathBuf,
    /// The node's name in `node ls` (default: this machine's hostname)
    #[arg(long)]
    pub hostname: Option<String>,
    /// A manager of the swarm: HOST[:PORT] (port 4242 by default)
    pub remote_addr: String,
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
    /// Enable manager autolocking (a restarted manager needs the unlock key)
    #[arg(long)]
    pub autolock: bool,
    /// Availability of this first node [default: active]
    #[arg(long, value_name = "AVAILABILITY", value_parser = AVAILABILITIES)]
    pub availability: Option<String>,
    /// Validity period for node certificates, in whole hours [default: 2160h]
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub cert_expiry: Option<Duration>,
    /// IP address other nodes send this node's overlay traffic to
    /// [default: the advertised address]
    #[arg(long, value_name = "IP")]
    pub data_path_addr: Option<String>,
    /// Dispatcher heartbeat period; a node is down after 3 missed [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
    pub dispatcher_heartbeat: Option<Duration>,
    /// Number of additional Raft snapshots to retain [default: 0]
    #[arg(long, value_name = "N")]
    pub max_snapshots: Option<u64>,
    /// Number of log entries between Raft snapshots [default: the manager's
    /// --snapshot-every, 10000]
    #[arg(long, value_name = "N")]
    pub snapshot_interval: Option<u64>,
    /// Default address pool in CIDR format, where networks without --subnet get
    /// theirs (repeatable or comma-separated) [default: 10.0.0.0/8]
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length [default: 24]
    #[arg(long, value_name = "N")]
    pub default_addr_pool_mask_length: Option<u32>,
    /// Task history retention limit (default 5; negative: keep every task)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub task_history_limit: Option<i64>,
}

pub async fn run(
    session: &mut Session,
    command: SwarmCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        SwarmCommand::Init(args) => init(session, args, io).await,
        SwarmCommand::Update(args) => update(session, args, io).await,
        SwarmCommand::Unlock => unlock(session, io).await,
        SwarmCommand::UnlockKey(args) => unlock_key(session, args, io).await,
        SwarmCommand::JoinToken(args) => join_token(session, args, io).await,
        SwarmCommand::Join(args) => join(args, &session.host.clone(), io).await,
        SwarmCommand::Leave(args) => leave(args, &session.host.clone(), io).await,
        SwarmCommand::ClientBundle(c) => super::bundle::run(session, c, io).await,
        SwarmCommand::Ca(args) => super::ca::run(session, args, io).await,
    }
}

/// `--availability`'s values, docker's.
const AVAILABILITIES: [&str; 3] = ["active", "pause", "drain"];

fn availability(name: Option<&str>) -> Option<i32> {
    let availability = match name? {
        "pause" => NodeAvailability::Pause,
        "drain" => NodeAvailability::Drain,
        _ => NodeAvailability::Active,
    };
    Some(availability as i32)
}

fn millis(flag: &str, value: Duration) -> Result<u64, Error> {
    u64::try_from(value.as_millis()).map_err(|_| Error::Usage(format!("{flag} is too long")))
}

/// What `swarm init` asks of the manager for `args`. In the cluster spec a
/// 0 means "the default", so a 0 given on the command line is refused here;
/// the manager checks every other limit.
pub fn init_request(args: &InitArgs) -> Result<InitClusterRequest, Error> {
    let heartbeat_period_ms = match args.dispatcher_heartbeat {
        None => 0,
        Some(Duration::ZERO) => {
            return Err(Error::Usage(
                "--dispatcher-heartbeat must be more than 0s".into(),
            ))
        }
        Some(period) => u32::try_from(millis("--dispatcher-heartbeat", period)?.max(1))
            .map_err(|_| Error::Usage("--dispatcher-heartbeat is too long".into()))?,
    };
    let cert_expiry_hours = match args.cert_expiry {
        None => 0,
        Some(expiry) if expiry.as_secs() > 0 && expiry.as_nanos() % 3_600_000_000_000 == 0 => {
            u32::try_from(expiry.as_secs() / 3600)
                .map_err(|_| Error::Usage("--cert-expiry is too long".into()))?
        }
        Some(_) => {
            return Err(Error::Usage(
                "--cert-expiry must be a whole number of hours (at least 1h)".into(),
            ))
        }
    };
    if args.snapshot_interval == Some(0) {
        return Err(Error::Usage(
            "--snapshot-interval must be more than 0".into(),
        ));
    }
    Ok(InitClusterRequest {
        advertise_addr: advertise_addr(
            args.advertise_addr.as_deref(),
            args.listen_addr.as_deref(),
        )?,
        spec: Some(shoal_proto::types::v1::ClusterSpec {
            autolock: args.autolock,
            task_history_limit: args.task_history_limit,
            heartbeat_period_ms,
            cert_expiry_hours,
            snapshot_interval: args.snapshot_interval.unwrap_or(0),
            keep_old_snapshots: args.max_snapshots.unwrap_or(0),
            ..Default::default()
        }),
        hostname: local_hostname(),
        force_new_cluster: args.force_new_cluster,
        default_addr_pool: args.default_addr_pool.clone(),
        // 0: the manager's default, /24 as docker's.
        default_addr_pool_mask_length: args.default_addr_pool_mask_length.unwrap_or(0),
        availability: availability(args.availability.as_deref()),
        data_path_addr: args.data_path_addr.clone().unwrap_or_default(),
    })
}

/// What `swarm update` asks of the manager for `args`: one request, so the
/// manager refuses it whole or writes every setting.
pub fn update_request(args: &UpdateArgs) -> Result<UpdateClusterSettingsRequest, Error> {
    let request = UpdateClusterSettingsRequest {
        autolock: args.autolock,
        cert_expiry_ms: args
            .cert_expiry
            .map(|d| millis("--cert-expiry", d))
            .transpose()?,
        network_key_rotation_ms: args
            .network_key_rotation
            .map(|d| millis("--network-key-rotation", d))
            .transpose()?,
        task_history_limit: args.task_history_limit,
        dispatcher_heartbeat_ms: args
            .dispatcher_heartbeat
            .map(|d| millis("--dispatcher-heartbeat", d))
            .transpose()?,
        snapshot_interval: args.snapshot_interval,
        keep_old_snapshots: args.max_snapshots,
    };
    if request == UpdateClusterSettingsRequest::default() {
        return Err(Error::Usage(
            "nothing to update: use --autolock=true|false, --cert-expiry, \
             --dispatcher-heartbeat, --max-snapshots, --network-key-rotation, \
             --snapshot-interval or --task-history-limit"
                .into(),
        ));
    }
    Ok(request)
}

pub async fn init(session: &mut Session, args: InitArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let response = session
        .client
        .init_cluster(init_request(&args)?)
        .await?
        .into_inner();
    if args.force_new_cluster {
        wait_for_restarted_manager(session).await?;
    }
    writeln!(
        io.out,
        "Swarm initialized: current node ({}) is now a manager.",
        response.node_id
    )?;
    if args.force_new_cluster {
        writeln!(
            io.out,
            "This manager is now the only one, with the cluster's state. Other managers were\n\
             dropped from the Raft group and are listed as workers: remove the ones that are\n\
             gone with `shoal node rm`, and add managers again with `shoal node promote`\n\
             or a manager join token."
        )?;
    }
    if !response.unlock_key.is_empty() {
        print_unlock_key(io, &response.unlock_key)?;
    }
    Ok(())
}

/// After `--force-new-cluster` the manager restarts in place: wait until it
/// answers again as the leader of its new Raft group.
async fn wait_for_restarted_manager(session: &mut Session) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    loop {
        let attempt = session
            .client
            .list_nodes(shoal_proto::control::v1::ListNodesRequest::default())
            .await;
        match attempt {
            Ok(_) => return Ok(()),
            Err(status) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Deploy(format!(
                    "the manager did not come back within 30 s after rebuilding its Raft group: {}",
                    status.message()
                )))
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

fn print_unlock_key(io: &mut Io<'_>, key: &str) -> Result<(), Error> {
    writeln!(
        io.out,
        "\nTo unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Remember to store this key in a password manager: without it a locked\n\
         manager cannot start again."
    )?;
    Ok(())
}

pub async fn update(session: &mut Session, args: UpdateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let request = update_request(&args)?;
    let reply = session
        .client
        .update_cluster_settings(request)
        .await?
        .into_inner();
    writeln!(io.out, "Swarm updated.")?;
    if args.autolock == Some(true) && !reply.unlock_key.is_empty() {
        print_unlock_key(io, &reply.unlock_key)?;
    }
    Ok(())
}

pub async fn unlock(session: &mut Session, io: &mut Io<'_>) -> Result<(), Error> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|e| Error::Input(format!("read the unlock key from stdin: {e}")))?;
    session
        .client
        .unlock_cluster(shoal_proto::control::v1::UnlockClusterRequest {
            unlock_key: key.trim().to_string(),
        })
        .await?;
    let _ = io;
    Ok(())
}

pub async fn unlock_key(
    session: &mut Session,
    args: UnlockKeyArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let reply = session
        .client
        .get_unlock_key(shoal_proto::control::v1::GetUnlockKeyRequest {
            rotate: args.rotate,
        })
        .await?
        .into_inner();
    if args.quiet {
        writeln!(io.out, "{}", reply.unlock_key)?;
    } else {
        if args.rotate {
            writeln!(io.out, "Successfully rotated manager unlock key.")?;
        }
        print_unlock_key(io, &reply.unlock_key)?;
    }
    Ok(())
}

pub async fn join_token(
    session: &mut Session,
    args: JoinTokenArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    use shoal_proto::control::v1::{GetJoinTokensRequest, RotateJoinTokenRequest};
    use shoal_proto::types::v1::NodeRole;
    let role = if args.role == "manager" {
        NodeRole::Manager
    } else {
        NodeRole::Worker
    };
    let tokens = if args.rotate {
        let request = RotateJoinTokenRequest { role: role as i32 };
        session
            .client
            .rotate_join_token(request)
            .await?
            .into_inner()
    } else {
        session
            .client
            .get_join_tokens(GetJoinTokensRequest {})
            .await?
            .into_inner()
    };
    let token = if role == NodeRole::Manager {
        tokens.manager
    } else {
        tokens.worker
    };
    if args.quiet {
        writeln!(io.out, "{token}")?;
        return Ok(());
    }
    if args.rotate {
        writeln!(io.out, "Successfully rotated {} join token.\n", args.role)?;
    }
    writeln!(
        io.out,
        "To add a {} to this swarm, run the following command:\n",
        args.role
    )?;
    writeln!(
        io.out,
        "    shoal swarm join --token {token} {}\n",
        tokens.manager_addr
    )?;
    Ok(())
}

/// Joins without a local manager: the CLI itself fetches the node's
/// certificate (pinning the cluster CA by the token's digest) and writes
/// the identity the node's agent and netd are waiting for.
///
/// With a manager token, the local manager (reached at `local_manager`, the
/// `--host` socket) then joins the managers' Raft group with that identity.
pub async fn join(
    args: JoinArgs,
    local_manager: &crate::client::Host,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let node_dir = &args.node_dir;
    if shoal_identity::NodeIdentity::exists(node_dir) {
        return Err(Error::Input(format!(
            "this node is already part of a swarm ({} holds its identity)",
            node_dir.display()
        )));
    }
    let addr = if args
        .remote_addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        args.remote_addr.clone()
    } else {
        format!("{}:4242", args.remote_addr)
    };
    let hostname = args.hostname.clone().unwrap_or_else(local_hostname);
    let advertise = advertise_addr(args.advertise_addr.as_deref(), args.listen_addr.as_deref())?;
    let settings = shoal_identity::join::JoinSettings {
        availability: availability(args.availability.as_deref()),
        data_path_addr: args.data_path_addr.clone().unwrap_or_default(),
    };
    let identity = shoal_identity::join::join(&addr, &args.token, &hostname, &advertise, &settings)
        .await
        .map_err(|e| Error::Input(e.to_string()))?;
    identity
        .save(node_dir)
        .map_err(|e| Error::Input(format!("save the node identity: {e}")))?;
    let manager = identity.peer.role == shoal_identity::Role::Manager;
    if manager {
        if let Err(e) = join_local_manager(local_manager, &addr, &advertise).await {
            // Nothing half-made stays: the node can try again.
            let _ = std::fs::remove_dir_all(node_dir);
            return Err(e);
        }
    }
    let role = if manager { "a manager" } else { "a worker" };
    writeln!(
        io.out,
        "This node joined a swarm as {role} (node {}).",
        identity.peer.node_id
    )?;
    Ok(())
}

/// `swarm leave`: this host's manager (if it is one) leaves the managers,
/// then the node's identity goes; the agent notices at its next heartbeat
/// and removes every task of the swarm from this host.
pub async fn leave(
    args: LeaveArgs,
    local_manager: &crate::client::Host,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if let crate::client::Host::Tcp(addr) = local_manager {
        return Err(Error::Usage(format!(
            "swarm leave acts on the node it runs on, not on a remote manager ({addr}): run it on that node"
        )));
    }
    let was_manager = match crate::client::connect(local_manager, None).await {
        Ok(mut session) => {
            let request = shoal_proto::control::v1::LeaveClusterRequest { force: args.force };
            match session.client.leave_cluster(request).await {
                Ok(_) => true,
                Err(status) if status.code() == tonic::Code::NotFound => false,
                Err(status) => return Err(Error::Rpc(status)),
            }
        }
        // No manager process on this host: a worker.
        Err(crate::client::ClientError::Unreachable { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let node_dir = &args.node_dir;
    if !was_manager && !shoal_identity::NodeIdentity::exists(node_dir) {
        return Err(Error::Input("this node is not part of a swarm".to_string()));
    }
    for file in [
        shoal_identity::KEY_FILE,
        shoal_identity::CERT_FILE,
        shoal_identity::CA_FILE,
    ] {
        let path = node_dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Input(format!("remove {}: {e}", path.display())));
            }
        }
    }
    writeln!(io.out, "Node left the swarm.")?;
    Ok(())
}

async fn join_local_manager(
    local: &crate::client::Host,
    remote: &str,
    advertise: &str,
) -> Result<(), Error> {
    let mut session = crate::client::connect(local, None).await?;
    session
        .client
        .join_cluster(shoal_proto::control::v1::JoinClusterRequest {
            remote_addr: remote.to_string(),
            advertise_addr: advertise.to_string(),
        })
        .await?;
    Ok(())
}

/// The address to advertise: `--advertise-addr`, else the host of a specific
/// `--listen-addr`, else empty (the manager picks its own).
fn advertise_addr(advertise: Option<&str>, listen: Option<&str>) -> Result<String, Error> {
    if let Some(addr) = advertise {
        if addr.trim().is_empty() {
            return Err(Error::Input("--advertise-addr must not be empty".into()));
        }
        return Ok(addr.to_string());
    }
    let Some(listen) = listen else {
        return Ok(String::new());
    };
    let unspecified = ["", "0.0.0.0", "[::]", "::"];
    let host = match listen.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => host,
        _ => listen,
    };
    if unspecified.contains(&host) {
        return Ok(String::new());
    }
    Ok(listen.to_string())
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

    #[test]
    fn the_task_history_limit_goes_to_the_init_request() {
        let request = init_request(&parsed_init(&["--task-history-limit", "-1"])).expect("request");
        assert_eq!(request.spec.unwrap().task_history_limit, Some(-1));
        let plain = init_request(&parsed_init(&[])).expect("request");
        assert_eq!(plain.spec.unwrap().task_history_limit, None, "Swarm's 5");
    }

    fn parsed_init(argv: &[&str]) -> InitArgs {
        use clap::Parser;
        let mut full = vec!["shoal", "swarm", "init"];
        full.extend_from_slice(argv);
        match crate::commands::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            crate::commands::Command::Swarm(SwarmCommand::Init(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn parsed_update(argv: &[&str]) -> UpdateArgs {
        use clap::Parser;
        let mut full = vec!["shoal", "swarm", "update"];
        full.extend_from_slice(argv);
        match crate::commands::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            crate::commands::Command::Swarm(SwarmCommand::Update(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cluster_settings_of_init_go_to_the_request() {
        let request = init_request(&parsed_init(&[
            "--dispatcher-heartbeat",
            "2s",
            "--snapshot-interval",
            "100",
            "--max-snapshots",
            "3",
            "--availability",
            "drain",
            "--cert-expiry",
            "720h",
            "--data-path-addr",
            "10.9.0.1",
        ]))
        .expect("request");
        let spec = request.spec.clone().unwrap();
        assert_eq!(spec.heartbeat_period_ms, 2_000);
        assert_eq!(spec.snapshot_interval, 100);
        assert_eq!(spec.keep_old_snapshots, 3);
        assert_eq!(spec.cert_expiry_hours, 720);
        assert_eq!(request.availability, Some(NodeAvailability::Drain as i32));
        assert_eq!(request.data_path_addr, "10.9.0.1");
        // Nothing given: every one the manager's default (0, unset).
        let plain = init_request(&parsed_init(&[])).expect("request");
        let spec = plain.spec.unwrap();
        assert_eq!(
            (
                spec.heartbeat_period_ms,
                spec.snapshot_interval,
                spec.cert_expiry_hours
            ),
            (0, 0, 0)
        );
        assert_eq!(plain.availability, None);
        assert_eq!(plain.data_path_addr, "");
    }

    #[test]
    fn init_refuses_what_its_spec_could_not_tell_from_a_default() {
        for (argv, says) in [
            (
                ["--dispatcher-heartbeat", "0s"],
                "--dispatcher-heartbeat must be more than 0s",
            ),
            (
                ["--snapshot-interval", "0"],
                "--snapshot-interval must be more than 0",
            ),
            (["--cert-expiry", "90m"], "whole number of hours"),
            (["--cert-expiry", "0s"], "whole number of hours"),
        ] {
            let err = init_request(&parsed_init(&argv)).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
            assert!(err.to_string().contains(says), "{argv:?}: {err}");
        }
        use clap::Parser;
        for bad in [
            vec!["--availability", "away"],
            vec!["--dispatcher-heartbeat", "-1s"],
            vec!["--max-snapshots", "-1"],
            vec!["--snapshot-interval", "many"],
        ] {
            let mut argv = vec!["shoal", "swarm", "init"];
            argv.extend(bad.iter().copied());
            assert!(
                crate::commands::Cli::try_parse_from(argv).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn update_sends_every_setting_in_one_request() {
        let request = update_request(&parsed_update(&[
            "--dispatcher-heartbeat",
            "3s",
            "--snapshot-interval",
            "500",
            "--max-snapshots",
            "1",
            "--task-history-limit",
            "2",
            "--cert-expiry",
            "48h",
        ]))
        .expect("request");
        assert_eq!(
            request,
            UpdateClusterSettingsRequest {
                dispatcher_heartbeat_ms: Some(3_000),
                snapshot_interval: Some(500),
                keep_old_snapshots: Some(1),
                task_history_limit: Some(2),
                cert_expiry_ms: Some(48 * 3_600_000),
                ..Default::default()
            }
        );
        // A 0 goes as given: the manager refuses it with its limit.
        let zero = update_request(&parsed_update(&["--dispatcher-heartbeat", "0s"])).unwrap();
        assert_eq!(zero.dispatcher_heartbeat_ms, Some(0));
        let err = update_request(&parsed_update(&[])).expect_err("nothing");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--dispatcher-heartbeat"), "{err}");
    }

    #[test]
    fn join_takes_availability_data_path_and_listen_addresses() {
        use clap::Parser;
        let cli = crate::commands::Cli::try_parse_from([
            "shoal",
            "swarm",
            "join",
            "--token",
            "t",
            "--availability",
            "pause",
            "--data-path-addr",
            "10.9.0.2",
            "--listen-addr",
            "10.9.0.3:4242",
            "10.0.0.1",
        ])
        .expect("parses");
        let crate::commands::Command::Swarm(SwarmCommand::Join(args)) = cli.command else {
            panic!("not a join");
        };
        assert_eq!(
            availability(args.availability.as_deref()),
            Some(NodeAvailability::Pause as i32)
        );
        assert_eq!(args.data_path_addr.as_deref(), Some("10.9.0.2"));
        assert_eq!(
            advertise_addr(args.advertise_addr.as_deref(), args.listen_addr.as_deref()).unwrap(),
            "10.9.0.3:4242"
        );
    }

    #[test]
    fn address_pools_go_to_the_init_request() {
        let request = init_request(&parsed_init(&[
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool",
            "10.30.0.0/16,10.40.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
        ]))
        .expect("request");
        assert_eq!(
            request.default_addr_pool,
            ["10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16"]
        );
        assert_eq!(request.default_addr_pool_mask_length, 26);
        let plain = init_request(&parsed_init(&[])).expect("request");
        assert!(plain.default_addr_pool.is_empty());
        assert_eq!(
            plain.default_addr_pool_mask_length, 0,
            "the manager's default"
        );
    }

    #[test]
    fn advertise_address_falls_back_to_a_specific_listen_address() {
        let pick = |a, l| advertise_addr(a, l).expect("valid");
        assert_eq!(pick(Some("10.0.0.1"), Some("10.0.0.2:4242")), "10.0.0.1");
        assert_eq!(pick(None, Some("10.0.0.2:4242")), "10.0.0.2:4242");
        assert_eq!(pick(None, Some("0.0.0.0:4242")), "");
        assert_eq!(pick(None, Some("[::]:4242")), "");
        assert_eq!(pick(None, None), "");
        assert!(advertise_addr(Some(" "), None).is_err());
    }
}
