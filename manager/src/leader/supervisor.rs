//! The supervisor: runs the leader's components while this manager leads.
//! A component that returns or panics is logged as an error with its cause
//! and started again, rebuilt from the store, after a backoff that grows
//! while it keeps failing. Nothing dies quietly.
//!
//! A component can always be rebuilt (it holds nothing but what it reads
//! from the store), so the supervisor never gives up on one; a component
//! that fails at every start shows as a stream of errors with a growing
//! restart count in the log.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinSet;

use super::{Component, LeaderEnv};
use crate::error::ManagerError;

/// The first restart waits this long; each failure in a row doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long counts as healthy: the next failure starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

type Start = Arc<dyn Fn(&LeaderEnv) -> BoxFuture<'static, Result<(), ManagerError>> + Send + Sync>;

/// How to start one component.
#[derive(Clone)]
pub struct Spec {
    pub name: &'static str,
    start: Start,
}

impl Spec {
    pub fn of<C: Component>() -> Spec {
        Spec::new(C::NAME, |env| C::build(env).run().boxed())
    }

    pub fn new(
        name: &'static str,
        start: impl Fn(&LeaderEnv) -> BoxFuture<'static, Result<(), ManagerError>>
            + Send
            + Sync
            + 'static,
    ) -> Spec {
        Spec {
            name,
            start: Arc::new(start),
        }
    }
}

/// Restarts per component since this manager process started.
#[derive(Clone, Default)]
pub struct Restarts(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Restarts {
    fn count(&self, name: &'static str) -> u64 {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(name).or_default();
        *count += 1;
        *count
    }

    pub fn of(&self, name: &str) -> u64 {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(name).copied().unwrap_or(0)
    }

    pub fn all(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The running components; dropping it stops them all (leadership lost).
pub struct Supervisor {
    _keepers: JoinSet<()>,
}

impl Supervisor {
    pub fn start(env: LeaderEnv, specs: Vec<Spec>, restarts: Restarts) -> Supervisor {
        let mut keepers = JoinSet::new();
        for spec in specs {
            keepers.spawn(keep(env.clone(), spec, restarts.clone()));
        }
        Supervisor { _keepers: keepers }
    }
}

/// Runs one component for as long as the supervisor lives.
async fn keep(env: LeaderEnv, spec: Spec, restarts: Restarts) {
    let clock = env.store.clock().clone();
    let mut failures_in_row = 0u32;
    loop {
        let started = clock.now();
        let outcome = AssertUnwindSafe((spec.start)(&env)).catch_unwind().await;
        let cause = match outcome {
            Ok(Ok(())) => "it returned while this manager still leads".to_string(),
            Ok(Err(e)) => format!("it failed: {}", e.chain()),
            Err(panic) => format!("it panicked: {}", panic_message(panic.as_ref())),
        };
        if clock.now().saturating_sub(started) >= crate::clock::millis(HEALTHY_RUN) {
            failures_in_row = 0;
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(failures_in_row))
            .min(MAX_BACKOFF);
        failures_in_row = failures_in_row.saturating_add(1);
        let count = restarts.count(spec.name);
        tracing::error!(
            component = spec.name,
            restarts = count,
            "leader component {} stopped: {cause}; restarting it in {} ms (restart {count} of this component)",
            spec.name,
            backoff.as_millis(),
        );
        clock.sleep(backoff).await;
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::Notify;

    use super::*;
    use crate::harness::{running, service, tasks_of, Harness, Logs};
    use crate::runtime::leader_components as components;
    use crate::scheduler::Scheduler;
    use shoal_proto::types::v1::TaskState;

    /// Waits (real time) until `component` has been restarted `count` times.
    async fn restarted(harness: &Harness, component: &str, count: u64) {
        for _ in 0..500 {
            if harness.restarts.of(component) >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!(
            "{component} restarted {} times, not {count}",
            harness.restarts.of(component)
        );
    }

    #[tokio::test]
    async fn a_component_that_panics_is_logged_restarted_and_the_cluster_converges_again() {
        let (logs, _capture) = Logs::capture();
        // The real scheduler, made to panic when the test trips it.
        let trip = Arc::new(Notify::new());
        let armed = Arc::new(AtomicBool::new(true));
        let mut specs = components();
        specs.retain(|s| s.name != Scheduler::NAME);
        let (t, a) = (trip.clone(), armed.clone());
        specs.push(Spec::new(Scheduler::NAME, move |env| {
            let scheduler = Scheduler::build(env).run();
            let (trip, armed) = (t.clone(), a.clone());
            async move {
                if !armed.load(Ordering::SeqCst) {
                    return scheduler.await;
                }
                tokio::select! {
                    result = scheduler => result,
                    _ = trip.notified() => {
                        armed.store(false, Ordering::SeqCst);
                        panic!("injected fault: the scheduler lost its footing");
                    }
                }
            }
            .boxed()
        }));
        let harness = Harness::start_with(specs).await;
        harness.add_node("n1").await;
        let web = harness.create_service(service("web", "web:v1", 1)).await;
        harness
            .until("web running", |s| {
                (running(s, &web).len() == 1).then_some(())
            })
            .await;

        trip.notify_one();
        restarted(&harness, Scheduler::NAME, 1).await;
        // While it waits out its backoff nothing is placed.
        let api = harness.create_service(service("api", "api:v1", 2)).await;
        harness.settle().await;
        let api_tasks = harness.tasks(&api);
        assert_eq!(api_tasks.len(), 2);
        assert!(
            api_tasks
                .iter()
                .all(|t| t.observed_state() == TaskState::Pending),
            "placed while the scheduler was down: {api_tasks:?}"
        );

        harness.advance(FIRST_BACKOFF).await;
        harness
            .until("api running after the scheduler restarted", |s| {
                (running(s, &api).len() == 2).then_some(())
            })
            .await;
        assert_eq!(harness.store.view(|s| tasks_of(s, &web)).len(), 1);
        let logged = logs.lines_with(&[
            "ERROR",
            "leader component scheduler stopped: it panicked: injected fault: the scheduler lost its footing",
            "restart 1 of this component",
        ]);
        assert_eq!(logged.len(), 1, "logs:\n{}", logs.text());
        assert_eq!(harness.restarts.of(Scheduler::NAME), 1);
    }

    #[tokio::test]
    async fn a_component_that_keeps_failing_is_restarted_with_a_growing_backoff() {
        let (logs, _capture) = Logs::capture();
        let mut specs = components();
        specs.push(Spec::new("flaky", |_| {
            async {
                let cause = std::io::Error::other("the disk is on fire");
                Err(ManagerError::other("flaky gave up", cause))
            }
            .boxed()
        }));
        let harness = Harness::start_with(specs).await;
        restarted(&harness, "flaky", 1).await;
        let mut waited = Duration::ZERO;
        for (restart, backoff_ms) in [(2, 100), (3, 200), (4, 400), (5, 800)] {
            let backoff = Duration::from_millis(backoff_ms);
            harness.advance(backoff - Duration::from_millis(1)).await;
            assert_eq!(
                harness.restarts.of("flaky"),
                restart - 1,
                "restarted before its backoff of {backoff:?}"
            );
            harness.advance(Duration::from_millis(1)).await;
            restarted(&harness, "flaky", restart).await;
            waited += backoff;
        }
        assert_eq!(waited, Duration::from_millis(1500));
        let logged = logs.lines_with(&[
            "leader component flaky stopped: it failed: flaky gave up: the disk is on fire",
        ]);
        assert_eq!(logged.len(), 5, "logs:\n{}", logs.text());
        // The other components were never disturbed.
        for spec in components() {
            assert_eq!(harness.restarts.of(spec.name), 0, "{}", spec.name);
        }
    }
}
