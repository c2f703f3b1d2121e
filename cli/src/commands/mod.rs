//! The `shoal` commands. [`Cli`] is the whole command line; [`execute`] runs a
//! parsed command against a connected [`Session`], writing to an [`Io`], so
//! tests can drive every command without the binary.

pub mod bundle;
pub mod ca;
pub mod completion;
pub mod config;
pub mod context;
mod converge;
pub mod healthcheck;
mod image_pin;
pub mod info;
pub mod inspect;
pub mod logging;
pub mod login;
pub mod network;
pub mod node;
pub mod parse;
pub mod placement;
pub mod resources;
mod rollout;
pub mod runtime;
pub mod secret;
pub mod service;
pub mod service_logs;
pub mod spec;
pub mod stack;
pub mod stack_config;
mod stack_deploy;
mod stack_plan;
mod stack_rm;
pub mod swarm;
pub mod tasks;
pub mod volume;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::client::{self, ClientError, Host, Session};
use crate::context::{ContextError, Env, Flags};
use crate::output::format::FormatError;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A self-sufficient runtime for clusters of containers",
    propagate_version = true
)]
pub struct Cli {
    /// Manager to connect to: unix:///path/to/control.sock or tcp://HOST[:PORT]
    /// [env: SHOAL_HOST] [default: the current context, else unix:///run/shoal/control.sock]
    // SHOAL_HOST is read with the context rules (crate::context), not by clap:
    // an explicit flag and the variable rank differently against contexts.
    #[arg(
        short = 'H',
        long,
        global = true,
        help_heading = "Global Options",
        value_parser = clap::value_parser!(Host)
    )]
    pub host: Option<Host>,
    /// Client certificate bundle for tcp:// hosts: a bundle file, or a directory
    /// holding node.key, node.crt and ca.crt [env: SHOAL_TLS_DIR]
    #[arg(
        long,
        global = true,
        help_heading = "Global Options",
        value_name = "PATH"
    )]
    pub tls_dir: Option<PathBuf>,
    /// Context to use (`shoal context ls`); not with --host [env: SHOAL_CONTEXT]
    #[arg(
        long,
        global = true,
        help_heading = "Global Options",
        value_name = "NAME"
    )]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage swarm nodes
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage services
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage stacks
    #[command(subcommand)]
    Stack(stack::StackCommand),
    /// Manage secrets
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Manage configs
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Manage volumes (on the nodes that hold them)
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Log in to a registry (credentials kept as docker keeps them)
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage contexts: named managers and the client bundles to reach them
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(completion::CompletionArgs),
    /// Display system-wide information: the client, and the swarm as its manager sees it
    Info(info::InfoArgs),
    /// Manage shoal (`system info`)
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Display system-wide information (as `shoal info`)
    Info(info::InfoArgs),
}

/// Where a command writes: results to `out`, progress and warnings to `err`.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// What the manager said; its message is meant for users.
    #[error("{}", status_message(.0))]
    Rpc(#[from] tonic::Status),
    /// Bad input discovered after argument parsing (a missing service, a wrong mode, ...).
    #[error("{0}")]
    Input(String),
    /// Arguments that parse but contradict each other; exit status 2 like clap's.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Compose(#[from] crate::compose::ComposeError),
    /// A deployment that failed or did not converge in time.
    #[error("{0}")]
    Deploy(String),
    /// `stack diff`: deploying the files would change the stack (the plan
    /// says how); exit status [`EXIT_DIFFERS`].
    #[error("stack {0} differs from its compose files")]
    Differs(String),
    /// Several operations of one command failed (e.g. `service rm a b`).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
    #[error("write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A `--format` template that fails on the data is a usage error, as one
/// that does not parse is (clap refuses that one).
impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Usage(e.to_string())
    }
}

/// Exit status for "cannot reach the manager", apart from input (1) and usage (2) errors.
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit status for usage errors, as clap exits.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `stack diff` when the stack would change (`git diff
/// --exit-code`'s 1 is taken by input errors).
pub const EXIT_DIFFERS: i32 = 4;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Client(ClientError::Unreachable { .. }) => EXIT_UNREACHABLE,
            Error::Usage(_) => EXIT_USAGE,
            Error::Differs(_) => EXIT_DIFFERS,
            Error::Context(e) if e.is_usage() => EXIT_USAGE,
            Error::Rpc(status) if is_connection_loss(status) => EXIT_UNREACHABLE,
            Error::Many(errors) if errors.iter().all(|e| e.exit_code() == EXIT_UNREACHABLE) => {
                EXIT_UNREACHABLE
            }
            _ => 1,
        }
    }
}

/// A call that failed because the connection dropped, not because the manager refused.
fn is_connection_loss(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        && std::error::Error::source(status).is_some_and(|s| {
            s.downcast_ref::<tonic::transport::Error>().is_some()
                || s.to_string().contains("transport")
        })
}

fn status_message(status: &tonic::Status) -> String {
    if is_connection_loss(status) {
        return format!("lost the connection to the manager: {}", status.message());
    }
    if status.message().is_empty() {
        return format!("the manager answered: {}", status.code().description());
    }
    status.message().to_string()
}

/// Connects as `cli` and this process's environment say and runs its command.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), Error> {
    run_in(cli, &Env::from_process(), io).await
}

/// [`run`] with the environment given: where to connect follows the context
/// rules of [`crate::context::resolve`].
pub async fn run_in(cli: Cli, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let flags = Flags {
        context: cli.context.as_deref(),
        host: cli.host.as_ref(),
        tls_dir: cli.tls_dir.as_deref(),
    };
    match cli.command {
        Command::Context(command) => return context::run(command, &flags, env, io),
        Command::Completion(args) => return completion::run(args, io),
        // Registry credentials are the user's own: no manager needed.
        Command::Login(args) => return login::login(args, io),
        Command::Logout(args) => return login::logout(args, io),
        // Compose files alone: no manager needed.
        Command::Stack(stack::StackCommand::Config(args)) => {
            return stack_config::run(args, &std::env::vars().collect(), &mut std::io::stdin(), io)
        }
        _ => {}
    }
    let target = crate::context::resolve(&flags, env)?;
    // Info prints the client's part even when the manager is unreachable.
    if let Command::Info(args) | Command::System(SystemCommand::Info(args)) = cli.command {
        return info::run(args, &target, io).await;
    }
    // Compose files are checked before connecting: their errors do not need a manager.
    if let Command::Stack(stack::StackCommand::Deploy(args)) = cli.command {
        let loaded = stack::prepare(&args)?;
        let mut session = client::connect(&target.host, target.tls.as_deref()).await?;
        return stack::deploy_loaded(&mut session, args, loaded, io).await;
    }
    if let Command::Stack(stack::StackCommand::Diff(args)) = cli.command {
        let args = args.into_deploy();
        let loaded = stack::prepare(&args)?;
        let mut session = client::connect(&target.host, target.tls.as_deref()).await?;
        return stack_deploy::diff_loaded(&mut session, args, loaded, io).await;
    }
    // Joining talks to the remote manager's CA, not to a local manager.
    if let Command::Swarm(swarm::SwarmCommand::Join(args)) = cli.command {
        return swarm::join(args, &target.host, io).await;
    }
    let mut session = client::connect(&target.host, target.tls.as_deref()).await?;
    execute(&mut session, cli.command, io).await
}

pub async fn execute(
    session: &mut Session,
    command: Command,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        Command::Swarm(c) => swarm::run(session, c, io).await,
        Command::Node(c) => node::run(session, c, io).await,
        Command::Service(c) => service::run(session, c, io).await,
        Command::Stack(c) => stack::run(session, c, io).await,
        Command::Secret(c) => secret::run(session, c, io).await,
        Command::Config(c) => config::run(session, c, io).await,
        Command::Volume(c) => volume::run(session, c, io).await,
        Command::Login(args) => login::login(args, io),
        Command::Logout(args) => login::logout(args, io),
        Command::Network(c) => network::run(session, c, io).await,
        // Context commands need no manager; run them as `run` does.
        Command::Context(c) => context::run(c, &Flags::default(), &Env::from_process(), io),
        Command::Completion(args) => completion::run(args, io),
        Command::Info(args) | Command::System(SystemCommand::Info(args)) => {
            info::run_on(session, args, io).await
        }
    }
}

/// docker's confirmation prompt: `message [y/N] ` on `out`, then a line of
/// `input`; only `y` (any case) is a yes, and so is nothing else (end of input too).
pub(crate) fn confirm(
    out: &mut dyn Write,
    input: &mut dyn std::io::BufRead,
    message: &str,
) -> Result<bool, Error> {
    write!(out, "{message} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .map_err(|e| Error::Input(format!("read the answer from stdin: {e}")))?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// Runs each of `items`, carrying on past failures (like `docker service rm a b`), and
/// reports every failure at the end.
pub(crate) fn collect_errors(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managers_refusal_reaches_the_user_as_it_said_it() {
        // What the CLI passes through (aliases, search domains, options) the
        // manager checks; its message, naming the flag, is the error shown.
        let said =
            "service web: invalid alias \"no spaces\" (--network alias=, networks.aliases): \
                    use DNS labels of up to 63 letters, digits, '-' or '_', separated by dots";
        let error = Error::from(tonic::Status::invalid_argument(said));
        assert_eq!(error.to_string(), said);
        assert_eq!(error.exit_code(), 1);
        let bare = Error::from(tonic::Status::invalid_argument(""));
        assert_eq!(
            bare.to_string(),
            "the manager answered: Client specified an invalid argument"
        );
    }

    #[test]
    fn confirm_asks_like_docker_and_takes_only_y() {
        for (answer, yes) in [
            ("y\n", true),
            ("Y\n", true),
            (" y \n", true),
            ("yes\n", false),
            ("\n", false),
            ("", false),
        ] {
            let mut out = Vec::new();
            let got = confirm(&mut out, &mut answer.as_bytes(), "Sure?").expect("confirm");
            assert_eq!(got, yes, "{answer:?}");
            assert_eq!(out, b"Sure? [y/N] ");
        }
    }
}
