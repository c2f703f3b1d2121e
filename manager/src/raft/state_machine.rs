//! The Raft state machine: applies committed write batches to the in-memory
//! [`Store`]. It writes nothing to disk when it applies: the state is
//! durable through Raft itself, the log (flushed before an entry is
//! acknowledged) and snapshots (the whole state as one sealed
//! `WriteBatch`, taken every `--snapshot-every` entries). On start it loads
//! the last snapshot and openraft applies the committed log after it again.
//! Sealing and rewriting every changed object at each apply (as this state
//! machine once did) was the largest cost of a leader placing thousands of
//! tasks; a store of that older layout is read once and moved into a
//! snapshot ([`legacy`]).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use prost::Message;
use shoal_proto::raft::v1::WriteBatch;

use super::{io_error, NodeId, Proposed, Request, Response, TypeConfig};
use crate::seal::Sealer;
use crate::store::{Object, State, Store, Write};

mod legacy;

/// The current snapshot: its meta (sealed JSON) and its data (a sealed
/// `WriteBatch`), written together in one sled batch.
const SNAPSHOT_META: &[u8] = b"current/meta";
const SNAPSHOT_DATA: &[u8] = b"current/data";
/// Older snapshots the cluster keeps (`--max-snapshots`): `old/`, the
/// big-endian index of the snapshot's last entry, then `/meta` or `/data`,
/// sealed as the current one.
const OLD_PREFIX: &[u8] = b"old/";

type Membership = StoredMembership<NodeId, BasicNode>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

pub struct StateMachine {
    store: Arc<Store>,
    /// What this manager proposed, decoded: its own entries skip decoding.
    proposed: Arc<Proposed>,
    snapshots: Snapshots,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

/// Where snapshots are kept, sealed.
#[derive(Clone)]
struct Snapshots {
    tree: sled::Tree,
    sealer: Sealer,
}

fn sm_read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&io_error(e)).into()
}

fn sm_write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io_error(e)).into()
}

fn snapshot_write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &io_error(e)).into()
}

impl Snapshots {
    fn read(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError<NodeId>> {
        let Some((meta, data)) = self.sealed_current()? else {
            return Ok(None);
        };
        let meta = self.open_meta(&meta)?;
        let data = self.sealer.open(&data).map_err(sm_read_err)?;
        Ok(Some((meta, data)))
    }

    /// The current snapshot's meta and data, sealed as they are stored.
    fn sealed_current(&self) -> Result<Option<(sled::IVec, sled::IVec)>, StorageError<NodeId>> {
        Ok(
            match (
                self.tree.get(SNAPSHOT_META).map_err(sm_read_err)?,
                self.tree.get(SNAPSHOT_DATA).map_err(sm_read_err)?,
            ) {
                (Some(meta), Some(data)) => Some((meta, data)),
                _ => None,
            },
        )
    }

    fn open_meta(&self, sealed: &[u8]) -> Result<Meta, StorageError<NodeId>> {
        let opened = self.sealer.open(sealed).map_err(sm_read_err)?;
        serde_json::from_slice(&opened).map_err(sm_read_err)
    }

    /// Replaces the current snapshot, keeping the one it replaces among the
    /// `keep` newest old ones (the older go); returns once it is on disk,
    /// since openraft purges the log it covers after this.
    async fn write(&self, meta: &Meta, data: &[u8], keep: u64) -> Result<(), StorageError<NodeId>> {
        let mut batch = sled::Batch::default();
        let mut old = self.old_indexes()?;
        if keep > 0 {
            if let Some(replaced) = self.retire_current(&mut batch)? {
                old.push(replaced);
            }
        }
        old.sort_unstable();
        old.dedup();
        let gone = old
            .len()
            .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
        for index in &old[..gone] {
            batch.remove(old_key(*index, "meta"));
            batch.remove(old_key(*index, "data"));
        }
        let meta = serde_json::to_vec(meta).map_err(snapshot_write_err)?;
        batch.insert(
            SNAPSHOT_META,
            self.sealer.seal(&meta).map_err(snapshot_write_err)?,
        );
        batch.insert(
            SNAPSHOT_DATA,
            self.sealer.seal(data).map_err(snapshot_write_err)?,
        );
        self.tree.apply_batch(batch).map_err(snapshot_write_err)?;
        self.tree.flush_async().await.map_err(snapshot_write_err)?;
        Ok(())
    }

    /// Copies the current snapshot (sealed as it is) to the old ones in
    /// `batch`; returns its index, or nothing when there is none.
    fn retire_current(&self, batch: &mut sled::Batch) -> Result<Option<u64>, StorageError<NodeId>> {
        let Some((meta, data)) = self.sealed_current()? else {
            return Ok(None);
        };
        let index = self.open_meta(&meta)?.last_log_id.map_or(0, |l| l.index);
        batch.insert(old_key(index, "meta"), meta);
        batch.insert(old_key(index, "data"), data);
        Ok(Some(index))
    }

    /// The indexes of the old snapshots kept, oldest first.
    fn old_indexes(&self) -> Result<Vec<u64>, StorageError<NodeId>> {
        let mut indexes = Vec::new();
        for key in self.tree.scan_prefix(OLD_PREFIX).keys() {
            let key = key.map_err(sm_read_err)?;
            let index = key
                .get(OLD_PREFIX.len()..OLD_PREFIX.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if let Some(index) = index {
                if indexes.last() != Some(&index) {
                    indexes.push(index);
                }
            }
        }
        Ok(indexes)
    }
}

fn old_key(index: u64, part: &str) -> Vec<u8> {
    let mut key = OLD_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key.push(b'/');
    key.extend_from_slice(part.as_bytes());
    key
}

/// Old snapshots the cluster in `state` keeps (`--max-snapshots`).
fn keep_old(state: &State) -> u64 {
    state
        .cluster()
        .and_then(|c| c.spec.as_ref())
        .map_or(0, |s| s.keep_old_snapshots)
}

/// The writes of an entry's encoded batch (one this manager did not
/// propose, or proposed before a restart), sized once: a batch of
/// thousands of tasks grown by doubling cost a fresh, zeroed mapping at
/// every step.
fn decode_writes(bytes: &[u8]) -> Result<Vec<Write>, prost::DecodeError> {
    let batch = WriteBatch::decode(bytes)?;
    let mut writes = Vec::with_capacity(batch.actions.len());
    writes.extend(batch.actions.into_iter().filter_map(Write::from_action));
    Ok(writes)
}

/// The state a snapshot's data holds; objects keep the versions they were
/// stored with.
fn state_of(data: &[u8], index: u64) -> Result<State, prost::DecodeError> {
    let mut state = State::default();
    for write in decode_writes(data)? {
        let version = match &write {
            Write::Put(o) => o.meta().map(|m| m.version).unwrap_or(index),
            Write::Delete(..) => index,
        };
        state.apply(write, version);
    }
    Ok(state)
}

impl StateMachine {
    /// Loads the last snapshot into `store`; openraft then applies the
    /// committed log after it.
    pub async fn open(
        db: &sled::Db,
        sealer: Sealer,
        store: Arc<Store>,
    ) -> Result<Self, StorageError<NodeId>> {
        let snapshots = Snapshots {
            tree: db.open_tree("snapshot").map_err(sm_read_err)?,
            sealer: sealer.clone(),
        };
        legacy::migrate(db, &sealer, &snapshots).await?;
        let mut sm = StateMachine {
            store,
            proposed: Arc::default(),
            snapshots,
            last_applied: None,
            membership: Membership::default(),
        };
        if let Some((meta, data)) = sm.snapshots.read()? {
            let index = meta.last_log_id.map_or(0, |l| l.index);
            sm.store
                .replace(state_of(&data, index).map_err(sm_read_err)?);
            sm.last_applied = meta.last_log_id;
            sm.membership = meta.last_membership;
        }
        Ok(sm)
    }

    /// Where this manager's proposer keeps its batches for this state
    /// machine.
    pub fn proposed(&self) -> Arc<Proposed> {
        self.proposed.clone()
    }
}

/// A snapshot taken: the state as it was at `meta`'s log id, encoded while
/// the state machine waited (so no later entry is in it), sealed and
/// written off its path.
pub struct SnapshotBuilder {
    snapshots: Snapshots,
    meta: Meta,
    data: Vec<u8>,
    /// Old snapshots to keep, as the state in this one says.
    keep: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.snapshots
            .write(&self.meta, &self.data, self.keep)
            .await?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(std::mem::take(&mut self.data))),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let mut response = Response::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
                EntryPayload::Normal(Request { batch, proposal }) => {
                    let writes = match self.proposed.take(proposal) {
                        Some(writes) => writes,
                        None => decode_writes(&batch).map_err(sm_write_err)?,
                    };
                    if let Err(conflict) = self.store.apply(entry.log_id.index, writes) {
                        response.conflict = Some(conflict);
                    }
                }
            }
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let snapshot_id = format!(
            "{}-{}",
            self.last_applied.map(|l| l.index).unwrap_or(0),
            crate::clock::Clock::system().now()
        );
        let (data, keep) = self.store.view(|state| {
            let data = WriteBatch {
                actions: state.objects().map(Object::into_action).collect(),
            }
            .encode_to_vec();
            (data, keep_old(state))
        });
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data,
            keep,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let state = state_of(&data, index)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_error(e)))?;
        // On disk first: openraft drops the log the snapshot covers next.
        self.snapshots.write(meta, &data, keep_old(&state)).await?;
        self.store.replace(state);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.snapshots.read()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry};
    use shoal_proto::types::v1::{Meta, Service};

    use super::*;

    fn service(id: &str) -> Object {
        Object::from(Service {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn entry(index: u64, object: Object) -> Entry<TypeConfig> {
        let batch = WriteBatch {
            actions: vec![object.into_action()],
        };
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Request {
                batch: batch.encode_to_vec(),
                proposal: 0,
            }),
        }
    }

    fn services(store: &Store) -> Vec<(String, u64)> {
        store.view(|state| {
            state
                .services
                .iter()
                .map(|(id, s)| (id.clone(), s.meta.as_ref().map_or(0, |m| m.version)))
                .collect()
        })
    }

    /// A value sealed as the older layout kept it.
    fn sealed_json<T: serde::Serialize>(sealer: &Sealer, value: &T) -> Vec<u8> {
        sealer.seal(&serde_json::to_vec(value).unwrap()).unwrap()
    }

    fn sealer() -> Sealer {
        Sealer::new(&[7; 32])
    }

    /// A state machine over `db` and the fresh store it fills.
    async fn opened(db: &sled::Db) -> (StateMachine, Arc<Store>) {
        let store = Arc::new(Store::default());
        let sm = StateMachine::open(db, sealer(), store.clone())
            .await
            .unwrap();
        (sm, store)
    }

    #[tokio::test]
    async fn a_manager_starts_from_its_last_snapshot_and_applies_nothing_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (mut sm, store) = opened(&db).await;
        sm.apply([entry(3, service("a"))]).await.unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        // Applied after the snapshot was taken: not in it, even though it
        // is applied before the snapshot is written.
        sm.apply([entry(4, service("b"))]).await.unwrap();
        let built = builder.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(3)));
        assert_eq!(services(&store).len(), 2);
        drop(sm);

        let (mut sm, restarted) = opened(&db).await;
        // Entry 4 comes back from the log: openraft applies it again.
        assert_eq!(services(&restarted), vec![("a".to_string(), 3)]);
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(3)));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(3)));
        // Nothing but the snapshot is written by the state machine.
        let trees: Vec<_> = db.tree_names();
        assert!(!trees.iter().any(|n| n.as_ref() == b"state"), "{trees:?}");
    }

    /// The cluster as written over `version` (the store checks it).
    fn cluster_keeping(old: u64, version: u64) -> Object {
        Object::from(shoal_proto::types::v1::Cluster {
            meta: Some(Meta {
                id: "c".into(),
                version,
                ..Default::default()
            }),
            spec: Some(shoal_proto::types::v1::ClusterSpec {
                keep_old_snapshots: old,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn old_snapshots_are_kept_as_many_as_the_cluster_says() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (mut sm, _store) = opened(&db).await;
        sm.apply([entry(1, cluster_keeping(2, 0))]).await.unwrap();
        for index in 2..=5 {
            sm.apply([entry(index, service(&format!("s{index}")))])
                .await
                .unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        }
        // Current at 5; of the ones it replaced (2, 3, 4) the newest two.
        assert_eq!(sm.snapshots.old_indexes().unwrap(), [3, 4]);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(5)));
        // An old one is a whole snapshot, sealed: the state as it was then.
        let sealed = sm.snapshots.tree.get(old_key(3, "data")).unwrap().unwrap();
        let opened = sealer().open(&sealed).unwrap();
        let then = state_of(&opened, 3).unwrap();
        assert_eq!(then.services.len(), 2, "s2 and s3");
        assert_ne!(sealed.as_ref(), opened.as_slice(), "kept sealed");

        // Lowered to none: the next snapshot drops them.
        sm.apply([entry(6, cluster_keeping(0, 1))]).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert!(sm.snapshots.old_indexes().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_of_the_older_layout_moves_into_a_snapshot_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sealer = sealer();
        let state = db.open_tree("state").unwrap();
        for id in ["a", "b"] {
            let one = WriteBatch {
                actions: vec![service(id).into_action()],
            };
            let key = format!("o/service/{id}");
            state
                .insert(key, sealer.seal(&one.encode_to_vec()).unwrap())
                .unwrap();
        }
        state
            .insert(b"m/last_applied", sealed_json(&sealer, &Some(log_id(9))))
            .unwrap();
        state
            .insert(
                b"m/membership",
                sealed_json(&sealer, &Membership::default()),
            )
            .unwrap();
        // An older snapshot beside it, in the old JSON form.
        let old = serde_json::json!({
            "meta": SnapshotMeta::<NodeId, BasicNode> {
                last_log_id: Some(log_id(5)),
                last_membership: Membership::default(),
                snapshot_id: "5-0".into(),
            },
            "data": WriteBatch { actions: vec![service("a").into_action()] }.encode_to_vec(),
        });
        let snapshots = db.open_tree("snapshot").unwrap();
        snapshots
            .insert(b"current", sealed_json(&sealer, &old))
            .unwrap();
        drop((state, snapshots));

        for _ in 0..2 {
            let store = Arc::new(Store::default());
            let mut sm = StateMachine::open(&db, sealer.clone(), store.clone())
                .await
                .unwrap();
            assert_eq!(services(&store).len(), 2);
            assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(9)));
            assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"state"));
            assert!(db
                .open_tree("snapshot")
                .unwrap()
                .get(b"current")
                .unwrap()
                .is_none());
        }
    }
}
