//! The cluster's certificate authority: a root CA (ECDSA P-256) made at
//! `swarm init`, and node certificates issued from it. The subject carries
//! the node's identity (CN = node id, OU = role, O = cluster id); manager
//! certificates also carry the name clients verify managers by.

pub mod joiner;
pub mod rotation;
mod service;

pub use rotation::{CaState, Finisher};
pub use service::{CaService, DEFAULT_CERT_EXPIRY};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use shoal_identity::{PeerIdentity, Role, MANAGER_SERVER_NAME};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the CSR is invalid: {0}")]
    BadCsr(rcgen::Error),
    #[error("root CA digest: {0}")]
    Digest(String),
}

/// The root CA's certificate and key (PEM).
#[derive(Clone)]
pub struct RootCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl RootCa {
    pub fn generate(cluster_id: &str) -> Result<RootCa, CaError> {
        let key = KeyPair::generate()?;
        let cert = Self::params(cluster_id)?.self_signed(&key)?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A root's fields. Each root gets a subject of its own (a random
    /// suffix): chains are built by subject, and during a rotation the old
    /// and the new root must not be mistaken for each other.
    fn params(cluster_id: &str) -> Result<CertificateParams, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let suffix: u32 = rand::random();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("shoal-root-ca {suffix:08x}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365 * 20);
        Ok(params)
    }

    /// SHA-256 of the root certificate (DER), hex: what join tokens pin.
    pub fn digest(&self) -> Result<String, CaError> {
        shoal_identity::join::ca_digest(&self.cert_pem).map_err(|e| CaError::Digest(e.to_string()))
    }

    /// Issues a certificate for `peer` over the public key in `csr_pem`.
    pub fn issue(
        &self,
        csr_pem: &str,
        peer: &PeerIdentity,
        sans: &[String],
        validity: std::time::Duration,
    ) -> Result<String, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(CaError::BadCsr)?;
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &ca_key)?;
        // Only the public key is taken from the CSR: the CA decides the rest.
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = shoal_identity::subject(peer);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if peer.role == Role::Manager {
            params
                .subject_alt_names
                .push(SanType::DnsName(MANAGER_SERVER_NAME.try_into()?));
            for san in sans {
                match san.parse::<std::net::IpAddr>() {
                    Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                    Err(_) => params
                        .subject_alt_names
                        .push(SanType::DnsName(san.as_str().try_into()?)),
                }
            }
        }
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(validity.as_secs() as i64);
        let cert = params.signed_by(&csr.public_key, &issuer)?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_the_node_identity() {
        let ca = RootCa::generate("cluster1").unwrap();
        let (key, csr) = shoal_identity::generate_key_and_csr().unwrap();
        let peer = PeerIdentity {
            node_id: "node1".into(),
            role: Role::Manager,
            cluster_id: "cluster1".into(),
        };
        let cert = ca
            .issue(
                &csr,
                &peer,
                &["10.0.0.1".into()],
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        let identity = shoal_identity::NodeIdentity::new(key, cert, ca.cert_pem.clone()).unwrap();
        assert_eq!(identity.peer, peer);
        assert_eq!(ca.digest().unwrap().len(), 64);
    }
}
