//! `shoal secret ...`, and the `--secret` syntax of services.

use std::io::Read;

use clap::{Args, Subcommand};
use shoal_proto::control::v1::{
    CreateSecretRequest, GetSecretRequest, ListSecretsRequest, RemoveSecretRequest,
    UpdateSecretRequest,
};
use shoal_proto::types::v1::{Secret, SecretReference, SecretSpec};

use super::{collect_errors, parse, Error, Io};
use crate::client::Session;
use crate::file_reference::FileReference;
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::{labels_joined, natural_cmp};

/// docker's `secret ls` columns (`cli/command/secret/formatter.go`).
pub const SECRET_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("CreatedAt", "CREATED"),
        ("UpdatedAt", "UPDATED"),
        ("Labels", "LABELS"),
    ],
    table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    quiet: "{{.ID}}",
};

/// docker's `secret ls` filters.
pub const SECRET_FILTERS: FilterKeys = FilterKeys {
    command: "secret ls",
    keys: &[
        FilterKey::any("id"),
        FilterKey::any("label"),
        FilterKey::any("name"),
    ],
};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or from stdin ("-")
    Create(CreateArgs),
    /// List secrets
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of secrets (never their value)
    Inspect(InspectArgs),
    /// Replace a secret's value (from a file or stdin, "-"); the services using it roll
    Update(UpdateArgs),
    /// Remove secrets (refused while a service uses them)
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Secret labels
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub label: Vec<(String, String)>,
    pub name: String,
    /// File to read the value from, or "-" for stdin
    pub file: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub wait: super::service::WaitFlags,
    pub name: String,
    /// File to read the new value from, or "-" for stdin
    pub file: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal secret ls
  shoal secret ls -f name=db_ -f label=com.docker.stack.namespace=shop
  shoal secret ls --format '{{.Name}} {{.CreatedAt}}'")]
pub struct LsArgs {
    /// Filter output based on conditions provided (id=, label=KEY[=VALUE], name=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| SECRET_FILTERS.parse(s))]
    pub filters: Vec<Filter>,
    #[arg(long, value_name = "FORMAT", default_value = "table", hide_default_value = true,
          value_parser = ListFormat::parse, help = LIST_HELP)]
    pub format: ListFormat,
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal secret inspect db_pass
  shoal secret inspect -f '{{.Spec.Name}} {{.CreatedAt}}' db_pass api_key")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse, help = INSPECT_HELP)]
    pub format: Option<InspectFormat>,
    #[arg(required = true, value_name = "SECRET")]
    pub secrets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub secrets: Vec<String>,
}

pub async fn run(
    session: &mut Session,
    command: SecretCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        SecretCommand::Create(args) => create(session, args, io).await,
        SecretCommand::Ls(args) => ls(session, args, io).await,
        SecretCommand::Inspect(args) => inspect(session, args, io).await,
        SecretCommand::Rm(args) => rm(session, args, io).await,
        SecretCommand::Update(args) => update(session, args, io).await,
    }
}

pub async fn create(session: &mut Session, args: CreateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let data = read_value(&args.file, "secret")?;
    let spec = SecretSpec {
        name: args.name,
        labels: args.label.into_iter().collect(),
        data,
    };
    let secret = session
        .client
        .create_secret(CreateSecretRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .secret
        .unwrap_or_default();
    writeln!(io.out, "{}", id(&secret))?;
    Ok(())
}

fn id(secret: &Secret) -> String {
    secret
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default()
}

fn name(secret: &Secret) -> String {
    secret
        .spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

pub(super) fn created_ago(created_ms: i64) -> String {
    let ms = (crate::output::now_ms() - created_ms).max(0) as u64;
    let age = std::time::Duration::from_millis(ms);
    format!("{} ago", crate::output::human_duration(age))
}

fn json(secret: &Secret) -> serde_json::Value {
    let meta = secret.meta.clone().unwrap_or_default();
    serde_json::json!({
        "ID": meta.id,
        "Version": { "Index": meta.version },
        "CreatedAt": crate::output::rfc3339(meta.created_at),
        "UpdatedAt": crate::output::rfc3339(meta.updated_at),
        "Spec": {
            "Name": name(secret),
            "Labels": secret.spec.as_ref().map(|s| s.labels.clone()).unwrap_or_default(),
        },
    })
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let filters = Filters::new(&args.filters);
    // The manager filters on labels; `id` and `name` are matched here.
    let request = ListSecretsRequest {
        labels: filters.values("label").to_vec(),
    };
    let mut secrets: Vec<Secret> = session
        .client
        .list_secrets(request)
        .await?
        .into_inner()
        .secrets
        .into_iter()
        .filter(|s| named_matches(&filters, &id(s), &name(s)))
        .collect();
    secrets.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let rows: Vec<serde_json::Value> = secrets.iter().map(secret_row).collect();
    let text = args.format.render(&SECRET_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's filters of secrets and configs: `id` and `name` are prefixes.
pub(super) fn named_matches(filters: &Filters, id: &str, name: &str) -> bool {
    filters.any("id", |prefix| id.starts_with(prefix))
        && filters.any("name", |prefix| name.starts_with(prefix))
}

/// docker's `secret ls` row (shoal's secrets have no driver: docker's
/// `.Driver` of a secret without one is empty).
fn secret_row(secret: &Secret) -> serde_json::Value {
    let meta = secret.meta.clone().unwrap_or_default();
    let labels = secret.spec.as_ref().map(|s| labels_joined(&s.labels));
    serde_json::json!({
        "ID": meta.id,
        "Name": name(secret),
        "Driver": "",
        "CreatedAt": created_ago(meta.created_at),
        "UpdatedAt": created_ago(meta.updated_at),
        "Labels": labels.unwrap_or_default(),
    })
}

pub async fn inspect(
    session: &mut Session,
    args: InspectArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for reference in args.secrets {
        let request = GetSecretRequest {
            id_or_name: reference,
        };
        match session.client.get_secret(request).await {
            Ok(reply) => found.push(json(&reply.into_inner().secret.unwrap_or_default())),
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    let format = args.format.unwrap_or_default();
    super::inspect::write_inspected(found, errors, &format, io.out)
}

pub async fn update(session: &mut Session, args: UpdateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let data = read_value(&args.file, "secret")?;
    let rolled = session
        .client
        .update_secret(UpdateSecretRequest {
            id_or_name: args.name,
            data,
        })
        .await?
        .into_inner()
        .rolled_services;
    super::service::follow_rolls(session, &rolled, &args.wait, io).await
}

pub async fn rm(session: &mut Session, args: NamesArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut errors = Vec::new();
    for reference in args.secrets {
        let request = RemoveSecretRequest {
            id_or_name: reference.clone(),
        };
        match session.client.remove_secret(request).await {
            Ok(_) => writeln!(io.out, "{reference}")?,
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    collect_errors(errors)
}

/// `--secret NAME` or `--secret source=NAME,target=T,uid=U,gid=G,mode=0400`.
pub fn reference(text: &str) -> Result<SecretReference, String> {
    FileReference::parse(text, "--secret").map(SecretReference::from)
}

/// The bytes of `file`, or of stdin for `-`, for a secret's or config's value.
pub(super) fn read_value(file: &str, what: &str) -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Error::Input(format!("read the {what} from stdin: {e}")))?;
    } else {
        data = std::fs::read(file)
            .map_err(|e| Error::Input(format!("read the {what} from {file}: {e}")))?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Meta;

    fn secret(id: &str, name: &str, labels: &[(&str, &str)]) -> Secret {
        Secret {
            meta: Some(Meta {
                id: id.into(),
                created_at: crate::output::now_ms(),
                updated_at: crate::output::now_ms(),
                ..Default::default()
            }),
            spec: Some(SecretSpec {
                name: name.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                data: Vec::new(),
            }),
        }
    }

    #[test]
    fn ls_rows_and_table_are_dockers() {
        let rows = vec![secret_row(&secret(
            "s1aaaaaaaaaaaaaaaaaaaaaaa",
            "db_pass",
            &[("tier", "back"), ("app", "shop")],
        ))];
        // docker/cli secret formatter: the whole id, no driver, ages, labels joined.
        assert_eq!(rows[0]["ID"], "s1aaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(rows[0]["Driver"], "");
        assert_eq!(rows[0]["Labels"], "app=shop,tier=back");
        assert_eq!(rows[0]["CreatedAt"], "Less than a second ago");
        assert_eq!(
            ListFormat::Table
                .render(&SECRET_COLUMNS, &[], false)
                .expect("table"),
            "ID        NAME      DRIVER    CREATED   UPDATED\n"
        );
        assert_eq!(
            ListFormat::Table
                .render(&SECRET_COLUMNS, &rows, true)
                .expect("quiet"),
            "s1aaaaaaaaaaaaaaaaaaaaaaa\n"
        );
    }

    #[test]
    fn ls_filters_are_dockers() {
        let secrets = [
            secret("abc1", "db_pass", &[]),
            secret("abd2", "db_user", &[]),
            secret("xyz3", "api_key", &[]),
        ];
        let kept = |filters: &[&str]| -> Vec<String> {
            let parsed: Vec<Filter> = filters
                .iter()
                .map(|f| SECRET_FILTERS.parse(f).expect("filter"))
                .collect();
            let filters = Filters::new(&parsed);
            secrets
                .iter()
                .filter(|s| named_matches(&filters, &id(s), &name(s)))
                .map(name)
                .collect()
        };
        assert_eq!(kept(&["name=db_"]), ["db_pass", "db_user"]);
        assert_eq!(kept(&["id=abc", "id=xyz"]), ["db_pass", "api_key"]);
        assert_eq!(kept(&["name=db_", "id=abd"]), ["db_user"]);
        assert!(kept(&["name=pass"]).is_empty(), "a name is a prefix");
        assert!(SECRET_FILTERS.parse("driver=x").is_err());
    }

    #[test]
    fn secret_references_parse_like_docker() {
        let short = reference("db_pass").unwrap();
        assert_eq!(short.secret_name, "db_pass");
        let long = reference("source=db_pass,target=pw,uid=1000,gid=1000,mode=0400").unwrap();
        assert_eq!(
            (long.target.as_str(), long.uid.as_str(), long.mode),
            ("pw", "1000", Some(0o400))
        );
        assert!(reference("target=pw").is_err());
        assert!(reference("source=a,mode=rw").is_err());
        assert!(reference("source=a,colour=red").is_err());
    }
}
