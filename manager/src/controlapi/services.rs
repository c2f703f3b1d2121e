//! Service writes as store transactions, shared by the single-service calls
//! and `DeployStack` (which runs several in one transaction).

use shoal_proto::types::v1::{
    service_spec::Mode, JobStatus, Meta, Service, ServiceSpec, TaskState,
};

use super::{configs, networks, secrets, validate};
use crate::revisions::{self, Rollout};
use crate::store::{Kind, State, StoreError, Tx};

fn named<'a>(state: &'a State, name: &str) -> Option<&'a Service> {
    state
        .services
        .values()
        .find(|s| s.spec.as_ref().is_some_and(|x| x.name == name))
}

/// Creates the service `id` from a validated spec.
pub fn create(
    state: &State,
    tx: &mut Tx,
    id: &str,
    mut spec: ServiceSpec,
) -> Result<Service, StoreError> {
    if named(state, &spec.name).is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "service {} already exists",
            spec.name
        )));
    }
    secrets::resolve(state, &mut spec)?;
    configs::resolve(state, &mut spec)?;
    networks::check_service_networks(state, &spec)?;
    let endpoint_ports = crate::allocator::allocate_ports(state, id, &spec, &[])?;
    let virtual_ips = crate::allocator::allocate_vips(state, id, &spec, &[])?;
    let service = Service {
        meta: Some(Meta {
            id: id.to_string(),
            ..Default::default()
        }),
        spec: Some(spec),
        previous_spec: None,
        endpoint_ports,
        update_status: None,
        spec_version: 1,
        virtual_ips,
        history: Vec::new(),
        job_status: None,
    };
    let mut service = service;
    start_job_iteration(&mut service, None, tx.now());
    tx.put(service.clone());
    Ok(service)
}

/// What an update did.
pub struct Updated {
    pub service: Service,
    /// What runs changed: the tasks roll (a scale alone does not).
    pub rolls: bool,
}

/// Replaces `current`'s spec with a validated one.
pub fn update(
    state: &State,
    tx: &mut Tx,
    current: &Service,
    spec: ServiceSpec,
) -> Result<Updated, StoreError> {
    write_spec(state, tx, current, spec, None)
}

/// The services whose task spec `uses` says uses a secret or config.
pub fn users(
    state: &State,
    uses: impl Fn(&shoal_proto::types::v1::TaskSpec) -> bool,
) -> Vec<&Service> {
    state
        .services
        .values()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.task.as_ref())
                .is_some_and(&uses)
        })
        .collect()
}

/// Refuses to remove a secret or config `what` (`secret db_pass`) that
/// services use, naming them as docker does.
pub fn refuse_if_used(
    state: &State,
    what: &str,
    uses: impl Fn(&shoal_proto::types::v1::TaskSpec) -> bool,
) -> Result<(), StoreError> {
    let names: Vec<String> = users(state, uses)
        .into_iter()
        .filter_map(|s| s.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    if names.is_empty() {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "{what} is in use by the following service(s): {}",
            names.join(", ")
        )))
    }
}

/// Rolls every service whose tasks use a secret or config `uses` says
/// they do (its value changed in place): each gets a new revision, forced
/// as `service update --force` forces it, rolled out with its update
/// config. Returns the services' names.
pub fn roll_users(
    state: &State,
    tx: &mut Tx,
    uses: impl Fn(&shoal_proto::types::v1::TaskSpec) -> bool,
) -> Result<Vec<String>, StoreError> {
    let users: Vec<Service> = users(state, uses).into_iter().cloned().collect();
    let mut rolled = Vec::new();
    for service in users {
        let mut spec = service.spec.clone().unwrap_or_default();
        let task = spec.task.get_or_insert_with(Default::default);
        task.force_update = task.force_update.wrapping_add(1);
        rolled.push(spec.name.clone());
        write_spec(state, tx, &service, spec, None)?;
    }
    Ok(rolled)
}

/// `service rollback [--to REV]`: the previous spec (`to_revision` 0) or a
/// kept revision becomes the spec again, as a new revision rolled out with
/// its rollback config.
pub fn roll_back(
    state: &State,
    tx: &mut Tx,
    current: &Service,
    to_revision: u64,
) -> Result<Updated, StoreError> {
    let spec = rollback_target(current, to_revision)?;
    validate::service_spec(&spec)?;
    let why = "manually requested rollback".to_string();
    write_spec(state, tx, current, spec, Some(why))
}

fn rollback_target(service: &Service, to_revision: u64) -> Result<ServiceSpec, StoreError> {
    let name = service.spec.as_ref().map_or("", |s| s.name.as_str());
    if to_revision == 0 {
        // docker's words (swarmkit's controlapi).
        return service.previous_spec.clone().ok_or_else(|| {
            StoreError::InvalidArgument(format!("service {name} does not have a previous spec"))
        });
    }
    if to_revision == service.spec_version {
        return Err(StoreError::InvalidArgument(format!(
            "service {name} is at revision {to_revision} already"
        )));
    }
    match revisions::find(service, to_revision) {
        Some(revision) => Ok(revision.spec.clone().unwrap_or_default()),
        None => {
            let kept: Vec<String> = service
                .history
                .iter()
                .map(|r| r.revision.to_string())
                .collect();
            let kept = if kept.is_empty() {
                "none".to_string()
            } else {
                kept.join(", ")
            };
            Err(StoreError::NotFound(format!(
                "service {name} has no revision {to_revision}: its kept revisions are {kept}, the current one is {}",
                service.spec_version
            )))
        }
    }
}

/// Writes `spec` as `current`'s spec: a new revision when what runs
/// changes (a scale alone does not) or when rolling back.
fn write_spec(
    state: &State,
    tx: &mut Tx,
    current: &Service,
    mut spec: ServiceSpec,
    rollback: Option<String>,
) -> Result<Updated, StoreError> {
    let id = current
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    secrets::resolve(state, &mut spec)?;
    configs::resolve(state, &mut spec)?;
    networks::check_service_networks(state, &spec)?;
    let old_spec = current.spec.clone().unwrap_or_default();
    if spec.name != old_spec.name && named(state, &spec.name).is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "service {} already exists",
            spec.name
        )));
    }
    let mut service = current.clone();
    service.endpoint_ports =
        crate::allocator::allocate_ports(state, &id, &spec, &current.endpoint_ports)?;
    service.virtual_ips = crate::allocator::allocate_vips(state, &id, &spec, &current.virtual_ips)?;
    let changes_tasks = spec.task != old_spec.task
        || service.endpoint_ports != current.endpoint_ports
        || spec.networks != old_spec.networks
        || spec.labels != old_spec.labels;
    if is_job(&spec) != is_job(&old_spec) {
        // swarmkit's words: a job and a service are different things.
        return Err(StoreError::InvalidArgument(
            "service mode change is not allowed".into(),
        ));
    }
    let rolls = changes_tasks || rollback.is_some();
    match rollback {
        Some(why) => revisions::replace(&mut service, spec, tx.now(), Rollout::Rollback(why)),
        None if changes_tasks => revisions::replace(&mut service, spec, tx.now(), Rollout::Update),
        None => service.spec = Some(spec),
    }
    start_job_iteration(&mut service, Some(current), tx.now());
    tx.put(service.clone());
    Ok(Updated { service, rolls })
}

/// Removes the service; the agents stop its tasks and the task reaper
/// deletes them once they are down.
pub fn remove(state: &State, tx: &mut Tx, service: &Service) {
    let id = service
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    tx.delete(Kind::Service, &id);
    for task in state.tasks_of_service(&id) {
        let mut task = task.clone();
        task.desired_state = TaskState::Remove as i32;
        tx.put(task);
    }
}

/// `spec` as the store would hold it: secret references resolved.
pub fn resolved(state: &State, mut spec: ServiceSpec) -> Result<ServiceSpec, StoreError> {
    secrets::resolve(state, &mut spec)?;
    configs::resolve(state, &mut spec)?;
    Ok(spec)
}

fn is_job(spec: &ServiceSpec) -> bool {
    matches!(
        spec.mode,
        Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_))
    )
}

/// A job starts its first iteration when created and a new one at every
/// update (swarmkit: any `service update` of a job, `--force` included,
/// runs it again); jobs never roll, so no update status is kept for them.
fn start_job_iteration(service: &mut Service, before: Option<&Service>, now: i64) {
    if !service.spec.as_ref().is_some_and(is_job) {
        return;
    }
    let iteration = before.map_or(0, |b| {
        b.job_status.as_ref().map_or(0, |j| j.job_iteration) + 1
    });
    service.job_status = Some(JobStatus {
        job_iteration: iteration,
        last_execution: now,
    });
    service.update_status = None;
}
