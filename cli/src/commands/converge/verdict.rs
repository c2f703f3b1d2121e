//! The decision about one service, poll after poll: still waiting,
//! converged, or failed (and why, in words a pipeline's log can show).

use std::collections::HashSet;
use std::time::Duration;

use shoal_proto::types::v1::{update_status, Service, Task, TaskState};

use super::progress::{describe, is_job, progress, Progress};
use crate::commands::parse::format_duration;
use crate::commands::tasks::task_id;

/// What to follow of one service.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    /// The command started a rollout (an update or a rollback): the wait
    /// follows it to its end, a paused or rolled back update fails it, and
    /// task failures are the rollout's failure action's to judge.
    pub watch_update: bool,
    /// The rollout is a rollback the command asked for (`service
    /// rollback`): its completion is success.
    pub rollback: bool,
    /// The command made the service's current spec (it created it): no
    /// failure of that spec predates the wait, so even the first poll's
    /// count.
    pub new_spec: bool,
    /// Converged only once it stayed so for the service's update monitor
    /// (5 s unset), docker's "verify that tasks are stable": a task that
    /// crashes right after it started fails the wait. Not for a job, a
    /// service with nothing left running, or a rollout followed to its
    /// end (the manager's completion already waited for the monitor).
    pub verify: bool,
}

/// docker's stability window when the service sets no update monitor.
const VERIFY_DEFAULT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Waiting,
    Converged,
    Failed(String),
}

/// One service followed across polls.
#[derive(Debug)]
pub struct Follow {
    pub target: Target,
    /// The service's name once seen (its id until then).
    pub name: String,
    pub progress: Option<Progress>,
    pub outcome: Outcome,
    /// What it waits on now (`task web.1 starting (health: starting)`).
    pub detail: Option<String>,
    /// Said once, as it happens (`rollback: update rolled back due to ...`);
    /// the view takes them.
    pub notes: Vec<String>,
    /// Tasks of the current spec that had failed when the wait began.
    known_failures: Option<HashSet<String>>,
    /// Why the manager rolled the update back, once it has.
    rolled_back: Option<String>,
    /// Since when (time into the wait) it has been converged, unverified.
    converged_since: Option<Duration>,
    /// When (time into the wait) its stability window ends, while in one.
    verified_at: Option<Duration>,
}

impl Follow {
    pub fn new(target: Target) -> Follow {
        Follow {
            name: target.id.clone(),
            known_failures: target.new_spec.then(HashSet::new),
            target,
            progress: None,
            outcome: Outcome::Waiting,
            detail: None,
            notes: Vec::new(),
            rolled_back: None,
            converged_since: None,
            verified_at: None,
        }
    }

    /// When (time into the wait) time alone may change its verdict: the
    /// end of its stability window, while waiting in one.
    pub fn wake_at(&self) -> Option<Duration> {
        self.verified_at.filter(|_| !self.settled())
    }

    pub fn settled(&self) -> bool {
        self.outcome != Outcome::Waiting
    }

    /// Takes one poll's view of the service (`None`: it is gone) and its
    /// tasks, `elapsed` into the wait. A converged or failed service stays
    /// so.
    pub fn judge(&mut self, service: Option<&Service>, tasks: &[&Task], elapsed: Duration) {
        if self.settled() {
            return;
        }
        let Some(service) = service else {
            self.outcome = Outcome::Failed(format!(
                "service {} was removed while waiting for it",
                self.name
            ));
            return;
        };
        if let Some(spec) = &service.spec {
            self.name = spec.name.clone();
        }
        let progress = progress(service, tasks);
        self.detail = progress.waiting_on.clone();
        let verdict = self.failure(service, tasks, &progress).map_or_else(
            || match self.rollout(service) {
                Ok(done) => Ok(done && progress.converged),
                Err(why) => Err(why),
            },
            Err,
        );
        self.outcome = match verdict {
            Ok(true) => self.verified(service, &progress, elapsed),
            Ok(false) => {
                self.converged_since = None;
                self.verified_at = None;
                if self.detail.is_none() {
                    // Every task runs; the rollout still watches them.
                    self.detail = service
                        .update_status
                        .as_ref()
                        .map(|u| u.message.clone())
                        .filter(|m| !m.is_empty());
                }
                Outcome::Waiting
            }
            Err(why) => Outcome::Failed(format!("service {}: {why}", self.name)),
        };
        self.progress = Some(progress);
    }

    /// A converged service, once it stayed converged long enough (see
    /// [`Target::verify`]).
    fn verified(&mut self, service: &Service, progress: &Progress, elapsed: Duration) -> Outcome {
        if !self.target.verify || self.target.watch_update || progress.job || progress.running == 0
        {
            return Outcome::Converged;
        }
        let window = service
            .spec
            .as_ref()
            .and_then(|s| s.update.as_ref())
            .map(|u| Duration::from_millis(u.monitor_ms))
            .filter(|m| !m.is_zero())
            .unwrap_or(VERIFY_DEFAULT);
        let since = *self.converged_since.get_or_insert(elapsed);
        let stable = elapsed.saturating_sub(since);
        if stable >= window {
            return Outcome::Converged;
        }
        self.verified_at = Some(since + window);
        // The same words all along the window: a plain line is said once.
        self.detail = Some(format!(
            "verifying that tasks stay up for {}",
            format_duration(window)
        ));
        Outcome::Waiting
    }

    /// Gives up on a service still waiting after `timeout`.
    pub fn time_out(&mut self, timeout: Duration) {
        if self.settled() {
            return;
        }
        let mut why = format!(
            "service {}: not converged after {}",
            self.name,
            format_duration(timeout)
        );
        if let Some(p) = &self.progress {
            why.push_str(&format!(": {}", summary(p)));
        }
        if let Some(detail) = &self.detail {
            why.push_str(&format!(", {detail}"));
        }
        self.outcome = Outcome::Failed(why);
    }

    /// A failure that ends the wait: a task the restart policy leaves
    /// failed, or (outside a rollout, which judges its own) a task of the
    /// current spec that a node rejected since the wait began (its image
    /// cannot be pulled, a mount source is missing: trying again does not
    /// help). A task that ran and failed is the restart policy's to
    /// retry: a service that waits for another to come up usually does.
    fn failure(
        &mut self,
        service: &Service,
        tasks: &[&Task],
        progress: &Progress,
    ) -> Option<String> {
        if let Some(given_up) = &progress.given_up {
            return Some(format!(
                "{given_up} (the restart policy does not restart it)"
            ));
        }
        let rejected: Vec<&Task> = tasks
            .iter()
            .copied()
            .filter(|t| t.spec_version == service.spec_version)
            .filter(|t| t.observed_state() == TaskState::Rejected)
            .collect();
        match &self.known_failures {
            _ if self.target.watch_update || is_job(service) => None,
            None => {
                self.known_failures =
                    Some(rejected.iter().map(|t| task_id(t).to_string()).collect());
                None
            }
            Some(known) => rejected
                .iter()
                .find(|t| !known.contains(task_id(t)))
                .map(|t| describe(t)),
        }
    }

    /// Follows the rollout the command started (docker's rules); true once
    /// it is over and successful (or there is none to follow).
    fn rollout(&mut self, service: &Service) -> Result<bool, String> {
        use update_status::State;
        if !self.target.watch_update {
            return Ok(true);
        }
        let Some(status) = &service.update_status else {
            return Ok(true);
        };
        match State::try_from(status.state).unwrap_or(State::Unknown) {
            State::Unknown | State::Completed => Ok(true),
            State::Updating => Ok(false),
            State::Paused => Err(format!("update paused: {}", status.message)),
            State::RollbackPaused => Err(format!("rollback paused: {}", status.message)),
            State::RollbackStarted => {
                if self.rolled_back.is_none() {
                    self.notes.push(format!("rollback: {}", status.message));
                    self.rolled_back = Some(status.message.clone());
                }
                Ok(false)
            }
            State::RollbackCompleted if self.target.rollback => Ok(true),
            State::RollbackCompleted => Err(format!(
                "update rolled back: {}",
                self.rolled_back.as_deref().unwrap_or(&status.message)
            )),
        }
    }
}

/// `2/3 running`, `1 running, 1 completed of 3`, `2/3 completed` (a job).
pub fn summary(p: &Progress) -> String {
    if p.job {
        format!("{}/{} completed", p.running, p.desired)
    } else if p.completed > 0 {
        format!(
            "{} running, {} completed of {}",
            p.running, p.completed, p.desired
        )
    } else {
        format!("{}/{} running", p.running, p.desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{
        restart_policy::Condition, service_spec, ReplicatedMode, ServiceSpec, TaskStatus,
        UpdateStatus,
    };

    fn service(replicas: u64, spec_version: u64) -> Service {
        Service {
            spec: Some(ServiceSpec {
                name: "web".into(),
                mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
                ..Default::default()
            }),
            spec_version,
            ..Default::default()
        }
    }

    fn task(slot: u64, state: TaskState, err: &str) -> Task {
        Task {
            meta: Some(shoal_proto::types::v1::Meta {
                id: format!("t{slot}{}", state.display_name()),
                ..Default::default()
            }),
            service_name: "web".into(),
            slot,
            spec_version: 1,
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                err: err.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn target(watch_update: bool) -> Target {
        Target {
            id: "svc1".into(),
            watch_update,
            rollback: false,
            new_spec: false,
            verify: false,
        }
    }

    fn judged(follow: &mut Follow, service: &Service, tasks: &[Task]) -> Outcome {
        judged_at(follow, service, tasks, Duration::ZERO)
    }

    fn judged_at(follow: &mut Follow, service: &Service, tasks: &[Task], at: Duration) -> Outcome {
        let tasks: Vec<&Task> = tasks.iter().collect();
        follow.judge(Some(service), &tasks, at);
        follow.outcome.clone()
    }

    #[test]
    fn converges_when_every_task_runs_and_stays_converged() {
        let svc = service(2, 1);
        let mut follow = Follow::new(target(false));
        let starting = [
            task(1, TaskState::Running, ""),
            task(2, TaskState::Starting, ""),
        ];
        assert_eq!(judged(&mut follow, &svc, &starting), Outcome::Waiting);
        assert_eq!(follow.name, "web");
        assert_eq!(follow.detail.as_deref(), Some("task web.2 starting"));
        let running = [
            task(1, TaskState::Running, ""),
            task(2, TaskState::Running, ""),
        ];
        assert_eq!(judged(&mut follow, &svc, &running), Outcome::Converged);
        // Settled: a later poll changes nothing.
        assert_eq!(judged(&mut follow, &svc, &starting), Outcome::Converged);
    }

    #[test]
    fn verified_only_once_it_stayed_converged_for_the_monitor() {
        let svc = service(1, 1);
        let mut follow = Follow::new(Target {
            verify: true,
            ..target(false)
        });
        let up = [task(1, TaskState::Running, "")];
        let secs = Duration::from_secs;
        assert_eq!(judged_at(&mut follow, &svc, &up, secs(1)), Outcome::Waiting);
        assert_eq!(
            follow.detail.as_deref(),
            Some("verifying that tasks stay up for 5s")
        );
        // The wait wakes by itself when the window ends.
        assert_eq!(follow.wake_at(), Some(secs(6)));
        // A crash meanwhile starts the window again.
        let down = [task(1, TaskState::Failed, "task: non-zero exit (1)")];
        assert_eq!(
            judged_at(&mut follow, &svc, &down, secs(3)),
            Outcome::Waiting
        );
        assert_eq!(follow.wake_at(), None, "nothing to wait out");
        assert_eq!(judged_at(&mut follow, &svc, &up, secs(4)), Outcome::Waiting);
        assert_eq!(judged_at(&mut follow, &svc, &up, secs(8)), Outcome::Waiting);
        assert_eq!(follow.wake_at(), Some(secs(9)));
        assert_eq!(
            judged_at(&mut follow, &svc, &up, secs(9)),
            Outcome::Converged
        );
        assert_eq!(follow.wake_at(), None);
        // The service's own monitor, when it sets one.
        let mut quick = service(1, 1);
        quick.spec.as_mut().unwrap().update = Some(shoal_proto::types::v1::UpdateConfig {
            monitor_ms: 1000,
            ..Default::default()
        });
        let mut follow = Follow::new(Target {
            verify: true,
            ..target(false)
        });
        assert_eq!(
            judged_at(&mut follow, &quick, &up, secs(1)),
            Outcome::Waiting
        );
        assert_eq!(
            judged_at(&mut follow, &quick, &up, secs(2)),
            Outcome::Converged
        );
    }

    #[test]
    fn a_rejected_task_fails_the_wait_at_once_naming_the_reason() {
        let svc = service(1, 1);
        let mut follow = Follow::new(target(false));
        assert_eq!(
            judged(&mut follow, &svc, &[task(1, TaskState::Preparing, "")]),
            Outcome::Waiting
        );
        let rejected = task(
            1,
            TaskState::Rejected,
            "pull reg/nope:v1 from reg: manifest unknown",
        );
        assert_eq!(
            judged(&mut follow, &svc, &[rejected]),
            Outcome::Failed(
                "service web: task web.1 rejected: pull reg/nope:v1 from reg: manifest unknown"
                    .into()
            )
        );
        // A service the command created has no failure from before: the
        // first poll's rejection counts.
        let mut created = Follow::new(Target {
            new_spec: true,
            ..target(false)
        });
        let rejected = task(1, TaskState::Rejected, "no such image");
        assert!(matches!(
            judged(&mut created, &svc, &[rejected]),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn failures_from_before_the_wait_and_failures_the_policy_retries_do_not_end_it() {
        let svc = service(1, 1);
        let old = task(1, TaskState::Rejected, "old");
        let mut follow = Follow::new(target(false));
        assert_eq!(
            judged(&mut follow, &svc, std::slice::from_ref(&old)),
            Outcome::Waiting
        );
        // A task that ran and failed restarts (restart policy any).
        let crashed = task(1, TaskState::Failed, "task: non-zero exit (1)");
        assert_eq!(judged(&mut follow, &svc, &[old, crashed]), Outcome::Waiting);
        assert_eq!(
            follow.detail.as_deref(),
            Some("task web.1 failed: task: non-zero exit (1)")
        );
    }

    #[test]
    fn a_task_the_restart_policy_leaves_failed_fails_the_wait() {
        let svc = super::super::progress::tests::with_restart(service(1, 1), Condition::None, 0);
        let mut follow = Follow::new(target(false));
        let failed = task(1, TaskState::Failed, "task: non-zero exit (2)");
        assert_eq!(
            judged(&mut follow, &svc, &[failed]),
            Outcome::Failed(
                "service web: task web.1 failed: task: non-zero exit (2) \
                 (the restart policy does not restart it)"
                    .into()
            )
        );
        let mut follow = Follow::new(target(false));
        let exited = task(1, TaskState::Complete, "");
        assert_eq!(judged(&mut follow, &svc, &[exited]), Outcome::Converged);
    }

    #[test]
    fn a_timeout_names_what_the_service_waits_on() {
        let svc = service(1, 1);
        let mut follow = Follow::new(target(false));
        let mut starting = task(1, TaskState::Starting, "");
        starting.status.as_mut().unwrap().health =
            shoal_proto::types::v1::HealthState::Starting as i32;
        judged(&mut follow, &svc, &[starting]);
        follow.time_out(Duration::from_secs(60));
        assert_eq!(
            follow.outcome,
            Outcome::Failed(
                "service web: not converged after 1m0s: 0/1 running, \
                 task web.1 starting (health: starting)"
                    .into()
            )
        );
    }

    #[test]
    fn a_wait_follows_the_rollout_to_its_end() {
        use update_status::State;
        let status = |state: State, message: &str| {
            let mut svc = service(1, 1);
            svc.update_status = Some(UpdateStatus {
                state: state as i32,
                message: message.into(),
                ..Default::default()
            });
            svc
        };
        let running = [task(1, TaskState::Running, "")];
        let mut follow = Follow::new(target(true));
        assert_eq!(
            judged(
                &mut follow,
                &status(State::Updating, "update in progress"),
                &running
            ),
            Outcome::Waiting,
            "the tasks run, the rollout goes on"
        );
        assert_eq!(follow.detail.as_deref(), Some("update in progress"));
        assert_eq!(
            judged(
                &mut follow,
                &status(State::Completed, "update completed"),
                &running
            ),
            Outcome::Converged
        );

        let mut follow = Follow::new(target(true));
        let paused = status(
            State::Paused,
            "update paused due to failure or early termination of task t1",
        );
        assert_eq!(
            judged(&mut follow, &paused, &running),
            Outcome::Failed(
                "service web: update paused: update paused due to failure or early \
                 termination of task t1"
                    .into()
            )
        );

        let mut follow = Follow::new(target(true));
        let started = status(
            State::RollbackStarted,
            "update rolled back due to failure or early termination of task t1",
        );
        assert_eq!(judged(&mut follow, &started, &running), Outcome::Waiting);
        assert_eq!(judged(&mut follow, &started, &running), Outcome::Waiting);
        assert_eq!(
            follow.notes,
            ["rollback: update rolled back due to failure or early termination of task t1"],
            "said once"
        );
        let done = status(State::RollbackCompleted, "rollback completed");
        assert_eq!(
            judged(&mut follow, &done, &running),
            Outcome::Failed(
                "service web: update rolled back: update rolled back due to failure or \
                 early termination of task t1"
                    .into()
            ),
            "the reason, not the completion"
        );

        let mut asked = Follow::new(Target {
            rollback: true,
            ..target(true)
        });
        assert_eq!(judged(&mut asked, &done, &running), Outcome::Converged);
        let stuck = status(
            State::RollbackPaused,
            "update paused due to failure or early termination of task t2",
        );
        let mut asked = Follow::new(Target {
            rollback: true,
            ..target(true)
        });
        assert!(matches!(
            judged(&mut asked, &stuck, &running),
            Outcome::Failed(why) if why.starts_with("service web: rollback paused: ")
        ));
    }

    #[test]
    fn a_service_removed_meanwhile_fails_the_wait() {
        let mut follow = Follow::new(target(false));
        follow.judge(None, &[], Duration::ZERO);
        assert_eq!(
            follow.outcome,
            Outcome::Failed("service svc1 was removed while waiting for it".into())
        );
    }
}
