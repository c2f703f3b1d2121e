//! The CA's gRPC service. `IssueNodeCertificate` is the one call a stranger
//! may make (over TLS without a client certificate): the token's secret is
//! its authorisation and decides the role; the new node is recorded in the
//! store before its certificate is handed out.

use std::sync::Arc;
use std::time::Duration;

use shoal_identity::join::JoinToken;
use shoal_identity::{PeerIdentity, Role};
use shoal_proto::ca::v1::certificate_authority_server::CertificateAuthority;
use shoal_proto::ca::v1::*;
use shoal_proto::types::v1::{
    Meta, Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus,
};
use tonic::{Request, Response, Status};

use super::{CaState, RootCa};
use crate::rolemanager::issuable_role;
use crate::store::{State, Store, StoreError};

/// Swarm's default node certificate lifetime.
pub const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The lifetime of node certificates the cluster asks for.
pub fn cert_expiry(state: &State) -> Duration {
    match state
        .cluster()
        .and_then(|c| c.spec.as_ref())
        .map(|s| s.cert_expiry_hours)
    {
        Some(hours) if hours > 0 => Duration::from_secs(u64::from(hours) * 3600),
        _ => DEFAULT_CERT_EXPIRY,
    }
}

pub struct CaService {
    store: Arc<Store>,
}

impl CaService {
    pub fn new(store: Arc<Store>) -> Self {
        CaService { store }
    }

    /// `Node.role` is the role of the node's current certificate.
    async fn record_role(&self, node_id: &str, role: NodeRole) -> Result<(), Status> {
        self.store
            .update(|state, tx| {
                if let Some(node) = state.nodes.get(node_id) {
                    if node.role != role as i32 {
                        let mut node = node.clone();
                        node.role = role as i32;
                        tx.put(node);
                    }
                }
                Ok(())
            })
            .await
            .map_err(Status::from)
    }
}

fn root_ca(state: &State) -> Result<RootCa, StoreError> {
    Ok(CaState::of(state)?.current)
}

/// The role a token grants, or why it grants none.
pub fn role_of_token(state: &State, token: &str) -> Result<Role, StoreError> {
    let parsed = JoinToken::parse(token).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
    let ca = root_ca(state)?;
    let digest = ca
        .digest()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    if parsed.ca_digest != digest {
        return Err(StoreError::InvalidArgument(
            "the join token's CA digest does not match this cluster's root CA: a token of another cluster, or from before a root CA rotation (get the current one with `shoal swarm join-token`)".into(),
        ));
    }
    let tokens = state
        .cluster()
        .and_then(|c| c.join_tokens.clone())
        .unwrap_or_default();
    let secret_of = |t: &str| JoinToken::parse(t).ok().map(|t| t.secret);
    // Constant-time compare: the secret is a password.
    let matches = |t: &str| {
        secret_of(t).is_some_and(|s| {
            s.len() == parsed.secret.len()
                && s.bytes()
                    .zip(parsed.secret.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    };
    if matches(&tokens.manager) {
        Ok(Role::Manager)
    } else if matches(&tokens.worker) {
        Ok(Role::Worker)
    } else {
        Err(StoreError::InvalidArgument(
            "invalid join token: it is not this cluster's current worker or manager token (rotated?)".into(),
        ))
    }
}

#[tonic::async_trait]
impl CertificateAuthority for CaService {
    async fn get_root_certificate(
        &self,
        _request: Request<GetRootCertificateRequest>,
    ) -> Result<Response<GetRootCertificateResponse>, Status> {
        let root_ca_pem = self
            .store
            .view(|s| root_ca(s).map(|ca| ca.cert_pem))
            .map_err(Status::from)?;
        Ok(Response::new(GetRootCertificateResponse { root_ca_pem }))
    }

    async fn issue_node_certificate(
        &self,
        request: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let remote = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let request = request.into_inner();
        // What the joiner asks for itself is checked before anything is issued.
        let availability =
            super::joiner::availability(request.availability).map_err(Status::from)?;
        super::joiner::data_path_addr(&request.data_path_addr).map_err(Status::from)?;
        let node_id = crate::ids::new_id();
        let (role, ca, cluster_id, validity) = self
            .store
            .view(|s| {
                let role = role_of_token(s, &request.token)?;
                let cluster_id = s
                    .cluster()
                    .and_then(|c| c.meta.clone())
                    .unwrap_or_default()
                    .id;
                Ok::<_, StoreError>((role, CaState::of(s)?, cluster_id, cert_expiry(s)))
            })
            .map_err(Status::from)?;
        let peer = PeerIdentity {
            node_id: node_id.clone(),
            role,
            cluster_id,
        };
        let addr = if request.advertise_addr.is_empty() {
            remote
        } else {
            request.advertise_addr.clone()
        };
        let cert_pem = ca
            .issue(
                &request.csr_pem,
                &peer,
                std::slice::from_ref(&addr),
                validity,
            )
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let node_role = if role == Role::Manager {
            NodeRole::Manager
        } else {
            NodeRole::Worker
        };
        let hostname = request.hostname.clone();
        self.store
            .update(|state, tx| {
                // Re-check under the write lock: a rotation may have raced us.
                role_of_token(state, &request.token)?;
                tx.put(Node {
                    meta: Some(Meta {
                        id: node_id.clone(),
                        ..Default::default()
                    }),
                    spec: Some(NodeSpec {
                        desired_role: node_role as i32,
                        availability: availability as i32,
                        ..Default::default()
                    }),
                    description: Some(NodeDescription {
                        hostname: hostname.clone(),
                        addr: addr.clone(),
                        ..Default::default()
                    }),
                    status: Some(NodeStatus {
                        state: NodeState::Unknown as i32,
                        message: "joined; waiting for the agent".into(),
                        addr: if request.data_path_addr.is_empty() {
                            addr.clone()
                        } else {
                            request.data_path_addr.clone()
                        },
                    }),
                    manager_status: None,
                    role: node_role as i32,
                    cert_root_digest: String::new(),
                    wireguard_public_key: String::new(),
                    ingress_address: String::new(),
                    data_path_addr: request.data_path_addr.clone(),
                    ..Default::default()
                });
                Ok(())
            })
            .await
            .map_err(Status::from)?;
        tracing::info!("node {node_id} ({hostname}, {addr}) joined as {role:?}");
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id,
            cert_pem,
            root_ca_pem: ca.trust_pem(),
        }))
    }

    async fn renew_node_certificate(
        &self,
        request: Request<RenewNodeCertificateRequest>,
    ) -> Result<Response<RenewNodeCertificateResponse>, Status> {
        let peer = shoal_identity::peer_of(&request).ok_or_else(|| {
            Status::unauthenticated("renewal needs the node's current certificate")
        })?;
        let (ca, role, validity) = self
            .store
            .view(|s| {
                Ok::<_, StoreError>((
                    CaState::of(s)?,
                    s.nodes.get(&peer.node_id).map(issuable_role),
                    cert_expiry(s),
                ))
            })
            .map_err(Status::from)?;
        let Some(role) = role else {
            return Err(Status::permission_denied(format!(
                "node {} is not part of this cluster (removed?)",
                peer.node_id
            )));
        };
        let request = request.into_inner();
        // Only nodes renew here; client bundles keep the role they were made with.
        let peer = match peer.role {
            Role::Manager | Role::Worker => PeerIdentity {
                role: if role == NodeRole::Manager {
                    Role::Manager
                } else {
                    Role::Worker
                },
                ..peer
            },
            _ => return Err(Status::permission_denied("only nodes renew certificates")),
        };
        let cert_pem = ca
            .issue(&request.csr_pem, &peer, &[], validity)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.record_role(&peer.node_id, role).await?;
        Ok(Response::new(RenewNodeCertificateResponse {
            cert_pem,
            root_ca_pem: ca.trust_pem(),
        }))
    }
}
