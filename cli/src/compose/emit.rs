//! Writes a document as docker's `stack config` prints it: go-yaml v3's
//! encoder with an indent of 2, block style, and its choice of plain,
//! single-quoted, double-quoted or literal scalars (`emitterc.go`,
//! `encode.go`), so the two outputs can be compared byte for byte.
//!
//! Mapping entries are written in the order they come; the normalizer puts
//! them in docker's order (struct fields, then sorted keys).

use super::node::{go_float, Node};

/// The YAML text of `doc`, ending with a newline.
pub fn to_yaml(doc: &Node) -> String {
    let mut out = String::new();
    match doc {
        Node::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
        Node::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            write_scalar_or_empty(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Entries of a block mapping whose keys start at column `indent`.
fn write_map(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (i, (key, value)) in entries.iter().enumerate() {
        // The first entry of a mapping inside a sequence item follows its `- `.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, indent);
    }
}

/// The items of a block sequence whose dashes are at column `indent`.
fn write_seq(out: &mut String, items: &[Node], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Node::Map(entries) if !entries.is_empty() => write_map(out, entries, indent + 2),
            Node::Seq(inner) if !inner.is_empty() => write_seq(out, inner, indent + 2),
            other => {
                out.pop();
                write_value(out, other, indent);
            }
        }
    }
}

/// What follows a key's colon (or a lone dash): a scalar on the same line,
/// or a nested block on the next lines. `indent` is the column of the key.
fn write_value(out: &mut String, value: &Node, indent: usize) {
    match value {
        Node::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        Node::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        other => {
            out.push(' ');
            write_scalar_or_empty(out, other, indent + 2);
            out.push('\n');
        }
    }
}

/// A scalar, `{}` or `[]`; a literal block's lines go at column `block_indent`.
fn write_scalar_or_empty(out: &mut String, value: &Node, block_indent: usize) {
    match value {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::Float(f) => out.push_str(&float_text(*f)),
        Node::Str(s) => write_string(out, s, block_indent),
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
    }
}

/// go-yaml's `floatv`: Go's shortest `%g`, with YAML's names for the
/// special values.
fn float_text(f: f64) -> String {
    match go_float(f).as_str() {
        "+Inf" => ".inf".to_string(),
        "-Inf" => "-.inf".to_string(),
        "NaN" => ".nan".to_string(),
        s => s.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn key_text(key: &str) -> String {
    let mut out = String::new();
    // A key is a "simple key": no block scalars.
    let style = match string_style(key) {
        Style::Literal => Style::Double,
        s => s,
    };
    write_styled(&mut out, key, style, 0);
    out
}

fn write_string(out: &mut String, s: &str, block_indent: usize) {
    write_styled(out, s, string_style(s), block_indent);
}

fn write_styled(out: &mut String, s: &str, style: Style, block_indent: usize) {
    match style {
        Style::Plain => out.push_str(s),
        Style::Single => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Style::Double => write_double_quoted(out, s),
        Style::Literal => write_literal(out, s, block_indent),
    }
}

/// go-yaml's `stringv` and the emitter's `select_scalar_style` for a value
/// in block context.
fn string_style(s: &str) -> Style {
    let analysis = analyze(s);
    let wanted = if s.contains('\n') {
        Style::Literal
    } else if resolves_as_string(s) && !is_base60_float(s) && !is_old_bool(s) {
        Style::Plain
    } else {
        Style::Double
    };
    let mut style = wanted;
    if style == Style::Plain && !analysis.block_plain_allowed {
        style = Style::Single;
    }
    if style == Style::Single && !analysis.single_quoted_allowed {
        style = Style::Double;
    }
    if style == Style::Literal && !analysis.block_allowed {
        style = Style::Double;
    }
    style
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && c != '\u{FEFF}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The emitter's `analyze_scalar` (unicode output on, block context).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special, mut tabs) = (false, false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| *n == ' ' || *n == '\t');
        let last = i + 1 == chars.len();
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
        } else if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space || space_break || tabs || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// go-yaml's `resolve("", s)` gives `!!str`: written plain, the text would
/// read back as the same string, not as a null, bool, number or timestamp.
fn resolves_as_string(s: &str) -> bool {
    if matches!(
        s,
        "" | "~"
            | "null"
            | "Null"
            | "NULL"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | ".nan"
            | ".NaN"
            | ".NAN"
            | ".inf"
            | ".Inf"
            | ".INF"
            | "+.inf"
            | "+.Inf"
            | "+.INF"
            | "-.inf"
            | "-.Inf"
            | "-.INF"
            | "<<"
    ) {
        return false;
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => s.parse::<f64>().is_err(),
        b'+' | b'-' | b'0'..=b'9' => !(is_timestamp(s) || is_number(s)),
        _ => true,
    }
}

/// The numbers go-yaml reads from a plain scalar starting with a sign or a
/// digit: Go integers in any base (`0x`, `0o`, `0b`, leading-0 octal,
/// `_` separators), YAML floats, and `0o`/`0b` forms.
fn is_number(s: &str) -> bool {
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if go_parse_int(&plain) {
        return true;
    }
    if yaml_style_float(&plain) {
        return true;
    }
    let unsigned = plain.strip_prefix('-').unwrap_or(&plain);
    for (prefix, radix) in [("0b", 2), ("0o", 8)] {
        if let Some(digits) = unsigned.strip_prefix(prefix) {
            if !digits.is_empty() && u64::from_str_radix(digits, radix).is_ok() {
                return true;
            }
        }
    }
    false
}

/// `strconv.ParseInt(s, 0, 64)` or `ParseUint(s, 0, 64)` succeeds: an
/// optional sign, then `0x`/`0o`/`0b`/`0` prefixed or decimal digits, and
/// underscores only after a base prefix (they were removed already).
fn go_parse_int(s: &str) -> bool {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if digits.is_empty() {
        return false;
    }
    match u64::from_str_radix(&digits, radix) {
        Ok(v) => !negative || v <= 1 << 63,
        Err(_) => false,
    }
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A date or date-time as go-yaml reads timestamps (`2006-1-2`, with an
/// optional `T`/`t`/space time part).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let small = |p: &str, max: u32| {
        !p.is_empty() && p.len() <= 2 && p.parse::<u32>().is_ok_and(|v| (1..=max).contains(&v))
    };
    if parts.len() != 3 || !small(parts[1], 12) || !small(parts[2], 31) {
        return false;
    }
    match time {
        None => true,
        Some(t) => {
            let t = t.trim_end_matches('Z');
            let clock = t.split(['+', '-']).next().unwrap_or("");
            let mut fields = clock.split(':');
            let ok = |f: Option<&str>, max: u32| {
                f.map(|f| f.split('.').next().unwrap_or(""))
                    .is_some_and(|f| {
                        !f.is_empty() && f.len() <= 2 && f.parse::<u32>().is_ok_and(|v| v <= max)
                    })
            };
            ok(fields.next(), 23) && ok(fields.next(), 59) && ok(fields.next(), 59)
        }
    }
}

/// YAML 1.1's sexagesimal floats (`1:20`, `-1:20:30.5`), which go-yaml quotes.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'+' || b[0] == b'-' || b[0].is_ascii_digit()) || !s.contains(':')
    {
        return false;
    }
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let body = s.trim_start_matches(['+', '-']);
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    if fraction.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    if s.len() - body.len() > 1 {
        return false;
    }
    let mut parts = whole.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mut count = 0;
    let rest_ok = parts.all(|p| {
        count += 1;
        let d = p.as_bytes();
        match d {
            [x] => x.is_ascii_digit(),
            [x, y] => (b'0'..=b'5').contains(x) && y.is_ascii_digit(),
            _ => false,
        }
    });
    head_ok && count > 0 && rest_ok
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        let escaped = match c {
            '\0' => "\\0",
            '\u{07}' => "\\a",
            '\u{08}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{0b}' => "\\v",
            '\u{0c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{85}' => "\\N",
            '\u{A0}' => "\\_",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            c if !is_printable(c) || c == '\u{FEFF}' => {
                let v = c as u32;
                if v <= 0xFF {
                    out.push_str(&format!("\\x{v:02X}"));
                } else if v <= 0xFFFF {
                    out.push_str(&format!("\\u{v:04X}"));
                } else {
                    out.push_str(&format!("\\U{v:08X}"));
                }
                continue;
            }
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(escaped);
    }
    out.push('"');
}

/// `|` with its chomping hint (`-` without a final newline, `+` with more
/// than one) and an indentation hint when the text starts with a space.
fn write_literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with(' ') || s.starts_with(is_break) {
        out.push('2');
    }
    let trimmed = s.trim_end_matches(is_break);
    let breaks_at_end = s.chars().rev().take_while(|c| is_break(*c)).count();
    match breaks_at_end {
        0 => out.push('-'),
        1 if !trimmed.is_empty() => {}
        _ => out.push('+'),
    }
    let mut lines: Vec<&str> = s.split('\n').collect();
    if s.ends_with('\n') {
        lines.pop();
    }
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Node)>) -> Node {
        Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    fn s(text: &str) -> Node {
        Node::Str(text.to_string())
    }

    #[test]
    fn strings_are_quoted_as_go_yaml_quotes_them() {
        let cases = [
            ("nginx:1.25-alpine", "nginx:1.25-alpine"),
            ("101:101", "101:101"),
            ("1:20", "\"1:20\""),
            ("app:", "'app:'"),
            ("", "\"\""),
            ("42", "\"42\""),
            ("2.5", "\"2.5\""),
            ("0x1F", "\"0x1F\""),
            ("0o17", "\"0o17\""),
            ("1_000", "\"1_000\""),
            ("1e3", "\"1e3\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("2024-01-02", "\"2024-01-02\""),
            ("text with spaces", "text with spaces"),
            (" lead", "' lead'"),
            ("- dash", "'- dash'"),
            ("-dash", "-dash"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            ("*star", "'*star'"),
            ("it's", "it's"),
            ("'q'", "'''q'''"),
            ("tab\there", "\"tab\\there\""),
            ("daemon off;", "daemon off;"),
            ("ünïcode", "ünïcode"),
            ("${VAR}", "${VAR}"),
            ("{brace", "'{brace'"),
            ("=x", "=x"),
        ];
        for (text, want) in cases {
            let mut out = String::new();
            write_string(&mut out, text, 0);
            assert_eq!(out, want, "{text:?}");
        }
    }

    #[test]
    fn nested_blocks_follow_dockers_indentation() {
        let doc = map(vec![
            ("version", s("3.8")),
            (
                "services",
                map(vec![(
                    "web",
                    map(vec![
                        ("command", Node::Seq(vec![s("nginx"), s("-g")])),
                        (
                            "ports",
                            Node::Seq(vec![map(vec![
                                ("mode", s("ingress")),
                                ("target", Node::Int(80)),
                            ])]),
                        ),
                        ("networks", map(vec![("back", Node::Null)])),
                        ("empty", map(vec![])),
                        ("script", s("line one\nline two\n")),
                        ("bare", s("a\nb")),
                    ]),
                )]),
            ),
        ]);
        assert_eq!(
            to_yaml(&doc),
            "version: \"3.8\"\nservices:\n  web:\n    command:\n      - nginx\n      - -g\n    \
             ports:\n      - mode: ingress\n        target: 80\n    networks:\n      back: null\n    \
             empty: {}\n    script: |\n      line one\n      line two\n    bare: |-\n      a\n      b\n"
        );
    }

    #[test]
    fn keys_are_quoted_like_values() {
        let doc = map(vec![
            ("true", Node::Int(1)),
            ("", Node::Int(2)),
            ("a b", Node::Int(3)),
        ]);
        assert_eq!(to_yaml(&doc), "\"true\": 1\n\"\": 2\na b: 3\n");
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, want) in [
            (0.3, "0.3"),
            (1e21, "1e+21"),
            (2.0, "2"),
            (f64::INFINITY, ".inf"),
        ] {
            assert_eq!(float_text(f), want);
        }
    }
}
