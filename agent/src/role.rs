//! Promotion and demotion on this host. The managers say which role the
//! node's certificate should carry; when it carries another, the agent
//! renews it (the CA issues the new role) and then has the host's manager
//! process join the Raft group (promotion) or forget the cluster
//! (demotion: the leader has already taken it out of Raft).

use std::path::Path;

use shoal_identity::{NodeIdentity, Role};
use shoal_proto::control::v1::{JoinClusterRequest, LeaveClusterRequest};
use shoal_proto::types::v1::NodeRole;

/// The role to move to, if the managers want another than `identity` has.
pub fn wanted_change(identity: &NodeIdentity, wanted: Option<i32>) -> Option<Role> {
    let wanted = match NodeRole::try_from(wanted?).ok()? {
        NodeRole::Manager => Role::Manager,
        NodeRole::Worker => Role::Worker,
    };
    (identity.peer.role != wanted).then_some(wanted)
}

/// Renews the certificate through `manager` and brings the host's manager
/// process in line with the role it now carries.
pub async fn change(
    node_dir: &Path,
    manager: &str,
    manager_socket: &Path,
    advertise_addr: &str,
    wanted: Role,
) -> anyhow::Result<()> {
    let renewed = crate::renewal::renew(node_dir, manager).await?;
    if renewed.peer.role != wanted {
        // The leader has not finished (a demoted manager leaves Raft first).
        anyhow::bail!(
            "the CA still issues the role {:?}; waiting for the managers",
            renewed.peer.role
        );
    }
    tracing::info!("node certificate renewed as {wanted:?}");
    let mut local = crate::local_api::manager(manager_socket)?;
    let outcome = match wanted {
        Role::Manager => local
            .join_cluster(JoinClusterRequest {
                remote_addr: manager.to_string(),
                advertise_addr: advertise_addr.to_string(),
            })
            .await
            .map(|_| ()),
        _ => local
            .leave_cluster(LeaveClusterRequest { force: true })
            .await
            .map(|_| ()),
    };
    match outcome {
        Ok(()) => Ok(()),
        // A demoted node whose manager already forgot the cluster.
        Err(status) if wanted == Role::Worker && status.code() == tonic::Code::NotFound => Ok(()),
        Err(status) if wanted == Role::Manager && status.code() == tonic::Code::AlreadyExists => {
            Ok(())
        }
        Err(status) => anyhow::bail!(
            "the manager process on this host ({}): {}",
            manager_socket.display(),
            status.message()
        ),
    }
}
