//! The Raft state machine: applies committed write batches to the in-memory
//! [`Store`] and persists every object in sled (sealed), together with the
//! last applied log id and membership in the same atomic sled batch. Because
//! the state machine is persistent, snapshots are only a transfer and
//! compaction format: the whole state as one `WriteBatch`.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use shoal_proto::raft::v1::WriteBatch;

use super::{io_error, NodeId, Request, Response, TypeConfig};
use crate::seal::Sealer;
use crate::store::{Object, State, Store, Write};

const LAST_APPLIED: &[u8] = b"m/last_applied";
const MEMBERSHIP: &[u8] = b"m/membership";
const OBJECT_PREFIX: &[u8] = b"o/";
const CURRENT_SNAPSHOT: &[u8] = b"current";

type Membership = StoredMembership<NodeId, BasicNode>;

#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    objects: sled::Tree,
    snapshots: sled::Tree,
    sealer: Sealer,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

fn object_key(object: &Object) -> Vec<u8> {
    [
        OBJECT_PREFIX,
        object.kind().name().as_bytes(),
        b"/",
        object.id().as_bytes(),
    ]
    .concat()
}

fn sm_read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&io_error(e)).into()
}

fn sm_write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io_error(e)).into()
}

impl StateMachine {
    /// Opens the persisted state and loads it into `store`.
    pub fn open(
        db: &sled::Db,
        sealer: Sealer,
        store: Arc<Store>,
    ) -> Result<Self, StorageError<NodeId>> {
        let objects = db.open_tree("state").map_err(sm_read_err)?;
        let snapshots = db.open_tree("snapshot").map_err(sm_read_err)?;
        let mut sm = StateMachine {
            store,
            objects,
            snapshots,
            sealer,
            last_applied: None,
            membership: Membership::default(),
        };
        sm.load()?;
        Ok(sm)
    }

    fn load(&mut self) -> Result<(), StorageError<NodeId>> {
        let mut batch = WriteBatch::default();
        for item in self.objects.scan_prefix(OBJECT_PREFIX) {
            let (_, v) = item.map_err(sm_read_err)?;
            let plain = self.sealer.open(&v).map_err(sm_read_err)?;
            let one = WriteBatch::decode(plain.as_slice()).map_err(sm_read_err)?;
            batch.actions.extend(one.actions);
        }
        self.last_applied = self.read_json(LAST_APPLIED)?.flatten();
        self.membership = self.read_json(MEMBERSHIP)?.unwrap_or_default();
        let mut state = State::default();
        let version = self.last_applied.map(|l| l.index).unwrap_or(0);
        for write in batch.actions.into_iter().filter_map(Write::from_action) {
            // Objects keep the versions they were stored with.
            let stored_version = match &write {
                Write::Put(o) => o.meta().map(|m| m.version).unwrap_or(version),
                Write::Delete(..) => version,
            };
            state.apply(write, stored_version);
        }
        self.store.replace(state);
        Ok(())
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeId>> {
        match self.objects.get(key).map_err(sm_read_err)? {
            Some(v) => {
                let plain = self.sealer.open(&v).map_err(sm_read_err)?;
                Ok(Some(serde_json::from_slice(&plain).map_err(sm_read_err)?))
            }
            None => Ok(None),
        }
    }

    fn seal_json<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StorageError<NodeId>> {
        let json = serde_json::to_vec(value).map_err(sm_write_err)?;
        self.sealer.seal(&json).map_err(sm_write_err)
    }

    fn seal_object(&self, object: &Object) -> Result<Vec<u8>, StorageError<NodeId>> {
        let one = WriteBatch {
            actions: vec![object.clone().into_action()],
        };
        self.sealer.seal(&one.encode_to_vec()).map_err(sm_write_err)
    }

    fn snapshot_data(&self) -> Vec<u8> {
        self.store.view(|state| {
            WriteBatch {
                actions: state.objects().map(Object::into_action).collect(),
            }
            .encode_to_vec()
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let data = self.snapshot_data();
        let snapshot_id = format!(
            "{}-{}",
            self.last_applied.map(|l| l.index).unwrap_or(0),
            crate::clock::Clock::system().now()
        );
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let sealed = self.seal_json(&stored)?;
        self.snapshots
            .insert(CURRENT_SNAPSHOT, sealed)
            .map_err(|e| StorageIOError::write_snapshot(None, &io_error(e)))?;
        self.snapshots
            .flush_async()
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &io_error(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

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
        let mut disk = sled::Batch::default();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let mut response = Response::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
                EntryPayload::Normal(Request { batch }) => {
                    let batch = WriteBatch::decode(batch.as_slice()).map_err(sm_write_err)?;
                    match self.store.apply(entry.log_id.index, batch) {
                        Ok(changes) => {
                            for change in changes {
                                match change {
                                    crate::store::Change::Put { new, .. } => {
                                        disk.insert(object_key(&new), self.seal_object(&new)?);
                                    }
                                    crate::store::Change::Delete(old) => {
                                        disk.remove(object_key(&old))
                                    }
                                }
                            }
                        }
                        Err(conflict) => response.conflict = Some(conflict),
                    }
                }
            }
            responses.push(response);
        }
        disk.insert(LAST_APPLIED, self.seal_json(&self.last_applied)?);
        disk.insert(MEMBERSHIP, self.seal_json(&self.membership)?);
        self.objects.apply_batch(disk).map_err(sm_write_err)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
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
        let batch = WriteBatch::decode(data.as_slice())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_error(e)))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let mut state = State::default();
        let mut disk = sled::Batch::default();
        for item in self.objects.scan_prefix(OBJECT_PREFIX) {
            let (k, _) = item.map_err(sm_read_err)?;
            disk.remove(k);
        }
        for write in batch.actions.into_iter().filter_map(Write::from_action) {
            if let Write::Put(object) = &write {
                let version = object.meta().map(|m| m.version).unwrap_or(index);
                disk.insert(object_key(object), self.seal_object(object)?);
                state.apply(write, version);
            }
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        disk.insert(LAST_APPLIED, self.seal_json(&self.last_applied)?);
        disk.insert(MEMBERSHIP, self.seal_json(&self.membership)?);
        self.objects.apply_batch(disk).map_err(sm_write_err)?;
        self.store.replace(state);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let sealed = self.seal_json(&stored)?;
        self.snapshots
            .insert(CURRENT_SNAPSHOT, sealed)
            .map_err(sm_write_err)?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let Some(sealed) = self.snapshots.get(CURRENT_SNAPSHOT).map_err(sm_read_err)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(&sealed).map_err(sm_read_err)?;
        let stored: StoredSnapshot = serde_json::from_slice(&plain).map_err(sm_read_err)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
