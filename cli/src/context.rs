//! Contexts, as docker has them: named managers, each with the client
//! certificate bundle to reach it, kept in the config dir (`$SHOAL_CONFIG`,
//! else `~/.shoal`), one of them current. The built-in `default` context is
//! the local manager's socket.
//!
//! The config dir holds `contexts.json` and a copy of every context's bundle
//! under `bundles/` (mode 0600: it holds a private key):
//!
//! ```json
//! { "current": "prod",
//!   "contexts": { "prod": { "description": "CI deployer",
//!                           "host": "tcp://10.0.0.1:4242",
//!                           "bundle": "prod.bundle" } } }
//! ```
//!
//! Which manager a command talks to ([`resolve`]): `--context`, else
//! `SHOAL_CONTEXT`, else an explicit `--host` / `SHOAL_HOST`, else the
//! context `shoal context use` made current, else `default`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{self, Host};

pub mod archive;

pub const DEFAULT_CONTEXT: &str = "default";
/// The store's file in the config dir.
pub const STORE_FILE: &str = "contexts.json";
/// Where the store keeps its copies of the bundles, in the config dir.
pub const BUNDLE_DIR: &str = "bundles";

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("no config dir for contexts: set SHOAL_CONFIG (or HOME, for ~/.shoal)")]
    NoConfigDir,
    #[error("context {name:?} does not exist (chosen by {chosen_by}): `shoal context ls` lists the contexts")]
    Unknown { name: String, chosen_by: String },
    #[error("context {0:?} already exists")]
    Exists(String),
    #[error("invalid context name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    /// Options that contradict each other; a usage error.
    #[error("{0}")]
    Conflict(String),
    /// `SHOAL_HOST` holds no valid host; a usage error like a bad `--host`.
    #[error("invalid SHOAL_HOST: {0}")]
    BadEnvHost(String),
    #[error("context {name:?} in {path} has an invalid host: {why}")]
    BadStoredHost {
        name: String,
        path: PathBuf,
        why: String,
    },
    #[error("the default context is built in (the local manager socket) and cannot be {0}")]
    Builtin(&'static str),
    #[error(
        "context {0:?} is the current one: switch with `shoal context use default` first, \
         or remove it with --force"
    )]
    InUse(String),
    #[error("{host} needs a client certificate bundle: pass --bundle FILE")]
    NeedsBundle { host: Host },
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid context store: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("client bundle: {0}")]
    Bundle(#[from] shoal_identity::IdentityError),
    /// `context import` of something that is no context export.
    #[error("{from} is not a shoal context export: {why}")]
    BadArchive { from: String, why: String },
    #[error("export context {name:?}: {why}")]
    Export { name: String, why: String },
}

impl ContextError {
    /// Whether this is a misuse of the command line (exit status 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ContextError::Conflict(_) | ContextError::BadEnvHost(_)
        )
    }
}

/// The environment variables contexts are chosen and kept by; a value
/// rather than `std::env` calls, so selection is testable.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `SHOAL_CONTEXT`
    pub context: Option<String>,
    /// `SHOAL_HOST`
    pub host: Option<String>,
    /// `SHOAL_TLS_DIR`
    pub tls_dir: Option<PathBuf>,
    /// `SHOAL_CONFIG`
    pub config: Option<PathBuf>,
    /// `HOME`
    pub home: Option<PathBuf>,
}

impl Env {
    /// This process's environment; empty variables count as unset.
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let text = |name: &str| var(name).map(|v| v.to_string_lossy().into_owned());
        Env {
            context: text("SHOAL_CONTEXT"),
            host: text("SHOAL_HOST"),
            tls_dir: var("SHOAL_TLS_DIR").map(PathBuf::from),
            config: var("SHOAL_CONFIG").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
        }
    }

    /// `$SHOAL_CONFIG`, else `~/.shoal`.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.config
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".shoal")))
    }
}

/// What the command line says about where to connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    /// `--context`
    pub context: Option<&'a str>,
    /// `--host`, given on the command line.
    pub host: Option<&'a Host>,
    /// `--tls-dir`, given on the command line.
    pub tls_dir: Option<&'a Path>,
}

/// A context, built in or from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub description: String,
    pub host: Host,
    /// The store's copy of the client bundle.
    pub bundle: Option<PathBuf>,
}

impl Context {
    pub fn builtin_default() -> Context {
        Context {
            name: DEFAULT_CONTEXT.to_string(),
            description: "The local manager's socket".to_string(),
            host: default_host(),
            bundle: None,
        }
    }
}

fn default_host() -> Host {
    Host::Unix(PathBuf::from(
        client::DEFAULT_HOST
            .strip_prefix("unix://")
            .unwrap_or(client::DEFAULT_HOST),
    ))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, StoredContext>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredContext {
    #[serde(default)]
    description: String,
    host: String,
    /// File name under [`BUNDLE_DIR`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bundle: Option<String>,
}

/// What `context update` changes; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Update<'a> {
    pub description: Option<&'a str>,
    pub host: Option<&'a Host>,
    /// A client bundle file whose copy replaces the context's.
    pub bundle: Option<&'a Path>,
}

/// The contexts of one config dir.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    file: StoreFile,
}

impl Store {
    /// The store in `dir`; a dir without a store file has only `default`.
    pub fn open(dir: &Path) -> Result<Store, ContextError> {
        let path = dir.join(STORE_FILE);
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|source| ContextError::Parse { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreFile::default(),
            Err(source) => return Err(ContextError::Read { path, source }),
        };
        Ok(Store {
            dir: dir.to_path_buf(),
            file,
        })
    }

    /// The store of the config dir `env` names.
    pub fn from_env(env: &Env) -> Result<Store, ContextError> {
        let dir = env.config_dir().ok_or(ContextError::NoConfigDir)?;
        Store::open(&dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The context `shoal context use` made current.
    pub fn current(&self) -> &str {
        self.file.current.as_deref().unwrap_or(DEFAULT_CONTEXT)
    }

    /// `default` first, then the stored contexts by name.
    pub fn list(&self) -> Result<Vec<Context>, ContextError> {
        let mut all = vec![Context::builtin_default()];
        for name in self.file.contexts.keys() {
            all.push(self.get(name)?);
        }
        Ok(all)
    }

    /// The context `name`, or [`ContextError::Unknown`] saying it was asked for by `chosen_by`.
    pub fn find(&self, name: &str, chosen_by: &str) -> Result<Context, ContextError> {
        if name == DEFAULT_CONTEXT {
            return Ok(Context::builtin_default());
        }
        let stored = self
            .file
            .contexts
            .get(name)
            .ok_or_else(|| ContextError::Unknown {
                name: name.to_string(),
                chosen_by: chosen_by.to_string(),
            })?;
        let host = stored
            .host
            .parse()
            .map_err(|why| ContextError::BadStoredHost {
                name: name.to_string(),
                path: self.dir.join(STORE_FILE),
                why,
            })?;
        Ok(Context {
            name: name.to_string(),
            description: stored.description.clone(),
            host,
            bundle: stored
                .bundle
                .as_ref()
                .map(|file| self.dir.join(BUNDLE_DIR).join(file)),
        })
    }

    pub fn get(&self, name: &str) -> Result<Context, ContextError> {
        self.find(name, "name")
    }

    /// Adds context `name`: `host` reached with a copy of the bundle at
    /// `bundle` (checked to be one; required for tcp:// hosts).
    pub fn create(
        &mut self,
        name: &str,
        host: &Host,
        bundle: Option<&Path>,
        description: &str,
    ) -> Result<Context, ContextError> {
        self.check_new_name(name)?;
        // Re-written rather than copied: a file that is no bundle is refused
        // here, and the copy is the owner's alone whatever the source's mode.
        let identity = bundle.map(shoal_identity::bundle::read).transpose()?;
        self.add(name, host, identity.as_ref(), description)
    }

    /// Refuses `name` for a new context: `default`, a bad name, or taken.
    pub fn check_new_name(&self, name: &str) -> Result<(), ContextError> {
        if name == DEFAULT_CONTEXT {
            return Err(ContextError::Builtin("created"));
        }
        validate_name(name)?;
        if self.file.contexts.contains_key(name) {
            return Err(ContextError::Exists(name.to_string()));
        }
        Ok(())
    }

    /// Adds context `name` with its client identity (a private copy).
    fn add(
        &mut self,
        name: &str,
        host: &Host,
        identity: Option<&shoal_identity::NodeIdentity>,
        description: &str,
    ) -> Result<Context, ContextError> {
        self.check_new_name(name)?;
        if identity.is_none() && matches!(host, Host::Tcp(_)) {
            return Err(ContextError::NeedsBundle { host: host.clone() });
        }
        let bundle_file = match identity {
            Some(identity) => Some(self.write_bundle(&format!("{name}.bundle"), identity)?),
            None => None,
        };
        self.file.contexts.insert(
            name.to_string(),
            StoredContext {
                description: description.to_string(),
                host: host.to_string(),
                bundle: bundle_file.clone(),
            },
        );
        if let Err(e) = self.save() {
            self.file.contexts.remove(name);
            if let Some(file) = &bundle_file {
                let _ = std::fs::remove_file(self.dir.join(BUNDLE_DIR).join(file));
            }
            return Err(e);
        }
        self.get(name)
    }

    /// Writes `identity` as the store's bundle `file` (mode 0600, in the
    /// private bundle dir); returns the file name.
    fn write_bundle(
        &self,
        file: &str,
        identity: &shoal_identity::NodeIdentity,
    ) -> Result<String, ContextError> {
        let dir = self.dir.join(BUNDLE_DIR);
        create_private_dir(&dir)?;
        shoal_identity::bundle::write(&dir.join(file), identity)?;
        Ok(file.to_string())
    }

    /// `context update`: a new description, host or bundle for `name`. The
    /// new bundle is checked and written beside the old one, the store then
    /// names it, and only then the old one goes: a refusal or a failure
    /// leaves the context as it was.
    pub fn update(&mut self, name: &str, change: &Update<'_>) -> Result<Context, ContextError> {
        if name == DEFAULT_CONTEXT {
            return Err(ContextError::Builtin("updated"));
        }
        let current = self.get(name)?;
        if change.description.is_none() && change.host.is_none() && change.bundle.is_none() {
            return Err(ContextError::Conflict(format!(
                "nothing to update in context {name:?}: give --description, --host or --bundle"
            )));
        }
        let identity = change
            .bundle
            .map(shoal_identity::bundle::read)
            .transpose()?;
        let host = change.host.unwrap_or(&current.host);
        if identity.is_none() && current.bundle.is_none() && matches!(host, Host::Tcp(_)) {
            return Err(ContextError::NeedsBundle { host: host.clone() });
        }
        let before = self.file.contexts.get(name).cloned();
        let Some(mut stored) = before.clone() else {
            return Err(ContextError::Unknown {
                name: name.to_string(),
                chosen_by: "name".to_string(),
            });
        };
        let mut written = None;
        if let Some(identity) = &identity {
            // Never over the file the store names now.
            let plain = format!("{name}.bundle");
            let file = if stored.bundle.as_deref() == Some(plain.as_str()) {
                format!("{name}.next.bundle")
            } else {
                plain
            };
            written = Some(self.write_bundle(&file, identity)?);
            stored.bundle = written.clone();
        }
        if let Some(description) = change.description {
            stored.description = description.to_string();
        }
        stored.host = host.to_string();
        self.file.contexts.insert(name.to_string(), stored);
        if let Err(e) = self.save() {
            if let Some(before) = before {
                self.file.contexts.insert(name.to_string(), before);
            }
            if let Some(file) = &written {
                let _ = std::fs::remove_file(self.dir.join(BUNDLE_DIR).join(file));
            }
            return Err(e);
        }
        if let (Some(_), Some(old)) = (&written, &current.bundle) {
            // The store names the new copy: the old one is nobody's.
            let _ = std::fs::remove_file(old);
        }
        self.get(name)
    }

    /// Makes `name` current (`default` included).
    pub fn use_context(&mut self, name: &str) -> Result<(), ContextError> {
        self.get(name)?;
        self.file.current = (name != DEFAULT_CONTEXT).then(|| name.to_string());
        self.save()
    }

    /// Removes `name` and its bundle copy; the current context only with
    /// `force` (`default` is current again then).
    pub fn remove(&mut self, name: &str, force: bool) -> Result<(), ContextError> {
        if name == DEFAULT_CONTEXT {
            return Err(ContextError::Builtin("removed"));
        }
        let context = self.get(name)?;
        if self.current() == name {
            if !force {
                return Err(ContextError::InUse(name.to_string()));
            }
            self.file.current = None;
        }
        self.file.contexts.remove(name);
        self.save()?;
        if let Some(bundle) = context.bundle {
            match std::fs::remove_file(&bundle) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ContextError::Write {
                        path: bundle,
                        source: e,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes the store file (mode 0600, replaced atomically).
    fn save(&self) -> Result<(), ContextError> {
        use std::os::unix::fs::OpenOptionsExt;
        create_private_dir(&self.dir)?;
        let path = self.dir.join(STORE_FILE);
        let tmp = self.dir.join(format!(".{STORE_FILE}.tmp"));
        let err = |source| ContextError::Write {
            path: path.clone(),
            source,
        };
        let mut text =
            serde_json::to_vec_pretty(&self.file).map_err(|source| ContextError::Parse {
                path: path.clone(),
                source,
            })?;
        text.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ContextError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ContextError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Context names are file names and command-line words: a letter or digit,
/// then letters, digits, `_`, `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), ContextError> {
    match name_problem(name) {
        Some(why) => Err(ContextError::BadName {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// What is wrong with `name` as a context or bundle name, if anything.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("it is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Some("it must start with a letter or digit")
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Some("only letters, digits, '_', '.' and '-' are allowed");
    }
    if name.len() > 64 {
        return Some("at most 64 characters");
    }
    None
}

/// Where a command connects, once flags, environment and store have spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The context in use; `default` also for an explicit `--host` / `SHOAL_HOST`.
    pub context: String,
    pub host: Host,
    /// A client bundle file or a certificate directory, for tcp:// hosts.
    pub tls: Option<PathBuf>,
}

/// The name of the context in use and what chose it, or the explicit host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Context { name: String, chosen_by: String },
    Host { host: Host, tls: Option<PathBuf> },
}

/// Which context or host the flags, the environment and the current context
/// (when there is a store) select; see the module docs for the order.
pub fn select(
    flags: &Flags<'_>,
    env: &Env,
    store: Option<&Store>,
) -> Result<Selection, ContextError> {
    let named = match (flags.context, env.context.as_deref()) {
        (Some(name), _) => Some((name, "--context")),
        (None, Some(name)) => Some((name, "SHOAL_CONTEXT")),
        (None, None) => None,
    };
    if let Some((name, chosen_by)) = named {
        for (given, flag) in [
            (flags.host.is_some(), "--host"),
            (flags.tls_dir.is_some(), "--tls-dir"),
        ] {
            if given {
                return Err(ContextError::Conflict(format!(
                    "{flag} cannot be used with a context ({chosen_by} {name}): \
                     the context names the manager and its bundle"
                )));
            }
        }
        return Ok(Selection::Context {
            name: name.to_string(),
            chosen_by: chosen_by.to_string(),
        });
    }
    let tls = flags
        .tls_dir
        .map(Path::to_path_buf)
        .or_else(|| env.tls_dir.clone());
    if let Some(host) = flags.host {
        return Ok(Selection::Host {
            host: host.clone(),
            tls,
        });
    }
    if let Some(text) = &env.host {
        let host = text.parse().map_err(ContextError::BadEnvHost)?;
        return Ok(Selection::Host { host, tls });
    }
    let current = store.map(Store::current).unwrap_or(DEFAULT_CONTEXT);
    if current != DEFAULT_CONTEXT {
        if flags.tls_dir.is_some() {
            return Err(ContextError::Conflict(format!(
                "--tls-dir cannot be used with the current context {current}: \
                 pass --host too, or --context default"
            )));
        }
        return Ok(Selection::Context {
            name: current.to_string(),
            chosen_by: "`shoal context use`".to_string(),
        });
    }
    Ok(Selection::Host {
        host: default_host(),
        tls,
    })
}

/// Where to connect; reads the store only when no flag or variable decides.
pub fn resolve(flags: &Flags<'_>, env: &Env) -> Result<Target, ContextError> {
    let decided_without_store = flags.context.is_some()
        || env.context.is_some()
        || flags.host.is_some()
        || env.host.is_some();
    let store = match env.config_dir() {
        Some(dir) if !decided_without_store || flags.context.is_some() || env.context.is_some() => {
            Some(Store::open(&dir)?)
        }
        _ => None,
    };
    match select(flags, env, store.as_ref())? {
        Selection::Host { host, tls } => Ok(Target {
            context: DEFAULT_CONTEXT.to_string(),
            host,
            tls,
        }),
        Selection::Context { name, chosen_by } => {
            let context = match &store {
                Some(store) => store.find(&name, &chosen_by)?,
                None if name == DEFAULT_CONTEXT => Context::builtin_default(),
                None => {
                    return Err(ContextError::Unknown { name, chosen_by });
                }
            };
            Ok(Target {
                context: context.name,
                host: context.host,
                tls: context.bundle,
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod test_ca {
    //! A throwaway cluster CA that signs CSRs the way the manager does, for
    //! bundles in tests.

    use rcgen::{
        BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair,
    };
    use shoal_identity::{NodeIdentity, PeerIdentity, Role};

    pub struct TestCa {
        pub cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        pub fn new() -> TestCa {
            let key = KeyPair::generate().expect("ca key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).expect("self-signed");
            TestCa {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// The certificate the cluster CA would issue for `csr_pem` as bundle `id`.
        pub fn sign(&self, csr_pem: &str, id: &str, role: Role) -> String {
            let csr = CertificateSigningRequestParams::from_pem(csr_pem).expect("csr");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name = shoal_identity::subject(&PeerIdentity {
                node_id: id.to_string(),
                role,
                cluster_id: "cluster-test".to_string(),
            });
            params
                .signed_by(&csr.public_key, &self.issuer)
                .expect("sign")
                .pem()
        }

        /// A whole client identity, as a bundle file holds it.
        pub fn identity(&self, id: &str, role: Role) -> NodeIdentity {
            let (key, csr) = shoal_identity::generate_key_and_csr().expect("key");
            let cert = self.sign(&csr, id, role);
            NodeIdentity::new(key, cert, self.cert_pem.clone()).expect("identity")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use shoal_identity::Role;

    use super::test_ca::TestCa;
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        bundle: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let bundle = dir.path().join("ci.bundle");
            let identity = TestCa::new().identity("bundle-1", Role::Deployer);
            shoal_identity::bundle::write(&bundle, &identity).expect("write bundle");
            Fixture { dir, bundle }
        }

        fn config(&self) -> PathBuf {
            self.dir.path().join("config")
        }

        fn env(&self) -> Env {
            Env {
                config: Some(self.config()),
                ..Env::default()
            }
        }

        fn store(&self) -> Store {
            Store::open(&self.config()).expect("open store")
        }
    }

    fn tcp(addr: &str) -> Host {
        Host::Tcp(addr.to_string())
    }

    #[test]
    fn created_contexts_persist_with_a_private_copy_of_the_bundle() {
        let fx = Fixture::new();
        let mut store = fx.store();
        let created = store
            .create("prod", &tcp("10.0.0.1:4242"), Some(&fx.bundle), "CI")
            .expect("create");
        // The source may go: the store has its own copy.
        std::fs::remove_file(&fx.bundle).expect("rm source");

        let store = fx.store();
        let prod = store.get("prod").expect("get");
        assert_eq!(prod, created);
        assert_eq!(prod.host, tcp("10.0.0.1:4242"));
        assert_eq!(prod.description, "CI");
        let copy = prod.bundle.expect("bundle");
        assert!(copy.starts_with(fx.config()), "{}", copy.display());
        let mode = std::fs::metadata(&copy).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let identity = shoal_identity::bundle::read(&copy).expect("copy is a bundle");
        assert_eq!(identity.peer.role, Role::Deployer);
        let names: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["default", "prod"]);
        let dir_mode = std::fs::metadata(fx.config()).expect("stat").permissions();
        assert_eq!(dir_mode.mode() & 0o777, 0o700);
    }

    #[test]
    fn create_refuses_duplicates_bad_names_missing_bundles_and_non_bundles() {
        let fx = Fixture::new();
        let mut store = fx.store();
        let host = tcp("10.0.0.1:4242");
        store
            .create("prod", &host, Some(&fx.bundle), "")
            .expect("create");
        let err = store
            .create("prod", &host, Some(&fx.bundle), "")
            .expect_err("duplicate");
        assert!(matches!(err, ContextError::Exists(_)), "{err}");
        for bad in ["", "-x", "a/b", "a b", "../up"] {
            let err = store
                .create(bad, &host, Some(&fx.bundle), "")
                .expect_err(bad);
            assert!(matches!(err, ContextError::BadName { .. }), "{bad}: {err}");
        }
        let err = store
            .create("default", &host, Some(&fx.bundle), "")
            .expect_err("builtin");
        assert!(matches!(err, ContextError::Builtin(_)), "{err}");
        let err = store
            .create("nobundle", &host, None, "")
            .expect_err("tcp without bundle");
        assert!(err.to_string().contains("--bundle"), "{err}");
        let junk = fx.dir.path().join("junk");
        std::fs::write(&junk, "not a bundle").expect("write");
        let err = store
            .create("junk", &host, Some(&junk), "")
            .expect_err("not a bundle");
        assert!(matches!(err, ContextError::Bundle(_)), "{err}");
        // A local socket needs no bundle.
        let local = Host::Unix(PathBuf::from("/tmp/other.sock"));
        store.create("local", &local, None, "").expect("unix");
        let names: Vec<String> = fx
            .store()
            .list()
            .expect("list")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["default", "local", "prod"]);
    }

    #[test]
    fn use_and_rm_move_the_current_context() {
        let fx = Fixture::new();
        let mut store = fx.store();
        store
            .create("prod", &tcp("10.0.0.1:4242"), Some(&fx.bundle), "")
            .expect("create");
        assert_eq!(store.current(), "default");
        store.use_context("prod").expect("use");
        assert_eq!(fx.store().current(), "prod");
        let err = store.use_context("nope").expect_err("unknown");
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");

        let err = store.remove("prod", false).expect_err("in use");
        assert!(matches!(err, ContextError::InUse(_)), "{err}");
        let err = store.remove("default", true).expect_err("builtin");
        assert!(matches!(err, ContextError::Builtin(_)), "{err}");
        let copy = store.get("prod").expect("get").bundle.expect("bundle");
        store.remove("prod", true).expect("forced rm");
        assert!(
            !copy.exists(),
            "the bundle copy is removed with its context"
        );
        let store = fx.store();
        assert_eq!(store.current(), "default");
        assert!(store.get("prod").is_err());

        let mut store = store;
        store.use_context("default").expect("use default");
        let text = std::fs::read_to_string(fx.config().join(STORE_FILE)).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(json.get("current").is_none(), "{text}");
    }

    #[test]
    fn update_changes_what_it_names_and_replaces_the_bundle_copy_whole() {
        let fx = Fixture::new();
        let mut store = fx.store();
        store
            .create("prod", &tcp("10.0.0.1:4242"), Some(&fx.bundle), "CI")
            .expect("create");
        let first_copy = store.get("prod").expect("get").bundle.expect("bundle");
        let moved = tcp("10.0.0.9:4242");
        let updated = store
            .update(
                "prod",
                &Update {
                    host: Some(&moved),
                    ..Update::default()
                },
            )
            .expect("host");
        assert_eq!(updated.host, moved);
        assert_eq!(updated.description, "CI", "kept");
        assert_eq!(updated.bundle.as_ref(), Some(&first_copy), "kept");

        let admin = fx.dir.path().join("admin.bundle");
        let identity = TestCa::new().identity("bundle-2", Role::Admin);
        shoal_identity::bundle::write(&admin, &identity).expect("write bundle");
        let updated = store
            .update(
                "prod",
                &Update {
                    bundle: Some(&admin),
                    description: Some("ops"),
                    ..Update::default()
                },
            )
            .expect("bundle");
        let copy = updated.bundle.expect("bundle");
        assert_ne!(copy, first_copy, "written beside the old copy first");
        assert!(!first_copy.exists(), "the old copy goes once unused");
        let mode = std::fs::metadata(&copy).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let reopened = fx.store().get("prod").expect("get");
        assert_eq!(reopened.description, "ops");
        assert_eq!(reopened.host, moved);
        let read = shoal_identity::bundle::read(&reopened.bundle.unwrap()).expect("bundle");
        assert_eq!(read.peer.role, Role::Admin);
        // And back: the copy alternates between two names.
        let again = store
            .update(
                "prod",
                &Update {
                    bundle: Some(&fx.bundle),
                    ..Update::default()
                },
            )
            .expect("bundle again");
        assert!(again.bundle.as_ref().is_some_and(|p| p.exists()));
        assert!(!copy.exists());
    }

    #[test]
    fn update_refuses_unknown_builtin_empty_and_bad_changes_changing_nothing() {
        let fx = Fixture::new();
        let mut store = fx.store();
        let socket = Host::Unix(PathBuf::from("/tmp/x.sock"));
        store
            .create("local", &socket, None, "mine")
            .expect("create");
        let before = std::fs::read(fx.config().join(STORE_FILE)).expect("read");
        let desc = Update {
            description: Some("x"),
            ..Update::default()
        };
        let err = store.update("nope", &desc).expect_err("unknown");
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");
        let err = store.update("default", &desc).expect_err("builtin");
        assert!(matches!(err, ContextError::Builtin("updated")), "{err}");
        let err = store
            .update("local", &Update::default())
            .expect_err("empty");
        assert!(
            err.is_usage() && err.to_string().contains("nothing to update"),
            "{err}"
        );
        // A tcp:// manager without any bundle to reach it with.
        let remote = tcp("10.0.0.1:4242");
        let err = store
            .update(
                "local",
                &Update {
                    host: Some(&remote),
                    ..Update::default()
                },
            )
            .expect_err("needs a bundle");
        assert!(err.to_string().contains("--bundle"), "{err}");
        let junk = fx.dir.path().join("junk");
        std::fs::write(&junk, "not a bundle").expect("write");
        let err = store
            .update(
                "local",
                &Update {
                    bundle: Some(&junk),
                    host: Some(&remote),
                    ..Update::default()
                },
            )
            .expect_err("not a bundle");
        assert!(matches!(err, ContextError::Bundle(_)), "{err}");
        let after = std::fs::read(fx.config().join(STORE_FILE)).expect("read");
        assert_eq!(before, after, "nothing changed");
        assert!(!fx.config().join(BUNDLE_DIR).exists(), "no bundle written");
        assert_eq!(fx.store().get("local").expect("get").host, socket);
    }

    #[test]
    fn selection_order_is_flag_env_host_current_default() {
        let fx = Fixture::new();
        let mut store = fx.store();
        let bundle = Some(fx.bundle.as_path());
        store
            .create("a", &tcp("10.0.0.1:4242"), bundle, "")
            .expect("a");
        store
            .create("b", &tcp("10.0.0.2:4242"), bundle, "")
            .expect("b");
        store
            .create("c", &tcp("10.0.0.3:4242"), bundle, "")
            .expect("c");
        store.use_context("c").expect("use c");
        let explicit = Host::Unix(PathBuf::from("/tmp/x.sock"));
        let mut env = fx.env();
        let resolve_with = |flags: Flags<'_>, env: &Env| resolve(&flags, env).expect("resolve");

        // Nothing explicit: the current context.
        let t = resolve_with(Flags::default(), &env);
        assert_eq!((t.context.as_str(), &t.host), ("c", &tcp("10.0.0.3:4242")));
        assert!(t.tls.as_ref().is_some_and(|p| p.is_file()), "{t:?}");
        // An explicit host beats the current context.
        env.host = Some("tcp://10.9.9.9".into());
        env.tls_dir = Some(PathBuf::from("/certs"));
        let t = resolve_with(Flags::default(), &env);
        assert_eq!(t.context, "default");
        assert_eq!(t.host, tcp("10.9.9.9:4242"));
        assert_eq!(t.tls, Some(PathBuf::from("/certs")));
        let flags = Flags {
            host: Some(&explicit),
            ..Flags::default()
        };
        assert_eq!(resolve_with(flags, &env).host, explicit);
        // SHOAL_CONTEXT beats SHOAL_HOST.
        env.context = Some("b".into());
        let t = resolve_with(Flags::default(), &env);
        assert_eq!((t.context.as_str(), &t.host), ("b", &tcp("10.0.0.2:4242")));
        // --context beats SHOAL_CONTEXT.
        let flags = Flags {
            context: Some("a"),
            ..Flags::default()
        };
        let t = resolve_with(flags, &env);
        assert_eq!((t.context.as_str(), &t.host), ("a", &tcp("10.0.0.1:4242")));
        // `default` is the local socket, whatever SHOAL_HOST says.
        let flags = Flags {
            context: Some("default"),
            ..Flags::default()
        };
        let t = resolve_with(flags, &env);
        assert_eq!(t.host.to_string(), client::DEFAULT_HOST);
        assert_eq!(t.tls, None);
    }

    #[test]
    fn without_a_store_or_anything_explicit_the_local_socket_is_used() {
        let fx = Fixture::new();
        let t = resolve(&Flags::default(), &fx.env()).expect("resolve");
        assert_eq!(t.context, "default");
        assert_eq!(t.host.to_string(), client::DEFAULT_HOST);
        assert!(!fx.config().exists(), "resolving creates nothing");
        // No HOME and no SHOAL_CONFIG: still the local socket.
        let t = resolve(&Flags::default(), &Env::default()).expect("resolve");
        assert_eq!(t.host.to_string(), client::DEFAULT_HOST);
        let tls = PathBuf::from("/certs");
        let flags = Flags {
            tls_dir: Some(&tls),
            ..Flags::default()
        };
        assert_eq!(
            resolve(&flags, &Env::default()).expect("resolve").tls,
            Some(tls)
        );
    }

    #[test]
    fn conflicts_and_unknown_contexts_are_clear_errors() {
        let fx = Fixture::new();
        let host = tcp("10.0.0.1:4242");
        let flags = Flags {
            context: Some("prod"),
            host: Some(&host),
            ..Flags::default()
        };
        let err = resolve(&flags, &fx.env()).expect_err("conflict");
        assert!(err.is_usage(), "{err}");
        assert!(
            err.to_string()
                .contains("--host cannot be used with a context"),
            "{err}"
        );
        let env = Env {
            context: Some("prod".into()),
            ..fx.env()
        };
        let flags = Flags {
            host: Some(&host),
            ..Flags::default()
        };
        let err = resolve(&flags, &env).expect_err("env conflict");
        assert!(
            err.is_usage() && err.to_string().contains("SHOAL_CONTEXT"),
            "{err}"
        );

        let err = resolve(&Flags::default(), &env).expect_err("unknown");
        assert!(!err.is_usage());
        let text = err.to_string();
        assert!(text.contains("context \"prod\" does not exist"), "{text}");
        assert!(text.contains("SHOAL_CONTEXT"), "{text}");

        let env = Env {
            host: Some("10.0.0.1:4242".into()),
            ..fx.env()
        };
        let err = resolve(&Flags::default(), &env).expect_err("bad SHOAL_HOST");
        assert!(
            err.is_usage() && err.to_string().contains("SHOAL_HOST"),
            "{err}"
        );

        // A current context removed behind the store's back.
        std::fs::create_dir_all(fx.config()).expect("mkdir");
        std::fs::write(fx.config().join(STORE_FILE), r#"{"current":"gone"}"#).expect("write");
        let err = resolve(&Flags::default(), &fx.env()).expect_err("dangling current");
        assert!(err.to_string().contains("shoal context use"), "{err}");
        let tls = PathBuf::from("/certs");
        std::fs::write(
            fx.config().join(STORE_FILE),
            r#"{"current":"gone","contexts":{"gone":{"host":"unix:///x.sock"}}}"#,
        )
        .expect("write");
        let flags = Flags {
            tls_dir: Some(&tls),
            ..Flags::default()
        };
        let err = resolve(&flags, &fx.env()).expect_err("tls dir with current");
        assert!(err.is_usage(), "{err}");
        std::fs::write(fx.config().join(STORE_FILE), "{not json").expect("write");
        let err = resolve(&Flags::default(), &fx.env()).expect_err("corrupt");
        assert!(
            err.to_string().contains("not a valid context store"),
            "{err}"
        );
    }
}
