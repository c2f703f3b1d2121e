//! `shoal service ...`: creating, listing, changing and removing services.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shoal_proto::control::v1::{
    CreateServiceRequest, GetServiceRequest, ListServicesRequest, ListTasksRequest,
    RemoveServiceRequest, UpdateServiceRequest,
};
use shoal_proto::types::v1::{
    service_spec, PlacementPreference, PortConfig, PublishMode, Service, ServiceSpec, Task,
    TaskState,
};

use super::converge::{self, Wait};
use super::spec::{self, Mode, SpecFlags};
use super::tasks::{self, PsFlags};
use super::{collect_errors, inspect, network, parse, placement, rollout, runtime, Error, Io};
use crate::client::Session;
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::{image_shown, natural_cmp, short_id};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a new service
    Create(Box<CreateArgs>),
    /// List services
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// List the tasks of one or more services
    #[command(after_help = tasks::PS_EXAMPLES)]
    Ps(PsArgs),
    /// Fetch the logs of a service or task
    Logs(super::service_logs::LogsArgs),
    /// Display detailed information on one or more services
    Inspect(InspectArgs),
    /// Scale one or multiple replicated services
    Scale(ScaleArgs),
    /// Update a service
    Update(Box<UpdateArgs>),
    /// Revert changes to a service's configuration
    Rollback(rollout::RollbackArgs),
    /// List the kept revisions of a service's spec
    History(rollout::HistoryArgs),
    /// Remove one or more services
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// How `create`, `update` and `scale` wait for the service to converge.
#[derive(Debug, Clone, Args)]
pub struct WaitFlags {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Give up waiting for convergence after this long (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse::duration)]
    pub timeout: Duration,
}

impl WaitFlags {
    pub fn wait(&self, watch_update: bool) -> Option<Wait> {
        (!self.detach).then_some(Wait {
            timeout: self.timeout,
            quiet: self.quiet,
            watch_update,
            rollback: false,
        })
    }
}

/// After a secret's or config's value changed in place: names the
/// services that roll to it and, unless detached, follows each rollout.
pub async fn follow_rolls(
    session: &mut Session,
    services: &[String],
    wait: &WaitFlags,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    for name in services {
        writeln!(io.out, "Rolling service {name}")?;
    }
    let Some(wait) = wait.wait(true) else {
        return Ok(());
    };
    for name in services {
        let id = service_id(&get(session, name).await?).to_string();
        converge::wait(session, &id, wait, io).await?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode
    #[arg(long, value_enum, default_value_t = Mode::Replicated)]
    pub mode: Mode,
    /// Set environment variables
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::env)]
    pub env: Vec<String>,
    /// Read in a file of environment variables (before --env)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Publish a port as a node port ([PUBLISHED:]TARGET[/PROTOCOL] or published=,target=,protocol=,mode=)
    #[arg(short, long, value_name = "PORT", value_parser = parse::ports)]
    pub publish: Vec<parse::Ports>,
    /// Service labels
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub label: Vec<(String, String)>,
    /// Container labels
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub container_label: Vec<(String, String)>,
    /// Give the service a secret (NAME or source=,target=,uid=,gid=,mode=)
    #[arg(long, value_name = "SECRET", value_parser = super::secret::reference)]
    pub secret: Vec<shoal_proto::types::v1::SecretReference>,
    /// Give the service a config (NAME or source=,target=,uid=,gid=,mode=)
    #[arg(long, value_name = "CONFIG", value_parser = super::config::reference)]
    pub config: Vec<shoal_proto::types::v1::ConfigReference>,
    /// Network attachments: NAME, or name=NAME[,alias=ALIAS...] with extra DNS names of the
    /// service on it (default: the swarm's default network)
    #[arg(long, value_name = "NETWORK", value_parser = network::attachment)]
    pub network: Vec<network::Attachment>,
    /// Set custom DNS servers
    #[arg(long, value_name = "IP", value_parser = parse::ip_address)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "DOMAIN", value_parser = parse::dns_search)]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Placement constraints (e.g. node.labels.zone==b)
    #[arg(long, value_name = "EXPR")]
    pub constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long, value_name = "pref", value_parser = placement::preference)]
    pub placement_pref: Vec<PlacementPreference>,
    #[command(flatten)]
    pub spec: SpecFlags,
    #[command(flatten)]
    pub runtime: runtime::CreateFlags,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Image to run
    pub image: String,
    /// Command and arguments for the image (replace its CMD)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub args: Vec<String>,
}

/// docker's `service ls` columns (`cli/command/service/formatter.go`).
pub const SERVICE_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("Mode", "MODE"),
        ("Replicas", "REPLICAS"),
        ("Image", "IMAGE"),
        ("Ports", "PORTS"),
    ],
    table: "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
    quiet: "{{.ID}}",
};

/// The service modes, as `--mode` and the `mode` filter spell them.
const MODES: &[&str] = &["replicated", "global", "replicated-job", "global-job"];

/// docker's `service ls` filters.
pub const SERVICE_FILTERS: FilterKeys = FilterKeys {
    command: "service ls",
    keys: &[
        FilterKey::any("id"),
        FilterKey::any("label"),
        FilterKey::one_of("mode", MODES),
        FilterKey::any("name"),
    ],
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal service ls
  shoal service ls -f mode=global -f label=com.docker.stack.namespace=shop
  shoal service ls --format '{{.Name}} {{.Replicas}}'
  shoal service ls --format 'table {{.Name}}\\t{{.Image}}'")]
pub struct LsArgs {
    /// Filter output based on conditions provided (id=, label=KEY[=VALUE], mode=, name=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| SERVICE_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub flags: PsFlags,
    /// Services (names or ids)
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal service inspect web
  shoal service inspect --pretty web
  shoal service inspect -f '{{.Spec.Name}} {{json .Spec.Labels}}' web db")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse,
          help = INSPECT_HELP, conflicts_with = "pretty")]
    pub format: Option<InspectFormat>,
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Services (names or ids)
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub wait: WaitFlags,
    /// SERVICE=REPLICAS pairs
    #[arg(required = true, value_name = "SERVICE=REPLICAS", value_parser = parse::scale)]
    pub scales: Vec<(String, u64)>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Service image tag
    #[arg(long)]
    pub image: Option<String>,
    /// Add or update an environment variable
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::env)]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long, value_name = "KEY")]
    pub env_rm: Vec<String>,
    /// Service command args
    #[arg(long, value_name = "ARGS", value_parser = parse::words, allow_hyphen_values = true)]
    pub args: Option<parse::Words>,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Add or update a service label
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub label_add: Vec<(String, String)>,
    /// Remove a label by its key
    #[arg(long, value_name = "KEY")]
    pub label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub container_label_add: Vec<(String, String)>,
    /// Remove a container label by its key
    #[arg(long, value_name = "KEY")]
    pub container_label_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long, value_name = "PORT", value_parser = parse::ports)]
    pub publish_add: Vec<parse::Ports>,
    /// Remove a published port by its target port (TARGET[/PROTOCOL])
    #[arg(long, value_name = "PORT")]
    pub publish_rm: Vec<String>,
    /// Add or update a secret (NAME or source=,target=,uid=,gid=,mode=)
    #[arg(long, value_name = "SECRET", value_parser = super::secret::reference)]
    pub secret_add: Vec<shoal_proto::types::v1::SecretReference>,
    /// Remove a secret by name
    #[arg(long, value_name = "SECRET")]
    pub secret_rm: Vec<String>,
    /// Add or update a config (NAME or source=,target=,uid=,gid=,mode=)
    #[arg(long, value_name = "CONFIG", value_parser = super::config::reference)]
    pub config_add: Vec<shoal_proto::types::v1::ConfigReference>,
    /// Remove a config by name
    #[arg(long, value_name = "CONFIG")]
    pub config_rm: Vec<String>,
    /// Add a network (NAME or name=NAME[,alias=ALIAS...])
    #[arg(long, value_name = "NETWORK", value_parser = network::attachment)]
    pub network_add: Vec<network::Attachment>,
    /// Remove a network (name or id), with the service's aliases on it
    #[arg(long, value_name = "NETWORK")]
    pub network_rm: Vec<String>,
    /// Add or update a custom DNS server
    #[arg(long, value_name = "IP", value_parser = parse::ip_address)]
    pub dns_add: Vec<String>,
    /// Remove a custom DNS server
    #[arg(long, value_name = "IP")]
    pub dns_rm: Vec<String>,
    /// Add or update a custom DNS search domain
    #[arg(long, value_name = "DOMAIN", value_parser = parse::dns_search)]
    pub dns_search_add: Vec<String>,
    /// Remove a DNS search domain
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search_rm: Vec<String>,
    /// Add or update a DNS option
    #[arg(long, value_name = "OPTION")]
    pub dns_option_add: Vec<String>,
    /// Remove a DNS option
    #[arg(long, value_name = "OPTION")]
    pub dns_option_rm: Vec<String>,
    /// Add or update a placement constraint
    #[arg(long, value_name = "EXPR")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint (the whole expression)
    #[arg(long, value_name = "EXPR")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long, value_name = "pref", value_parser = placement::preference)]
    pub placement_pref_add: Vec<PlacementPreference>,
    /// Remove a placement preference
    #[arg(long, value_name = "pref", value_parser = placement::preference)]
    pub placement_pref_rm: Vec<PlacementPreference>,
    #[command(flatten)]
    pub spec: SpecFlags,
    #[command(flatten)]
    pub runtime: runtime::UpdateFlags,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Service (name or id)
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Services (names or ids)
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub async fn run(
    session: &mut Session,
    command: ServiceCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        ServiceCommand::Create(args) => create(session, *args, io).await.map(|_| ()),
        ServiceCommand::Ls(args) => ls(session, args, io).await,
        ServiceCommand::Ps(args) => ps(session, args, io).await,
        ServiceCommand::Logs(args) => super::service_logs::logs(session, args, io).await,
        ServiceCommand::Inspect(args) => inspect(session, args, io).await,
        ServiceCommand::Scale(args) => scale(session, args, io).await,
        ServiceCommand::Update(args) => update(session, *args, io).await,
        ServiceCommand::Rollback(args) => rollout::rollback(session, args, io).await,
        ServiceCommand::History(args) => rollout::history(session, args, io).await,
        ServiceCommand::Rm(args) => rm(session, args, io).await,
    }
}

/// The spec `service create` sends for `args`.
pub fn create_spec(args: &CreateArgs) -> Result<ServiceSpec, Error> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => generated_name(&args.image),
    };
    let mut spec = spec::new_spec(name, args.image.clone(), args.args.clone(), args.mode);
    args.spec.apply(&mut spec)?;
    spec.labels.extend(args.label.iter().cloned());
    let container = spec::container_mut(&mut spec);
    let process_env: std::collections::HashMap<String, String> = std::env::vars().collect();
    for file in &args.env_file {
        let vars = crate::env_file::read(file, &process_env).map_err(Error::Input)?;
        for (key, value) in vars {
            spec::env_add(&mut container.env, &format!("{key}={value}"));
        }
    }
    for entry in &args.env {
        spec::env_add(&mut container.env, entry);
    }
    container
        .labels
        .extend(args.container_label.iter().cloned());
    container.dns_config = spec::dns_config(&args.dns, &args.dns_search, &args.dns_option);
    args.runtime.apply(container);
    if args.with_registry_auth {
        container.registry_auth = Some(super::login::auth_for(&args.image)?);
    }
    let ports: Vec<PortConfig> = args.publish.iter().flat_map(|p| p.0.clone()).collect();
    if !ports.is_empty() {
        *spec::ports_mut(&mut spec) = ports;
    }
    if let Some(task) = spec.task.as_mut() {
        task.secrets = args.secret.clone();
        task.configs = args.config.clone();
        task.constraints = args.constraint.clone();
        task.preferences = args.placement_pref.clone();
    }
    if let Some(service_spec::Mode::ReplicatedJob(job)) = spec.mode.as_mut() {
        if args.spec.max_concurrent.is_none() {
            // docker: --max-concurrent defaults to --replicas.
            job.max_concurrent = job.total_completions;
        }
    }
    if args.spec.replicas_max_per_node.is_some_and(|n| n > 0)
        && matches!(args.mode, Mode::Global | Mode::GlobalJob)
    {
        return Err(Error::Usage(
            "replicas-max-per-node can only be used with replicated mode".into(),
        ));
    }
    spec.networks = args.network.iter().map(|a| a.target.clone()).collect();
    spec.network_aliases = network::aliases_of(&args.network);
    Ok(spec)
}

/// Creates the service and (unless detached) waits for it; returns its id.
pub async fn create(
    session: &mut Session,
    args: CreateArgs,
    io: &mut Io<'_>,
) -> Result<String, Error> {
    let spec = create_spec(&args)?;
    let service = session
        .client
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .service
        .ok_or_else(|| Error::Deploy("the manager answered without the service".into()))?;
    let id = service_id(&service).to_string();
    writeln!(io.out, "{id}")?;
    if let Some(wait) = args.wait.wait(false) {
        converge::wait(session, &id, wait, io).await?;
    }
    Ok(id)
}

/// A name for an unnamed service: the image's name and a random suffix (docker picks a
/// random name too).
fn generated_name(image: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let base = image.split(['@']).next().unwrap_or(image);
    let base = base.rsplit('/').next().unwrap_or(base);
    let base = base.split(':').next().unwrap_or(base);
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let suffix = format!("{:06x}", hasher.finish() & 0xff_ffff);
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        format!("service-{suffix}")
    } else {
        format!("{clean}-{suffix}")
    }
}

pub fn service_id(service: &Service) -> &str {
    service.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

pub fn service_name(service: &Service) -> &str {
    service.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
}

pub async fn get(session: &mut Session, id_or_name: &str) -> Result<Service, Error> {
    session
        .client
        .get_service(GetServiceRequest {
            id_or_name: id_or_name.to_string(),
        })
        .await?
        .into_inner()
        .service
        .ok_or_else(|| Error::Input(format!("no such service: {id_or_name}")))
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let services = filtered(session, &args.filters, Vec::new()).await?;
    write_services(session, services, &args.format, args.quiet, io).await
}

/// The services `filters` select (docker's `service ls` filters: `id` and
/// `name` prefixes, `label`, `mode`), of those with all of `labels`.
pub async fn filtered(
    session: &mut Session,
    filters: &[Filter],
    mut labels: Vec<String>,
) -> Result<Vec<Service>, Error> {
    let filters = Filters::new(filters);
    // The manager filters on labels; the rest is matched here.
    labels.extend(filters.values("label").iter().cloned());
    let services = list(session, labels).await?;
    Ok(services
        .into_iter()
        .filter(|s| service_matches(&filters, s))
        .collect())
}

fn service_matches(filters: &Filters, service: &Service) -> bool {
    filters.any("id", |prefix| service_id(service).starts_with(prefix))
        && filters.any("name", |prefix| service_name(service).starts_with(prefix))
        && filters.any("mode", |mode| mode.replace('-', " ") == mode_name(service))
}

/// Services with all of `labels` (`KEY` or `KEY=VALUE`), sorted by name as
/// docker sorts them.
pub async fn list(session: &mut Session, labels: Vec<String>) -> Result<Vec<Service>, Error> {
    let mut services = session
        .client
        .list_services(ListServicesRequest {
            names: vec![],
            labels,
        })
        .await?
        .into_inner()
        .services;
    services.sort_by(|a, b| natural_cmp(service_name(a), service_name(b)));
    Ok(services)
}

/// `service ls` output of `services` (shared with `stack services`).
pub async fn write_services(
    session: &mut Session,
    services: Vec<Service>,
    format: &ListFormat,
    quiet: bool,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    // `-q` alone prints ids: no need for the tasks behind the replica counts.
    let counted = !(quiet && matches!(format, ListFormat::Table));
    let tasks = if services.is_empty() || !counted {
        Vec::new()
    } else {
        session
            .client
            .list_tasks(ListTasksRequest {
                service_ids: services.iter().map(|s| service_id(s).to_string()).collect(),
                // A job's completed tasks count too (desired `complete`).
                only_desired_running: false,
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks
    };
    let rows = service_rows(&services, &tasks);
    let text = format.render(&SERVICE_COLUMNS, &rows, quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

pub fn mode_name(service: &Service) -> &'static str {
    match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(service_spec::Mode::Global(_)) => "global",
        Some(service_spec::Mode::ReplicatedJob(_)) => "replicated job",
        Some(service_spec::Mode::GlobalJob(_)) => "global job",
        _ => "replicated",
    }
}

/// `running/desired` counts per service, from tasks that should run; a
/// job's column also tells its progress, as docker's does: `running/desired
/// (completed/total completed)`, counting the current iteration only.
fn replica_counts(service: &Service, tasks: &[Task]) -> (u64, u64, String) {
    let id = service_id(service);
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    let job = matches!(
        mode,
        Some(service_spec::Mode::ReplicatedJob(_) | service_spec::Mode::GlobalJob(_))
    );
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    let ours: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.service_id == id && (!job || t.job_iteration == iteration))
        .collect();
    let live: Vec<&&Task> = ours
        .iter()
        .filter(|t| t.desired() <= TaskState::Running && !(job && t.observed_state().is_terminal()))
        .collect();
    let running = live
        .iter()
        .filter(|t| t.observed_state() == TaskState::Running)
        .count() as u64;
    let completed = ours
        .iter()
        .filter(|t| t.observed_state() == TaskState::Complete)
        .count() as u64;
    let desired = match mode {
        Some(service_spec::Mode::Global(_)) => live.len() as u64,
        Some(service_spec::Mode::Replicated(r)) => r.replicas,
        Some(service_spec::Mode::ReplicatedJob(j)) => {
            let total = job_total(j);
            j.max_concurrent.max(1).min(total.saturating_sub(completed))
        }
        Some(service_spec::Mode::GlobalJob(_)) => live.len() as u64,
        None => 1,
    };
    let shown = match mode {
        Some(service_spec::Mode::ReplicatedJob(j)) => {
            let total = job_total(j);
            format!("{running}/{desired} ({completed}/{total} completed)")
        }
        Some(service_spec::Mode::GlobalJob(_)) => {
            let total = desired + completed;
            format!("{running}/{desired} ({completed}/{total} completed)")
        }
        Some(service_spec::Mode::Replicated(_)) if max_per_node(service) > 0 => {
            let max = max_per_node(service);
            format!("{running}/{desired} (max {max} per node)")
        }
        _ => format!("{running}/{desired}"),
    };
    (running, desired, shown)
}

/// `--replicas-max-per-node` (0: no limit).
fn max_per_node(service: &Service) -> u64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .map_or(0, |t| t.max_replicas_per_node)
}

/// A replicated job's completions (0: as many as run at once, swarmkit's
/// default).
pub fn job_total(job: &shoal_proto::types::v1::ReplicatedJob) -> u64 {
    if job.total_completions == 0 {
        job.max_concurrent.max(1)
    } else {
        job.total_completions
    }
}

/// docker's `service ls` rows (`.ID`, `.Name`, `.Mode`, `.Replicas`,
/// `.Image`, `.Ports`), with the counts behind `.Replicas` as shoal's
/// `.Running` and `.Desired`.
pub fn service_rows(services: &[Service], tasks: &[Task]) -> Vec<Value> {
    services
        .iter()
        .map(|service| {
            let (running, desired, replicas) = replica_counts(service, tasks);
            let image = service
                .spec
                .as_ref()
                .and_then(|s| s.task.as_ref())
                .and_then(|t| t.container.as_ref())
                .map(|c| c.image.as_str())
                .unwrap_or("");
            let ports = if service.endpoint_ports.is_empty() {
                service
                    .spec
                    .as_ref()
                    .and_then(|s| s.endpoint.as_ref())
                    .map(|e| e.ports.as_slice())
                    .unwrap_or_default()
            } else {
                service.endpoint_ports.as_slice()
            };
            json!({
                "ID": short_id(service_id(service)),
                "Name": service_name(service),
                "Mode": mode_name(service),
                "Replicas": replicas,
                "Image": image_shown(image),
                "Ports": ingress_ports(ports),
                "Running": running,
                "Desired": desired,
            })
        })
        .collect()
}

/// docker's `serviceContext.Ports`: the ports published on every node
/// (mode ingress), by protocol and port, runs of consecutive ports grouped
/// (`*:80-81->80-81/tcp`, `*:80-81->80/tcp`), joined by `, `.
fn ingress_ports(ports: &[PortConfig]) -> String {
    struct Range<'a> {
        published: (u32, u32),
        target: (u32, u32),
        protocol: &'a str,
    }
    impl std::fmt::Display for Range<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let span = |(start, end): (u32, u32)| {
                if end > start {
                    format!("{start}-{end}")
                } else {
                    start.to_string()
                }
            };
            write!(
                f,
                "*:{}->{}/{}",
                span(self.published),
                span(self.target),
                self.protocol
            )
        }
    }
    let mut ingress: Vec<&PortConfig> = ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Ingress as i32)
        .collect();
    ingress.sort_by_key(|p| (parse::protocol_name(p.protocol), p.published_port));
    let mut shown = Vec::new();
    let mut current: Option<Range> = None;
    for p in ingress {
        let protocol = parse::protocol_name(p.protocol);
        if let Some(range) = current.as_mut() {
            // docker's unsigned arithmetic: a port below the range wraps
            // around and starts a new one.
            let is_range = range.target.1 != range.target.0;
            let continues = protocol == range.protocol
                && p.published_port.wrapping_sub(range.published.1) <= 1
                && p.target_port.wrapping_sub(range.target.1) <= 1
                && !(is_range && p.target_port <= range.target.1);
            if continues {
                range.published.1 = p.published_port;
                range.target.1 = p.target_port;
                continue;
            }
        }
        if let Some(range) = current.take().filter(|r| r.published.0 > 0) {
            shown.push(range.to_string());
        }
        current = Some(Range {
            published: (p.published_port, p.published_port),
            target: (p.target_port, p.target_port),
            protocol,
        });
    }
    if let Some(range) = current.filter(|r| r.published.0 > 0) {
        shown.push(range.to_string());
    }
    shown.join(", ")
}

pub async fn ps(session: &mut Session, args: PsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut ids = Vec::new();
    for reference in &args.services {
        ids.push(service_id(&get(session, reference).await?).to_string());
    }
    tasks::ps(session, ids, &args.flags, io).await
}

pub async fn inspect(
    session: &mut Session,
    args: InspectArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for reference in &args.services {
        match get(session, reference).await {
            Ok(service) => found.push(service),
            Err(e) => errors.push(e),
        }
    }
    if args.pretty {
        for (i, service) in found.iter().enumerate() {
            if i > 0 {
                writeln!(io.out)?;
            }
            io.out.write_all(inspect::pretty(service).as_bytes())?;
        }
    } else {
        let objects = found.iter().map(inspect::service_json).collect();
        let format = args.format.unwrap_or_default();
        return inspect::write_inspected(objects, errors, &format, io.out);
    }
    collect_errors(errors)
}

pub async fn scale(session: &mut Session, args: ScaleArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for (name, replicas) in &args.scales {
        if let Err(e) = scale_one(session, name, *replicas, &args.wait, io).await {
            errors.push(e);
        }
    }
    collect_errors(errors)
}

async fn scale_one(
    session: &mut Session,
    name: &str,
    replicas: u64,
    wait: &WaitFlags,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let service = get(session, name).await?;
    let mut spec = service.spec.clone().unwrap_or_default();
    if matches!(spec.mode, Some(service_spec::Mode::Global(_))) {
        return Err(Error::Input(format!(
            "{name}: scale can only be used with replicated mode"
        )));
    }
    spec::set_replicas(&mut spec, replicas)?;
    let id = service_id(&service).to_string();
    send_update(session, &service, spec).await?;
    writeln!(io.out, "{name} scaled to {replicas}")?;
    if let Some(wait) = wait.wait(false) {
        converge::wait(session, &id, wait, io).await?;
    }
    Ok(())
}

/// Sends `spec` as the new spec of `service`, naming the version it was read at.
pub async fn send_update(
    session: &mut Session,
    service: &Service,
    spec: ServiceSpec,
) -> Result<Service, Error> {
    session
        .client
        .update_service(UpdateServiceRequest {
            service_id: service_id(service).to_string(),
            version: service.meta.as_ref().map(|m| m.version).unwrap_or(0),
            spec: Some(spec),
        })
        .await?
        .into_inner()
        .service
        .ok_or_else(|| Error::Deploy("the manager answered without the service".into()))
}

/// `spec` with `args`' edits made.
pub fn updated_spec(mut spec: ServiceSpec, args: &UpdateArgs) -> Result<ServiceSpec, Error> {
    args.spec.apply(&mut spec)?;
    for key in &args.label_rm {
        spec.labels.remove(key);
    }
    spec.labels.extend(args.label_add.iter().cloned());
    if !args.publish_rm.is_empty() || !args.publish_add.is_empty() {
        let ports = spec::ports_mut(&mut spec);
        for target in &args.publish_rm {
            spec::publish_rm(ports, target).map_err(Error::Input)?;
        }
        spec::publish_add(
            ports,
            args.publish_add.iter().flat_map(|p| p.0.clone()).collect(),
        );
    }
    let container = spec::container_mut(&mut spec);
    if let Some(image) = &args.image {
        container.image = image.clone();
    }
    if let Some(words) = &args.args {
        container.args = words.0.clone();
    }
    for key in &args.env_rm {
        spec::env_rm(&mut container.env, key);
    }
    for entry in &args.env_add {
        spec::env_add(&mut container.env, entry);
    }
    for key in &args.container_label_rm {
        container.labels.remove(key);
    }
    container
        .labels
        .extend(args.container_label_add.iter().cloned());
    spec::edit_dns(
        container,
        spec::ListEdit {
            add: &args.dns_add,
            rm: &args.dns_rm,
        },
        spec::ListEdit {
            add: &args.dns_search_add,
            rm: &args.dns_search_rm,
        },
        spec::ListEdit {
            add: &args.dns_option_add,
            rm: &args.dns_option_rm,
        },
    );
    args.runtime.apply(container);
    if args.with_registry_auth {
        container.registry_auth = Some(super::login::auth_for(&container.image)?);
    }
    if !args.secret_rm.is_empty() || !args.secret_add.is_empty() {
        let task = spec.task.get_or_insert_with(Default::default);
        task.secrets.retain(|r| {
            !args.secret_rm.contains(&r.secret_name)
                && !args
                    .secret_add
                    .iter()
                    .any(|a| a.secret_name == r.secret_name)
        });
        task.secrets.extend(args.secret_add.iter().cloned());
    }
    if !args.config_rm.is_empty() || !args.config_add.is_empty() {
        let task = spec.task.get_or_insert_with(Default::default);
        task.configs.retain(|r| {
            !args.config_rm.contains(&r.config_name)
                && !args
                    .config_add
                    .iter()
                    .any(|a| a.config_name == r.config_name)
        });
        task.configs.extend(args.config_add.iter().cloned());
    }
    if !args.constraint_add.is_empty() || !args.constraint_rm.is_empty() {
        let task = spec.task.get_or_insert_with(Default::default);
        spec::edit_constraints(
            &mut task.constraints,
            &args.constraint_add,
            &args.constraint_rm,
        );
    }
    if !args.placement_pref_add.is_empty() || !args.placement_pref_rm.is_empty() {
        let task = spec.task.get_or_insert_with(Default::default);
        placement::edit_preferences(
            &mut task.preferences,
            &args.placement_pref_add,
            &args.placement_pref_rm,
        );
    }
    if args.force {
        // Swarm's ForceUpdate: the task spec changes, so the tasks roll.
        let task = spec.task.get_or_insert_with(Default::default);
        task.force_update = task.force_update.saturating_add(1);
    }
    Ok(spec)
}

pub async fn update(session: &mut Session, args: UpdateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if args.rollback {
        // docker's `update --rollback`: the manager returns to the previous
        // spec (other flags change nothing, as with docker's daemon).
        return rollout::rollback(session, rollout::RollbackArgs::previous(&args), io).await;
    }
    let service = get(session, &args.service).await?;
    let mut spec = updated_spec(service.spec.clone().unwrap_or_default(), &args)?;
    if !args.network_add.is_empty() || !args.network_rm.is_empty() {
        let known = network::list(session).await?;
        network::edit_service_networks(&mut spec, &args.network_add, &args.network_rm, &known)?;
    }
    let updated = send_update(session, &service, spec).await?;
    writeln!(io.out, "{}", args.service)?;
    let rolled = updated.spec_version != service.spec_version;
    if let Some(wait) = args.wait.wait(rolled) {
        converge::wait(session, service_id(&updated), wait, io).await?;
    }
    Ok(())
}

pub async fn rm(session: &mut Session, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for reference in &args.services {
        let removed = async {
            let service = get(session, reference).await?;
            remove(session, &service).await
        }
        .await;
        match removed {
            Ok(()) => writeln!(io.out, "{reference}")?,
            Err(e) => errors.push(e),
        }
    }
    collect_errors(errors)
}

pub async fn remove(session: &mut Session, service: &Service) -> Result<(), Error> {
    session
        .client
        .remove_service(RemoveServiceRequest {
            service_id: service_id(service).to_string(),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use shoal_proto::types::v1::{Meta, TaskStatus};

    use crate::commands::{Cli, Command};

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["shoal"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses")
    }

    #[test]
    fn env_files_come_first_and_env_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.env");
        std::fs::write(&file, "# settings\nMODE=prod\nLEVEL=debug\n").unwrap();
        let file = file.to_string_lossy().into_owned();
        let spec = create_spec(&create_args(&[
            "--env-file",
            &file,
            "--env",
            "LEVEL=info",
            "busybox",
        ]))
        .expect("spec");
        assert_eq!(container(&spec).env, ["MODE=prod", "LEVEL=info"]);
        let missing = dir
            .path()
            .join("missing.env")
            .to_string_lossy()
            .into_owned();
        let err = create_spec(&create_args(&["--env-file", &missing, "busybox"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("open {missing}: no such file or directory")),
            "{err}"
        );
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        let mut argv = vec!["service", "create"];
        argv.extend_from_slice(args);
        match parse(&argv).command {
            Command::Service(ServiceCommand::Create(args)) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_puts_words_after_the_image_into_args() {
        let args = create_args(&[
            "--name",
            "web",
            "--replicas",
            "3",
            "-e",
            "A=1",
            "-p",
            "8080:80",
            "--label",
            "tier=front",
            "--container-label",
            "x=y",
            "--entrypoint",
            "sh -c",
            "--restart-condition",
            "on-failure",
            "--update-order",
            "start-first",
            "busybox:1",
            "httpd",
            "-f",
            "-p",
            "80",
        ]);
        let spec = create_spec(&args).expect("spec");
        assert_eq!(spec.name, "web");
        assert_eq!(
            spec.mode,
            Some(service_spec::Mode::Replicated(
                shoal_proto::types::v1::ReplicatedMode { replicas: 3 }
            ))
        );
        assert_eq!(spec.labels["tier"], "front");
        let container = spec
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .expect("container");
        assert_eq!(container.image, "busybox:1");
        assert_eq!(container.args, ["httpd", "-f", "-p", "80"]);
        assert_eq!(container.command, ["sh", "-c"]);
        assert_eq!(container.env, ["A=1"]);
        assert_eq!(container.labels["x"], "y");
        let ports = &spec.endpoint.as_ref().expect("endpoint").ports;
        assert_eq!((ports[0].published_port, ports[0].target_port), (8080, 80));
        assert!(!args.wait.detach);
        assert_eq!(args.wait.timeout, Duration::from_secs(120));
    }

    #[test]
    fn placement_flags_on_create_and_update() {
        let args = create_args(&[
            "--constraint",
            "node.labels.zone==b",
            "--constraint",
            "node.role!=manager",
            "--replicas-max-per-node",
            "2",
            "busybox",
        ]);
        let spec = create_spec(&args).expect("spec");
        let task = spec.task.clone().unwrap();
        assert_eq!(
            task.constraints,
            ["node.labels.zone==b", "node.role!=manager"]
        );
        assert_eq!(task.max_replicas_per_node, 2);
        let global = create_spec(&create_args(&[
            "--mode",
            "global",
            "--replicas-max-per-node",
            "1",
            "busybox",
        ]))
        .expect_err("refused");
        assert!(global
            .to_string()
            .contains("only be used with replicated mode"));

        let update = match parse(&[
            "service",
            "update",
            "--constraint-add",
            "node.hostname!=w2",
            "--constraint-rm",
            "node.role!=manager",
            "--replicas-max-per-node",
            "0",
            "web",
        ])
        .command
        {
            Command::Service(ServiceCommand::Update(args)) => *args,
            other => panic!("{other:?}"),
        };
        let task = updated_spec(spec, &update).unwrap().task.unwrap();
        assert_eq!(
            task.constraints,
            ["node.hostname!=w2", "node.labels.zone==b"]
        );
        assert_eq!(task.max_replicas_per_node, 0);
    }

    #[test]
    fn resource_and_preference_flags_on_create_and_update() {
        let args = create_args(&[
            "--limit-cpu",
            "0.5",
            "--limit-memory",
            "64M",
            "--limit-pids",
            "100",
            "--reserve-cpu",
            "1/4",
            "--reserve-memory",
            "1g",
            "--placement-pref",
            "spread=node.labels.zone",
            "--placement-pref",
            "spread=node.labels.rack",
            "busybox",
        ]);
        let spec = create_spec(&args).expect("spec");
        let task = spec.task.clone().unwrap();
        assert_eq!(
            task.resources,
            Some(shoal_proto::types::v1::ResourceRequirements {
                limit_nano_cpus: 500_000_000,
                limit_memory_bytes: 64 << 20,
                limit_pids: 100,
                reserve_nano_cpus: 250_000_000,
                reserve_memory_bytes: 1 << 30,
            })
        );
        let descriptors = |t: &shoal_proto::types::v1::TaskSpec| -> Vec<String> {
            t.preferences
                .iter()
                .map(|p| p.spread_descriptor.clone())
                .collect()
        };
        assert_eq!(descriptors(&task), ["node.labels.zone", "node.labels.rack"]);

        let update = match parse(&[
            "service",
            "update",
            "--limit-memory",
            "512m",
            "--reserve-cpu",
            "0",
            "--placement-pref-rm",
            "spread=node.labels.zone",
            "--placement-pref-add",
            "spread=node.labels.row",
            "web",
        ])
        .command
        {
            Command::Service(ServiceCommand::Update(args)) => *args,
            other => panic!("{other:?}"),
        };
        let task = updated_spec(spec, &update).unwrap().task.unwrap();
        let r = task.resources.unwrap();
        assert_eq!(r.limit_memory_bytes, 512 << 20);
        assert_eq!(r.reserve_nano_cpus, 0);
        assert_eq!(r.limit_nano_cpus, 500_000_000, "kept");
        assert_eq!(descriptors(&task), ["node.labels.rack", "node.labels.row"]);

        for (flag, value, message) in [
            ("--limit-memory", "64x", "invalid suffix: 'x'"),
            (
                "--limit-cpu",
                "half",
                "failed to parse half as a rational number",
            ),
            ("--reserve-cpu", "0.0000000001", "value is too precise"),
            (
                "--placement-pref",
                "pack=node.labels.zone",
                "unsupported placement preference pack (only spread is supported)",
            ),
        ] {
            let err = Cli::try_parse_from(["shoal", "service", "create", flag, value, "busybox"])
                .expect_err("refused");
            assert!(err.to_string().contains(message), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn create_attaches_the_named_networks_in_order() {
        let args = create_args(&[
            "--network",
            "backend",
            "--network",
            "name=front,alias=web",
            "busybox",
        ]);
        let spec = create_spec(&args).expect("spec");
        assert_eq!(spec.networks, ["backend", "front"]);
        assert_eq!(
            spec.network_aliases,
            [shoal_proto::types::v1::NetworkAliasesSpec {
                network: "front".into(),
                aliases: vec!["web".into()],
            }]
        );
        let none = create_spec(&create_args(&["busybox"])).expect("spec");
        assert!(none.networks.is_empty(), "the manager's default network");
        assert!(none.network_aliases.is_empty());
        let bad =
            Cli::try_parse_from(["shoal", "service", "create", "--network", "x=y", "busybox"])
                .expect_err("refused");
        assert_eq!(bad.exit_code(), 2);
    }

    #[test]
    fn network_aliases_go_with_the_network_as_it_is_written() {
        let spec = create_spec(&create_args(&[
            "--network",
            "name=backend,alias=db,alias=primary",
            "--network",
            "name=k3x9v2m4,alias=cache",
            "busybox",
        ]))
        .expect("spec");
        assert_eq!(spec.networks, ["backend", "k3x9v2m4"]);
        let aliases: Vec<(&str, Vec<&str>)> = spec
            .network_aliases
            .iter()
            .map(|a| {
                (
                    a.network.as_str(),
                    a.aliases.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            aliases,
            [
                ("backend", vec!["db", "primary"]),
                ("k3x9v2m4", vec!["cache"])
            ]
        );
    }

    fn container(spec: &ServiceSpec) -> &shoal_proto::types::v1::ContainerSpec {
        spec.task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .expect("container")
    }

    #[test]
    fn create_takes_dockers_hostname_and_dns_flags() {
        let spec = create_spec(&create_args(&[
            "--hostname",
            "web-host",
            "--dns",
            "10.0.0.2",
            "--dns",
            "2001:db8:0:0:0:0:0:53",
            "--dns-search",
            "svc.example.",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "--dns-option",
            "use-vc",
            "busybox",
        ]))
        .expect("spec");
        let c = container(&spec);
        assert_eq!(c.hostname, "web-host");
        assert_eq!(
            c.dns_config,
            Some(shoal_proto::types::v1::DnsConfig {
                nameservers: vec!["10.0.0.2".into(), "2001:db8::53".into()],
                search: vec!["svc.example".into(), "example.com".into()],
                options: vec!["ndots:2".into(), "use-vc".into()],
            })
        );
        let plain = create_spec(&create_args(&["busybox"])).expect("spec");
        assert_eq!(container(&plain).hostname, "");
        assert_eq!(container(&plain).dns_config, None, "no flag: no settings");
    }

    #[test]
    fn bad_dns_servers_and_search_domains_are_usage_errors_in_dockers_words() {
        for (flags, message) in [
            (
                ["service", "create", "--dns", "not-an-ip", "busybox"],
                "IP address is not correctly formatted: not-an-ip",
            ),
            (
                [
                    "service",
                    "create",
                    "--dns-search",
                    "bad-.example",
                    "busybox",
                ],
                "bad-.example is not a valid domain",
            ),
            (
                ["service", "update", "--dns-add", "10.0.0", "web"],
                "IP address is not correctly formatted: 10.0.0",
            ),
            (
                ["service", "update", "--dns-search-add", "a..b", "web"],
                "a..b is not a valid domain",
            ),
        ] {
            let mut argv = vec!["shoal"];
            argv.extend_from_slice(&flags);
            let err = Cli::try_parse_from(&argv).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{argv:?}");
            assert!(err.to_string().contains(message), "{argv:?}: {err}");
        }
    }

    #[test]
    fn endpoint_mode_dnsrr_asks_for_no_virtual_ip() {
        use shoal_proto::types::v1::endpoint_spec::Mode;
        let spec =
            create_spec(&create_args(&["--endpoint-mode", "dnsrr", "busybox"])).expect("spec");
        assert_eq!(spec.endpoint.unwrap().mode, Mode::Dnsrr as i32);
        let default = create_spec(&create_args(&["busybox"])).expect("spec");
        assert_eq!(default.endpoint.map_or(0, |e| e.mode), Mode::Vip as i32);
        let bad = Cli::try_parse_from(["shoal", "service", "create", "--endpoint-mode", "lb", "x"]);
        assert!(bad.is_err(), "only vip and dnsrr");
    }

    #[test]
    fn create_without_name_generates_one_from_the_image() {
        let spec = create_spec(&create_args(&["-d", "registry:5000/team/web:v1"])).expect("spec");
        assert!(spec.name.starts_with("web-"), "{}", spec.name);
        assert_eq!(spec.name.len(), "web-".len() + 6);
    }

    #[test]
    fn global_create_refuses_replicas() {
        let args = create_args(&["--mode", "global", "--replicas", "2", "busybox"]);
        assert!(create_spec(&args).is_err());
    }

    #[test]
    fn bad_flag_values_are_usage_errors() {
        for argv in [
            vec!["shoal", "service", "create", "-p", "80:http", "busybox"],
            vec![
                "shoal",
                "service",
                "create",
                "--stop-grace-period",
                "10",
                "busybox",
            ],
            vec![
                "shoal",
                "service",
                "create",
                "--restart-condition",
                "always",
                "busybox",
            ],
            vec!["shoal", "service", "scale", "web"],
            vec!["shoal", "--host", "http://x", "node", "ls"],
        ] {
            let err = Cli::try_parse_from(&argv).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    fn update_args(args: &[&str]) -> UpdateArgs {
        let mut argv = vec!["service", "update"];
        argv.extend_from_slice(args);
        match parse(&argv).command {
            Command::Service(ServiceCommand::Update(args)) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_edits_only_what_flags_name_and_force_bumps_the_counter() {
        let original = create_spec(&create_args(&[
            "--name",
            "web",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "--label",
            "keep=1",
            "-p",
            "8080:80",
            "busybox:1",
            "httpd",
        ]))
        .expect("spec");
        let args = update_args(&[
            "--image",
            "busybox:2",
            "--env-add",
            "A=9",
            "--env-rm",
            "B",
            "--args",
            "sleep 'a b'",
            "--label-add",
            "new=2",
            "--publish-rm",
            "80",
            "--publish-add",
            "9090:90/udp",
            "--force",
            "web",
        ]);
        let spec = updated_spec(original.clone(), &args).expect("update");
        let container = spec
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .expect("container");
        assert_eq!(container.image, "busybox:2");
        assert_eq!(container.env, ["A=9"]);
        assert_eq!(container.args, ["sleep", "a b"]);
        assert_eq!(spec.task.as_ref().map(|t| t.force_update), Some(1));
        assert_eq!(spec.labels["keep"], "1");
        assert_eq!(spec.labels["new"], "2");
        let ports = &spec.endpoint.as_ref().expect("endpoint").ports;
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].target_port, 90);

        let again = updated_spec(spec, &update_args(&["--force", "web"])).expect("force");
        assert_eq!(again.task.as_ref().map(|t| t.force_update), Some(2));

        let untouched = updated_spec(original.clone(), &update_args(&["web"])).expect("noop");
        assert_eq!(untouched, original);
    }

    #[test]
    fn log_driver_flags_set_and_replace_the_driver_and_inspect_shows_it() {
        let original = create_spec(&create_args(&[
            "--name",
            "web",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=10m",
            "--log-opt",
            "max-file=3",
            "busybox",
        ]))
        .expect("spec");
        let driver = original.task.as_ref().unwrap().log_driver.clone().unwrap();
        assert_eq!(driver.name, "json-file");
        assert_eq!(driver.options.len(), 2);
        let json = inspect::spec_json(&original);
        assert_eq!(
            json["TaskTemplate"]["LogDriver"],
            json!({ "Name": "json-file", "Options": { "max-file": "3", "max-size": "10m" } })
        );

        // Unrelated flags leave the driver alone.
        let kept = updated_spec(original.clone(), &update_args(&["--env-add", "A=1", "web"]))
            .expect("update");
        assert_eq!(kept.task.unwrap().log_driver, Some(driver));
        // docker's updateLogDriver: the new driver with only its new options.
        let replaced = updated_spec(
            original.clone(),
            &update_args(&["--log-driver", "local", "--log-opt", "max-size=1m", "web"]),
        )
        .expect("update");
        let driver = replaced.task.unwrap().log_driver.unwrap();
        assert_eq!(driver.name, "local");
        assert_eq!(driver.options, [("max-size".into(), "1m".into())].into());

        for argv in [
            &["--log-opt", "max-size=1m", "busybox"][..],
            &["--log-driver", "local", "--log-opt", "max-size", "busybox"],
        ] {
            let parsed = {
                let mut full = vec!["shoal", "service", "create"];
                full.extend_from_slice(argv);
                Cli::try_parse_from(&full)
            };
            let refused = match parsed {
                Err(e) => e.exit_code(),
                Ok(cli) => match cli.command {
                    Command::Service(ServiceCommand::Create(args)) => {
                        create_spec(&args).unwrap_err().exit_code()
                    }
                    other => panic!("{other:?}"),
                },
            };
            assert_eq!(refused, 2, "{argv:?}: a usage error");
        }
        let err =
            updated_spec(original, &update_args(&["--log-opt", "max-file=5", "web"])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--log-opt requires --log-driver"),
            "{err}"
        );
    }

    #[test]
    fn update_edits_hostname_and_dns_settings() {
        let original = create_spec(&create_args(&[
            "--name",
            "web",
            "--hostname",
            "old",
            "--dns",
            "10.0.0.2",
            "--dns",
            "10.0.0.3",
            "--dns-search",
            "a.example",
            "--dns-option",
            "ndots:2",
            "busybox",
        ]))
        .expect("spec");
        let spec = updated_spec(
            original.clone(),
            &update_args(&[
                "--hostname",
                "new",
                "--dns-add",
                "1.1.1.1",
                "--dns-add",
                "10.0.0.2",
                "--dns-rm",
                "10.0.0.3",
                "--dns-search-add",
                "b.example",
                "--dns-search-rm",
                "a.example",
                "--dns-option-add",
                "edns0",
                "--dns-option-rm",
                "ndots:2",
                "web",
            ]),
        )
        .expect("update");
        let c = container(&spec);
        assert_eq!(c.hostname, "new");
        assert_eq!(
            c.dns_config,
            Some(shoal_proto::types::v1::DnsConfig {
                nameservers: vec!["10.0.0.2".into(), "1.1.1.1".into()],
                search: vec!["b.example".into()],
                options: vec!["edns0".into()],
            })
        );
        // The other fields are left alone.
        assert_eq!(c.image, "busybox");
        assert_eq!(spec.networks, original.networks);

        // Removing everything leaves no settings; --hostname "" clears the hostname.
        let cleared = updated_spec(
            spec,
            &update_args(&[
                "--hostname",
                "",
                "--dns-rm",
                "10.0.0.2",
                "--dns-rm",
                "1.1.1.1",
                "--dns-search-rm",
                "b.example",
                "--dns-option-rm",
                "edns0",
                "web",
            ]),
        )
        .expect("update");
        assert_eq!(container(&cleared).hostname, "");
        assert_eq!(container(&cleared).dns_config, None);
    }

    #[test]
    fn service_table_counts_running_of_desired_and_shows_ports() {
        let mut spec = create_spec(&create_args(&[
            "--name",
            "web_web",
            "--replicas",
            "3",
            "-p",
            "8080:80",
            "busybox:1@sha256:ab",
        ]))
        .expect("spec");
        spec.labels.clear();
        let service = Service {
            meta: Some(Meta {
                id: "abcdefghijklmnopqrstuvwxy".into(),
                ..Default::default()
            }),
            spec: Some(spec),
            ..Default::default()
        };
        let task = |state: TaskState| Task {
            service_id: "abcdefghijklmnopqrstuvwxy".into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let listing = service_rows(
            &[service],
            &[
                task(TaskState::Running),
                task(TaskState::Running),
                task(TaskState::Starting),
            ],
        );
        // docker/cli service formatter: the id cut to 12, the image without
        // its digest, the ingress ports.
        assert_eq!(
            listing[0],
            json!({
                "ID": "abcdefghijkl",
                "Name": "web_web",
                "Mode": "replicated",
                "Replicas": "2/3",
                "Image": "busybox:1",
                "Ports": "*:8080->80/tcp",
                "Running": 2,
                "Desired": 3,
            })
        );
        // `{{json .}}` is docker's row marshalled as Go marshals it.
        let json = ListFormat::Json
            .render(&SERVICE_COLUMNS, &listing, false)
            .expect("json");
        assert!(
            json.starts_with(
                r#"{"Desired":3,"ID":"abcdefghijkl","Image":"busybox:1","Mode":"replicated","#
            ),
            "{json}"
        );
        assert!(json.contains(r#""Ports":"*:8080-\u003e80/tcp""#), "{json}");
    }

    /// A service named `name` of the given `service create` flags.
    fn listed(id: &str, flags: &[&str]) -> Service {
        let mut spec = create_spec(&create_args(flags)).expect("spec");
        spec.labels.clear();
        Service {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn task_of(service: &str, desired: TaskState, state: TaskState) -> Task {
        Task {
            service_id: service.into(),
            desired_state: desired as i32,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn service_ls_prints_what_docker_prints() {
        use TaskState::{Complete, Running, Starting};
        let services = [
            listed("web", &["--name", "web", "--replicas", "3", "busybox"]),
            listed("agent", &["--name", "agent", "--mode", "global", "busybox"]),
            listed(
                "batch",
                &[
                    "--name",
                    "batch",
                    "--mode",
                    "replicated-job",
                    "--replicas",
                    "3",
                    "busybox",
                ],
            ),
            listed(
                "spread",
                &[
                    "--name",
                    "spread",
                    "--replicas",
                    "2",
                    "--replicas-max-per-node",
                    "1",
                    "busybox",
                ],
            ),
        ];
        let tasks = [
            task_of("web", Running, Running),
            task_of("web", Running, Running),
            task_of("web", Running, Starting),
            task_of("agent", Running, Running),
            task_of("batch", Complete, Complete),
            task_of("batch", Complete, Complete),
            task_of("batch", Complete, Complete),
            task_of("spread", Running, Running),
        ];
        let rows = service_rows(&services, &tasks);
        let format = ListFormat::parse("{{.Name}} {{.Replicas}}").expect("format");
        // docker/cli cli/command/service/formatter.go, serviceContext.Replicas:
        // `running/desired`, `running/desired (completed/total completed)` for
        // jobs, `running/desired (max N per node)` with a limit.
        assert_eq!(
            format
                .render(&SERVICE_COLUMNS, &rows, false)
                .expect("render"),
            "web 2/3\nagent 1/1\nbatch 0/0 (3/3 completed)\nspread 1/2 (max 1 per node)\n"
        );
        let modes = ListFormat::parse("{{.Mode}}").expect("format");
        assert_eq!(
            modes
                .render(&SERVICE_COLUMNS, &rows, false)
                .expect("render"),
            "replicated\nglobal\nreplicated job\nreplicated\n"
        );
        // defaultServiceTableFormat's header.
        assert_eq!(
            ListFormat::Table
                .render(&SERVICE_COLUMNS, &[], false)
                .expect("table"),
            "ID        NAME      MODE      REPLICAS   IMAGE     PORTS\n"
        );
        assert_eq!(
            ListFormat::Table
                .render(&SERVICE_COLUMNS, &rows[..1], true)
                .expect("quiet"),
            "web\n"
        );
    }

    #[test]
    fn ls_filters_are_dockers() {
        let services = [
            listed("abc123", &["--name", "web", "busybox"]),
            listed(
                "abd456",
                &["--name", "web-admin", "--mode", "global", "busybox"],
            ),
            listed(
                "xyz789",
                &["--name", "batch", "--mode", "replicated-job", "busybox"],
            ),
        ];
        let kept = |filters: &[&str]| -> Vec<&str> {
            let parsed: Vec<Filter> = filters
                .iter()
                .map(|f| {
                    SERVICE_FILTERS
                        .parse(f)
                        .unwrap_or_else(|e| panic!("{f}: {e}"))
                })
                .collect();
            let filters = Filters::new(&parsed);
            services
                .iter()
                .filter(|s| service_matches(&filters, s))
                .map(service_name)
                .collect()
        };
        assert_eq!(kept(&["name=web"]), ["web", "web-admin"]);
        assert_eq!(kept(&["id=abc", "id=xyz"]), ["web", "batch"]);
        assert_eq!(kept(&["mode=global"]), ["web-admin"]);
        assert_eq!(kept(&["mode=replicated-job"]), ["batch"]);
        assert_eq!(kept(&["name=web", "mode=replicated"]), ["web"]);
        assert_eq!(
            SERVICE_FILTERS.parse("nope=1").unwrap_err(),
            "invalid filter 'nope': service ls filters on id, label, mode, name"
        );
        assert!(SERVICE_FILTERS.parse("mode=sometimes").is_err());
    }

    #[test]
    fn ingress_ports_group_like_dockers() {
        let port = |protocol: &str, published: u32, target: u32| {
            let text = format!("published={published},target={target},protocol={protocol}");
            parse::publish(&text).expect("port").remove(0)
        };
        // docker/cli cli/command/service/formatter_test.go TestServiceContext_Ports,
        // without its sctp ports (shoal has tcp and udp).
        let mut ports: Vec<PortConfig> = [
            ("tcp", 81, 80),
            ("tcp", 80, 80),
            ("tcp", 95, 95),
            ("tcp", 90, 90),
            ("tcp", 91, 91),
            ("tcp", 92, 92),
            ("tcp", 93, 93),
            ("tcp", 94, 94),
            ("udp", 95, 95),
            ("udp", 90, 90),
            ("udp", 96, 96),
            ("udp", 91, 91),
            ("udp", 92, 92),
            ("udp", 93, 93),
            ("udp", 94, 94),
            ("tcp", 60, 60),
            ("tcp", 61, 61),
            ("tcp", 62, 61),
        ]
        .iter()
        .map(|(protocol, published, target)| port(protocol, *published, *target))
        .collect();
        ports.extend(parse::publish("mode=host,published=9000,target=9000").expect("port"));
        assert_eq!(
            ingress_ports(&ports),
            "*:60-61->60-61/tcp, *:62->61/tcp, *:80-81->80/tcp, *:90-95->90-95/tcp, *:90-96->90-96/udp"
        );
    }

    #[test]
    fn jobs_take_replicas_as_completions_and_show_their_progress() {
        use shoal_proto::types::v1::{restart_policy::Condition, JobStatus, ReplicatedJob};
        let spec = create_spec(&create_args(&[
            "--mode",
            "replicated-job",
            "--replicas",
            "5",
            "--name",
            "batch",
            "busybox",
        ]))
        .expect("spec");
        // docker: max-concurrent defaults to replicas, restarts on failure.
        assert_eq!(
            spec.mode,
            Some(service_spec::Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 5,
                total_completions: 5,
            }))
        );
        let restart = spec.task.as_ref().unwrap().restart.unwrap();
        assert_eq!(restart.condition, Condition::OnFailure as i32);
        let spec = create_spec(&create_args(&[
            "--mode",
            "replicated-job",
            "--replicas",
            "5",
            "--max-concurrent",
            "2",
            "busybox",
        ]))
        .expect("spec");
        let Some(service_spec::Mode::ReplicatedJob(job)) = spec.mode else {
            panic!("{spec:?}")
        };
        assert_eq!((job.max_concurrent, job.total_completions), (2, 5));
        let err = create_spec(&create_args(&["--max-concurrent", "2", "busybox"])).unwrap_err();
        assert!(err.to_string().contains("replicated-job mode"), "{err}");
        let err = create_spec(&create_args(&[
            "--mode",
            "global-job",
            "--replicas",
            "2",
            "x",
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("replicated or replicated-job"),
            "{err}"
        );

        let service = Service {
            meta: Some(Meta {
                id: "job".into(),
                ..Default::default()
            }),
            spec: Some(spec),
            job_status: Some(JobStatus {
                job_iteration: 1,
                last_execution: 0,
            }),
            ..Default::default()
        };
        let task = |state: TaskState, desired: TaskState, iteration: u64| Task {
            service_id: "job".into(),
            desired_state: desired as i32,
            job_iteration: iteration,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let listing = service_rows(
            &[service],
            &[
                task(TaskState::Complete, TaskState::Complete, 0),
                task(TaskState::Complete, TaskState::Complete, 1),
                task(TaskState::Complete, TaskState::Complete, 1),
                task(TaskState::Running, TaskState::Running, 1),
            ],
        );
        assert_eq!(listing[0]["Mode"], "replicated job");
        assert_eq!(listing[0]["Replicas"], "1/2 (2/5 completed)");
    }
}
