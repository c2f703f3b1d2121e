//! Jobs: services that run to completion (swarmkit's job orchestrators).
//!
//! A replicated job has slots 1..=total_completions; each must end with a
//! task of the current iteration that completed (exit 0), at most
//! `max_concurrent` running at once. A global job runs one task to
//! completion on every eligible node, nodes that join during the iteration
//! included. A failed task is restarted in its slot as the restart policy
//! says (the CLI makes jobs default to `on-failure`). Every spec change
//! (or `--force`) is a new iteration (`Service.job_status`, bumped by the
//! control API): the tasks of earlier iterations that still run are
//! stopped, their results kept until the reaper's history limit.
//!
//! A job's task keeps desired state `running` while it runs (the agent
//! stops anything desired beyond it); once it completed it is marked
//! desired `complete`, so the agent forgets it and nothing restarts it.

use shoal_proto::types::v1::{
    service_spec::Mode, Node, NodeAvailability, Service, ServiceSpec, Task, TaskState,
};

use super::{new_task, restart, slots, Slot, Wake};
use crate::scheduler;
use crate::store::{State, Tx};

pub fn is_job(spec: &ServiceSpec) -> bool {
    matches!(
        spec.mode,
        Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_))
    )
}

/// The job iteration the service runs now.
pub fn iteration(service: &Service) -> u64 {
    service.job_status.as_ref().map_or(0, |j| j.job_iteration)
}

pub fn reconcile(state: &State, service: &Service, tx: &mut Tx, wake: &mut Wake) {
    let Some(spec) = &service.spec else { return };
    let id = service.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("");
    let current = iteration(service);
    for task in state.tasks_of_service(id) {
        if task.observed_state() == TaskState::Complete
            && task.desired_state == TaskState::Running as i32
        {
            // Its result: nothing may run it again.
            let mut done = task.clone();
            done.desired_state = TaskState::Complete as i32;
            tx.put(done);
        } else if task.job_iteration != current
            && task.desired_state <= TaskState::Running as i32
            && !task.observed_state().is_terminal()
        {
            let mut old = task.clone();
            old.desired_state = TaskState::Shutdown as i32;
            tx.put(old);
        }
    }
    let tasks = state
        .tasks_of_service(id)
        .filter(|t| t.job_iteration == current);
    match &spec.mode {
        Some(Mode::ReplicatedJob(job)) => {
            let slots = slots::group_tasks(state, tasks, false);
            let max_concurrent = job.max_concurrent.max(1);
            let total = if job.total_completions == 0 {
                max_concurrent
            } else {
                job.total_completions
            };
            replicated(service, &slots, total, max_concurrent, tx, wake);
        }
        Some(Mode::GlobalJob(_)) => {
            let slots = slots::group_tasks(state, tasks, true);
            global(state, service, spec, &slots, tx, wake);
        }
        _ => {}
    }
}

/// What one slot of a job needs.
enum Need {
    /// Its task completed: the slot is done.
    Done,
    /// A task runs (or is on its way).
    Running,
    /// A new task, in this slot, as soon as concurrency allows.
    Start,
    /// Nothing now (it failed for good, or its restart delay runs, or an
    /// old task still holds it).
    Wait,
}

fn need(service: &Service, slot: &Slot, tx: &mut Tx, wake: &mut Wake) -> Need {
    if slot
        .tasks
        .iter()
        .any(|t| t.observed_state() == TaskState::Complete)
    {
        return Need::Done;
    }
    let Some(newest) = slot.newest_active() else {
        return if slot.busy() { Need::Wait } else { Need::Start };
    };
    if !newest.observed_state().is_terminal() {
        if slot.node_id.is_empty() && slots_node_lost(slot, newest) {
            // Its node is down: the replicated job's slot runs elsewhere
            // (unless the policy restarts nothing: then it waits there).
            if !restart::after_node_loss(service, newest, tx.now()) {
                return Need::Wait;
            }
            slot.shut_down(newest, tx, "node is down");
            return if slot.busy_besides(newest) {
                Need::Wait
            } else {
                Need::Start
            };
        }
        return Need::Running;
    }
    match restart::decide(service, newest, tx.now()) {
        restart::Decision::Now => {
            slot.shut_down(newest, tx, "task exited; restarting");
            if slot.busy_besides(newest) {
                Need::Wait
            } else {
                Need::Start
            }
        }
        restart::Decision::After(delay) => {
            wake.at_most(delay);
            Need::Wait
        }
        restart::Decision::Never => Need::Wait,
    }
}

fn slots_node_lost(slot: &Slot, task: &Task) -> bool {
    task.meta
        .as_ref()
        .is_some_and(|m| slot.unreachable.contains(m.id.as_str()))
}

/// The slot's next task, carrying the restarts its last one counted.
fn next_task(service: &Service, slot: Option<&Slot>, number: u64, node_id: &str, now: i64) -> Task {
    let mut task = new_task(service, number, node_id, now);
    task.job_iteration = iteration(service);
    if let Some(previous) = slot.and_then(|s| s.tasks.last()) {
        task.restarted_at = restart::carried_history(service, previous, now);
    }
    task
}

fn replicated(
    service: &Service,
    slots: &[Slot],
    total: u64,
    max_concurrent: u64,
    tx: &mut Tx,
    wake: &mut Wake,
) {
    let mut running = 0;
    // Restarts first (lowest slot first), then slots never started.
    let mut restarts = Vec::new();
    let mut fresh = Vec::new();
    for number in 1..=total {
        match slots.iter().find(|s| s.number == number) {
            None => fresh.push(number),
            Some(slot) => match need(service, slot, tx, wake) {
                Need::Done | Need::Wait => {}
                Need::Running => running += 1,
                Need::Start => restarts.push(slot),
            },
        }
    }
    let mut room = max_concurrent.saturating_sub(running);
    for slot in restarts {
        if room == 0 {
            return;
        }
        tx.put(next_task(service, Some(slot), slot.number, "", tx.now()));
        room -= 1;
    }
    for number in fresh {
        if room == 0 {
            return;
        }
        tx.put(next_task(service, None, number, "", tx.now()));
        room -= 1;
    }
    // Slots beyond a lowered total: stop what still runs.
    for slot in slots.iter().filter(|s| s.number > total) {
        for task in slot.active().filter(|t| !t.observed_state().is_terminal()) {
            slot.shut_down(task, tx, "scaled down");
        }
    }
}

fn global(
    state: &State,
    service: &Service,
    spec: &ServiceSpec,
    slots: &[Slot],
    tx: &mut Tx,
    wake: &mut Wake,
) {
    let constraints = spec
        .task
        .as_ref()
        .map(|t| t.constraints.as_slice())
        .unwrap_or(&[]);
    let fits = |n: &&Node| {
        scheduler::availability(n) != NodeAvailability::Drain
            && scheduler::constraint::all_match(constraints, n)
    };
    let node_id = |n: &Node| n.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    for node in state.nodes.values().filter(fits) {
        if !scheduler::node_ready(node) {
            // Down: its task (if any) is that node's and waits for it.
            continue;
        }
        let id = node_id(node);
        let slot = slots.iter().find(|s| s.node_id == id);
        let need = match slot {
            None => Need::Start,
            Some(slot) => need(service, slot, tx, wake),
        };
        // A paused node takes no new task.
        if matches!(need, Need::Start) && scheduler::availability(node) == NodeAvailability::Active
        {
            tx.put(next_task(service, slot, 0, &id, tx.now()));
        }
    }
    for slot in slots {
        let kept = state.nodes.get(&slot.node_id).is_some_and(|n| fits(&n));
        if !kept {
            for task in slot.active().filter(|t| !t.observed_state().is_terminal()) {
                slot.shut_down(task, tx, "node is no longer eligible");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_proto::types::v1::{
        restart_policy::Condition, service_spec::Mode, GlobalJob, ReplicatedJob, RestartPolicy,
        ServiceSpec, Task, TaskState,
    };

    use crate::harness::{id, running, service, tasks_of, Harness, Script};
    use crate::store::State;

    /// A replicated job of `image`: `total` completions, `max` at once,
    /// failures restarted at once (as `on-failure`, the CLI's default).
    fn job(name: &str, image: &str, total: u64, max: u64) -> ServiceSpec {
        let mut spec = service(name, image, 0);
        spec.mode = Some(Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent: max,
            total_completions: total,
        }));
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            condition: Condition::OnFailure as i32,
            delay_ms: Some(0),
            ..Default::default()
        });
        spec
    }

    fn completed(s: &State, service: &str) -> Vec<Task> {
        tasks_of(s, service)
            .into_iter()
            .filter(|t| t.observed_state() == TaskState::Complete)
            .collect()
    }

    async fn running_n(harness: &Harness, service: &str, n: usize) -> Vec<String> {
        harness
            .until(&format!("{n} running"), |s| {
                let r = running(s, service);
                (r.len() == n).then(|| r.iter().map(id).collect())
            })
            .await
    }

    #[tokio::test]
    async fn a_replicated_job_runs_until_its_completions_at_most_max_concurrent_at_once() {
        let harness = Harness::start().await;
        harness.add_node("a").await;
        harness.add_node("b").await;
        let batch = harness.create_service(job("batch", "batch", 5, 2)).await;
        let mut done = 0;
        while done < 5 {
            let now = running_n(&harness, &batch, (5 - done).min(2)).await;
            harness.settle().await;
            assert_eq!(
                harness.store.view(|s| running(s, &batch).len()),
                (5 - done).min(2),
                "more than max_concurrent at once"
            );
            harness.exit(&now[0], 0).await;
            done += 1;
            harness
                .until("the completion counted", |s| {
                    (completed(s, &batch).len() == done).then_some(())
                })
                .await;
        }
        harness.settle().await;
        assert_eq!(harness.created(&batch), 5, "a task beyond the completions");
        let tasks = harness.tasks(&batch);
        let mut slots: Vec<u64> = tasks.iter().map(|t| t.slot).collect();
        slots.sort();
        assert_eq!(slots, [1, 2, 3, 4, 5]);
        // Completed tasks are done for good: nothing makes them run again.
        assert!(tasks
            .iter()
            .all(|t| t.desired_state == TaskState::Complete as i32));
        harness.advance(Duration::from_secs(60)).await;
        assert_eq!(harness.created(&batch), 5);
    }

    #[tokio::test]
    async fn failed_job_tasks_restart_in_their_slot_as_the_policy_says() {
        let harness = Harness::start().await;
        harness.add_node("a").await;
        let mut spec = job("flaky", "flaky", 2, 2);
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            condition: Condition::OnFailure as i32,
            delay_ms: Some(1_000),
            max_attempts: 1,
            ..Default::default()
        });
        let flaky = harness.create_service(spec).await;
        let first = running_n(&harness, &flaky, 2).await;
        let slot = harness.store.view(|s| s.tasks[&first[0]].slot);
        harness.exit(&first[0], 3).await;
        harness.settle().await;
        assert_eq!(harness.created(&flaky), 2, "restarted before the delay");
        harness.advance(Duration::from_secs(1)).await;
        let again = running_n(&harness, &flaky, 2).await;
        let restarted = again.iter().find(|t| !first.contains(t)).unwrap().clone();
        assert_eq!(harness.store.view(|s| s.tasks[&restarted].slot), slot);
        // One attempt allowed: a second failure leaves the slot failed.
        harness.exit(&restarted, 3).await;
        harness.advance(Duration::from_secs(5)).await;
        assert_eq!(harness.created(&flaky), 3);
        let other = first[1].clone();
        harness.exit(&other, 0).await;
        harness.settle().await;
        assert_eq!(harness.store.view(|s| completed(s, &flaky).len()), 1);
        assert_eq!(harness.created(&flaky), 3);

        // `none` never restarts a failed job task.
        let mut spec = job("once", "once", 1, 1);
        spec.task.as_mut().unwrap().restart = Some(RestartPolicy {
            condition: Condition::None as i32,
            ..Default::default()
        });
        harness.script("once", Script::Exit(1));
        let once = harness.create_service(spec).await;
        harness.advance(Duration::from_secs(30)).await;
        assert_eq!(harness.created(&once), 1);
    }

    #[tokio::test]
    async fn a_spec_change_or_force_starts_a_new_iteration() {
        let harness = Harness::start().await;
        harness.add_node("a").await;
        harness.script("report", Script::Exit(0));
        let report = harness.create_service(job("report", "report", 2, 2)).await;
        harness
            .until("2 completed", |s| {
                (completed(s, &report).len() == 2).then_some(())
            })
            .await;
        assert_eq!(
            harness.service(&report).job_status.unwrap().job_iteration,
            0
        );
        // `service update --force`: runs again, the first results stay.
        harness
            .update_service(&report, |s| s.task.as_mut().unwrap().force_update += 1)
            .await;
        harness
            .until("4 completed", |s| {
                (completed(s, &report).len() == 4).then_some(())
            })
            .await;
        harness.settle().await;
        let updated = harness.service(&report);
        assert_eq!(updated.job_status.unwrap().job_iteration, 1);
        assert!(updated.update_status.is_none(), "a job never rolls");
        let iterations: Vec<u64> = harness
            .tasks(&report)
            .iter()
            .map(|t| t.job_iteration)
            .collect();
        assert_eq!(iterations, [0, 0, 1, 1]);

        // A change while an iteration runs stops its tasks.
        harness.script("slow", Script::Run);
        harness
            .update_service(&report, |s| {
                s.task.as_mut().unwrap().container.as_mut().unwrap().image = "slow".into()
            })
            .await;
        running_n(&harness, &report, 2).await;
        harness
            .update_service(&report, |s| s.task.as_mut().unwrap().force_update += 1)
            .await;
        harness
            .until("iteration 3 running, iteration 2 stopped", |s| {
                let tasks = tasks_of(s, &report);
                let old_down = tasks.iter().filter(|t| t.job_iteration == 2).all(|t| {
                    t.observed_state() == TaskState::Shutdown
                        && t.desired_state == TaskState::Shutdown as i32
                });
                let new_running = running(s, &report)
                    .iter()
                    .filter(|t| t.job_iteration == 3)
                    .count();
                (old_down && new_running == 2).then_some(())
            })
            .await;
        // A job is never turned into a service, nor back.
        let current = harness.service(&report);
        let mut spec = current.spec.clone().unwrap();
        spec.mode = service("x", "x", 1).mode;
        let refused = harness
            .store
            .update(|s, tx| crate::controlapi::services::update(s, tx, &current, spec).map(|_| ()))
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("service mode change is not allowed"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_global_job_runs_once_on_every_node_and_on_a_node_that_joins() {
        let harness = Harness::start().await;
        harness.add_node("a").await;
        harness.add_node("b").await;
        harness.script("setup", Script::Exit(0));
        let mut spec = service("setup", "setup", 0);
        spec.mode = Some(Mode::GlobalJob(GlobalJob {}));
        let setup = harness.create_service(spec).await;
        harness
            .until("one completion per node", |s| {
                (completed(s, &setup).len() == 2).then_some(())
            })
            .await;
        let c = harness.add_node("c").await;
        harness
            .until("the joining node's completion", |s| {
                completed(s, &setup)
                    .iter()
                    .any(|t| t.node_id == c)
                    .then_some(())
            })
            .await;
        harness.advance(Duration::from_secs(30)).await;
        let tasks = harness.tasks(&setup);
        assert_eq!(tasks.len(), 3, "{tasks:?}");
        let mut nodes: Vec<&str> = tasks.iter().map(|t| t.node_id.as_str()).collect();
        nodes.sort();
        assert_eq!(nodes, ["node-a", "node-b", "node-c"]);
    }

    #[tokio::test]
    async fn the_reaper_keeps_a_jobs_results_until_a_new_iteration() {
        let harness = Harness::start().await;
        harness.add_node("a").await;
        harness
            .store
            .update(|s, tx| crate::controlapi::settings::set_task_history_limit(s, tx, 0))
            .await
            .unwrap();
        harness.script("calc", Script::Exit(0));
        let calc = harness.create_service(job("calc", "calc", 3, 3)).await;
        harness
            .until("3 completed", |s| {
                (completed(s, &calc).len() == 3).then_some(())
            })
            .await;
        harness.advance(Duration::from_secs(60)).await;
        assert_eq!(harness.tasks(&calc).len(), 3, "a job's results reaped");
        harness
            .update_service(&calc, |s| s.task.as_mut().unwrap().force_update += 1)
            .await;
        harness
            .until("only the new iteration's results", |s| {
                let tasks = tasks_of(s, &calc);
                (tasks.len() == 3
                    && tasks
                        .iter()
                        .all(|t| t.job_iteration == 1 && t.observed_state() == TaskState::Complete))
                .then_some(())
            })
            .await;
    }
}
