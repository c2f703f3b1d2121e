//! Joining a cluster with a token: `SHLTKN-1-<digest>-<secret>`. The digest
//! (SHA-256 of the root CA certificate, DER) pins the cluster CA: the joiner
//! fetches the root certificate over TLS it cannot verify yet, checks the
//! digest, and only then talks to the CA over TLS verified against that
//! root and sends its CSR with the token. The secret decides the role.

use std::sync::Arc;

use rand::Rng;
use sha2::{Digest, Sha256};
use shoal_proto::ca::v1::certificate_authority_client::CertificateAuthorityClient;
use shoal_proto::ca::v1::{GetRootCertificateRequest, IssueNodeCertificateRequest};
use tokio_rustls::rustls::{self, client::danger, pki_types};
use tonic::transport::Endpoint;

use crate::{endpoint, IdentityError, NodeIdentity};

const PREFIX: &str = "SHLTKN";
const VERSION: &str = "1";
const SECRET_LEN: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("malformed join token: {0}")]
    MalformedToken(String),
    #[error(
        "the manager's CA does not match the token (token pins {expected}, manager has {actual}): wrong manager, a token of another cluster, or a token from before a root CA rotation (get the current one with `shoal swarm join-token`)"
    )]
    CaMismatch { expected: String, actual: String },
    #[error("cannot reach the manager at {addr}: {message}")]
    Unreachable { addr: String, message: String },
    #[error("the manager refused the join: {0}")]
    Refused(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_digest: String,
    pub secret: String,
}

impl JoinToken {
    pub fn parse(token: &str) -> Result<JoinToken, JoinError> {
        let bad = |why: &str| Err(JoinError::MalformedToken(why.to_string()));
        let parts: Vec<&str> = token.trim().split('-').collect();
        let [prefix, version, digest, secret] = parts.as_slice() else {
            return bad("expected SHLTKN-1-<ca digest>-<secret>");
        };
        if *prefix != PREFIX {
            return bad("it does not start with SHLTKN");
        }
        if *version != VERSION {
            return bad(&format!("unsupported token version {version}"));
        }
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("the CA digest is not 64 hex digits");
        }
        if secret.len() != SECRET_LEN || !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            return bad(&format!(
                "the secret is not {SECRET_LEN} letters and digits"
            ));
        }
        Ok(JoinToken {
            ca_digest: digest.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// A fresh token for the CA with this digest.
    pub fn generate(ca_digest: &str) -> JoinToken {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let secret = (0..SECRET_LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        JoinToken {
            ca_digest: ca_digest.to_string(),
            secret,
        }
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}-{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

/// SHA-256 (hex) of a PEM certificate's DER: what tokens pin.
pub fn ca_digest(ca_pem: &str) -> Result<String, IdentityError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).map_err(|e| {
        IdentityError::BadCertificate {
            what: "CA".into(),
            message: format!("not PEM: {e}"),
        }
    })?;
    Ok(hex::encode(Sha256::digest(&pem.contents)))
}

/// Accepts any server certificate: used only to fetch the root CA, whose
/// digest is checked against the token before anything is trusted or sent.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &pki_types::CertificateDer<'_>,
        _intermediates: &[pki_types::CertificateDer<'_>],
        _server_name: &pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: pki_types::UnixTime,
    ) -> Result<danger::ServerCertVerified, rustls::Error> {
        Ok(danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The root CA certificate a manager presents, not yet trusted.
async fn fetch_root_unverified(addr: &str) -> Result<String, JoinError> {
    let unreachable = |message: String| JoinError::Unreachable {
        addr: addr.to_string(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| unreachable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_string();
    let channel = Endpoint::try_from("http://shoal-manager")
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(crate::connect_timeout())
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                let name = pki_types::ServerName::try_from("shoal-manager")
                    .map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| unreachable(crate::error_chain(&e)))?;
    let reply = CertificateAuthorityClient::new(channel)
        .get_root_certificate(GetRootCertificateRequest {})
        .await
        .map_err(|s| unreachable(s.message().to_string()))?;
    Ok(reply.into_inner().root_ca_pem)
}

/// What a joining node asks for itself beyond its name and address
/// (`swarm join --availability`, `--data-path-addr`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinSettings {
    /// A `NodeAvailability` (active when unset).
    pub availability: Option<i32>,
    /// The IP other nodes send this node's overlay traffic to (empty: the
    /// advertised address).
    pub data_path_addr: String,
}

/// Joins the cluster of the manager at `addr` with `token`: returns the
/// node's new identity (not yet saved).
pub async fn join(
    addr: &str,
    token: &str,
    hostname: &str,
    advertise_addr: &str,
    settings: &JoinSettings,
) -> Result<NodeIdentity, JoinError> {
    let parsed = JoinToken::parse(token)?;
    let root = fetch_root_unverified(addr).await?;
    let actual = ca_digest(&root)?;
    if actual != parsed.ca_digest {
        return Err(JoinError::CaMismatch {
            expected: parsed.ca_digest,
            actual,
        });
    }
    let (key_pem, csr_pem) = crate::generate_key_and_csr()?;
    // From here on the manager's certificate must chain to the pinned root.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&root))
        .domain_name(crate::MANAGER_SERVER_NAME);
    let channel = endpoint(addr, None)
        .and_then(|e| {
            e.tls_config(tls).map_err(|source| IdentityError::Connect {
                addr: addr.to_string(),
                source,
            })
        })?
        .connect()
        .await
        .map_err(|e| JoinError::Unreachable {
            addr: addr.to_string(),
            message: crate::error_chain(&e),
        })?;
    let reply = CertificateAuthorityClient::new(channel)
        .issue_node_certificate(IssueNodeCertificateRequest {
            token: token.trim().to_string(),
            csr_pem,
            hostname: hostname.to_string(),
            advertise_addr: advertise_addr.to_string(),
            availability: settings.availability,
            data_path_addr: settings.data_path_addr.clone(),
        })
        .await
        .map_err(|s| JoinError::Refused(s.message().to_string()))?
        .into_inner();
    Ok(NodeIdentity::new(
        key_pem,
        reply.cert_pem,
        reply.root_ca_pem,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_say_why() {
        let token = JoinToken::generate(&"ab".repeat(32));
        assert_eq!(JoinToken::parse(&token.to_string()).unwrap(), token);
        for (bad, why) in [
            ("", "expected"),
            ("XXXTKN-1-aa-bb", "SHLTKN"),
            (
                &format!("NOPE-1-{}-{}", "a".repeat(64), "b".repeat(25)),
                "SHLTKN",
            ),
            (
                &format!("SHLTKN-2-{}-{}", "a".repeat(64), "b".repeat(25)),
                "version",
            ),
            (
                &format!("SHLTKN-1-{}-{}", "z".repeat(64), "b".repeat(25)),
                "digest",
            ),
            (
                &format!("SHLTKN-1-{}-{}", "a".repeat(64), "b".repeat(3)),
                "secret",
            ),
        ] {
            let err = JoinToken::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
