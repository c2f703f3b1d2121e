//! Who may do what through the control API. Over TCP the caller's
//! certificate decides: managers and admin bundles everything, deployers
//! deploy and read, viewers read, workers nothing; client bundles must be
//! listed in the cluster and not revoked. (The local socket, root on the
//! host, may do everything.)

use shoal_identity::{PeerIdentity, Role};
use tonic::Status;

use super::port::Member;

/// What a call needs, in increasing order of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Deploy,
    Admin,
}

impl Permission {
    fn what(self) -> &'static str {
        match self {
            Permission::Read => "read the cluster",
            Permission::Deploy => "change services, stacks or secrets",
            Permission::Admin => "manage nodes, join tokens, bundles, the CA or locking",
        }
    }
}

/// Whether `peer` may make a call that needs `needed`.
pub fn authorize(
    member: &dyn Member,
    peer: &PeerIdentity,
    needed: Permission,
) -> Result<(), Status> {
    if peer.cluster_id != member.cluster_id() {
        return Err(Status::permission_denied(
            "the certificate belongs to another cluster",
        ));
    }
    let granted = match peer.role {
        Role::Manager | Role::Admin => Permission::Admin,
        Role::Deployer => Permission::Deploy,
        Role::Viewer => Permission::Read,
        Role::Worker => {
            return Err(Status::permission_denied(
                "a worker certificate cannot use the control API",
            ))
        }
    };
    if matches!(peer.role, Role::Admin | Role::Deployer | Role::Viewer) {
        let bundle = member.store().view(|s| {
            s.cluster().and_then(|c| {
                c.client_bundles
                    .iter()
                    .find(|b| b.id == peer.node_id)
                    .cloned()
            })
        });
        match bundle {
            Some(b) if !b.revoked => {}
            Some(b) => {
                return Err(Status::permission_denied(format!(
                    "client bundle {} has been revoked",
                    b.name
                )))
            }
            None => {
                return Err(Status::permission_denied(
                    "this client certificate is not a bundle of this cluster",
                ))
            }
        }
    }
    if granted < needed {
        return Err(Status::permission_denied(format!(
            "a {} bundle may not {}",
            peer.role.ou().trim_start_matches("shoal-"),
            needed.what()
        )));
    }
    Ok(())
}
