//! The object store: the only channel between manager components.
//!
//! Readers look at a consistent in-memory [`State`]. Writers run a
//! transaction closure against the state under the store's write lock; the
//! writes it collects go through the [`Proposer`] (Raft in the manager, a
//! direct apply in tests) and are applied by the state machine, which
//! publishes an [`Event`] per applied batch to every watcher. Because all
//! writes of a leader are serialized here, a transaction's checks (versions,
//! name clashes, port clashes) hold when its batch commits.

mod object;
mod state;
pub mod watch;

use std::sync::{Arc, OnceLock, RwLock};

use shoal_proto::raft::v1::WriteBatch;
use tokio::sync::broadcast;

use crate::clock::Clock;

pub use object::{Kind, Object, Write};
pub use state::{Change, State};

/// Why a store operation failed; the control API maps these to gRPC codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    /// This manager cannot commit writes (not the leader, no quorum, locked).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// A write that did not commit within [`WRITE_DEADLINE`].
    pub fn no_quorum() -> StoreError {
        StoreError::Unavailable(format!(
            "the write was not committed within {} s: the managers have no quorum (is a majority of managers up and reachable?); it may still take effect if a leader commits it later",
            WRITE_DEADLINE.as_secs()
        ))
    }

    /// This manager knows of no leader. Seen from one manager, a lost
    /// quorum and a manager cut off from the rest look the same.
    pub fn no_leader() -> StoreError {
        StoreError::Unavailable(
            "this manager knows of no leader: it cannot reach a quorum of managers (is a majority of managers up and reachable from it?)"
                .into(),
        )
    }
}

/// A batch of committed changes, in commit order.
#[derive(Debug)]
pub struct Event {
    pub index: u64,
    pub changes: Vec<Change>,
}

/// Commits a batch of writes; returns once the batch is applied locally.
#[tonic::async_trait]
pub trait Proposer: Send + Sync + 'static {
    async fn propose(&self, batch: WriteBatch) -> Result<u64, StoreError>;
}

pub struct Store {
    state: RwLock<State>,
    events: broadcast::Sender<Arc<Event>>,
    write_lock: tokio::sync::Mutex<()>,
    proposer: OnceLock<Arc<dyn Proposer>>,
    /// Where every component reads the time (a manual clock in tests).
    clock: Clock,
}

/// The writes a transaction collects.
#[derive(Default)]
pub struct Tx {
    writes: Vec<Write>,
    now: i64,
}

impl Tx {
    /// Stores `object` (created or replaced), stamping its times.
    pub fn put(&mut self, object: impl Into<Object>) {
        let mut object = object.into();
        let meta = object.meta_mut();
        if meta.created_at == 0 {
            meta.created_at = self.now;
        }
        meta.updated_at = self.now;
        self.writes.push(Write::Put(object));
    }

    pub fn delete(&mut self, kind: Kind, id: &str) {
        self.writes.push(Write::Delete(kind, id.to_string()));
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn now(&self) -> i64 {
        self.now
    }
}

/// How long a write may take, queueing included, before it is refused.
pub const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

impl Default for Store {
    fn default() -> Self {
        Self::new(Clock::system())
    }
}

impl Store {
    pub fn new(clock: Clock) -> Self {
        let (events, _) = broadcast::channel(4096);
        Store {
            state: RwLock::new(State::default()),
            events,
            write_lock: tokio::sync::Mutex::new(()),
            proposer: OnceLock::new(),
            clock,
        }
    }

    /// A store whose writes apply directly, without Raft: for component tests.
    pub fn in_memory() -> Arc<Store> {
        Self::in_memory_with_clock(Clock::system())
    }

    /// [`Store::in_memory`] on a clock of the test's choosing.
    pub fn in_memory_with_clock(clock: Clock) -> Arc<Store> {
        let store = Arc::new(Store::new(clock));
        let proposer = Arc::new(DirectProposer {
            store: Arc::downgrade(&store),
            index: std::sync::atomic::AtomicU64::new(0),
        });
        store.set_proposer(proposer);
        store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn set_proposer(&self, proposer: Arc<dyn Proposer>) {
        // Set once at start-up; a second call is a wiring bug we can ignore.
        let _ = self.proposer.set(proposer);
    }

    /// Reads a consistent view.
    pub fn view<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state)
    }

    /// Watches committed changes. Subscribe first, then read a view, then act
    /// on each event: nothing is missed in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Runs a transaction: `f` reads the state and collects writes, which
    /// commit atomically. Returns `f`'s value once the writes are applied.
    pub async fn update<R>(
        &self,
        f: impl FnOnce(&State, &mut Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        // One deadline for waiting behind earlier writes and committing this
        // one: without quorum, writes queue up and must not add their waits.
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let _serial = tokio::time::timeout_at(deadline, self.write_lock.lock())
            .await
            .map_err(|_| StoreError::no_quorum())?;
        let mut tx = Tx {
            writes: Vec::new(),
            now: self.clock.now(),
        };
        let value = self.view(|state| f(state, &mut tx))?;
        if tx.writes.is_empty() {
            return Ok(value);
        }
        let proposer = self
            .proposer
            .get()
            .ok_or_else(|| StoreError::Unavailable("the store is not ready for writes".into()))?;
        let batch = WriteBatch {
            actions: tx.writes.into_iter().map(Write::into_action).collect(),
        };
        tokio::time::timeout_at(deadline, proposer.propose(batch))
            .await
            .map_err(|_| StoreError::no_quorum())??;
        Ok(value)
    }

    /// Applies a committed batch (called by the state machine, in log order).
    /// A batch written against versions that are no longer current (a
    /// concurrent write won) is refused whole: nothing of it applies.
    pub fn apply(&self, index: u64, batch: WriteBatch) -> Result<Vec<Change>, String> {
        let changes: Vec<Change> = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            let writes: Vec<Write> = batch
                .actions
                .into_iter()
                .filter_map(Write::from_action)
                .collect();
            state.check_versions(&writes)?;
            writes
                .into_iter()
                .filter_map(|w| state.apply(w, index))
                .collect()
        };
        if !changes.is_empty() {
            // No watchers is fine: nobody to tell.
            let _ = self.events.send(Arc::new(Event {
                index,
                changes: changes.clone(),
            }));
        }
        Ok(changes)
    }

    /// Replaces the whole state (snapshot install, start-up load).
    pub fn replace(&self, new_state: State) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        *state = new_state;
    }
}

struct DirectProposer {
    store: std::sync::Weak<Store>,
    index: std::sync::atomic::AtomicU64,
}

#[tonic::async_trait]
impl Proposer for DirectProposer {
    async fn propose(&self, batch: WriteBatch) -> Result<u64, StoreError> {
        let index = self.index.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let store = self
            .store
            .upgrade()
            .ok_or_else(|| StoreError::Unavailable("store closed".into()))?;
        store.apply(index, batch).map_err(StoreError::Conflict)?;
        Ok(index)
    }
}

macro_rules! impl_into_object {
    ($($ty:ident),*) => {$(
        impl From<shoal_proto::types::v1::$ty> for Object {
            fn from(o: shoal_proto::types::v1::$ty) -> Object {
                Object::$ty(o)
            }
        }
    )*};
}
impl_into_object!(Cluster, Node, Service, Task, Network, Secret);

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{Meta, Service};

    fn service(id: &str) -> Service {
        Service {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn committed_writes_are_versioned_visible_and_announced() {
        let store = Store::in_memory();
        let mut events = store.subscribe();
        store
            .update(|_, tx| {
                tx.put(service("a"));
                tx.put(service("b"));
                Ok(())
            })
            .await
            .unwrap();
        let event = events.recv().await.unwrap();
        assert_eq!(event.changes.len(), 2, "one event per batch");
        let version = store.view(|s| s.services["a"].meta.clone().unwrap().version);
        assert_eq!(version, event.index);
        store
            .update(|_, tx| {
                tx.delete(Kind::Service, "a");
                Ok(())
            })
            .await
            .unwrap();
        assert!(store.view(|s| !s.services.contains_key("a")));
    }

    #[tokio::test]
    async fn a_batch_written_against_an_old_version_is_refused_whole() {
        let store = Store::in_memory();
        store
            .update(|_, tx| {
                tx.put(service("a"));
                Ok(())
            })
            .await
            .unwrap();
        let stale = store.view(|s| s.services["a"].clone());
        store
            .update(|_, tx| {
                tx.put(stale.clone());
                Ok(())
            })
            .await
            .unwrap();
        // `stale` still carries the version before that write.
        let result = store
            .update(|_, tx| {
                tx.put(service("b"));
                tx.put(stale.clone());
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        assert!(
            store.view(|s| !s.services.contains_key("b")),
            "half a batch applied"
        );
    }

    #[tokio::test]
    async fn a_failed_transaction_writes_nothing() {
        let store = Store::in_memory();
        let result: Result<(), _> = store
            .update(|_, tx| {
                tx.put(service("a"));
                Err(StoreError::InvalidArgument("no".into()))
            })
            .await;
        assert!(result.is_err());
        assert!(store.view(|s| s.services.is_empty()));
    }
}
