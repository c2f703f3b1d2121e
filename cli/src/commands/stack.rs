//! `shoal stack ...`: sets of services deployed from compose files, tied
//! together by the `com.docker.stack.namespace` label.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use serde_json::json;
use shoal_proto::types::v1::{ConfigSpec, NetworkSpec, Service, ServiceSpec};

use super::image_pin::ResolveImage;
use super::service::{self, service_id};
use super::tasks::{self, PsFlags};
use super::{parse, Error, Io};
use crate::client::Session;
use crate::compose::{self, LABEL_NAMESPACE};
use crate::output::filter::{Filter, FilterKeys};
use crate::output::format::{Columns, ListFormat, LIST_HELP};
use crate::output::natural_cmp;

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Outputs the final config file, after doing merges and interpolations
    Config(super::stack_config::ConfigArgs),
    /// Deploy a new stack or update an existing stack
    #[command(visible_alias = "up")]
    Deploy(DeployArgs),
    /// Show what deploying the compose files would change in the stack
    Diff(super::stack_deploy::DiffArgs),
    /// List stacks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// List the tasks in the stack
    #[command(after_help = "Examples:
  shoal stack ps shop
  shoal stack ps -f desired-state=running --format '{{.Name}} {{.Node}}' shop")]
    Ps(PsArgs),
    /// List the services in the stack
    Services(ServicesArgs),
    /// Remove one or more stacks
    #[command(visible_aliases = ["remove", "down"])]
    Rm(super::stack_rm::RmArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeat to merge
    /// override files, in order)
    #[arg(
        short = 'c',
        long = "compose-file",
        required = true,
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub compose_files: Vec<PathBuf>,
    /// Prune services that are no longer referenced
    #[arg(long)]
    pub prune: bool,
    /// Send registry authentication details to Swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Exit immediately instead of waiting for the stack services to converge
    #[arg(
        short,
        long,
        action = ArgAction::Set,
        default_value_t = true,
        default_missing_value = "true",
        num_args = 0..=1,
        require_equals = true
    )]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// With --detach=false, give up waiting after this long (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse::duration)]
    pub timeout: Duration,
    /// Query the registry to resolve image digests (pin each service's image)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ResolveImage::Always)]
    pub resolve_image: ResolveImage,
    /// Print what the deploy would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stack name
    #[arg(value_name = "STACK")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub flags: PsFlags,
    #[arg(value_name = "STACK")]
    pub name: String,
}

/// docker's `stack ls` columns (`cli/command/stack/list_formatter.go`).
pub const STACK_COLUMNS: Columns = Columns {
    headers: &[("Name", "NAME"), ("Services", "SERVICES")],
    table: "table {{.Name}}\t{{.Services}}",
    quiet: "{{.Name}}",
};

/// docker's `stack services` filters (those of `service ls`).
pub const STACK_SERVICE_FILTERS: FilterKeys = FilterKeys {
    command: "stack services",
    keys: service::SERVICE_FILTERS.keys,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal stack ls
  shoal stack ls --format '{{.Name}}: {{.Services}} services'")]
pub struct LsArgs {
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal stack services shop
  shoal stack services -f mode=global --format '{{.Name}} {{.Replicas}}' shop")]
pub struct ServicesArgs {
    /// Filter output based on conditions provided (id=, label=KEY[=VALUE], mode=, name=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| STACK_SERVICE_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "STACK")]
    pub name: String,
}

pub async fn run(
    session: &mut Session,
    command: StackCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        StackCommand::Config(args) => {
            super::stack_config::run(args, &std::env::vars().collect(), &mut std::io::stdin(), io)
        }
        StackCommand::Deploy(args) => deploy(session, args, io).await,
        StackCommand::Diff(args) => {
            let args = args.into_deploy();
            let loaded = prepare(&args)?;
            super::stack_deploy::diff_loaded(session, args, loaded, io).await
        }
        StackCommand::Ls(args) => ls(session, args, io).await,
        StackCommand::Ps(args) => ps(session, args, io).await,
        StackCommand::Services(args) => services(session, args, io).await,
        StackCommand::Rm(args) => super::stack_rm::rm(session, args, io).await,
    }
}

fn namespace_filter(stack: &str) -> String {
    format!("{LABEL_NAMESPACE}={stack}")
}

/// The services of stack `name`, sorted by name.
pub async fn stack_services(session: &mut Session, name: &str) -> Result<Vec<Service>, Error> {
    service::list(session, vec![namespace_filter(name)]).await
}

/// Stack names follow docker's rule: they become part of service names.
fn check_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid stack name {name:?}: use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )))
    }
}

/// Loads the compose files (merged as docker merges override files) and
/// converts them: the service specs and the loader's warnings.
pub fn load_specs(files: &[PathBuf], stack: &str) -> Result<(Vec<ServiceSpec>, Warnings), Error> {
    load(files, stack).map(|l| (l.specs, l.warnings))
}

/// The value of a stack's secret or config made from a file (`None` for
/// one without a file); read now, so a missing file deploys nothing.
fn file_value(file: &compose::StackFile, kind: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(path) = &file.file else {
        return Ok(None);
    };
    std::fs::read(path)
        .map(Some)
        .map_err(|e| Error::Input(format!("{kind} {}: read {}: {e}", file.key, path.display())))
}

/// Loads the compose files of a stack, `-` being standard input (several
/// merge as docker merges override files): its service specs, the secrets
/// and configs it makes from files (read now, so a missing file deploys
/// nothing), its networks, and the loader's warnings.
fn load(files: &[PathBuf], stack: &str) -> Result<Loaded, Error> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let inputs = super::stack_config::read_files(&names, &mut std::io::stdin())?;
    let working_dir = compose::working_dir(&inputs);
    let loaded = compose::load_files(&inputs, &working_dir, &env)?;
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut configs: Vec<ConfigSpec> = Vec::new();
    let (networks, external_networks) = loaded.used_networks(stack);
    for secret in loaded.secrets.iter().filter(|s| !s.external) {
        let name = secret.cluster_name(stack);
        // The loader checked that the variable is set.
        let from_env = secret
            .environment
            .as_ref()
            .and_then(|v| env.get(v))
            .map(|v| v.clone().into_bytes());
        let Some(value) = from_env.map_or_else(|| file_value(secret, "secret"), |v| Ok(Some(v)))?
        else {
            continue;
        };
        secrets.push((name, value));
    }
    for config in loaded.configs.iter().filter(|c| !c.external) {
        let Some(data) = file_value(config, "config")? else {
            continue;
        };
        configs.push(ConfigSpec {
            name: config.cluster_name(stack),
            data,
            template_driver: config.template_driver.clone(),
            ..Default::default()
        });
    }
    let warnings = Warnings {
        unsupported: loaded.unsupported.clone(),
        deprecated: loaded.deprecated.clone(),
        notes: loaded.warnings.clone(),
    };
    Ok(Loaded {
        specs: loaded.into_service_specs(stack),
        secrets,
        configs,
        networks,
        external_networks,
        warnings,
    })
}

/// What loading the files has to tell: docker's two warnings (in docker's
/// words, so scripts matching them keep working) and shoal's own notes.
#[derive(Debug, Default)]
pub struct Warnings {
    /// Keys of docker's unsupported list: "Ignoring unsupported options: build, restart".
    pub unsupported: Vec<String>,
    /// Deprecated keys with docker's explanation: "Ignoring deprecated options: ...".
    pub deprecated: Vec<(String, String)>,
    /// shoal's own: unset variables, keys shoal does not honour yet.
    pub notes: Vec<String>,
}

impl Warnings {
    /// Writes the warnings as `docker stack deploy` writes its own, then
    /// shoal's notes, one per line.
    pub fn write(&self, err: &mut dyn std::io::Write) -> std::io::Result<()> {
        if !self.unsupported.is_empty() {
            write!(
                err,
                "Ignoring unsupported options: {}\n\n",
                self.unsupported.join(", ")
            )?;
        }
        if !self.deprecated.is_empty() {
            let lines: Vec<String> = self
                .deprecated
                .iter()
                .map(|(key, why)| format!("{key}: {why}"))
                .collect();
            write!(
                err,
                "Ignoring deprecated options:\n\n{}\n\n",
                lines.join("\n\n")
            )?;
        }
        for note in &self.notes {
            writeln!(err, "warning: {note}")?;
        }
        Ok(())
    }
}

/// A stack's compose files, loaded and checked: what `deploy` sends.
#[derive(Debug)]
pub struct Loaded {
    pub specs: Vec<ServiceSpec>,
    /// Secrets the stack makes from files: cluster name and value.
    pub secrets: Vec<(String, Vec<u8>)>,
    /// Configs the stack makes from files (labelled when deployed).
    pub configs: Vec<ConfigSpec>,
    /// The stack's own networks, named and labelled for the cluster.
    pub networks: Vec<NetworkSpec>,
    /// Networks the stack uses that must exist already.
    pub external_networks: Vec<String>,
    pub warnings: Warnings,
}

/// Checks the stack name and loads the files; done before connecting, so a bad file is
/// reported even without a manager, and deploys nothing.
pub fn prepare(args: &DeployArgs) -> Result<Loaded, Error> {
    check_name(&args.name)?;
    load(&args.compose_files, &args.name)
}

pub async fn deploy(session: &mut Session, args: DeployArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let loaded = prepare(&args)?;
    deploy_loaded(session, args, loaded, io).await
}

pub async fn deploy_loaded(
    session: &mut Session,
    args: DeployArgs,
    loaded: Loaded,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    super::stack_deploy::deploy_loaded(session, args, loaded, io).await
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let services = service::list(session, vec![LABEL_NAMESPACE.to_string()]).await?;
    let text = args
        .format
        .render(&STACK_COLUMNS, &stack_rows(&services), false)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's `stack ls` rows: each stack and how many services it has (a
/// string, as docker's `.Services` is).
pub fn stack_rows(services: &[Service]) -> Vec<serde_json::Value> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for service in services {
        if let Some(stack) = service
            .spec
            .as_ref()
            .and_then(|s| s.labels.get(LABEL_NAMESPACE))
        {
            *counts.entry(stack.as_str()).or_default() += 1;
        }
    }
    let mut stacks: Vec<(&str, usize)> = counts.into_iter().collect();
    stacks.sort_by(|a, b| natural_cmp(a.0, b.0));
    stacks
        .into_iter()
        .map(|(name, count)| json!({ "Name": name, "Services": count.to_string() }))
        .collect()
}

pub async fn ps(session: &mut Session, args: PsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let services = stack_services(session, &args.name).await?;
    if services.is_empty() {
        return Err(Error::Input(format!(
            "nothing found in stack: {}",
            args.name
        )));
    }
    let ids = services.iter().map(|s| service_id(s).to_string()).collect();
    tasks::ps(session, ids, &args.flags, io).await
}

pub async fn services(
    session: &mut Session,
    args: ServicesArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let services =
        service::filtered(session, &args.filters, vec![namespace_filter(&args.name)]).await?;
    if services.is_empty() {
        writeln!(io.err, "Nothing found in stack: {}", args.name)?;
        return Ok(());
    }
    service::write_services(session, services, &args.format, args.quiet, io).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn stack_names_follow_dockers_rule() {
        assert!(check_name("web").is_ok());
        assert!(check_name("web-2.prod_x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-web").is_err());
        assert!(check_name("we/b").is_err());
    }

    #[test]
    fn stacks_are_counted_by_namespace_label() {
        let service = |stack: Option<&str>| Service {
            spec: Some(ServiceSpec {
                labels: stack
                    .map(|s| HashMap::from([(LABEL_NAMESPACE.to_string(), s.to_string())]))
                    .unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rows = stack_rows(&[
            service(Some("web")),
            service(Some("db")),
            service(Some("web")),
            service(None),
        ]);
        // docker/cli stack formatter: `.Services` is a string.
        assert_eq!(rows[1], json!({"Name": "web", "Services": "2"}));
        assert_eq!(
            ListFormat::Table
                .render(&STACK_COLUMNS, &rows, false)
                .expect("table"),
            "NAME      SERVICES\ndb        1\nweb       2\n"
        );
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(text.as_bytes()).expect("write");
        path
    }

    #[test]
    fn specs_come_from_all_files_named_and_labelled_for_the_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.yml",
            "services:\n  web:\n    image: busybox\n",
        );
        let b = write(
            dir.path(),
            "b.yml",
            "services:\n  db:\n    image: busybox\n",
        );
        let (specs, _) = load_specs(&[a.clone(), b], "shop").expect("load");
        // Merged as docker merges: services sorted by name.
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["shop_db", "shop_web"]);
        assert_eq!(specs[1].labels[LABEL_NAMESPACE], "shop");

        // A service in a later file overrides what it sets.
        let again = write(
            dir.path(),
            "c.yml",
            "services:\n  web:\n    image: nginx\n    environment: [A=1]\n",
        );
        let (specs, _) = load_specs(&[a, again], "shop").expect("override");
        assert_eq!(specs.len(), 1);
        let container = specs[0].task.as_ref().and_then(|t| t.container.as_ref());
        let container = container.expect("container");
        assert_eq!(container.image, "nginx");
        assert_eq!(container.env, ["A=1"]);
    }

    #[test]
    fn services_naming_no_network_bring_the_stacks_default_network_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.yml",
            "services:\n  web:\n    image: busybox\n",
        );
        let b = write(
            dir.path(),
            "b.yml",
            "services:\n  db:\n    image: busybox\n    networks: [default, back]\n\
             networks:\n  back:\n",
        );
        let loaded = load(&[a, b], "shop").expect("load");
        let names: Vec<&str> = loaded.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["shop_back", "shop_default"]);
        assert_eq!(loaded.networks[1].driver, "overlay");
        assert_eq!(loaded.networks[1].labels[LABEL_NAMESPACE], "shop");
        assert!(loaded.external_networks.is_empty());
        // db, then web: the merged services are sorted by name, and so are
        // a service's networks (a map in docker's types).
        assert_eq!(loaded.specs[0].networks, ["shop_back", "shop_default"]);
        assert_eq!(loaded.specs[1].networks, ["shop_default"]);
    }

    #[test]
    fn a_compose_error_names_the_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = write(dir.path(), "bad.yml", "services:\n  web:\n    image: [\n");
        let err = load_specs(&[bad], "shop").expect_err("bad yaml");
        assert!(matches!(err, Error::Compose(_)), "{err:?}");
        assert!(err.to_string().contains("bad.yml"), "{err}");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
