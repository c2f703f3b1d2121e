//! Network writes as store transactions: `network create|rm|prune`, and
//! the check that a service names networks that exist (and not the
//! ingress network, which never goes).

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

/// The services on the ingress network (naming no network, or publishing a
/// port in ingress mode), by name.
fn ingress_dependents(state: &State) -> Vec<String> {
    let mut names: Vec<String> = state
        .services
        .values()
        .filter_map(|s| s.spec.as_ref())
        .filter(|spec| {
            crate::allocator::networks_of(state, spec)
                .iter()
                .any(|n| crate::allocator::is_ingress(state, n))
        })
        .map(|spec| spec.name.clone())
        .collect();
    names.sort();
    names
}

/// Why the network cannot go now, if it cannot.
fn refusal(state: &State, network: &Network) -> Option<String> {
    let name = name_of(network);
    if crate::allocator::is_ingress(state, network) {
        // Docker's words. Unlike docker, shoal has no `network create
        // --ingress` to make another one: the ingress network stays.
        let dependents = ingress_dependents(state);
        return Some(match dependents.as_slice() {
            [] => format!("{name} is a pre-defined network and cannot be removed"),
            [one] => {
                format!("ingress network cannot be removed because service {one} depends on it")
            }
            many => format!(
                "ingress network cannot be removed because services {} depend on it",
                many.join(", ")
            ),
        });
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

/// A service may only name networks that exist (by name, id or id prefix),
/// and never the ingress network: it is on it when it publishes a port in
/// ingress mode (Swarm's rule and words).
pub fn check_service_networks(state: &State, spec: &ServiceSpec) -> Result<(), StoreError> {
    for reference in &spec.networks {
        let network = state
            .find_network(reference)
            .map_err(|e| StoreError::NotFound(format!("service {}: {e}", spec.name)))?;
        if crate::allocator::is_ingress(state, network) {
            return Err(StoreError::InvalidArgument(format!(
                "Service cannot be explicitly attached to the ingress network {:?}",
                name_of(network)
            )));
        }
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
        // The ingress network holds VXLAN id 4096 and 10.0.0.0/24.
        assert_eq!(backend.vni, 4097);
        assert_eq!(backend.subnet, "10.0.1.0/24");
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
        let ingress = store
            .update(|s, tx| remove(s, tx, "ingress"))
            .await
            .unwrap_err();
        assert_eq!(
            ingress.to_string(),
            "ingress is a pre-defined network and cannot be removed"
        );

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
            "only the ingress network is left"
        );
    }

    fn publishing(mut spec: ServiceSpec) -> ServiceSpec {
        spec.endpoint = Some(shoal_proto::types::v1::EndpointSpec {
            ports: vec![shoal_proto::types::v1::PortConfig {
                target_port: 80,
                published_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        });
        spec
    }

    #[tokio::test]
    async fn the_ingress_network_stays_and_names_the_services_that_depend_on_it() {
        let store = store().await;
        let rm = |reference: &'static str| {
            let store = store.clone();
            async move {
                store
                    .update(|s, tx| remove(s, tx, reference))
                    .await
                    .unwrap_err()
                    .to_string()
            }
        };
        let ingress_id = crate::harness::DEFAULT_NETWORK_ID;
        store
            .update(|s, tx| create(s, tx, "backend-id", spec("backend")))
            .await
            .unwrap();
        // On backend and publishing a port in ingress mode: on ingress too.
        let mut web = publishing(crate::harness::service("web", "web", 1));
        web.networks = vec!["backend".into()];
        store
            .update(|s, tx| crate::controlapi::services::create(s, tx, "web-id", web))
            .await
            .unwrap();
        assert_eq!(
            rm("ingress").await,
            "ingress network cannot be removed because service web depends on it"
        );
        assert_eq!(
            rm(ingress_id).await,
            "ingress network cannot be removed because service web depends on it",
            "by id as by name"
        );
        // Naming no network: on ingress alone.
        let plain = crate::harness::service("plain", "plain", 1);
        store
            .update(|s, tx| crate::controlapi::services::create(s, tx, "plain-id", plain))
            .await
            .unwrap();
        assert_eq!(
            rm("ingress").await,
            "ingress network cannot be removed because services plain, web depend on it"
        );
        // Pruned never, used or not.
        store
            .update(|s, tx| {
                for id in ["web-id", "plain-id"] {
                    crate::controlapi::services::remove(s, tx, &s.services[id].clone());
                }
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(
            rm("ingress").await,
            "ingress is a pre-defined network and cannot be removed"
        );
        let pruned = store.update(|s, tx| Ok(prune(s, tx))).await.unwrap();
        assert_eq!(pruned, ["backend"]);
        assert!(store.view(|s| s.networks.contains_key(ingress_id)));
    }

    #[tokio::test]
    async fn a_service_cannot_name_the_ingress_network() {
        let store = store().await;
        let explicit = "Service cannot be explicitly attached to the ingress network \"ingress\"";
        let ingress_id = crate::harness::DEFAULT_NETWORK_ID.to_string();
        for reference in ["ingress".to_string(), ingress_id] {
            let mut web = publishing(crate::harness::service("web", "web", 1));
            web.networks = vec![reference];
            let refused = store
                .update(|s, tx| crate::controlapi::services::create(s, tx, "web-id", web))
                .await
                .unwrap_err();
            assert_eq!(refused.to_string(), explicit);
        }
        assert!(store.view(|s| s.services.is_empty()));

        // Nor be updated onto it (`service update --network-add ingress`).
        let web = crate::harness::service("web", "web", 1);
        store
            .update(|s, tx| crate::controlapi::services::create(s, tx, "web-id", web))
            .await
            .unwrap();
        let refused = store
            .update(|s, tx| {
                let current = s.services["web-id"].clone();
                let mut spec = current.spec.clone().unwrap();
                spec.networks = vec!["ingress".into()];
                crate::controlapi::services::update(s, tx, &current, spec).map(|_| ())
            })
            .await
            .unwrap_err();
        assert_eq!(refused.to_string(), explicit);
        let kept = store.view(|s| s.services["web-id"].spec.clone().unwrap());
        assert!(kept.networks.is_empty());
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
