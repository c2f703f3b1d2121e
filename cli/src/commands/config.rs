//! `shoal config ...`, and the `--config` syntax of services. A config is
//! not secret: `inspect` shows its value (base64, as docker's `Spec.Data`).

use clap::{Args, Subcommand};
use shoal_proto::control::v1::{
    CreateConfigRequest, GetConfigRequest, ListConfigsRequest, RemoveConfigRequest,
    UpdateConfigRequest,
};
use shoal_proto::types::v1::{Config, ConfigReference, ConfigSpec};

use super::secret::{created_ago, read_value};
use super::{collect_errors, parse, Error, Io};
use crate::client::Session;
use crate::file_reference::FileReference;
use crate::output::{short_id, Listing};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or from stdin ("-")
    Create(CreateArgs),
    /// List configs
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of configs, their value included
    Inspect(NamesArgs),
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
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
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
    let mut configs = session
        .client
        .list_configs(ListConfigsRequest::default())
        .await?
        .into_inner()
        .configs;
    configs.sort_by_key(name);
    if args.quiet {
        for config in &configs {
            writeln!(io.out, "{}", id(config))?;
        }
        return Ok(());
    }
    let mut listing = Listing::new(&["ID", "NAME", "CREATED", "UPDATED"]);
    for config in &configs {
        let meta = config.meta.clone().unwrap_or_default();
        listing.push(
            vec![
                short_id(&meta.id).to_string(),
                name(config),
                created_ago(meta.created_at),
                created_ago(meta.updated_at),
            ],
            json(config),
        );
    }
    listing.write(io.format, io.out)?;
    Ok(())
}

pub async fn inspect(session: &mut Session, args: NamesArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut found = Vec::new();
    for reference in args.configs {
        let config = session
            .client
            .get_config(GetConfigRequest {
                id_or_name: reference,
            })
            .await?
            .into_inner()
            .config
            .unwrap_or_default();
        found.push(json(&config));
    }
    crate::output::write_json(&serde_json::Value::Array(found), io.out)?;
    Ok(())
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
