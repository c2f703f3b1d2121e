//! When this manager last heard back from each peer over Raft: the leader
//! sends heartbeats every 100 ms, so a peer silent for a second is
//! unreachable. Membership changes use this to refuse a change that would
//! leave the group without a reachable quorum.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::NodeId;

/// Longer than several heartbeat periods, shorter than a user's patience.
const REACHABLE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
pub struct Contacts(Arc<Mutex<HashMap<NodeId, Instant>>>);

impl Contacts {
    pub fn heard_from(&self, peer: NodeId) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(peer, Instant::now());
        }
    }

    pub fn reachable(&self, peer: NodeId) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|map| map.get(&peer).copied())
            .is_some_and(|at| at.elapsed() < REACHABLE_WITHIN)
    }
}

/// Why removing `leaving` from `voters` would leave the group without a
/// quorum it can reach, if it would. `me` is the leader asking, which
/// counts as reachable.
pub fn removal_breaks_quorum(
    voters: &BTreeSet<NodeId>,
    leaving: NodeId,
    me: NodeId,
    contacts: &Contacts,
) -> Option<String> {
    let remaining: Vec<NodeId> = voters.iter().copied().filter(|v| *v != leaving).collect();
    if remaining.is_empty() {
        return Some("it is the last manager of the swarm".into());
    }
    let reachable = remaining
        .iter()
        .filter(|v| **v == me || contacts.reachable(**v))
        .count();
    let quorum = remaining.len() / 2 + 1;
    (reachable < quorum).then(|| {
        format!(
            "only {reachable} of the {} remaining managers are reachable, and a quorum needs {quorum}",
            remaining.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_needs_a_reachable_quorum_of_the_rest() {
        let contacts = Contacts::default();
        let voters = BTreeSet::from([1, 2, 3]);
        // Only the leader (1) is reachable: removing 2 leaves {1, 3}, one of two.
        assert!(removal_breaks_quorum(&voters, 2, 1, &contacts).is_some());
        contacts.heard_from(3);
        assert_eq!(removal_breaks_quorum(&voters, 2, 1, &contacts), None);
        // The last manager is never removed.
        let alone = BTreeSet::from([1]);
        let why = removal_breaks_quorum(&alone, 1, 1, &contacts).unwrap();
        assert!(why.contains("last manager"), "{why}");
        // A dead manager can be removed while the others are reachable.
        let contacts = Contacts::default();
        contacts.heard_from(2);
        assert_eq!(removal_breaks_quorum(&voters, 3, 1, &contacts), None);
    }
}
