//! A node's identity in the cluster: its private key, the certificate the
//! cluster CA issued for it, and the CA's root certificate; plus the mTLS
//! client and server configurations every shoal channel is built from.
//!
//! Certificates carry who a peer is: CN = node id, OU = role
//! (`swarm-manager`, `swarm-worker`, or a client role such as
//! `shoal-admin`), O = cluster id. Servers authorise by these fields, never
//! by anything a peer says about itself in a request.

pub mod bundle;
mod dir_watch;
pub mod join;
pub mod live;
pub mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// Every manager certificate carries this DNS name, and clients verify it:
/// managers are reached by changing IP addresses, the CA pins who they are.
pub const MANAGER_SERVER_NAME: &str = "shoal-manager";

pub const KEY_FILE: &str = "node.key";
pub const CERT_FILE: &str = "node.crt";
pub const CA_FILE: &str = "ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate {what}: {message}")]
    BadCertificate { what: String, message: String },
    #[error("key generation: {0}")]
    Key(#[from] rcgen::Error),
    #[error("connect to manager at {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// The role a certificate grants, from its OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manager,
    Worker,
    /// Client bundles for remote CLI use (CI): full rights but the CA's
    /// and the managers' own channels.
    Admin,
    /// Deploys: stacks, services, secrets; not nodes, tokens, CA or locks.
    Deployer,
    /// Reads only.
    Viewer,
}

impl Role {
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
            Role::Admin => "shoal-admin",
            Role::Deployer => "shoal-deployer",
            Role::Viewer => "shoal-viewer",
        }
    }

    pub fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "swarm-manager" => Some(Role::Manager),
            "swarm-worker" => Some(Role::Worker),
            "shoal-admin" => Some(Role::Admin),
            "shoal-deployer" => Some(Role::Deployer),
            "shoal-viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub node_id: String,
    pub role: Role,
    pub cluster_id: String,
}

/// A node's key, certificate and the cluster's root CA, all PEM.
#[derive(Clone)]
pub struct NodeIdentity {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
    pub peer: PeerIdentity,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("NodeIdentity")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    pub fn new(key_pem: String, cert_pem: String, ca_pem: String) -> Result<Self, IdentityError> {
        let peer = peer_from_pem(&cert_pem)?;
        Ok(NodeIdentity {
            key_pem,
            cert_pem,
            ca_pem,
            peer,
        })
    }

    /// Whether `dir` holds an identity (the node has joined a cluster).
    pub fn exists(dir: &Path) -> bool {
        dir.join(CERT_FILE).exists() && dir.join(KEY_FILE).exists() && dir.join(CA_FILE).exists()
    }

    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Read { path, source })
        };
        Self::new(read(KEY_FILE)?, read(CERT_FILE)?, read(CA_FILE)?)
    }

    /// Writes the identity; the key is readable by root only. Each file is
    /// written to a temporary name and renamed, so a reader never sees half.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let write_err = |path: PathBuf| move |source| IdentityError::Write { path, source };
        std::fs::create_dir_all(dir).map_err(write_err(dir.to_path_buf()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(write_err(dir.to_path_buf()))?;
        // The certificate goes last: its presence is what `exists` checks.
        for (name, text, mode) in [
            (KEY_FILE, &self.key_pem, 0o600),
            (CA_FILE, &self.ca_pem, 0o644),
            (CERT_FILE, &self.cert_pem, 0o644),
        ] {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)
                .map_err(write_err(tmp.clone()))?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .map_err(write_err(tmp.clone()))?;
            file.sync_all().map_err(write_err(tmp.clone()))?;
            std::fs::rename(&tmp, &path).map_err(write_err(path))?;
        }
        Ok(())
    }

    /// TLS for calling managers: our certificate, and the cluster CA as the
    /// only trust root.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(MANAGER_SERVER_NAME)
    }

    /// TLS for serving: clients must present a certificate of this cluster's
    /// CA, except where the CA's join call allows anonymous TLS (the servers
    /// check the peer per call).
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// [`NodeIdentity::server_tls`] as a rustls config, for servers that
    /// accept connections themselves and switch configs when the identity
    /// is renewed: our chain (leaf, then any intermediate), every root of
    /// `ca.crt` trusted for client certificates, HTTP/2.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, IdentityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bad = |message: String| IdentityError::BadCertificate {
            what: "server TLS".into(),
            message,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_client_cert_verifier(trust::client_verifier(&self.ca_pem)?)
            .with_single_cert(self.chain()?, self.private_key()?)
            .map_err(|e| bad(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// The certificate chain we present: the leaf, then intermediates (the
    /// cross-signed root while the cluster's root CA rotates).
    pub fn chain(&self) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
        trust::certs_der(&self.cert_pem)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.key_pem.as_bytes()).map_err(|e| {
            IdentityError::BadCertificate {
                what: "key".into(),
                message: format!("not PEM: {e}"),
            }
        })?;
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem.contents)))
    }

    /// Whether the key is the one the certificate was issued for: a reader
    /// racing a renewal may see the new key beside the old certificate.
    pub fn key_matches_certificate(&self) -> bool {
        let Ok(key) = KeyPair::from_pem(&self.key_pem) else {
            return false;
        };
        let Ok(chain) = self.chain() else {
            return false;
        };
        x509_parser::parse_x509_certificate(chain[0].as_ref())
            .map(|(_, c)| c.public_key().raw == key.subject_public_key_info().as_slice())
            .unwrap_or(false)
    }
}

/// How long a client gives a manager to accept a connection and finish the
/// TLS handshake before calling it unreachable: 3 s, or `SHOAL_CONNECT_TIMEOUT`
/// seconds where set (a slow link, or hosts under emulation such as the VM lab's).
pub fn connect_timeout() -> std::time::Duration {
    const DEFAULT_SECS: u64 = 3;
    let secs = std::env::var("SHOAL_CONNECT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=600).contains(s))
        .unwrap_or(DEFAULT_SECS);
    std::time::Duration::from_secs(secs)
}

/// An mTLS channel to a manager at `addr` (`host:port`). The connection is
/// made lazily and re-made on failure by tonic.
pub fn connect_lazy(addr: &str, identity: &NodeIdentity) -> Result<Channel, IdentityError> {
    endpoint(addr, Some(identity)).map(|e| e.connect_lazy())
}

/// An mTLS channel to a manager at `addr`, connected now.
pub async fn connect(addr: &str, identity: &NodeIdentity) -> Result<Channel, IdentityError> {
    endpoint(addr, Some(identity))?
        .connect()
        .await
        .map_err(|source| IdentityError::Connect {
            addr: addr.to_string(),
            source,
        })
}

/// An error and its sources on one line, skipping sources that repeat their parent's text
/// (tonic's "transport error" says nothing by itself).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.retain(|p| p != "transport error");
    if parts.is_empty() {
        "transport error".to_string()
    } else {
        parts.join(": ")
    }
}

/// An endpoint to a manager; with an identity, mTLS with the cluster CA.
fn endpoint(addr: &str, identity: Option<&NodeIdentity>) -> Result<Endpoint, IdentityError> {
    let connect_err = |source| IdentityError::Connect {
        addr: addr.to_string(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(connect_err)?
        .connect_timeout(connect_timeout())
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(10))
        .keep_alive_timeout(std::time::Duration::from_secs(5));
    if let Some(identity) = identity {
        endpoint = endpoint
            .tls_config(identity.client_tls())
            .map_err(connect_err)?;
    }
    Ok(endpoint)
}

/// A fresh P-256 key and a CSR for it (the CA decides the subject).
pub fn generate_key_and_csr() -> Result<(String, String), IdentityError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// The identity a PEM certificate carries.
pub fn peer_from_pem(cert_pem: &str) -> Result<PeerIdentity, IdentityError> {
    let bad = |message: String| IdentityError::BadCertificate {
        what: "PEM".into(),
        message,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    peer_from_der(&pem.contents)
}

/// The identity a DER certificate carries (as TLS hands it to servers).
pub fn peer_from_der(der: &[u8]) -> Result<PeerIdentity, IdentityError> {
    let bad = |message: String| IdentityError::BadCertificate {
        what: "subject".into(),
        message,
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("not X.509: {e}")))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let node_id = first(&mut subject.iter_common_name()).ok_or_else(|| bad("no CN".into()))?;
    let ou = first(&mut subject.iter_organizational_unit()).ok_or_else(|| bad("no OU".into()))?;
    let cluster_id = first(&mut subject.iter_organization()).ok_or_else(|| bad("no O".into()))?;
    let role = Role::from_ou(&ou).ok_or_else(|| bad(format!("unknown role {ou:?}")))?;
    Ok(PeerIdentity {
        node_id,
        role,
        cluster_id,
    })
}

/// When a PEM certificate's validity starts and ends.
pub fn validity(
    cert_pem: &str,
) -> Result<(std::time::SystemTime, std::time::SystemTime), IdentityError> {
    let bad = |message: String| IdentityError::BadCertificate {
        what: "validity".into(),
        message,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|e| bad(format!("not X.509: {e}")))?;
    let at = |t: x509_parser::time::ASN1Time| {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Ok((
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// The identity of the caller of a tonic request, from its TLS certificate.
/// `None` for calls without a client certificate (or over the unix socket).
pub fn peer_of<T>(request: &tonic::Request<T>) -> Option<PeerIdentity> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    peer_from_der(leaf.as_ref()).ok()
}

/// Subject fields for a certificate the CA issues.
pub fn subject(peer: &PeerIdentity) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, peer.node_id.as_str());
    dn.push(DnType::OrganizationalUnitName, peer.role.ou());
    dn.push(DnType::OrganizationName, peer.cluster_id.as_str());
    dn
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn error_chains_read_on_one_line_without_repeats() {
        let refused = "Connection refused (os error 111)";
        let e = layers(&["transport error", refused, refused]);
        assert_eq!(error_chain(&e), refused);
        let e = layers(&["connect to m1", "tls handshake", "unknown issuer"]);
        assert_eq!(
            error_chain(&e),
            "connect to m1: tls handshake: unknown issuer"
        );
        assert_eq!(
            error_chain(&layers(&["transport error"])),
            "transport error"
        );
    }
}
