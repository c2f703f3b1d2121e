//! Waiting for committed changes: the loop every manager component runs is
//! "do a pass over the state, then wait for a change that matters".

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use super::{Change, Event};

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
