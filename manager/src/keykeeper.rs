//! The key keeper (every manager, leader or not): keeps this manager's data
//! key wrapped the way the cluster says. With autolock on, by the cluster's
//! unlock key, and no KEK on disk; with it off, by a random KEK stored
//! beside the store. Re-wraps at every change (autolock switched, key
//! rotated), so a manager restarted afterwards needs the current key.

use std::sync::Arc;
use std::time::Duration;

use crate::seal::{DataKey, KeyFiles, UnlockKey, Wrapping};
use crate::store::{watch, Change, Kind, State, Store};

fn desired(state: &State) -> Option<Option<String>> {
    let cluster = state.cluster()?;
    let autolock = cluster.spec.as_ref().is_some_and(|s| s.autolock);
    Some((autolock && !cluster.unlock_key.is_empty()).then(|| cluster.unlock_key.clone()))
}

pub async fn run(store: Arc<Store>, keys: KeyFiles, dek: DataKey) {
    let mut events = store.subscribe();
    let mut applied: Option<Option<String>> = None;
    loop {
        if let Some(want) = store.view(desired) {
            if applied.as_ref() != Some(&want) {
                let wrapping = match &want {
                    Some(text) => match UnlockKey::parse(text) {
                        Ok(key) => Wrapping::UnlockKey(key),
                        Err(e) => {
                            tracing::error!("the cluster's unlock key is unusable: {e}");
                            Wrapping::StoredKek
                        }
                    },
                    None => Wrapping::StoredKek,
                };
                match keys.wrap(&dek, &wrapping) {
                    Ok(()) => {
                        tracing::info!(
                            "data key wrapped {}",
                            if want.is_some() {
                                "with the unlock key (autolock)"
                            } else {
                                "with a stored key"
                            }
                        );
                        applied = Some(want);
                    }
                    Err(e) => tracing::error!("re-wrapping the data key: {e}"),
                }
            }
        }
        let relevant = |c: &Change| c.kind() == Kind::Cluster;
        if !watch::changed(&mut events, relevant, Duration::from_millis(10)).await {
            return;
        }
    }
}
