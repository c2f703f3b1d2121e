//! Waiting for committed changes: the loop every manager component runs is
//! "do a pass over the state, then wait for a change that matters".

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use super::{Change, Event, Object};

/// A settle for components on the path of every task (orchestrator,
/// allocator, scheduler): no wait, only what is already committed. Their
/// passes run one at a time, so commits made during a pass are gathered
/// for the next one anyway; a timer would only add its length to every
/// step of a serial rolling update.
pub const NO_SETTLE: Duration = Duration::ZERO;

/// Waits until a change that `interest` accepts is committed, then drains
/// what else arrived within `settle` so one pass covers a burst of commits.
/// Returns false when the store is gone. A lagging watcher counts as
/// changed: the caller's next pass reads the full state anyway.
pub async fn changed(
    events: &mut Receiver<Arc<Event>>,
    interest: impl Fn(&Change) -> bool,
    settle: Duration,
) -> bool {
    loop {
        match events.recv().await {
            Ok(event) if event.changes.iter().any(&interest) => break,
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => break,
            Err(RecvError::Closed) => return false,
        }
    }
    if settle.is_zero() {
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
        return true;
    }
    let deadline = tokio::time::Instant::now() + settle;
    while let Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) =
        tokio::time::timeout_at(deadline, events.recv()).await
    {}
    true
}

/// The loop of a level-triggered component: a pass over the state, then
/// wait for a relevant change; a failed pass is logged and retried shortly.
/// Returns when the store is gone.
pub async fn run_passes<Fut>(
    store: &super::Store,
    component: &str,
    interest: impl Fn(&Change) -> bool,
    settle: Duration,
    mut pass: impl FnMut() -> Fut,
) where
    Fut: std::future::Future<Output = Result<(), super::StoreError>>,
{
    let mut events = store.subscribe();
    loop {
        if let Err(e) = pass().await {
            tracing::warn!("{component} pass failed: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !changed(&mut events, &interest, settle).await {
            return;
        }
    }
}

/// What a pass looks at: every service (the first pass, a change to
/// something else it follows, the watcher lagged, a delay ran out), or
/// those whose object or tasks the commits changed. A pass over every
/// service at every commit cost a leader with 100,000 tasks more than
/// placing them.
#[derive(Debug)]
pub enum Scope {
    All,
    Services(BTreeSet<String>),
}

impl Scope {
    fn add(&mut self, change: &Change) {
        let Scope::Services(ids) = self else { return };
        match change.object() {
            Object::Service(s) => {
                ids.insert(s.meta.as_ref().map_or("", |m| m.id.as_str()).to_string());
            }
            Object::Task(t) => {
                if !ids.contains(&t.service_id) {
                    ids.insert(t.service_id.clone());
                }
            }
            _ => *self = Scope::All,
        }
    }

    fn read(&mut self, event: &Event, interest: &impl Fn(&Change) -> bool) {
        for change in event.changes.iter().filter(|c| interest(c)) {
            self.add(change);
        }
    }
}

/// [`changed`], saying which services the changes that `interest` accepts
/// concern. `None` when the store is gone.
pub async fn next_scope(
    events: &mut Receiver<Arc<Event>>,
    interest: impl Fn(&Change) -> bool,
    settle: Duration,
) -> Option<Scope> {
    let mut scope = Scope::Services(BTreeSet::new());
    loop {
        match events.recv().await {
            Ok(event) if event.changes.iter().any(&interest) => {
                scope.read(&event, &interest);
                break;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                scope = Scope::All;
                break;
            }
            Err(RecvError::Closed) => return None,
        }
    }
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let next = if settle.is_zero() {
            events.try_recv()
        } else {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(event)) => Ok(event),
                Ok(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
                Ok(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
                Err(_) => Err(TryRecvError::Empty),
            }
        };
        match next {
            Ok(event) => scope.read(&event, &interest),
            Err(TryRecvError::Lagged(_)) => scope = Scope::All,
            Err(TryRecvError::Empty) => return Some(scope),
            Err(TryRecvError::Closed) => return None,
        }
    }
}

/// [`run_passes`] for a component whose pass can be limited to a
/// [`Scope`].
pub async fn run_scoped_passes<Fut>(
    store: &super::Store,
    component: &str,
    interest: impl Fn(&Change) -> bool,
    settle: Duration,
    mut pass: impl FnMut(Scope) -> Fut,
) where
    Fut: std::future::Future<Output = Result<(), super::StoreError>>,
{
    let mut events = store.subscribe();
    let mut scope = Scope::All;
    loop {
        if let Err(e) = pass(scope).await {
            tracing::warn!("{component} pass failed: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            scope = Scope::All;
            continue;
        }
        match next_scope(&mut events, &interest, settle).await {
            Some(next) => scope = next,
            None => return,
        }
    }
}
