//! The manager's notion of time. Every rule that depends on time (restart
//! delays and windows, update delays, heartbeat grace, component backoff)
//! reads it from the store's [`Clock`], so tests run those rules with a
//! clock they move themselves ([`Clock::manual`]) instead of waiting.
//!
//! Times are unix milliseconds, as in every stored object.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Clock(Arc<dyn Source>);

trait Source: Send + Sync + 'static {
    fn now(&self) -> i64;
    fn sleep_until(&self, at: i64) -> BoxFuture<'static, ()>;
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(System))
    }

    /// A clock that stands still until [`ManualClock::advance`] moves it.
    pub fn manual(start: i64) -> (Clock, ManualClock) {
        let (tx, _) = watch::channel(start);
        let source = Arc::new(Manual { now: tx });
        (Clock(source.clone()), ManualClock(source))
    }

    /// Unix milliseconds.
    pub fn now(&self) -> i64 {
        self.0.now()
    }

    /// Resolves once the clock reads `at` or later.
    pub fn sleep_until(&self, at: i64) -> BoxFuture<'static, ()> {
        self.0.sleep_until(at)
    }

    pub fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(self.now().saturating_add(millis(duration)))
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// A duration in whole milliseconds, saturating (a duration too long for
/// i64 milliseconds is longer than anything the manager waits for).
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

struct System;

impl Source for System {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at: i64) -> BoxFuture<'static, ()> {
        let wait = at.saturating_sub(self.now()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

struct Manual {
    now: watch::Sender<i64>,
}

impl Source for Manual {
    fn now(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: i64) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock: an error means nobody
            // can move time any more, so this sleep never ends.
            if now.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// The hand that moves a manual clock.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0
            .now
            .send_modify(|now| *now = now.saturating_add(millis(by)));
    }

    pub fn now(&self) -> i64 {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_when_moved_far_enough() {
        let (clock, hand) = Clock::manual(1_000);
        let mut sleep = clock.sleep(Duration::from_secs(5));
        hand.advance(Duration::from_secs(4));
        let early = tokio::time::timeout(Duration::from_millis(20), &mut sleep).await;
        assert!(early.is_err(), "woke before its time");
        hand.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(1), sleep)
            .await
            .expect("woke once the clock reached its time");
        assert_eq!(clock.now(), 6_000);
        // A sleep whose time has passed ends at once.
        tokio::time::timeout(Duration::from_millis(100), clock.sleep_until(10))
            .await
            .unwrap();
    }
}
