//! Checks of the cluster-wide settings `swarm init` and `swarm update` take
//! (the limits are in the table of `validate`).

use super::{duration, less, more, MAX_HEARTBEAT_PERIOD_MS, MIN_HEARTBEAT_PERIOD_MS};
use super::{MAX_KEEP_OLD_SNAPSHOTS, MAX_SNAPSHOT_INTERVAL, MIN_SNAPSHOT_INTERVAL};
use crate::store::StoreError;

/// `--dispatcher-heartbeat` as given (0 is no period: refused); returns the
/// period in the cluster spec's milliseconds.
pub fn dispatcher_heartbeat(period_ms: u64) -> Result<u32, StoreError> {
    let flags = "--dispatcher-heartbeat";
    let shown = format!("dispatcher heartbeat period {}", duration(period_ms));
    if period_ms < u64::from(MIN_HEARTBEAT_PERIOD_MS) {
        return Err(less(
            "",
            shown,
            flags,
            duration(MIN_HEARTBEAT_PERIOD_MS.into()),
        ));
    }
    if period_ms > u64::from(MAX_HEARTBEAT_PERIOD_MS) {
        return Err(more(
            "",
            shown,
            flags,
            duration(MAX_HEARTBEAT_PERIOD_MS.into()),
        ));
    }
    // At most an hour in ms: fits.
    Ok(period_ms as u32)
}

/// `--snapshot-interval`: Raft log entries between snapshots.
pub fn snapshot_interval(entries: u64) -> Result<(), StoreError> {
    let flags = "--snapshot-interval";
    let shown = format!("snapshot interval {entries} log entries");
    if entries < MIN_SNAPSHOT_INTERVAL {
        return Err(less("", shown, flags, MIN_SNAPSHOT_INTERVAL.to_string()));
    }
    if entries > MAX_SNAPSHOT_INTERVAL {
        return Err(more("", shown, flags, MAX_SNAPSHOT_INTERVAL.to_string()));
    }
    Ok(())
}

/// `--max-snapshots`: older snapshots kept besides the current one.
pub fn keep_old_snapshots(count: u64) -> Result<(), StoreError> {
    if count > MAX_KEEP_OLD_SNAPSHOTS {
        return Err(more(
            "",
            format!("{count} old snapshots"),
            "--max-snapshots",
            MAX_KEEP_OLD_SNAPSHOTS.to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn a_heartbeat_of_zero_or_below_100ms_or_over_an_hour_is_refused() {
        assert_eq!(dispatcher_heartbeat(2_000).unwrap(), 2_000);
        assert_eq!(dispatcher_heartbeat(100).unwrap(), 100);
        let m = message(dispatcher_heartbeat(0));
        assert!(
            m.contains(
                "dispatcher heartbeat period 0s (--dispatcher-heartbeat) is less than shoal \
                 allows (min 100ms)"
            ),
            "{m}"
        );
        let m = message(dispatcher_heartbeat(u64::MAX));
        assert!(m.contains("is more than shoal allows (max 1h)"), "{m}");
    }

    #[test]
    fn a_snapshot_interval_of_zero_is_refused() {
        snapshot_interval(100).unwrap();
        snapshot_interval(MAX_SNAPSHOT_INTERVAL).unwrap();
        let m = message(snapshot_interval(0));
        assert!(
            m.contains(
                "snapshot interval 0 log entries (--snapshot-interval) is less than shoal \
                 allows (min 10)"
            ),
            "{m}"
        );
        let m = message(snapshot_interval(MAX_SNAPSHOT_INTERVAL + 1));
        assert!(m.contains("(max 1000000)"), "{m}");
    }

    #[test]
    fn old_snapshots_are_bounded() {
        keep_old_snapshots(0).unwrap();
        keep_old_snapshots(MAX_KEEP_OLD_SNAPSHOTS).unwrap();
        let m = message(keep_old_snapshots(1_000));
        assert!(
            m.contains("1000 old snapshots (--max-snapshots) is more than shoal allows (max 100)"),
            "{m}"
        );
    }
}
