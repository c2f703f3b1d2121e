//! The node's WireGuard key pair. The private key is made on the node and
//! never leaves it: generated on first use, kept in netd's state dir
//! (`wg-private.key`, base64, mode 0600) and loaded again after a restart.
//! Only the public key goes to the managers.
//!
//! Nothing here logs or formats the private key: [`NodeKey`]'s `Debug`
//! shows the public key only.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wireguard_control::Key;

use crate::error::{Error, Result};

/// The key file's name in netd's state dir.
pub const PRIVATE_KEY_FILE: &str = "wg-private.key";

/// The node's key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey {
    private: Key,
    public: Key,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new random key pair (not stored anywhere).
    pub fn generate() -> NodeKey {
        NodeKey::from_private(Key::generate_private())
    }

    fn from_private(private: Key) -> NodeKey {
        let public = private.get_public();
        NodeKey { private, public }
    }

    /// The path of the key file in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(PRIVATE_KEY_FILE)
    }

    /// Loads the node's key from `state_dir`, or makes and stores one when
    /// there is none yet. A key file readable by others is narrowed to 0600;
    /// one that holds no key is an error (netd never replaces a node's key
    /// on its own).
    pub fn load_or_create(state_dir: &Path) -> Result<NodeKey> {
        let path = NodeKey::path(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = Key::from_base64(text.trim()).map_err(|_| {
                    Error::invalid(
                        format!("WireGuard key file {}", path.display()),
                        "it does not hold a base64 key of 32 bytes \
                         (remove it to make a new key; the managers then learn the new public key)",
                    )
                })?;
                let mode = std::fs::metadata(&path)
                    .map_err(Error::io("stat", &path))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the WireGuard key file was open to others (mode {:o}): narrowed to 0600",
                        mode & 0o777
                    );
                    std::fs::set_permissions(&path, Permissions::from_mode(0o600))
                        .map_err(Error::io("chmod", &path))?;
                }
                Ok(NodeKey::from_private(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = NodeKey::generate();
                key.store(state_dir)?;
                tracing::info!(public_key = %key.public_key(), "made the node's WireGuard key");
                Ok(key)
            }
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Makes a new key pair and replaces the stored one atomically (a
    /// crash leaves the old key or the new one, never a torn file).
    pub fn rotate(state_dir: &Path) -> Result<NodeKey> {
        let key = NodeKey::generate();
        key.store(state_dir)?;
        tracing::info!(public_key = %key.public_key(), "rotated the node's WireGuard key");
        Ok(key)
    }

    /// Writes the private key to a temporary file (0600 from its creation)
    /// in `state_dir`, syncs it, and renames it over the key file.
    fn store(&self, state_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(state_dir).map_err(Error::io("create directory", state_dir))?;
        let path = NodeKey::path(state_dir);
        let tmp = state_dir.join(format!(".{PRIVATE_KEY_FILE}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(Error::io("create", &tmp))?;
            // A leftover temporary file may have had other permissions.
            file.set_permissions(Permissions::from_mode(0o600))
                .map_err(Error::io("chmod", &tmp))?;
            file.write_all(format!("{}\n", self.private.to_base64()).as_bytes())
                .map_err(Error::io("write", &tmp))?;
            file.sync_all().map_err(Error::io("sync", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(Error::io("rename into place", &path))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // The rename is durable once the directory is synced.
        File::open(state_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync directory", state_dir))
    }

    /// The public key, base64: what the managers are told.
    pub fn public_key(&self) -> String {
        self.public.to_base64()
    }

    pub(crate) fn public(&self) -> &Key {
        &self.public
    }

    pub(crate) fn private(&self) -> &Key {
        &self.private
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_public_key() {
        let key = NodeKey::generate();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.public_key()));
        assert!(!shown.contains(&key.private().to_base64()));
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(NodeKey::path(dir.path()), "not a key\n").unwrap();
        let err = NodeKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains(PRIVATE_KEY_FILE), "{err}");
        assert_eq!(
            std::fs::read_to_string(NodeKey::path(dir.path())).unwrap(),
            "not a key\n"
        );
    }

    #[test]
    fn a_key_file_open_to_others_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(dir.path()).unwrap();
        let path = NodeKey::path(dir.path());
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        assert_eq!(NodeKey::load_or_create(dir.path()).unwrap(), key);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
