//! The Raft log and vote in sled, every value sealed. Log keys are big-endian
//! indexes so sled's order is the log's order; the vote is flushed before
//! it is acknowledged, appends before the callback fires.

use std::fmt::Debug;
use std::ops::RangeBounds;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use std::collections::{BTreeMap, BTreeSet};

use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, OptionalSend,
    RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{io_error, NodeId, TypeConfig};
use crate::seal::Sealer;

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";
const COMMITTED: &[u8] = b"committed";

#[derive(Clone)]
pub struct LogStore {
    log: sled::Tree,
    meta: sled::Tree,
    sealer: Sealer,
}

impl LogStore {
    pub fn open(db: &sled::Db, sealer: Sealer) -> Result<Self, sled::Error> {
        Ok(LogStore {
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
            sealer,
        })
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, std::io::Error> {
        let json = serde_json::to_vec(value).map_err(io_error)?;
        self.sealer.seal(&json).map_err(io_error)
    }

    fn decode<T: DeserializeOwned>(&self, sealed: &[u8]) -> Result<T, std::io::Error> {
        let json = self.sealer.open(sealed).map_err(io_error)?;
        serde_json::from_slice(&json).map_err(io_error)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, std::io::Error> {
        match self.meta.get(key).map_err(io_error)? {
            Some(v) => Ok(Some(self.decode(&v)?)),
            None => Ok(None),
        }
    }

    async fn write_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), std::io::Error> {
        self.meta
            .insert(key, self.encode(value)?)
            .map_err(io_error)?;
        self.meta.flush_async().await.map_err(io_error)?;
        Ok(())
    }

    /// `swarm init --force-new-cluster`: appends a membership entry naming
    /// `me` as the only voter, in a term above any seen, so that when Raft
    /// starts again on this log it elects itself at once and commits it
    /// (with everything this manager had logged before). Raft must be shut
    /// down while this runs.
    pub async fn force_single_voter(&self, me: NodeId, node: BasicNode) -> std::io::Result<()> {
        let last_purged: Option<LogId<NodeId>> = self.read_meta(LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id).or(last_purged);
        let vote: Option<Vote<NodeId>> = self.read_meta(VOTE)?;
        let term = vote
            .map(|v| v.leader_id().term)
            .max(last.map(|l| l.leader_id.term))
            .unwrap_or(0)
            + 1;
        let index = last.map(|l| l.index + 1).unwrap_or(0);
        let membership = Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, node)]));
        let entry: Entry<TypeConfig> = Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, me), index),
            payload: EntryPayload::Membership(membership),
        };
        self.log
            .insert(index.to_be_bytes(), self.encode(&entry)?)
            .map_err(io_error)?;
        self.log.flush_async().await.map_err(io_error)?;
        self.write_meta(VOTE, &Vote::new(term, me)).await
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, std::io::Error> {
        match self.log.last().map_err(io_error)? {
            Some((_, v)) => Ok(Some(self.decode(&v)?)),
            None => Ok(None),
        }
    }
}

fn read_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Some(i),
            Bound::Excluded(&0) => return Ok(Vec::new()),
            Bound::Excluded(&i) => Some(i - 1),
            Bound::Unbounded => None,
        };
        let iter = match end {
            Some(end) if end < start => return Ok(Vec::new()),
            Some(end) => self.log.range(start.to_be_bytes()..=end.to_be_bytes()),
            None => self.log.range(start.to_be_bytes()..),
        };
        iter.map(|item| {
            let (_, v) = item.map_err(|e| read_err(io_error(e)))?;
            self.decode(&v).map_err(read_err)
        })
        .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.read_meta(LAST_PURGED).map_err(read_err)?;
        let last_log_id = self
            .last_entry()
            .map_err(read_err)?
            .map(|e| e.log_id)
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not flushed: losing it only costs re-applying from the last flush.
        let value = self.encode(&committed).map_err(write_err)?;
        self.meta
            .insert(COMMITTED, value)
            .map_err(|e| write_err(io_error(e)))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let value = self.encode(&entry).map_err(write_err)?;
            batch.insert(&entry.log_id.index.to_be_bytes(), value);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(io_error(e)))?;
        let flushed = self.log.flush_async().await.map(|_| ()).map_err(io_error);
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(log_id.index.to_be_bytes()..) {
            let (k, _) = item.map_err(|e| write_err(io_error(e)))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(io_error(e)))?;
        self.log
            .flush_async()
            .await
            .map_err(|e| write_err(io_error(e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: a crash in between leaves extra
        // entries, never a hole.
        self.write_meta(LAST_PURGED, &log_id)
            .await
            .map_err(write_err)?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = item.map_err(|e| write_err(io_error(e)))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| write_err(io_error(e)))?;
        Ok(())
    }
}
