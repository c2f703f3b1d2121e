//! A service's `volumes` as docker's loader reads them: the short syntax
//! `[SOURCE:]TARGET[:MODE]` (a SOURCE starting with `/`, `.` or `~` is a
//! bind mount of that host path, relative ones beside the compose file;
//! any other is a named volume of the top-level `volumes`; no SOURCE is an
//! anonymous volume), and the long syntax (`type`, `source`, `target`,
//! `read_only`, `bind.propagation`, `volume.nocopy`, `tmpfs.size`,
//! `tmpfs.mode`). Named volumes keep their compose key as source here; the
//! stack gives them their cluster name and driver settings.

use shoal_proto::types::v1::{mount, Mount};

use super::super::node::{KeyPath, Node};
use super::{Converter, Result};

const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

impl Converter<'_> {
    pub(super) fn service_volumes(&self, node: &Node, path: &KeyPath) -> Result<Vec<Mount>> {
        let Node::Seq(items) = node else {
            return Err(self.src.invalid(path, "must be a list"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = path.index(i);
                match item {
                    Node::Str(spec) => self.short_volume(spec, &p),
                    Node::Map(_) => self.long_volume(item, &p),
                    other => Err(self.src.invalid(
                        &p,
                        format!("must be a string or mapping, not {}", other.type_name()),
                    )),
                }
            })
            .collect()
    }

    fn short_volume(&self, spec: &str, path: &KeyPath) -> Result<Mount> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, target, modes) = match parts.as_slice() {
            [target] => ("", *target, ""),
            [source, target] => (*source, *target, ""),
            [source, target, modes] => (*source, *target, *modes),
            _ => {
                return Err(self
                    .src
                    .invalid(path, format!("invalid spec: {spec}: too many colons")))
            }
        };
        if target.is_empty() {
            return Err(self
                .src
                .invalid(path, format!("invalid spec: {spec}: empty section")));
        }
        let mut m = Mount {
            target: target.to_string(),
            ..Default::default()
        };
        if source.is_empty() {
            m.r#type = mount::Type::Volume as i32;
        } else if source.starts_with(['/', '.', '~']) {
            m.r#type = mount::Type::Bind as i32;
            m.source = self.host_path(source);
        } else {
            m.r#type = mount::Type::Volume as i32;
            m.source = source.to_string();
        }
        for mode in modes.split(',').filter(|s| !s.is_empty()) {
            match mode {
                "ro" => m.read_only = true,
                "rw" | "z" | "Z" => {}
                "nocopy" => m.volume_nocopy = true,
                p if PROPAGATIONS.contains(&p) => m.bind_propagation = p.to_string(),
                other => {
                    return Err(self.src.invalid(
                        path,
                        format!("invalid spec: {spec}: unknown option {other:?}"),
                    ))
                }
            }
        }
        Ok(m)
    }

    fn long_volume(&self, node: &Node, path: &KeyPath) -> Result<Mount> {
        let kind = match node.get("type") {
            Some(n) => self.string(n, &path.key("type"))?,
            None => {
                return Err(self
                    .src
                    .invalid(path, "needs a type (volume, bind or tmpfs)"))
            }
        };
        let mut m = Mount {
            r#type: match kind.as_str() {
                "volume" => mount::Type::Volume,
                "bind" => mount::Type::Bind,
                "tmpfs" => mount::Type::Tmpfs,
                other => {
                    return Err(self.src.invalid(
                        &path.key("type"),
                        format!("unsupported mount type {other:?} (volume, bind or tmpfs)"),
                    ))
                }
            } as i32,
            ..Default::default()
        };
        if let Some(n) = node.get("source") {
            let source = self.string(n, &path.key("source"))?;
            m.source = if kind == "bind" {
                self.host_path(&source)
            } else {
                source
            };
        }
        match node.get("target") {
            Some(n) => m.target = self.string(n, &path.key("target"))?,
            None => return Err(self.src.invalid(path, "needs a target")),
        }
        if let Some(Node::Bool(b)) = node.get("read_only") {
            m.read_only = *b;
        }
        let section = |name: &str| node.get(name).filter(|n| !matches!(n, Node::Null));
        if let Some(bind) = section("bind") {
            if kind != "bind" {
                return Err(self.src.invalid(
                    &path.key("bind"),
                    format!("bind options are incompatible with type {kind}"),
                ));
            }
            if let Some(p) = bind.get("propagation") {
                m.bind_propagation = self.string(p, &path.key("bind").key("propagation"))?;
            }
        }
        if let Some(volume) = section("volume") {
            if kind != "volume" {
                return Err(self.src.invalid(
                    &path.key("volume"),
                    format!("volume options are incompatible with type {kind}"),
                ));
            }
            if let Some(Node::Bool(b)) = volume.get("nocopy") {
                m.volume_nocopy = *b;
            }
        }
        if let Some(tmpfs) = section("tmpfs") {
            if kind != "tmpfs" {
                return Err(self.src.invalid(
                    &path.key("tmpfs"),
                    format!("tmpfs options are incompatible with type {kind}"),
                ));
            }
            if let Some(size) = tmpfs.get("size") {
                let p = path.key("tmpfs").key("size");
                m.tmpfs_size_bytes = match size {
                    Node::Str(s) => {
                        crate::units::ram_in_bytes(s).map_err(|e| self.src.invalid(&p, e))?
                    }
                    other => i64::try_from(self.unsigned(other, &p)?)
                        .map_err(|_| self.src.invalid(&p, "is too large"))?,
                };
            }
            if let Some(mode) = tmpfs.get("mode") {
                let p = path.key("tmpfs").key("mode");
                m.tmpfs_mode = u32::try_from(self.unsigned(mode, &p)?)
                    .map_err(|_| self.src.invalid(&p, "is not a file mode"))?;
            }
        }
        Ok(m)
    }

    /// A bind mount's host path: `~` is the home directory, a relative
    /// path is beside the compose file.
    fn host_path(&self, source: &str) -> String {
        if let Some(rest) = source.strip_prefix('~') {
            let home = self.env.get("HOME").cloned().unwrap_or_default();
            return format!("{home}{rest}");
        }
        self.beside_compose_file(source).display().to_string()
    }
}
