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

/// `secret update NAME FILE` (beyond Swarm, moby#29882): a new value in
/// place, and every service using the secret rolls to tasks that read it.
/// Returns the services rolled.
pub fn update(
    state: &State,
    tx: &mut Tx,
    reference: &str,
    data: Vec<u8>,
) -> Result<Vec<String>, StoreError> {
    let mut secret = state
        .find_secret(reference)
        .map_err(StoreError::NotFound)?
        .clone();
    let id = secret
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let spec = secret.spec.get_or_insert_with(SecretSpec::default);
    spec.data = data;
    super::validate::secret_spec(spec)?;
    tx.put(secret);
    super::services::roll_users(state, tx, |t| t.secrets.iter().any(|r| r.secret_id == id))
}

pub fn remove(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let secret = state.find_secret(reference).map_err(StoreError::NotFound)?;
    let id = secret
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    super::services::refuse_if_used(state, &format!("secret {reference}"), |t| {
        t.secrets.iter().any(|r| r.secret_id == id)
    })?;
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

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{ContainerSpec, SecretReference, TaskSpec};

    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn an_update_replaces_the_value_and_rolls_the_services_using_it() {
        let store = Store::in_memory();
        let spec = SecretSpec {
            name: "db_pass".into(),
            data: b"one".to_vec(),
            ..Default::default()
        };
        store
            .update(|s, tx| create(s, tx, spec))
            .await
            .expect("create");
        let user = ServiceSpec {
            name: "app".into(),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "app:1".into(),
                    ..Default::default()
                }),
                secrets: vec![SecretReference {
                    secret_name: "db_pass".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        store
            .update(|s, tx| super::super::services::create(s, tx, "s1", user))
            .await
            .expect("service");
        let before = store.view(|s| s.services["s1"].spec_version);
        let rolled = store
            .update(|s, tx| update(s, tx, "db_pass", b"two".to_vec()))
            .await
            .expect("update");
        assert_eq!(rolled, ["app"]);
        assert!(store.view(|s| s.services["s1"].spec_version) > before);
        let value = store.view(|s| {
            s.find_secret("db_pass")
                .map(|x| x.spec.clone().unwrap_or_default().data)
        });
        assert_eq!(value.unwrap(), b"two");
        let empty = store
            .update(|s, tx| update(s, tx, "db_pass", Vec::new()))
            .await;
        assert!(empty.is_err(), "an empty value is refused as at create");
    }
}
