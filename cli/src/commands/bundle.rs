//! `shoal swarm client-bundle ...`: certificates for remote CLI use (CI jobs,
//! laptops), each with a role: admin, deployer or viewer. The private key is
//! made here and never leaves this machine: the manager signs a CSR.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use shoal_identity::NodeIdentity;
use shoal_proto::control::v1::{
    CreateClientBundleRequest, CreateClientBundleResponse, ListClientBundlesRequest,
    RevokeClientBundleRequest,
};
use shoal_proto::types::v1::ClientBundle;

use super::{Error, Io};
use crate::client::Session;
use crate::output;
use crate::output::format::{Columns, ListFormat, LIST_HELP};

/// `client-bundle ls` columns.
pub const BUNDLE_COLUMNS: Columns = Columns {
    headers: &[
        ("Name", "NAME"),
        ("ID", "ID"),
        ("Role", "ROLE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Revoked", "REVOKED"),
    ],
    table: "table {{.Name}}\t{{.ID}}\t{{.Role}}\t{{.CreatedSince}}\t{{.Revoked}}",
    quiet: "{{.ID}}",
};

/// The roles the manager grants, least to most.
pub const ROLES: [&str; 3] = ["viewer", "deployer", "admin"];

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Create a client certificate bundle (key, certificate and cluster CA in one file)
    Create(CreateArgs),
    /// List client bundles
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Revoke one or more client bundles: the manager refuses them from now on
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the bundle may do: viewer reads, deployer also changes services
    /// and stacks, admin may do everything
    #[arg(long, value_parser = ROLES)]
    pub role: String,
    /// Where to write the bundle (default: ./NAME.bundle); never overwritten
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The bundle's name, unique among the bundles not revoked
    pub name: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal swarm client-bundle ls
  shoal swarm client-bundle ls --format '{{.Name}} {{.Role}} {{.Revoked}}'")]
pub struct LsArgs {
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Bundles, by name or id
    #[arg(required = true, value_name = "NAME|ID")]
    pub bundles: Vec<String>,
}

pub async fn run(
    session: &mut Session,
    command: BundleCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        BundleCommand::Create(args) => create(session, args, io).await,
        BundleCommand::Ls(args) => ls(session, args, io).await,
        BundleCommand::Revoke(args) => revoke(session, args, io).await,
    }
}

pub async fn create(session: &mut Session, args: CreateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if let Some(why) = crate::context::name_problem(&args.name) {
        return Err(Error::Input(format!(
            "invalid bundle name {:?}: {why}",
            args.name
        )));
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.bundle", args.name)));
    // Checked before the manager issues anything, so a refusal leaves no bundle behind.
    check_destination(&path)?;
    let (key_pem, csr_pem) = shoal_identity::generate_key_and_csr()
        .map_err(|e| Error::Input(format!("generate the bundle's key: {e}")))?;
    let response = session
        .client
        .create_client_bundle(CreateClientBundleRequest {
            name: args.name.clone(),
            role: args.role.clone(),
            csr_pem,
        })
        .await?
        .into_inner();
    let id = response.id.clone();
    let identity = identity_of(key_pem, response, &args.role).and_then(|identity| {
        save_new(&path, &identity)?;
        Ok(identity)
    });
    let identity = identity.map_err(|e| {
        Error::Input(format!(
            "{e}\nThe manager issued bundle {} ({id}) but it is not usable: \
             revoke it with `shoal swarm client-bundle revoke {id}`",
            args.name
        ))
    })?;
    writeln!(
        io.out,
        "Client bundle {} (id {}, role {}) written to {}",
        args.name,
        identity.peer.node_id,
        args.role,
        path.display()
    )?;
    writeln!(
        io.err,
        "Use it with: shoal context create {} --host tcp://MANAGER[:PORT] --bundle {}",
        args.name,
        path.display()
    )?;
    Ok(())
}

/// Refuses a `path` that exists or whose directory does not.
fn check_destination(path: &Path) -> Result<(), Error> {
    if path.symlink_metadata().is_ok() {
        return Err(Error::Input(format!(
            "{} already exists: remove it or choose another file with --output",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The identity the manager's answer and our key make, checked to be the
/// bundle asked for.
pub fn identity_of(
    key_pem: String,
    response: CreateClientBundleResponse,
    role: &str,
) -> Result<NodeIdentity, Error> {
    let bad = |what: String| Error::Input(format!("the manager's certificate {what}"));
    let identity = NodeIdentity::new(key_pem, response.cert_pem, response.root_ca_pem)
        .map_err(|e| bad(format!("is not usable: {e}")))?;
    if identity.peer.node_id != response.id {
        return Err(bad(format!(
            "names bundle {}, not {}",
            identity.peer.node_id, response.id
        )));
    }
    let granted = identity.peer.role.ou().trim_start_matches("shoal-");
    if granted != role {
        return Err(bad(format!("grants role {granted}, not {role}")));
    }
    Ok(identity)
}

/// Writes `identity` as a bundle file at `path` (mode 0600), failing rather
/// than replacing a file that appeared there meanwhile.
pub fn save_new(path: &Path, identity: &NodeIdentity) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".to_string());
    let staging = parent_dir(path).join(format!(".{name}.{}.partial", std::process::id()));
    shoal_identity::bundle::write(&staging, identity)
        .map_err(|e| Error::Input(format!("write the bundle: {e}")))?;
    // A hard link, unlike a rename, fails when the destination exists.
    let linked = std::fs::hard_link(&staging, path);
    let _ = std::fs::remove_file(&staging);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Input(format!(
                "{} already exists: not overwritten",
                path.display()
            ))
        } else {
            Error::Input(format!("write {}: {e}", path.display()))
        }
    })
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut bundles = session
        .client
        .list_client_bundles(ListClientBundlesRequest {})
        .await?
        .into_inner()
        .bundles;
    bundles.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    let rows = bundle_rows(&bundles, output::now_ms());
    let text = args.format.render(&BUNDLE_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// The `client-bundle ls` rows, as of `now_ms`: `.CreatedSince` is the
/// age (`5 minutes ago`), `.CreatedAt` the time.
pub fn bundle_rows(bundles: &[ClientBundle], now_ms: i64) -> Vec<serde_json::Value> {
    bundles
        .iter()
        .map(|bundle| {
            let age = std::time::Duration::from_millis(
                u64::try_from(now_ms.saturating_sub(bundle.created_at)).unwrap_or(0),
            );
            json!({
                "Name": bundle.name,
                "ID": bundle.id,
                "Role": bundle.role,
                "CreatedSince": format!("{} ago", output::human_duration(age)),
                "CreatedAt": output::rfc3339(bundle.created_at),
                "Revoked": bundle.revoked,
            })
        })
        .collect()
}

pub async fn revoke(session: &mut Session, args: RevokeArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for reference in args.bundles {
        let request = RevokeClientBundleRequest {
            name_or_id: reference.clone(),
        };
        match session.client.revoke_client_bundle(request).await {
            Ok(_) => writeln!(io.out, "{reference}")?,
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    super::collect_errors(errors)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use clap::Parser;
    use shoal_identity::Role;

    use super::*;
    use crate::commands::{swarm::SwarmCommand, Cli, Command};
    use crate::context::test_ca::TestCa;

    /// What the manager answers to a CSR: `ca` signs it for bundle `id`.
    fn answer(ca: &TestCa, csr: &str, id: &str, role: Role) -> CreateClientBundleResponse {
        CreateClientBundleResponse {
            id: id.to_string(),
            cert_pem: ca.sign(csr, id, role),
            root_ca_pem: ca.cert_pem.clone(),
        }
    }

    #[test]
    fn a_bundle_round_trips_from_csr_to_file_to_connection_identity() {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ci.bundle");
        check_destination(&path).expect("free");
        let (key, csr) = shoal_identity::generate_key_and_csr().expect("key");
        assert!(
            !csr.contains("PRIVATE KEY"),
            "only the CSR goes to the manager"
        );
        let identity = identity_of(
            key.clone(),
            answer(&ca, &csr, "b-1", Role::Deployer),
            "deployer",
        )
        .expect("identity");
        save_new(&path, &identity).expect("save");

        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // What `--tls-dir FILE` and contexts load.
        let loaded = crate::client::load_identity(&path).expect("load");
        assert_eq!(loaded.peer.node_id, "b-1");
        assert_eq!(loaded.peer.role, Role::Deployer);
        assert_eq!(loaded.key_pem.trim(), key.trim());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("ci.bundle")]);

        // An existing file is never replaced.
        let before = std::fs::read(&path).expect("read");
        let err = check_destination(&path).expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
        let other = ca.identity("b-2", Role::Admin);
        let err = save_new(&path, &other).expect_err("no overwrite");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), before);
        let err = check_destination(&dir.path().join("missing/ci.bundle")).expect_err("no dir");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn a_certificate_for_another_bundle_or_role_is_refused() {
        let ca = TestCa::new();
        let (key, csr) = shoal_identity::generate_key_and_csr().expect("key");
        let err = identity_of(key.clone(), answer(&ca, &csr, "b-1", Role::Admin), "viewer")
            .expect_err("role");
        assert!(
            err.to_string().contains("grants role admin, not viewer"),
            "{err}"
        );
        let mut response = answer(&ca, &csr, "b-1", Role::Viewer);
        response.id = "b-9".into();
        let err = identity_of(key, response, "viewer").expect_err("id");
        assert!(
            err.to_string().contains("names bundle b-1, not b-9"),
            "{err}"
        );
    }

    #[test]
    fn ls_shows_name_id_role_age_and_revocation() {
        let now = 10 * 60_000;
        let bundles = [
            ClientBundle {
                id: "id-1".into(),
                name: "ci".into(),
                role: "deployer".into(),
                created_at: now - 5 * 60_000,
                revoked: false,
                ..Default::default()
            },
            ClientBundle {
                id: "id-2".into(),
                name: "old".into(),
                role: "viewer".into(),
                created_at: 0,
                revoked: true,
                ..Default::default()
            },
        ];
        let rows = bundle_rows(&bundles, now);
        let text = ListFormat::Table
            .render(&BUNDLE_COLUMNS, &rows, false)
            .expect("table");
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["NAME", "ID", "ROLE", "CREATED", "REVOKED"]);
        assert_eq!(
            lines[1],
            ["ci", "id-1", "deployer", "5", "minutes", "ago", "false"]
        );
        assert_eq!(
            lines[2],
            ["old", "id-2", "viewer", "10", "minutes", "ago", "true"]
        );
        let json = rows;
        assert_eq!(json[1]["Revoked"], true);
        assert_eq!(json[0]["Role"], "deployer");
        assert_eq!(json[1]["CreatedAt"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_command_line_takes_a_role_and_an_output_file() {
        let cli = Cli::try_parse_from([
            "shoal",
            "swarm",
            "client-bundle",
            "create",
            "ci",
            "--role",
            "deployer",
            "-o",
            "/tmp/x.bundle",
        ])
        .expect("parses");
        let Command::Swarm(SwarmCommand::ClientBundle(BundleCommand::Create(args))) = cli.command
        else {
            panic!("not client-bundle create: {:?}", cli.command);
        };
        assert_eq!(args.name, "ci");
        assert_eq!(args.role, "deployer");
        assert_eq!(args.output, Some(PathBuf::from("/tmp/x.bundle")));
        for bad in [
            vec!["create", "ci", "--role", "root"],
            vec!["create", "ci"],
            vec!["revoke"],
        ] {
            let argv = ["shoal", "swarm", "client-bundle"]
                .into_iter()
                .chain(bad.clone());
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} parsed");
        }
    }
}
