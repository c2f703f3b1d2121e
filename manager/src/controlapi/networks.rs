//! Network writes as store transactions: `network create|rm|prune`, and
//! the check that a service names networks that exist.

use shoal_proto::types::v1::{Network, NetworkSpec, ServiceSpec, TaskState};

use crate::store::{Kind, State, StoreError, Tx};

fn id_of(network: &Network) -> &str {
    network.meta.as_ref().map_or("", |m| m.id.as_str())
}

fn name_of(network: &Network) -> &str {
    network.spec.as_ref().map_or("", |s| s.name.as_str())
}

/// Creates network `id` from a checked spec; the allocator picks what the
/// spec leaves open.
pub fn create(
    state: &State,
    tx: &mut Tx,
    id: &str,
    spec: NetworkSpec,
) -> Result<Network, StoreError> {
    if state.networks.values().any(|n| name_of(n) == spec.name) {
        return Err(StoreError::AlreadyExists(format!(
            "network with name {} already exists",
            spec.name
        )));
    }
    let network = crate::allocator::allocate_network(state, id, &spec)?;
    tx.put(network.clone());
    Ok(network)
}

/// The services whose spec names the network (by name, id or id prefix),
/// by name.
pub fn users(state: &State, network: &Network) -> Vec<String> {
    let id = id_of(network);
    let names_it = |reference: &String| state.find_network(reference).ok().map(id_of) == Some(id);
    let mut users: Vec<String> = state
        .services
        .values()
        .filter_map(|s| s.spec.as_ref())
        .filter(|spec| spec.networks.iter().any(names_it))
        .map(|spec| spec.name.clone())
        .collect();
    users.sort();
    users
}

/// Tasks still attached to the network (meant to run, or not yet down).
fn attached_tasks(state: &State, network: &Network) -> usize {
    state
        .tasks
        .values()
        .filter(|t| {
            t.networks.iter().any(|a| a.network_id == id_of(network))
                && !(t.desired_state > TaskState::Running as i32
                    && (t.observed_state().is_terminal()
                        || t.observed_state() < TaskState::Assigned))
        })
        .count()
}

/// Why the network cannot go now, if it cannot.
fn refusal(state: &State, network: &Network) -> Option<String> {
    let name = name_of(network);
    let default = state
        .cluster()
        .is_some_and(|c| c.default_network_id == id_of(network));
    if default {
        return Some(format!(
            "network {name} is the cluster's default network and cannot be removed"
        ));
    }
    let users = users(state, network);
    if !users.is_empty() {
        return Some(format!(
            "network {name} is in use by service{} {}",
            if users.len() == 1 { "" } else { "s" },
            users.join(", ")
        ));
    }
    let attached = attached_tasks(state, network);
    (attached > 0).then(|| {
        format!("network {name} still has {attached} task(s) attached: retry once they are down")
    })
}

/// `network rm`: refused while anything uses the network.
pub fn remove(state: &State, tx: &mut Tx, reference: &str) -> Result<(), StoreError> {
    let network = state
        .find_network(reference)
        .map_err(StoreError::NotFound)?;
    if let Some(why) = refusal(state, network) {
        return Err(StoreError::InvalidArgument(why));
    }
    tx.delete(Kind::Network, id_of(network));
    Ok(())
}

/// `network prune`: every network nothing uses goes; returns their names.
pub fn prune(state: &State, tx: &mut Tx) -> Vec<String> {
    let mut removed = Vec::new();
    for network in state.networks.values() {
        if refusal(state, network).is_none() {
            tx.delete(Kind::Network, id_of(network));
            removed.push(name_of(network).to_string());
        }
    }
    removed.sort();
    removed
}

/// A service may only name networks that exist (by name, id or id prefix).
pub fn check_service_networks(state: &State, spec: &ServiceSpec) -> Result<(), StoreError> {
    for reference in &spec.networks {
        state
            .find_network(reference)
            .map_err(|e| StoreError::NotFound(format!("service {}: {e}", spec.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn store() -> std::sync::Arc<Store> {
        crate::harness::initialised_store(crate::clock::Clock::system()).await
    }

    fn spec(name: &str) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn networks_are_created_once_per_name_and_removed_only_when_unused() {
        let store = store().await;
        let backend = store
            .update(|s, tx| create(s, tx, "backend-id", spec("backend")))
            .await
            .unwrap();
        assert_eq!(backend.vni, 4096);
        assert_eq!(backend.subnet, "10.0.0.0/24");
        let again = store
            .update(|s, tx| create(s, tx, "other-id", spec("backend")))
            .await
            .unwrap_err();
        assert_eq!(
            again.to_string(),
            "network with name backend already exists"
        );

        let mut service = crate::harness::service("db", "db", 1);
        service.networks = vec!["backend".into()];
        store
            .update(|s, tx| crate::controlapi::services::create(s, tx, "db-id", service.clone()))
            .await
            .unwrap();
        let refused = store
            .update(|s, tx| remove(s, tx, "backend"))
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "network backend is in use by service db"
        );
        let default = store
            .update(|s, tx| remove(s, tx, "default"))
            .await
            .unwrap_err();
        assert!(default.to_string().contains("default network"), "{default}");

        store
            .update(|s, tx| create(s, tx, "spare-id", spec("spare")))
            .await
            .unwrap();
        let pruned = store.update(|s, tx| Ok(prune(s, tx))).await.unwrap();
        assert_eq!(pruned, ["spare"]);
        store
            .update(|s, tx| {
                crate::controlapi::services::remove(s, tx, &s.services["db-id"].clone());
                Ok(())
            })
            .await
            .unwrap();
        store
            .update(|s, tx| remove(s, tx, "backend"))
            .await
            .unwrap();
        assert_eq!(
            store.view(|s| s.networks.len()),
            1,
            "only the default is left"
        );
    }

    #[tokio::test]
    async fn a_service_naming_an_unknown_network_is_refused() {
        let store = store().await;
        let mut service = crate::harness::service("web", "web", 1);
        service.networks = vec!["nowhere".into()];
        let refused = store
            .update(|s, tx| crate::controlapi::services::create(s, tx, "web-id", service.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "service web: network nowhere not found"
        );
        assert!(store.view(|s| s.services.is_empty()));
    }
}
