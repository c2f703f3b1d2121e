//! Variable substitution the way docker's compose loader does it (cli/compose/template and
//! cli/compose/interpolation): `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`,
//! `${VAR?e}`, `$$`; applied to every string value, then a few paths are cast to numbers or
//! booleans (only when substitution changed the string, exactly like docker).

use std::collections::{BTreeSet, HashMap};

use super::node::{KeyPath, Node, Seg};

/// Why a string could not be substituted; the message is shown to the user.
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

/// Substitutes `template`, recording the names of unset variables used without a default.
pub fn substitute(
    template: &str,
    env: &HashMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, TemplateError> {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&template[literal_start..i]);
        let rest = &template[i + 1..];
        let (expr, consumed) = if rest.starts_with('$') {
            out.push('$');
            i += 2;
            literal_start = i;
            continue;
        } else if let Some(len) = match_subst(rest, false) {
            (&rest[..len], len)
        } else if let Some(inner) = rest.strip_prefix('{') {
            match match_subst(inner, true) {
                Some(len) => (&inner[..len], len + 2),
                None => return Err(invalid(template)),
            }
        } else {
            return Err(invalid(template));
        };
        out.push_str(&apply(expr, env, unset)?);
        i += 1 + consumed;
        literal_start = i;
    }
    out.push_str(&template[literal_start..]);
    Ok(out)
}

fn invalid(template: &str) -> TemplateError {
    TemplateError(format!(
        "invalid interpolation format {template:?}; you may need to escape any $ with another $"
    ))
}

/// Length of docker's `[_a-z][_a-z0-9]*(?::?[-?][^}]*)?` (case-insensitive) at the start of `s`;
/// when `braced`, the match must be followed by `}`.
fn match_subst(s: &str, braced: bool) -> Option<usize> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if !(first == b'_' || first.is_ascii_alphabetic()) {
        return None;
    }
    let mut n = 1;
    while n < b.len() && (b[n] == b'_' || b[n].is_ascii_alphanumeric()) {
        n += 1;
    }
    let mut op = n;
    if b.get(op) == Some(&b':') {
        op += 1;
    }
    if matches!(b.get(op), Some(b'-') | Some(b'?')) {
        let tail = s[op + 1..].find('}').unwrap_or(s.len() - op - 1);
        n = op + 1 + tail;
    }
    if braced && b.get(n) != Some(&b'}') {
        return None;
    }
    Some(n)
}

/// Docker tries the operators in this order on the whole expression, so e.g. `${A:?x-y}` is
/// treated as a `-` default; keeping the order keeps the results identical.
fn apply(
    expr: &str,
    env: &HashMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, TemplateError> {
    if let Some((name, default)) = expr.split_once(":-") {
        return Ok(match env.get(name) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default.to_string(),
        });
    }
    if let Some((name, default)) = expr.split_once('-') {
        return Ok(env
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string()));
    }
    if let Some((name, message)) = expr.split_once(":?") {
        return match env.get(name) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => Err(TemplateError(format!(
                "required variable {name} is missing a value: {message}"
            ))),
        };
    }
    if let Some((name, message)) = expr.split_once('?') {
        return env.get(name).cloned().ok_or_else(|| {
            TemplateError(format!(
                "required variable {name} is missing a value: {message}"
            ))
        });
    }
    match env.get(expr) {
        Some(v) => Ok(v.clone()),
        None => {
            unset.insert(expr.to_string());
            Ok(String::new())
        }
    }
}

#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// The paths docker casts after substitution (cli/compose/loader/interpolate.go); `*` matches
/// any key, `[]` any list item.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.[].mode", Cast::Int),
    ("services.*.secrets.[].mode", Cast::Int),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.ports.[].published", Cast::Int),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.read_only", Cast::Bool),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(path: &KeyPath) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let parts: Vec<&str> = pattern.split('.').collect();
        if parts.len() != path.0.len() {
            return None;
        }
        let hit = parts.iter().zip(&path.0).all(|(p, seg)| match seg {
            Seg::Key(k) => *p == "*" || p == k,
            Seg::Index(_) => *p == "[]" || *p == "*",
        });
        hit.then_some(*cast)
    })
}

/// Parses like Go's `strconv.Atoi`.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn cast(value: &str, cast: Cast) -> Result<Node, String> {
    match cast {
        Cast::Int => go_atoi(value)
            .map(Node::Int)
            .ok_or_else(|| format!("failed to cast to expected type: invalid integer {value:?}")),
        Cast::Float => value
            .parse::<f64>()
            .map(Node::Float)
            .map_err(|_| format!("failed to cast to expected type: invalid number {value:?}")),
        Cast::Bool => match value.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Ok(Node::Bool(true)),
            "n" | "no" | "false" | "off" => Ok(Node::Bool(false)),
            _ => Err(format!(
                "failed to cast to expected type: invalid boolean: {value}"
            )),
        },
    }
}

/// An interpolation failure at a key path.
#[derive(Debug)]
pub struct InterpolationError {
    pub path: KeyPath,
    pub message: String,
}

/// Interpolates every string value of the document in place (keys are left alone).
pub fn interpolate(
    node: &mut Node,
    path: &KeyPath,
    env: &HashMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<(), InterpolationError> {
    match node {
        Node::Str(s) => {
            let new = substitute(s, env, unset).map_err(|e| InterpolationError {
                path: path.clone(),
                message: e.0,
            })?;
            if new == *s {
                return Ok(());
            }
            *node = match cast_for(path) {
                Some(c) => cast(&new, c).map_err(|message| InterpolationError {
                    path: path.clone(),
                    message,
                })?,
                None => Node::Str(new),
            };
            Ok(())
        }
        Node::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &path.index(i), env, unset)?;
            }
            Ok(())
        }
        Node::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let child = path.key(k);
                interpolate(v, &child, env, unset)?;
            }
            Ok(())
        }
        Node::Null | Node::Bool(_) | Node::Int(_) | Node::Float(_) => Ok(()),
    }
}
