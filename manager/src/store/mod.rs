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

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::broadcast;

use crate::clock::Clock;

pub use object::{encode_batch, Kind, Object, Write};
pub use state::{address_of, Change, State};

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
    /// A write a leader with quorum did not commit within [`BUSY_DEADLINE`].
    pub fn overloaded() -> StoreError {
        StoreError::Unavailable(format!(
            "the write was not committed within {} s although the managers have quorum: the leader is overloaded; retry later (it may still take effect)",
            BUSY_DEADLINE.as_secs()
        ))
    }

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
    /// The tasks changed, by node, and whether anything but tasks changed:
    /// a node's session reads its own entry instead of scanning a batch of
    /// thousands of changes, once per node.
    pub tasks_by_node: HashMap<String, Vec<String>>,
    pub only_tasks: bool,
}

impl Event {
    fn of(index: u64, changes: Vec<Change>) -> Event {
        let mut tasks_by_node: HashMap<String, Vec<String>> = HashMap::new();
        let mut only_tasks = true;
        for change in &changes {
            let (old, new) = match change {
                Change::Put { old, new } => (old.as_ref(), new),
                Change::Delete(old) => (None, old),
            };
            for object in old.into_iter().chain([new]) {
                match object {
                    Object::Task(t) => {
                        let ids = match tasks_by_node.get_mut(t.node_id.as_str()) {
                            Some(ids) => ids,
                            None => tasks_by_node.entry(t.node_id.clone()).or_default(),
                        };
                        let id = object.id();
                        // A put names the task twice (old and new).
                        if ids.last().map(String::as_str) != Some(id) {
                            ids.push(id.to_string());
                        }
                    }
                    _ => only_tasks = false,
                }
            }
        }
        Event {
            index,
            changes,
            tasks_by_node,
            only_tasks,
        }
    }
}

/// Commits a batch of writes; returns once the batch is applied locally.
#[tonic::async_trait]
pub trait Proposer: Send + Sync + 'static {
    async fn propose(&self, writes: Vec<Write>) -> Result<u64, StoreError>;

    /// Whether this manager leads with a quorum that acknowledged it just
    /// now: a write slower than [`WRITE_DEADLINE`] is then a busy leader's,
    /// not a lost quorum's, and is given until [`BUSY_DEADLINE`].
    fn leads_with_quorum(&self) -> bool {
        false
    }
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

/// Committed events kept for watchers that have not read them yet.
const EVENT_RING: usize = 256;

/// How long a write may take, queueing included, before it is refused.
pub const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a write may take on a leader whose quorum answers: a burst of
/// large batches (thousands of tasks placed at once) queues up behind
/// itself, and is slow, not lost.
pub const BUSY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for Store {
    fn default() -> Self {
        Self::new(Clock::system())
    }
}

impl Store {
    pub fn new(clock: Clock) -> Self {
        // Every watcher is level-triggered (a lagging one does a full pass),
        // so the ring need not be deep; each event holds the old and new
        // objects of its changes, and a deep ring of large status batches
        // once held most of a busy manager's memory.
        let (events, _) = broadcast::channel(EVENT_RING);
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
        let start = tokio::time::Instant::now();
        let _serial = self.in_time(start, self.write_lock.lock()).await?;
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
        self.in_time(start, proposer.propose(tx.writes)).await??;
        Ok(value)
    }

    /// Runs a transaction's function on the current state and drops its
    /// writes: what [`Store::update`] with `f` would return, committing
    /// nothing (a plan, e.g. `stack deploy --dry-run`).
    pub fn dry_run<R>(
        &self,
        f: impl FnOnce(&State, &mut Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut tx = Tx {
            writes: Vec::new(),
            now: self.clock.now(),
        };
        self.view(|state| f(state, &mut tx))
    }

    /// `step` of a write begun at `start`, within the write's deadline:
    /// [`WRITE_DEADLINE`], or [`BUSY_DEADLINE`] on a leader whose quorum
    /// still answers.
    async fn in_time<T>(
        &self,
        start: tokio::time::Instant,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, StoreError> {
        let mut step = std::pin::pin!(step);
        if let Ok(done) = tokio::time::timeout_at(start + WRITE_DEADLINE, &mut step).await {
            return Ok(done);
        }
        let busy = self.proposer.get().is_some_and(|p| p.leads_with_quorum());
        if !busy {
            return Err(StoreError::no_quorum());
        }
        tokio::time::timeout_at(start + BUSY_DEADLINE, step)
            .await
            .map_err(|_| StoreError::overloaded())
    }

    /// Applies a committed batch (called by the state machine, in log order).
    /// A batch written against versions that are no longer current (a
    /// concurrent write won) is refused whole: nothing of it applies.
    pub fn apply(&self, index: u64, writes: Vec<Write>) -> Result<(), String> {
        let changes: Vec<Change> = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.check_versions(&writes)?;
            let mut changes = Vec::with_capacity(writes.len());
            changes.extend(writes.into_iter().filter_map(|w| state.apply(w, index)));
            changes
        };
        if !changes.is_empty() {
            // No watchers is fine: nobody to tell.
            let _ = self.events.send(Arc::new(Event::of(index, changes)));
        }
        Ok(())
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
    async fn propose(&self, writes: Vec<Write>) -> Result<u64, StoreError> {
        let index = self.index.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let store = self
            .store
            .upgrade()
            .ok_or_else(|| StoreError::Unavailable("store closed".into()))?;
        store.apply(index, writes).map_err(StoreError::Conflict)?;
        Ok(index)
    }
}

macro_rules! impl_into_object {
    ($($ty:ident),*) => {$(
        impl From<shoal_proto::types::v1::$ty> for Object {
            fn from(o: shoal_proto::types::v1::$ty) -> Object {
                Object::$ty(Box::new(o))
            }
        }
    )*};
}
impl_into_object!(Cluster, Node, Service, Network, Secret, Config);

impl From<shoal_proto::types::v1::Task> for Object {
    fn from(o: shoal_proto::types::v1::Task) -> Object {
        Object::Task(Arc::new(o))
    }
}

impl From<Arc<shoal_proto::types::v1::Task>> for Object {
    fn from(o: Arc<shoal_proto::types::v1::Task>) -> Object {
        Object::Task(o)
    }
}

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

    /// Commits after `delay`, as a leader that does or does not have quorum.
    struct SlowProposer {
        delay: std::time::Duration,
        quorum: bool,
    }

    #[tonic::async_trait]
    impl Proposer for SlowProposer {
        async fn propose(&self, _: Vec<Write>) -> Result<u64, StoreError> {
            tokio::time::sleep(self.delay).await;
            Ok(1)
        }

        fn leads_with_quorum(&self) -> bool {
            self.quorum
        }
    }

    async fn slow_write(delay: std::time::Duration, quorum: bool) -> Result<(), StoreError> {
        let store = Store::new(Clock::system());
        store.set_proposer(Arc::new(SlowProposer { delay, quorum }));
        store
            .update(|_, tx| {
                tx.put(service("a"));
                Ok(())
            })
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_write_waits_on_a_busy_leader_and_is_refused_without_quorum() {
        let slow = WRITE_DEADLINE * 3;
        assert!(slow_write(slow, true).await.is_ok(), "busy, not cut off");
        let refused = slow_write(slow, false).await.unwrap_err().to_string();
        assert!(refused.contains("no quorum"), "{refused}");
        let overloaded = slow_write(BUSY_DEADLINE * 2, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(overloaded.contains("overloaded"), "{overloaded}");
    }

    #[test]
    fn waiting_tasks_are_those_not_yet_on_a_node() {
        use shoal_proto::types::v1::TaskState;
        let task = |id: &str, state| Write::Put(crate::harness::task_in_state(id, state).into());
        let waiting = |state: &State| -> Vec<String> {
            state
                .waiting_tasks()
                .filter_map(|t| t.meta.as_ref().map(|m| m.id.clone()))
                .collect()
        };
        let mut state = State::default();
        state.apply(task("a", TaskState::New), 1);
        state.apply(task("b", TaskState::Pending), 2);
        state.apply(task("c", TaskState::Running), 3);
        assert_eq!(waiting(&state), ["a", "b"]);
        state.apply(task("a", TaskState::Pending), 4);
        state.apply(task("b", TaskState::Assigned), 5);
        assert_eq!(waiting(&state), ["a"]);
        state.apply(Write::Delete(Kind::Task, "a".into()), 6);
        assert!(waiting(&state).is_empty());
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
