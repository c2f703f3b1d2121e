//! docker's `loadSections`: a checked, interpolated compose document turned
//! into the shape of docker/cli's `types.Config`, the form `stack config`
//! prints and override files merge in. Every short form becomes its long
//! form (ports, volumes, secrets, `command` strings, list-or-dict keys),
//! values become what docker's types hold (durations as Go prints them,
//! byte sizes as strings of bytes, numbers in maps as strings), paths are
//! made absolute, `env_file` is read into `environment`, keys docker's
//! types lack are dropped, and entries come in docker's order: struct
//! fields in declaration order, map keys sorted as go-yaml sorts them.

mod objects;
mod service;
mod shape;

use std::collections::HashMap;
use std::path::Path;

use super::error::ComposeError;
use super::node::{KeyPath, Node};
use super::source::Source;

pub use shape::sort_keys;

/// What a file is normalized against.
pub struct Context<'a> {
    pub src: &'a Source<'a>,
    /// Relative paths (binds, `env_file`, secret and config files) are
    /// resolved against this folder: the first compose file's, as docker.
    pub working_dir: &'a Path,
    pub env: &'a HashMap<String, String>,
}

impl Context<'_> {
    fn invalid(&self, path: &KeyPath, message: impl Into<String>) -> ComposeError {
        self.src.invalid(path, message)
    }

    fn absolute(&self, file: &str) -> String {
        let path = Path::new(file);
        if path.is_absolute() {
            return file.to_string();
        }
        clean(&self.working_dir.join(path))
    }
}

/// Go's `filepath.Join` result: the path cleaned of `.` and `..` steps.
fn clean(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let absolute = path.is_absolute();
    for part in path.components() {
        match part {
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            std::path::Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".to_string());
                }
            }
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The normalized form of `doc` (checked against the schema of `version`
/// already: docker's reading of its `version`, the default when unset).
pub fn config(doc: &Node, version: &str, ctx: &Context) -> Result<Node, ComposeError> {
    let root = KeyPath::default();
    let mut out = vec![("version".to_string(), Node::Str(version.to_string()))];
    let mut services = Vec::new();
    if let Some(Node::Map(entries)) = doc.get("services") {
        for (name, definition) in entries {
            let path = root.key("services").key(name);
            services.push((name.clone(), service::service(definition, &path, ctx)?));
        }
    }
    out.push(("services".to_string(), Node::Map(sort_keys(services))));
    for section in ["networks", "volumes", "secrets", "configs"] {
        let entries = match doc.get(section) {
            Some(Node::Map(entries)) => entries.as_slice(),
            _ => &[],
        };
        let mut normalized = Vec::new();
        for (name, definition) in entries {
            let path = root.key(section).key(name);
            let object = objects::object(section, name, definition, &path, ctx)?;
            normalized.push((name.clone(), object));
        }
        if !normalized.is_empty() {
            out.push((section.to_string(), Node::Map(sort_keys(normalized))));
        }
    }
    out.extend(shape::extras(doc));
    Ok(Node::Map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_and_cleaned_as_go_joins_them() {
        assert_eq!(clean(Path::new("/a/b/./c/../d")), "/a/b/d");
        assert_eq!(clean(Path::new("/a/../..")), "/");
        assert_eq!(clean(Path::new("a/../../b")), "../b");
    }
}
