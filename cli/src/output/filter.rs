//! `-f`/`--filter KEY=VALUE` as docker takes it (docker/cli `opts.FilterOpt`,
//! moby's `filters.Args`): the values of one key are OR-ed, different keys
//! AND-ed, except `label` filters, which must all match (docker's
//! `label=a -f label=b` wants both). Each list names the keys it takes; an
//! unknown key or a value outside a key's set is a usage error.

use std::collections::{BTreeMap, HashMap};

/// One `--filter KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: String,
    pub value: String,
}

/// A key a list command filters on, with the values it takes (any when
/// empty).
#[derive(Debug, Clone, Copy)]
pub struct FilterKey {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

impl FilterKey {
    pub const fn any(name: &'static str) -> FilterKey {
        FilterKey { name, values: &[] }
    }

    pub const fn one_of(name: &'static str, values: &'static [&'static str]) -> FilterKey {
        FilterKey { name, values }
    }
}

/// The filters a list command takes; its [`FilterKeys::parse`] is the
/// command's `--filter` value parser.
#[derive(Debug, Clone, Copy)]
pub struct FilterKeys {
    /// The command, for messages: `service ls`.
    pub command: &'static str,
    pub keys: &'static [FilterKey],
}

impl FilterKeys {
    /// `KEY=VALUE` read as docker reads it (key in lower case, both trimmed),
    /// refused when this command has no such key or the key no such value.
    pub fn parse(&self, input: &str) -> Result<Filter, String> {
        let (key, value) = input
            .split_once('=')
            .ok_or_else(|| format!("bad format of filter {input:?} (expected name=value)"))?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        let names: Vec<&str> = self.keys.iter().map(|k| k.name).collect();
        let known = self.keys.iter().find(|k| k.name == key).ok_or_else(|| {
            format!(
                "invalid filter '{key}': {} filters on {}",
                self.command,
                names.join(", ")
            )
        })?;
        if !known.values.is_empty() && !known.values.contains(&value.as_str()) {
            return Err(format!(
                "invalid filter '{key}={value}': {key} is one of {}",
                known.values.join(", ")
            ));
        }
        Ok(Filter { key, value })
    }
}

/// The `--filter`s of one command, by key.
#[derive(Debug, Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    pub fn new(filters: &[Filter]) -> Filters {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for filter in filters {
            by_key
                .entry(filter.key.clone())
                .or_default()
                .push(filter.value.clone());
        }
        Filters { by_key }
    }

    /// The values given for `key`.
    pub fn values(&self, key: &str) -> &[String] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `key` lets an item through: always without that key, else
    /// when one of its values does (`accept(value)`).
    pub fn any(&self, key: &str, accept: impl Fn(&str) -> bool) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(values) => values.iter().any(|v| accept(v)),
        }
    }

    /// Whether `labels` match every `key` filter (`KEY` or `KEY=VALUE`).
    pub fn labels(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        self.values(key)
            .iter()
            .all(|filter| label_matches(filter, labels))
    }
}

/// docker's label filter: `KEY` matches a label of that name whatever its
/// value, `KEY=VALUE` only that value.
pub fn label_matches(filter: &str, labels: &HashMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    }
}

/// Docker's boolean filter values (`dangling=true`, `=1`, ...).
pub const BOOLEAN: &[&str] = &["true", "false", "1", "0"];

/// Whether a [`BOOLEAN`] filter value says yes.
pub fn is_true(value: &str) -> bool {
    matches!(value, "true" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: FilterKeys = FilterKeys {
        command: "service ls",
        keys: &[
            FilterKey::any("id"),
            FilterKey::any("label"),
            FilterKey::one_of("mode", &["replicated", "global"]),
            FilterKey::any("name"),
        ],
    };

    struct Item {
        name: &'static str,
        mode: &'static str,
        labels: HashMap<String, String>,
    }

    fn item(name: &'static str, mode: &'static str, labels: &[(&str, &str)]) -> Item {
        Item {
            name,
            mode,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The names of `items` that `filters` let through, matched as the
    /// list commands match theirs.
    fn kept(filters: &[&str], items: &[Item]) -> Vec<&'static str> {
        let parsed: Vec<Filter> = filters
            .iter()
            .map(|f| KEYS.parse(f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        let filters = Filters::new(&parsed);
        items
            .iter()
            .filter(|i| {
                filters.any("name", |p| i.name.starts_with(p))
                    && filters.any("mode", |m| m == i.mode)
                    && filters.labels("label", &i.labels)
            })
            .map(|i| i.name)
            .collect()
    }

    fn items() -> Vec<Item> {
        vec![
            item("web", "replicated", &[("tier", "front"), ("team", "a")]),
            item("web-admin", "global", &[("tier", "back")]),
            item("db", "replicated", &[("tier", "back"), ("team", "a")]),
            item("cache", "global", &[]),
        ]
    }

    #[test]
    fn values_of_one_key_are_ored_and_keys_anded() {
        assert_eq!(kept(&["name=db", "name=cache"], &items()), ["db", "cache"]);
        assert_eq!(kept(&["name=web", "mode=global"], &items()), ["web-admin"]);
        assert_eq!(kept(&[], &items()).len(), 4);
    }

    #[test]
    fn names_match_as_a_prefix() {
        assert_eq!(kept(&["name=we"], &items()), ["web", "web-admin"]);
        assert!(kept(&["name=eb"], &items()).is_empty());
    }

    #[test]
    fn labels_match_by_key_or_key_and_value_and_all_must_match() {
        assert_eq!(kept(&["label=team"], &items()), ["web", "db"]);
        assert_eq!(kept(&["label=tier=back"], &items()), ["web-admin", "db"]);
        assert_eq!(kept(&["label=tier=back", "label=team"], &items()), ["db"]);
        assert!(kept(&["label=tier=side"], &items()).is_empty());
    }

    #[test]
    fn keys_read_as_docker_reads_them_and_unknown_ones_are_refused() {
        assert_eq!(
            KEYS.parse(" Name = web "),
            Ok(Filter {
                key: "name".into(),
                value: "web".into()
            })
        );
        assert_eq!(
            KEYS.parse("nope=1").unwrap_err(),
            "invalid filter 'nope': service ls filters on id, label, mode, name"
        );
        assert_eq!(
            KEYS.parse("mode=sometimes").unwrap_err(),
            "invalid filter 'mode=sometimes': mode is one of replicated, global"
        );
        assert!(KEYS
            .parse("name")
            .unwrap_err()
            .contains("expected name=value"));
    }
}
