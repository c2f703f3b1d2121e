//! Root CA rotation, as Docker Swarm does it (`swarm ca --rotate`):
//!
//! 1. A new root is made, and a cross-signed certificate: the new root's
//!    subject and key signed by the current root. Both go in the cluster
//!    object (`root_rotation`, the key sealed like the current one).
//! 2. While rotating, the CA issues from the new root and hands out the
//!    chain [leaf, cross-signed]; the trust bundle is old root + new root. A
//!    peer that still trusts only the old root accepts the new certificates
//!    through the cross-signed one, so nothing breaks at any moment.
//! 3. The dispatcher tells every agent the trust it should have (each
//!    session message); an agent whose certificate is not from the new root
//!    renews at once. Each session open records which root issued the
//!    node's certificate, read from the verified TLS chain.
//! 4. When every node's certificate is from the new root, the leader's
//!    [`Finisher`] makes it the root: the old root leaves the trust bundle,
//!    join tokens are made again (they pin the root's digest), and client
//!    bundles of the old root are revoked (they would stop working anyway).
//!    Agents see the new trust and renew once more, which drops the
//!    cross-signed certificate and the old root from their files.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, Issuer, KeyPair};
use shoal_identity::join::JoinToken;
use shoal_identity::trust;
use shoal_identity::PeerIdentity;
use shoal_proto::control::v1::RootCaStatus;
use shoal_proto::dispatcher::v1::NodeTrust;
use shoal_proto::types::v1::{Cluster, JoinTokens, Node, RootRotation};

use super::{CaError, RootCa};
use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

/// The cluster's CA as the store has it: the current root and, while
/// rotating, the root that replaces it.
#[derive(Clone)]
pub struct CaState {
    pub current: RootCa,
    pub rotation: Option<Rotation>,
}

#[derive(Clone)]
pub struct Rotation {
    pub new: RootCa,
    /// The new root's subject and key, signed by the current root.
    pub cross_signed_pem: String,
}

fn not_initialised() -> StoreError {
    StoreError::Unavailable("the cluster is not initialised".into())
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl CaState {
    pub fn of(state: &State) -> Result<CaState, StoreError> {
        Self::of_cluster(state.cluster().ok_or_else(not_initialised)?)
    }

    pub fn of_cluster(cluster: &Cluster) -> Result<CaState, StoreError> {
        Ok(CaState {
            current: RootCa {
                cert_pem: cluster.root_ca_pem.clone(),
                key_pem: cluster.root_ca_key_pem.clone(),
            },
            rotation: cluster.root_rotation.as_ref().map(|r| Rotation {
                new: RootCa {
                    cert_pem: r.ca_pem.clone(),
                    key_pem: r.ca_key_pem.clone(),
                },
                cross_signed_pem: r.cross_signed_pem.clone(),
            }),
        })
    }

    /// The root that issues certificates now.
    pub fn issuer(&self) -> &RootCa {
        self.rotation.as_ref().map_or(&self.current, |r| &r.new)
    }

    /// The roots every node must trust now.
    pub fn trust_pem(&self) -> String {
        match &self.rotation {
            Some(r) => trust::join_pem(&[&self.current.cert_pem, &r.new.cert_pem]),
            None => self.current.cert_pem.clone(),
        }
    }

    pub fn node_trust(&self) -> NodeTrust {
        NodeTrust {
            trust_pem: self.trust_pem(),
            issuer_pem: self.issuer().cert_pem.clone(),
        }
    }

    /// A certificate from the issuing root, with the cross-signed root after
    /// it while rotating (PEM chain).
    pub fn issue(
        &self,
        csr_pem: &str,
        peer: &PeerIdentity,
        sans: &[String],
        validity: Duration,
    ) -> Result<String, CaError> {
        let leaf = self.issuer().issue(csr_pem, peer, sans, validity)?;
        Ok(match &self.rotation {
            Some(r) => trust::join_pem(&[&leaf, &r.cross_signed_pem]),
            None => leaf,
        })
    }

    /// The digest of the root that issued `leaf`, among those trusted now.
    pub fn root_digest_of(&self, leaf: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
        std::iter::once(&self.current)
            .chain(self.rotation.as_ref().map(|r| &r.new))
            .find(|root| trust::issued_by(leaf, &root.cert_pem))
            .and_then(|root| root.digest().ok())
    }
}

/// A new root for the cluster and its certificate cross-signed by `old`.
pub fn new_root(old: &RootCa, cluster_id: &str) -> Result<Rotation, CaError> {
    let params = RootCa::params(cluster_id)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let cross_signed_pem = cross_sign(&params, &key, old)?;
    Ok(Rotation {
        new: RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        cross_signed_pem,
    })
}

/// The root of `params` and `key` signed by `old`: same subject, same key,
/// so a chain through it ends at `old`.
fn cross_sign(params: &CertificateParams, key: &KeyPair, old: &RootCa) -> Result<String, CaError> {
    let old_key = KeyPair::from_pem(&old.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&old.cert_pem, &old_key)?;
    Ok(params.signed_by(key, &issuer)?.pem())
}

/// Starts a rotation (or starts over, replacing a new root not yet in use
/// everywhere with another one).
pub fn start(state: &State, tx: &mut Tx) -> Result<(), StoreError> {
    let mut cluster = state.cluster().cloned().ok_or_else(not_initialised)?;
    let cluster_id = cluster
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let ca = CaState::of_cluster(&cluster)?;
    let rotation = new_root(&ca.current, &cluster_id).map_err(internal)?;
    cluster.root_rotation = Some(RootRotation {
        ca_pem: rotation.new.cert_pem,
        ca_key_pem: rotation.new.key_pem,
        cross_signed_pem: rotation.cross_signed_pem,
        started_at: tx.now(),
    });
    tx.put(cluster);
    Ok(())
}

fn node_name(node: &Node) -> String {
    match node.description.as_ref().map(|d| d.hostname.as_str()) {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => node.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
    }
}

/// Where the rotation stands (or, with none running, whether every node
/// holds and trusts only the current root).
pub fn status(state: &State) -> Result<RootCaStatus, StoreError> {
    let ca = CaState::of(state)?;
    let target = ca.issuer();
    let target_digest = target.digest().map_err(internal)?;
    let trust_digest = trust::bundle_digest(&target.cert_pem).map_err(internal)?;
    let mut status = RootCaStatus {
        root_ca_pem: ca.current.cert_pem.clone(),
        new_root_ca_pem: ca
            .rotation
            .as_ref()
            .map(|r| r.new.cert_pem.clone())
            .unwrap_or_default(),
        rotating: ca.rotation.is_some(),
        nodes: state.nodes.len() as u32,
        ..Default::default()
    };
    let mut nodes: Vec<&Node> = state.nodes.values().collect();
    nodes.sort_by_key(|n| node_name(n));
    for node in nodes {
        let renewed = node.cert_root_digest == target_digest;
        let trusting = node
            .description
            .as_ref()
            .is_some_and(|d| d.trust_digest == trust_digest);
        status.nodes_renewed += u32::from(renewed);
        status.nodes_trusting += u32::from(trusting);
        // While rotating, nodes wait on their certificate; afterwards on
        // their trust.
        let waiting = if ca.rotation.is_some() {
            !renewed
        } else {
            !renewed || !trusting
        };
        if waiting {
            status.pending.push(node_name(node));
        }
    }
    if ca.rotation.is_some() {
        if let Some(cluster) = state.cluster() {
            status.stale_bundles = cluster
                .client_bundles
                .iter()
                .filter(|b| !b.revoked && b.root_digest != target_digest)
                .map(|b| b.name.clone())
                .collect();
        }
    }
    Ok(status)
}

/// Ends the rotation if every node holds a certificate of the new root.
/// Returns whether it did.
pub fn finish_if_done(state: &State, tx: &mut Tx) -> Result<bool, StoreError> {
    let Some(mut cluster) = state.cluster().cloned() else {
        return Ok(false);
    };
    let Some(rotation) = cluster.root_rotation.take() else {
        return Ok(false);
    };
    let new = RootCa {
        cert_pem: rotation.ca_pem,
        key_pem: rotation.ca_key_pem,
    };
    let digest = new.digest().map_err(internal)?;
    if state.nodes.values().any(|n| n.cert_root_digest != digest) {
        return Ok(false);
    }
    cluster.root_ca_pem = new.cert_pem;
    cluster.root_ca_key_pem = new.key_pem;
    // Tokens pin the root's digest: the old ones name a root that is gone.
    cluster.join_tokens = Some(JoinTokens {
        worker: JoinToken::generate(&digest).to_string(),
        manager: JoinToken::generate(&digest).to_string(),
    });
    for bundle in &mut cluster.client_bundles {
        if bundle.root_digest != digest {
            bundle.revoked = true;
        }
    }
    tx.put(cluster);
    Ok(true)
}

/// The leader's component that completes rotations.
pub struct Finisher {
    store: Arc<Store>,
}

impl crate::leader::Component for Finisher {
    const NAME: &'static str = "root CA rotation";

    fn build(env: &crate::leader::LeaderEnv) -> Self {
        Finisher {
            store: env.store.clone(),
        }
    }

    async fn run(self) -> Result<(), crate::error::ManagerError> {
        let relevant = |c: &Change| matches!(c.kind(), Kind::Node | Kind::Cluster);
        let settle = Duration::from_millis(50);
        watch::run_passes(&self.store, Self::NAME, relevant, settle, || self.pass()).await;
        Ok(())
    }
}

impl Finisher {
    async fn pass(&self) -> Result<(), StoreError> {
        let rotating = self
            .store
            .view(|s| s.cluster().is_some_and(|c| c.root_rotation.is_some()));
        if !rotating {
            return Ok(());
        }
        if self.store.update(finish_if_done).await? {
            tracing::info!(
                "root CA rotation complete: every node holds a certificate of the new root; the old root is no longer trusted"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_identity::trust::{certs_der, join_pem, verify_chain, verify_server_chain};
    use shoal_identity::Role;

    fn peer(role: Role) -> PeerIdentity {
        PeerIdentity {
            node_id: "node1".into(),
            role,
            cluster_id: "cluster1".into(),
        }
    }

    fn issue(ca: &CaState, role: Role) -> String {
        let (_, csr) = shoal_identity::generate_key_and_csr().unwrap();
        ca.issue(&csr, &peer(role), &[], Duration::from_secs(3600))
            .unwrap()
    }

    fn rotating() -> (RootCa, CaState) {
        let old = RootCa::generate("cluster1").unwrap();
        let rotation = new_root(&old, "cluster1").unwrap();
        let ca = CaState {
            current: old.clone(),
            rotation: Some(rotation),
        };
        (old, ca)
    }

    #[test]
    fn a_new_root_leaf_verifies_against_the_old_root_only_through_the_cross_signed_root() {
        let (old, ca) = rotating();
        let new = ca.rotation.as_ref().unwrap().new.clone();
        let chain = certs_der(&issue(&ca, Role::Manager)).unwrap();
        assert_eq!(chain.len(), 2, "leaf and cross-signed root");
        // A peer trusting only the old root: accepted as client and server.
        verify_chain(&chain, &old.cert_pem).expect("client chain to the old root");
        verify_server_chain(&chain, &old.cert_pem).expect("server chain to the old root");
        // Without the intermediate, the old root alone refuses it.
        assert!(verify_chain(&chain[..1], &old.cert_pem).is_err());
        // A peer trusting only the new root accepts it with or without the
        // intermediate (after the rotation, until the next renewal).
        verify_chain(&chain, &new.cert_pem).expect("chain to the new root");
        verify_chain(&chain[..1], &new.cert_pem).expect("leaf to the new root");
        // And the trust bundle of the rotation accepts both generations.
        let old_leaf = certs_der(&issue(
            &CaState {
                current: old.clone(),
                rotation: None,
            },
            Role::Worker,
        ))
        .unwrap();
        verify_chain(&old_leaf, &ca.trust_pem()).expect("old leaf under the bundle");
        verify_chain(&chain, &ca.trust_pem()).expect("new chain under the bundle");
        // Once the old root is dropped, its certificates are refused.
        assert!(verify_chain(&old_leaf, &new.cert_pem).is_err());
    }

    #[test]
    fn the_issuing_root_of_a_leaf_is_told_apart() {
        let (old, ca) = rotating();
        let new = &ca.rotation.as_ref().unwrap().new;
        let new_leaf = certs_der(&issue(&ca, Role::Worker)).unwrap();
        assert_eq!(ca.root_digest_of(&new_leaf[0]), new.digest().ok());
        let before = CaState {
            current: old.clone(),
            rotation: None,
        };
        let old_leaf = certs_der(&issue(&before, Role::Worker)).unwrap();
        assert_eq!(ca.root_digest_of(&old_leaf[0]), old.digest().ok());
        let stranger = RootCa::generate("other").unwrap();
        let foreign = certs_der(
            &CaState {
                current: stranger,
                rotation: None,
            }
            .issue(
                &shoal_identity::generate_key_and_csr().unwrap().1,
                &peer(Role::Worker),
                &[],
                Duration::from_secs(3600),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(ca.root_digest_of(&foreign[0]), None);
    }

    #[test]
    fn the_trust_bundle_holds_both_roots_only_while_rotating() {
        let (old, ca) = rotating();
        let new = &ca.rotation.as_ref().unwrap().new;
        assert!(trust::same_bundle(
            &ca.trust_pem(),
            &join_pem(&[&new.cert_pem, &old.cert_pem])
        ));
        assert_eq!(ca.node_trust().issuer_pem, new.cert_pem);
        let done = CaState {
            current: new.clone(),
            rotation: None,
        };
        assert!(trust::same_bundle(&done.trust_pem(), &new.cert_pem));
        assert_eq!(certs_der(&issue(&done, Role::Worker)).unwrap().len(), 1);
    }
}
