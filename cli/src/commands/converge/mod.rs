//! Waiting for services to converge after `service create|update|scale|
//! rollback` and `stack deploy`: one loop reads the manager (a service, or
//! a whole stack at once) each time the manager's watch says they changed,
//! judges each service (`verdict`, from `progress`) and shows it (`view`)
//! until every one converged, one failed, or the time is up.

mod progress;
mod verdict;
mod view;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use shoal_proto::control::v1::{
    GetServiceRequest, ListServicesRequest, ListTasksRequest, WatchServicesMessage,
    WatchServicesRequest,
};
use shoal_proto::types::v1::{Service, Task};

use super::{collect_errors, Error, Io};
use crate::client::Session;
use crate::compose::LABEL_NAMESPACE;
pub use progress::describe as describe_task;
pub use verdict::Target;
use verdict::{Follow, Outcome};
use view::{Style, View};

/// How often the CLI reads the manager while it has no watch (a manager
/// without `WatchServices`, or one briefly unavailable).
const POLL: Duration = Duration::from_millis(200);

/// How `service create|update|scale|rollback` wait for their service.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// The command started a rollout (see [`Target::watch_update`]).
    pub watch_update: bool,
    /// The rollout is a rollback the command asked for.
    pub rollback: bool,
}

/// Waits for one service, with docker's progress lines.
pub async fn wait(
    session: &mut Session,
    service_id: &str,
    wait: Wait,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let target = Target {
        id: service_id.to_string(),
        watch_update: wait.watch_update,
        rollback: wait.rollback,
        new_spec: false,
        verify: false,
    };
    let mut view = View::new(Style::Slots, wait.quiet);
    watch(
        session,
        Scope::Service,
        vec![target],
        wait.timeout,
        &mut view,
        io,
    )
    .await
}

/// Waits for the services `targets` of stack `namespace`, all at once:
/// a line per service, redrawn in place when stderr is a terminal.
pub async fn wait_stack(
    session: &mut Session,
    namespace: &str,
    targets: Vec<Target>,
    timeout: Duration,
    quiet: bool,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let style = if std::io::stderr().is_terminal() {
        Style::Bars
    } else {
        Style::Lines
    };
    let mut view = View::new(style, quiet);
    watch(
        session,
        Scope::Stack(namespace),
        targets,
        timeout,
        &mut view,
        io,
    )
    .await
}

/// Where one poll reads the services.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// The one target, by id.
    Service,
    /// The stack's services, by its namespace label.
    Stack(&'a str),
}

async fn watch(
    session: &mut Session,
    scope: Scope<'_>,
    targets: Vec<Target>,
    timeout: Duration,
    view: &mut View,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let started = Instant::now();
    let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
    let mut follows: Vec<Follow> = targets.into_iter().map(Follow::new).collect();
    let mut changes = Changes::open(session, &ids).await;
    let result = loop {
        let (services, tasks) = match poll(session, scope, &ids).await {
            Ok(seen) => seen,
            // A manager briefly without quorum (an election) is not the
            // deployment failing: keep reading until the timeout.
            Err(status)
                if status.code() == tonic::Code::Unavailable && started.elapsed() < timeout =>
            {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(status) => break Err(Error::Rpc(status)),
        };
        let over = step(&mut follows, &services, &tasks, started.elapsed(), timeout);
        view.show(&mut follows, io.err)?;
        if let Some(result) = over {
            break result;
        }
        // Besides a change, time alone ends a stability window or the wait.
        let wake = follows
            .iter()
            .filter_map(Follow::wake_at)
            .fold(timeout, Duration::min);
        changes.next(session, &ids, started + wake).await;
    };
    view.finish(io.err)?;
    result
}

/// How a wait learns that its services changed.
enum Changes {
    /// The manager's `WatchServices`: a message after each commit that
    /// touched them.
    Watch(Box<tonic::Streaming<WatchServicesMessage>>),
    /// No watch for now (it ended, or the manager was unavailable):
    /// reading every [`POLL`], and asking for a watch again each time.
    Poll,
    /// A manager without `WatchServices`: reading every [`POLL`].
    Unsupported,
}

impl Changes {
    /// Opens the watch and takes its first message, so that every commit
    /// after the first read is seen.
    async fn open(session: &mut Session, ids: &[String]) -> Changes {
        let request = WatchServicesRequest {
            service_ids: ids.to_vec(),
        };
        let answer = match session.client.watch_services(request).await {
            Ok(answer) => answer,
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return Changes::Unsupported
            }
            Err(_) => return Changes::Poll,
        };
        let mut stream = answer.into_inner();
        match stream.message().await {
            Ok(Some(_)) => Changes::Watch(Box::new(stream)),
            _ => Changes::Poll,
        }
    }

    /// Returns after the next change, or at `deadline`, whichever is first.
    async fn next(&mut self, session: &mut Session, ids: &[String], deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        match self {
            Changes::Watch(stream) => {
                tokio::select! {
                    message = stream.message() => {
                        if !matches!(message, Ok(Some(_))) {
                            *self = Changes::Poll;
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            Changes::Poll | Changes::Unsupported => {
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + POLL)).await;
                if matches!(self, Changes::Poll) {
                    *self = Changes::open(session, ids).await;
                }
            }
        }
    }
}

/// One poll: the services (those of the scope) and the targets' tasks, in
/// two calls whatever their number.
async fn poll(
    session: &mut Session,
    scope: Scope<'_>,
    ids: &[String],
) -> Result<(Vec<Service>, Vec<Task>), tonic::Status> {
    let services = match scope {
        Scope::Service => {
            let request = GetServiceRequest {
                id_or_name: ids.first().cloned().unwrap_or_default(),
            };
            match session.client.get_service(request).await {
                Ok(answer) => answer.into_inner().service.into_iter().collect(),
                Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
                Err(status) => return Err(status),
            }
        }
        Scope::Stack(namespace) => {
            let request = ListServicesRequest {
                names: Vec::new(),
                labels: vec![format!("{LABEL_NAMESPACE}={namespace}")],
            };
            session
                .client
                .list_services(request)
                .await?
                .into_inner()
                .services
        }
    };
    let request = ListTasksRequest {
        service_ids: ids.to_vec(),
        ..Default::default()
    };
    let tasks = session.client.list_tasks(request).await?.into_inner().tasks;
    Ok((services, tasks))
}

fn id_of(service: &Service) -> &str {
    service.meta.as_ref().map_or("", |m| m.id.as_str())
}

/// Judges every followed service on one poll; the result once the wait is
/// over: every one converged, some failed (all failures of this poll), or
/// the time is up (every one still waiting).
fn step(
    follows: &mut [Follow],
    services: &[Service],
    tasks: &[Task],
    elapsed: Duration,
    timeout: Duration,
) -> Option<Result<(), Error>> {
    for follow in follows.iter_mut() {
        let service = services.iter().find(|s| id_of(s) == follow.target.id);
        let of: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.service_id == follow.target.id)
            .collect();
        follow.judge(service, &of, elapsed);
    }
    let failed = |follows: &[Follow]| -> Vec<Error> {
        follows
            .iter()
            .filter_map(|f| match &f.outcome {
                Outcome::Failed(why) => Some(Error::Deploy(why.clone())),
                _ => None,
            })
            .collect()
    };
    let failures = failed(follows);
    if !failures.is_empty() {
        return Some(collect_errors(failures));
    }
    if follows.iter().all(|f| f.outcome == Outcome::Converged) {
        return Some(Ok(()));
    }
    if elapsed >= timeout {
        follows.iter_mut().for_each(|f| f.time_out(timeout));
        return Some(collect_errors(failed(follows)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::{
        service_spec, Meta, ReplicatedMode, ServiceSpec, TaskState, TaskStatus,
    };

    fn service(id: &str, replicas: u64) -> Service {
        Service {
            meta: Some(Meta {
                id: id.into(),
                ..Default::default()
            }),
            spec: Some(ServiceSpec {
                name: format!("st_{id}"),
                mode: Some(service_spec::Mode::Replicated(ReplicatedMode { replicas })),
                ..Default::default()
            }),
            spec_version: 1,
            ..Default::default()
        }
    }

    fn task(service: &str, slot: u64, state: TaskState, err: &str) -> Task {
        Task {
            meta: Some(Meta {
                id: format!("{service}{slot}{}", state as i32),
                ..Default::default()
            }),
            service_id: service.into(),
            service_name: format!("st_{service}"),
            slot,
            spec_version: 1,
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                err: err.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn follows(ids: &[&str]) -> Vec<Follow> {
        ids.iter()
            .map(|id| {
                Follow::new(Target {
                    id: id.to_string(),
                    watch_update: false,
                    rollback: false,
                    new_spec: true,
                    verify: false,
                })
            })
            .collect()
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_stack_converges_when_every_service_did() {
        let services = [service("web", 2), service("db", 1)];
        let mut follows = follows(&["web", "db"]);
        let tasks = [
            task("web", 1, TaskState::Running, ""),
            task("web", 2, TaskState::Starting, ""),
            task("db", 1, TaskState::Running, ""),
        ];
        assert!(step(&mut follows, &services, &tasks, Duration::ZERO, TIMEOUT).is_none());
        assert_eq!(follows[1].outcome, Outcome::Converged, "db is done first");
        let tasks = [
            task("web", 1, TaskState::Running, ""),
            task("web", 2, TaskState::Running, ""),
            task("db", 1, TaskState::Running, ""),
        ];
        let over = step(
            &mut follows,
            &services,
            &tasks,
            Duration::from_secs(1),
            TIMEOUT,
        );
        assert!(matches!(over, Some(Ok(()))), "{over:?}");
    }

    #[test]
    fn one_failed_service_ends_the_wait_naming_it() {
        let services = [service("web", 1), service("db", 1)];
        let mut follows = follows(&["web", "db"]);
        let tasks = [
            task("web", 1, TaskState::Rejected, "no such image: reg/nope:v1"),
            task("db", 1, TaskState::Starting, ""),
        ];
        let over = step(&mut follows, &services, &tasks, Duration::ZERO, TIMEOUT);
        let err = over.expect("over").expect_err("failed");
        assert_eq!(
            err.to_string(),
            "service st_web: task st_web.1 rejected: no such image: reg/nope:v1"
        );
    }

    #[test]
    fn at_the_timeout_every_service_still_waiting_is_named() {
        let services = [service("web", 1), service("db", 1), service("ok", 1)];
        let mut follows = follows(&["web", "db", "ok"]);
        let tasks = [
            task("web", 1, TaskState::Starting, ""),
            task("db", 1, TaskState::Pending, "no suitable node"),
            task("ok", 1, TaskState::Running, ""),
        ];
        assert!(step(
            &mut follows,
            &services,
            &tasks,
            Duration::from_secs(29),
            TIMEOUT
        )
        .is_none());
        let err = step(&mut follows, &services, &tasks, TIMEOUT, TIMEOUT)
            .expect("over")
            .expect_err("timed out");
        assert_eq!(
            err.to_string(),
            "service st_web: not converged after 30s: 0/1 running, task st_web.1 starting\n\
             service st_db: not converged after 30s: 0/1 running, task st_db.1 pending: \
             no suitable node"
        );
    }

    #[test]
    fn a_service_missing_from_the_poll_was_removed() {
        let mut follows = follows(&["web"]);
        let err = step(&mut follows, &[], &[], Duration::ZERO, TIMEOUT)
            .expect("over")
            .expect_err("gone");
        assert_eq!(
            err.to_string(),
            "service web was removed while waiting for it"
        );
    }
}
