//! The document tree the loader works on: YAML after merge keys are applied, with string keys
//! only (docker's loader rejects other keys too), in document order.

use std::fmt;

use serde_norway::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "boolean",
            Node::Int(_) => "integer",
            Node::Float(_) => "number",
            Node::Str(_) => "string",
            Node::Seq(_) => "list",
            Node::Map(_) => "mapping",
        }
    }

    /// The value as docker's `fmt.Sprint` renders a scalar; `None` for null and collections.
    pub fn scalar_string(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(go_float(*f)),
            Node::Str(s) => Some(s.clone()),
            Node::Null | Node::Seq(_) | Node::Map(_) => None,
        }
    }
}

/// Formats a float like Go's `%v` (strconv 'g' with shortest precision), which is how docker
/// turns numeric environment values and labels into strings.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, e.g. "1.2345e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    // Go switches to exponent form below 1e-4 and from 1e6 on when printing shortest.
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    } else if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path in the document, printed the way docker prints it (`services.web.ports.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn key(&self, k: &str) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Key(k.to_string()));
        KeyPath(p)
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        KeyPath(p)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match seg {
                Seg::Key(k) => f.write_str(k)?,
                Seg::Index(n) => write!(f, "{n}")?,
            }
        }
        Ok(())
    }
}

/// Why a YAML value cannot become a [`Node`].
#[derive(Debug)]
pub struct NodeError {
    pub path: KeyPath,
    pub message: String,
}

/// Resolves a plain scalar the way Go's yaml.v3 (docker's parser) does where it differs from
/// serde_norway: Go integer syntax with base prefixes, YAML 1.1 octals (`017`) and `_`
/// separators (`1_000`), and its float pattern. `None` means it stays a string.
pub fn yaml_v3_number(s: &str) -> Option<Node> {
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return None;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    let (negative, unsigned) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain.as_str()),
    };
    let (radix, digits) = if let Some(d) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        (16, d)
    } else if let Some(d) = unsigned
        .strip_prefix("0o")
        .or_else(|| unsigned.strip_prefix("0O"))
    {
        (8, d)
    } else if let Some(d) = unsigned
        .strip_prefix("0b")
        .or_else(|| unsigned.strip_prefix("0B"))
    {
        (2, d)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, &unsigned[1..])
    } else {
        (10, unsigned)
    };
    if !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) {
        if let Ok(magnitude) = i128::from_str_radix(digits, radix) {
            let value = if negative { -magnitude } else { magnitude };
            if let Ok(i) = i64::try_from(value) {
                return Some(Node::Int(i));
            }
            if !negative && u64::try_from(value).is_ok() {
                return Some(Node::Float(value as f64));
            }
        }
    }
    if is_yaml_style_float(&plain) {
        return plain.parse::<f64>().ok().map(Node::Float);
    }
    None
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => all_digits(frac),
        Some((int, frac)) => all_digits(int) && (frac.is_empty() || all_digits(frac)),
        None => all_digits(mantissa),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}

/// Converts parsed YAML into a [`Node`]. `is_plain` tells whether the string scalar at a path
/// was written unquoted, which decides whether docker's parser would read it as a number.
pub fn from_yaml(
    value: Value,
    path: &KeyPath,
    is_plain: &dyn Fn(&KeyPath, &str) -> bool,
) -> Result<Node, NodeError> {
    Ok(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Node::Int(i)
            } else {
                Node::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => match yaml_v3_number(&s) {
            Some(number) if is_plain(path, &s) => number,
            _ => Node::Str(s),
        },
        Value::Sequence(items) => Node::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_yaml(v, &path.index(i), is_plain))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    Value::String(s) => s,
                    other => {
                        return Err(NodeError {
                            path: path.clone(),
                            message: format!(
                                "has a non-string key {}; quote it",
                                serde_norway::to_string(&other)
                                    .map(|s| s.trim_end().to_string())
                                    .unwrap_or_default()
                            ),
                        })
                    }
                };
                let child = from_yaml(v, &path.key(&key), is_plain)?;
                entries.push((key, child));
            }
            Node::Map(entries)
        }
        Value::Tagged(tagged) => {
            return Err(NodeError {
                path: path.clone(),
                message: format!(
                    "uses the YAML tag {}, which compose does not allow",
                    tagged.tag
                ),
            })
        }
    })
}
