//! The compose loader of `shoal stack deploy`: reads a compose file (format 3.x, as
//! `docker stack deploy` takes it), interpolates variables, checks it against docker's compose
//! schema and converts each service into a shoal `ServiceSpec`.
//!
//! It follows docker's own loader (docker/cli `cli/compose`) step by step, so a file means the
//! same to shoal as to docker: the same files are rejected, the same values come out. Keys
//! shoal cannot honour yet produce warnings, never silent drops.

mod convert;
mod duration;
mod emit;
mod error;
mod interpolate;
mod locate;
mod merge;
mod node;
mod normalize;
mod ports;
mod schema;
mod shlex;
mod source;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use shoal_proto::types::v1::{NetworkSpec, ServiceSpec};

pub use error::{ComposeError, Location};

use node::{KeyPath, Node};
use source::Source;

/// Label docker puts on every object of a stack.
pub const LABEL_NAMESPACE: &str = shoal_proto::STACK_NAMESPACE_LABEL;
/// Label docker puts on each stack service with the image as written in the compose file.
pub const LABEL_IMAGE: &str = "com.docker.stack.image";
/// The network key of services that name none: docker's stack makes it as
/// `<stack>_default` (overlay) unless the file declares `default` itself.
pub const DEFAULT_NETWORK: &str = "default";

/// A loaded compose file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// In the order of the compose file.
    pub services: Vec<StackService>,
    /// The top-level `secrets`, in the order of the file.
    pub secrets: Vec<StackFile>,
    /// The top-level `configs`, in the order of the file.
    pub configs: Vec<StackFile>,
    /// The top-level `volumes`, in the order of the file.
    pub volumes: Vec<StackVolume>,
    /// The top-level `networks`, in the order of the file.
    pub networks: Vec<StackNetwork>,
    /// shoal's own notes: keys shoal does not honour yet, unset variables,
    /// ignored host addresses.
    pub warnings: Vec<String>,
    /// Service keys of docker's unsupported list the files use, sorted:
    /// `stack deploy` names them in docker's words.
    pub unsupported: Vec<String>,
    /// Deprecated service keys the files use, with docker's explanation.
    pub deprecated: Vec<(String, String)>,
}

/// A top-level secret or config: made from a file by the stack, or
/// external (it must exist in the cluster already).
#[derive(Debug, Clone, PartialEq)]
pub struct StackFile {
    /// The key in the compose file, which services refer to.
    pub key: String,
    /// The name in the cluster: `<stack>_<key>` unless `name:` is given, or
    /// the external name.
    pub name: Option<String>,
    pub external: bool,
    /// The file holding the value, relative paths resolved against the
    /// compose file's folder.
    pub file: Option<std::path::PathBuf>,
    /// A config's `template_driver` (`golang`); empty otherwise.
    pub template_driver: String,
    /// A secret's value from this variable of the loading environment (a
    /// Compose Specification key beyond docker's v3 schema).
    pub environment: Option<String>,
}

impl StackFile {
    pub fn cluster_name(&self, stack_name: &str) -> String {
        match (&self.name, self.external) {
            (Some(name), _) => name.clone(),
            (None, true) => self.key.clone(),
            (None, false) => format!("{stack_name}_{}", self.key),
        }
    }
}

/// A top-level volume: made on each node that runs a task using it (local
/// driver, with these options), or external (made by someone else).
#[derive(Debug, Clone, PartialEq)]
pub struct StackVolume {
    /// The key in the compose file, which services refer to.
    pub key: String,
    /// `name:`, or the external name.
    pub name: Option<String>,
    pub external: bool,
    pub driver: String,
    pub driver_opts: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

impl StackVolume {
    pub fn cluster_name(&self, stack_name: &str) -> String {
        match (&self.name, self.external) {
            (Some(name), _) => name.clone(),
            (None, true) => self.key.clone(),
            (None, false) => format!("{stack_name}_{}", self.key),
        }
    }
}

/// The top-level `volumes` (checked against the schema already), with a
/// note for a cluster (CSI) volume's spec, which shoal does not honour yet.
fn top_level_volumes(doc: &Node, warnings: &mut Vec<String>) -> Vec<StackVolume> {
    let Some(Node::Map(entries)) = doc.get("volumes") else {
        return Vec::new();
    };
    let strings = |n: Option<&Node>| -> HashMap<String, String> {
        match n {
            Some(Node::Map(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.scalar_string().unwrap_or_default()))
                .collect(),
            Some(Node::Seq(items)) => items
                .iter()
                .filter_map(Node::scalar_string)
                .map(|t| match t.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (t, String::new()),
                })
                .collect(),
            _ => HashMap::new(),
        }
    };
    entries
        .iter()
        .map(|(key, value)| {
            if value.get("x-cluster-spec").is_some() {
                warnings.push(format!(
                    "volume {key:?}: x-cluster-spec (a cluster volume) is not supported yet and \
                     was ignored; the volume is a local one on each node"
                ));
            }
            let mut volume = StackVolume {
                key: key.clone(),
                name: value.get("name").and_then(Node::scalar_string),
                external: false,
                driver: value
                    .get("driver")
                    .and_then(Node::scalar_string)
                    .unwrap_or_default(),
                driver_opts: strings(value.get("driver_opts")),
                labels: strings(value.get("labels")),
            };
            match value.get("external") {
                Some(Node::Bool(b)) => volume.external = *b,
                Some(Node::Map(_)) => {
                    volume.external = true;
                    if let Some(name) = value
                        .get("external")
                        .and_then(|e| e.get("name"))
                        .and_then(Node::scalar_string)
                    {
                        volume.name = Some(name);
                    }
                }
                _ => {}
            }
            volume
        })
        .collect()
}

/// A top-level network: made by the stack (overlay), or external (it must
/// exist in the cluster already).
#[derive(Debug, Clone, PartialEq)]
pub struct StackNetwork {
    /// The key in the compose file, which services refer to.
    pub key: String,
    /// The network's name in the cluster: `<stack>_<key>` unless `name:` is
    /// given, or the external name.
    pub name: Option<String>,
    pub external: bool,
    /// What the stack asks for (driver, subnet, options, labels), without
    /// the name and the stack's label.
    pub spec: NetworkSpec,
}

impl StackNetwork {
    pub fn cluster_name(&self, stack_name: &str) -> String {
        match (&self.name, self.external) {
            (Some(name), _) => name.clone(),
            (None, true) => self.key.clone(),
            (None, false) => format!("{stack_name}_{}", self.key),
        }
    }

    /// The spec `stack deploy` creates the network from: named for the
    /// cluster and labelled with the stack, as docker does.
    pub fn spec_for(&self, stack_name: &str) -> NetworkSpec {
        let mut spec = self.spec.clone();
        spec.name = self.cluster_name(stack_name);
        spec.labels
            .insert(LABEL_NAMESPACE.to_string(), stack_name.to_string());
        spec
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackService {
    /// The service's name in the compose file.
    pub name: String,
    /// The service as shoal runs it, still without the stack prefix and labels
    /// (see [`Stack::into_service_specs`]).
    pub spec: ServiceSpec,
}

impl StackService {
    /// The network keys the service is on: those it names, or docker's
    /// `default` when it names none (docker/cli's `convertServiceNetworks`).
    pub fn network_keys(&self) -> Vec<&str> {
        if self.spec.networks.is_empty() {
            vec![DEFAULT_NETWORK]
        } else {
            self.spec.networks.iter().map(String::as_str).collect()
        }
    }
}

impl Stack {
    /// The stack's networks by key: the top-level ones, and docker's
    /// implicit `default` (overlay, `<stack>_default`) when the file does
    /// not declare one.
    fn networks_by_key(&self) -> Vec<StackNetwork> {
        let mut networks = self.networks.clone();
        if !networks.iter().any(|n| n.key == DEFAULT_NETWORK) {
            networks.push(StackNetwork {
                key: DEFAULT_NETWORK.to_string(),
                name: None,
                external: false,
                spec: NetworkSpec {
                    driver: "overlay".into(),
                    ..Default::default()
                },
            });
        }
        networks
    }

    /// The networks stack `stack_name` uses: those its services are on (as
    /// docker, a network no service is on is neither created nor checked;
    /// a service that names none is on `default`), the stack's own ones as
    /// specs to create, and the names of the external ones.
    pub fn used_networks(&self, stack_name: &str) -> (Vec<NetworkSpec>, Vec<String>) {
        let mut own = Vec::new();
        let mut external = Vec::new();
        for network in &self.networks_by_key() {
            let used = self
                .services
                .iter()
                .any(|s| s.network_keys().contains(&network.key.as_str()));
            if !used {
                continue;
            }
            if network.external {
                external.push(network.cluster_name(stack_name));
            } else {
                own.push(network.spec_for(stack_name));
            }
        }
        (own, external)
    }

    /// The specs to deploy as stack `stack_name`: each service is named `<stack>_<service>`
    /// and labelled like docker labels stack services (namespace on service and container,
    /// image on the service).
    pub fn into_service_specs(self, stack_name: &str) -> Vec<ServiceSpec> {
        let networks = self.networks_by_key();
        let secrets = self.secrets;
        let configs = self.configs;
        let volumes = self.volumes;
        self.services
            .into_iter()
            .map(|s| {
                let mut spec = s.spec;
                if spec.networks.is_empty() {
                    spec.networks = vec![DEFAULT_NETWORK.to_string()];
                }
                if let Some(task) = spec.task.as_mut() {
                    for reference in &mut task.secrets {
                        if let Some(secret) =
                            secrets.iter().find(|x| x.key == reference.secret_name)
                        {
                            if reference.target.is_empty() {
                                reference.target = secret.key.clone();
                            }
                            reference.secret_name = secret.cluster_name(stack_name);
                        }
                    }
                    let mounts = task.container.iter_mut().flat_map(|c| c.mounts.iter_mut());
                    for m in
                        mounts.filter(|m| m.r#type() == shoal_proto::types::v1::mount::Type::Volume)
                    {
                        // docker's convertVolumeToMount: the stack's name, the
                        // top-level driver settings, the namespace label.
                        if let Some(volume) = volumes.iter().find(|v| v.key == m.source) {
                            m.source = volume.cluster_name(stack_name);
                            if !volume.external {
                                m.volume_driver = volume.driver.clone();
                                m.volume_driver_options = volume.driver_opts.clone();
                                m.volume_labels = volume.labels.clone();
                                m.volume_labels
                                    .insert(LABEL_NAMESPACE.to_string(), stack_name.to_string());
                            }
                        }
                    }
                    for reference in &mut task.configs {
                        if let Some(config) =
                            configs.iter().find(|x| x.key == reference.config_name)
                        {
                            if reference.target.is_empty() {
                                reference.target = format!("/{}", config.key);
                            }
                            reference.config_name = config.cluster_name(stack_name);
                        }
                    }
                }
                // A network's aliases name it exactly as the service's
                // networks do: its name in the cluster.
                let references = spec
                    .networks
                    .iter_mut()
                    .chain(spec.network_aliases.iter_mut().map(|a| &mut a.network));
                for reference in references {
                    if let Some(network) = networks.iter().find(|n| &n.key == reference) {
                        *reference = network.cluster_name(stack_name);
                    }
                }
                spec.name = format!("{stack_name}_{}", s.name);
                spec.labels
                    .insert(LABEL_NAMESPACE.to_string(), stack_name.to_string());
                if let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
                    container
                        .labels
                        .insert(LABEL_NAMESPACE.to_string(), stack_name.to_string());
                    spec.labels
                        .insert(LABEL_IMAGE.to_string(), container.image.clone());
                }
                spec
            })
            .collect()
    }
}

/// Loads the compose file at `path`, interpolating with `env` (normally the process env).
pub fn load_file(path: &Path, env: &HashMap<String, String>) -> Result<Stack, ComposeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, &path.display().to_string(), env)
}

/// Service keys docker refuses outright (before interpolation), with its explanation.
const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    ("volume_driver", "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there."),
    ("volumes_from", "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option."),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// Service keys docker's `stack deploy` names in its "Ignoring unsupported
/// options" line (`types.UnsupportedProperties`).
pub const DOCKER_UNSUPPORTED: &[&str] = &[
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Service keys docker's `stack deploy` names as deprecated, with its words.
pub const DOCKER_DEPRECATED: &[(&str, &str)] = &[
    ("container_name", "Setting the container name is not supported."),
    ("expose", "Exposing ports is unnecessary - services on the same network can access each other's containers on any port."),
];

/// Loads compose text; `source_name` names it in errors (usually the file path).
pub fn load_str(
    text: &str,
    source_name: &str,
    env: &HashMap<String, String>,
) -> Result<Stack, ComposeError> {
    let src = Source {
        name: source_name,
        text,
    };
    let checked = check(&src, env, false)?;
    // docker reads the file into its types before converting it: what its
    // decoder refuses (a number for `shm_size`, a negative count, an
    // external volume with a driver) is refused here in its words.
    let working_dir = Path::new(source_name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let ctx = normalize::Context {
        src: &src,
        working_dir: &working_dir,
        env,
    };
    normalize::config(&checked.doc, &checked.version, &ctx)?;
    build_stack(&src, &checked.doc, env, checked.unset, checked.properties)
}

/// One compose file given on the command line: its name (a path, or `-`
/// for standard input) and its text.
#[derive(Debug, Clone)]
pub struct ComposeFile {
    pub name: String,
    pub text: String,
}

impl ComposeFile {
    /// Reads `name`, or standard input for `-`.
    pub fn read(name: &str, stdin: &mut dyn std::io::Read) -> Result<ComposeFile, ComposeError> {
        let mut text = String::new();
        let read = if name == "-" {
            stdin.read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(name).map(|t| text = t)
        };
        read.map_err(|source| ComposeError::Read {
            path: name.into(),
            source,
        })?;
        Ok(ComposeFile {
            name: name.to_string(),
            text,
        })
    }
}

/// The folder relative paths are read against: the first file's (as docker),
/// or the current one when the only file is standard input.
pub fn working_dir(files: &[ComposeFile]) -> std::path::PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    match files.first() {
        Some(f) if f.name != "-" => {
            let path = cwd.join(&f.name);
            path.parent().map(Path::to_path_buf).unwrap_or(cwd)
        }
        _ => cwd,
    }
}

/// Several compose files merged as docker merges override files: the form
/// `stack config` prints, and what docker's deploy warnings are about.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The normalized, merged document (docker's `types.Config`).
    pub doc: Node,
    /// Service keys of docker's unsupported list found in any file, sorted.
    pub unsupported: Vec<String>,
    /// Deprecated service keys found, sorted, with docker's explanation.
    pub deprecated: Vec<(String, String)>,
    /// Variables used but not set.
    pub unset: BTreeSet<String>,
}

impl Merged {
    /// The YAML `docker stack config` prints for the same files.
    pub fn to_yaml(&self) -> String {
        emit::to_yaml(&self.doc)
    }
}

/// Loads and merges `files` in order, without a cluster: each is checked
/// (schema, interpolation unless skipped) and normalized; the result is
/// what `docker stack config` prints.
pub fn load_merged(
    files: &[ComposeFile],
    working_dir: &Path,
    env: &HashMap<String, String>,
    skip_interpolation: bool,
) -> Result<Merged, ComposeError> {
    let mut merged: Option<Node> = None;
    let mut version: Option<String> = None;
    let mut unset = BTreeSet::new();
    let mut properties = Properties::default();
    if files.is_empty() {
        return Err(ComposeError::NoFiles);
    }
    for file in files {
        let src = Source {
            name: &file.name,
            text: &file.text,
        };
        let checked = check(&src, env, skip_interpolation)?;
        match &version {
            None => version = Some(checked.version.clone()),
            Some(first) if *first != checked.version => {
                return Err(ComposeError::VersionMismatch {
                    first: first.clone(),
                    other: checked.version,
                })
            }
            Some(_) => {}
        }
        let ctx = normalize::Context {
            src: &src,
            working_dir,
            env,
        };
        let doc = normalize::config(&checked.doc, &checked.version, &ctx)?;
        unset.extend(checked.unset);
        properties.absorb(checked.properties);
        match &mut merged {
            None => merged = Some(doc),
            Some(base) => merge::merge(base, doc),
        }
    }
    let mut doc = merged.unwrap_or(Node::Null);
    // A merged service's fields, back in docker's order.
    if files.len() > 1 {
        let src = Source {
            name: &files[0].name,
            text: "",
        };
        let ctx = normalize::Context {
            src: &src,
            working_dir,
            env,
        };
        let version = version.unwrap_or_default();
        doc = normalize::config(&doc, &version, &ctx)?;
    }
    Ok(Merged {
        doc,
        unsupported: properties.unsupported.into_iter().collect(),
        deprecated: properties.deprecated.into_iter().collect(),
        unset,
    })
}

/// Loads the stack `stack deploy` deploys from `files`: one file as it is
/// written (errors point at its lines), several merged as docker merges
/// override files (errors then name the key path in the merged result).
pub fn load_files(
    files: &[ComposeFile],
    working_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<Stack, ComposeError> {
    if let [file] = files {
        return load_str(&file.text, &file.name, env);
    }
    let merged = load_merged(files, working_dir, env, false)?;
    // The merged result has no lines of its own; errors name its key paths.
    let name = format!(
        "{} (merged)",
        files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let base = working_dir.join("merged");
    let src = Source {
        name: &name,
        text: "",
    };
    let properties = Properties {
        unsupported: merged.unsupported.into_iter().collect(),
        deprecated: merged.deprecated.into_iter().collect(),
    };
    build_stack_in(&src, &base, &merged.doc, env, merged.unset, properties)
}

/// docker's deploy warnings about service keys, gathered before
/// interpolation as docker gathers them.
#[derive(Debug, Default)]
struct Properties {
    unsupported: BTreeSet<String>,
    deprecated: std::collections::BTreeMap<String, String>,
}

impl Properties {
    fn of(doc: &Node) -> Properties {
        let mut found = Properties::default();
        if let Some(Node::Map(services)) = doc.get("services") {
            for (_, service) in services {
                for key in DOCKER_UNSUPPORTED {
                    if service.get(key).is_some() {
                        found.unsupported.insert(key.to_string());
                    }
                }
                for (key, why) in DOCKER_DEPRECATED {
                    if service.get(key).is_some() {
                        found.deprecated.insert(key.to_string(), why.to_string());
                    }
                }
            }
        }
        found
    }

    fn absorb(&mut self, other: Properties) {
        self.unsupported.extend(other.unsupported);
        self.deprecated.extend(other.deprecated);
    }
}

/// One file after the checks docker runs before reading it into its types.
struct Checked {
    doc: Node,
    version: String,
    unset: BTreeSet<String>,
    properties: Properties,
}

/// Parses `src` and runs docker's checks in docker's order: forbidden keys,
/// interpolation (unless skipped), the schema of its version.
fn check(
    src: &Source,
    env: &HashMap<String, String>,
    skip_interpolation: bool,
) -> Result<Checked, ComposeError> {
    let mut doc = parse(src)?;
    let root = KeyPath::default();
    let source_name = src.name;

    let version = match doc.get("version") {
        None => schema::DEFAULT_VERSION.to_string(),
        Some(v) => match v.scalar_string().as_deref() {
            Some("") | Some("3") => schema::DEFAULT_VERSION.to_string(),
            Some(other) => other.to_string(),
            None => "<nil>".to_string(),
        },
    };

    if let Some(Node::Map(services)) = doc.get("services") {
        for (name, service) in services {
            for (key, hint) in FORBIDDEN {
                if service.get(key).is_some() {
                    return Err(src.invalid_key(
                        &root.key("services").key(name),
                        key,
                        format!("uses the forbidden property {key}: {hint}"),
                    ));
                }
            }
        }
    }
    let properties = Properties::of(&doc);

    let mut unset = BTreeSet::new();
    if !skip_interpolation {
        interpolate::interpolate(&mut doc, &root, env, &mut unset).map_err(|e| {
            ComposeError::Interpolation {
                file: source_name.to_string(),
                location: src.position(&e.path, false),
                key_path: e.path.to_string(),
                message: e.message,
            }
        })?;
    }

    match schema::validate(&doc, &version) {
        schema::Validation::Ok => {}
        schema::Validation::UnknownVersion => {
            return Err(ComposeError::Version {
                file: source_name.to_string(),
                version,
            })
        }
        schema::Validation::Invalid(e) => {
            return Err(match &e.key {
                Some(key) => src.invalid_key(&e.path, key, e.message),
                None => src.invalid(&e.path, e.message),
            })
        }
    }
    Ok(Checked {
        doc,
        version,
        unset,
        properties,
    })
}

/// A checked document converted into the stack shoal deploys; relative
/// paths are read beside `src`'s file.
fn build_stack(
    src: &Source,
    doc: &Node,
    env: &HashMap<String, String>,
    unset: BTreeSet<String>,
    properties: Properties,
) -> Result<Stack, ComposeError> {
    build_stack_in(src, Path::new(src.name), doc, env, unset, properties)
}

/// [`build_stack`] with relative paths read beside `file`.
fn build_stack_in(
    src: &Source,
    file: &Path,
    doc: &Node,
    env: &HashMap<String, String>,
    unset: BTreeSet<String>,
    properties: Properties,
) -> Result<Stack, ComposeError> {
    let root = KeyPath::default();
    let mut warnings: Vec<String> = unset
        .iter()
        .map(|name| format!("variable {name:?} is not set; substituting an empty string"))
        .collect();
    let secrets = top_level_files(src, file, doc, &root, "secrets", env)?;
    let configs = top_level_files(src, file, doc, &root, "configs", env)?;
    let volumes = top_level_volumes(doc, &mut warnings);
    let networks = top_level_networks(doc, &mut warnings);
    let mut services = Vec::new();
    if let Some(Node::Map(entries)) = doc.get("services") {
        let mut conv = convert::Converter {
            src,
            base: file,
            env,
            warnings: &mut warnings,
        };
        for (name, service) in entries {
            let spec = conv.service(name, service, &root.key("services").key(name))?;
            let undefined = spec
                .task
                .iter()
                .flat_map(|t| t.secrets.iter())
                .find(|r| !secrets.iter().any(|s| s.key == r.secret_name));
            if let Some(reference) = undefined {
                return Err(src.invalid(
                    &root.key("services").key(name).key("secrets"),
                    format!("refers to undefined secret {}", reference.secret_name),
                ));
            }
            let undefined = spec
                .task
                .iter()
                .filter_map(|t| t.container.as_ref())
                .flat_map(|c| c.mounts.iter())
                .filter(|m| m.r#type() == shoal_proto::types::v1::mount::Type::Volume)
                .find(|m| !m.source.is_empty() && !volumes.iter().any(|v| v.key == m.source));
            if let Some(m) = undefined {
                // Docker's loader lets this pass and its deploy fails on it;
                // shoal refuses it here, in the deploy's words.
                return Err(src.invalid(
                    &root.key("services").key(name).key("volumes"),
                    format!("undefined volume {:?}", m.source),
                ));
            }
            let undefined = spec
                .task
                .iter()
                .flat_map(|t| t.configs.iter())
                .find(|r| !configs.iter().any(|c| c.key == r.config_name));
            if let Some(reference) = undefined {
                return Err(src.invalid(
                    &root.key("services").key(name).key("configs"),
                    format!("refers to undefined config {}", reference.config_name),
                ));
            }
            // `default` needs no declaration: the stack makes it (docker's rule).
            if let Some(undefined) = spec
                .networks
                .iter()
                .filter(|r| *r != DEFAULT_NETWORK)
                .find(|r| !networks.iter().any(|n| &&n.key == r))
            {
                // Docker's loader lets this pass and its deploy fails on it;
                // shoal refuses it here, in docker's words.
                return Err(src.invalid(
                    &root.key("services").key(name).key("networks"),
                    format!("undefined network {undefined:?}"),
                ));
            }
            services.push(StackService {
                name: name.clone(),
                spec,
            });
        }
    }
    Ok(Stack {
        services,
        secrets,
        configs,
        volumes,
        networks,
        warnings,
        unsupported: properties.unsupported.into_iter().collect(),
        deprecated: properties.deprecated.into_iter().collect(),
    })
}

/// The top-level `secrets` or `configs` (`section`).
fn top_level_files(
    src: &Source,
    file: &Path,
    doc: &Node,
    root: &KeyPath,
    section: &str,
    env: &HashMap<String, String>,
) -> Result<Vec<StackFile>, ComposeError> {
    let Some(Node::Map(entries)) = doc.get(section) else {
        return Ok(Vec::new());
    };
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (key, value) in entries {
        let path = root.key(section).key(key);
        let mut secret = StackFile {
            key: key.clone(),
            name: value.get("name").and_then(Node::scalar_string),
            external: false,
            file: None,
            template_driver: value
                .get("template_driver")
                .and_then(Node::scalar_string)
                .unwrap_or_default(),
            environment: value.get("environment").and_then(Node::scalar_string),
        };
        match value.get("external") {
            Some(Node::Bool(b)) => secret.external = *b,
            Some(Node::Map(_)) => {
                secret.external = true;
                if let Some(name) = value
                    .get("external")
                    .and_then(|e| e.get("name"))
                    .and_then(Node::scalar_string)
                {
                    secret.name = Some(name);
                }
            }
            _ => {}
        }
        if let Some(file) = value.get("file").and_then(Node::scalar_string) {
            let file = Path::new(&file);
            secret.file = Some(if file.is_absolute() {
                file.to_path_buf()
            } else {
                base.join(file)
            });
        }
        if let Some(variable) = &secret.environment {
            if !env.contains_key(variable) {
                return Err(src.invalid(
                    &path.key("environment"),
                    format!("environment variable {variable} is not set"),
                ));
            }
        }
        if !secret.external && secret.file.is_none() && secret.environment.is_none() {
            return Err(src.invalid(
                &path,
                "needs `file:` or `environment:` (or `external: true`)",
            ));
        }
        out.push(secret);
    }
    Ok(out)
}

/// The top-level `networks` (already checked against the schema), with
/// warnings for what shoal cannot honour.
fn top_level_networks(doc: &Node, warnings: &mut Vec<String>) -> Vec<StackNetwork> {
    let Some(Node::Map(entries)) = doc.get("networks") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let mut network = StackNetwork {
            key: key.clone(),
            name: value.get("name").and_then(Node::scalar_string),
            external: false,
            spec: NetworkSpec::default(),
        };
        match value.get("external") {
            Some(Node::Bool(b)) => network.external = *b,
            Some(external @ Node::Map(_)) => {
                network.external = true;
                if let Some(name) = external.get("name").and_then(Node::scalar_string) {
                    network.name = Some(name);
                }
            }
            _ => {}
        }
        if network.external {
            // Docker uses an external network as it is, whatever else is
            // written for it.
            out.push(network);
            continue;
        }
        let mut ignored = |what: String| {
            warnings.push(format!(
                "network {key:?}: {what} is not supported yet and was ignored"
            ))
        };
        let spec = &mut network.spec;
        let Node::Map(fields) = value else {
            spec.driver = "overlay".into();
            out.push(network);
            continue;
        };
        for (field, v) in fields {
            match field.as_str() {
                "driver" => spec.driver = v.scalar_string().unwrap_or_default(),
                "attachable" => spec.attachable = matches!(v, Node::Bool(true)),
                "internal" => spec.internal = matches!(v, Node::Bool(true)),
                "labels" => spec.labels = labels_of(v),
                "driver_opts" => {
                    if let Node::Map(opts) = v {
                        for (opt, _) in opts {
                            if opt == "encrypted" {
                                // Docker's overlay driver encrypts when the
                                // option is there, whatever its value.
                                spec.encrypted = true;
                            } else {
                                ignored(format!("driver option {opt:?}"));
                            }
                        }
                    }
                }
                "ipam" => {
                    if let Some(driver) = v.get("driver").and_then(Node::scalar_string) {
                        if driver != "default" && !driver.is_empty() {
                            ignored(format!("ipam driver {driver:?}"));
                        }
                    }
                    if let Some(Node::Seq(configs)) = v.get("config") {
                        if let Some(first) = configs.first() {
                            let text = |k: &str| {
                                first
                                    .get(k)
                                    .and_then(Node::scalar_string)
                                    .unwrap_or_default()
                            };
                            spec.subnet = text("subnet");
                            spec.gateway = text("gateway");
                            spec.ip_range = text("ip_range");
                        }
                        if configs.len() > 1 {
                            ignored("an ipam config entry after the first".to_string());
                        }
                    }
                }
                "name" | "external" => {}
                other if other.starts_with("x-") => {}
                other => ignored(format!("key {other:?}")),
            }
        }
        if spec.driver.is_empty() {
            spec.driver = "overlay".into();
        }
        out.push(network);
    }
    out
}

/// `labels` as a list of `K=V` or a mapping (checked by the schema).
fn labels_of(node: &Node) -> HashMap<String, String> {
    match node {
        Node::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), v.scalar_string().unwrap_or_default()))
            .collect(),
        Node::Seq(items) => items
            .iter()
            .filter_map(Node::scalar_string)
            .map(|text| match text.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (text, String::new()),
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// The path of a `<<` whose value is neither a mapping nor a list of them.
fn bad_merge(value: &serde_norway::Value, path: &KeyPath) -> Option<KeyPath> {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) => map.iter().find_map(|(k, v)| {
            let key = k.as_str()?;
            let here = path.key(key);
            let mergeable = |v: &Value| matches!(v, Value::Mapping(_));
            let bad = key == "<<"
                && !(mergeable(v)
                    || matches!(v, Value::Sequence(items) if items.iter().all(mergeable)));
            if bad {
                Some(here)
            } else {
                bad_merge(v, &here)
            }
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| bad_merge(v, &path.index(i))),
        Value::Tagged(tagged) => bad_merge(&tagged.value, path),
        _ => None,
    }
}

fn parse(src: &Source) -> Result<Node, ComposeError> {
    let syntax = |e: serde_norway::Error| ComposeError::Syntax {
        file: src.name.to_string(),
        location: e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        message: e.to_string(),
    };
    // Only the first document counts, as for docker (go-yaml's `Unmarshal`);
    // what follows a `---` is not read at all.
    let mut value: serde_norway::Value = match serde_norway::Deserializer::from_str(src.text).next()
    {
        Some(document) => serde::Deserialize::deserialize(document).map_err(syntax)?,
        None => serde_norway::Value::Null,
    };
    if let Err(e) = value.clone().apply_merge() {
        // The error has no position of its own: point at the merge key.
        let location =
            bad_merge(&value, &KeyPath::default()).and_then(|path| src.position(&path, true));
        return Err(ComposeError::Syntax {
            file: src.name.to_string(),
            location,
            message: e.to_string(),
        });
    }
    value.apply_merge().map_err(syntax)?;
    if !value.is_mapping() {
        return Err(ComposeError::Invalid {
            file: src.name.to_string(),
            key_path: "(root)".to_string(),
            location: None,
            message: "top-level object must be a mapping".to_string(),
        });
    }
    let is_plain = |path: &KeyPath, scalar: &str| {
        src.position(path, false).is_some_and(|loc| {
            src.text
                .lines()
                .nth(loc.line.saturating_sub(1))
                .and_then(|line| {
                    line.char_indices()
                        .nth(loc.column.saturating_sub(1))
                        .map(|(i, _)| line[i..].starts_with(scalar))
                })
                .unwrap_or(false)
        })
    };
    node::from_yaml(value, &KeyPath::default(), &is_plain)
        .map_err(|e| src.invalid(&e.path, e.message))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
