//! The value kinds of docker's compose types (`StringList`, `Labels`,
//! `MappingWithEquals`, ...), each read from any form the schema allows and
//! written in the one form docker's type holds.

use std::cmp::Ordering;

use super::super::duration::{go_string, parse_go_duration};
use super::super::node::{KeyPath, Node};
use super::Context;
use crate::compose::ComposeError;

/// A struct being written: fields in docker's declaration order, each left
/// out when docker's `omitempty` would (a `None`).
#[derive(Default)]
pub struct Fields(Vec<(String, Node)>);

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    pub fn put(&mut self, key: &str, value: Option<Node>) {
        if let Some(value) = value {
            self.0.push((key.to_string(), value));
        }
    }

    pub fn extend(&mut self, entries: impl IntoIterator<Item = (String, Node)>) {
        self.0.extend(entries);
    }

    pub fn node(self) -> Node {
        Node::Map(self.0)
    }

    /// The struct when it is not all empty (a value field with `omitempty`).
    pub fn non_empty(self) -> Option<Node> {
        (!self.0.is_empty()).then_some(Node::Map(self.0))
    }
}

/// go-yaml's order of map keys (`sorter.go`): runs of digits compare as
/// numbers, letters before other characters.
pub fn key_order(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut digits = false;
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            digits = ar[i].is_ascii_digit();
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            let a_first = if digits { al } else { bl };
            return if a_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// A Go map's entries as go-yaml writes them; a later duplicate key wins,
/// as it does in a Go map.
pub fn sort_keys(entries: Vec<(String, Node)>) -> Vec<(String, Node)> {
    let mut out: Vec<(String, Node)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(existing) => existing.1 = v,
            None => out.push((k, v)),
        }
    }
    out.sort_by(|a, b| key_order(&a.0, &b.0));
    out
}

/// The `x-` keys of a mapping, which docker keeps (sorted, after the fields).
pub fn extras(node: &Node) -> Vec<(String, Node)> {
    let Node::Map(entries) = node else {
        return Vec::new();
    };
    let kept = entries
        .iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| (k.clone(), sort_maps(v)))
        .collect();
    sort_keys(kept)
}

/// A free-form value (an extension field) as a Go `map[string]any` is
/// written: every mapping's keys sorted.
pub fn sort_maps(node: &Node) -> Node {
    match node {
        Node::Map(entries) => Node::Map(sort_keys(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), sort_maps(v)))
                .collect(),
        )),
        Node::Seq(items) => Node::Seq(items.iter().map(sort_maps).collect()),
        other => other.clone(),
    }
}

pub fn text(node: Option<&Node>) -> Option<String> {
    node.and_then(Node::scalar_string)
}

/// A `string` field with `omitempty`.
pub fn string(node: Option<&Node>) -> Option<Node> {
    text(node).filter(|s| !s.is_empty()).map(Node::Str)
}

/// A `bool` field with `omitempty`: only `true` is written.
pub fn flag(node: Option<&Node>) -> Option<Node> {
    matches!(node, Some(Node::Bool(true))).then_some(Node::Bool(true))
}

/// A `*bool`: written whenever it is set.
pub fn bool_pointer(node: Option<&Node>) -> Option<Node> {
    match node {
        Some(Node::Bool(b)) => Some(Node::Bool(*b)),
        _ => None,
    }
}

/// An integer field with `omitempty`.
pub fn int(node: Option<&Node>) -> Option<Node> {
    match node {
        Some(Node::Int(0)) | None => None,
        Some(Node::Int(i)) => Some(Node::Int(*i)),
        Some(Node::Float(f)) if f.trunc() != 0.0 => Some(Node::Int(f.trunc() as i64)),
        _ => None,
    }
}

/// A `*uint64` (replicas, retries, parallelism): written whenever set,
/// zero too; a negative number is refused as docker's decoder refuses it.
pub fn count(
    node: Option<&Node>,
    path: &KeyPath,
    ctx: &Context,
) -> Result<Option<Node>, ComposeError> {
    let value = match node {
        Some(Node::Int(i)) => *i,
        Some(Node::Float(f)) => f.trunc() as i64,
        _ => return Ok(None),
    };
    if value < 0 {
        return Err(ctx.invalid(
            path,
            format!("{value} overflows uint: it must not be negative"),
        ));
    }
    Ok(Some(Node::Int(value)))
}

/// A list of strings (`[]string`), empty lists left out.
pub fn list(node: Option<&Node>) -> Option<Node> {
    let Some(Node::Seq(items)) = node else {
        return None;
    };
    let items: Vec<Node> = items
        .iter()
        .filter_map(Node::scalar_string)
        .map(Node::Str)
        .collect();
    (!items.is_empty()).then_some(Node::Seq(items))
}

/// docker's `StringList`: a string is a list of one.
pub fn string_list(node: Option<&Node>) -> Option<Node> {
    match node {
        Some(Node::Str(s)) => Some(Node::Seq(vec![Node::Str(s.clone())])),
        other => list(other),
    }
}

/// docker's `Labels`, `Mapping`: a map of strings from a map (a null value
/// is `""`) or from a list of `key[=value]`.
pub fn mapping(node: Option<&Node>) -> Option<Node> {
    let entries = key_values(node?, '=')
        .into_iter()
        .map(|(k, v)| (k, Node::Str(v.unwrap_or_default())))
        .collect::<Vec<_>>();
    (!entries.is_empty()).then(|| Node::Map(sort_keys(entries)))
}

/// The entries of a list-or-dict: a mapping's values as strings (`None` for
/// null), or a list's `key<sep>value` items (`None` without the separator).
pub fn key_values(node: &Node, sep: char) -> Vec<(String, Option<String>)> {
    match node {
        Node::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), v.scalar_string()))
            .collect(),
        Node::Seq(items) => items
            .iter()
            .filter_map(Node::scalar_string)
            .map(|item| match item.split_once(sep) {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item, None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// docker's `map[string]string` fields (`driver_opts`, logging options):
/// values as strings, null as `""`.
pub fn string_map(node: Option<&Node>) -> Option<Node> {
    let Some(Node::Map(entries)) = node else {
        return None;
    };
    let entries: Vec<(String, Node)> = entries
        .iter()
        .map(|(k, v)| (k.clone(), Node::Str(v.scalar_string().unwrap_or_default())))
        .collect();
    (!entries.is_empty()).then(|| Node::Map(sort_keys(entries)))
}

/// A `Duration` field (`omitempty`: zero is left out) or a `*Duration`
/// (`pointer`: written whenever set).
pub fn duration(
    node: Option<&Node>,
    path: &KeyPath,
    pointer: bool,
    ctx: &Context,
) -> Result<Option<Node>, ComposeError> {
    let Some(node) = node else {
        return Ok(None);
    };
    let Node::Str(s) = node else {
        return Err(ctx.invalid(
            path,
            format!("invalid type {} for duration", node.type_name()),
        ));
    };
    let ns = parse_go_duration(s).map_err(|e| ctx.invalid(path, format!("time: {e}")))?;
    Ok((pointer || ns != 0).then(|| Node::Str(go_string(ns))))
}

/// docker's `UnitBytes`: a number of bytes, or a size like `512M`
/// (`units.RAMInBytes`), written as a string of bytes.
pub fn bytes(
    node: Option<&Node>,
    path: &KeyPath,
    ctx: &Context,
) -> Result<Option<Node>, ComposeError> {
    let value = match node {
        None => return Ok(None),
        Some(Node::Int(i)) => *i,
        Some(Node::Str(s)) => crate::units::ram_in_bytes(s).map_err(|e| ctx.invalid(path, e))?,
        Some(other) => {
            return Err(ctx.invalid(path, format!("invalid type {} for size", other.type_name())))
        }
    };
    Ok((value != 0).then(|| Node::Str(value.to_string())))
}

/// A `string` field that mapstructure fills only from a string: docker
/// refuses a number there even where its schema allows one (`shm_size`).
pub fn strict_string(
    node: Option<&Node>,
    key: &str,
    path: &KeyPath,
    ctx: &Context,
) -> Result<Option<Node>, ComposeError> {
    match node {
        None | Some(Node::Null) => Ok(None),
        Some(Node::Str(s)) => Ok((!s.is_empty()).then(|| Node::Str(s.clone()))),
        Some(other) => Err(ctx.invalid(
            path,
            format!(
                "'{key}' expected type 'string', got unconvertible type '{}', value: '{}'",
                go_kind(other),
                other.scalar_string().unwrap_or_default()
            ),
        )),
    }
}

fn go_kind(node: &Node) -> &'static str {
    match node {
        Node::Int(_) => "int",
        Node::Float(_) => "float64",
        Node::Bool(_) => "bool",
        Node::Seq(_) => "[]interface {}",
        Node::Map(_) => "map[string]interface {}",
        Node::Str(_) => "string",
        Node::Null => "<nil>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_go_yaml_sorts_them() {
        let mut keys = vec![
            "b", "a10", "a9", "A", "a", "_x", "x-1", "web2", "web10", "1", "a-b",
        ];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(
            keys,
            vec!["_x", "1", "A", "a", "a-b", "a9", "a10", "b", "web2", "web10", "x-1"]
        );
    }
}
