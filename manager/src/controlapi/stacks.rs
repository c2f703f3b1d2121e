//! `DeployStack`: a stack's networks, secrets and services written in one
//! transaction, so a deploy that fails anywhere changes nothing. Each step
//! sees the steps before it (a service the secret this deploy creates, the
//! ports an earlier service took or a pruned one freed) through a working
//! copy of the state that receives the same writes as the transaction.
//!
//! A dry run is this same function on the same state, its transaction
//! dropped instead of committed (`Store::dry_run`): the plan it returns is
//! what the deploy would do, refusals included.

use shoal_proto::control::v1::stack_change::Action;
use shoal_proto::control::v1::{DeployStackRequest, StackChange};
use shoal_proto::types::v1::{Service, ServiceSpec};

use super::{configs, networks, secrets, services, spec_diff};
use crate::store::{Kind, Object, State, StoreError, Tx, Write};

/// The label that ties a service or secret to its stack (Docker's).
pub const LABEL_NAMESPACE: &str = shoal_proto::STACK_NAMESPACE_LABEL;

pub fn deploy(
    state: &State,
    tx: &mut Tx,
    request: DeployStackRequest,
) -> Result<Vec<StackChange>, StoreError> {
    let namespace = request.namespace;
    let mut working = state.clone();
    let mut changes = Vec::new();
    let change = |kind: &str, name: &str, id: &str, action: Action, rolls: bool| StackChange {
        kind: kind.into(),
        name: name.into(),
        id: id.into(),
        action: action as i32,
        rolls,
        fields: Vec::new(),
    };

    // Networks first: the services below may name them.
    for name in &request.external_networks {
        if working.find_network(name).is_err() {
            return Err(StoreError::NotFound(format!(
                "network {name:?} is declared as external, but could not be found. You need to \
                 create a swarm-scoped network before the stack is deployed"
            )));
        }
    }
    for spec in request.networks {
        let name = spec.name.clone();
        if let Some(existing) = working
            .networks
            .values()
            .find(|n| n.spec.as_ref().is_some_and(|x| x.name == name))
        {
            // An existing network is used as it is (docker's behaviour).
            changes.push(change(
                "network",
                &name,
                id_of(&existing.meta),
                Action::Unchanged,
                false,
            ));
            continue;
        }
        let id = crate::ids::new_id();
        let network = networks::create(&working, tx, &id, spec)?;
        changes.push(change(
            "network",
            &name,
            id_of(&network.meta),
            Action::Created,
            false,
        ));
        working.apply(Write::Put(Object::from(network)), 0);
    }

    for spec in request.secrets {
        let name = spec.name.clone();
        if let Some(existing) = working
            .secrets
            .values()
            .find(|s| s.spec.as_ref().is_some_and(|x| x.name == name))
        {
            // Secrets are immutable: an existing one is used as it is.
            changes.push(change(
                "secret",
                &name,
                id_of(&existing.meta),
                Action::Unchanged,
                false,
            ));
            continue;
        }
        let secret = secrets::create(&working, tx, spec)?;
        changes.push(change(
            "secret",
            &name,
            id_of(&secret.meta),
            Action::Created,
            false,
        ));
        working.apply(Write::Put(Object::from(secret)), 0);
    }

    for spec in request.configs {
        let name = spec.name.clone();
        if let Some(existing) = working
            .configs
            .values()
            .find(|c| c.spec.as_ref().is_some_and(|x| x.name == name))
        {
            // As docker's deploy: an existing config is used as it is.
            changes.push(change(
                "config",
                &name,
                id_of(&existing.meta),
                Action::Unchanged,
                false,
            ));
            continue;
        }
        let config = configs::create(&working, tx, spec)?;
        changes.push(change(
            "config",
            &name,
            id_of(&config.meta),
            Action::Created,
            false,
        ));
        working.apply(Write::Put(Object::from(config)), 0);
    }

    let in_stack = |s: &Service| {
        s.spec.as_ref().and_then(|x| x.labels.get(LABEL_NAMESPACE)) == Some(&namespace)
    };
    if request.prune {
        let gone: Vec<Service> = working
            .services
            .values()
            .filter(|s| in_stack(s))
            .filter(|s| !request.services.iter().any(|x| x.name == name_of(s)))
            .cloned()
            .collect();
        for service in gone {
            services::remove(&working, tx, &service);
            let id = id_of(&service.meta).to_string();
            changes.push(change(
                "service",
                name_of(&service),
                &id,
                Action::Removed,
                false,
            ));
            working.apply(Write::Delete(Kind::Service, id), 0);
        }
    }

    for spec in request.services {
        check_labelled(&spec, &namespace)?;
        let current = working
            .services
            .values()
            .find(|s| name_of(s) == spec.name)
            .cloned();
        let (service, action, rolls, fields) = match current {
            Some(current) if !in_stack(&current) => {
                return Err(StoreError::AlreadyExists(format!(
                    "service {} exists and is not part of stack {namespace}",
                    spec.name
                )))
            }
            Some(current) => {
                let mut spec = spec;
                if let Some(current_spec) = &current.spec {
                    super::registry_auth::keep_current(current_spec, &mut spec);
                    keep_force_update(current_spec, &mut spec);
                }
                if current.spec.as_ref() == Some(&services::resolved(&working, spec.clone())?) {
                    changes.push(change(
                        "service",
                        &spec.name,
                        id_of(&current.meta),
                        Action::Unchanged,
                        false,
                    ));
                    continue;
                }
                let updated = services::update(&working, tx, &current, spec)?;
                let fields = spec_diff::changes(
                    current.spec.as_ref().unwrap_or(&ServiceSpec::default()),
                    updated
                        .service
                        .spec
                        .as_ref()
                        .unwrap_or(&ServiceSpec::default()),
                );
                (updated.service, Action::Updated, updated.rolls, fields)
            }
            None => {
                let id = crate::ids::new_id();
                let service = services::create(&working, tx, &id, spec)?;
                (service, Action::Created, false, Vec::new())
            }
        };
        changes.push(StackChange {
            fields,
            ..change(
                "service",
                name_of(&service),
                id_of(&service.meta),
                action,
                rolls,
            )
        });
        working.apply(Write::Put(Object::from(service)), 0);
    }
    Ok(changes)
}

/// The ids a dry run made up for what it would create name nothing: they
/// go, so nobody looks them up.
pub fn forget_new_ids(changes: &mut [StackChange]) {
    for change in changes {
        if change.action() == Action::Created {
            change.id.clear();
        }
    }
}

/// A stack has no `--force` (docker's rule): the count of forced updates a
/// `service update --force` made is kept, so deploying the same files again
/// replaces no task.
fn keep_force_update(current: &ServiceSpec, new: &mut ServiceSpec) {
    let forced = current.task.as_ref().map_or(0, |t| t.force_update);
    if let Some(task) = new.task.as_mut() {
        task.force_update = forced;
    } else if forced > 0 {
        new.task = Some(shoal_proto::types::v1::TaskSpec {
            force_update: forced,
            ..Default::default()
        });
    }
}

fn check_labelled(spec: &ServiceSpec, namespace: &str) -> Result<(), StoreError> {
    match spec.labels.get(LABEL_NAMESPACE) {
        Some(label) if label == namespace => Ok(()),
        _ => Err(StoreError::InvalidArgument(format!(
            "service {} is not labelled {LABEL_NAMESPACE}={namespace}",
            spec.name
        ))),
    }
}

fn id_of(meta: &Option<shoal_proto::types::v1::Meta>) -> &str {
    meta.as_ref().map(|m| m.id.as_str()).unwrap_or("")
}

fn name_of(service: &Service) -> &str {
    service.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{EndpointSpec, PortConfig, SecretReference, SecretSpec, TaskSpec};

    use super::*;
    use crate::store::Store;

    fn spec(name: &str, published: u32, secret: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            name: format!("st_{name}"),
            labels: [(LABEL_NAMESPACE.to_string(), "st".to_string())].into(),
            task: Some(TaskSpec {
                secrets: secret
                    .map(|s| SecretReference {
                        secret_name: s.into(),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            endpoint: Some(EndpointSpec {
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: published,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn request(services: Vec<ServiceSpec>) -> DeployStackRequest {
        DeployStackRequest {
            namespace: "st".into(),
            secrets: vec![SecretSpec {
                name: "st_pw".into(),
                data: b"hunter2".to_vec(),
                ..Default::default()
            }],
            services,
            prune: true,
            ..Default::default()
        }
    }

    fn published(store: &Store) -> Vec<u32> {
        store.view(|s| {
            let mut ports: Vec<u32> = s
                .services
                .values()
                .flat_map(|svc| svc.endpoint_ports.iter().map(|p| p.published_port))
                .collect();
            ports.sort();
            ports
        })
    }

    #[tokio::test]
    async fn a_stack_is_written_whole_or_not_at_all() {
        let store = Store::in_memory();
        let deploy = |r: DeployStackRequest| {
            let store = store.clone();
            async move { store.update(|state, tx| deploy(state, tx, r)).await }
        };
        // Two services left to the cluster's choice of port get two ports;
        // the secret made by the same deploy is found by its service.
        let changes = deploy(request(vec![
            spec("a", 0, Some("st_pw")),
            spec("b", 0, None),
        ]))
        .await
        .expect("deploy");
        let created = changes
            .iter()
            .filter(|c| c.action() == Action::Created)
            .count();
        assert_eq!(created, 3, "{changes:?}");
        let ports = published(&store);
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], ports[1], "two services share a port");

        // A clash in the last service refuses all of it: the new service c,
        // the update of a, the removal of b.
        let before = store.view(|s| s.clone());
        let err = deploy(request(vec![
            spec("a", 8080, Some("st_pw")),
            spec("c", 9000, None),
            spec("d", 9000, None),
        ]))
        .await
        .expect_err("clash");
        assert!(err.to_string().contains("9000/tcp"), "{err}");
        let after = store.view(|s| s.clone());
        assert_eq!(after.services, before.services);
        assert_eq!(after.secrets, before.secrets);

        // Deployed again as it is, nothing changes.
        let changes = deploy(request(vec![
            spec("a", 0, Some("st_pw")),
            spec("b", 0, None),
        ]))
        .await
        .expect("deploy again");
        assert!(
            changes.iter().all(|c| c.action() == Action::Unchanged),
            "{changes:?}"
        );
        // Without prune a service the files no longer name stays; with it,
        // it goes.
        let mut only_a = request(vec![spec("a", 0, Some("st_pw"))]);
        only_a.prune = false;
        deploy(only_a.clone()).await.expect("deploy without prune");
        assert_eq!(store.view(|s| s.services.len()), 2);
        only_a.prune = true;
        let changes = deploy(only_a).await.expect("deploy with prune");
        let removed: Vec<&str> = changes
            .iter()
            .filter(|c| c.action() == Action::Removed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(removed, ["st_b"]);
        assert_eq!(store.view(|s| s.services.len()), 1);

        // A service of another stack, or none, is not taken over.
        let mut other = spec("x", 0, None);
        other.labels.clear();
        store
            .update(|state, tx| super::services::create(state, tx, "x1", other))
            .await
            .expect("create outside the stack");
        let err = deploy(request(vec![spec("x", 0, None)]))
            .await
            .expect_err("not part of the stack");
        assert!(err.to_string().contains("not part of stack st"), "{err}");
    }

    #[tokio::test]
    async fn a_stack_brings_its_networks_in_the_same_transaction() {
        use shoal_proto::types::v1::NetworkSpec;
        let store = crate::harness::initialised_store(crate::clock::Clock::system()).await;
        let backend = NetworkSpec {
            name: "st_backend".into(),
            labels: [(LABEL_NAMESPACE.to_string(), "st".to_string())].into(),
            driver: "overlay".into(),
            subnet: "10.20.0.0/24".into(),
            ..Default::default()
        };
        let mut db = spec("db", 0, None);
        db.networks = vec!["st_backend".into()];
        let with_network = |external: Vec<String>| DeployStackRequest {
            namespace: "st".into(),
            networks: vec![backend.clone()],
            external_networks: external,
            services: vec![db.clone()],
            ..Default::default()
        };
        // Deployed and told whether the transaction wrote anything.
        let deploy = |r: DeployStackRequest| {
            let store = store.clone();
            async move {
                store
                    .update(|state, tx| {
                        let changes = deploy(state, tx, r)?;
                        Ok((changes, tx.is_empty()))
                    })
                    .await
            }
        };

        // A missing external network refuses all of it.
        let err = deploy(with_network(vec!["outside".into()]))
            .await
            .expect_err("missing external network");
        assert_eq!(
            err.to_string(),
            "network \"outside\" is declared as external, but could not be found. You need to \
             create a swarm-scoped network before the stack is deployed"
        );
        assert!(store.view(|s| s.services.is_empty()));
        assert_eq!(store.view(|s| s.networks.len()), 1, "only the ingress");

        // The network and the service on it come together.
        let (changes, _) = deploy(with_network(vec!["ingress".into()]))
            .await
            .expect("deploy");
        let created: Vec<(&str, &str)> = changes
            .iter()
            .filter(|c| c.action() == Action::Created)
            .map(|c| (c.kind.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(created, [("network", "st_backend"), ("service", "st_db")]);
        let network = store.view(|s| s.find_network("st_backend").cloned().unwrap());
        assert_eq!(network.subnet, "10.20.0.0/24");
        assert_ne!(network.vni, 0);
        let service = store.view(|s| s.services.values().next().cloned().unwrap());
        assert_eq!(service.spec.unwrap().networks, ["st_backend"]);

        // Deployed again as it is, nothing is written.
        let (changes, empty) = deploy(with_network(vec!["ingress".into()]))
            .await
            .expect("deploy again");
        assert!(
            changes.iter().all(|c| c.action() == Action::Unchanged),
            "{changes:?}"
        );
        assert!(empty, "an unchanged stack wrote something");

        // A network the allocator refuses (an overlapping subnet) refuses
        // the whole deploy.
        let mut other = with_network(vec![]);
        other.namespace = "st".into();
        other.networks[0].name = "st_overlap".into();
        other.networks[0].subnet = "10.20.0.0/16".into();
        let mut web = spec("web", 0, None);
        web.networks = vec!["st_overlap".into()];
        other.services = vec![web];
        deploy(other).await.expect_err("overlapping subnet");
        assert_eq!(store.view(|s| s.services.len()), 1);
        assert_eq!(store.view(|s| s.networks.len()), 2);
    }

    #[tokio::test]
    async fn a_deploy_that_changes_a_service_makes_a_new_revision() {
        let store = crate::harness::initialised_store(crate::clock::Clock::system()).await;
        let deploy = |request: DeployStackRequest| {
            let store = store.clone();
            async move {
                store
                    .update(|state, tx| super::deploy(state, tx, request))
                    .await
            }
        };
        deploy(request(vec![spec("a", 8080, Some("st_pw"))]))
            .await
            .expect("first deploy");
        deploy(request(vec![spec("a", 9090, Some("st_pw"))]))
            .await
            .expect("a changed port");
        deploy(request(vec![spec("a", 9090, Some("st_pw"))]))
            .await
            .expect("unchanged");
        let service = store.view(|s| s.services.values().next().cloned().expect("st_a"));
        assert_eq!(service.spec_version, 2, "one change, one new revision");
        let revisions: Vec<u64> = service.history.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, [1]);
        let was = service.history[0]
            .spec
            .as_ref()
            .and_then(|s| s.endpoint.as_ref());
        assert_eq!(was.map(|e| e.ports[0].published_port), Some(8080));
        assert_eq!(service.previous_spec, service.history[0].spec);
    }

    /// The highest Raft index any object was written at: what a commit
    /// would move.
    fn last_version(state: &State) -> u64 {
        let metas = state
            .services
            .values()
            .map(|o| &o.meta)
            .chain(state.networks.values().map(|o| &o.meta))
            .chain(state.secrets.values().map(|o| &o.meta))
            .chain(state.configs.values().map(|o| &o.meta))
            .chain(state.clusters.values().map(|o| &o.meta));
        metas.flatten().map(|m| m.version).max().unwrap_or(0)
    }

    /// What a plan and a deploy are compared on: all but the ids of what
    /// they create (a plan makes none up for good).
    fn plan_of(changes: &[StackChange]) -> Vec<(String, String, Action, bool, Vec<String>)> {
        changes
            .iter()
            .map(|c| {
                let fields = c
                    .fields
                    .iter()
                    .map(|f| format!("{}: {} -> {}", f.path, f.before, f.after))
                    .collect();
                (c.kind.clone(), c.name.clone(), c.action(), c.rolls, fields)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_dry_run_returns_the_deploys_changes_and_commits_nothing() {
        let store = crate::harness::initialised_store(crate::clock::Clock::system()).await;
        store
            .update(|state, tx| {
                deploy(
                    state,
                    tx,
                    request(vec![spec("a", 8080, Some("st_pw")), spec("b", 0, None)]),
                )
            })
            .await
            .expect("first deploy");
        // a: another port and image, b: pruned, c: new.
        let mut a = spec("a", 9090, Some("st_pw"));
        a.task.get_or_insert_with(Default::default).container =
            Some(shoal_proto::types::v1::ContainerSpec {
                image: "web:v2".into(),
                ..Default::default()
            });
        let next = request(vec![a, spec("c", 0, None)]);

        let mut events = store.subscribe();
        let before = store.view(|s| s.clone());
        let planned = store
            .dry_run(|state, tx| deploy(state, tx, next.clone()))
            .expect("plan");
        assert!(
            matches!(
                events.try_recv(),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty)
            ),
            "a dry run committed something"
        );
        store.view(|after| {
            assert_eq!(last_version(after), last_version(&before));
            assert_eq!(after.services, before.services);
            assert_eq!(after.networks, before.networks);
            assert_eq!(after.secrets, before.secrets);
            assert_eq!(after.tasks, before.tasks);
        });

        let done = store
            .update(|state, tx| deploy(state, tx, next))
            .await
            .expect("deploy");
        assert_eq!(plan_of(&planned), plan_of(&done));
        assert!(last_version(&store.view(|s| s.clone())) > last_version(&before));
        let a = planned
            .iter()
            .find(|c| c.name == "st_a")
            .expect("st_a planned");
        assert_eq!(a.action(), Action::Updated);
        assert!(a.rolls);
        let fields: Vec<(&str, &str, &str)> = a
            .fields
            .iter()
            .map(|f| (f.path.as_str(), f.before.as_str(), f.after.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("TaskTemplate.ContainerSpec.Image", "", "web:v2"),
                (
                    "EndpointSpec.Ports[80/tcp]",
                    "published=8080,mode=ingress",
                    "published=9090,mode=ingress"
                ),
            ]
        );
        let removed: Vec<&str> = planned
            .iter()
            .filter(|c| c.action() == Action::Removed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(removed, ["st_b"]);

        // A plan that would be refused is refused, with the deploy's words.
        let clash = request(vec![spec("a", 9090, Some("st_pw")), spec("d", 9090, None)]);
        let err = store
            .dry_run(|state, tx| deploy(state, tx, clash))
            .expect_err("a port clash");
        assert!(err.to_string().contains("9090/tcp"), "{err}");
    }

    #[tokio::test]
    async fn a_deploy_keeps_the_forced_updates_of_the_deployed_service() {
        let store = Store::in_memory();
        let deploy = |r: DeployStackRequest| {
            let store = store.clone();
            async move { store.update(|state, tx| deploy(state, tx, r)).await }
        };
        deploy(request(vec![spec("a", 0, None)]))
            .await
            .expect("deploy");
        // `service update --force` bumps the count; the stack has none.
        store
            .update(|state, tx| {
                let current = state.find_service("st_a").map_err(StoreError::NotFound)?;
                let mut forced = current.spec.clone().unwrap_or_default();
                forced
                    .task
                    .get_or_insert_with(Default::default)
                    .force_update = 1;
                super::services::update(state, tx, current, forced).map(|_| ())
            })
            .await
            .expect("forced update");
        let changes = deploy(request(vec![spec("a", 0, None)]))
            .await
            .expect("deploy again");
        assert!(
            changes.iter().all(|c| c.action() == Action::Unchanged),
            "{changes:?}"
        );
    }
}
