//! Orchestrators: keep each service's tasks matching its spec. One pass
//! looks at the services that changed (or at every one, see
//! [`watch::Scope`]) and
//! writes all its decisions in one batch:
//! new tasks for empty slots, restarts of dead tasks (restart policy), scale
//! down, and rolling updates (see `update`); jobs run to completion (see
//! `jobs`). A task on a node that is down is replaced elsewhere at once.
//! Tasks are never edited into a new spec: a change always means a new
//! task in the same slot.

mod jobs;
mod restart;
mod slots;
mod update;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::types::v1::{
    service_spec::Mode, Node, NodeAvailability, Service, Task, TaskState, TaskStatus,
};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
use crate::scheduler;
use crate::store::watch::{self, Scope};
use crate::store::{Change, Kind, State, Store, StoreError, Tx};

pub use jobs::is_job;
pub use slots::Slot;

pub struct Orchestrator {
    store: Arc<Store>,
}

impl Component for Orchestrator {
    const NAME: &'static str = "orchestrator";

    fn build(env: &LeaderEnv) -> Self {
        Orchestrator {
            store: env.store.clone(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        let mut events = self.store.subscribe();
        let clock = self.store.clock().clone();
        let mut scope = Scope::All;
        // When a pass asked to look again (restart and update delays), as
        // the clock reads; a pass over some services only brings it nearer.
        let mut due: Option<i64> = None;
        loop {
            let whole = matches!(scope, Scope::All);
            match self.pass(&scope).await {
                Ok(wake) => {
                    let at = wake.map(|w| clock.now().saturating_add(w.as_millis() as i64));
                    due = match (whole, due, at) {
                        (true, _, at) => at,
                        (false, Some(due), Some(at)) => Some(due.min(at)),
                        (false, due, at) => due.or(at),
                    };
                }
                Err(e) => {
                    tracing::warn!("orchestrator pass failed: {e}");
                    scope = Scope::All;
                    clock.sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            let sleep = match due {
                Some(at) => clock.sleep_until(at),
                None => clock.sleep(Duration::from_secs(3600)),
            };
            tokio::select! {
                next = watch::next_scope(&mut events, relevant, watch::NO_SETTLE) => match next {
                    Some(next) => scope = next,
                    None => return Ok(()),
                },
                _ = sleep => scope = Scope::All,
            }
        }
    }
}

impl Orchestrator {
    /// One reconciliation of the services in `scope`; returns when it
    /// wants to look again even if nothing changes (restart delays, update
    /// delays).
    pub async fn pass(&self, scope: &Scope) -> Result<Option<Duration>, StoreError> {
        self.store
            .update(|state, tx| {
                let mut wake = Wake::default();
                match scope {
                    Scope::All => {
                        for service in state.services.values() {
                            reconcile_service(state, service, tx, &mut wake);
                        }
                        remove_orphans(state, tx);
                    }
                    Scope::Services(ids) => {
                        for id in ids {
                            match state.services.get(id) {
                                Some(service) => reconcile_service(state, service, tx, &mut wake),
                                None => remove_orphans_of(state, id, tx),
                            }
                        }
                    }
                }
                Ok(wake.0)
            })
            .await
    }
}

fn relevant(change: &Change) -> bool {
    matches!(change.kind(), Kind::Service | Kind::Task | Kind::Node)
}

/// The earliest moment a pass must run again.
#[derive(Default)]
struct Wake(Option<Duration>);

impl Wake {
    fn at_most(&mut self, after: Duration) {
        self.0 = Some(self.0.map_or(after, |w| w.min(after)));
    }
}

fn reconcile_service(state: &State, service: &Service, tx: &mut Tx, wake: &mut Wake) {
    let Some(spec) = &service.spec else { return };
    if jobs::is_job(spec) {
        // Jobs run to completion and never take part in rolling updates.
        jobs::reconcile(state, service, tx, wake);
        return;
    }
    let slots = slots::group(state, service);
    // First, so that any decision below about the same task wins.
    update::adopt_unchanged(state, service, &slots, tx);
    match &spec.mode {
        Some(Mode::Global(_)) => {
            // Ready nodes that are not drained and meet the constraints
            // keep their task; a paused node gets none it does not have.
            let constraints = spec
                .task
                .as_ref()
                .map(|t| t.constraints.as_slice())
                .unwrap_or(&[]);
            let eligible: Vec<&Node> = state
                .nodes
                .values()
                .filter(|n| scheduler::node_ready(n))
                .filter(|n| scheduler::availability(n) != NodeAvailability::Drain)
                .filter(|n| scheduler::constraint::all_match(constraints, n))
                .collect();
            let nodes: Vec<&str> = eligible
                .iter()
                .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str()))
                .collect();
            for (node, id) in eligible.iter().zip(&nodes) {
                let slot = slots.iter().find(|s| s.node_id == *id);
                let live = slot.is_some_and(|s| s.newest_active().is_some());
                if !live && scheduler::availability(node) != NodeAvailability::Active {
                    continue;
                }
                reconcile_slot(state, service, slot, 0, id, tx, wake);
            }
            // A down node keeps its task: it is that node's, nothing
            // replaces it elsewhere, and it resumes when the node is back.
            let down: Vec<&str> = state
                .nodes
                .values()
                .filter(|n| scheduler::availability(n) != NodeAvailability::Drain)
                .filter(|n| scheduler::constraint::all_match(constraints, n))
                .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str()))
                .filter(|id| slots::node_is_down(state, id))
                .collect();
            for slot in slots.iter().filter(|s| {
                !nodes.contains(&s.node_id.as_str()) && !down.contains(&s.node_id.as_str())
            }) {
                slot.shut_down_active(tx, "node is no longer eligible");
            }
            let wanted: Vec<&Slot> = slots
                .iter()
                .filter(|s| nodes.contains(&s.node_id.as_str()))
                .collect();
            update::advance(state, service, &wanted, tx, wake);
        }
        _ => {
            let replicas = match &spec.mode {
                Some(Mode::Replicated(r)) => r.replicas,
                _ => 1,
            };
            for number in 1..=replicas {
                let slot = slots.iter().find(|s| s.number == number);
                reconcile_slot(state, service, slot, number, "", tx, wake);
            }
            for slot in slots.iter().filter(|s| s.number > replicas) {
                slot.shut_down_active(tx, "scaled down");
            }
            let wanted: Vec<&Slot> = slots.iter().filter(|s| s.number <= replicas).collect();
            update::advance(state, service, &wanted, tx, wake);
        }
    }
}

/// Makes one slot hold a live task: creates the first one, replaces a dead
/// one as the restart policy allows, and retires older tasks once a newer
/// one runs (start-first updates).
fn reconcile_slot(
    state: &State,
    service: &Service,
    slot: Option<&Slot>,
    number: u64,
    node_id: &str,
    tx: &mut Tx,
    wake: &mut Wake,
) {
    let Some(slot) = slot else {
        tx.put(new_task(service, number, node_id, tx.now()));
        return;
    };
    let Some(newest) = slot.newest_active() else {
        // Nothing wants to run: fill the slot once the previous task is down
        // (stop-first), unless the restart policy retired it for good.
        if !slot.busy() {
            let mut task = new_task(service, number, node_id, tx.now());
            if let Some(previous) = slot.tasks.last() {
                task.restarted_at = restart::carried_history(service, previous, tx.now());
            }
            tx.put(task);
        }
        return;
    };
    if node_id.is_empty()
        && slots::on_lost_node(state, newest)
        && !newest.observed_state().is_terminal()
    {
        // Node failure: nobody can stop the task or confirm it stopped, so
        // it does not hold the slot; a new task runs elsewhere now, and the
        // node's agent stops the old one if the node comes back. A task
        // the policy does not restart stays its node's.
        if restart::after_node_loss(service, newest, tx.now()) {
            slot.shut_down(newest, tx, "node is down");
            if !slot.busy_besides(newest) {
                let mut task = new_task(service, number, node_id, tx.now());
                task.restarted_at = restart::history_after(service, newest, tx.now());
                tx.put(task);
            }
        }
        return;
    }
    if node_id.is_empty() && on_drained_node(state, newest) {
        if update::starts_first(service) {
            // Drain of a start-first service (its update order, as
            // swarmkit's restart supervisor reads it): a new task elsewhere
            // first; the drained one retires once that runs (below), and
            // keeps running where no other node takes the new one.
            tx.put(new_task(service, number, node_id, tx.now()));
        } else {
            // The task stops, and the slot gets a new one elsewhere once
            // it is down (the scheduler never picks a drained node).
            slot.shut_down(newest, tx, "node is drained");
        }
        return;
    }
    if newest.observed_state().is_terminal() {
        match restart::decide(service, newest, tx.now()) {
            restart::Decision::Now => {
                slot.shut_down(newest, tx, "task exited; restarting");
                if !slot.busy_besides(newest) {
                    let mut task = new_task(service, number, node_id, tx.now());
                    task.restarted_at = restart::history_after(service, newest, tx.now());
                    tx.put(task);
                }
            }
            restart::Decision::After(delay) => wake.at_most(delay),
            restart::Decision::Never => {}
        }
        return;
    }
    if newest.observed_state() == TaskState::Running {
        for older in slot.active().filter(|t| t.meta != newest.meta) {
            slot.shut_down(older, tx, "replaced by a newer task");
        }
    }
}

fn on_drained_node(state: &State, task: &Task) -> bool {
    !task.node_id.is_empty()
        && !task.observed_state().is_terminal()
        && state
            .nodes
            .get(&task.node_id)
            .is_some_and(|n| scheduler::availability(n) == NodeAvailability::Drain)
}

pub(crate) fn new_task(service: &Service, slot: u64, node_id: &str, now: i64) -> Task {
    let spec = service.spec.clone().unwrap_or_default();
    Task {
        meta: Some(shoal_proto::types::v1::Meta {
            id: crate::ids::new_id(),
            ..Default::default()
        }),
        service_id: service
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default(),
        service_name: spec.name.clone(),
        slot,
        node_id: node_id.to_string(),
        spec: spec.task.clone(),
        spec_version: service.spec_version,
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: TaskState::New as i32,
            timestamp: now,
            message: "created".into(),
            ..Default::default()
        }),
        networks: Vec::new(),
        endpoint_ports: service.endpoint_ports.clone(),
        service_labels: spec.labels.clone(),
        restarted_at: Vec::new(),
        job_iteration: 0,
        running_since: 0,
    }
}

/// Tasks whose service is gone are removed (a crash between deleting a
/// service and marking its tasks cannot leave them running).
fn remove_orphans(state: &State, tx: &mut Tx) {
    let gone: BTreeSet<&str> = state
        .tasks
        .values()
        .map(|t| t.service_id.as_str())
        .filter(|id| !state.services.contains_key(*id))
        .collect();
    for id in gone {
        remove_orphans_of(state, id, tx);
    }
}

/// The tasks of `service_id`, which is gone, are to be removed.
fn remove_orphans_of(state: &State, service_id: &str, tx: &mut Tx) {
    for task in state.tasks_of_service(service_id) {
        if task.desired_state < TaskState::Remove as i32 {
            let mut task = task.clone();
            task.desired_state = TaskState::Remove as i32;
            tx.put(task);
        }
    }
}
