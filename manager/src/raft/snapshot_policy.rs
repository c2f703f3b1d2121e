//! When a manager snapshots its state (and compacts its log behind it):
//! every `snapshot_interval` applied entries, the cluster's setting
//! (`swarm init|update --snapshot-interval`), or the manager's own
//! `--snapshot-every` where the cluster names none. openraft's own policy
//! is fixed when Raft starts; this one reads the store at every applied
//! entry, so a `swarm update` applies from the next entry on, without a
//! restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_proto::control::v1::RaftStatus;

use super::Raft;
use crate::store::{State, Store};

/// Raft timing (openraft's config, in ms): heartbeats well inside an
/// election timeout, elections within about a second of a leader's loss.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1000;
/// Entries kept behind a snapshot for followers that lag a little (one
/// further behind gets the snapshot): openraft's config, fixed at start.
pub fn log_for_slow_followers(default_interval: u64) -> u64 {
    default_interval.min(500)
}

/// A snapshot asked for that has not come yet is asked for again after this
/// (openraft ignores a request while one is being built).
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// Entries between snapshots in `state`'s cluster, else `default`.
pub fn interval(state: &State, default: u64) -> u64 {
    match state.cluster().and_then(|c| c.spec.as_ref()) {
        Some(spec) if spec.snapshot_interval > 0 => spec.snapshot_interval,
        _ => default.max(1),
    }
}

/// Whether a manager that applied up to `applied` with its last snapshot
/// at `snapshot` should snapshot now (openraft's `LogsSinceLast` rule).
pub fn due(applied: u64, snapshot: u64, every: u64) -> bool {
    applied >= snapshot.saturating_add(every)
}

/// Asks Raft for a snapshot whenever one is due, until Raft shuts down.
pub async fn run(raft: Raft, store: Arc<Store>, default: u64) {
    let mut metrics = raft.metrics();
    // The snapshot index when a snapshot was last asked for, and when.
    let mut asked: Option<(u64, Instant)> = None;
    loop {
        let (applied, snapshot) = {
            let m = metrics.borrow_and_update();
            (
                m.last_applied.map_or(0, |l| l.index),
                m.snapshot.map_or(0, |l| l.index),
            )
        };
        let every = store.view(|s| interval(s, default));
        let pending = asked.is_some_and(|(at, when)| at == snapshot && when.elapsed() < ASK_AGAIN);
        if due(applied, snapshot, every) && !pending {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            asked = Some((snapshot, Instant::now()));
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// This manager's Raft settings and progress, for `shoal info`.
pub fn status(raft: &Raft, state: &State, default: u64) -> RaftStatus {
    let metrics = raft.metrics().borrow().clone();
    RaftStatus {
        snapshot_interval: interval(state, default),
        keep_old_snapshots: state
            .cluster()
            .and_then(|c| c.spec.as_ref())
            .map_or(0, |s| s.keep_old_snapshots),
        log_entries_for_slow_followers: log_for_slow_followers(default),
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS as u32,
        election_timeout_min_ms: ELECTION_TIMEOUT_MIN_MS as u32,
        election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS as u32,
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{Cluster, ClusterSpec, Meta};

    use super::*;

    fn state_with(spec: Option<ClusterSpec>) -> State {
        let mut state = State::default();
        state.clusters.insert(
            "c".into(),
            Cluster {
                meta: Some(Meta {
                    id: "c".into(),
                    ..Default::default()
                }),
                spec,
                ..Default::default()
            },
        );
        state
    }

    #[test]
    fn the_clusters_interval_wins_over_the_managers_default() {
        let set = state_with(Some(ClusterSpec {
            snapshot_interval: 100,
            ..Default::default()
        }));
        assert_eq!(interval(&set, 10_000), 100);
        let unset = state_with(Some(ClusterSpec::default()));
        assert_eq!(interval(&unset, 10_000), 10_000);
        assert_eq!(interval(&State::default(), 10), 10);
        assert_eq!(interval(&State::default(), 0), 1, "never a zero interval");
    }

    #[test]
    fn a_snapshot_is_due_once_interval_entries_were_applied_since_the_last() {
        assert!(!due(99, 0, 100));
        assert!(due(100, 0, 100));
        assert!(!due(150, 100, 100));
        assert!(due(200, 100, 100));
        assert!(!due(u64::MAX - 1, u64::MAX - 1, 100), "no overflow");
    }
}
