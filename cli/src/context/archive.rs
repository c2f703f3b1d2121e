//! `context export` and `context import`: one context as a tar archive, as
//! docker writes one (`docker context export`), laid out like docker's:
//!
//! ```text
//! meta.json           {"Name": "prod", "Description": "CI", "Host": "tcp://10.0.0.1:4242"}
//! tls/shoal/key.pem   the client bundle's private key (mode 0600)
//! tls/shoal/cert.pem  its certificate (and the cross-signed root, while one rotates)
//! tls/shoal/ca.pem    the cluster's root CA
//! ```
//!
//! A context without a bundle (a unix socket) has `meta.json` alone. The
//! archive holds a private key: it is written readable by its owner only,
//! and imported into the store's private bundle copy. Import reads the
//! whole archive and checks all of it (paths, sizes, the metadata, the key
//! against the certificate) before it writes anything.

use std::io::Read;

use serde::{Deserialize, Serialize};
use shoal_identity::NodeIdentity;

use super::{Context, ContextError, Store};
use crate::client::Host;

/// The file name `context export NAME` writes without a FILE.
pub fn default_file(name: &str) -> String {
    format!("{name}.shoalcontext")
}

/// docker's limit on what `context import` reads.
pub const MAX_ARCHIVE_BYTES: u64 = 10 << 20;

const META: &str = "meta.json";
const KEY: &str = "tls/shoal/key.pem";
const CERT: &str = "tls/shoal/cert.pem";
const CA: &str = "tls/shoal/ca.pem";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Meta {
    name: String,
    #[serde(default)]
    description: String,
    host: String,
}

/// Context `name` of `store` as an archive.
pub fn export(store: &Store, name: &str) -> Result<Vec<u8>, ContextError> {
    let context = store.get(name)?;
    let identity = context
        .bundle
        .as_deref()
        .map(shoal_identity::bundle::read)
        .transpose()?;
    let meta = Meta {
        name: context.name.clone(),
        description: context.description.clone(),
        host: context.host.to_string(),
    };
    let mut meta = serde_json::to_vec_pretty(&meta).map_err(|e| ContextError::Export {
        name: name.to_string(),
        why: e.to_string(),
    })?;
    meta.push(b'\n');
    let mut files: Vec<(&str, &[u8], u32)> = vec![(META, &meta, 0o644)];
    if let Some(identity) = &identity {
        files.push((KEY, identity.key_pem.as_bytes(), 0o600));
        files.push((CERT, identity.cert_pem.as_bytes(), 0o644));
        files.push((CA, identity.ca_pem.as_bytes(), 0o644));
    }
    let mut archive = tar::Builder::new(Vec::new());
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let failed = |e: std::io::Error| ContextError::Export {
        name: name.to_string(),
        why: format!("build the archive: {e}"),
    };
    for (path, data, mode) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, path, data)
            .map_err(failed)?;
    }
    archive.into_inner().map_err(failed)
}

/// Recreates the context of `archive` (read from `source`, for messages)
/// as `name` in `store`; nothing is written unless all of it is right.
pub fn import(
    store: &mut Store,
    name: &str,
    archive: &[u8],
    source: &str,
) -> Result<Context, ContextError> {
    store.check_new_name(name)?;
    let bad = |why: String| ContextError::BadArchive {
        from: source.to_string(),
        why,
    };
    if archive.len() as u64 > MAX_ARCHIVE_BYTES {
        return Err(bad(format!(
            "it is larger than {} MiB",
            MAX_ARCHIVE_BYTES >> 20
        )));
    }
    let files = read_entries(archive).map_err(bad)?;
    let text = |path: &str| -> Result<Option<String>, ContextError> {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, data)| {
                String::from_utf8(data.clone()).map_err(|_| bad(format!("{path} is not text")))
            })
            .transpose()
    };
    let meta = text(META)?.ok_or_else(|| bad(format!("it has no {META}")))?;
    let meta: Meta =
        serde_json::from_str(&meta).map_err(|e| bad(format!("{META} is not valid: {e}")))?;
    let host: Host = meta
        .host
        .parse()
        .map_err(|why| bad(format!("{META} has an invalid host {:?}: {why}", meta.host)))?;
    let identity = match (text(KEY)?, text(CERT)?, text(CA)?) {
        (None, None, None) => None,
        (Some(key), Some(cert), Some(ca)) => Some(identity(key, cert, ca).map_err(bad)?),
        _ => {
            return Err(bad(format!(
                "its client bundle is incomplete: it needs {KEY}, {CERT} and {CA}"
            )))
        }
    };
    if identity.is_none() && matches!(host, Host::Tcp(_)) {
        return Err(bad(format!("it has no client bundle, which {host} needs")));
    }
    store.add(name, &host, identity.as_ref(), &meta.description)
}

/// The client identity of the archive's three PEM files, key matching
/// certificate.
fn identity(key: String, cert: String, ca: String) -> Result<NodeIdentity, String> {
    let text = format!(
        "{}\n{}\n{}\n",
        key.trim_end(),
        cert.trim_end(),
        ca.trim_end()
    );
    let identity =
        shoal_identity::bundle::parse(&text, "its client bundle").map_err(|e| e.to_string())?;
    if !identity.key_matches_certificate() {
        return Err(format!("{KEY} is not the key of {CERT}"));
    }
    Ok(identity)
}

/// Every regular file of the archive, its path checked; directories are
/// passed over, anything else is refused.
fn read_entries(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut reader = tar::Archive::new(archive);
    let entries = reader
        .entries()
        .map_err(|e| format!("it is not a tar archive ({e})"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("it is not a tar archive ({e})"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry has an unreadable name ({e})"))?
            .to_string_lossy()
            .into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => return Err(format!("{path} is not a regular file")),
        }
        if ![META, KEY, CERT, CA].contains(&path.as_str()) {
            return Err(format!(
                "unexpected file {path:?} (an export holds {META} and tls/shoal/*.pem)"
            ));
        }
        if files.iter().any(|(p, _)| *p == path) {
            return Err(format!("{path} is in it twice"));
        }
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_ARCHIVE_BYTES)
            .read_to_end(&mut data)
            .map_err(|e| format!("{path} cannot be read ({e})"))?;
        files.push((path, data));
    }
    if files.is_empty() {
        return Err("it is empty or not a tar archive".into());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use shoal_identity::Role;

    use super::super::test_ca::TestCa;
    use super::*;

    /// A machine's config dir with a context `prod` (a deployer bundle).
    fn machine_with_prod() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = dir.path().join("ci.bundle");
        let identity = TestCa::new().identity("bundle-1", Role::Deployer);
        shoal_identity::bundle::write(&bundle, &identity).expect("bundle");
        let mut store = Store::open(&dir.path().join("config")).expect("store");
        store
            .create(
                "prod",
                &Host::Tcp("10.0.0.1:4242".into()),
                Some(&bundle),
                "CI deployer",
            )
            .expect("create");
        (dir, store)
    }

    fn empty_machine() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("config")).expect("store");
        (dir, store)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    fn entries(archive: &[u8]) -> Vec<(String, u32)> {
        tar::Archive::new(archive)
            .entries()
            .expect("tar")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").display().to_string(),
                    e.header().mode().expect("mode"),
                )
            })
            .collect()
    }

    /// An archive of `files` (path, contents), as a user might make one.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            // The name as written, `..` included (the builder would refuse it).
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("tar")
    }

    #[test]
    fn an_export_imported_elsewhere_is_the_same_context_with_a_private_key() {
        let (_here, store) = machine_with_prod();
        let archive = export(&store, "prod").expect("export");
        assert_eq!(
            entries(&archive),
            [
                (META.to_string(), 0o644),
                (KEY.to_string(), 0o600),
                (CERT.to_string(), 0o644),
                (CA.to_string(), 0o644),
            ]
        );
        let (_there, mut other) = empty_machine();
        let imported =
            import(&mut other, "prod-ci", &archive, "prod.shoalcontext").expect("import");
        let original = store.get("prod").expect("original");
        assert_eq!(imported.name, "prod-ci");
        assert_eq!(imported.host, original.host);
        assert_eq!(imported.description, "CI deployer");
        let copy: PathBuf = imported.bundle.expect("a bundle");
        assert!(copy.starts_with(other.dir()), "{}", copy.display());
        assert_eq!(mode(&copy), 0o600, "the key is its owner's only");
        let theirs = shoal_identity::bundle::read(&copy).expect("a bundle");
        let ours = shoal_identity::bundle::read(&original.bundle.unwrap()).expect("bundle");
        assert_eq!(theirs.key_pem, ours.key_pem);
        assert_eq!(theirs.peer, ours.peer);
        // It persists like a created one.
        let reopened = Store::open(other.dir()).expect("reopen");
        assert_eq!(reopened.get("prod-ci").expect("kept").host, original.host);
    }

    #[test]
    fn a_unix_context_exports_its_metadata_alone() {
        let (_here, mut store) = empty_machine();
        let socket = Host::Unix("/run/other.sock".into());
        store.create("local", &socket, None, "").expect("create");
        let archive = export(&store, "local").expect("export");
        assert_eq!(entries(&archive), [(META.to_string(), 0o644)]);
        let (_there, mut other) = empty_machine();
        let imported = import(&mut other, "local", &archive, "-").expect("import");
        assert_eq!((imported.host, imported.bundle), (socket, None));
        // The built-in default exports too (docker's), and is never imported.
        let default = export(&store, "default").expect("default");
        let err = import(&mut other, "default", &default, "-").expect_err("builtin");
        assert!(matches!(err, ContextError::Builtin(_)), "{err}");
    }

    #[test]
    fn import_refuses_a_taken_name_and_export_an_unknown_one() {
        let (_here, mut store) = machine_with_prod();
        let archive = export(&store, "prod").expect("export");
        let err = import(&mut store, "prod", &archive, "-").expect_err("taken");
        assert_eq!(err.to_string(), "context \"prod\" already exists");
        let err = export(&store, "nope").expect_err("unknown");
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");
        let err = import(&mut store, "a/b", &archive, "-").expect_err("bad name");
        assert!(matches!(err, ContextError::BadName { .. }), "{err}");
    }

    #[test]
    fn a_malformed_archive_is_refused_and_nothing_is_written() {
        let (_here, store) = machine_with_prod();
        let good = export(&store, "prod").expect("export");
        let files: Vec<(String, Vec<u8>)> = read_entries(&good).expect("entries");
        let file = |path: &str| -> Vec<u8> {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, d)| d.clone())
                .expect("in the export")
        };
        let (meta, key, cert, ca) = (file(META), file(KEY), file(CERT), file(CA));
        let other_key = TestCa::new().identity("x", Role::Viewer).key_pem;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a tar archive".to_vec(), "not a tar archive"),
            (Vec::new(), "it is empty or not a tar archive"),
            (good[..700].to_vec(), "not a tar archive"),
            (
                tar_of(&[(KEY, &key), (CERT, &cert), (CA, &ca)]),
                "it has no meta.json",
            ),
            (tar_of(&[(META, b"{not json")]), "meta.json is not valid"),
            (
                tar_of(&[(META, br#"{"Name":"x","Host":"ftp://h"}"#)]),
                "invalid host \"ftp://h\"",
            ),
            (
                tar_of(&[(META, &meta)]),
                "no client bundle, which tcp://10.0.0.1:4242 needs",
            ),
            (
                tar_of(&[(META, &meta), (KEY, &key)]),
                "client bundle is incomplete",
            ),
            (
                tar_of(&[
                    (META, &meta),
                    (KEY, other_key.as_bytes()),
                    (CERT, &cert),
                    (CA, &ca),
                ]),
                "tls/shoal/key.pem is not the key of tls/shoal/cert.pem",
            ),
            (
                tar_of(&[(META, &meta), (KEY, &key), (CERT, b"garbage"), (CA, &ca)]),
                "its client bundle",
            ),
            (
                tar_of(&[(META, &meta), ("../../etc/evil", b"x")]),
                "unexpected file \"../../etc/evil\"",
            ),
            (
                tar_of(&[(META, &meta), (META, &meta)]),
                "meta.json is in it twice",
            ),
        ];
        for (archive, says) in cases {
            let (there, mut other) = empty_machine();
            let err = import(&mut other, "copy", &archive, "x.shoalcontext").expect_err(says);
            let text = err.to_string();
            assert!(
                text.starts_with("x.shoalcontext is not a shoal context export: ")
                    && text.contains(says),
                "{says}: {text}"
            );
            assert!(
                !there.path().join("config").exists(),
                "{says}: something was written"
            );
        }
    }
}
