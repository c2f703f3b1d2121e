//! Template text into a tree: text, actions (`{{pipeline}}`) and the
//! `if`/`range`/`with` blocks with their `else` and `end`; `{{-` and `-}}`
//! trim the space beside them, as Go's do.

use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    Block {
        kind: BlockKind,
        pipeline: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    If,
    Range,
    With,
}

/// Commands joined by `|`: each one's value is the last argument of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline(pub Vec<Command>);

/// A function and its arguments, or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Command(pub Vec<Operand>);

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `.A.B` (empty: `.` itself).
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Function(String),
    Sub(Pipeline),
}

pub fn parse(text: &str) -> Result<Vec<Node>, Error> {
    let pieces = split(text)?;
    let mut at = 0;
    let (nodes, end) = nodes(&pieces, &mut at, 0)?;
    match end {
        None => Ok(nodes),
        Some(word) => Err(Error::Parse(format!("unexpected {{{{{word}}}}}"))),
    }
}

/// Text, or the inside of one `{{ }}`.
enum Piece {
    Text(String),
    Action(String),
}

fn split(text: &str) -> Result<Vec<Piece>, Error> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after_open = &rest[open + 2..];
        let (trim_before, inner_start) = match after_open.strip_prefix("- ") {
            Some(_) => (true, 2),
            None => (false, 0),
        };
        if trim_before {
            before = before.trim_end();
        }
        if !before.is_empty() {
            pieces.push(Piece::Text(before.to_string()));
        }
        let inner = &after_open[inner_start..];
        let close = find_close(inner)
            .ok_or_else(|| Error::Parse("unclosed action: {{ without }}".into()))?;
        let mut action = &inner[..close];
        trim_next = false;
        if let Some(stripped) = action.strip_suffix(" -") {
            action = stripped;
            trim_next = true;
        }
        pieces.push(Piece::Action(action.trim().to_string()));
        rest = &inner[close + 2..];
    }
    let last = if trim_next { rest.trim_start() } else { rest };
    if !last.is_empty() {
        pieces.push(Piece::Text(last.to_string()));
    }
    Ok(pieces)
}

/// Where the `}}` closing an action is, outside string literals.
fn find_close(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, b'"' | b'`') => quote = Some(bytes[i]),
            (None, b'}') if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Nodes up to an `else` or `end` (returned) or the end of input.
fn nodes(
    pieces: &[Piece],
    at: &mut usize,
    depth: usize,
) -> Result<(Vec<Node>, Option<String>), Error> {
    if depth > MAX_NESTING {
        return Err(Error::Parse(format!(
            "blocks nested deeper than {MAX_NESTING}"
        )));
    }
    let mut out = Vec::new();
    while *at < pieces.len() {
        let piece = &pieces[*at];
        *at += 1;
        let action = match piece {
            Piece::Text(t) => {
                out.push(Node::Text(t.clone()));
                continue;
            }
            Piece::Action(a) => a,
        };
        if action.starts_with("/*") {
            continue;
        }
        let (word, rest) = match action.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (action.as_str(), ""),
        };
        let kind = match word {
            "end" | "else" => return Ok((out, Some(word.to_string()))),
            "if" => BlockKind::If,
            "range" => BlockKind::Range,
            "with" => BlockKind::With,
            _ => {
                out.push(Node::Action(pipeline(action)?));
                continue;
            }
        };
        let pipeline = pipeline(rest)?;
        let (body, end) = nodes(pieces, at, depth + 1)?;
        let otherwise = match end.as_deref() {
            Some("end") => Vec::new(),
            Some("else") => match nodes(pieces, at, depth + 1)? {
                (otherwise, Some(e)) if e == "end" => otherwise,
                _ => return Err(Error::Parse(format!("{{{{{word}}}}}: else without end"))),
            },
            _ => return Err(Error::Parse(format!("{{{{{word}}}}} without {{{{end}}}}"))),
        };
        out.push(Node::Block {
            kind,
            pipeline,
            body,
            otherwise,
        });
    }
    Ok((out, None))
}

/// How deep parentheses may nest: a template is user input, and each level
/// is a frame of the parser's stack.
const MAX_NESTING: usize = 64;

fn pipeline(text: &str) -> Result<Pipeline, Error> {
    let tokens = tokens(text)?;
    let mut at = 0;
    let p = pipeline_of(&tokens, &mut at, 0)?;
    if at != tokens.len() {
        return Err(Error::Parse(format!(
            "unexpected {:?} in {text:?}",
            tokens[at]
        )));
    }
    Ok(p)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Operand(Operand),
    Pipe,
    Open,
    Close,
}

fn pipeline_of(tokens: &[Token], at: &mut usize, depth: usize) -> Result<Pipeline, Error> {
    if depth > MAX_NESTING {
        return Err(Error::Parse(format!(
            "parentheses nested deeper than {MAX_NESTING}"
        )));
    }
    let mut commands = Vec::new();
    let mut current = Vec::new();
    while *at < tokens.len() {
        match &tokens[*at] {
            Token::Pipe => {
                if current.is_empty() {
                    return Err(Error::Parse("missing command before |".into()));
                }
                commands.push(Command(std::mem::take(&mut current)));
            }
            Token::Open => {
                *at += 1;
                let sub = pipeline_of(tokens, at, depth + 1)?;
                if tokens.get(*at) != Some(&Token::Close) {
                    return Err(Error::Parse("unclosed (".into()));
                }
                current.push(Operand::Sub(sub));
            }
            Token::Close => break,
            Token::Operand(o) => current.push(o.clone()),
        }
        *at += 1;
    }
    if current.is_empty() {
        return Err(Error::Parse("missing value in action".into()));
    }
    commands.push(Command(current));
    Ok(Pipeline(commands))
}

fn tokens(text: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '|' => out.push(Token::Pipe),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(Error::Parse("unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            s.push(match chars.get(i) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some(&other) => other,
                                None => return Err(Error::Parse("unterminated string".into())),
                            });
                        }
                        Some(&other) => s.push(other),
                    }
                    i += 1;
                }
                out.push(Token::Operand(Operand::Str(s)));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| Error::Parse("unterminated raw string".into()))?;
                out.push(Token::Operand(Operand::Str(
                    chars[i + 1..i + 1 + end].iter().collect(),
                )));
                i += end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"|()".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(Token::Operand(word_operand(&word)?));
                continue;
            }
        }
        i += 1;
    }
    Ok(out)
}

fn word_operand(word: &str) -> Result<Operand, Error> {
    if word == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        let fields: Vec<String> = path.split('.').map(str::to_string).collect();
        if fields.iter().any(|f| f.is_empty()) {
            return Err(Error::Parse(format!("bad field {word:?}")));
        }
        return Ok(Operand::Field(fields));
    }
    Ok(match word {
        "true" => Operand::Bool(true),
        "false" => Operand::Bool(false),
        "nil" => Operand::Nil,
        _ => {
            if let Ok(n) = word.parse::<i64>() {
                Operand::Int(n)
            } else if let Ok(f) = word.parse::<f64>() {
                Operand::Float(f)
            } else if word.chars().all(|c| c.is_alphanumeric() || c == '_') {
                Operand::Function(word.to_string())
            } else {
                return Err(Error::Parse(format!("unexpected {word:?}")));
            }
        }
    })
}
