//! `shoal context ...`: named managers and the bundles to reach them with
//! (see [`crate::context`] for the store and how a context is chosen). No
//! context command talks to a manager.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    /// Update a context: its description, its manager (the global --host) or its bundle
    Update(UpdateArgs),
    /// Export a context (with its client bundle) to a tar archive FILE or a tar stream on
    /// stdout (-)
    Export(ExportArgs),
    /// Import a context from a tar archive FILE or from stdin (-)
    Import(ImportArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "The manager is the global --host: \
    shoal context update NAME --host tcp://ADDR[:PORT]")]
pub struct UpdateArgs {
    #[command(flatten)]
    pub fields: ContextFields,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The archive holds the context's private key: it is written \
    readable by you only (mode 0600), and never over an existing file."
)]
pub struct ExportArgs {
    /// Context name
    pub name: String,
    /// Where to write: a new file, or - for stdout [default: NAME.shoalcontext]
    #[arg(value_name = "FILE|-")]
    pub file: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Name of the new context
    pub name: String,
    /// The archive `shoal context export` wrote, or - for stdin
    #[arg(value_name = "FILE|-")]
    pub file: String,
}

#[derive(Debug, Args)]
#[command(after_help = "The manager is the global --host: \
    shoal context create NAME --host tcp://ADDR[:PORT] --bundle FILE")]
pub struct CreateArgs {
    #[command(flatten)]
    pub fields: ContextFields,
}

/// What `create` sets and `update` changes (the manager is the global
/// `--host`).
#[derive(Debug, Args)]
pub struct ContextFields {
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
/// is the new context's manager for `create` and `update`).
pub fn run(
    command: ContextCommand,
    flags: &Flags<'_>,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    run_with(command, flags, env, io, &mut std::io::stdin(), terminal)
}

/// [`run`] with stdin given (`context import -`), and whether stdout is a
/// terminal (`context export -` refuses to print a private key there).
pub fn run_with(
    command: ContextCommand,
    flags: &Flags<'_>,
    env: &Env,
    io: &mut Io<'_>,
    stdin: &mut dyn Read,
    stdout_is_terminal: bool,
) -> Result<(), Error> {
    let mut store = Store::from_env(env)?;
    match command {
        ContextCommand::Update(args) => update(&mut store, args, flags, io),
        ContextCommand::Export(args) => export(&store, args, io, stdout_is_terminal),
        ContextCommand::Import(args) => import(&mut store, args, io, stdin),
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
    refuse_tls_dir(flags, "create")?;
    let args = args.fields;
    let context = store.create(
        &args.name,
        host,
        args.bundle.as_deref(),
        args.description.as_deref().unwrap_or_default(),
    )?;
    done(io, &context, "created")
}

/// A context's bundle comes from `--bundle`: `--tls-dir` names a directory
/// the context would not keep.
fn refuse_tls_dir(flags: &Flags<'_>, command: &str) -> Result<(), Error> {
    if flags.tls_dir.is_some() {
        return Err(Error::Usage(format!(
            "context {command} takes the client bundle with --bundle FILE, not --tls-dir"
        )));
    }
    Ok(())
}

/// docker's answer to a context made or changed: its name on stdout, what
/// happened on stderr.
fn done(io: &mut Io<'_>, context: &Context, what: &str) -> Result<(), Error> {
    writeln!(io.out, "{}", context.name)?;
    writeln!(io.err, "Successfully {what} context \"{}\"", context.name)?;
    Ok(())
}

fn update(
    store: &mut Store,
    args: UpdateArgs,
    flags: &Flags<'_>,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    refuse_tls_dir(flags, "update")?;
    let args = args.fields;
    let change = context::Update {
        description: args.description.as_deref(),
        host: flags.host,
        bundle: args.bundle.as_deref(),
    };
    let context = store.update(&args.name, &change)?;
    done(io, &context, "updated")
}

fn export(
    store: &Store,
    args: ExportArgs,
    io: &mut Io<'_>,
    stdout_is_terminal: bool,
) -> Result<(), Error> {
    let archive = context::archive::export(store, &args.name)?;
    let file = args
        .file
        .unwrap_or_else(|| context::archive::default_file(&args.name));
    if file == "-" {
        if stdout_is_terminal {
            return Err(Error::Usage(
                "refusing to print a context export (it holds a private key) to a terminal: \
                 name a FILE, or redirect stdout"
                    .into(),
            ));
        }
        io.out.write_all(&archive)?;
        return Ok(());
    }
    write_private_file(Path::new(&file), &archive)?;
    writeln!(io.err, "Written file \"{file}\"")?;
    Ok(())
}

/// Writes `data` to a new file (mode 0600 from its creation, so the key in
/// it is never readable by others); an existing file is left alone, and a
/// file half written is removed.
fn write_private_file(path: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Input(format!(
                "{shown} already exists: remove it or name another file"
            )))
        }
        Err(e) => return Err(Error::Input(format!("create {shown}: {e}"))),
    };
    if let Err(e) = file.write_all(data).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::Input(format!("write {shown}: {e}")));
    }
    Ok(())
}

fn import(
    store: &mut Store,
    args: ImportArgs,
    io: &mut Io<'_>,
    stdin: &mut dyn Read,
) -> Result<(), Error> {
    // The name first: a taken one is refused before anything is read.
    store.check_new_name(&args.name)?;
    let limit = context::archive::MAX_ARCHIVE_BYTES + 1;
    let mut archive = Vec::new();
    let source = if args.file == "-" {
        stdin
            .take(limit)
            .read_to_end(&mut archive)
            .map_err(|e| Error::Input(format!("read the archive from stdin: {e}")))?;
        "stdin".to_string()
    } else {
        let path = Path::new(&args.file);
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut archive))
            .map_err(|e| Error::Input(format!("read {}: {e}", path.display())))?;
        args.file.clone()
    };
    let context = context::archive::import(store, &args.name, &archive, &source)?;
    done(io, &context, "imported")
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
            let out = self.shoal_bytes(args, b"", false)?;
            Ok(String::from_utf8(out).expect("utf8"))
        }

        /// [`Fixture::shoal`] with stdin, stdout's bytes, and whether stdout
        /// is a terminal.
        fn shoal_bytes(
            &self,
            args: &[&str],
            stdin: &[u8],
            terminal: bool,
        ) -> Result<Vec<u8>, Error> {
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
            run_with(
                command,
                &flags,
                &self.env,
                &mut io,
                &mut &stdin[..],
                terminal,
            )?;
            Ok(out)
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
    fn export_writes_a_private_file_and_import_makes_the_context_again() {
        let fx = Fixture::new();
        let bundle = fx.bundle("ci", Role::Deployer);
        fx.shoal(&[
            "context",
            "create",
            "prod",
            "--host",
            "tcp://10.0.0.1",
            "--bundle",
            &bundle.to_string_lossy(),
            "--description",
            "CI",
        ])
        .expect("create");
        let file = fx.dir.path().join("prod.shoalcontext");
        let file_arg = file.to_string_lossy().to_string();
        fx.shoal(&["context", "export", "prod", &file_arg])
            .expect("export");
        let mode = std::fs::metadata(&file).expect("stat").permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600, "it holds a private key");
        let err = fx
            .shoal(&["context", "export", "prod", &file_arg])
            .expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(err.exit_code(), 1);

        // Another machine: its own config dir.
        let other = Fixture::new();
        let out = other
            .shoal(&["context", "import", "prod", &file_arg])
            .expect("import");
        assert_eq!(out, "prod\n");
        let inspect = other
            .shoal(&["context", "inspect", "prod"])
            .expect("inspect");
        let json: serde_json::Value = serde_json::from_str(&inspect).expect("json");
        assert_eq!(json[0]["Host"], "tcp://10.0.0.1:4242");
        assert_eq!(json[0]["Description"], "CI");
        assert_eq!(json[0]["Bundle"]["Role"], "deployer");
        let err = other
            .shoal(&["context", "import", "prod", &file_arg])
            .expect_err("taken");
        assert!(err.to_string().contains("already exists"), "{err}");

        // Through stdout and stdin, never onto a terminal.
        let err = fx
            .shoal_bytes(&["context", "export", "prod", "-"], b"", true)
            .expect_err("terminal");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("terminal"), "{err}");
        let stream = fx
            .shoal_bytes(&["context", "export", "prod", "-"], b"", false)
            .expect("to stdout");
        let piped = other
            .shoal_bytes(&["context", "import", "piped", "-"], &stream, false)
            .expect("from stdin");
        assert_eq!(piped, b"piped\n");
        let err = other
            .shoal_bytes(&["context", "import", "junk", "-"], b"junk", false)
            .expect_err("junk");
        assert!(
            err.to_string()
                .starts_with("stdin is not a shoal context export"),
            "{err}"
        );
        let missing = fx.dir.path().join("missing").to_string_lossy().to_string();
        let err = other
            .shoal(&["context", "import", "gone", &missing])
            .expect_err("missing");
        assert!(err.to_string().contains("read "), "{err}");
        let err = fx
            .shoal(&["context", "export", "nope"])
            .expect_err("unknown");
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");
    }

    #[test]
    fn update_takes_the_global_host_a_description_and_a_bundle() {
        let fx = Fixture::new();
        let bundle = fx.bundle("ci", Role::Viewer);
        let bundle = bundle.to_string_lossy();
        fx.shoal(&[
            "context",
            "create",
            "prod",
            "--host",
            "tcp://10.0.0.1",
            "--bundle",
            &bundle,
        ])
        .expect("create");
        let admin = fx.bundle("ops", Role::Admin);
        let out = fx
            .shoal(&[
                "context",
                "update",
                "prod",
                "--host",
                "tcp://10.0.0.2:5000",
                "--description",
                "moved",
                "--bundle",
                &admin.to_string_lossy(),
            ])
            .expect("update");
        assert_eq!(out, "prod\n");
        let json: serde_json::Value =
            serde_json::from_str(&fx.shoal(&["context", "inspect", "prod"]).expect("inspect"))
                .expect("json");
        assert_eq!(json[0]["Host"], "tcp://10.0.0.2:5000");
        assert_eq!(json[0]["Description"], "moved");
        assert_eq!(json[0]["Bundle"]["Role"], "admin");
        let err = fx
            .shoal(&["context", "update", "prod"])
            .expect_err("nothing");
        assert_eq!(err.exit_code(), 2, "{err}");
        let err = fx
            .shoal(&["context", "update", "prod", "--tls-dir", &bundle])
            .expect_err("tls dir");
        assert_eq!(err.exit_code(), 2, "{err}");
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
