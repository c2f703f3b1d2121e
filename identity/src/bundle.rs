//! Client certificate bundles for remote CLI use (CI jobs): one file holding
//! the client's private key, its certificate, and the cluster's root CA, as
//! PEM blocks in that order. Written readable by its owner only.

use std::path::Path;

use crate::{IdentityError, NodeIdentity};

/// Writes `identity` as a bundle file (mode 0600, replaced atomically).
pub fn write(path: &Path, identity: &NodeIdentity) -> Result<(), IdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| IdentityError::Write {
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
        .map_err(err)?;
    for block in [&identity.key_pem, &identity.cert_pem, &identity.ca_pem] {
        file.write_all(block.trim_end().as_bytes()).map_err(err)?;
        file.write_all(b"\n").map_err(err)?;
    }
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads a bundle file written by [`write`].
pub fn read(path: &Path) -> Result<NodeIdentity, IdentityError> {
    let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &format!("bundle {}", path.display()))
}

/// A bundle's text (key, certificate, CA as PEM blocks); `what` names it in
/// errors.
pub fn parse(text: &str, what: &str) -> Result<NodeIdentity, IdentityError> {
    let bad = |message: &str| IdentityError::BadCertificate {
        what: what.to_string(),
        message: message.to_string(),
    };
    let mut key = None;
    let mut certs = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), format!("{line}\n")));
            continue;
        }
        if let Some((label, mut block)) = current.take() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                if label.ends_with("PRIVATE KEY") {
                    key = Some(block);
                } else if label == "CERTIFICATE" {
                    certs.push(block);
                }
            } else {
                current = Some((label, block));
            }
        }
    }
    let key = key.ok_or_else(|| bad("no private key in it"))?;
    // The client certificate comes first; then intermediates (a bundle made
    // while the root CA rotates carries the cross-signed root) and the CA
    // roots, told apart by being self-issued.
    let (leaf, rest) = certs
        .split_first()
        .ok_or_else(|| bad("expected the client certificate and the CA certificate"))?;
    let (mut chain, mut roots) = (vec![leaf.as_str()], Vec::new());
    for pem in rest {
        let der = crate::trust::certs_der(pem)?;
        if der.iter().all(crate::trust::is_root) {
            roots.push(pem.as_str());
        } else {
            chain.push(pem.as_str());
        }
    }
    if roots.is_empty() {
        return Err(bad(
            "expected the client certificate and the CA certificate",
        ));
    }
    NodeIdentity::new(
        key,
        crate::trust::join_pem(&chain),
        crate::trust::join_pem(&roots),
    )
}
