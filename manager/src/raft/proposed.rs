//! The batches this manager proposed, kept as writes until its state
//! machine applies them: applying its own entry, it takes the writes from
//! here instead of decoding the entry's bytes again. On a leader placing
//! thousands of tasks a second, decoding what it had just encoded was a
//! tenth of its time.
//!
//! A batch is found by the proposal id its entry carries. Ids are unique
//! across managers (a random start per process), so an entry another
//! manager proposed never matches one of ours: it is decoded as before.
//! Nothing here is needed for correctness: a batch not found (proposed
//! elsewhere, or replayed from the log after a restart) is decoded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::store::{encode_batch, Write};

pub struct Proposed {
    next: AtomicU64,
    batches: Mutex<HashMap<u64, Vec<Write>>>,
}

impl Default for Proposed {
    fn default() -> Self {
        // Never 0: 0 is an entry without a proposal id (older builds).
        let start = rand::random::<u64>() | 1;
        Proposed {
            next: AtomicU64::new(start),
            batches: Mutex::new(HashMap::new()),
        }
    }
}

impl Proposed {
    /// Keeps `writes` until [`Proposed::take`] or [`Proposed::forget`];
    /// returns the id its entry carries.
    pub fn keep(&self, writes: Vec<Write>) -> u64 {
        let mut id = self.next.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = self.next.fetch_add(1, Ordering::Relaxed);
        }
        self.lock().insert(id, writes);
        id
    }

    /// The batch proposed under `id` here, if it was.
    pub fn take(&self, id: u64) -> Option<Vec<Write>> {
        if id == 0 {
            return None;
        }
        self.lock().remove(&id)
    }

    /// The encoded batch of the writes kept under `id` (to forward them to
    /// the leader).
    pub fn encoded(&self, id: u64) -> Option<Vec<u8>> {
        self.lock().get(&id).map(|writes| encode_batch(writes))
    }

    /// Drops a batch whose proposal ended without this manager applying it
    /// (it failed, or it timed out and may still commit: then it is
    /// decoded).
    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Write>>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Kind;

    #[test]
    fn a_batch_is_taken_once_and_ids_of_two_managers_differ() {
        let (ours, theirs) = (Proposed::default(), Proposed::default());
        let writes = || vec![Write::Delete(Kind::Task, "t".into())];
        let id = ours.keep(writes());
        let other = theirs.keep(writes());
        assert_ne!(id, other, "random starts");
        assert!(ours.take(other).is_none(), "another manager's proposal");
        assert_eq!(ours.take(id).map(|w| w.len()), Some(1));
        assert!(ours.take(id).is_none(), "taken");
        assert!(ours.take(0).is_none(), "no id");
        let forgotten = ours.keep(writes());
        ours.forget(forgotten);
        assert!(ours.take(forgotten).is_none());
    }
}
