//! `--format` as docker takes it (docker/cli `cli/command/formatter`).
//!
//! Lists: `table` (the command's own table), `table TEMPLATE` (a table of
//! the template's fields, headed by the names docker gives them), `json`
//! (docker ≥ 24: one object per line) or a Go template, one line per item.
//! Each item is a JSON object with docker's field names for that list.
//!
//! Inspect: the objects as an indented JSON array (the default), `json`
//! (the same array on one line) or a template run on each object.

use serde_json::{Map, Value};
use shoal_template::{Functions, Template};

use super::tabwriter;

/// The `--format` help of list commands (docker's `FormatHelp`).
pub const LIST_HELP: &str = "Format output: 'table' (default), 'table TEMPLATE' (a table \
    of the template's fields), 'json' (one object per line) or a Go TEMPLATE \
    (one line per item, e.g. '{{.Name}}')";

/// The `--format` help of inspect commands (docker's `InspectFormatHelp`).
pub const INSPECT_HELP: &str = "Format output: 'json' (the objects on one line) or a Go \
    TEMPLATE run on each object (e.g. '{{.ID}}')";

/// What `--format` of a list command asks for.
#[derive(Debug, Clone, Default)]
pub enum ListFormat {
    /// The command's own table (`--format table`, or no `--format`).
    #[default]
    Table,
    /// One JSON object per item and line (`{{json .}}`).
    Json,
    /// A template, as a table (`table TEMPLATE`) or one line per item.
    Template { table: bool, template: Template },
}

/// A template that docker would refuse, in docker's words: one that does
/// not parse, or fails on the data.
#[derive(Debug, thiserror::Error)]
#[error("template parsing error: {0}")]
pub struct FormatError(String);

impl From<shoal_template::Error> for FormatError {
    fn from(e: shoal_template::Error) -> Self {
        FormatError(e.to_string())
    }
}

impl ListFormat {
    /// Reads `--format` as docker's `Format.templateString` does: a leading
    /// `table` makes a table, spaces around the template are dropped, and
    /// `\t` and `\n` written out stand for a tab and a newline.
    pub fn parse(text: &str) -> Result<ListFormat, FormatError> {
        Ok(match text {
            "" | "table" => ListFormat::Table,
            "json" => ListFormat::Json,
            _ => {
                let (table, template) = parse_template(text)?;
                ListFormat::Template { table, template }
            }
        })
    }

    /// Whether the output is a table (docker indents previous tasks only
    /// there); `-q` turns the command's own table into a list of ids.
    pub fn is_table(&self, quiet: bool) -> bool {
        match self {
            ListFormat::Table => !quiet,
            ListFormat::Json => false,
            ListFormat::Template { table, .. } => *table,
        }
    }

    /// `rows` (objects with `columns`' fields) as this format shows them. A
    /// template that fails on any row prints nothing. `quiet` (`-q`) only
    /// changes the command's own table, as docker's `NewListFormat` does.
    pub fn render(
        &self,
        columns: &Columns,
        rows: &[Value],
        quiet: bool,
    ) -> Result<String, FormatError> {
        let (table, template) = match self {
            ListFormat::Table if quiet => parse_template(columns.quiet)?,
            ListFormat::Table => parse_template(columns.table)?,
            ListFormat::Json => parse_template("{{json .}}")?,
            ListFormat::Template { table, template } => (*table, template.clone()),
        };
        let mut body = String::new();
        for row in rows {
            if matches!(self, ListFormat::Template { .. }) {
                check_fields(&template, columns, row)?;
            }
            body.push_str(&template.render(row, &row_functions(row))?);
            body.push('\n');
        }
        if !table {
            return Ok(body);
        }
        // docker runs the same template on the field names' headers; a
        // header that does not render is left empty, as docker ignores it.
        let header = template
            .render(&columns.header_row(), &header_functions())
            .unwrap_or_default();
        Ok(tabwriter::align(&format!("{header}\n{body}")))
    }
}

/// A list's row is a Go struct in docker, not a map: a field it does not
/// have is an error there (`can't evaluate field Nope in type
/// *formatter.serviceContext`), so a typo in a script's `--format` fails
/// instead of printing `<no value>`.
fn check_fields(template: &Template, columns: &Columns, row: &Value) -> Result<(), FormatError> {
    let known = |name: &str| {
        row.get(name).is_some() || columns.headers.iter().any(|(field, _)| *field == name)
    };
    let Some(unknown) = template.root_fields().into_iter().find(|name| !known(name)) else {
        return Ok(());
    };
    let mut fields: Vec<&str> = columns.headers.iter().map(|(field, _)| *field).collect();
    if let Value::Object(map) = row {
        for key in map.keys() {
            if !fields.contains(&key.as_str()) {
                fields.push(key);
            }
        }
    }
    Err(shoal_template::Error::Exec(format!(
        "at <.{unknown}>: can't evaluate field {unknown} (a row's fields: {})",
        fields.join(", ")
    ))
    .into())
}

/// docker's `Format.templateString`: whether `text` is a table, and its
/// template.
fn parse_template(text: &str) -> Result<(bool, Template), FormatError> {
    let (table, body) = match text.strip_prefix("table") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    Ok((table, Template::parse(&body)?))
}

/// A list's fields: docker's names for them and the headers its tables
/// give them, its default table and what `-q` prints.
#[derive(Debug)]
pub struct Columns {
    /// Field name and header, e.g. `("Replicas", "REPLICAS")`.
    pub headers: &'static [(&'static str, &'static str)],
    /// The command's own table (docker's constant, tabs and all):
    /// `"table {{.ID}}\t{{.Name}}..."`.
    pub table: &'static str,
    /// The template of `-q`: `{{.ID}}`.
    pub quiet: &'static str,
}

impl Columns {
    fn header_row(&self) -> Value {
        Value::Object(
            self.headers
                .iter()
                .map(|(field, header)| (field.to_string(), Value::String(header.to_string())))
                .collect::<Map<String, Value>>(),
        )
    }
}

/// docker's functions for a row; `{{json .}}` of the row itself marshals it
/// as docker's row types do (`formatter.MarshalJSON`, Go's `json.Marshal`,
/// which writes `<`, `>` and `&` as `\u003c`, `\u003e` and `\u0026`:
/// `"Ports":"*:8080-\u003e80/tcp"`).
fn row_functions(row: &Value) -> Functions<'_> {
    let mut functions = Functions::docker();
    functions.add("json", move |args| match args {
        [value] => {
            let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
            Ok(Value::String(if value == row {
                go_html_escape(&text)
            } else {
                text
            }))
        }
        _ => Err(format!("json: wants 1 argument, got {}", args.len())),
    });
    functions
}

/// What `json.Marshal` escapes beyond JSON's own escapes.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// docker's `HeaderFunctions`: a header is shown as it is, whatever function
/// its field goes through (`pad` still pads, to keep the columns).
fn header_functions() -> Functions<'static> {
    let mut functions = Functions::docker();
    for name in [
        "json", "split", "join", "title", "lower", "upper", "truncate",
    ] {
        functions.add(name, |args| {
            Ok(args.first().cloned().unwrap_or(Value::Null))
        });
    }
    functions
}

/// What `--format` (`-f`) of an inspect command asks for.
#[derive(Debug, Clone, Default)]
pub enum InspectFormat {
    /// The JSON array, indented (docker's default).
    #[default]
    Indented,
    /// The JSON array on one line (`--format json`).
    Json,
    /// A template run on each object, one result per line.
    Template(Template),
}

impl InspectFormat {
    /// Reads `--format` as docker's `NewTemplateInspectorFromString` does
    /// (the template as it is: no `table`, no `\t` replaced).
    pub fn parse(text: &str) -> Result<InspectFormat, FormatError> {
        match text {
            "" => Ok(InspectFormat::Indented),
            "json" => Ok(InspectFormat::Json),
            _ => Ok(InspectFormat::Template(Template::parse(text)?)),
        }
    }

    /// The inspected `objects` as this format shows them; a template that
    /// fails on any of them prints nothing.
    pub fn render(&self, objects: Vec<Value>) -> Result<String, FormatError> {
        match self {
            InspectFormat::Indented => {
                let mut text = Vec::new();
                let indent = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut serializer = serde_json::Serializer::with_formatter(&mut text, indent);
                serde::Serialize::serialize(&Value::Array(objects), &mut serializer)
                    .map_err(|e| FormatError(e.to_string()))?;
                text.push(b'\n');
                Ok(String::from_utf8_lossy(&text).into_owned())
            }
            InspectFormat::Json => Ok(Value::Array(objects).to_string() + "\n"),
            InspectFormat::Template(template) => {
                let functions = Functions::docker();
                let mut text = String::new();
                for object in &objects {
                    text.push_str(&template.render(object, &functions)?);
                    text.push('\n');
                }
                Ok(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// docker's `service ls` columns.
    const SERVICES: Columns = Columns {
        headers: &[
            ("ID", "ID"),
            ("Name", "NAME"),
            ("Image", "IMAGE"),
            ("Ports", "PORTS"),
        ],
        table: "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Ports}}",
        quiet: "{{.ID}}",
    };

    fn rows() -> Vec<Value> {
        vec![
            json!({"ID": "abc123", "Name": "web_frontend", "Image": "busybox:1", "Ports": "*:8080->80/tcp"}),
            json!({"ID": "de4", "Name": "db", "Image": "postgres:16", "Ports": ""}),
        ]
    }

    fn render(format: &str, quiet: bool) -> String {
        ListFormat::parse(format)
            .unwrap_or_else(|e| panic!("{format}: {e}"))
            .render(&SERVICES, &rows(), quiet)
            .unwrap_or_else(|e| panic!("{format}: {e}"))
    }

    #[test]
    fn table_is_the_commands_own_table_aligned_like_dockers() {
        let expected = "ID        NAME           IMAGE         PORTS\n\
                        abc123    web_frontend   busybox:1     *:8080->80/tcp\n\
                        de4       db             postgres:16   \n";
        assert_eq!(render("table", false), expected);
        assert_eq!(render("", false), expected);
        assert_eq!(render("table", true), "abc123\nde4\n");
    }

    #[test]
    fn a_table_template_is_headed_by_dockers_names_for_its_fields() {
        assert_eq!(
            render("table {{.ID}}\\t{{.Image}}", false),
            "ID        IMAGE\nabc123    busybox:1\nde4       postgres:16\n"
        );
        // Functions leave the header alone.
        assert_eq!(
            render("table {{.Name | upper}}", false),
            "NAME\nWEB_FRONTEND\nDB\n"
        );
        // -q does not change an explicit format (docker's NewListFormat).
        assert_eq!(render("table {{.ID}}", true), "ID\nabc123\nde4\n");
    }

    #[test]
    fn a_bare_template_prints_one_line_per_row() {
        assert_eq!(
            render("{{.Name}} {{.Image}}", false),
            "web_frontend busybox:1\ndb postgres:16\n"
        );
        assert_eq!(
            render("  {{.ID}}\\t{{.Name}}  ", false),
            "abc123\tweb_frontend\nde4\tdb\n"
        );
        assert_eq!(
            ListFormat::parse("{{.Name}}")
                .expect("parse")
                .render(&SERVICES, &[], false)
                .expect("render"),
            ""
        );
    }

    #[test]
    fn json_is_one_object_per_line_marshalled_as_go_does() {
        let text = render("json", false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"ID":"abc123","Image":"busybox:1","Name":"web_frontend","Ports":"*:8080-\u003e80/tcp"}"#
        );
        assert_eq!(
            serde_json::from_str::<Value>(lines[1]).expect("json"),
            rows()[1]
        );
        assert_eq!(render("{{json .}}", false), text);
        // A field alone goes through docker's encoder, which does not escape.
        assert_eq!(
            render("{{json .Ports}}", false),
            "\"*:8080->80/tcp\"\n\"\"\n"
        );
    }

    #[test]
    fn template_errors_read_like_dockers_and_print_nothing() {
        let error = ListFormat::parse("{{.Nope").expect_err("unclosed");
        assert!(
            error
                .to_string()
                .starts_with("template parsing error: template: "),
            "{error}"
        );
        // A field the row does not have fails as on docker's row structs;
        // inside `with` the dot is another value.
        let typo = ListFormat::parse("{{.Name}} {{.Replicsa}}").expect("parse");
        let error = typo
            .render(&SERVICES, &rows(), false)
            .expect_err("no such field");
        assert_eq!(
            error.to_string(),
            "template parsing error: template: executing: at <.Replicsa>: can't evaluate \
             field Replicsa (a row's fields: ID, Name, Image, Ports)"
        );
        assert_eq!(
            typo.render(&SERVICES, &[], false)
                .expect("no rows: nothing run"),
            ""
        );
        let failing = ListFormat::parse("{{.Name.Foo}}").expect("parse");
        let error = failing.render(&SERVICES, &rows(), false).expect_err("exec");
        assert!(
            error
                .to_string()
                .ends_with("can't evaluate field Foo in type string"),
            "{error}"
        );
        let failing = ListFormat::parse("{{index .Name 1}}").expect("parse");
        let error = failing.render(&SERVICES, &rows(), false).expect_err("exec");
        assert!(
            error.to_string().starts_with("template parsing error: "),
            "{error}"
        );
    }

    #[test]
    fn inspect_formats_are_dockers() {
        let objects = vec![json!({"ID": "a", "Spec": {"Name": "web", "Labels": {"x": "1"}}})];
        assert_eq!(
            InspectFormat::default().render(objects.clone()).expect("indented"),
            "[\n    {\n        \"ID\": \"a\",\n        \"Spec\": {\n            \"Labels\": {\n                \"x\": \"1\"\n            },\n            \"Name\": \"web\"\n        }\n    }\n]\n"
        );
        assert_eq!(
            InspectFormat::parse("json")
                .expect("json")
                .render(objects.clone())
                .expect("json"),
            "[{\"ID\":\"a\",\"Spec\":{\"Labels\":{\"x\":\"1\"},\"Name\":\"web\"}}]\n"
        );
        let template = InspectFormat::parse("{{.Spec.Name}} {{json .Spec.Labels}}").expect("parse");
        assert_eq!(
            template
                .render(vec![objects[0].clone(), objects[0].clone()])
                .expect("render"),
            "web {\"x\":\"1\"}\nweb {\"x\":\"1\"}\n"
        );
        // Inspect templates are taken as they are: `table` is text.
        assert_eq!(
            InspectFormat::parse("table")
                .expect("parse")
                .render(objects)
                .expect("render"),
            "table\n"
        );
        assert!(InspectFormat::parse("{{.ID").is_err());
    }
}
