//! Docker's judgement of a container's health (`daemon/health.go`): the
//! first probe one interval after the start; during the start period
//! failures do not count, and probes come every start interval until the
//! first success; after it, every interval; `retries` consecutive failures
//! make the container unhealthy. Probing stops there: swarmkit replaces an
//! unhealthy task, it never waits for it to recover.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Check;
use crate::executor::{ExecOutput, Executor};

/// Docker's health states of a container with a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No probe has succeeded yet.
    Starting,
    Healthy,
    Unhealthy,
}

/// What one probe said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub healthy: bool,
    pub output: String,
}

/// Runs the check's command once.
pub trait Probe: Send + 'static {
    fn run(
        &mut self,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = ProbeResult> + Send;
}

/// Where the monitor reads time since the container started, and sleeps.
pub trait Timer: Send + 'static {
    fn elapsed(&self) -> Duration;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// tokio's clock, from when the container started.
pub struct SinceStart(pub tokio::time::Instant);

impl Timer for SinceStart {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// The health of one container as its probes come in.
#[derive(Clone, Debug)]
pub struct Monitor {
    check: Check,
    health: Health,
    failing_streak: u64,
}

impl Monitor {
    /// `health` is where it starts: `Starting` for a new container, the
    /// reported health for one a restarted agent adopts.
    pub fn new(check: Check, health: Health) -> Monitor {
        Monitor {
            check,
            health,
            failing_streak: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// How long to wait for the next probe, `elapsed` after the start.
    pub fn next_interval(&self, elapsed: Duration) -> Duration {
        if elapsed < self.check.start_period && self.health == Health::Starting {
            self.check.start_interval
        } else {
            self.check.interval
        }
    }

    /// Takes the result of a probe begun `began` after the start; returns
    /// the new health when it changed.
    pub fn record(&mut self, began: Duration, result: &ProbeResult) -> Option<Health> {
        let before = self.health;
        if result.healthy {
            self.failing_streak = 0;
            self.health = Health::Healthy;
        } else if !(self.health == Health::Starting && began < self.check.start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= self.check.retries {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

/// A change of health, with the output of the probe that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    pub health: Health,
    /// The failing probe's output (trimmed, short) when unhealthy; empty when healthy.
    pub output: String,
}

/// Probes until the container is unhealthy (or the receiver is gone),
/// sending every change of health. Abort the handle to stop it.
pub fn spawn<P: Probe, T: Timer>(
    monitor: Monitor,
    probe: P,
    timer: T,
) -> (JoinHandle<()>, mpsc::UnboundedReceiver<HealthChange>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = tokio::spawn(run(monitor, probe, timer, tx));
    (handle, rx)
}

async fn run<P: Probe, T: Timer>(
    mut monitor: Monitor,
    mut probe: P,
    timer: T,
    changes: mpsc::UnboundedSender<HealthChange>,
) {
    let argv = monitor.check.argv.clone();
    let timeout = monitor.check.timeout;
    loop {
        timer.sleep(monitor.next_interval(timer.elapsed())).await;
        let began = timer.elapsed();
        let result = probe.run(&argv, timeout).await;
        let Some(health) = monitor.record(began, &result) else {
            continue;
        };
        let output = if result.healthy {
            String::new()
        } else {
            super::reported_output(&result.output)
        };
        if changes.send(HealthChange { health, output }).is_err() || health == Health::Unhealthy {
            return;
        }
    }
}

/// The probe of a task's container: its check's command exec'd inside it.
pub struct ContainerProbe {
    pub executor: Executor,
    pub container_id: String,
}

impl Probe for ContainerProbe {
    fn run(
        &mut self,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = ProbeResult> + Send {
        let executor = self.executor.clone();
        let id = self.container_id.clone();
        let argv = argv.to_vec();
        async move {
            match executor.exec(&id, &argv, timeout).await {
                Ok(ExecOutput {
                    exit_code: Some(0),
                    output,
                }) => ProbeResult {
                    healthy: true,
                    output,
                },
                Ok(ExecOutput {
                    exit_code: Some(code),
                    output,
                }) => ProbeResult {
                    healthy: false,
                    output: if output.trim().is_empty() {
                        format!("health check exited with {code}")
                    } else {
                        output
                    },
                },
                // Docker's words.
                Ok(ExecOutput {
                    exit_code: None, ..
                }) => ProbeResult {
                    healthy: false,
                    output: format!("Health check exceeded timeout ({timeout:?})"),
                },
                Err(e) => ProbeResult {
                    healthy: false,
                    output: e.to_string(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Virtual time: sleeping moves it, nothing waits.
    #[derive(Clone, Default)]
    struct FakeTime(Arc<Mutex<Duration>>);

    impl FakeTime {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Timer for FakeTime {
        fn elapsed(&self) -> Duration {
            self.now()
        }
        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
            self.advance(duration);
            // Let the test look between probes.
            tokio::task::yield_now()
        }
    }

    /// Answers from a script (then keeps answering its last entry), taking
    /// `takes` of virtual time per probe, and notes when each probe began.
    struct ScriptedProbe {
        time: FakeTime,
        script: Vec<bool>,
        takes: Duration,
        began: Arc<Mutex<Vec<Duration>>>,
    }

    impl Probe for ScriptedProbe {
        fn run(&mut self, _: &[String], _: Duration) -> impl Future<Output = ProbeResult> + Send {
            let mut began = self.began.lock().unwrap();
            let healthy = *self.script.get(began.len()).or(self.script.last()).unwrap();
            began.push(self.time.now());
            self.time.advance(self.takes);
            std::future::ready(ProbeResult {
                healthy,
                output: format!("probe {}\n", began.len()),
            })
        }
    }

    fn check(start_period: u64, retries: u64) -> Check {
        Check {
            argv: vec!["true".into()],
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(start_period),
            start_interval: Duration::from_secs(2),
            retries,
        }
    }

    /// Runs the monitor over a script until it stops or `max` probes ran;
    /// returns the changes (with when the probe that made them began, in
    /// whole seconds) and when each probe began.
    async fn play(
        check: Check,
        script: &[bool],
        max: usize,
    ) -> (Vec<(Health, String, u64)>, Vec<u64>) {
        let time = FakeTime::default();
        let began = Arc::new(Mutex::new(Vec::new()));
        let probe = ScriptedProbe {
            time: time.clone(),
            script: script.to_vec(),
            takes: Duration::from_millis(100),
            began: began.clone(),
        };
        let (handle, mut rx) = spawn(Monitor::new(check, Health::Starting), probe, time.clone());
        let mut changes = Vec::new();
        loop {
            tokio::task::yield_now().await;
            while let Ok(change) = rx.try_recv() {
                let at = began.lock().unwrap().last().map_or(0, |d| d.as_secs());
                changes.push((change.health, change.output, at));
            }
            if handle.is_finished() || began.lock().unwrap().len() >= max {
                break;
            }
        }
        handle.abort();
        let secs = began.lock().unwrap().iter().map(|d| d.as_secs()).collect();
        (changes, secs)
    }

    #[tokio::test]
    async fn healthy_at_the_first_success_then_unhealthy_after_retries() {
        let (changes, began) = play(check(0, 3), &[true, false, false, false], 10).await;
        assert_eq!(
            began,
            [10, 20, 30, 40],
            "the first probe waits one interval"
        );
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].0, Health::Healthy);
        assert_eq!(changes[0].1, "");
        assert_eq!(changes[1].0, Health::Unhealthy);
        assert_eq!(
            changes[1].1, "probe 4",
            "the failing probe's output, trimmed"
        );
    }

    #[tokio::test]
    async fn a_success_resets_the_failing_streak() {
        let script = [true, false, false, true, false, false];
        let (changes, began) = play(check(0, 3), &script, 6).await;
        assert_eq!(began.len(), 6);
        assert_eq!(
            changes.iter().map(|c| c.0).collect::<Vec<_>>(),
            [Health::Healthy]
        );
    }

    #[tokio::test]
    async fn failures_in_the_start_period_do_not_count() {
        // Start period 7 s, start interval 2 s (each probe takes 0.1 s):
        // probes at 2, 4.1 and 6.2 s fail without counting; 8.3 s is past
        // the start period, so it counts, and from then on the interval is
        // 10 s: 18.4 and 28.5 s are the second and third failures.
        let (changes, began) = play(check(7, 3), &[false], 10).await;
        assert_eq!(began, [2, 4, 6, 8, 18, 28]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, Health::Unhealthy);
    }

    #[tokio::test]
    async fn a_success_in_the_start_period_ends_it() {
        // Healthy at 4 s: from then on the interval is 10 s, and failures count.
        let (changes, began) = play(check(60, 1), &[false, true, false], 10).await;
        assert_eq!(began, [2, 4, 14]);
        assert_eq!(
            changes.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>(),
            [(Health::Healthy, 4), (Health::Unhealthy, 14)]
        );
    }

    #[tokio::test]
    async fn never_healthy_fails_once_the_start_period_is_over() {
        // A container that never passes: unhealthy after the start period
        // plus `retries` probes, not before.
        let (changes, began) = play(check(3, 2), &[false], 10).await;
        assert_eq!(began, [2, 4, 14]);
        assert_eq!(changes[0].0, Health::Unhealthy);
        assert_eq!(changes[0].2, 14);
    }

    #[test]
    fn an_adopted_healthy_container_keeps_its_health() {
        let mut monitor = Monitor::new(check(0, 2), Health::Healthy);
        let ok = ProbeResult {
            healthy: true,
            output: String::new(),
        };
        assert_eq!(monitor.record(Duration::from_secs(10), &ok), None);
        assert_eq!(monitor.health(), Health::Healthy);
    }
}
