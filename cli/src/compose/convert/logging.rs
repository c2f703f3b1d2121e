//! The compose key `logging: {driver, options}`, as docker's
//! `convertLogDriver` reads it: present, it is the service's driver (a
//! missing `driver` is the empty name, the default driver with these
//! options); absent, the service has none. Option values are strings, as
//! docker's schema makes them (`max-file: 3` is `"3"`).
//!
//! A driver shoal does not have is refused here, where the file can point
//! at it: docker's loader takes any name and its daemon would run gelf or
//! syslog, shoal's agents keep logs only with these. The options are the
//! manager's to check, when the stack is deployed.

use shoal_proto::types::v1::LogDriver;

use super::super::node::{KeyPath, Node};
use super::{Converter, Result};

/// The drivers shoal's agents keep logs with (the manager's list too).
const DRIVERS: &[&str] = &["json-file", "local", "none"];

impl Converter<'_> {
    pub(super) fn logging(&self, node: &Node, path: &KeyPath) -> Result<LogDriver> {
        let mut driver = LogDriver::default();
        let Node::Map(entries) = node else {
            return Err(self
                .src
                .invalid(path, format!("must be a mapping, not {}", node.type_name())));
        };
        for (key, value) in entries {
            let p = path.key(key);
            match key.as_str() {
                "driver" => {
                    let name = self.string(value, &p)?;
                    if !name.is_empty() && !DRIVERS.contains(&name.as_str()) {
                        return Err(self.src.invalid(
                            &p,
                            format!(
                                "logging driver {name:?} is not supported: shoal keeps logs \
                                 with json-file, local or none"
                            ),
                        ));
                    }
                    driver.name = name;
                }
                // Numbers as docker's `fmt.Sprint` writes them, null as "".
                "options" => driver.options = self.labels(value, &p)?,
                // The schema allows no other key.
                _ => {}
            }
        }
        Ok(driver)
    }
}
