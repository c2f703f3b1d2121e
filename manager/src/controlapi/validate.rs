//! Checks of user-given specs before anything is written.

use shoal_proto::types::v1::{service_spec::Mode, ServiceSpec};

use crate::store::StoreError;

pub fn service_spec(spec: &ServiceSpec) -> Result<(), StoreError> {
    let invalid = |m: String| Err(StoreError::InvalidArgument(m));
    if spec.name.is_empty() {
        return invalid("the service needs a name".into());
    }
    // Names become DNS names and kernel object labels: keep them plain.
    let name_ok = spec.name.len() <= 63
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && spec
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !name_ok {
        return invalid(format!(
            "invalid service name {:?}: use up to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
            spec.name
        ));
    }
    let container = spec.task.as_ref().and_then(|t| t.container.as_ref());
    match container {
        Some(c) if !c.image.trim().is_empty() => {}
        _ => return invalid(format!("service {}: an image is required", spec.name)),
    }
    if let Some(c) = container {
        for env in &c.env {
            if env.is_empty() || env.starts_with('=') {
                return invalid(format!(
                    "service {}: invalid environment entry {env:?}",
                    spec.name
                ));
            }
        }
    }
    if let Some(Mode::Replicated(r)) = &spec.mode {
        if r.replicas > 10_000 {
            return invalid(format!(
                "service {}: {} replicas is more than shoal allows (10000)",
                spec.name, r.replicas
            ));
        }
    }
    Ok(())
}
