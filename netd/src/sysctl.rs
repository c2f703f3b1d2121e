//! Network sysctls of the host namespace. /proc/sys/net resolves to the
//! namespace of the thread that opens it, so writes go through
//! [`crate::netns::run_in`].

use std::fs::File;

use crate::error::{Error, Result};
use crate::netns;

/// Sets `key` (dotted, e.g. `net.ipv4.ip_forward`) to `value` in the
/// namespace `ns`, unless it already has that value.
pub async fn set(ns: &File, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    netns::run_in(ns, "writing a sysctl", move || {
        let current = std::fs::read_to_string(&path).map_err(Error::io("read sysctl", &path))?;
        if current.trim() == value {
            return Ok(());
        }
        std::fs::write(&path, &value).map_err(Error::io("write sysctl", &path))
    })
    .await
}
