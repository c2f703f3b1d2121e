//! Client certificate bundles: certificates for remote CLI use with a role
//! (admin, deployer, viewer) in their OU and a bundle id as their CN. The
//! cluster object lists every bundle; revoking one refuses it at once.

use std::sync::Arc;
use std::time::Duration;

use shoal_identity::{PeerIdentity, Role};
use shoal_proto::control::v1::{CreateClientBundleRequest, CreateClientBundleResponse};
use shoal_proto::types::v1::ClientBundle;

use crate::ca::CaState;
use crate::store::{State, Store, StoreError, Tx};

const BUNDLE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

fn role(name: &str) -> Result<Role, StoreError> {
    match name {
        "admin" => Ok(Role::Admin),
        "deployer" => Ok(Role::Deployer),
        "viewer" => Ok(Role::Viewer),
        other => Err(StoreError::InvalidArgument(format!(
            "unknown role {other:?}: use admin, deployer or viewer"
        ))),
    }
}

pub async fn create(
    store: &Arc<Store>,
    cluster_id: &str,
    request: CreateClientBundleRequest,
) -> Result<CreateClientBundleResponse, StoreError> {
    let role = role(&request.role)?;
    if request.name.trim().is_empty() {
        return Err(StoreError::InvalidArgument(
            "the bundle needs a name".into(),
        ));
    }
    let id = crate::ids::new_id();
    let peer = PeerIdentity {
        node_id: id.clone(),
        role,
        cluster_id: cluster_id.to_string(),
    };
    let name = request.name.clone();
    let ca = store
        .update(|state, tx| {
            let mut cluster = state
                .cluster()
                .cloned()
                .ok_or_else(|| StoreError::Unavailable("the cluster is not initialised".into()))?;
            if cluster
                .client_bundles
                .iter()
                .any(|b| b.name == name && !b.revoked)
            {
                return Err(StoreError::AlreadyExists(format!(
                    "client bundle {name} already exists (revoke it first)"
                )));
            }
            // While the root CA rotates, bundles come from the new root
            // (and outlive the rotation).
            let ca = CaState::of_cluster(&cluster)?;
            let root_digest = ca
                .issuer()
                .digest()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            cluster.client_bundles.push(ClientBundle {
                id: id.clone(),
                name: name.clone(),
                role: request.role.clone(),
                created_at: tx.now(),
                revoked: false,
                root_digest,
            });
            tx.put(cluster);
            Ok(ca)
        })
        .await?;
    let cert_pem = ca
        .issue(&request.csr_pem, &peer, &[], BUNDLE_VALIDITY)
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    Ok(CreateClientBundleResponse {
        id,
        cert_pem,
        root_ca_pem: ca.trust_pem(),
    })
}

pub fn revoke(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let mut cluster = state
        .cluster()
        .cloned()
        .ok_or_else(|| StoreError::Unavailable("the cluster is not initialised".into()))?;
    let bundle = cluster
        .client_bundles
        .iter_mut()
        .find(|b| !b.revoked && (b.id == reference || b.name == reference))
        .ok_or_else(|| StoreError::NotFound(format!("client bundle {reference} not found")))?;
    bundle.revoked = true;
    tx.put(cluster);
    Ok(())
}
