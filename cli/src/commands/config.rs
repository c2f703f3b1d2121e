//! `shoal config ...`, and the `--config` syntax of services. A config is
//! not secret: `inspect` shows its value (base64, as docker's `Spec.Data`).

use clap::{Args, Subcommand};
use shoal_proto::control::v1::{
    CreateConfigRequest, GetConfigRequest, ListConfigsRequest, RemoveConfigRequest,
    UpdateConfigRequest,
};
use shoal_proto::types::v1::{Config, ConfigReference, ConfigSpec};

use super::secret::{created_ago, named_matches, read_value};
use super::{collect_errors, parse, Error, Io};
use crate::client::Session;
use crate::file_reference::FileReference;
use crate::output::filter::{Filter, FilterKey, FilterKeys, Filters};
use crate::output::format::{Columns, InspectFormat, ListFormat, INSPECT_HELP, LIST_HELP};
use crate::output::{labels_joined, natural_cmp};

/// docker's `config ls` columns (`cli/command/config/formatter.go`).
pub const CONFIG_COLUMNS: Columns = Columns {
    headers: &[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("CreatedAt", "CREATED"),
        ("UpdatedAt", "UPDATED"),
        ("Labels", "LABELS"),
    ],
    table: "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    quiet: "{{.ID}}",
};

/// docker's `config ls` filters.
pub const CONFIG_FILTERS: FilterKeys = FilterKeys {
    command: "config ls",
    keys: &[
        FilterKey::any("id"),
        FilterKey::any("label"),
        FilterKey::any("name"),
    ],
};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or from stdin ("-")
    Create(CreateArgs),
    /// List configs
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of configs, their value included
    Inspect(InspectArgs),
    /// Replace a config's value (from a file or stdin, "-"); the services using it roll
    Update(UpdateArgs),
    /// Remove configs (refused while a service uses them)
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Config labels
    #[arg(short, long, value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub label: Vec<(String, String)>,
    /// Template driver (golang)
    #[arg(long, value_name = "DRIVER")]
    pub template_driver: Option<String>,
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
  shoal config ls
  shoal config ls -f name=nginx -f label=com.docker.stack.namespace=shop
  shoal config ls --format '{{.Name}} {{.UpdatedAt}}'")]
pub struct LsArgs {
    /// Filter output based on conditions provided (id=, label=KEY[=VALUE], name=)
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = |s: &str| CONFIG_FILTERS.parse(s))]
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
  shoal config inspect nginx_conf
  shoal config inspect -f '{{.Spec.Name}} {{.Spec.Data}}' nginx_conf")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "FORMAT", value_parser = InspectFormat::parse, help = INSPECT_HELP)]
    pub format: Option<InspectFormat>,
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub configs: Vec<String>,
}

pub async fn run(
    session: &mut Session,
    command: ConfigCommand,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    match command {
        ConfigCommand::Create(args) => create(session, args, io).await,
        ConfigCommand::Ls(args) => ls(session, args, io).await,
        ConfigCommand::Inspect(args) => inspect(session, args, io).await,
        ConfigCommand::Rm(args) => rm(session, args, io).await,
        ConfigCommand::Update(args) => update(session, args, io).await,
    }
}

pub async fn create(session: &mut Session, args: CreateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let spec = ConfigSpec {
        name: args.name,
        labels: args.label.into_iter().collect(),
        data: read_value(&args.file, "config")?,
        template_driver: args.template_driver.unwrap_or_default(),
    };
    let config = session
        .client
        .create_config(CreateConfigRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .config
        .unwrap_or_default();
    writeln!(io.out, "{}", id(&config))?;
    Ok(())
}

fn id(config: &Config) -> String {
    config
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default()
}

fn name(config: &Config) -> String {
    config
        .spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn json(config: &Config) -> serde_json::Value {
    use base64::Engine;
    let meta = config.meta.clone().unwrap_or_default();
    let spec = config.spec.clone().unwrap_or_default();
    let mut value = serde_json::json!({
        "ID": meta.id,
        "Version": { "Index": meta.version },
        "CreatedAt": crate::output::rfc3339(meta.created_at),
        "UpdatedAt": crate::output::rfc3339(meta.updated_at),
        "Spec": {
            "Name": spec.name,
            "Labels": spec.labels,
            "Data": base64::engine::general_purpose::STANDARD.encode(&spec.data),
        },
    });
    if !spec.template_driver.is_empty() {
        value["Spec"]["Templating"] = serde_json::json!({ "Name": spec.template_driver });
    }
    value
}

pub async fn ls(session: &mut Session, args: LsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let filters = Filters::new(&args.filters);
    // The manager filters on labels; `id` and `name` are matched here.
    let request = ListConfigsRequest {
        labels: filters.values("label").to_vec(),
    };
    let mut configs: Vec<Config> = session
        .client
        .list_configs(request)
        .await?
        .into_inner()
        .configs
        .into_iter()
        .filter(|c| named_matches(&filters, &id(c), &name(c)))
        .collect();
    configs.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let rows: Vec<serde_json::Value> = configs.iter().map(config_row).collect();
    let text = args.format.render(&CONFIG_COLUMNS, &rows, args.quiet)?;
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's `config ls` row.
fn config_row(config: &Config) -> serde_json::Value {
    let meta = config.meta.clone().unwrap_or_default();
    let labels = config.spec.as_ref().map(|s| labels_joined(&s.labels));
    serde_json::json!({
        "ID": meta.id,
        "Name": name(config),
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
    for reference in args.configs {
        let request = GetConfigRequest {
            id_or_name: reference,
        };
        match session.client.get_config(request).await {
            Ok(reply) => found.push(json(&reply.into_inner().config.unwrap_or_default())),
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    let format = args.format.unwrap_or_default();
    super::inspect::write_inspected(found, errors, &format, io.out)
}

pub async fn update(session: &mut Session, args: UpdateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let data = read_value(&args.file, "config")?;
    let rolled = session
        .client
        .update_config(UpdateConfigRequest {
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
    for reference in args.configs {
        let request = RemoveConfigRequest {
            id_or_name: reference.clone(),
        };
        match session.client.remove_config(request).await {
            Ok(_) => writeln!(io.out, "{reference}")?,
            Err(e) => errors.push(Error::Rpc(e)),
        }
    }
    collect_errors(errors)
}

/// `--config NAME` or `--config source=NAME,target=/etc/app.conf,uid=U,gid=G,mode=0440`.
pub fn reference(text: &str) -> Result<ConfigReference, String> {
    FileReference::parse(text, "--config").map(ConfigReference::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Meta;

    #[test]
    fn ls_rows_and_table_are_dockers() {
        let config = Config {
            meta: Some(Meta {
                id: "c1aaaaaaaaaaaaaaaaaaaaaaa".into(),
                created_at: crate::output::now_ms() - 90_000,
                updated_at: crate::output::now_ms(),
                ..Default::default()
            }),
            spec: Some(ConfigSpec {
                name: "nginx_conf".into(),
                ..Default::default()
            }),
        };
        let rows = vec![config_row(&config)];
        assert_eq!(rows[0]["CreatedAt"], "About a minute ago");
        assert_eq!(rows[0]["UpdatedAt"], "Less than a second ago");
        // docker/cli config formatter's defaultConfigTableFormat.
        assert_eq!(
            ListFormat::Table
                .render(&CONFIG_COLUMNS, &[], false)
                .expect("table"),
            "ID        NAME      CREATED   UPDATED\n"
        );
        assert_eq!(
            ListFormat::parse("{{.ID}} {{.Name}}")
                .expect("format")
                .render(&CONFIG_COLUMNS, &rows, false)
                .expect("render"),
            "c1aaaaaaaaaaaaaaaaaaaaaaa nginx_conf\n"
        );
        assert!(CONFIG_FILTERS.parse("nope=1").is_err());
    }

    #[test]
    fn config_references_parse_like_docker() {
        let short = reference("nginx_conf").unwrap();
        assert_eq!(short.config_name, "nginx_conf");
        let long =
            reference("source=nginx_conf,target=/etc/nginx/nginx.conf,uid=101,mode=0440").unwrap();
        assert_eq!(
            (long.target.as_str(), long.uid.as_str(), long.mode),
            ("/etc/nginx/nginx.conf", "101", Some(0o440))
        );
        assert!(reference("target=/x").is_err());
    }
}
