//! Configs through the control API: secrets' sibling, whose value is not
//! secret (inspect shows it) and which a task mounts at any path. Services
//! reference configs by name, resolved to ids when the service is written.

use shoal_proto::types::v1::{Config, ConfigSpec, Meta, ServiceSpec};

use crate::store::{Kind, State, StoreError, Tx};

pub fn create(state: &State, tx: &mut Tx, spec: ConfigSpec) -> Result<Config, StoreError> {
    super::validate::config_spec(&spec)?;
    if state
        .configs
        .values()
        .any(|c| c.spec.as_ref().is_some_and(|x| x.name == spec.name))
    {
        return Err(StoreError::AlreadyExists(format!(
            "config {} already exists",
            spec.name
        )));
    }
    let config = Config {
        meta: Some(Meta {
            id: crate::ids::new_id(),
            ..Default::default()
        }),
        spec: Some(spec),
    };
    tx.put(config.clone());
    Ok(config)
}

pub fn remove(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let config = state.find_config(reference).map_err(StoreError::NotFound)?;
    let id = config
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let users: Vec<String> = state
        .services
        .values()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.task.as_ref())
                .is_some_and(|t| t.configs.iter().any(|r| r.config_id == id))
        })
        .filter_map(|s| s.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    if !users.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "config {reference} is in use by the following service(s): {}",
            users.join(", ")
        )));
    }
    tx.delete(Kind::Config, &id);
    Ok(())
}

/// Resolves a service's config references (by name or id) to the configs
/// they name, each target made absolute (`/<name>` by default); an unknown
/// config or two configs at one target refuse the whole write.
pub fn resolve(state: &State, spec: &mut ServiceSpec) -> Result<(), StoreError> {
    let Some(task) = spec.task.as_mut() else {
        return Ok(());
    };
    let mut targets = std::collections::HashSet::new();
    for reference in &mut task.configs {
        let wanted = if reference.config_id.is_empty() {
            reference.config_name.clone()
        } else {
            reference.config_id.clone()
        };
        let config = state
            .find_config(&wanted)
            .map_err(StoreError::InvalidArgument)?;
        reference.config_id = config
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        reference.config_name = config
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        if reference.target.is_empty() {
            reference.target = reference.config_name.clone();
        }
        if !reference.target.starts_with('/') {
            reference.target = format!("/{}", reference.target);
        }
        if !targets.insert(reference.target.clone()) {
            return Err(StoreError::InvalidArgument(format!(
                "service {}: two configs use the target {}",
                spec.name, reference.target
            )));
        }
    }
    Ok(())
}
