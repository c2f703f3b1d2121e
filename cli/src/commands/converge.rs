//! Waiting for a service to converge after `create`, `update` or `scale`, with
//! docker's progress lines (`overall progress: 1 out of 3 tasks`, `1/3: running`,
//! `verify: Service converged`).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use shoal_proto::control::v1::{GetServiceRequest, ListTasksRequest};
use shoal_proto::types::v1::{service_spec, update_status, Service, Task, TaskState};

use super::parse::format_duration;
use super::tasks::{task_id, task_name};
use super::{Error, Io};
use crate::client::Session;
use crate::output::short_id;

/// How often the CLI polls the manager while waiting.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// The command started a rollout (an update or a rollback): the wait
    /// follows it to its end, a paused or rolled back update fails it, and
    /// task failures are the rollout's failure action's to judge.
    pub watch_update: bool,
    /// The rollout is a rollback the command asked for (`service rollback`):
    /// its completion is success.
    pub rollback: bool,
}

/// What one poll saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    pub desired: usize,
    pub running: usize,
    /// Label (`1/3`, or a node id for global services) → state of its current task.
    pub slots: BTreeMap<String, String>,
    pub converged: bool,
    /// A job: `running` counts completed tasks, `desired` the completions
    /// it needs; it converges when its iteration completed.
    pub job: bool,
}

/// Polls until every desired task of `service_id` runs from the current spec and nothing
/// else runs; fails at once when a task fails (that was not failed already when the wait
/// began) and after `wait.timeout`.
pub async fn wait(
    session: &mut Session,
    service_id: &str,
    wait: Wait,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut known_failures: Option<HashSet<String>> = None;
    let mut last_overall = None;
    let mut last_slots: BTreeMap<String, String> = BTreeMap::new();
    let mut name = service_id.to_string();
    // Why the manager rolled the update back, once it has.
    let mut rolled_back: Option<String> = None;
    loop {
        // While waiting, a manager briefly without quorum (an election) is
        // not the deployment failing: keep polling until the timeout.
        let service = match session
            .client
            .get_service(GetServiceRequest {
                id_or_name: service_id.to_string(),
            })
            .await
        {
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && started.elapsed() < wait.timeout =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            other => other?,
        }
        .into_inner()
        .service
        .ok_or_else(|| Error::Deploy(format!("service {service_id} disappeared")))?;
        name = service
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or(name);
        let tasks = match session
            .client
            .list_tasks(ListTasksRequest {
                service_ids: vec![service_id.to_string()],
                ..Default::default()
            })
            .await
        {
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && started.elapsed() < wait.timeout =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            other => other?,
        }
        .into_inner()
        .tasks;

        let failed = failed_tasks(&service, &tasks);
        match &known_failures {
            // A job's failed task is its restart policy's to retry.
            _ if wait.watch_update || is_job(&service) => {}
            None => known_failures = Some(failed.iter().map(|t| task_id(t).to_string()).collect()),
            Some(known) => {
                if let Some(task) = failed.iter().find(|t| !known.contains(task_id(t))) {
                    let status = task.status.as_ref();
                    let why = status
                        .map(|s| {
                            if s.err.is_empty() {
                                s.message.as_str()
                            } else {
                                s.err.as_str()
                            }
                        })
                        .unwrap_or("");
                    return Err(Error::Deploy(format!(
                        "service {name}: task {} ({}) {}: {why}",
                        task_name(task),
                        short_id(task_id(task)),
                        task.observed_state().display_name(),
                    )));
                }
            }
        }
        let rollout_done =
            !wait.watch_update || follow_rollout(&service, &name, wait, &mut rolled_back, io)?;

        let progress = progress(&service, &tasks);
        if !wait.quiet {
            let overall = (progress.running, progress.desired);
            if last_overall != Some(overall) {
                if progress.job {
                    writeln!(
                        io.err,
                        "job progress: {} out of {} complete",
                        progress.running, progress.desired
                    )?;
                } else {
                    writeln!(
                        io.err,
                        "overall progress: {} out of {} tasks",
                        progress.running, progress.desired
                    )?;
                }
                last_overall = Some(overall);
            }
            for (slot, state) in &progress.slots {
                if last_slots.get(slot) != Some(state) {
                    writeln!(io.err, "{slot}: {state}")?;
                }
            }
            last_slots = progress.slots.clone();
        }
        if progress.converged && rollout_done {
            if !wait.quiet && progress.job {
                writeln!(io.err, "job complete")?;
            } else if !wait.quiet {
                writeln!(io.err, "verify: Service converged")?;
            }
            return Ok(());
        }
        if started.elapsed() >= wait.timeout {
            let (running, desired) = (progress.running, progress.desired);
            return Err(Error::Deploy(format!(
                "service {name} did not converge within {}: {running} of {desired} tasks running; \
                 see `shoal service ps {name}` (or deploy with --detach and check later)",
                format_duration(wait.timeout)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the rollout the command started (docker's progress rules);
/// true once it is over and successful.
fn follow_rollout(
    service: &Service,
    name: &str,
    wait: Wait,
    rolled_back: &mut Option<String>,
    io: &mut Io<'_>,
) -> Result<bool, Error> {
    use update_status::State;
    let Some(status) = &service.update_status else {
        return Ok(true);
    };
    match State::try_from(status.state).unwrap_or(State::Unknown) {
        State::Unknown | State::Completed => Ok(true),
        State::Updating => Ok(false),
        State::Paused => Err(Error::Deploy(format!(
            "service {name}: update paused: {}",
            status.message
        ))),
        State::RollbackPaused => Err(Error::Deploy(format!(
            "service {name}: rollback paused: {}",
            status.message
        ))),
        State::RollbackStarted => {
            if rolled_back.is_none() {
                if !wait.quiet {
                    writeln!(io.err, "rollback: {}", status.message)?;
                }
                *rolled_back = Some(status.message.clone());
            }
            Ok(false)
        }
        State::RollbackCompleted if wait.rollback => Ok(true),
        State::RollbackCompleted => Err(Error::Deploy(format!(
            "service {name}: update rolled back: {}",
            rolled_back.as_deref().unwrap_or(&status.message)
        ))),
    }
}

fn current_version(service: &Service, task: &Task) -> bool {
    task.spec_version == service.spec_version
}

/// Tasks of the current spec that failed or were rejected.
fn failed_tasks<'a>(service: &Service, tasks: &'a [Task]) -> Vec<&'a Task> {
    tasks
        .iter()
        .filter(|t| current_version(service, t))
        .filter(|t| matches!(t.observed_state(), TaskState::Failed | TaskState::Rejected))
        .collect()
}

fn is_job(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(service_spec::Mode::ReplicatedJob(_) | service_spec::Mode::GlobalJob(_))
    )
}

/// Where a job's current iteration stands: a slot (or node) is done once
/// one of its tasks completed; the job converges when every one is.
fn job_progress(service: &Service, tasks: &[Task]) -> Progress {
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    let current: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.job_iteration == iteration)
        .collect();
    let state_of = |of: &[&&Task]| {
        if of.iter().any(|t| t.observed_state() == TaskState::Complete) {
            return "complete";
        }
        of.iter()
            .max_by_key(|t| t.meta.as_ref().map(|m| m.created_at).unwrap_or(0))
            .map_or("new", |t| t.observed_state().display_name())
    };
    let mut slots = BTreeMap::new();
    match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(service_spec::Mode::ReplicatedJob(job)) => {
            let total = super::service::job_total(job);
            for slot in 1..=total {
                let of: Vec<&&Task> = current.iter().filter(|t| t.slot == slot).collect();
                slots.insert(format!("{slot}/{total}"), state_of(&of).to_string());
            }
        }
        _ => {
            let mut nodes: Vec<&str> = current.iter().map(|t| t.node_id.as_str()).collect();
            nodes.sort();
            nodes.dedup();
            for node in nodes {
                let of: Vec<&&Task> = current.iter().filter(|t| t.node_id == node).collect();
                slots.insert(short_id(node).to_string(), state_of(&of).to_string());
            }
        }
    }
    let done = slots.values().filter(|s| *s == "complete").count();
    Progress {
        desired: slots.len(),
        running: done,
        converged: !slots.is_empty() && done == slots.len(),
        slots,
        job: true,
    }
}

/// Where `tasks` stand against `service`'s desired state.
pub fn progress(service: &Service, tasks: &[Task]) -> Progress {
    if is_job(service) {
        return job_progress(service, tasks);
    }
    let live: Vec<&Task> = tasks
        .iter()
        .filter(|t| current_version(service, t) && t.desired() <= TaskState::Running)
        .collect();
    let replicas = match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(service_spec::Mode::Global(_) | service_spec::Mode::GlobalJob(_)) => None,
        Some(service_spec::Mode::Replicated(r)) => Some(r.replicas),
        Some(service_spec::Mode::ReplicatedJob(_)) | None => Some(1),
    };
    let mut slots = BTreeMap::new();
    let desired = match replicas {
        Some(n) => {
            for slot in 1..=n {
                let newest = live
                    .iter()
                    .filter(|t| t.slot == slot)
                    .max_by_key(|t| t.meta.as_ref().map(|m| m.created_at).unwrap_or(0));
                let state = newest
                    .map(|t| t.observed_state().display_name())
                    .unwrap_or("new");
                slots.insert(format!("{slot}/{n}"), state.to_string());
            }
            usize::try_from(n).unwrap_or(usize::MAX)
        }
        None => {
            for task in &live {
                slots.insert(
                    short_id(&task.node_id).to_string(),
                    task.observed_state().display_name().to_string(),
                );
            }
            slots.len()
        }
    };
    let running_current = slots.values().filter(|s| *s == "running").count();
    let running_any = tasks
        .iter()
        .filter(|t| t.observed_state() == TaskState::Running)
        .count();
    // A global service with no task yet has not been placed, it has not converged.
    let placed = replicas.is_some() || desired > 0;
    Progress {
        desired,
        running: running_current,
        slots,
        converged: placed && running_current == desired && running_any == desired,
        job: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{Meta, ReplicatedMode, ServiceSpec, TaskStatus};

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

    fn task(slot: u64, version: u64, desired: TaskState, state: TaskState) -> Task {
        Task {
            meta: Some(Meta {
                id: format!("t{slot}v{version}"),
                ..Default::default()
            }),
            slot,
            spec_version: version,
            desired_state: desired as i32,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converged_only_when_every_slot_runs_the_current_spec_and_old_tasks_stopped() {
        use TaskState::*;
        let svc = service(2, 2);
        let p = progress(
            &svc,
            &[task(1, 2, Running, Running), task(2, 2, Running, Starting)],
        );
        assert!(!p.converged);
        assert_eq!(p.running, 1);
        assert_eq!(p.slots["2/2"], "starting");

        let p = progress(
            &svc,
            &[
                task(1, 2, Running, Running),
                task(2, 2, Running, Running),
                task(2, 1, Shutdown, Running),
            ],
        );
        assert!(!p.converged, "an old task still runs");

        let p = progress(
            &svc,
            &[
                task(1, 2, Running, Running),
                task(2, 2, Running, Running),
                task(2, 1, Shutdown, Shutdown),
            ],
        );
        assert!(p.converged);
        assert_eq!((p.running, p.desired), (2, 2));
    }

    #[test]
    fn scaling_to_zero_converges_once_nothing_runs() {
        use TaskState::*;
        let svc = service(0, 1);
        assert!(!progress(&svc, &[task(1, 1, Shutdown, Running)]).converged);
        assert!(progress(&svc, &[task(1, 1, Shutdown, Shutdown)]).converged);
    }

    #[test]
    fn only_new_failures_of_the_current_spec_count() {
        use TaskState::*;
        let svc = service(1, 2);
        let tasks = [task(1, 1, Shutdown, Failed), task(1, 2, Shutdown, Rejected)];
        let failed = failed_tasks(&svc, &tasks);
        assert_eq!(failed.len(), 1);
        assert_eq!(task_id(failed[0]), "t1v2");
    }

    #[test]
    fn a_job_converges_once_its_current_iteration_completed() {
        use shoal_proto::types::v1::{JobStatus, ReplicatedJob};
        use TaskState::*;
        let job = Service {
            spec: Some(ServiceSpec {
                name: "batch".into(),
                mode: Some(service_spec::Mode::ReplicatedJob(ReplicatedJob {
                    max_concurrent: 2,
                    total_completions: 3,
                })),
                ..Default::default()
            }),
            job_status: Some(JobStatus {
                job_iteration: 1,
                last_execution: 0,
            }),
            ..Default::default()
        };
        let of = |slot: u64, iteration: u64, desired: TaskState, state: TaskState| Task {
            job_iteration: iteration,
            ..task(slot, 1, desired, state)
        };
        // The last iteration's results count for nothing.
        let p = progress(
            &job,
            &[
                of(1, 0, Complete, Complete),
                of(2, 0, Complete, Complete),
                of(3, 0, Complete, Complete),
                of(1, 1, Complete, Complete),
                of(2, 1, Shutdown, Failed),
                of(2, 1, Running, Running),
            ],
        );
        assert!(p.job && !p.converged);
        assert_eq!((p.running, p.desired), (1, 3));
        assert_eq!(p.slots["2/3"], "running");
        assert_eq!(p.slots["3/3"], "new");
        let p = progress(
            &job,
            &[
                of(1, 1, Complete, Complete),
                of(2, 1, Shutdown, Failed),
                of(2, 1, Complete, Complete),
                of(3, 1, Complete, Complete),
            ],
        );
        assert!(p.converged);
        assert_eq!(p.running, 3);
    }

    #[test]
    fn a_wait_follows_the_rollout_to_its_end() {
        use update_status::State;
        let status = |state: State, message: &str| {
            let mut svc = service(1, 2);
            svc.update_status = Some(shoal_proto::types::v1::UpdateStatus {
                state: state as i32,
                message: message.into(),
                ..Default::default()
            });
            svc
        };
        let update = Wait {
            timeout: Duration::from_secs(1),
            quiet: false,
            watch_update: true,
            rollback: false,
        };
        let rollback = Wait {
            rollback: true,
            ..update
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            format: crate::output::Format::Table,
        };
        let mut why = None;
        let mut follow = |svc: &Service, wait: Wait, why: &mut Option<String>| {
            follow_rollout(svc, "web", wait, why, &mut io)
        };
        assert!(!follow(
            &status(State::Updating, "update in progress"),
            update,
            &mut why
        )
        .unwrap());
        assert!(follow(
            &status(State::Completed, "update completed"),
            update,
            &mut why
        )
        .unwrap());
        let paused = follow(
            &status(
                State::Paused,
                "update paused due to failure or early termination of task t1",
            ),
            update,
            &mut why,
        );
        assert_eq!(
            paused.unwrap_err().to_string(),
            "service web: update paused: update paused due to failure or early termination of task t1"
        );
        let started = status(
            State::RollbackStarted,
            "update rolled back due to failure or early termination of task t1",
        );
        assert!(
            !follow(&started, update, &mut why).unwrap(),
            "waits for the rollback"
        );
        let done = status(State::RollbackCompleted, "rollback completed");
        assert_eq!(
            follow(&done, update, &mut why).unwrap_err().to_string(),
            "service web: update rolled back: update rolled back due to failure or early termination of task t1",
            "the reason, not the completion"
        );
        let mut asked = None;
        assert!(
            follow(&done, rollback, &mut asked).unwrap(),
            "a rollback asked for"
        );
        let stuck = status(
            State::RollbackPaused,
            "update paused due to failure or early termination of task t2",
        );
        assert!(follow(&stuck, rollback, &mut asked)
            .unwrap_err()
            .to_string()
            .starts_with("service web: rollback paused: "));
        assert_eq!(
            String::from_utf8_lossy(&err),
            "rollback: update rolled back due to failure or early termination of task t1\n",
            "said once"
        );
    }
}
