//! The compose keys that set what a container gets beyond its command, as
//! docker's convert reads them: `read_only`, `init`, `tty`, `stdin_open`,
//! `cap_add`, `cap_drop`, `group_add`, `extra_hosts` (`host:ip` list or
//! mapping), `sysctls` (list or mapping), `ulimits` (a number, or `soft`
//! and `hard`), `tmpfs` (a path or a list of them), and `security_opt`, of
//! which shoal honours `no-new-privileges` (Swarm ignores the key).

use shoal_proto::types::v1::{mount, ContainerSpec, Mount, Ulimit};

use super::super::node::{KeyPath, Node};
use super::{Converter, Result};

impl Converter<'_> {
    /// Reads one runtime key into `container`; false for a key that is not one.
    pub(super) fn runtime_key(
        &mut self,
        service: &str,
        key: &str,
        value: &Node,
        path: &KeyPath,
        container: &mut ContainerSpec,
    ) -> Result<bool> {
        match key {
            "read_only" => container.read_only = self.boolean(value, path)?,
            "init" => container.init = self.boolean(value, path)?,
            "tty" => container.tty = self.boolean(value, path)?,
            "stdin_open" => container.open_stdin = self.boolean(value, path)?,
            "cap_add" => container.capability_add = self.strings(value, path)?,
            "cap_drop" => container.capability_drop = self.strings(value, path)?,
            "group_add" => container.groups = self.strings(value, path)?,
            "extra_hosts" => container.hosts = self.extra_hosts(value, path)?,
            "sysctls" => container.sysctls = self.labels(value, path)?,
            "ulimits" => container.ulimits = self.ulimits(value, path)?,
            "volumes" => container.mounts.extend(self.service_volumes(value, path)?),
            "tmpfs" => {
                for (target, _) in self.string_list(value, path)? {
                    container.mounts.push(Mount {
                        r#type: mount::Type::Tmpfs as i32,
                        target,
                        ..Default::default()
                    });
                }
            }
            "security_opt" => {
                for (option, _) in self.string_list(value, path)? {
                    let (name, setting) = option
                        .split_once([':', '='])
                        .unwrap_or((option.as_str(), "true"));
                    if name == "no-new-privileges" {
                        container.no_new_privileges = setting != "false";
                    } else {
                        self.unsupported(service, &format!("security_opt {option}"));
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn boolean(&self, node: &Node, path: &KeyPath) -> Result<bool> {
        match node {
            Node::Bool(b) => Ok(*b),
            Node::Null => Ok(false),
            other => Err(self.src.invalid(
                path,
                format!("must be a boolean, not {}", other.type_name()),
            )),
        }
    }

    fn strings(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        Ok(self
            .string_list(node, path)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// docker's convertExtraHosts: `host:ip` (or `host=ip`) entries, or a
    /// mapping of host to ip, as Swarm's `ip host` lines.
    fn extra_hosts(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        let pairs: Vec<(String, String, KeyPath)> = match node {
            Node::Map(entries) => entries
                .iter()
                .map(|(host, ip)| {
                    let p = path.key(host);
                    Ok((host.clone(), self.string(ip, &p)?, p))
                })
                .collect::<Result<_>>()?,
            _ => self
                .string_list(node, path)?
                .into_iter()
                .map(|(entry, p)| {
                    let (host, ip) = entry
                        .split_once(['=', ':'])
                        .ok_or_else(|| self.src.invalid(&p, "must be host:ip"))?;
                    Ok((host.to_string(), ip.to_string(), p))
                })
                .collect::<Result<_>>()?,
        };
        pairs
            .into_iter()
            .map(|(host, ip, p)| {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(self
                        .src
                        .invalid(&p, format!("invalid IP address {ip:?} for host {host:?}")));
                }
                Ok(format!("{ip} {host}"))
            })
            .collect()
    }

    /// `nofile: 1024` or `nofile: {soft: 1024, hard: 2048}`, sorted by name
    /// as docker's convertUlimits does.
    fn ulimits(&self, node: &Node, path: &KeyPath) -> Result<Vec<Ulimit>> {
        let Node::Map(entries) = node else {
            return Err(self.src.invalid(path, "must be a mapping"));
        };
        let mut out = Vec::new();
        for (name, value) in entries {
            let p = path.key(name);
            let limit = |node: &Node, p: &KeyPath| -> Result<i64> {
                i64::try_from(self.unsigned(node, p)?)
                    .map_err(|_| self.src.invalid(p, "is too large"))
            };
            let (soft, hard) = match value {
                Node::Map(_) => {
                    let get = |k: &str| {
                        value
                            .get(k)
                            .ok_or_else(|| self.src.invalid(&p, format!("needs {k}")))
                            .and_then(|n| limit(n, &p.key(k)))
                    };
                    (get("soft")?, get("hard")?)
                }
                single => {
                    let n = limit(single, &p)?;
                    (n, n)
                }
            };
            out.push(Ulimit {
                name: name.clone(),
                soft,
                hard,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
