//! `shoal context ...`: named managers and the bundles to reach them with
//! (see [`crate::context`] for the store and how a context is chosen). No
//! context command talks to a manager.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Error, Io};
use crate::context::{self, Context, Env, Flags, Selection, Store};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};

/// docker's `context ls` fields (`cli/command/formatter/context.go`), with
/// shoal's: a context is a manager's address (`.Host`, docker's
/// `.DockerEndpoint`) and the client bundle to reach it with (`.Bundle`),
/// the columns of the table.
pub const CONTEXT_COLUMNS: Columns = Columns {
    headers: &[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("DockerEndpoint", "DOCKER ENDPOINT"),
        ("Host", "HOST"),
        ("Bundle", "BUNDLE"),
    ],
    table: "table {{.Name}}{{if .Current}} *{{end}}\t{{.Description}}\t{{.Host}}\t{{.Bundle}}",
    quiet: "{{.Name}}",
};

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create a context: a manager (the global --host) and the client bundle to reach it with
    Create(CreateArgs),
    /// List contexts; the one in use is marked with *
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Make a context the current one
    Use(UseArgs),
    /// Remove one or more contexts
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Display detailed information on one or more contexts
    Inspect(InspectArgs),
    /// Print the name of the context in use
    Show,
}

#[derive(Debug, Args)]
#[command(after_help = "The manager is the global --host: \
    shoal context create NAME --host tcp://ADDR[:PORT] --bundle FILE")]
pub struct CreateArgs {
    /// Client bundle file (`shoal swarm client-bundle create`); the context keeps a copy
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Description of the context
    #[arg(long)]
    pub description: Option<String>,
    /// Context name
    pub name: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal context ls
  shoal context ls --format '{{.Name}} {{.Host}}'")]
pub struct LsArgs {
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only show context names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// Context name (`default` for the local manager socket)
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove the current context too (`default` is current then)
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal context inspect
  shoal context inspect -f '{{.Host}} {{.Bundle.Role}}' prod")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse, help = INSPECT_HELP)]
    pub format: Option<InspectFormat>,
    /// Contexts (default: the one in use)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs a context command; `flags` are the global connection flags (`--host`
/// is the new context's manager for `create`).
pub fn run(
    command: ContextCommand,
    flags: &Flags<'_>,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut store = Store::from_env(env)?;
    match command {
        ContextCommand::Create(args) => create(&mut store, args, flags, io),
        ContextCommand::Ls(args) => ls(&store, args, flags, env, io),
        ContextCommand::Use(args) => use_context(&mut store, args, env, io),
        ContextCommand::Rm(args) => rm(&mut store, args, io),
        ContextCommand::Inspect(args) => inspect(&store, args, flags, env, io),
        ContextCommand::Show => {
            writeln!(io.out, "{}", in_use(&store, flags, env)?)?;
            Ok(())
        }
    }
}

fn create(
    store: &mut Store,
    args: CreateArgs,
    flags: &Flags<'_>,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let host = flags.host.ok_or_else(|| {
        Error::Usage("context create needs the manager: --host tcp://ADDR[:PORT]".into())
    })?;
    if flags.tls_dir.is_some() {
        return Err(Error::Usage(
            "context create takes the client bundle with --bundle FILE, not --tls-dir".into(),
        ));
    }
    let context = store.create(
        &args.name,
        host,
        args.bundle.as_deref(),
        args.description.as_deref().unwrap_or_default(),
    )?;
    writeln!(io.out, "{}", context.name)?;
    writeln!(io.err, "Successfully created context \"{}\"", context.name)?;
    Ok(())
}

/// The name of the context the flags, environment and store select
/// (`default` for an explicit host).
fn in_use(store: &Store, flags: &Flags<'_>, env: &Env) -> Result<String, Error> {
    Ok(match context::select(flags, env, Some(store))? {
        Selection::Context { name, .. } => name,
        Selection::Host { .. } => context::DEFAULT_CONTEXT.to_string(),
    })
}

fn ls(
    store: &Store,
    args: LsArgs,
    flags: &Flags<'_>,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let contexts = store.list()?;
    let current = in_use(store, flags, env)?;
    // docker's `-q` prints names whatever the format.
    let format = if args.quiet {
        ListFormat::Table
    } else {
        args.format
    };
    let text = format.render(
        &CONTEXT_COLUMNS,
        &context_rows(&contexts, &current),
        args.quiet,
    )?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's `context ls` rows: the context in use is `.Current` (marked `*`
/// after its name).
pub fn context_rows(contexts: &[Context], current: &str) -> Vec<serde_json::Value> {
    contexts
        .iter()
        .map(|context| {
            let bundle = context
                .bundle
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            json!({
                "Name": context.name,
                "Current": context.name == current,
                "Description": context.description,
                "DockerEndpoint": context.host.to_string(),
                "Host": context.host.to_string(),
                "Bundle": bundle,
            })
        })
        .collect()
}

fn use_context(store: &mut Store, args: UseArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    store.use_context(&args.name)?;
    writeln!(io.out, "{}", args.name)?;
    writeln!(io.err, "Current context is now \"{}\"", args.name)?;
    if let Some(overriding) = &env.context {
        writeln!(
            io.err,
            "Warning: SHOAL_CONTEXT={overriding} overrides the current context; unset it to use {}",
            args.name
        )?;
    }
    Ok(())
}

fn rm(store: &mut Store, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for name in args.names {
        match store.remove(&name, args.force) {
            Ok(()) => writeln!(io.out, "{name}")?,
            Err(e) => errors.push(Error::Context(e)),
        }
    }
    super::collect_errors(errors)
}

fn inspect(
    store: &Store,
    args: InspectArgs,
    flags: &Flags<'_>,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let names = if args.names.is_empty() {
        vec![in_use(store, flags, env)?]
    } else {
        args.names
    };
    let mut records = Vec::new();
    for name in names {
        let context = store.get(&name)?;
        let mut record = json!({
            "Name": context.name,
            "Description": context.description,
            "Host": context.host.to_string(),
        });
        if let Some(path) = &context.bundle {
            let identity =
                shoal_identity::bundle::read(path).map_err(context::ContextError::from)?;
            record["Bundle"] = json!({
                "Path": path.display().to_string(),
                "ID": identity.peer.node_id,
                "Role": identity.peer.role.ou().trim_start_matches("shoal-"),
                "Cluster": identity.peer.cluster_id,
            });
        }
        records.push(record);
    }
    let text = args.format.unwrap_or_default().render(records)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use shoal_identity::Role;

    use super::*;
    use crate::client::Host;
    use crate::commands::{Cli, Command};
    use crate::context::test_ca::TestCa;

    struct Fixture {
        dir: tempfile::TempDir,
        env: Env,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let env = Env {
                config: Some(dir.path().join("config")),
                ..Env::default()
            };
            Fixture { dir, env }
        }

        fn bundle(&self, name: &str, role: Role) -> PathBuf {
            let path = self.dir.path().join(format!("{name}.bundle"));
            let identity = TestCa::new().identity(&format!("id-{name}"), role);
            shoal_identity::bundle::write(&path, &identity).expect("write bundle");
            path
        }

        /// Runs `shoal ARGS` as far as context commands go; stdout or the error.
        fn shoal(&self, args: &[&str]) -> Result<String, Error> {
            let argv = std::iter::once("shoal").chain(args.iter().copied());
            let cli = Cli::try_parse_from(argv).map_err(|e| Error::Usage(e.to_string()))?;
            let Command::Context(command) = cli.command else {
                panic!("not a context command: {args:?}");
            };
            let flags = Flags {
                context: cli.context.as_deref(),
                host: cli.host.as_ref(),
                tls_dir: cli.tls_dir.as_deref(),
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut io = Io {
                out: &mut out,
                err: &mut err,
            };
            run(command, &flags, &self.env, &mut io)?;
            Ok(String::from_utf8(out).expect("utf8"))
        }
    }

    #[test]
    fn create_use_ls_inspect_rm_through_the_command_line() {
        let fx = Fixture::new();
        let bundle = fx.bundle("ci", Role::Viewer);
        let created = fx
            .shoal(&[
                "context",
                "create",
                "prod",
                "--host",
                "tcp://10.0.0.1",
                "--bundle",
                &bundle.to_string_lossy(),
                "--description",
                "CI viewer",
            ])
            .expect("create");
        assert_eq!(created, "prod\n");

        let ls = fx.shoal(&["context", "ls"]).expect("ls");
        let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["NAME", "DESCRIPTION", "HOST", "BUNDLE"]);
        assert_eq!(rows[1][..2], ["default", "*"]);
        assert_eq!(
            rows[2][..4],
            ["prod", "CI", "viewer", "tcp://10.0.0.1:4242"]
        );

        assert_eq!(
            fx.shoal(&["context", "use", "prod"]).expect("use"),
            "prod\n"
        );
        assert_eq!(fx.shoal(&["context", "show"]).expect("show"), "prod\n");
        let json = fx
            .shoal(&["context", "ls", "--format", "json"])
            .expect("ls json");
        // docker's `--format json`: one object per line.
        let json: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("parse"))
            .collect();
        assert_eq!(json[0]["Current"], false);
        assert_eq!(json[1]["Name"], "prod");
        assert_eq!(json[1]["Current"], true);
        // A --context flag moves the mark without changing the current context.
        let ls = fx
            .shoal(&["--context", "default", "context", "ls", "--format", "json"])
            .expect("ls");
        let first: serde_json::Value =
            serde_json::from_str(ls.lines().next().expect("a line")).expect("parse");
        assert_eq!(first["Current"], true);
        let names = fx
            .shoal(&[
                "context",
                "ls",
                "--format",
                "{{.Name}}{{if .Current}} (current){{end}}",
            ])
            .expect("ls template");
        assert_eq!(names, "default\nprod (current)\n");
        assert_eq!(fx.shoal(&["context", "show"]).expect("show"), "prod\n");

        let inspect = fx.shoal(&["context", "inspect"]).expect("inspect");
        let json: serde_json::Value = serde_json::from_str(&inspect).expect("parse");
        assert_eq!(json[0]["Name"], "prod");
        assert_eq!(json[0]["Host"], "tcp://10.0.0.1:4242");
        assert_eq!(json[0]["Bundle"]["Role"], "viewer");
        assert_eq!(json[0]["Bundle"]["ID"], "id-ci");
        let inspect = fx
            .shoal(&["context", "inspect", "default"])
            .expect("inspect");
        assert!(inspect.contains(crate::client::DEFAULT_HOST), "{inspect}");

        let err = fx.shoal(&["context", "rm", "prod"]).expect_err("in use");
        assert!(err.to_string().contains("is the current one"), "{err}");
        assert_eq!(
            fx.shoal(&["context", "rm", "-f", "prod"]).expect("rm"),
            "prod\n"
        );
        assert_eq!(fx.shoal(&["context", "show"]).expect("show"), "default\n");
        let err = fx.shoal(&["context", "inspect", "prod"]).expect_err("gone");
        assert!(err.to_string().contains("\"prod\" does not exist"), "{err}");
    }

    #[test]
    fn create_needs_a_host_and_takes_no_tls_dir() {
        let fx = Fixture::new();
        let bundle = fx.bundle("ci", Role::Admin);
        let bundle = bundle.to_string_lossy();
        let err = fx
            .shoal(&["context", "create", "x", "--bundle", &bundle])
            .expect_err("no host");
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("--host"), "{err}");
        let err = fx
            .shoal(&[
                "context",
                "create",
                "x",
                "--host",
                "tcp://h",
                "--tls-dir",
                &bundle,
            ])
            .expect_err("tls dir");
        assert_eq!(err.exit_code(), 2, "{err}");
        let err = fx.shoal(&["context", "use", "nope"]).expect_err("unknown");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");
    }

    #[test]
    fn listing_marks_the_context_in_use() {
        let contexts = [
            Context::builtin_default(),
            Context {
                name: "ci".into(),
                description: String::new(),
                host: Host::Tcp("h:1".into()),
                bundle: Some(PathBuf::from("/c/bundles/ci.bundle")),
            },
        ];
        let rows = context_rows(&contexts, "ci");
        let text = ListFormat::Table
            .render(&CONTEXT_COLUMNS, &rows, false)
            .expect("table");
        assert_eq!(rows[1]["Current"], true);
        assert_eq!(rows[1]["DockerEndpoint"], "tcp://h:1");
        assert!(
            text.lines().nth(2).is_some_and(|l| l.starts_with("ci *")),
            "{text}"
        );
        assert!(
            text.lines().nth(1).is_some_and(|l| !l.contains('*')),
            "{text}"
        );
    }
}
