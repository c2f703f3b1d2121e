//! The image's own health check: docker images carry `config.Healthcheck`
//! (`HEALTHCHECK` in a Dockerfile), which the OCI image spec has no field
//! for, so it is read from the config blob's JSON beside oci-spec's parse.

use super::pull::normalize_reference;
use super::{Executor, Result};
use serde::Deserialize;
use std::time::Duration;

/// An image's `HEALTHCHECK`; zero durations and counts mean "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageHealthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", cmd]`, `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u64,
}

#[derive(Deserialize)]
struct ConfigBlob {
    config: Option<ContainerConfig>,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Healthcheck")]
    healthcheck: Option<RawHealthcheck>,
}

/// Docker's JSON: durations in nanoseconds.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHealthcheck {
    #[serde(default)]
    test: Option<Vec<String>>,
    #[serde(default)]
    interval: i64,
    #[serde(default)]
    timeout: i64,
    #[serde(default)]
    start_period: i64,
    #[serde(default)]
    start_interval: i64,
    #[serde(default)]
    retries: i64,
}

fn nanos(value: i64) -> Duration {
    Duration::from_nanos(value.max(0) as u64)
}

/// The health check an image config blob declares, if any. A blob that
/// does not parse declares none (oci-spec's own parse reports real damage).
pub(crate) fn from_config_blob(bytes: &[u8]) -> Option<ImageHealthcheck> {
    let blob: ConfigBlob = serde_json::from_slice(bytes).ok()?;
    let raw = blob.config?.healthcheck?;
    Some(ImageHealthcheck {
        test: raw.test.unwrap_or_default(),
        interval: nanos(raw.interval),
        timeout: nanos(raw.timeout),
        start_period: nanos(raw.start_period),
        start_interval: nanos(raw.start_interval),
        retries: raw.retries.max(0) as u64,
    })
}

impl Executor {
    /// The `HEALTHCHECK` of `image`, which must have been pulled.
    pub async fn image_healthcheck(&self, image: &str) -> Result<Option<ImageHealthcheck>> {
        let name = normalize_reference(image)?;
        Ok(self
            .local_image(&name)
            .await?
            .and_then(|pulled| pulled.healthcheck))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dockers_healthcheck_in_nanoseconds() {
        let blob = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=b"],
            "Healthcheck":{"Test":["CMD-SHELL","wget -q http://127.0.0.1/ || exit 1"],
            "Interval":1000000000,"Timeout":500000000,"StartPeriod":2000000000,"Retries":2}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let check = from_config_blob(blob).unwrap();
        assert_eq!(check.test[0], "CMD-SHELL");
        assert_eq!(check.interval, Duration::from_secs(1));
        assert_eq!(check.timeout, Duration::from_millis(500));
        assert_eq!(check.start_period, Duration::from_secs(2));
        assert_eq!(check.start_interval, Duration::ZERO);
        assert_eq!(check.retries, 2);
    }

    #[test]
    fn an_image_without_one_has_none() {
        assert_eq!(from_config_blob(br#"{"config":{"Env":[]}}"#), None);
        assert_eq!(from_config_blob(br#"{"os":"linux"}"#), None);
        assert_eq!(from_config_blob(b"not json"), None);
    }
}
