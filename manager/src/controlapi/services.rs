//! Service writes as store transactions, shared by the single-service calls
//! and `DeployStack` (which runs several in one transaction).

use shoal_proto::types::v1::{Meta, Service, ServiceSpec, TaskState, UpdateStatus};

use super::{networks, secrets};
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
    mut spec: ServiceSpec,
) -> Result<Updated, StoreError> {
    let id = current
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    secrets::resolve(state, &mut spec)?;
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
    let rolls = spec.task != old_spec.task
        || service.endpoint_ports != current.endpoint_ports
        || spec.networks != old_spec.networks
        || spec.labels != old_spec.labels;
    if rolls {
        service.previous_spec = Some(old_spec);
        service.spec_version += 1;
        service.update_status = Some(UpdateStatus {
            state: shoal_proto::types::v1::update_status::State::Updating as i32,
            started_at: tx.now(),
            completed_at: 0,
            message: "update in progress".into(),
        });
    }
    service.spec = Some(spec);
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
    Ok(spec)
}
