//! The batches this manager proposed, kept decoded until its state machine
//! applies them: applying its own entry, it takes the batch from here
//! instead of decoding the entry's bytes again. On a leader placing
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

use shoal_proto::raft::v1::WriteBatch;

pub struct Proposed {
    next: AtomicU64,
    batches: Mutex<HashMap<u64, WriteBatch>>,
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
    /// Keeps `batch` until [`Proposed::take`] or [`Proposed::forget`];
    /// returns the id its entry carries.
    pub fn keep(&self, batch: WriteBatch) -> u64 {
        let mut id = self.next.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = self.next.fetch_add(1, Ordering::Relaxed);
        }
        self.lock().insert(id, batch);
        id
    }

    /// The batch proposed under `id` here, if it was.
    pub fn take(&self, id: u64) -> Option<WriteBatch> {
        if id == 0 {
            return None;
        }
        self.lock().remove(&id)
    }

    /// Drops a batch whose proposal ended without this manager applying it
    /// (it failed, or it timed out and may still commit: then it is
    /// decoded).
    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, WriteBatch>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_taken_once_and_ids_of_two_managers_differ() {
        let (ours, theirs) = (Proposed::default(), Proposed::default());
        let batch = WriteBatch::default();
        let id = ours.keep(batch.clone());
        let other = theirs.keep(batch.clone());
        assert_ne!(id, other, "random starts");
        assert_eq!(ours.take(other), None, "another manager's proposal");
        assert_eq!(ours.take(id), Some(batch));
        assert_eq!(ours.take(id), None, "taken");
        assert_eq!(ours.take(0), None, "no id");
        let forgotten = ours.keep(WriteBatch::default());
        ours.forget(forgotten);
        assert_eq!(ours.take(forgotten), None);
    }
}
