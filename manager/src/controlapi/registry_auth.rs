//! `--with-registry-auth` credentials in a service's spec: sealed in the
//! store with it and sent to the nodes that run its tasks, but blanked in
//! every answer of the control API; an update that carries none keeps the
//! ones the service has (the CLI sends back a spec it read blanked).

use shoal_proto::types::v1::{Service, ServiceSpec, Task};

fn blank(spec: &mut ServiceSpec) {
    if let Some(container) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        container.registry_auth = None;
    }
}

/// The service as the API shows it: no credentials in its spec, its
/// previous spec or its revisions.
pub fn redacted_service(mut service: Service) -> Service {
    for spec in service
        .spec
        .iter_mut()
        .chain(service.previous_spec.iter_mut())
        .chain(service.history.iter_mut().filter_map(|r| r.spec.as_mut()))
    {
        blank(spec);
    }
    service
}

pub fn redacted_task(mut task: Task) -> Task {
    if let Some(container) = task.spec.as_mut().and_then(|t| t.container.as_mut()) {
        container.registry_auth = None;
    }
    task
}

/// `new` keeps `current`'s credentials unless it brings its own.
pub fn keep_current(current: &ServiceSpec, new: &mut ServiceSpec) {
    let old = current
        .task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .and_then(|c| c.registry_auth.clone());
    if let Some(container) = new.task.as_mut().and_then(|t| t.container.as_mut()) {
        if container.registry_auth.is_none() {
            container.registry_auth = old;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{ContainerSpec, RegistryAuth, ServiceRevision, TaskSpec};

    fn spec(auth: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    registry_auth: auth.map(|p| RegistryAuth {
                        username: "ci".into(),
                        password: p.into(),
                        server: "registry.example:5000".into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_never_come_back_and_an_update_without_them_keeps_them() {
        let service = Service {
            spec: Some(spec(Some("s3cret"))),
            previous_spec: Some(spec(Some("old"))),
            history: vec![ServiceRevision {
                spec: Some(spec(Some("older"))),
                ..Default::default()
            }],
            ..Default::default()
        };
        let shown = format!("{:?}", redacted_service(service));
        assert!(
            !shown.contains("s3cret") && !shown.contains("old"),
            "{shown}"
        );
        let mut update = spec(None);
        keep_current(&spec(Some("s3cret")), &mut update);
        assert_eq!(
            update
                .task
                .unwrap()
                .container
                .unwrap()
                .registry_auth
                .unwrap()
                .password,
            "s3cret"
        );
        let mut fresh = spec(Some("new"));
        keep_current(&spec(Some("s3cret")), &mut fresh);
        assert!(format!("{fresh:?}").contains("new"));
    }
}
