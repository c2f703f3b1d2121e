//! Override files: docker's `merge` of normalized configs (docker/cli
//! `loader/merge.go`, built on mergo with `WithOverride` and
//! `WithAppendSlice`). A later file's service is merged into the earlier
//! one field by field: a scalar that is set replaces, a list is appended
//! to, a map is merged key by key; ports merge by published port, volumes
//! by target, secrets and configs by source (each then sorted by that
//! key), `command`/`entrypoint` and network aliases are replaced whole, a
//! logging driver's options merge only while the driver stays the same.
//! A top-level network, volume, secret or config of a later file replaces
//! the earlier one of that name.

use super::node::Node;
use super::normalize::sort_keys;

/// Merges `over` (a later file's normalized config) into `base`.
pub fn merge(base: &mut Node, over: Node) {
    let Node::Map(over) = over else { return };
    for (section, value) in over {
        match section.as_str() {
            "services" => {
                let Node::Map(services) = value else { continue };
                let target = section_of(base, "services");
                for (name, service) in services {
                    match target.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, existing)) => merge_service(existing, service),
                        None => target.push((name, service)),
                    }
                }
                let sorted = sort_keys(std::mem::take(target));
                *target = sorted;
            }
            "networks" | "volumes" | "secrets" | "configs" => {
                let Node::Map(objects) = value else { continue };
                let target = section_of(base, &section);
                for (name, object) in objects {
                    match target.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, existing)) => *existing = object,
                        None => target.push((name, object)),
                    }
                }
                let sorted = sort_keys(std::mem::take(target));
                *target = sorted;
            }
            // docker keeps the first file's version and extension fields.
            _ => {}
        }
    }
}

/// The entries of top-level `section` of `doc`, made (in docker's place
/// for it) when missing.
fn section_of<'a>(doc: &'a mut Node, section: &str) -> &'a mut Vec<(String, Node)> {
    let Node::Map(entries) = doc else {
        unreachable!("a normalized config is a mapping");
    };
    if !entries.iter().any(|(k, _)| k == section) {
        let order = [
            "version", "services", "networks", "volumes", "secrets", "configs",
        ];
        let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
        let at = entries
            .iter()
            .position(|(k, _)| rank(k) > rank(section))
            .unwrap_or(entries.len());
        entries.insert(at, (section.to_string(), Node::Map(Vec::new())));
    }
    match entries.iter_mut().find(|(k, _)| k == section) {
        Some((_, Node::Map(m))) => m,
        _ => unreachable!("a section is a mapping"),
    }
}

/// How a field of docker's `ServiceConfig` merges.
#[derive(Clone, Copy)]
enum Rule {
    /// A set value replaces (strings, booleans, numbers, pointers).
    Replace,
    /// A list: the later items are appended.
    Append,
    /// A list of mappings, merged by the value of this key, then sorted by it.
    Keyed(&'static str),
    /// A map of values: key by key, the later value replacing.
    Map,
    /// `environment`: key by key, but a later empty or null value keeps the
    /// earlier one.
    Environment,
    /// A map of settings per network, merged by `merge_network`.
    Networks,
    /// A struct, merged field by field with these rules.
    Struct(&'static [(&'static str, Rule)]),
    Logging,
}

const SERVICE: &[(&str, Rule)] = &[
    ("build", Rule::Struct(BUILD)),
    ("cap_add", Rule::Append),
    ("cap_drop", Rule::Append),
    ("configs", Rule::Keyed("source")),
    ("credential_spec", Rule::Struct(&[])),
    ("depends_on", Rule::Append),
    ("deploy", Rule::Struct(DEPLOY)),
    ("devices", Rule::Append),
    ("dns", Rule::Append),
    ("dns_search", Rule::Append),
    ("environment", Rule::Environment),
    ("env_file", Rule::Append),
    ("expose", Rule::Append),
    ("external_links", Rule::Append),
    ("extra_hosts", Rule::Append),
    ("healthcheck", Rule::Struct(HEALTHCHECK)),
    ("labels", Rule::Map),
    ("links", Rule::Append),
    ("logging", Rule::Logging),
    ("networks", Rule::Networks),
    ("ports", Rule::Keyed("published")),
    ("secrets", Rule::Keyed("source")),
    ("security_opt", Rule::Append),
    ("sysctls", Rule::Map),
    ("tmpfs", Rule::Append),
    ("ulimits", Rule::Map),
    ("volumes", Rule::Keyed("target")),
];

const BUILD: &[(&str, Rule)] = &[
    ("args", Rule::Environment),
    ("labels", Rule::Map),
    ("cache_from", Rule::Append),
    ("extra_hosts", Rule::Append),
];

const DEPLOY: &[(&str, Rule)] = &[
    ("labels", Rule::Map),
    ("update_config", Rule::Struct(&[])),
    ("rollback_config", Rule::Struct(&[])),
    ("resources", Rule::Struct(RESOURCES)),
    ("restart_policy", Rule::Struct(&[])),
    ("placement", Rule::Struct(PLACEMENT)),
];

const RESOURCES: &[(&str, Rule)] = &[
    ("limits", Rule::Struct(&[])),
    (
        "reservations",
        Rule::Struct(&[("generic_resources", Rule::Append)]),
    ),
];

const PLACEMENT: &[(&str, Rule)] = &[("constraints", Rule::Append), ("preferences", Rule::Append)];

const HEALTHCHECK: &[(&str, Rule)] = &[("test", Rule::Append)];

fn rule_for(rules: &[(&str, Rule)], key: &str) -> Rule {
    rules
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| *r)
        .unwrap_or(Rule::Replace)
}

fn merge_service(base: &mut Node, over: Node) {
    merge_struct(base, over, SERVICE);
}

fn merge_struct(base: &mut Node, over: Node, rules: &[(&str, Rule)]) {
    let (Node::Map(base_fields), Node::Map(over_fields)) = (&mut *base, over) else {
        return;
    };
    for (key, value) in over_fields {
        match base_fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => merge_value(existing, value, rule_for(rules, &key)),
            None => base_fields.push((key, value)),
        }
    }
}

fn merge_value(base: &mut Node, over: Node, rule: Rule) {
    match rule {
        Rule::Replace => *base = over,
        Rule::Append => {
            if let (Node::Seq(items), Node::Seq(more)) = (&mut *base, over) {
                items.extend(more);
            }
        }
        Rule::Keyed(key) => {
            if let (Node::Seq(items), Node::Seq(more)) = (&mut *base, over) {
                let id = |n: &Node| n.get(key).cloned().unwrap_or(Node::Int(0));
                let mut merged: Vec<Node> = Vec::new();
                for item in items.drain(..).chain(more) {
                    match merged.iter_mut().find(|m| id(m) == id(&item)) {
                        Some(existing) => *existing = item,
                        None => merged.push(item),
                    }
                }
                merged.sort_by(|a, b| compare_ids(&id(a), &id(b)));
                *items = merged;
            }
        }
        Rule::Map | Rule::Environment => {
            if let (Node::Map(entries), Node::Map(more)) = (&mut *base, over) {
                for (k, v) in more {
                    // A later empty or null variable keeps the earlier value.
                    let keeps_earlier = matches!(rule, Rule::Environment)
                        && matches!(&v, Node::Null | Node::Str(_) if v.scalar_string().unwrap_or_default().is_empty());
                    match entries.iter_mut().find(|(key, _)| *key == k) {
                        Some((_, existing)) if keeps_earlier && !matches!(existing, Node::Null) => {
                        }
                        Some((_, existing)) => *existing = v,
                        None => entries.push((k, v)),
                    }
                }
                let sorted = sort_keys(std::mem::take(entries));
                *entries = sorted;
            }
        }
        Rule::Networks => {
            if let (Node::Map(entries), Node::Map(more)) = (&mut *base, over) {
                for (name, settings) in more {
                    match entries.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, existing)) => merge_network(existing, settings),
                        None => entries.push((name, settings)),
                    }
                }
                let sorted = sort_keys(std::mem::take(entries));
                *entries = sorted;
            }
        }
        Rule::Struct(rules) => merge_struct(base, over, rules),
        Rule::Logging => merge_logging(base, over),
    }
}

/// Published ports compare as numbers, sources and targets as text.
fn compare_ids(a: &Node, b: &Node) -> std::cmp::Ordering {
    match (a, b) {
        (Node::Int(x), Node::Int(y)) => x.cmp(y),
        _ => a
            .scalar_string()
            .unwrap_or_default()
            .cmp(&b.scalar_string().unwrap_or_default()),
    }
}

/// docker's `mergeServiceNetworkConfig`: later aliases replace the earlier
/// ones, later addresses replace when set.
fn merge_network(base: &mut Node, over: Node) {
    let Node::Map(over_fields) = over else { return };
    if over_fields.is_empty() {
        return;
    }
    if !matches!(base, Node::Map(_)) {
        *base = Node::Map(over_fields);
        return;
    }
    let aliases = over_fields.iter().find(|(k, _)| k == "aliases").cloned();
    if let Node::Map(fields) = base {
        fields.retain(|(k, _)| k != "aliases");
        if let Some(aliases) = aliases {
            fields.push(aliases);
        }
        for (k, v) in over_fields {
            if k == "ipv4_address" || k == "ipv6_address" {
                match fields.iter_mut().find(|(key, _)| *key == k) {
                    Some((_, existing)) => *existing = v,
                    None => fields.push((k, v)),
                }
            }
        }
    }
}

/// docker's `mergeLoggingConfig`: the same driver (or one unset) merges
/// the options; another driver replaces the whole setting.
fn merge_logging(base: &mut Node, over: Node) {
    let driver = |n: &Node| {
        n.get("driver")
            .and_then(Node::scalar_string)
            .unwrap_or_default()
    };
    let (base_driver, over_driver) = (driver(base), driver(&over));
    if base_driver != over_driver && !base_driver.is_empty() && !over_driver.is_empty() {
        *base = over;
        return;
    }
    merge_struct(base, over, &[("options", Rule::Map)]);
}
