//! containerd leases: while a pull or a container creation is half done, its blobs and
//! snapshots are referenced by nothing, and the garbage collector would take them.

use super::{Executor, ExecutorError, Result};
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::{Ascii, MetadataValue};

/// A lease lives at most this long if the agent dies before deleting it.
const EXPIRY: Duration = Duration::from_secs(3600);

pub(crate) struct Lease {
    id: String,
    header: MetadataValue<Ascii>,
}

impl Lease {
    pub(crate) fn header(&self) -> MetadataValue<Ascii> {
        self.header.clone()
    }
}

impl Executor {
    pub(crate) async fn create_lease(&self, purpose: &str) -> Result<Lease> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!("shoal-{purpose}-{}-{}", std::process::id(), now.as_nanos());
        let labels =
            HashMap::from([("containerd.io/gc.expire".to_string(), rfc3339(now + EXPIRY))]);
        self.leases()
            .create(self.request(
                CreateRequest {
                    id: id.clone(),
                    labels,
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("create lease", &id))?;
        let header = MetadataValue::try_from(id.as_str())
            .map_err(|_| ExecutorError::Namespace(id.clone()))?;
        Ok(Lease { id, header })
    }

    /// Drop a lease; what it protected is kept only if something else references it now.
    pub(crate) async fn delete_lease(&self, lease: Lease) -> Result<()> {
        self.leases()
            .delete(self.request(
                DeleteRequest {
                    id: lease.id.clone(),
                    sync: false,
                },
                None,
            ))
            .await
            .map_err(ExecutorError::containerd("delete lease", &lease.id))?;
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time since the epoch, whole seconds
/// (what containerd's label parser wants).
pub(crate) fn rfc3339(since_epoch: Duration) -> String {
    shoal_proto::rfc3339::format(since_epoch.as_secs() as i64 * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Duration::from_secs(1_709_210_096)),
            "2024-02-29T12:34:56Z"
        );
    }
}
