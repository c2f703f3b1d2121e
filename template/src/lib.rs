//! Go's `text/template`, the part docker users write: fields (`{{.Name}}`,
//! `{{.Spec.Labels.tier}}`), functions with arguments and pipelines
//! (`{{json .}}`, `{{.Name | upper}}`, `{{env "HOME"}}`), `if`, `range` and
//! `with` with `else`, and `{{-`/`-}}` trimming. Data is a JSON value;
//! functions are the caller's (docker's `--format` ones, or Swarm's config
//! placeholders), looked up by name. One engine for `--format` and for
//! configs with `template_driver: golang`.

mod parse;

use std::collections::HashMap;

use serde_json::Value;

use parse::{BlockKind, Command, Node, Operand, Pipeline};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("template: {0}")]
    Parse(String),
    #[error("template: executing: {0}")]
    Exec(String),
}

/// A function a template may call: its arguments, already evaluated.
pub type Function<'a> = Box<dyn Fn(&[Value]) -> Result<Value, String> + 'a>;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, Error> {
        Ok(Template {
            nodes: parse::parse(text)?,
        })
    }

    /// The fields the template looks up on the data itself (the first name
    /// of each `.A.B` evaluated where `.` is still the data: not inside a
    /// `range` or `with` body), in order, each once. A caller whose data
    /// stands for a Go struct refuses the ones it lacks, as Go does, where
    /// a map would print `<no value>`.
    pub fn root_fields(&self) -> Vec<&str> {
        let mut names = Vec::new();
        root_fields_of(&self.nodes, &mut names);
        names
    }

    /// The text for `data`, calling `functions` by name.
    pub fn render(&self, data: &Value, functions: &Functions<'_>) -> Result<String, Error> {
        let mut out = String::new();
        run(&self.nodes, data, functions, &mut out)?;
        Ok(out)
    }
}

/// The functions a template may call, by name.
#[derive(Default)]
pub struct Functions<'a> {
    by_name: HashMap<String, Function<'a>>,
}

impl<'a> Functions<'a> {
    pub fn new() -> Self {
        Functions::default()
    }

    /// docker's `--format` functions: `json`, `join`, `lower`, `upper`,
    /// `title`, `split`, `pad`, `truncate`, `len`, `index`, `println`.
    pub fn docker() -> Self {
        let mut f = Functions::new();
        f.add("json", |args| {
            let v = one(args, "json")?;
            serde_json::to_string(v)
                .map(Value::String)
                .map_err(|e| e.to_string())
        });
        f.add("join", |args| match args {
            [Value::Array(items), Value::String(sep)] => Ok(Value::String(
                items.iter().map(display).collect::<Vec<_>>().join(sep),
            )),
            _ => Err("join: wants a list and a separator".into()),
        });
        f.add("lower", |args| {
            Ok(Value::String(display(one(args, "lower")?).to_lowercase()))
        });
        f.add("upper", |args| {
            Ok(Value::String(display(one(args, "upper")?).to_uppercase()))
        });
        f.add("title", |args| {
            let text = display(one(args, "title")?);
            let mut out = String::new();
            let mut start = true;
            for c in text.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            Ok(Value::String(out))
        });
        f.add("split", |args| match args {
            [Value::String(s), Value::String(sep)] => Ok(Value::Array(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )),
            _ => Err("split: wants a string and a separator".into()),
        });
        f.add("len", |args| match one(args, "len")? {
            Value::Array(a) => Ok(Value::from(a.len())),
            Value::Object(o) => Ok(Value::from(o.len())),
            Value::String(s) => Ok(Value::from(s.len())),
            other => Err(format!("len of {}", display(other))),
        });
        f.add("index", |args| {
            let (first, keys) = args.split_first().ok_or("index: wants a value")?;
            keys.iter()
                .try_fold(first.clone(), |v, key| match (&v, key) {
                    (Value::Object(o), Value::String(k)) => {
                        Ok(o.get(k).cloned().unwrap_or(Value::Null))
                    }
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize).cloned())
                        .ok_or_else(|| format!("index {n} out of range")),
                    _ => Err(format!(
                        "cannot index {} with {}",
                        display(&v),
                        display(key)
                    )),
                })
        });
        // docker's `pad`: spaces either side of a text that is not empty.
        f.add("pad", |args| match args {
            [text, Value::Number(before), Value::Number(after)] => {
                let text = display(text);
                if text.is_empty() {
                    return Ok(Value::String(text));
                }
                let spaces = |n: &serde_json::Number| " ".repeat(n.as_u64().unwrap_or(0) as usize);
                Ok(Value::String(format!(
                    "{}{text}{}",
                    spaces(before),
                    spaces(after)
                )))
            }
            _ => Err("pad: wants a text and two counts".into()),
        });
        // docker's `truncate`: the first `length` characters.
        f.add("truncate", |args| match args {
            [text, Value::Number(length)] => {
                let length = length.as_u64().unwrap_or(0) as usize;
                Ok(Value::String(display(text).chars().take(length).collect()))
            }
            _ => Err("truncate: wants a text and a length".into()),
        });
        f.add("println", |args| {
            let words: Vec<String> = args.iter().map(display).collect();
            Ok(Value::String(words.join(" ") + "\n"))
        });
        f
    }

    pub fn add(&mut self, name: &str, f: impl Fn(&[Value]) -> Result<Value, String> + 'a) {
        self.by_name.insert(name.to_string(), Box::new(f));
    }
}

fn one<'v>(args: &'v [Value], name: &str) -> Result<&'v Value, String> {
    match args {
        [v] => Ok(v),
        _ => Err(format!("{name}: wants 1 argument, got {}", args.len())),
    }
}

/// How Go's `fmt` prints a value with `%v` (a missing map key prints as
/// `<no value>`).
pub fn display(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(display).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", display(&map[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// The Go type a JSON value decodes to, as Go's errors name it.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's truth: false, 0, "", nil and empty lists and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn root_fields_of<'t>(nodes: &'t [Node], names: &mut Vec<&'t str>) {
    for node in nodes {
        match node {
            Node::Text(_) => {}
            Node::Action(p) => pipeline_fields(p, names),
            Node::Block {
                kind,
                pipeline: p,
                body,
                otherwise,
            } => {
                pipeline_fields(p, names);
                if *kind == BlockKind::If {
                    root_fields_of(body, names);
                }
                root_fields_of(otherwise, names);
            }
        }
    }
}

fn pipeline_fields<'t>(p: &'t Pipeline, names: &mut Vec<&'t str>) {
    for operand in p.0.iter().flat_map(|command| &command.0) {
        match operand {
            Operand::Field(path) => {
                if let Some(first) = path.first() {
                    if !names.contains(&first.as_str()) {
                        names.push(first);
                    }
                }
            }
            Operand::Sub(inner) => pipeline_fields(inner, names),
            _ => {}
        }
    }
}

fn run(nodes: &[Node], dot: &Value, functions: &Functions, out: &mut String) -> Result<(), Error> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&display(&pipeline(p, dot, functions)?)),
            Node::Block {
                kind,
                pipeline: p,
                body,
                otherwise,
            } => {
                let value = pipeline(p, dot, functions)?;
                match kind {
                    BlockKind::If if truthy(&value) => run(body, dot, functions, out)?,
                    BlockKind::With if truthy(&value) => run(body, &value, functions, out)?,
                    BlockKind::Range if truthy(&value) => {
                        let items: Vec<Value> = match value {
                            Value::Array(a) => a,
                            Value::Object(o) => {
                                let mut keys: Vec<String> = o.keys().cloned().collect();
                                keys.sort();
                                keys.into_iter().map(|k| o[&k].clone()).collect()
                            }
                            other => {
                                return Err(Error::Exec(format!(
                                    "range can't iterate over {}",
                                    display(&other)
                                )))
                            }
                        };
                        for item in &items {
                            run(body, item, functions, out)?;
                        }
                    }
                    _ => run(otherwise, dot, functions, out)?,
                }
            }
        }
    }
    Ok(())
}

fn pipeline(p: &Pipeline, dot: &Value, functions: &Functions) -> Result<Value, Error> {
    let mut piped: Option<Value> = None;
    for command in &p.0 {
        piped = Some(command_value(command, dot, functions, piped)?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn command_value(
    command: &Command,
    dot: &Value,
    functions: &Functions,
    piped: Option<Value>,
) -> Result<Value, Error> {
    let (first, rest) = command
        .0
        .split_first()
        .ok_or_else(|| Error::Exec("empty command".into()))?;
    if let Operand::Function(name) = first {
        let f = functions
            .by_name
            .get(name)
            .ok_or_else(|| Error::Exec(format!("function {name:?} not defined")))?;
        let mut args = rest
            .iter()
            .map(|o| operand(o, dot, functions))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped);
        return f(&args).map_err(|e| Error::Exec(format!("error calling {name}: {e}")));
    }
    if !rest.is_empty() || piped.is_some() {
        return Err(Error::Exec(format!("can't give arguments to {first:?}")));
    }
    operand(first, dot, functions)
}

fn operand(o: &Operand, dot: &Value, functions: &Functions) -> Result<Value, Error> {
    Ok(match o {
        Operand::Field(path) => path.iter().try_fold(dot.clone(), |v, key| match v {
            Value::Object(mut map) => Ok(map.remove(key).unwrap_or(Value::Null)),
            Value::Null => Ok(Value::Null),
            other => Err(Error::Exec(format!(
                "at <.{}>: can't evaluate field {key} in type {}",
                path.join("."),
                go_type(&other)
            ))),
        })?,
        Operand::Str(s) => Value::String(s.clone()),
        Operand::Int(n) => Value::from(*n),
        Operand::Float(f) => Value::from(*f),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Nil => Value::Null,
        Operand::Function(_) => command_value(&Command(vec![o.clone()]), dot, functions, None)?,
        Operand::Sub(p) => pipeline(p, dot, functions)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(text: &str, data: Value) -> String {
        Template::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .render(&data, &Functions::docker())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn fields_functions_and_pipelines_render_as_go_renders_them() {
        let data = json!({ "Name": "web", "Replicas": "3/3", "Spec": { "Labels": { "tier": "front" } },
                           "Ports": [80, 443], "Mode": null });
        assert_eq!(render("{{.Name}} {{.Replicas}}", data.clone()), "web 3/3");
        assert_eq!(render("{{.Spec.Labels.tier}}", data.clone()), "front");
        assert_eq!(render("{{.Missing}}", data.clone()), "<no value>");
        assert_eq!(render("{{.Name | upper}}", data.clone()), "WEB");
        assert_eq!(
            render("{{json .Spec}}", data.clone()),
            r#"{"Labels":{"tier":"front"}}"#
        );
        assert_eq!(render("{{join .Ports \",\"}}", data.clone()), "80,443");
        assert_eq!(render("{{.Ports}}", data.clone()), "[80 443]");
        assert_eq!(
            render("{{.Spec}}", data.clone()),
            "map[Labels:map[tier:front]]"
        );
        assert_eq!(
            render("{{index .Spec.Labels \"tier\"}}", data.clone()),
            "front"
        );
        assert_eq!(
            render("{{len .Ports}} {{(index .Ports 1)}}", data.clone()),
            "2 443"
        );
        assert_eq!(render("{{\"a\\tb\"}}|{{`raw\\n`}}", data), "a\tb|raw\\n");
    }

    #[test]
    fn root_fields_are_the_ones_looked_up_on_the_data_itself() {
        let t = Template::parse(
            "{{.Name}} {{.Spec.Labels.tier}} {{if .On}}{{.Name | upper}}{{else}}{{.Off}}{{end}}\
             {{range .Items}}{{.Inner}}{{else}}{{.Empty}}{{end}}\
             {{with .Who}}{{.Hidden}}{{end}} {{json (index .Map \"k\")}} {{.}}",
        )
        .unwrap();
        assert_eq!(
            t.root_fields(),
            ["Name", "Spec", "On", "Off", "Items", "Empty", "Who", "Map"]
        );
    }

    #[test]
    fn pad_and_truncate_are_dockers() {
        let data = json!({ "Name": "web", "Empty": "" });
        assert_eq!(render("[{{pad .Name 1 2}}]", data.clone()), "[ web  ]");
        assert_eq!(render("[{{pad .Empty 1 2}}]", data.clone()), "[]");
        assert_eq!(render("{{truncate .Name 2}}", data.clone()), "we");
        assert_eq!(render("{{truncate .Name 9}}", data), "web");
    }

    #[test]
    fn blocks_and_trimming_follow_go() {
        let data = json!({ "Items": ["a", "b"], "Empty": [], "On": true, "Who": { "Name": "x" } });
        assert_eq!(
            render("{{range .Items}}<{{.}}>{{end}}", data.clone()),
            "<a><b>"
        );
        assert_eq!(
            render("{{range .Empty}}x{{else}}none{{end}}", data.clone()),
            "none"
        );
        assert_eq!(
            render("{{if .On}}yes{{else}}no{{end}}", data.clone()),
            "yes"
        );
        assert_eq!(
            render("{{if .Off}}yes{{else}}no{{end}}", data.clone()),
            "no"
        );
        assert_eq!(render("{{with .Who}}{{.Name}}{{end}}", data.clone()), "x");
        assert_eq!(render("a  {{- \"b\" -}}  c", data.clone()), "abc");
        assert_eq!(render("{{/* a comment */}}ok", data), "ok");
    }

    #[test]
    fn bad_templates_are_errors_not_panics() {
        for bad in [
            "{{.Name",
            "{{if .X}}x",
            "{{end}}",
            "{{\"open}}",
            "{{.A..B}}",
            "{{ | x}}",
            "{{else}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let deep = "{{".to_string() + &"(".repeat(10_000) + "1" + &")".repeat(10_000) + "}}";
        assert!(
            Template::parse(&deep).is_err(),
            "deep parentheses are refused, not a stack overflow"
        );
        let blocks = "{{if 1}}".repeat(10_000) + &"{{end}}".repeat(10_000);
        assert!(Template::parse(&blocks).is_err());
        let t = Template::parse("{{nosuch .}}").unwrap();
        let err = t.render(&json!({}), &Functions::docker()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template: executing: function \"nosuch\" not defined"
        );
        let t = Template::parse("{{.Name.Foo}}").unwrap();
        let err = t.render(&json!({"Name": "web"}), &Functions::docker());
        assert_eq!(
            err.unwrap_err().to_string(),
            "template: executing: at <.Name.Foo>: can't evaluate field Foo in type string"
        );
        let t = Template::parse("{{.Name \"x\"}}").unwrap();
        assert!(t.render(&json!({}), &Functions::docker()).is_err());
    }
}
