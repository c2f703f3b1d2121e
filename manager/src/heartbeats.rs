//! Sessions and heartbeats of nodes, in memory: the dispatcher records
//! them, the leader's node health component finds the nodes whose
//! heartbeats stopped for a grace multiple of the period.
//!
//! The period is the cluster's (`swarm init|update --dispatcher-heartbeat`),
//! read from the store at every use, so a change applies at once: agents
//! learn it from the answer to their next heartbeat. Until then a node
//! beats at the period it was told last, so its grace is judged by the
//! longer of that and the new one (a shortened period never marks down a
//! node that beats as it was told).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{millis, Clock};
use crate::store::{State, Store};

/// Missed periods before a node counts as down (Swarm's grace multiplier).
pub const GRACE_PERIODS: u32 = 3;

pub struct Heartbeats {
    store: Arc<Store>,
    /// The period of a cluster that names none.
    default_period: Duration,
    clock: Clock,
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    id: String,
    /// Clock time of the last sign of life.
    last: i64,
    /// The period the node was last told to beat at.
    told: Duration,
    expired: bool,
}

/// The heartbeat period the cluster in `state` names, else `default`.
pub fn period_of(state: &State, default: Duration) -> Duration {
    match state.cluster().and_then(|c| c.spec.as_ref()) {
        Some(spec) if spec.heartbeat_period_ms > 0 => {
            Duration::from_millis(spec.heartbeat_period_ms.into())
        }
        _ => default,
    }
}

impl Heartbeats {
    pub fn new(store: Arc<Store>, default_period: Duration) -> Self {
        Heartbeats {
            clock: store.clock().clone(),
            store,
            default_period,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The cluster's heartbeat period now.
    pub fn period(&self) -> Duration {
        self.store.view(|s| period_of(s, self.default_period))
    }

    /// Opens a session for a node, replacing any earlier one; returns its id
    /// and the period the node is to beat at.
    pub fn open(&self, node_id: &str) -> (String, Duration) {
        let id = crate::ids::new_id();
        let period = self.period();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(
            node_id.to_string(),
            Session {
                id: id.clone(),
                last: self.clock.now(),
                told: period,
                expired: false,
            },
        );
        (id, period)
    }

    /// Starts the grace clock for a node known from the store (a new leader
    /// does not know who was alive): it must open a session, or beat on the
    /// one it has, in time. What this manager saw in an earlier term of
    /// leadership counts for nothing.
    pub fn expect(&self, node_id: &str) {
        let now = self.clock.now();
        let period = self.period();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions
            .entry(node_id.to_string())
            .or_insert_with(|| Session {
                id: String::new(),
                last: now,
                told: period,
                expired: false,
            });
        session.last = now;
        // Whatever another manager told it: the longest it may have been
        // told is not known, so the current period, at least.
        session.told = session.told.max(period);
        session.expired = false;
    }

    pub fn valid(&self, node_id: &str, session_id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(node_id)
            .is_some_and(|s| s.id == session_id && !s.expired)
    }

    /// A heartbeat on a session: the period the node is to beat at from
    /// now on, or nothing when the session is not (or no longer) valid.
    pub fn beat(&self, node_id: &str, session_id: &str) -> Option<Duration> {
        let period = self.period();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get_mut(node_id) {
            Some(s) if s.id == session_id && !s.expired => {
                s.last = self.clock.now();
                s.told = period;
                Some(period)
            }
            _ => None,
        }
    }

    /// Nodes that just missed their grace period (each reported once).
    pub fn expired(&self) -> Vec<String> {
        let period = self.period();
        let now = self.clock.now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (node, s) in sessions.iter_mut() {
            let grace = millis(s.told.max(period) * GRACE_PERIODS);
            if !s.expired && now.saturating_sub(s.last) > grace {
                s.expired = true;
                out.push(node.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlapi::settings::{self, SettingsChange};

    const DEFAULT: Duration = Duration::from_secs(5);

    async fn with_period(ms: Option<u32>) -> (Heartbeats, crate::clock::ManualClock) {
        let (clock, hand) = Clock::manual(1_000_000);
        let store = crate::harness::initialised_store(clock).await;
        if let Some(ms) = ms {
            set_period(&store, ms).await;
        }
        (Heartbeats::new(store, DEFAULT), hand)
    }

    async fn set_period(store: &Store, ms: u32) {
        let change = SettingsChange {
            heartbeat_period_ms: Some(ms),
            ..Default::default()
        };
        store
            .update(|s, tx| settings::update(s, tx, &change))
            .await
            .expect("set the period");
    }

    #[tokio::test]
    async fn the_period_is_the_clusters_and_a_node_told_it_is_down_after_three() {
        let (beats, hand) = with_period(None).await;
        assert_eq!(beats.period(), DEFAULT, "a cluster that names none");
        set_period(&beats.store, 2_000).await;
        let (session, told) = beats.open("n1");
        assert_eq!(told, Duration::from_secs(2));
        assert_eq!(beats.beat("n1", &session), Some(Duration::from_secs(2)));
        hand.advance(Duration::from_millis(6_000));
        assert!(beats.expired().is_empty(), "3 periods of 2 s: not yet");
        hand.advance(Duration::from_millis(1));
        assert_eq!(beats.expired(), ["n1"]);
        assert!(beats.expired().is_empty(), "reported once");
        assert_eq!(beats.beat("n1", &session), None, "an expired session");
    }

    #[tokio::test]
    async fn a_shortened_period_gives_a_node_the_grace_it_was_told_until_it_beats() {
        let (beats, hand) = with_period(Some(10_000)).await;
        let (session, _) = beats.open("n1");
        set_period(&beats.store, 1_000).await;
        // Told 10 s: it may be silent for 30 s.
        hand.advance(Duration::from_secs(29));
        assert!(beats.expired().is_empty());
        // Its next beat tells it 1 s: from then on, 3 s of grace.
        assert_eq!(beats.beat("n1", &session), Some(Duration::from_secs(1)));
        hand.advance(Duration::from_millis(3_001));
        assert_eq!(beats.expired(), ["n1"]);
    }

    #[tokio::test]
    async fn a_lengthened_period_applies_at_once() {
        let (beats, hand) = with_period(Some(1_000)).await;
        beats.open("n1");
        set_period(&beats.store, 10_000).await;
        hand.advance(Duration::from_secs(29));
        assert!(beats.expired().is_empty(), "judged by the longer period");
        hand.advance(Duration::from_millis(1_001));
        assert_eq!(beats.expired(), ["n1"]);
    }
}
