//! Trust bundles and certificate chains. A node trusts one root CA, or two
//! while the cluster's root rotates (old and new). A certificate issued by
//! the new root travels with the cross-signed intermediate (the new root's
//! subject and key, signed by the old root), so peers that still trust only
//! the old root accept it. Chains are verified with rustls' webpki verifier,
//! the same code that checks every TLS handshake.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use sha2::{Digest, Sha256};

use crate::IdentityError;

fn bad(what: &str, message: impl Into<String>) -> IdentityError {
    IdentityError::BadCertificate {
        what: what.to_string(),
        message: message.into(),
    }
}

/// Every certificate (DER) in a PEM text, in order. Other PEM blocks (keys)
/// are skipped; text without any certificate is an error.
pub fn certs_der(pem: &str) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| bad("PEM", format!("unreadable: {e}")))?;
        if block.label == "CERTIFICATE" {
            certs.push(CertificateDer::from(block.contents));
        }
    }
    if certs.is_empty() {
        return Err(bad("PEM", "no certificate in it"));
    }
    Ok(certs)
}

/// PEM text of DER certificates, one block each.
pub fn to_pem(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for cert in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Concatenates PEM texts (certificate chains or trust bundles).
pub fn join_pem(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        out.push_str(part);
        out.push('\n');
    }
    out
}

/// A digest of the set of certificates in a bundle, whatever their order:
/// SHA-256 over the sorted SHA-256 of each certificate.
pub fn bundle_digest(pem: &str) -> Result<String, IdentityError> {
    let mut digests: Vec<[u8; 32]> = certs_der(pem)?
        .iter()
        .map(|c| Sha256::digest(c.as_ref()).into())
        .collect();
    digests.sort();
    digests.dedup();
    let mut all = Sha256::new();
    for d in &digests {
        all.update(d);
    }
    Ok(hex::encode(all.finalize()))
}

/// Whether two bundles hold the same certificates.
pub fn same_bundle(a: &str, b: &str) -> bool {
    matches!((bundle_digest(a), bundle_digest(b)), (Ok(x), Ok(y)) if x == y)
}

/// A root store of every certificate in `pem`.
pub fn root_store(pem: &str) -> Result<RootCertStore, IdentityError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_der(pem)? {
        roots
            .add(cert)
            .map_err(|e| bad("trust root", e.to_string()))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The verifier a server uses for client certificates of `roots_pem`;
/// clients without a certificate pass the handshake (the CA's join call
/// needs them), and every service checks the peer per call.
pub fn client_verifier(roots_pem: &str) -> Result<Arc<dyn ClientCertVerifier>, IdentityError> {
    let roots = Arc::new(root_store(roots_pem)?);
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad("trust roots", e.to_string()))
}

/// Checks that `chain` (leaf first, then intermediates) chains to one of the
/// roots in `roots_pem`, as a TLS server checks a client certificate.
pub fn verify_chain(chain: &[CertificateDer<'_>], roots_pem: &str) -> Result<(), IdentityError> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| bad("chain", "no certificate"))?;
    client_verifier(roots_pem)?
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| bad("chain", e.to_string()))
}

/// Checks `chain` as a client checks a manager's certificate: chained to
/// `roots_pem` and naming [`crate::MANAGER_SERVER_NAME`].
pub fn verify_server_chain(
    chain: &[CertificateDer<'_>],
    roots_pem: &str,
) -> Result<(), IdentityError> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| bad("chain", "no certificate"))?;
    let roots = Arc::new(root_store(roots_pem)?);
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| bad("trust roots", e.to_string()))?;
    let name = ServerName::try_from(crate::MANAGER_SERVER_NAME)
        .map_err(|e| bad("server name", e.to_string()))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| bad("chain", e.to_string()))
}

/// Whether `root_pem` signed `leaf` itself (no intermediate): tells which
/// root issued a certificate when old and new roots are both trusted.
pub fn issued_by(leaf: &CertificateDer<'_>, root_pem: &str) -> bool {
    verify_chain(std::slice::from_ref(leaf), root_pem).is_ok()
}

/// Whether a certificate is self-issued (a root): its subject is its issuer.
pub fn is_root(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn root(name: &str) -> (CertificateParams, KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (params, key, pem)
    }

    #[test]
    fn bundles_compare_as_sets_and_round_trip_through_pem() {
        let (_, _, a) = root("a");
        let (_, _, b) = root("b");
        assert!(same_bundle(&join_pem(&[&a, &b]), &join_pem(&[&b, &a])));
        assert!(!same_bundle(&a, &join_pem(&[&a, &b])));
        let certs = certs_der(&join_pem(&[&a, &b])).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs_der(&to_pem(&certs)).unwrap(), certs);
        assert!(certs.iter().all(is_root));
        assert!(certs_der("no pem here").is_err());
        assert!(!same_bundle("", ""), "an empty bundle matches nothing");
    }

    #[test]
    fn issued_by_tells_the_signing_root_apart() {
        let (a_params, a_key, a) = root("a");
        let (_, _, b) = root("b");
        let issuer = Issuer::from_params(&a_params, &a_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        assert!(issued_by(leaf.der(), &a));
        assert!(issued_by(leaf.der(), &join_pem(&[&b, &a])));
        assert!(!issued_by(leaf.der(), &b));
        assert!(!is_root(leaf.der()));
    }
}
