//! Where one service's tasks stand against its desired state, from one
//! poll: slot by slot, and whether it converged.

use std::collections::BTreeMap;

use shoal_proto::types::v1::{
    restart_policy::Condition, service_spec, HealthState, Service, Task, TaskState,
};

use crate::commands::tasks::{health_name, task_name};
use crate::output::short_id;

/// What one poll saw of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub desired: usize,
    /// Slots whose current task runs (a job: slots completed).
    pub running: usize,
    /// Slots whose task exited 0 and that the restart policy leaves so
    /// (`none`, `on-failure`): done, as a one-shot task should be.
    pub completed: usize,
    /// Label (`1/3`, or a node id for global services) → state of its current task.
    pub slots: BTreeMap<String, String>,
    pub converged: bool,
    /// A job: it converges when its iteration completed.
    pub job: bool,
    /// The first slot not done yet, as a user reads it
    /// (`task web.2 starting (health: starting)`).
    pub waiting_on: Option<String>,
    /// A slot whose task failed and that the restart policy will not
    /// restart (`none`, or its attempts used up): it never converges.
    pub given_up: Option<String>,
}

/// How one slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Running,
    Completed,
    /// Failed, and left so by the restart policy.
    GivenUp,
    Waiting,
}

fn created_at(task: &Task) -> i64 {
    task.meta.as_ref().map_or(0, |m| m.created_at)
}

fn current_version(service: &Service, task: &Task) -> bool {
    task.spec_version == service.spec_version
}

pub fn is_job(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.mode.as_ref()),
        Some(service_spec::Mode::ReplicatedJob(_) | service_spec::Mode::GlobalJob(_))
    )
}

/// Whether the restart policy leaves `task` (ended) as it is: the rule of
/// the manager's `orchestrator/restart.rs` (`decide`), seen from its
/// records: `none` restarts nothing, `on-failure` no task that exited 0,
/// and none restarts past `max_attempts` (counted within `window` of the
/// task's end, as the manager counts them when it ends).
fn left_as_it_is(service: &Service, task: &Task) -> bool {
    let policy = service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.restart)
        .unwrap_or_default();
    let failed = matches!(
        task.observed_state(),
        TaskState::Failed | TaskState::Rejected
    ) || task
        .status
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .is_some_and(|c| c.exit_code != 0);
    let restarts = match Condition::try_from(policy.condition).unwrap_or(Condition::Any) {
        Condition::Any => true,
        Condition::OnFailure => failed,
        Condition::None => false,
    };
    if !restarts {
        return true;
    }
    if policy.max_attempts == 0 {
        return false;
    }
    let ended = task.status.as_ref().map_or(0, |s| s.timestamp);
    let since = match i64::try_from(policy.window_ms) {
        Ok(window) if window > 0 => ended.saturating_sub(window),
        _ => i64::MIN,
    };
    let counted = task.restarted_at.iter().filter(|t| **t >= since).count();
    u64::try_from(counted).unwrap_or(u64::MAX) >= policy.max_attempts
}

/// `task web.1 starting (health: starting)`, `task web.1 rejected: pull
/// web:v9 ...`, `task web.1 pending: no suitable node (...)`.
pub fn describe(task: &Task) -> String {
    let state = task.observed_state();
    let mut text = format!("task {} {}", task_name(task), state.display_name());
    let status = task.status.as_ref();
    let health = status.map_or(HealthState::None, |s| s.health());
    if state == TaskState::Starting && health != HealthState::None {
        text.push_str(&format!(" (health: {})", health_name(health)));
    }
    let why = status.map_or("", |s| {
        if s.err.is_empty() && state.is_terminal() {
            s.message.as_str()
        } else {
            s.err.as_str()
        }
    });
    if !why.is_empty() {
        text.push_str(": ");
        text.push_str(why);
    }
    text
}

/// How the newest task of a slot stands (`None`: the slot has none yet).
fn standing(service: &Service, newest: Option<&Task>) -> Standing {
    let Some(task) = newest else {
        return Standing::Waiting;
    };
    let state = task.observed_state();
    if state == TaskState::Running && !is_job(service) {
        return Standing::Running;
    }
    if state == TaskState::Complete {
        // A job's slot is done once a task completed; a service's when the
        // policy leaves the exited task be.
        if is_job(service) || left_as_it_is(service, task) {
            return Standing::Completed;
        }
        return Standing::Waiting;
    }
    if state.is_terminal() && left_as_it_is(service, task) {
        return Standing::GivenUp;
    }
    Standing::Waiting
}

/// The task that stands for a slot: its newest; for a job, one that
/// completed (the slot is done, whatever came after).
fn newest_of(job: bool, of: Vec<&Task>) -> Option<&Task> {
    if job {
        if let Some(done) = of
            .iter()
            .find(|t| t.observed_state() == TaskState::Complete)
        {
            return Some(done);
        }
    }
    of.into_iter().max_by_key(|t| created_at(t))
}

/// Where `tasks` (the service's) stand against `service`'s desired state.
pub fn progress(service: &Service, tasks: &[&Task]) -> Progress {
    let job = is_job(service);
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    // The tasks that count: a service's of its current spec that are meant
    // to run, a job's of its current iteration (a completed task is marked
    // desired `complete`, and still counts).
    let current: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| {
            if job {
                t.job_iteration == iteration
            } else {
                current_version(service, t) && t.desired() <= TaskState::Running
            }
        })
        .collect();
    // Label → the slot's newest task.
    let mut slots: Vec<(String, Option<&Task>)> = Vec::new();
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    let counted: Option<u64> = match mode {
        Some(service_spec::Mode::Replicated(r)) => Some(r.replicas),
        Some(service_spec::Mode::ReplicatedJob(j)) => Some(crate::commands::service::job_total(j)),
        Some(service_spec::Mode::Global(_) | service_spec::Mode::GlobalJob(_)) => None,
        None => Some(1),
    };
    match counted {
        Some(n) => {
            for slot in 1..=n {
                let of = current.iter().copied().filter(|t| t.slot == slot).collect();
                slots.push((format!("{slot}/{n}"), newest_of(job, of)));
            }
        }
        None => {
            let mut nodes: Vec<&str> = current.iter().map(|t| t.node_id.as_str()).collect();
            nodes.sort();
            nodes.dedup();
            for node in nodes {
                let of = current
                    .iter()
                    .copied()
                    .filter(|t| t.node_id == node)
                    .collect();
                slots.push((short_id(node).to_string(), newest_of(job, of)));
            }
        }
    }

    let mut progress = Progress {
        desired: slots.len(),
        running: 0,
        completed: 0,
        slots: BTreeMap::new(),
        converged: false,
        job,
        waiting_on: None,
        given_up: None,
    };
    for (label, newest) in &slots {
        let state = match newest {
            Some(t) if job && t.observed_state() == TaskState::Complete => "complete",
            Some(t) => t.observed_state().display_name(),
            None => "new",
        };
        progress.slots.insert(label.clone(), state.to_string());
        match standing(service, *newest) {
            Standing::Running => progress.running += 1,
            // A job counts its completions as its progress.
            Standing::Completed if job => progress.running += 1,
            Standing::Completed => progress.completed += 1,
            Standing::GivenUp => {
                if progress.given_up.is_none() {
                    progress.given_up = newest.map(describe);
                }
            }
            Standing::Waiting => {
                if progress.waiting_on.is_none() {
                    progress.waiting_on = Some(match newest {
                        Some(t) => describe(t),
                        None if job => format!("slot {label} not started yet"),
                        None => format!("slot {label} has no task yet"),
                    });
                }
            }
        }
    }
    // Every slot done, and nothing else runs (the old spec's tasks stopped).
    let running_any = tasks
        .iter()
        .filter(|t| t.observed_state() == TaskState::Running)
        .count();
    let done = progress.running + progress.completed == progress.desired;
    // A global service with no task yet has not been placed: not converged.
    let placed = counted.is_some() || progress.desired > 0;
    progress.converged =
        placed && done && progress.given_up.is_none() && (job || running_any == progress.running);
    progress
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use shoal_proto::types::v1::{
        ContainerStatus, JobStatus, Meta, ReplicatedJob, ReplicatedMode, RestartPolicy,
        ServiceSpec, TaskSpec, TaskStatus,
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

    pub(crate) fn with_restart(mut svc: Service, condition: Condition, max: u64) -> Service {
        svc.spec.as_mut().unwrap().task = Some(TaskSpec {
            restart: Some(RestartPolicy {
                condition: condition as i32,
                max_attempts: max,
                ..Default::default()
            }),
            ..Default::default()
        });
        svc
    }

    pub(crate) fn task(slot: u64, version: u64, desired: TaskState, state: TaskState) -> Task {
        Task {
            meta: Some(Meta {
                id: format!("t{slot}v{version}"),
                ..Default::default()
            }),
            service_name: "web".into(),
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

    fn exited(mut task: Task, code: i32) -> Task {
        task.status.as_mut().unwrap().container = Some(ContainerStatus {
            exit_code: code,
            ..Default::default()
        });
        task
    }

    fn of(tasks: &[Task]) -> Vec<&Task> {
        tasks.iter().collect()
    }

    #[test]
    fn converged_only_when_every_slot_runs_the_current_spec_and_old_tasks_stopped() {
        use TaskState::*;
        let svc = service(2, 2);
        let tasks = [task(1, 2, Running, Running), task(2, 2, Running, Starting)];
        let p = progress(&svc, &of(&tasks));
        assert!(!p.converged);
        assert_eq!(p.running, 1);
        assert_eq!(p.slots["2/2"], "starting");
        assert_eq!(p.waiting_on.as_deref(), Some("task web.2 starting"));

        let tasks = [
            task(1, 2, Running, Running),
            task(2, 2, Running, Running),
            task(2, 1, Shutdown, Running),
        ];
        assert!(
            !progress(&svc, &of(&tasks)).converged,
            "an old task still runs"
        );

        let tasks = [
            task(1, 2, Running, Running),
            task(2, 2, Running, Running),
            task(2, 1, Shutdown, Shutdown),
        ];
        let p = progress(&svc, &of(&tasks));
        assert!(p.converged);
        assert_eq!((p.running, p.desired), (2, 2));
        assert_eq!(p.waiting_on, None);
    }

    #[test]
    fn scaling_to_zero_converges_once_nothing_runs() {
        use TaskState::*;
        let svc = service(0, 1);
        assert!(!progress(&svc, &of(&[task(1, 1, Shutdown, Running)])).converged);
        assert!(progress(&svc, &of(&[task(1, 1, Shutdown, Shutdown)])).converged);
    }

    #[test]
    fn a_task_waiting_on_its_health_check_says_so() {
        use TaskState::*;
        let mut starting = task(1, 1, Running, Starting);
        starting.status.as_mut().unwrap().health = HealthState::Starting as i32;
        let p = progress(&service(1, 1), &of(&[starting]));
        assert_eq!(
            p.waiting_on.as_deref(),
            Some("task web.1 starting (health: starting)")
        );
        let mut pending = task(1, 1, Running, Pending);
        pending.status.as_mut().unwrap().err = "no suitable node".into();
        let p = progress(&service(1, 1), &of(&[pending]));
        assert_eq!(
            p.waiting_on.as_deref(),
            Some("task web.1 pending: no suitable node")
        );
    }

    #[test]
    fn a_task_the_restart_policy_leaves_exited_is_done_or_given_up() {
        use TaskState::*;
        // restart: none: exited 0 is done, as a one-shot task is.
        let none = with_restart(service(1, 1), Condition::None, 0);
        let ok = exited(task(1, 1, Running, Complete), 0);
        let p = progress(&none, &of(std::slice::from_ref(&ok)));
        assert!(p.converged, "{p:?}");
        assert_eq!((p.running, p.completed), (0, 1));
        // ... and a failure is never coming back.
        let mut bad = exited(task(1, 1, Running, Failed), 3);
        bad.status.as_mut().unwrap().err = "task: non-zero exit (3)".into();
        let p = progress(&none, &of(std::slice::from_ref(&bad)));
        assert!(!p.converged);
        assert_eq!(
            p.given_up.as_deref(),
            Some("task web.1 failed: task: non-zero exit (3)")
        );
        // on-failure leaves a success be, restarts a failure.
        let on_failure = with_restart(service(1, 1), Condition::OnFailure, 0);
        assert!(progress(&on_failure, &of(std::slice::from_ref(&ok))).converged);
        let p = progress(&on_failure, &of(std::slice::from_ref(&bad)));
        assert_eq!(p.given_up, None, "it restarts");
        // ... until its attempts are used up.
        let twice = with_restart(service(1, 1), Condition::OnFailure, 2);
        let mut last = bad.clone();
        last.restarted_at = vec![1, 2];
        assert!(progress(&twice, &of(&[last])).given_up.is_some());
        // any restarts even a success.
        let p = progress(&service(1, 1), &of(&[ok]));
        assert!(!p.converged);
        assert_eq!(p.given_up, None);
    }

    #[test]
    fn a_job_converges_once_its_current_iteration_completed() {
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
        let of_iteration = |slot: u64, iteration: u64, desired: TaskState, state: TaskState| Task {
            job_iteration: iteration,
            ..task(slot, 1, desired, state)
        };
        // The last iteration's results count for nothing.
        let tasks = [
            of_iteration(1, 0, Complete, Complete),
            of_iteration(2, 0, Complete, Complete),
            of_iteration(3, 0, Complete, Complete),
            of_iteration(1, 1, Complete, Complete),
            of_iteration(2, 1, Shutdown, Failed),
            of_iteration(2, 1, Running, Running),
        ];
        let p = progress(&job, &of(&tasks));
        assert!(p.job && !p.converged);
        assert_eq!((p.running, p.desired), (1, 3));
        assert_eq!(p.slots["2/3"], "running");
        assert_eq!(p.slots["3/3"], "new");
        let tasks = [
            of_iteration(1, 1, Complete, Complete),
            of_iteration(2, 1, Shutdown, Failed),
            of_iteration(2, 1, Complete, Complete),
            of_iteration(3, 1, Complete, Complete),
        ];
        let p = progress(&job, &of(&tasks));
        assert!(p.converged);
        assert_eq!(p.running, 3);
    }
}
