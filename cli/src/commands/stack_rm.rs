//! `stack rm`: a stack's services, secrets, configs and networks removed;
//! with `--detach=false`, returned from once the cluster holds nothing of
//! the stack any more (no task, container, network, secret or config).

use std::time::Duration;

use clap::{ArgAction, Args};
use shoal_proto::control::v1::{
    ListConfigsRequest, ListSecretsRequest, ListTasksRequest, RemoveConfigRequest,
    RemoveNetworkRequest, RemoveSecretRequest,
};
use shoal_proto::types::v1::{Network, Task};
use tokio::time::Instant;

use super::converge::describe_task;
use super::service::{self, service_name};
use super::stack::stack_services;
use super::{collect_errors, parse, Error, Io};
use crate::client::Session;
use crate::compose::LABEL_NAMESPACE;

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not wait for stack removal
    #[arg(
        short,
        long,
        action = ArgAction::Set,
        default_value_t = true,
        default_missing_value = "true",
        num_args = 0..=1,
        require_equals = true
    )]
    pub detach: bool,
    /// With --detach=false, give up waiting after this long (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse::duration)]
    pub timeout: Duration,
    #[arg(required = true, value_name = "STACK")]
    pub names: Vec<String>,
}

/// How long a detached `stack rm` waits for the tasks of the removed
/// services to leave a network before giving up on removing it.
const NETWORK_DETACH_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting `stack rm` looks again.
const POLL: Duration = Duration::from_millis(250);

fn label(stack: &str) -> String {
    format!("{LABEL_NAMESPACE}={stack}")
}

fn of_stack(network: &Network, stack: &str) -> bool {
    network
        .spec
        .as_ref()
        .and_then(|s| s.labels.get(LABEL_NAMESPACE))
        .is_some_and(|s| s == stack)
}

/// The stack's networks, by name.
async fn stack_networks(session: &mut Session, stack: &str) -> Result<Vec<String>, Error> {
    Ok(super::network::list(session)
        .await?
        .iter()
        .filter(|n| of_stack(n, stack))
        .map(|n| super::network::network_name(n).to_string())
        .collect())
}

/// Tasks of the stack's services (removed ones too, until the manager
/// deletes them once they are down).
async fn stack_tasks(session: &mut Session, stack: &str) -> Result<Vec<Task>, Error> {
    let request = ListTasksRequest {
        labels: vec![label(stack)],
        ..Default::default()
    };
    Ok(session.client.list_tasks(request).await?.into_inner().tasks)
}

pub async fn rm(session: &mut Session, args: RmArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let deadline = Instant::now() + args.timeout;
    let mut errors = Vec::new();
    for name in &args.names {
        let services = stack_services(session, name).await?;
        let request = ListSecretsRequest {
            labels: vec![label(name)],
        };
        let secrets = session
            .client
            .list_secrets(request)
            .await?
            .into_inner()
            .secrets;
        let request = ListConfigsRequest {
            labels: vec![label(name)],
        };
        let configs = session
            .client
            .list_configs(request)
            .await?
            .into_inner()
            .configs;
        let networks = stack_networks(session, name).await?;
        if services.is_empty() && secrets.is_empty() && configs.is_empty() && networks.is_empty() {
            writeln!(io.err, "Nothing found in stack: {name}")?;
            continue;
        }
        for service in &services {
            writeln!(io.out, "Removing service {}", service_name(service))?;
            if let Err(e) = service::remove(session, service).await {
                errors.push(e);
            }
        }
        for secret in secrets {
            let secret_name = secret.spec.map(|s| s.name).unwrap_or_default();
            writeln!(io.out, "Removing secret {secret_name}")?;
            let request = RemoveSecretRequest {
                id_or_name: secret_name,
            };
            if let Err(e) = session.client.remove_secret(request).await {
                errors.push(Error::Rpc(e));
            }
        }
        for config in configs {
            let config_name = config.spec.map(|s| s.name).unwrap_or_default();
            writeln!(io.out, "Removing config {config_name}")?;
            let request = RemoveConfigRequest {
                id_or_name: config_name,
            };
            if let Err(e) = session.client.remove_config(request).await {
                errors.push(Error::Rpc(e));
            }
        }
        // Waiting, the networks go once no task is left on them (a task
        // may take its whole stop grace period to stop).
        if !args.detach {
            if let Err(e) = wait_tasks_gone(session, name, deadline, args.timeout, io).await {
                errors.push(e);
                continue;
            }
        }
        for network in networks {
            writeln!(io.out, "Removing network {network}")?;
            if let Err(e) = remove_network(session, &network).await {
                errors.push(e);
            }
        }
        if !args.detach {
            if let Err(e) = check_gone(session, name).await {
                errors.push(e);
            }
        }
    }
    collect_errors(errors)
}

/// Waits until no task of stack `name` is left, saying how many are.
async fn wait_tasks_gone(
    session: &mut Session,
    name: &str,
    deadline: Instant,
    timeout: Duration,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let mut said = None;
    loop {
        let tasks = stack_tasks(session, name).await?;
        if tasks.is_empty() {
            return Ok(());
        }
        if said != Some(tasks.len()) {
            writeln!(
                io.err,
                "Waiting for {} task{} of stack {name} to be removed",
                tasks.len(),
                if tasks.len() == 1 { "" } else { "s" }
            )?;
            said = Some(tasks.len());
        }
        if Instant::now() >= deadline {
            return Err(Error::Deploy(not_removed(name, timeout, &tasks)));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `stack shop: not removed after 30s: 2 tasks left (task shop_web.1 running, ...)`.
fn not_removed(name: &str, timeout: Duration, tasks: &[Task]) -> String {
    let mut shown: Vec<String> = tasks.iter().take(3).map(describe_task).collect();
    if tasks.len() > shown.len() {
        shown.push(format!("{} more", tasks.len() - shown.len()));
    }
    format!(
        "stack {name}: not removed after {}: {} task{} left ({})",
        parse::format_duration(timeout),
        tasks.len(),
        if tasks.len() == 1 { "" } else { "s" },
        shown.join(", ")
    )
}

/// Fails unless nothing of stack `name` is left (someone may have made
/// something with its label meanwhile).
async fn check_gone(session: &mut Session, name: &str) -> Result<(), Error> {
    let services = stack_services(session, name).await?;
    let networks = stack_networks(session, name).await?;
    let request = ListSecretsRequest {
        labels: vec![label(name)],
    };
    let secrets = session.client.list_secrets(request).await?.into_inner();
    let request = ListConfigsRequest {
        labels: vec![label(name)],
    };
    let configs = session.client.list_configs(request).await?.into_inner();
    let mut left: Vec<String> = services
        .iter()
        .map(|s| format!("service {}", service_name(s)))
        .collect();
    left.extend(networks.iter().map(|n| format!("network {n}")));
    left.extend(
        secrets
            .secrets
            .iter()
            .map(|s| format!("secret {}", s.spec.as_ref().map_or("", |x| x.name.as_str()))),
    );
    left.extend(
        configs
            .configs
            .iter()
            .map(|c| format!("config {}", c.spec.as_ref().map_or("", |x| x.name.as_str()))),
    );
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::Deploy(format!(
            "stack {name}: still there after removal: {}",
            left.join(", ")
        )))
    }
}

/// Removes a stack network, retrying while the manager says tasks of the
/// services just removed are still attached to it.
async fn remove_network(session: &mut Session, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + NETWORK_DETACH_WAIT;
    loop {
        let request = RemoveNetworkRequest {
            id_or_name: name.to_string(),
        };
        match session.client.remove_network(request).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
            Err(e) if e.message().contains("attached") && Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(Error::Rpc(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{Meta, TaskState, TaskStatus};

    #[test]
    fn a_removal_that_times_out_names_what_is_left() {
        let task = |slot: u64, state: TaskState| Task {
            meta: Some(Meta::default()),
            service_name: "shop_web".into(),
            slot,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let tasks: Vec<Task> = (1..=5).map(|s| task(s, TaskState::Running)).collect();
        assert_eq!(
            not_removed("shop", Duration::from_secs(30), &tasks),
            "stack shop: not removed after 30s: 5 tasks left (task shop_web.1 running, \
             task shop_web.2 running, task shop_web.3 running, 2 more)"
        );
        assert_eq!(
            not_removed("shop", Duration::from_secs(30), &tasks[..1]),
            "stack shop: not removed after 30s: 1 task left (task shop_web.1 running)"
        );
    }
}
