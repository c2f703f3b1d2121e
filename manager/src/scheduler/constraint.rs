//! Placement constraints, Swarm's syntax and rules (swarmkit's
//! `manager/constraint`): `KEY==VALUE` or `KEY!=VALUE`, keys `node.id`,
//! `node.hostname`, `node.role`, `node.platform.os`, `node.platform.arch`
//! and `node.labels.NAME`, compared without regard to case (label names
//! are case sensitive). A missing hostname, platform or label compares as
//! the empty string, so `!=` holds on it. A key Swarm does not know is
//! accepted and matches no node.

use shoal_proto::types::v1::{Node, NodeDescription, NodeRole};

const OPERATORS: [&str; 2] = ["==", "!="];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    key: String,
    equal: bool,
    value: String,
}

/// Docker's parser, with its messages (`constraint expected one operator
/// from ==, !=`, `key 'K' is invalid`, `value 'V' is invalid`).
pub fn parse(expr: &str) -> Result<Constraint, String> {
    for (index, op) in OPERATORS.iter().enumerate() {
        let Some((key, value)) = expr.split_once(op) else {
            continue;
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(format!("key '{key}' is invalid"));
        }
        let value = value.trim();
        if !valid_value(value) {
            return Err(format!("value '{value}' is invalid"));
        }
        return Ok(Constraint {
            key: key.to_string(),
            equal: index == 0,
            value: value.to_string(),
        });
    }
    Err(format!(
        "constraint expected one operator from {}",
        OPERATORS.join(", ")
    ))
}

/// `^(?i)[a-z_][a-z0-9\-_.]+$`
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$`: no operators of
/// today or tomorrow (`<`, `>`, `~`, `=`, `!`).
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        })
}

impl Constraint {
    fn holds_for(&self, actual: &str) -> bool {
        self.value.eq_ignore_ascii_case(actual) == self.equal
    }

    pub fn matches(&self, node: &Node) -> bool {
        attribute(&self.key, node).is_some_and(|actual| self.holds_for(&actual))
    }
}

/// The value of a constraint key on a node (a missing one is the empty
/// string), or `None` for a key Swarm does not know. Also what placement
/// preferences spread over.
pub fn attribute(key: &str, node: &Node) -> Option<String> {
    let description = node.description.as_ref();
    let described = |field: fn(&NodeDescription) -> &String| {
        description.map(|d| field(d).clone()).unwrap_or_default()
    };
    let value = match key.to_ascii_lowercase().as_str() {
        "node.id" => node.meta.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
        "node.hostname" => described(|d| &d.hostname),
        "node.role" => {
            if node.role == NodeRole::Manager as i32 {
                "manager".into()
            } else {
                "worker".into()
            }
        }
        "node.platform.os" => described(|d| &d.os),
        "node.platform.arch" => described(|d| &d.architecture),
        k if k.starts_with(LABEL_PREFIX) => {
            let name = &key[LABEL_PREFIX.len()..];
            node.spec
                .as_ref()
                .and_then(|s| s.labels.get(name).cloned())
                .unwrap_or_default()
        }
        _ => return None,
    };
    Some(value)
}

const LABEL_PREFIX: &str = "node.labels.";

/// Whether every constraint of a task holds on the node; an expression
/// that does not parse (written before validation existed) never does.
pub fn all_match(exprs: &[String], node: &Node) -> bool {
    exprs
        .iter()
        .all(|e| parse(e).is_ok_and(|c| c.matches(node)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{Meta, NodeDescription, NodeSpec};

    fn node() -> Node {
        Node {
            meta: Some(Meta {
                id: "n1abc".into(),
                ..Default::default()
            }),
            spec: Some(NodeSpec {
                labels: [("zone".to_string(), "B".to_string())].into(),
                ..Default::default()
            }),
            description: Some(NodeDescription {
                hostname: "worker-1".into(),
                os: "linux".into(),
                architecture: "x86_64".into(),
                ..Default::default()
            }),
            role: NodeRole::Manager as i32,
            ..Default::default()
        }
    }

    fn holds(expr: &str) -> bool {
        parse(expr).unwrap().matches(&node())
    }

    #[test]
    fn every_key_with_both_operators() {
        assert!(holds("node.id==n1abc"));
        assert!(!holds("node.id!=n1abc"));
        assert!(holds("node.hostname == worker-1"));
        assert!(holds("node.hostname != worker-2"));
        assert!(holds("node.role==manager"));
        assert!(holds("node.role==MANAGER"));
        assert!(!holds("node.role==worker"));
        assert!(holds("node.platform.os==linux"));
        assert!(holds("node.platform.arch==x86_64"));
        assert!(!holds("node.platform.arch==aarch64"));
        assert!(holds("node.labels.zone==b"), "values compare without case");
        assert!(
            !holds("node.labels.ZONE==b"),
            "label names are case sensitive"
        );
        assert!(holds("node.labels.disk!=ssd"), "a missing label is empty");
        assert!(!holds("node.labels.disk==ssd"));
        assert!(
            !holds("node.ip==10.0.0.1"),
            "an unknown key matches nothing"
        );
        assert!(!holds("engine.labels.a==b"));
    }

    #[test]
    fn malformed_expressions_get_dockers_messages() {
        assert_eq!(
            parse("node.role=manager").unwrap_err(),
            "constraint expected one operator from ==, !="
        );
        assert_eq!(parse("==manager").unwrap_err(), "key '' is invalid");
        assert_eq!(
            parse("node role==x").unwrap_err(),
            "key 'node role' is invalid"
        );
        assert_eq!(parse("node.role==").unwrap_err(), "value '' is invalid");
        assert_eq!(parse("node.role==>x").unwrap_err(), "value '>x' is invalid");
        assert_eq!(
            parse("node.role!=a==b").unwrap_err(),
            "key 'node.role!=a' is invalid"
        );
        assert!(parse("node.labels.a_b-c.d == x:y/z").is_ok());
    }
}
