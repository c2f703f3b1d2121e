//! compose `env_file`: env files (`crate::env_file`) read at load,
//! relative to the compose file's folder; later files win, `environment`
//! wins over them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::node::{KeyPath, Node};
use super::{Converter, Result};

impl Converter<'_> {
    /// The variables of a service's `env_file` files, in order.
    pub(super) fn env_file(
        &self,
        node: &Node,
        path: &KeyPath,
    ) -> Result<BTreeMap<String, Option<String>>> {
        let mut vars = BTreeMap::new();
        for (file, p) in self.string_list(node, path)? {
            let full = self.beside_compose_file(&file);
            let lines =
                crate::env_file::read(&full, self.env).map_err(|e| self.src.invalid(&p, e))?;
            vars.extend(lines.into_iter().map(|(k, v)| (k, Some(v))));
        }
        Ok(vars)
    }

    /// `file` relative to the compose file's folder, made absolute as
    /// docker's messages show it.
    pub(super) fn beside_compose_file(&self, file: &str) -> PathBuf {
        let file = Path::new(file);
        if file.is_absolute() {
            return file.to_path_buf();
        }
        let base = self
            .base
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let joined = base.join(file);
        let absolute = if joined.is_absolute() {
            joined
        } else {
            std::env::current_dir().unwrap_or_default().join(joined)
        };
        // `./x` written as docker writes it: without the `.`.
        absolute
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    }
}
