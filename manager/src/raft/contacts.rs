//! When this manager last heard back from each peer over Raft: the leader
//! sends heartbeats every 100 ms, so a peer silent for a second is
//! unreachable. Membership changes use this to refuse a change that would
//! leave the group without a reachable quorum.
//!
//! It also records which peers refused this manager's vote requests because
//! it is not a voter of theirs: a manager that was down while it was
//! demoted learns of its removal that way (nobody sends a removed member
//! anything), once most of the voters it knows of refuse it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::NodeId;

/// Longer than several heartbeat periods, shorter than a user's patience.
const REACHABLE_WITHIN: Duration = Duration::from_secs(1);

/// Refusals older than this no longer count (the peer may have caught up).
const REFUSALS_COUNT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Contacts {
    answered: Arc<Mutex<HashMap<NodeId, Instant>>>,
    refused_as_non_voter: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl Contacts {
    pub fn heard_from(&self, peer: NodeId) {
        if let Ok(mut map) = self.answered.lock() {
            map.insert(peer, Instant::now());
        }
    }

    pub fn reachable(&self, peer: NodeId) -> bool {
        recent(&self.answered, peer, REACHABLE_WITHIN)
    }

    /// `peer` refused a vote request: this manager is not one of its voters.
    pub fn refused_as_non_voter(&self, peer: NodeId) {
        if let Ok(mut map) = self.refused_as_non_voter.lock() {
            map.insert(peer, Instant::now());
        }
    }

    /// Whether most of the other `voters` refused this manager lately: the
    /// group removed it (a committed removal is known to a majority).
    pub fn removed_by_majority(&self, voters: &BTreeSet<NodeId>, me: NodeId) -> bool {
        let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != me).collect();
        let refused = others
            .iter()
            .filter(|v| recent(&self.refused_as_non_voter, **v, REFUSALS_COUNT_WITHIN))
            .count();
        !others.is_empty() && refused > others.len() / 2
    }
}

fn recent(map: &Mutex<HashMap<NodeId, Instant>>, peer: NodeId, within: Duration) -> bool {
    map.lock()
        .ok()
        .and_then(|map| map.get(&peer).copied())
        .is_some_and(|at| at.elapsed() < within)
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

    #[test]
    fn a_manager_is_removed_once_most_other_voters_refuse_it() {
        let contacts = Contacts::default();
        let voters = BTreeSet::from([1, 2, 3, 4, 5]);
        contacts.refused_as_non_voter(2);
        contacts.refused_as_non_voter(3);
        // Two of the four others: one lagging peer could be wrong, two of
        // four is not a majority.
        assert!(!contacts.removed_by_majority(&voters, 1));
        contacts.refused_as_non_voter(4);
        assert!(contacts.removed_by_majority(&voters, 1));
        // Alone in its own view: nobody can tell it.
        assert!(!Contacts::default().removed_by_majority(&BTreeSet::from([1]), 1));
    }
}
