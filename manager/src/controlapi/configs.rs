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

/// `config update NAME FILE` (beyond Swarm, moby#29882): a new value in
/// place, and every service using the config rolls to tasks that read it.
/// Returns the services rolled.
pub fn update(
    state: &State,
    tx: &mut Tx,
    reference: &str,
    data: Vec<u8>,
) -> Result<Vec<String>, StoreError> {
    let mut config = state
        .find_config(reference)
        .map_err(StoreError::NotFound)?
        .clone();
    let id = config
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let spec = config.spec.get_or_insert_with(ConfigSpec::default);
    spec.data = data;
    super::validate::config_spec(spec)?;
    tx.put(config);
    super::services::roll_users(state, tx, |t| t.configs.iter().any(|r| r.config_id == id))
}

pub fn remove(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let config = state.find_config(reference).map_err(StoreError::NotFound)?;
    let id = config
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    super::services::refuse_if_used(state, &format!("config {reference}"), |t| {
        t.configs.iter().any(|r| r.config_id == id)
    })?;
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

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{ConfigReference, ContainerSpec, TaskSpec};

    use super::*;
    use crate::store::Store;

    fn service(name: &str, config: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "web:v1".into(),
                    ..Default::default()
                }),
                configs: config
                    .map(|c| ConfigReference {
                        config_name: c.into(),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_update_replaces_the_value_and_rolls_only_the_services_using_it() {
        let store = Store::in_memory();
        let spec = ConfigSpec {
            name: "app_conf".into(),
            data: b"v1".to_vec(),
            ..Default::default()
        };
        store
            .update(|s, tx| create(s, tx, spec))
            .await
            .expect("create");
        for (id, spec) in [
            ("s1", service("web", Some("app_conf"))),
            ("s2", service("db", None)),
        ] {
            store
                .update(|s, tx| super::super::services::create(s, tx, id, spec))
                .await
                .expect("service");
        }
        let version = |name: &str| {
            store.view(|s| {
                s.services
                    .values()
                    .find(|x| x.spec.as_ref().is_some_and(|sp| sp.name == name))
                    .map(|x| x.spec_version)
                    .unwrap_or_default()
            })
        };
        let (web_before, db_before) = (version("web"), version("db"));
        let rolled = store
            .update(|s, tx| update(s, tx, "app_conf", b"v2".to_vec()))
            .await
            .expect("update");
        assert_eq!(rolled, ["web"]);
        assert!(version("web") > web_before, "web rolls to a new revision");
        assert_eq!(version("db"), db_before, "db does not use it");
        let data = store.view(|s| {
            s.find_config("app_conf")
                .map(|c| c.spec.clone().unwrap_or_default().data)
        });
        assert_eq!(data.unwrap(), b"v2");
        let err = store
            .update(|s, tx| remove(s, tx, "app_conf"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in use by the following service(s): web"),
            "{err}"
        );
        let err = store
            .update(|s, tx| update(s, tx, "nosuch", b"x".to_vec()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nosuch"), "{err}");
    }
}
