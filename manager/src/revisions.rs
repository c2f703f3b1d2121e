//! A service's spec revisions: how a new spec replaces the current one.
//! This is the one place `spec_version` moves. Whoever changes what a
//! service runs (`service update`, a stack deploy, `service rollback`, the
//! updater's automatic rollback) comes here, so the replaced spec always
//! becomes `previous_spec` and joins `history` under the revision it had,
//! and the rollout starts with its status.

use shoal_proto::types::v1::{
    update_status::State as UpdateState, Service, ServiceRevision, ServiceSpec, UpdateStatus,
};

/// Past revisions a service keeps (`service history`, `rollback --to`).
pub const KEPT: usize = 10;

/// How the new revision rolls out.
pub enum Rollout {
    /// With the spec's update config (`update in progress`).
    Update,
    /// With the spec's rollback config, saying why (Swarm's words:
    /// `manually requested rollback`, `update rolled back due to ...`).
    Rollback(String),
}

/// Makes `spec` the service's spec as a new revision at `now`.
pub fn replace(service: &mut Service, spec: ServiceSpec, now: i64, rollout: Rollout) {
    let since = current_since(service);
    let replaced = service.spec.replace(spec).unwrap_or_default();
    service.history.push(ServiceRevision {
        revision: service.spec_version,
        spec: Some(replaced.clone()),
        created_at: since,
    });
    if service.history.len() > KEPT {
        let excess = service.history.len() - KEPT;
        service.history.drain(..excess);
    }
    service.previous_spec = Some(replaced);
    service.spec_version += 1;
    let (state, message) = match rollout {
        Rollout::Update => (UpdateState::Updating, "update in progress".to_string()),
        Rollout::Rollback(why) => (UpdateState::RollbackStarted, why),
    };
    service.update_status = Some(UpdateStatus {
        state: state as i32,
        started_at: now,
        completed_at: 0,
        message,
    });
}

/// When the current spec became current: its rollout's start (every new
/// revision starts one, and later status changes keep `started_at`), or
/// the service's creation for its first.
pub fn current_since(service: &Service) -> i64 {
    match &service.update_status {
        Some(status) if status.started_at > 0 => status.started_at,
        _ => service.meta.as_ref().map_or(0, |m| m.created_at),
    }
}

/// The kept revision `revision`, if the service still has it.
pub fn find(service: &Service, revision: u64) -> Option<&ServiceRevision> {
    service.history.iter().find(|r| r.revision == revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Meta;

    fn spec(image: &str) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            task: Some(shoal_proto::types::v1::TaskSpec {
                container: Some(shoal_proto::types::v1::ContainerSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn each_replaced_spec_is_kept_under_its_revision_and_time_ten_at_most() {
        let mut service = Service {
            meta: Some(Meta {
                created_at: 1_000,
                ..Default::default()
            }),
            spec: Some(spec("web:0")),
            spec_version: 1,
            ..Default::default()
        };
        replace(&mut service, spec("web:1"), 2_000, Rollout::Update);
        assert_eq!(service.spec_version, 2);
        assert_eq!(service.history.len(), 1);
        assert_eq!(service.history[0].revision, 1);
        assert_eq!(service.history[0].created_at, 1_000, "the creation");
        assert_eq!(service.previous_spec, Some(spec("web:0")));
        for n in 2..=12 {
            replace(
                &mut service,
                spec(&format!("web:{n}")),
                1_000 * (n + 1),
                Rollout::Update,
            );
        }
        assert_eq!(service.spec_version, 13);
        assert_eq!(service.history.len(), KEPT);
        let revisions: Vec<u64> = service.history.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, (3..=12).collect::<Vec<_>>());
        let twelve = find(&service, 12).expect("revision 12");
        assert_eq!(twelve.spec, Some(spec("web:11")));
        assert_eq!(twelve.created_at, 12_000, "when web:11 became current");
        assert!(find(&service, 2).is_none(), "dropped");
        assert_eq!(current_since(&service), 13_000);
    }

    #[test]
    fn a_rollback_is_a_new_revision_that_says_why() {
        let mut service = Service {
            spec: Some(spec("web:1")),
            spec_version: 4,
            ..Default::default()
        };
        replace(
            &mut service,
            spec("web:0"),
            5,
            Rollout::Rollback("manually requested rollback".into()),
        );
        assert_eq!(service.spec_version, 5);
        let status = service.update_status.expect("status");
        assert_eq!(status.state, UpdateState::RollbackStarted as i32);
        assert_eq!(status.message, "manually requested rollback");
        assert_eq!(status.started_at, 5);
    }
}
