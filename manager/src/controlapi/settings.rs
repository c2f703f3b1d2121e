//! Cluster-wide settings as store transactions: autolock and its unlock
//! key, the node certificate lifetime, the network key rotation, the task
//! history limit, and the join tokens.

use shoal_proto::types::v1::{Cluster, JoinTokens, NodeRole};

use crate::store::{State, StoreError, Tx};

fn cluster(state: &State) -> Result<Cluster, StoreError> {
    state
        .cluster()
        .cloned()
        .ok_or_else(|| StoreError::Unavailable("the cluster is not initialised".into()))
}

/// `swarm update --autolock`: returns the unlock key (empty when off). A
/// key is made when autolock is turned on, and forgotten when it is off.
pub fn set_autolock(state: &State, tx: &mut Tx, autolock: bool) -> Result<String, StoreError> {
    let mut cluster = cluster(state)?;
    cluster.spec.get_or_insert_with(Default::default).autolock = autolock;
    if autolock && cluster.unlock_key.is_empty() {
        cluster.unlock_key = crate::seal::UnlockKey::generate().to_string();
    }
    if !autolock {
        cluster.unlock_key.clear();
    }
    let key = cluster.unlock_key.clone();
    tx.put(cluster);
    Ok(key)
}

/// `swarm unlock-key [--rotate]`.
pub fn unlock_key(state: &State, tx: &mut Tx, rotate: bool) -> Result<String, StoreError> {
    let mut cluster = cluster(state)?;
    let autolock = cluster.spec.as_ref().is_some_and(|s| s.autolock);
    if !autolock {
        return Err(StoreError::InvalidArgument(
            "autolock is off: no unlock key (turn it on with `shoal swarm update --autolock=true`)"
                .into(),
        ));
    }
    if rotate {
        cluster.unlock_key = crate::seal::UnlockKey::generate().to_string();
        let key = cluster.unlock_key.clone();
        tx.put(cluster);
        return Ok(key);
    }
    Ok(cluster.unlock_key)
}

/// `swarm update --network-key-rotation`, checked already
/// (`validate::network_key_rotation`).
pub fn set_network_key_rotation(
    state: &State,
    tx: &mut Tx,
    rotation_ms: u64,
) -> Result<(), StoreError> {
    let mut cluster = state
        .cluster()
        .cloned()
        .ok_or_else(|| StoreError::NotFound("the cluster is not initialised".into()))?;
    cluster
        .spec
        .get_or_insert_with(Default::default)
        .network_key_rotation_ms = rotation_ms;
    tx.put(cluster);
    Ok(())
}

/// `swarm update --task-history-limit`: tasks kept per slot by the task
/// reaper (negative: all of them, swarmkit's rule).
pub fn set_task_history_limit(state: &State, tx: &mut Tx, limit: i64) -> Result<(), StoreError> {
    let mut cluster = cluster(state)?;
    cluster
        .spec
        .get_or_insert_with(Default::default)
        .task_history_limit = Some(limit);
    tx.put(cluster);
    Ok(())
}

/// `swarm update --cert-expiry`, checked already (`validate::cert_expiry`).
pub fn set_cert_expiry(state: &State, tx: &mut Tx, hours: u32) -> Result<(), StoreError> {
    let mut cluster = cluster(state)?;
    cluster
        .spec
        .get_or_insert_with(Default::default)
        .cert_expiry_hours = hours;
    tx.put(cluster);
    Ok(())
}

pub fn join_tokens(state: &State) -> JoinTokens {
    state
        .cluster()
        .and_then(|c| c.join_tokens.clone())
        .unwrap_or_default()
}

/// `swarm join-token --rotate`: the old token of that role is refused at once.
pub fn rotate_join_token(state: &State, tx: &mut Tx, role: i32) -> Result<JoinTokens, StoreError> {
    let mut cluster = cluster(state)?;
    let digest = shoal_identity::join::ca_digest(&cluster.root_ca_pem)
        .map_err(|e| StoreError::Internal(format!("the root CA's digest: {e}")))?;
    let fresh = shoal_identity::join::JoinToken::generate(&digest).to_string();
    let tokens = cluster.join_tokens.get_or_insert_with(Default::default);
    if role == NodeRole::Manager as i32 {
        tokens.manager = fresh;
    } else {
        tokens.worker = fresh;
    }
    let tokens = tokens.clone();
    tx.put(cluster);
    Ok(tokens)
}
