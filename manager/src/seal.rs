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
pub const KEK_FILE: &str = "kek";
pub const WRAPPED_DEK_FILE: &str = "dek.sealed";

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
        self.dir.join(WRAPPED_DEK_FILE).exists()
    }

    /// Makes a new DEK and KEK, stores the DEK wrapped and the KEK beside it,
    /// and returns the DEK's sealer.
    pub fn create(&self) -> Result<Sealer, SealError> {
        let dek = random_key();
        let kek = random_key();
        let wrapped = Sealer::new(&kek).seal(&dek)?;
        write_private(&self.dir.join(KEK_FILE), &kek)?;
        write_private(&self.dir.join(WRAPPED_DEK_FILE), &wrapped)?;
        Ok(Sealer::new(&dek))
    }

    /// Unwraps the DEK with the stored KEK.
    pub fn open(&self) -> Result<Sealer, SealError> {
        let kek_path = self.dir.join(KEK_FILE);
        let kek = read_key(&kek_path)?;
        let wrapped_path = self.dir.join(WRAPPED_DEK_FILE);
        let wrapped = std::fs::read(&wrapped_path).map_err(|source| SealError::Io {
            path: wrapped_path.clone(),
            source,
        })?;
        let dek = Sealer::new(&kek).open(&wrapped)?;
        let dek: [u8; KEY_LEN] = dek.try_into().map_err(|v: Vec<u8>| SealError::BadKey {
            path: wrapped_path,
            len: v.len(),
        })?;
        Ok(Sealer::new(&dek))
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], SealError> {
    let bytes = std::fs::read(path).map_err(|source| SealError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.try_into().map_err(|v: Vec<u8>| SealError::BadKey {
        path: path.to_path_buf(),
        len: v.len(),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
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
        let sealed = files.create().unwrap().seal(b"x").unwrap();
        assert!(files.exist());
        assert_eq!(files.open().unwrap().open(&sealed).unwrap(), b"x");
    }
}
