//! Sessions and heartbeats of nodes, in memory: the dispatcher records
//! them, the leader's node health component finds the nodes whose
//! heartbeats stopped for a grace multiple of the period.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{millis, Clock};

/// Missed periods before a node counts as down (Swarm's grace multiplier).
const GRACE_PERIODS: u32 = 3;

pub struct Heartbeats {
    period: Duration,
    clock: Clock,
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    id: String,
    /// Clock time of the last sign of life.
    last: i64,
    expired: bool,
}

impl Heartbeats {
    pub fn new(period: Duration, clock: Clock) -> Self {
        Heartbeats {
            period,
            clock,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// Opens a session for a node, replacing any earlier one.
    pub fn open(&self, node_id: &str) -> String {
        let id = crate::ids::new_id();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(
            node_id.to_string(),
            Session {
                id: id.clone(),
                last: self.clock.now(),
                expired: false,
            },
        );
        id
    }

    /// Starts the grace clock for a node known from the store (a new leader
    /// does not know who was alive): it must open a session, or beat on the
    /// one it has, in time. What this manager saw in an earlier term of
    /// leadership counts for nothing.
    pub fn expect(&self, node_id: &str) {
        let now = self.clock.now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions
            .entry(node_id.to_string())
            .or_insert_with(|| Session {
                id: String::new(),
                last: now,
                expired: false,
            });
        session.last = now;
        session.expired = false;
    }

    pub fn valid(&self, node_id: &str, session_id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(node_id)
            .is_some_and(|s| s.id == session_id && !s.expired)
    }

    pub fn beat(&self, node_id: &str, session_id: &str) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get_mut(node_id) {
            Some(s) if s.id == session_id && !s.expired => {
                s.last = self.clock.now();
                true
            }
            _ => false,
        }
    }

    /// Nodes that just missed their grace period (each reported once).
    pub fn expired(&self) -> Vec<String> {
        let grace = millis(self.period * GRACE_PERIODS);
        let now = self.clock.now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (node, s) in sessions.iter_mut() {
            if !s.expired && now.saturating_sub(s.last) > grace {
                s.expired = true;
                out.push(node.clone());
            }
        }
        out
    }
}
