//! Secrets through the control API. A secret's value goes in once and never
//! comes out again through this API; services reference secrets by name,
//! resolved to ids when the service is written.

use shoal_proto::types::v1::{Meta, Secret, SecretSpec, ServiceSpec};

use crate::store::{Kind, State, StoreError, Tx};

pub fn create(state: &State, tx: &mut Tx, spec: SecretSpec) -> Result<Secret, StoreError> {
    if spec.name.is_empty()
        || spec.name.len() > 64
        || !spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(StoreError::InvalidArgument(format!(
            "invalid secret name {:?}: use up to 64 letters, digits, '-', '_' or '.'",
            spec.name
        )));
    }
    super::validate::secret_spec(&spec)?;
    if state
        .secrets
        .values()
        .any(|s| s.spec.as_ref().is_some_and(|x| x.name == spec.name))
    {
        return Err(StoreError::AlreadyExists(format!(
            "secret {} already exists",
            spec.name
        )));
    }
    let secret = Secret {
        meta: Some(Meta {
            id: crate::ids::new_id(),
            ..Default::default()
        }),
        spec: Some(spec),
    };
    tx.put(secret.clone());
    Ok(secret)
}

/// What the API shows of a secret: everything but the value.
pub fn redacted(mut secret: Secret) -> Secret {
    if let Some(spec) = secret.spec.as_mut() {
        spec.data.clear();
    }
    secret
}

pub fn remove(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let secret = state.find_secret(reference).map_err(StoreError::NotFound)?;
    let id = secret
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
                .is_some_and(|t| t.secrets.iter().any(|r| r.secret_id == id))
        })
        .filter_map(|s| s.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    if !users.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "secret {reference} is in use by the following service(s): {}",
            users.join(", ")
        )));
    }
    tx.delete(Kind::Secret, &id);
    Ok(())
}

/// Resolves a service's secret references (by name or id) to the secrets
/// they name; an unknown secret refuses the whole write.
pub fn resolve(state: &State, spec: &mut ServiceSpec) -> Result<(), StoreError> {
    let Some(task) = spec.task.as_mut() else {
        return Ok(());
    };
    let mut targets = std::collections::HashSet::new();
    for reference in &mut task.secrets {
        let wanted = if reference.secret_id.is_empty() {
            reference.secret_name.clone()
        } else {
            reference.secret_id.clone()
        };
        let secret = state
            .find_secret(&wanted)
            .map_err(StoreError::InvalidArgument)?;
        reference.secret_id = secret
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        reference.secret_name = secret
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        if reference.target.is_empty() {
            reference.target = reference.secret_name.clone();
        }
        if !targets.insert(reference.target.clone()) {
            return Err(StoreError::InvalidArgument(format!(
                "service {}: two secrets use the target {}",
                spec.name, reference.target
            )));
        }
    }
    Ok(())
}
