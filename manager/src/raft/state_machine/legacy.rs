//! The state machine's older layout, moved once to the current one. It
//! kept every object sealed in the `state` tree, with the last applied log
//! id and the membership beside them, and its snapshot as one sealed JSON
//! document (`current`, the data a JSON array of numbers). Of the states
//! a store holds (that tree, the old snapshot, a current snapshot), the
//! newest becomes the current snapshot; the old keys go after it is on
//! disk, so a move cut short is done again at the next start.

use openraft::LogId;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shoal_proto::raft::v1::WriteBatch;

use super::{sm_read_err, Membership, Meta, NodeId, Snapshots};
use crate::seal::Sealer;
use openraft::{SnapshotMeta, StorageError};

const STATE_TREE: &[u8] = b"state";
const LAST_APPLIED: &[u8] = b"m/last_applied";
const MEMBERSHIP: &[u8] = b"m/membership";
const OBJECT_PREFIX: &[u8] = b"o/";
const OLD_SNAPSHOT: &[u8] = b"current";

#[derive(Deserialize)]
struct OldSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

fn open_json<T: DeserializeOwned>(
    sealer: &Sealer,
    sealed: &[u8],
) -> Result<T, StorageError<NodeId>> {
    let plain = sealer.open(sealed).map_err(sm_read_err)?;
    serde_json::from_slice(&plain).map_err(sm_read_err)
}

pub(super) async fn migrate(
    db: &sled::Db,
    sealer: &Sealer,
    snapshots: &Snapshots,
) -> Result<(), StorageError<NodeId>> {
    let has_state = db.tree_names().iter().any(|n| n.as_ref() == STATE_TREE);
    let old_snapshot = snapshots.tree.get(OLD_SNAPSHOT).map_err(sm_read_err)?;
    if !has_state && old_snapshot.is_none() {
        return Ok(());
    }
    let current_at = snapshots.read()?.map(|(meta, _)| meta.last_log_id);
    let mut newest: Option<(Meta, Vec<u8>)> = None;
    let mut consider = |candidate: (Meta, Vec<u8>)| {
        let newest_at = newest.as_ref().map(|(meta, _)| meta.last_log_id);
        if Some(candidate.0.last_log_id) > newest_at.max(current_at) {
            newest = Some(candidate);
        }
    };
    if let Some(sealed) = old_snapshot {
        let old: OldSnapshot = open_json(sealer, &sealed)?;
        consider((old.meta, old.data));
    }
    if has_state {
        let tree = db.open_tree(STATE_TREE).map_err(sm_read_err)?;
        let last_applied: Option<LogId<NodeId>> =
            match tree.get(LAST_APPLIED).map_err(sm_read_err)? {
                Some(v) => open_json::<Option<LogId<NodeId>>>(sealer, &v)?,
                None => None,
            };
        if let Some(last) = last_applied {
            let membership: Membership = match tree.get(MEMBERSHIP).map_err(sm_read_err)? {
                Some(v) => open_json(sealer, &v)?,
                None => Membership::default(),
            };
            let mut batch = WriteBatch::default();
            for item in tree.scan_prefix(OBJECT_PREFIX) {
                let (_, sealed) = item.map_err(sm_read_err)?;
                let plain = sealer.open(&sealed).map_err(sm_read_err)?;
                let one = WriteBatch::decode(plain.as_slice()).map_err(sm_read_err)?;
                batch.actions.extend(one.actions);
            }
            let meta = SnapshotMeta {
                last_log_id: Some(last),
                last_membership: membership,
                snapshot_id: format!("{}-moved", last.index),
            };
            consider((meta, batch.encode_to_vec()));
        }
    }
    if let Some((meta, data)) = newest {
        snapshots.write(&meta, &data, 0).await?;
    }
    snapshots.tree.remove(OLD_SNAPSHOT).map_err(sm_read_err)?;
    if has_state {
        db.drop_tree(STATE_TREE).map_err(sm_read_err)?;
    }
    db.flush_async().await.map_err(sm_read_err)?;
    Ok(())
}
