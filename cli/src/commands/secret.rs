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
use crate::output::{short_id, Listing};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or from stdin ("-")
    Create(CreateArgs),
    /// List secrets
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display details of secrets (never their value)
    Inspect(NamesArgs),
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
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
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
    let mut secrets = session
        .client
        .list_secrets(ListSecretsRequest::default())
        .await?
        .into_inner()
        .secrets;
    secrets.sort_by_key(name);
    if args.quiet {
        for secret in &secrets {
            writeln!(io.out, "{}", id(secret))?;
        }
        return Ok(());
    }
    let mut listing = Listing::new(&["ID", "NAME", "CREATED"]);
    for secret in &secrets {
        let created = secret.meta.as_ref().map(|m| m.created_at).unwrap_or(0);
        listing.push(
            vec![
                short_id(&id(secret)).to_string(),
                name(secret),
                created_ago(created),
            ],
            json(secret),
        );
    }
    listing.write(io.format, io.out)?;
    Ok(())
}

pub async fn inspect(session: &mut Session, args: NamesArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut found = Vec::new();
    for reference in args.secrets {
        let secret = session
            .client
            .get_secret(GetSecretRequest {
                id_or_name: reference,
            })
            .await?
            .into_inner()
            .secret
            .unwrap_or_default();
        found.push(json(&secret));
    }
    crate::output::write_json(&serde_json::Value::Array(found), io.out)?;
    Ok(())
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
