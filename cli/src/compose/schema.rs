//! Docker's compose schema check (cli/compose/schema): the same JSON schema files, checked by a
//! validator for the subset of JSON Schema draft 4 those files use. Every file docker rejects
//! for its shape is rejected here too, with the most specific key path.
//!
//! `schema/config_schema_v3.*.json` are copied unchanged from docker/cli
//! (cli/compose/schema/data, Apache-2.0); refresh them from there.

use std::sync::OnceLock;

use serde_json::Value as Json;

use super::duration::parse_go_duration;
use super::node::{KeyPath, Node};
use super::ports::parse_port_spec;

const SCHEMAS: &[(&str, &str)] = &[
    ("3.0", include_str!("schema/config_schema_v3.0.json")),
    ("3.1", include_str!("schema/config_schema_v3.1.json")),
    ("3.2", include_str!("schema/config_schema_v3.2.json")),
    ("3.3", include_str!("schema/config_schema_v3.3.json")),
    ("3.4", include_str!("schema/config_schema_v3.4.json")),
    ("3.5", include_str!("schema/config_schema_v3.5.json")),
    ("3.6", include_str!("schema/config_schema_v3.6.json")),
    ("3.7", include_str!("schema/config_schema_v3.7.json")),
    ("3.8", include_str!("schema/config_schema_v3.8.json")),
    ("3.9", include_str!("schema/config_schema_v3.9.json")),
    ("3.10", include_str!("schema/config_schema_v3.10.json")),
    ("3.11", include_str!("schema/config_schema_v3.11.json")),
    ("3.12", include_str!("schema/config_schema_v3.12.json")),
    ("3.13", include_str!("schema/config_schema_v3.13.json")),
];

/// The version docker assumes when `version` is missing or just "3".
pub const DEFAULT_VERSION: &str = "3.13";

/// A schema violation: `path` is the most specific key path, `key` set when the problem is a
/// key (an additional property) rather than a value.
#[derive(Debug, PartialEq)]
pub struct SchemaError {
    pub path: KeyPath,
    pub message: String,
    pub key: Option<String>,
}

pub enum Validation {
    Ok,
    UnknownVersion,
    Invalid(SchemaError),
}

/// Parsed schemas, by position in [`SCHEMAS`]; parsed once per process.
static PARSED: [OnceLock<Option<Json>>; SCHEMAS.len()] = [const { OnceLock::new() }; SCHEMAS.len()];

pub fn validate(doc: &Node, version: &str) -> Validation {
    let Some(index) = SCHEMAS.iter().position(|(v, _)| *v == version) else {
        return Validation::UnknownVersion;
    };
    // The schemas are compiled in; a parse failure would be a build defect, reported as an
    // unusable version rather than a panic.
    let parsed = PARSED[index].get_or_init(|| {
        serde_json::from_str(SCHEMAS[index].1)
            .ok()
            .map(with_shoal_extensions)
    });
    let Some(schema) = parsed else {
        return Validation::UnknownVersion;
    };
    let v = Validator { root: schema };
    match v.check(schema, doc, &KeyPath::default()) {
        Ok(()) => Validation::Ok,
        Err(e) => Validation::Invalid(e),
    }
}

/// What shoal reads beyond docker's v3 schema, from the Compose
/// Specification: a secret's `environment` (its value from a variable of
/// the deploying shell). Every other key is docker's.
fn with_shoal_extensions(mut schema: Json) -> Json {
    if let Some(properties) = schema
        .pointer_mut("/definitions/secret/properties")
        .and_then(Json::as_object_mut)
    {
        properties.insert(
            "environment".to_string(),
            serde_json::json!({ "type": "string" }),
        );
    }
    schema
}

struct Validator<'s> {
    root: &'s Json,
}

fn err(path: &KeyPath, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.clone(),
        message: message.into(),
        key: None,
    }
}

fn type_matches(t: &str, node: &Node) -> bool {
    match (t, node) {
        ("string", Node::Str(_)) => true,
        ("number", Node::Int(_) | Node::Float(_)) => true,
        ("integer", Node::Int(_)) => true,
        ("integer", Node::Float(f)) => f.is_finite() && f.fract() == 0.0,
        ("boolean", Node::Bool(_)) => true,
        ("null", Node::Null) => true,
        ("object", Node::Map(_)) => true,
        ("array", Node::Seq(_)) => true,
        _ => false,
    }
}

fn human_type(t: &str) -> &str {
    match t {
        "object" => "mapping",
        "array" => "list",
        other => other,
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The four patterns the compose schemas use, with Go regexp semantics (`.` excludes `\n`).
fn pattern_matches(pattern: &str, key: &str) -> bool {
    match pattern {
        "^x-" => key.starts_with("x-"),
        "^.+$" => !key.is_empty() && !key.contains('\n'),
        ".+" => key.chars().any(|c| c != '\n'),
        "^[a-zA-Z0-9._-]+$" => {
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        "^[a-z]+$" => !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase()),
        _ => false,
    }
}

fn json_eq(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Int(x), Node::Float(y)) | (Node::Float(y), Node::Int(x)) => (*x as f64) == *y,
        _ => a == b,
    }
}

fn enum_matches(allowed: &[Json], node: &Node) -> bool {
    allowed.iter().any(|v| match (v, node) {
        (Json::String(s), Node::Str(n)) => s == n,
        (Json::Bool(b), Node::Bool(n)) => b == n,
        (Json::Null, Node::Null) => true,
        (Json::Number(x), Node::Int(n)) => x.as_i64() == Some(*n),
        (Json::Number(x), Node::Float(n)) => x.as_f64() == Some(*n),
        _ => false,
    })
}

impl<'s> Validator<'s> {
    fn resolve(&self, reference: &str) -> Option<&'s Json> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn check(&self, schema: &'s Json, node: &Node, path: &KeyPath) -> Result<(), SchemaError> {
        let Json::Object(s) = schema else {
            return Ok(());
        };
        if let Some(Json::String(r)) = s.get("$ref") {
            return match self.resolve(r) {
                Some(target) => self.check(target, node, path),
                None => Err(err(path, format!("refers to an unknown schema {r}"))),
            };
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Json::String(one) => vec![one.as_str()],
                Json::Array(many) => many.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.is_empty() && !types.iter().any(|t| type_matches(t, node)) {
                let names: Vec<&str> = types.iter().map(|t| human_type(t)).collect();
                let expected = match names.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, init)) => format!("{} or {last}", init.join(", ")),
                    None => String::new(),
                };
                return Err(err(
                    path,
                    format!("must be {} {expected}", article(&expected)),
                ));
            }
        }
        if let Some(Json::Array(allowed)) = s.get("enum") {
            if !enum_matches(allowed, node) {
                let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
                return Err(err(path, format!("must be one of: {}", list.join(", "))));
            }
        }
        if let Some(min) = s.get("minimum").and_then(Json::as_f64) {
            let below = match node {
                Node::Int(i) => (*i as f64) < min,
                Node::Float(f) => *f < min,
                _ => false,
            };
            if below {
                return Err(err(path, format!("must be greater than or equal to {min}")));
            }
        }
        if let Some(Json::String(format)) = s.get("format") {
            self.check_format(format, node, path)?;
        }
        if let Some(Json::Array(branches)) = s.get("oneOf") {
            self.check_alternatives(branches, node, path, true)?;
        }
        if let Some(Json::Array(branches)) = s.get("anyOf") {
            self.check_alternatives(branches, node, path, false)?;
        }
        match node {
            Node::Map(entries) => self.check_object(s, entries, path),
            Node::Seq(items) => self.check_array(s, items, path),
            _ => Ok(()),
        }
    }

    fn check_format(&self, format: &str, node: &Node, path: &KeyPath) -> Result<(), SchemaError> {
        let ok = match format {
            "ports" => match node {
                Node::Str(s) => parse_port_spec(s).is_ok(),
                Node::Int(i) => parse_port_spec(&i.to_string()).is_ok(),
                // gojsonschema hands other numbers over as fractions; only the numerator is checked.
                Node::Float(f) => parse_port_spec(&format!("{}", f.trunc())).is_ok(),
                _ => true,
            },
            "duration" => match node {
                Node::Str(s) => parse_go_duration(s).is_ok(),
                _ => false,
            },
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(err(path, format!("does not match format '{format}'")))
        }
    }

    fn check_alternatives(
        &self,
        branches: &'s [Json],
        node: &Node,
        path: &KeyPath,
        exactly_one: bool,
    ) -> Result<(), SchemaError> {
        let mut failures = Vec::new();
        let mut matched = 0;
        for branch in branches {
            match self.check(branch, node, path) {
                Ok(()) => matched += 1,
                Err(e) => failures.push(e),
            }
        }
        if matched == 0 {
            // The deepest failure says most about what is wrong; when every branch failed on
            // the value's own type, list the types it may have.
            let deepest = failures.iter().map(|e| e.path.0.len()).max().unwrap_or(0);
            // A branch whose type matched failed for a more telling reason (e.g. duplicates).
            let is_type_error = |e: &SchemaError| e.message.starts_with("must be a");
            if deepest > path.0.len() || failures.iter().any(|e| !is_type_error(e)) {
                if let Some(best) = failures
                    .into_iter()
                    .filter(|e| e.path.0.len() == deepest)
                    .max_by_key(|e| (e.key.is_some(), !is_type_error(e)))
                {
                    return Err(best);
                }
                return Err(err(path, "is invalid"));
            }
            let types: Vec<String> = branches
                .iter()
                .filter_map(|b| b.get("type").and_then(Json::as_str))
                .map(|t| human_type(t).to_string())
                .collect();
            let mut unique: Vec<String> = Vec::new();
            for t in types {
                if !unique.contains(&t) {
                    unique.push(t);
                }
            }
            return Err(match unique.split_last() {
                Some((last, [])) => err(path, format!("must be {} {last}", article(last))),
                Some((last, init)) => err(
                    path,
                    format!(
                        "must be {} {} or {last}",
                        article(&init[0]),
                        init.join(", ")
                    ),
                ),
                None => err(path, "is invalid"),
            });
        }
        if exactly_one && matched > 1 {
            return Err(err(path, "must match exactly one schema in oneOf"));
        }
        Ok(())
    }

    fn check_object(
        &self,
        s: &'s serde_json::Map<String, Json>,
        entries: &[(String, Node)],
        path: &KeyPath,
    ) -> Result<(), SchemaError> {
        if let Some(Json::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Json::as_str) {
                if !entries.iter().any(|(k, _)| k == r) {
                    return Err(err(path, format!("{r} is required")));
                }
            }
        }
        let properties = s.get("properties").and_then(Json::as_object);
        let patterns = s.get("patternProperties").and_then(Json::as_object);
        let additional = s.get("additionalProperties");
        for (key, value) in entries {
            let child = path.key(key);
            let mut covered = false;
            if let Some(sub) = properties.and_then(|p| p.get(key)) {
                covered = true;
                self.check(sub, value, &child)?;
            }
            if let Some(patterns) = patterns {
                for (pattern, sub) in patterns {
                    if pattern_matches(pattern, key) {
                        covered = true;
                        self.check(sub, value, &child)?;
                    }
                }
            }
            if covered {
                continue;
            }
            match additional {
                Some(Json::Bool(false)) => {
                    return Err(SchemaError {
                        path: path.clone(),
                        message: format!("Additional property {key} is not allowed"),
                        key: Some(key.clone()),
                    })
                }
                Some(sub @ Json::Object(_)) => self.check(sub, value, &child)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        s: &'s serde_json::Map<String, Json>,
        items: &[Node],
        path: &KeyPath,
    ) -> Result<(), SchemaError> {
        match s.get("items") {
            Some(single @ Json::Object(_)) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(single, item, &path.index(i))?;
                }
            }
            Some(Json::Array(tuple)) => {
                for (i, (item, sub)) in items.iter().zip(tuple).enumerate() {
                    self.check(sub, item, &path.index(i))?;
                }
            }
            _ => {}
        }
        if s.get("uniqueItems") == Some(&Json::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    return Err(err(path, "must not contain duplicate items"));
                }
            }
        }
        Ok(())
    }
}
