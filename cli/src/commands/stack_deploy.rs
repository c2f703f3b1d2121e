//! `stack deploy` once the files are loaded: images pinned as
//! `--resolve-image` says, one `DeployStack` call (a plan only with
//! `--dry-run`), then, without `--detach`, one wait for every service of
//! the stack at once. `stack diff` is the same call as a dry run.

use std::path::PathBuf;

use clap::Args;
use shoal_proto::control::v1::stack_change::Action;
use shoal_proto::control::v1::{DeployStackRequest, StackChange};
use shoal_proto::types::v1::{ConfigSpec, SecretSpec};

use super::converge::{self, Target};
use super::image_pin::{self, ResolveImage};
use super::stack::{stack_services, DeployArgs, Loaded};
use super::stack_plan;
use super::{Error, Io};
use crate::client::Session;
use crate::compose;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when deploying the files would change nothing, \
4 when it would change something (the plan says what), 1 on an error."
)]
pub struct DiffArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeat to merge
    /// override files, in order)
    #[arg(
        short = 'c',
        long = "compose-file",
        required = true,
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub compose_files: Vec<PathBuf>,
    /// Show the services that are no longer referenced as removed
    #[arg(long)]
    pub prune: bool,
    /// Compare with the registry authentication details a deploy would send
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Query the registry to resolve image digests, as deploy would
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ResolveImage::Always)]
    pub resolve_image: ResolveImage,
    /// Stack name
    #[arg(value_name = "STACK")]
    pub name: String,
}

impl DiffArgs {
    /// The deploy whose plan `stack diff` shows.
    pub fn into_deploy(self) -> DeployArgs {
        DeployArgs {
            compose_files: self.compose_files,
            prune: self.prune,
            with_registry_auth: self.with_registry_auth,
            detach: true,
            quiet: false,
            timeout: std::time::Duration::ZERO,
            resolve_image: self.resolve_image,
            dry_run: true,
            name: self.name,
        }
    }
}

/// Deploys (or, with `--dry-run`, plans) the stack `loaded`; without
/// `--detach`, returns once every service converged.
pub async fn deploy_loaded(
    session: &mut Session,
    args: DeployArgs,
    loaded: Loaded,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let changes = send(session, &args, loaded, io).await?;
    if args.dry_run {
        stack_plan::write_plan(&args.name, &changes, io.out)?;
        return Ok(());
    }
    stack_plan::write_done(&changes, io.out)?;
    if args.detach {
        return Ok(());
    }
    converge::wait_stack(
        session,
        &args.name,
        wait_targets(&changes),
        args.timeout,
        args.quiet,
        io,
    )
    .await
}

/// `stack diff`: the plan of deploying `loaded`; [`Error::Differs`] when
/// it would change something.
pub async fn diff_loaded(
    session: &mut Session,
    args: DeployArgs,
    loaded: Loaded,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let changes = send(session, &args, loaded, io).await?;
    stack_plan::write_plan(&args.name, &changes, io.out)?;
    if stack_plan::changes_anything(&changes) {
        return Err(Error::Differs(args.name));
    }
    Ok(())
}

/// Every service the stack has after the deploy: the ones it created (no
/// failure of theirs predates the wait), the ones it updated (a rollout
/// followed to its end), and the ones it left as they were (which must
/// run too: a pipeline's deploy succeeds only when the stack does).
fn wait_targets(changes: &[StackChange]) -> Vec<Target> {
    changes
        .iter()
        .filter(|c| c.kind == "service")
        .filter_map(|c| {
            let (watch_update, new_spec) = match c.action() {
                Action::Removed => return None,
                Action::Created => (false, true),
                Action::Updated => (c.rolls, false),
                Action::Unchanged => (false, false),
            };
            Some(Target {
                id: c.id.clone(),
                watch_update,
                rollback: false,
                new_spec,
                verify: true,
            })
        })
        .collect()
}

/// Sends the stack in one `DeployStack` call (a dry run if `args` says
/// so): the files' warnings first, images pinned, registry credentials
/// added; returns what changed (or would).
async fn send(
    session: &mut Session,
    args: &DeployArgs,
    loaded: Loaded,
    io: &mut Io<'_>,
) -> Result<Vec<StackChange>, Error> {
    let Loaded {
        specs,
        secrets,
        configs,
        networks,
        external_networks,
        warnings,
    } = loaded;
    warnings.write(io.err)?;
    let labels = || [(compose::LABEL_NAMESPACE.to_string(), args.name.clone())].into();
    let mut specs = specs;
    // `changed` and `never` keep the pins of the deployed services.
    let deployed = match args.resolve_image {
        ResolveImage::Always => Vec::new(),
        ResolveImage::Changed | ResolveImage::Never => stack_services(session, &args.name).await?,
    };
    for warning in image_pin::pin(&mut specs, &deployed, args.resolve_image).await {
        writeln!(io.err, "{warning}")?;
    }
    if args.with_registry_auth {
        for spec in &mut specs {
            let container = super::spec::container_mut(spec);
            container.registry_auth = Some(super::login::auth_for(&container.image)?);
        }
    }
    let request = DeployStackRequest {
        namespace: args.name.clone(),
        secrets: secrets
            .into_iter()
            .map(|(name, data)| SecretSpec {
                name,
                labels: labels(),
                data,
            })
            .collect(),
        services: specs,
        prune: args.prune,
        networks,
        external_networks,
        configs: configs
            .into_iter()
            .map(|c| ConfigSpec {
                labels: labels(),
                ..c
            })
            .collect(),
        dry_run: args.dry_run,
    };
    // One transaction: a deploy refused anywhere changes nothing.
    Ok(session
        .client
        .deploy_stack(request)
        .await?
        .into_inner()
        .changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_waits_for_every_service_the_stack_keeps() {
        let change = |name: &str, action: Action, rolls: bool| StackChange {
            kind: "service".into(),
            name: name.into(),
            id: format!("{name}-id"),
            action: action as i32,
            rolls,
            fields: Vec::new(),
        };
        let changes = [
            StackChange {
                kind: "network".into(),
                ..change("net", Action::Created, false)
            },
            change("new", Action::Created, false),
            change("rolled", Action::Updated, true),
            change("scaled", Action::Updated, false),
            change("same", Action::Unchanged, false),
            change("gone", Action::Removed, false),
        ];
        let targets: Vec<(String, bool, bool)> = wait_targets(&changes)
            .into_iter()
            .map(|t| (t.id, t.watch_update, t.new_spec))
            .collect();
        assert_eq!(
            targets,
            [
                ("new-id".to_string(), false, true),
                ("rolled-id".to_string(), true, false),
                ("scaled-id".to_string(), false, false),
                ("same-id".to_string(), false, false),
            ]
        );
    }
}
