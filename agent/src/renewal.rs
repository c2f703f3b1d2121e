//! Certificate renewal. The agent renews the node's certificate, with a
//! fresh key, and writes the new identity where netd and the manager on
//! this node read it (they reload it; nothing restarts):
//!
//! - at a random point between 50% and 80% of its lifetime, so a cluster's
//!   nodes do not all renew at once;
//! - at once (after a jitter of a few seconds) when the session says the
//!   cluster trusts other roots than this node, or issues from a root that
//!   did not issue this node's certificate: a root CA rotation is under way
//!   or has just completed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use shoal_identity::live::LiveIdentity;
use shoal_identity::{trust, NodeIdentity};
use shoal_proto::ca::v1::certificate_authority_client::CertificateAuthorityClient;
use shoal_proto::ca::v1::RenewNodeCertificateRequest;
use shoal_proto::dispatcher::v1::NodeTrust;
use tokio::sync::watch;

/// Renewals a rotation asks for are spread over this much time.
const ROTATION_JITTER: Duration = Duration::from_secs(3);
/// At least this between two renewals a rotation asked for: a renewal
/// served by a manager that lags behind the one the session is with does
/// not make the node renew in a tight loop.
const ROTATION_SPACING: Duration = Duration::from_secs(5);
/// After a failed renewal.
const RETRY: Duration = Duration::from_secs(10);

/// What the session learnt from the managers: the manager it is with (the
/// one to renew through) and the trust the cluster wants nodes to have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    pub manager: Option<String>,
    pub trust: Option<NodeTrust>,
}

/// When to renew a certificate valid from `not_before` to `not_after`:
/// at `fraction` (0.5..0.8) of its lifetime.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime.mul_f64(fraction.clamp(0.5, 0.8))
}

/// Why the node must renew now to match the cluster's trust, if it must.
pub fn rotation_reason(
    identity: &NodeIdentity,
    wanted: Option<&NodeTrust>,
) -> Option<&'static str> {
    let wanted = wanted?;
    if wanted.trust_pem.is_empty() || wanted.issuer_pem.is_empty() {
        return None;
    }
    if !trust::same_bundle(&identity.ca_pem, &wanted.trust_pem) {
        return Some("the cluster trusts other root CAs than this node");
    }
    let issued_by_current = identity
        .chain()
        .ok()
        .and_then(|chain| chain.into_iter().next())
        .is_some_and(|leaf| trust::issued_by(&leaf, &wanted.issuer_pem));
    if !issued_by_current {
        return Some("the node's certificate is not from the root CA that issues now");
    }
    None
}

/// Renews the node certificate in `node_dir` once, through the manager at
/// `manager`, and saves the renewed identity there (every reader of the
/// directory picks it up: see [`LiveIdentity`]).
pub async fn renew(node_dir: &std::path::Path, manager: &str) -> anyhow::Result<NodeIdentity> {
    let current = NodeIdentity::load(node_dir)?;
    let (key_pem, csr_pem) = shoal_identity::generate_key_and_csr()?;
    let channel = shoal_identity::connect(manager, &current).await?;
    let reply = CertificateAuthorityClient::new(channel)
        .renew_node_certificate(RenewNodeCertificateRequest { csr_pem })
        .await
        .map_err(|s| anyhow::anyhow!("renew the node certificate: {}", s.message()))?
        .into_inner();
    // The reply's trust bundle becomes ca.crt: it came over mTLS verified
    // against the roots this node trusts now.
    let renewed = NodeIdentity::new(key_pem, reply.cert_pem, reply.root_ca_pem)?;
    // The role may change (promotion, demotion); the node and cluster not.
    if renewed.peer.node_id != current.peer.node_id
        || renewed.peer.cluster_id != current.peer.cluster_id
    {
        anyhow::bail!("the renewed certificate names another node or cluster");
    }
    renewed.save(node_dir)?;
    Ok(renewed)
}

/// Renews for ever: at a random 50-80% of the lifetime, or soon when the
/// cluster's trust (from the session) asks for it.
pub async fn run(
    identity: Arc<LiveIdentity>,
    node_dir: std::path::PathBuf,
    default_manager: String,
    wanted: watch::Receiver<Wanted>,
) {
    run_with_clock(identity, node_dir, default_manager, wanted, SystemTime::now).await
}

/// [`run`] with the wall clock it plans renewals by given (tests move it
/// ahead rather than wait for certificates of at least an hour to age).
pub async fn run_with_clock(
    identity: Arc<LiveIdentity>,
    node_dir: std::path::PathBuf,
    default_manager: String,
    mut wanted: watch::Receiver<Wanted>,
    now: impl Fn() -> SystemTime,
) {
    let mut fraction_for: Option<(Arc<NodeIdentity>, f64)> = None;
    let mut last_rotation_renewal: Option<Instant> = None;
    loop {
        let current = identity.current();
        let want = wanted.borrow_and_update().clone();
        let reason = rotation_reason(&current, want.trust.as_ref());
        let wait = match reason {
            Some(_) => {
                let jitter = rand::thread_rng().gen_range(Duration::ZERO..ROTATION_JITTER);
                let spacing = last_rotation_renewal
                    .map(|at| ROTATION_SPACING.saturating_sub(at.elapsed()))
                    .unwrap_or_default();
                jitter.max(spacing)
            }
            None => {
                let fraction = match &fraction_for {
                    Some((made_for, f)) if Arc::ptr_eq(made_for, &current) => *f,
                    _ => {
                        let f = rand::thread_rng().gen_range(0.5..0.8);
                        fraction_for = Some((current.clone(), f));
                        f
                    }
                };
                match shoal_identity::validity(&current.cert_pem) {
                    Ok((from, to)) => renewal_time(from, to, fraction)
                        .duration_since(now())
                        .unwrap_or_default(),
                    Err(_) => RETRY,
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // What the cluster wants changed (or the session moved): decide again.
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        if reason.is_some() {
            // Still wanted after the jitter?
            let want = wanted.borrow().clone();
            if rotation_reason(&identity.current(), want.trust.as_ref()).is_none() {
                continue;
            }
            last_rotation_renewal = Some(Instant::now());
        }
        if !NodeIdentity::exists(&node_dir) {
            // The node left the swarm; a later join writes a new identity.
            tokio::time::sleep(RETRY).await;
            continue;
        }
        let manager = want
            .manager
            .clone()
            .unwrap_or_else(|| default_manager.clone());
        match renew(&node_dir, &manager).await {
            Ok(renewed) => {
                // Now, not at the next poll: the session reopens with it.
                if let Err(e) = identity.reload() {
                    tracing::warn!("reload the renewed identity: {e}");
                }
                tracing::info!(
                    "node certificate renewed for {} ({})",
                    renewed.peer.node_id,
                    reason.unwrap_or("due")
                )
            }
            Err(e) => {
                tracing::warn!(
                    "certificate renewal through {manager} failed, retrying in {RETRY:?}: {e}"
                );
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_lifetime() {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let to = from + Duration::from_secs(100);
        let at = |f| {
            renewal_time(from, to, f)
                .duration_since(from)
                .unwrap()
                .as_secs()
        };
        assert_eq!(at(0.5), 50);
        assert_eq!(at(0.8), 80);
        assert_eq!(at(0.1), 50, "never earlier than half");
        assert_eq!(at(0.99), 80, "never later than four fifths");
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use shoal_identity::{PeerIdentity, Role};

    struct Root {
        params: CertificateParams,
        key: KeyPair,
        pem: String,
    }

    fn root(name: &str) -> Root {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Root { params, key, pem }
    }

    fn identity(issuer: &Root, ca_pem: String) -> NodeIdentity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = shoal_identity::subject(&PeerIdentity {
            node_id: "n1".into(),
            role: Role::Worker,
            cluster_id: "c1".into(),
        });
        let cert = params
            .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
            .unwrap();
        NodeIdentity::new(key.serialize_pem(), cert.pem(), ca_pem).unwrap()
    }

    fn wanted(trust: &[&Root], issuer: &Root) -> NodeTrust {
        let pems: Vec<&str> = trust.iter().map(|r| r.pem.as_str()).collect();
        NodeTrust {
            trust_pem: trust::join_pem(&pems),
            issuer_pem: issuer.pem.clone(),
        }
    }

    #[test]
    fn a_rotation_makes_the_node_renew_until_it_matches_the_cluster() {
        let (old, new) = (root("old"), root("new"));
        let before = identity(&old, old.pem.clone());
        assert_eq!(
            rotation_reason(&before, None),
            None,
            "no word from a manager yet"
        );
        assert_eq!(rotation_reason(&before, Some(&wanted(&[&old], &old))), None);
        // The rotation starts: trust both, issue from the new root.
        let rotating = wanted(&[&old, &new], &new);
        assert!(rotation_reason(&before, Some(&rotating))
            .unwrap()
            .contains("trusts other root CAs"));
        let both = trust::join_pem(&[&old.pem, &new.pem]);
        // Trusting both but holding an old certificate is not enough.
        let half = identity(&old, both.clone());
        assert!(rotation_reason(&half, Some(&rotating))
            .unwrap()
            .contains("not from the root CA that issues now"));
        let renewed = identity(&new, both);
        assert_eq!(rotation_reason(&renewed, Some(&rotating)), None);
        // The rotation completes: the old root goes from the trust.
        let done = wanted(&[&new], &new);
        assert!(rotation_reason(&renewed, Some(&done)).is_some());
        assert_eq!(
            rotation_reason(&identity(&new, new.pem.clone()), Some(&done)),
            None
        );
    }
}
