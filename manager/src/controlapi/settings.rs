//! Cluster-wide settings as store transactions: autolock and its unlock
//! key, the node certificate lifetime, the network key rotation, the task
//! history limit, the dispatcher heartbeat, Raft's snapshots, and the join
//! tokens.

use shoal_proto::control::v1::UpdateClusterSettingsRequest;
use shoal_proto::types::v1::{Cluster, JoinTokens, NodeRole};

use super::validate;
use crate::store::{State, StoreError, Tx};

/// What one `swarm update` changes, every value checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SettingsChange {
    pub autolock: Option<bool>,
    pub cert_expiry_hours: Option<u32>,
    pub network_key_rotation_ms: Option<u64>,
    pub task_history_limit: Option<i64>,
    pub heartbeat_period_ms: Option<u32>,
    pub snapshot_interval: Option<u64>,
    pub keep_old_snapshots: Option<u64>,
}

impl SettingsChange {
    /// The request's settings, each checked against its limits; the first
    /// refused one is the error, and nothing is written then.
    pub fn checked(request: &UpdateClusterSettingsRequest) -> Result<Self, StoreError> {
        if let Some(rotation) = request.network_key_rotation_ms {
            validate::network_key_rotation(rotation)?;
        }
        if let Some(interval) = request.snapshot_interval {
            validate::snapshot_interval(interval)?;
        }
        if let Some(count) = request.keep_old_snapshots {
            validate::keep_old_snapshots(count)?;
        }
        let change = SettingsChange {
            autolock: request.autolock,
            cert_expiry_hours: request
                .cert_expiry_ms
                .map(validate::cert_expiry)
                .transpose()?,
            network_key_rotation_ms: request.network_key_rotation_ms,
            task_history_limit: request.task_history_limit,
            heartbeat_period_ms: request
                .dispatcher_heartbeat_ms
                .map(validate::dispatcher_heartbeat)
                .transpose()?,
            snapshot_interval: request.snapshot_interval,
            keep_old_snapshots: request.keep_old_snapshots,
        };
        if change == SettingsChange::default() {
            return Err(StoreError::InvalidArgument(
                "nothing to update: give at least one setting".into(),
            ));
        }
        Ok(change)
    }
}

/// `swarm update`: every setting of `change` in one write. Returns the
/// unlock key when the change turns (or keeps) autolock on, else empty.
pub fn update(state: &State, tx: &mut Tx, change: &SettingsChange) -> Result<String, StoreError> {
    let mut cluster = cluster(state)?;
    let mut key = String::new();
    if let Some(autolock) = change.autolock {
        key = apply_autolock(&mut cluster, autolock);
    }
    let spec = cluster.spec.get_or_insert_with(Default::default);
    if let Some(hours) = change.cert_expiry_hours {
        spec.cert_expiry_hours = hours;
    }
    if let Some(rotation) = change.network_key_rotation_ms {
        spec.network_key_rotation_ms = rotation;
    }
    if let Some(limit) = change.task_history_limit {
        spec.task_history_limit = Some(limit);
    }
    if let Some(period) = change.heartbeat_period_ms {
        spec.heartbeat_period_ms = period;
    }
    if let Some(interval) = change.snapshot_interval {
        spec.snapshot_interval = interval;
    }
    if let Some(count) = change.keep_old_snapshots {
        spec.keep_old_snapshots = count;
    }
    tx.put(cluster);
    Ok(key)
}

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
    let key = apply_autolock(&mut cluster, autolock);
    tx.put(cluster);
    Ok(key)
}

/// Autolock on `cluster`; returns its unlock key (empty when off).
fn apply_autolock(cluster: &mut Cluster, autolock: bool) -> String {
    cluster.spec.get_or_insert_with(Default::default).autolock = autolock;
    if autolock && cluster.unlock_key.is_empty() {
        cluster.unlock_key = crate::seal::UnlockKey::generate().to_string();
    }
    if !autolock {
        cluster.unlock_key.clear();
    }
    cluster.unlock_key.clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::harness::initialised_store;

    fn spec(store: &crate::store::Store) -> shoal_proto::types::v1::ClusterSpec {
        store.view(|s| s.cluster().and_then(|c| c.spec.clone()).unwrap_or_default())
    }

    #[tokio::test]
    async fn one_update_writes_every_setting_it_names_and_keeps_the_others() {
        let store = initialised_store(Clock::system()).await;
        let before = spec(&store);
        let change = SettingsChange::checked(&UpdateClusterSettingsRequest {
            dispatcher_heartbeat_ms: Some(3_000),
            snapshot_interval: Some(100),
            keep_old_snapshots: Some(2),
            ..Default::default()
        })
        .expect("valid");
        let key = store
            .update(|s, tx| update(s, tx, &change))
            .await
            .expect("update");
        assert_eq!(key, "", "autolock untouched: no key to show");
        let after = spec(&store);
        assert_eq!(after.heartbeat_period_ms, 3_000);
        assert_eq!(after.snapshot_interval, 100);
        assert_eq!(after.keep_old_snapshots, 2);
        assert_eq!(after.cert_expiry_hours, before.cert_expiry_hours);
        assert_eq!(after.task_history_limit, before.task_history_limit);
        assert_eq!(after.autolock, before.autolock);

        let locking = SettingsChange::checked(&UpdateClusterSettingsRequest {
            autolock: Some(true),
            task_history_limit: Some(-1),
            ..Default::default()
        })
        .expect("valid");
        let key = store
            .update(|s, tx| update(s, tx, &locking))
            .await
            .expect("update");
        assert!(key.starts_with("SWMKEY-1-"), "{key}");
        let after = spec(&store);
        assert!(after.autolock);
        assert_eq!(after.task_history_limit, Some(-1));
        assert_eq!(after.heartbeat_period_ms, 3_000, "kept from before");
    }

    #[test]
    fn a_refused_setting_refuses_the_whole_update() {
        // A valid heartbeat beside a snapshot interval of 0: nothing is
        // returned to write.
        let err = SettingsChange::checked(&UpdateClusterSettingsRequest {
            dispatcher_heartbeat_ms: Some(2_000),
            snapshot_interval: Some(0),
            ..Default::default()
        })
        .expect_err("refused");
        assert!(err.to_string().contains("--snapshot-interval"), "{err}");
        let err = SettingsChange::checked(&UpdateClusterSettingsRequest {
            dispatcher_heartbeat_ms: Some(0),
            ..Default::default()
        })
        .expect_err("refused");
        assert!(err.to_string().contains("--dispatcher-heartbeat"), "{err}");
        let err = SettingsChange::checked(&UpdateClusterSettingsRequest {
            cert_expiry_ms: Some(60_000),
            ..Default::default()
        })
        .expect_err("refused");
        assert!(err.to_string().contains("--cert-expiry"), "{err}");
        let err =
            SettingsChange::checked(&UpdateClusterSettingsRequest::default()).expect_err("empty");
        assert!(err.to_string().contains("nothing to update"), "{err}");
    }
}
