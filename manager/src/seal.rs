//! Sealing of everything the manager stores: objects, Raft log entries and
//! snapshots are encrypted and authenticated with XChaCha20-Poly1305 under a
//! data key (DEK). The DEK itself is stored only wrapped by a key-encryption
//! key (KEK). Without autolock the KEK sits next to the store (readable by
//! root only, as Swarm does); with autolock it is the user's unlock key and
//! never touches the disk.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// The data key, wrapped, and (without autolock) the key that wraps it, in
/// one file so every change of wrapping is one atomic rename.
pub const KEYS_FILE: &str = "keys.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct KeysOnDisk {
    /// Hex of the stored KEK; absent with autolock.
    kek: Option<String>,
    /// Hex of the sealed data key.
    wrapped_dek: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is too short ({0} bytes)")]
    TooShort(usize),
    #[error("sealed value failed authentication (wrong key or tampered data)")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this manager is locked: run `shoal swarm unlock` and enter the unlock key")]
    Locked,
    #[error("the unlock key is not valid (expected SWMKEY-1-<64 hex digits>)")]
    BadUnlockKey,
    #[error("the unlock key is wrong: it does not open this manager's data key")]
    WrongUnlockKey,
    #[error("{path}: key has {len} bytes, expected {KEY_LEN}")]
    BadKey { path: PathBuf, len: usize },
}

/// An AEAD key that seals and opens values. Each value gets a fresh random
/// nonce stored in front of the ciphertext.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext)
                .map_err(|_| SealError::Seal)?,
        );
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::TooShort(sealed.len()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Open)
    }
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    OsRng.fill_bytes(&mut key);
    key
}

/// A manager's data key, kept in memory so it can be re-wrapped when
/// autolock is switched or its key rotated.
#[derive(Clone)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.0)
    }

    /// Hex, for handing the key to the next process image when the manager
    /// restarts itself in place (through a pipe, never a file).
    pub(crate) fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_hex(text: &str) -> Option<DataKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        bytes.try_into().ok().map(DataKey)
    }
}

/// How the data key is wrapped on disk.
pub enum Wrapping {
    /// By a random KEK stored beside it (no autolock).
    StoredKek,
    /// By the cluster's unlock key, which is never written (autolock).
    UnlockKey(UnlockKey),
}

/// The user's unlock key of an autolocked cluster: `SWMKEY-1-<hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey([u8; KEY_LEN]);

const UNLOCK_PREFIX: &str = "SWMKEY-1-";

impl UnlockKey {
    pub fn generate() -> UnlockKey {
        UnlockKey(random_key())
    }

    pub fn parse(text: &str) -> Result<UnlockKey, SealError> {
        let bad = || SealError::BadUnlockKey;
        let hex_part = text.trim().strip_prefix(UNLOCK_PREFIX).ok_or_else(bad)?;
        let bytes = hex::decode(hex_part).map_err(|_| bad())?;
        bytes.try_into().map(UnlockKey).map_err(|_| bad())
    }
}

impl std::fmt::Display for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{UNLOCK_PREFIX}{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

/// The key files of a manager's state directory.
pub struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    pub fn new(dir: &Path) -> Self {
        KeyFiles {
            dir: dir.to_path_buf(),
        }
    }

    pub fn exist(&self) -> bool {
        self.path().exists()
    }

    fn path(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    fn read(&self) -> Result<KeysOnDisk, SealError> {
        let path = self.path();
        let text = std::fs::read(&path).map_err(|source| SealError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| SealError::Io {
            path,
            source: std::io::Error::other(e),
        })
    }

    /// Whether opening needs the unlock key (no KEK is stored).
    pub fn locked(&self) -> bool {
        self.exist() && self.read().map(|k| k.kek.is_none()).unwrap_or(false)
    }

    /// Makes a new data key and stores it wrapped as `wrapping` says.
    pub fn create(&self, wrapping: &Wrapping) -> Result<DataKey, SealError> {
        let dek = DataKey(random_key());
        self.wrap(&dek, wrapping)?;
        Ok(dek)
    }

    /// Stores `dek` wrapped anew, replacing the previous wrapping in one
    /// atomic rename: a crash leaves the old or the new, never a mix.
    pub fn wrap(&self, dek: &DataKey, wrapping: &Wrapping) -> Result<(), SealError> {
        let (kek, stored) = match wrapping {
            Wrapping::StoredKek => {
                let kek = random_key();
                (kek, Some(hex::encode(kek)))
            }
            Wrapping::UnlockKey(key) => (key.0, None),
        };
        let keys = KeysOnDisk {
            kek: stored,
            wrapped_dek: hex::encode(Sealer::new(&kek).seal(&dek.0)?),
        };
        let json = serde_json::to_vec(&keys).map_err(|e| SealError::Io {
            path: self.path(),
            source: std::io::Error::other(e),
        })?;
        write_private(&self.path(), &json)
    }

    /// Unwraps the data key with the stored KEK, or with `unlock_key` when
    /// the manager is locked.
    pub fn open(&self, unlock_key: Option<&UnlockKey>) -> Result<DataKey, SealError> {
        let keys = self.read()?;
        let path = self.path();
        let bad = |len: usize| SealError::BadKey {
            path: path.clone(),
            len,
        };
        let kek: [u8; KEY_LEN] = match (unlock_key, &keys.kek) {
            (Some(key), _) => key.0,
            (None, Some(hex_kek)) => {
                let bytes = hex::decode(hex_kek).map_err(|_| bad(0))?;
                bytes.try_into().map_err(|v: Vec<u8>| bad(v.len()))?
            }
            (None, None) => return Err(SealError::Locked),
        };
        let wrapped = hex::decode(&keys.wrapped_dek).map_err(|_| bad(0))?;
        let dek = Sealer::new(&kek)
            .open(&wrapped)
            .map_err(|e| match (e, unlock_key) {
                (SealError::Open, Some(_)) => SealError::WrongUnlockKey,
                (e, _) => e,
            })?;
        let dek: [u8; KEY_LEN] = dek.try_into().map_err(|v: Vec<u8>| bad(v.len()))?;
        Ok(DataKey(dek))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_hide_the_plaintext_and_detect_tampering() {
        let sealer = Sealer::new(&random_key());
        let sealed = sealer.seal(b"marker-secret-value").unwrap();
        assert!(!sealed
            .windows(b"marker".len())
            .any(|w| w == b"marker".as_slice()));
        assert_eq!(sealer.open(&sealed).unwrap(), b"marker-secret-value");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open(&tampered), Err(SealError::Open)));
        let other = Sealer::new(&random_key());
        assert!(matches!(other.open(&sealed), Err(SealError::Open)));
    }

    #[test]
    fn key_files_round_trip_the_data_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(dir.path());
        assert!(!files.exist());
        let sealed = files
            .create(&Wrapping::StoredKek)
            .unwrap()
            .sealer()
            .seal(b"x")
            .unwrap();
        assert!(files.exist() && !files.locked());
        assert_eq!(
            files.open(None).unwrap().sealer().open(&sealed).unwrap(),
            b"x"
        );
    }

    #[test]
    fn autolock_needs_the_unlock_key_and_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(dir.path());
        let key = UnlockKey::generate();
        let dek = files.create(&Wrapping::UnlockKey(key.clone())).unwrap();
        let sealed = dek.sealer().seal(b"x").unwrap();
        assert!(files.locked());
        assert!(matches!(files.open(None), Err(SealError::Locked)));
        let wrong = UnlockKey::generate();
        assert!(matches!(
            files.open(Some(&wrong)),
            Err(SealError::WrongUnlockKey)
        ));
        let parsed = UnlockKey::parse(&key.to_string()).unwrap();
        let opened = files.open(Some(&parsed)).unwrap();
        assert_eq!(opened.sealer().open(&sealed).unwrap(), b"x");
        files.wrap(&opened, &Wrapping::StoredKek).unwrap();
        assert!(!files.locked());
        assert_eq!(
            files.open(None).unwrap().sealer().open(&sealed).unwrap(),
            b"x"
        );
        assert!(UnlockKey::parse("SWMKEY-1-zz").is_err());
    }
}
