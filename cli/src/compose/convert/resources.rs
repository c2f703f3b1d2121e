//! compose `deploy.resources` as docker's `convertResources` reads it:
//! `limits.cpus` / `reservations.cpus` a string of CPUs (`'0.50'`),
//! `memory` a string size (`64M`, `1g`), `limits.pids` an integer.
//! `reservations.generic_resources` is not supported and is warned about.

use shoal_proto::types::v1::ResourceRequirements;

use super::super::node::{KeyPath, Node};
use super::{Converter, Result};
use crate::units;

impl Converter<'_> {
    pub(super) fn resources(
        &mut self,
        service: &str,
        node: &Node,
        path: &KeyPath,
    ) -> Result<ResourceRequirements> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        let mut r = ResourceRequirements::default();
        for (key, value) in entries {
            let p = path.key(key);
            let Node::Map(amounts) = value else {
                if matches!(value, Node::Null) {
                    continue;
                }
                return Err(self.src.invalid(&p, "must be a mapping"));
            };
            let limits = match key.as_str() {
                "limits" => true,
                "reservations" => false,
                _ => continue,
            };
            for (amount, v) in amounts {
                let ap = p.key(amount);
                match (amount.as_str(), limits) {
                    ("cpus", _) => {
                        let text = self.string(v, &ap)?;
                        let cpus = units::nano_cpus(&text).map_err(|e| self.src.invalid(&ap, e))?;
                        if limits {
                            r.limit_nano_cpus = cpus;
                        } else {
                            r.reserve_nano_cpus = cpus;
                        }
                    }
                    ("memory", _) => {
                        let text = self.string(v, &ap)?;
                        let bytes =
                            units::ram_in_bytes(&text).map_err(|e| self.src.invalid(&ap, e))?;
                        if limits {
                            r.limit_memory_bytes = bytes;
                        } else {
                            r.reserve_memory_bytes = bytes;
                        }
                    }
                    ("pids", true) => {
                        r.limit_pids = i64::try_from(self.unsigned(v, &ap)?)
                            .map_err(|_| self.src.invalid(&ap, "is too large"))?;
                    }
                    (other, _) => {
                        self.unsupported(service, &format!("deploy.resources.{key}.{other}"))
                    }
                }
            }
        }
        Ok(r)
    }
}
