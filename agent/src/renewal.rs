//! Certificate renewal: the agent renews the node's certificate at a random
//! point between 50% and 80% of its lifetime (so a cluster's nodes do not
//! all renew at once), with a fresh key, and writes the new identity where
//! netd and the manager on this node read it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rand::Rng;
use shoal_identity::NodeIdentity;
use shoal_proto::ca::v1::certificate_authority_client::CertificateAuthorityClient;
use shoal_proto::ca::v1::RenewNodeCertificateRequest;

/// When to renew a certificate valid from `not_before` to `not_after`:
/// at `fraction` (0.5..0.8) of its lifetime.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime.mul_f64(fraction.clamp(0.5, 0.8))
}

/// Renews the node certificate once, through the manager at `manager`.
pub async fn renew(node_dir: &std::path::Path, manager: &str) -> anyhow::Result<NodeIdentity> {
    let current = NodeIdentity::load(node_dir)?;
    let (key_pem, csr_pem) = shoal_identity::generate_key_and_csr()?;
    let channel = shoal_identity::connect(manager, &current).await?;
    let reply = CertificateAuthorityClient::new(channel)
        .renew_node_certificate(RenewNodeCertificateRequest { csr_pem })
        .await
        .map_err(|s| anyhow::anyhow!("renew the node certificate: {}", s.message()))?
        .into_inner();
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

/// Renews for ever, each time at a random 50-80% of the lifetime.
pub async fn run(node_dir: PathBuf, manager: String) {
    loop {
        if !NodeIdentity::exists(&node_dir) {
            // Not joined yet.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let due = match NodeIdentity::load(&node_dir)
            .and_then(|id| shoal_identity::validity(&id.cert_pem))
        {
            Ok((from, to)) => {
                let fraction = rand::thread_rng().gen_range(0.5..0.8);
                renewal_time(from, to, fraction)
            }
            Err(_) => SystemTime::now() + Duration::from_secs(60),
        };
        let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        match renew(&node_dir, &manager).await {
            Ok(identity) => {
                tracing::info!("node certificate renewed for {}", identity.peer.node_id)
            }
            Err(e) => {
                tracing::warn!("certificate renewal failed, retrying in a minute: {e}");
                tokio::time::sleep(Duration::from_secs(60)).await;
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
