//! The log broker: how a reader on any manager gets the logs of tasks on
//! any node. Logs stay on the nodes; nothing of them is stored. A reader
//! asks for a node's tasks ([`NodeLogSource::open`]): the manager holding
//! that node's session pushes a `LogSubscription` on it, the node's agent
//! answers with a `PublishLogs` call to that manager, and the broker routes
//! the call's messages to the reader. A node whose session another manager
//! holds is reached through that manager's `LogRelay` ([`relay`]).
//!
//! Nothing is kept for a reader that has gone: dropping a [`Subscription`]
//! removes its route, and the node's publishing call then ends.

pub mod relay;
mod source;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_proto::dispatcher::v1::{LogSubscription, PublishLogsMessage, SessionMessage};
use shoal_proto::types::v1::LogOptions;
use tokio::sync::mpsc;
use tonic::Status;

pub use source::{ClusterLogs, LogStream, NodeLogSource, NodeLogsError};

/// How many messages of a subscription may wait for a slow reader; the
/// node's publishing call then waits too (backpressure down to the file
/// the agent reads).
const ROUTE_DEPTH: usize = 16;

/// The session streams this manager holds and the routes of the
/// subscriptions it sent on them.
#[derive(Default)]
pub struct LogBroker {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// node id -> the sender of its open session stream (the newest).
    sessions: HashMap<String, SessionSink>,
    /// subscription id -> where its messages go.
    routes: HashMap<String, Route>,
}

/// Weak: the session's stream ends when its own task drops its sender;
/// the broker must not keep it open.
struct SessionSink {
    session_id: String,
    tx: mpsc::WeakSender<Result<SessionMessage, Status>>,
}

impl SessionSink {
    fn open(&self) -> Option<mpsc::Sender<Result<SessionMessage, Status>>> {
        self.tx.upgrade().filter(|tx| !tx.is_closed())
    }
}

struct Route {
    node_id: String,
    tx: mpsc::Sender<PublishLogsMessage>,
}

/// A subscription's messages, as the node publishes them. Dropping it
/// removes the route.
pub struct Subscription {
    id: String,
    rx: mpsc::Receiver<PublishLogsMessage>,
    broker: Arc<LogBroker>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<PublishLogsMessage> {
        self.rx.recv().await
    }
}

impl futures::Stream for Subscription {
    type Item = PublishLogsMessage;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<PublishLogsMessage>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broker.lock().routes.remove(&self.id);
    }
}

impl LogBroker {
    pub fn new() -> Arc<LogBroker> {
        Arc::new(LogBroker::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node's session opened on this manager: subscriptions for the node
    /// go on `tx` from now on (a newer session replaces an older one).
    pub fn attach_session(
        &self,
        node_id: &str,
        session_id: &str,
        tx: &mpsc::Sender<Result<SessionMessage, Status>>,
    ) {
        let mut inner = self.lock();
        // Sessions that ended leave their entry behind: drop those now.
        inner.sessions.retain(|_, s| s.open().is_some());
        inner.sessions.insert(
            node_id.to_string(),
            SessionSink {
                session_id: session_id.to_string(),
                tx: tx.downgrade(),
            },
        );
    }

    /// Whether this manager holds an open session of the node.
    pub fn holds_session(&self, node_id: &str) -> bool {
        self.lock()
            .sessions
            .get(node_id)
            .is_some_and(|s| s.open().is_some())
    }

    /// Asks the node for the logs of `task_ids`, if this manager holds its
    /// session; `None` if it does not.
    pub async fn subscribe(
        self: &Arc<Self>,
        node_id: &str,
        task_ids: Vec<String>,
        options: LogOptions,
    ) -> Option<Subscription> {
        let id = crate::ids::new_id();
        let (route_tx, rx) = mpsc::channel(ROUTE_DEPTH);
        let (session_id, session_tx) = {
            let mut inner = self.lock();
            let sink = inner.sessions.get(node_id)?;
            let found = (sink.session_id.clone(), sink.open()?);
            inner.routes.insert(
                id.clone(),
                Route {
                    node_id: node_id.to_string(),
                    tx: route_tx,
                },
            );
            found
        };
        let subscription = Subscription {
            id: id.clone(),
            rx,
            broker: self.clone(),
        };
        let message = SessionMessage {
            session_id,
            log_subscriptions: vec![LogSubscription {
                id,
                task_ids,
                options: Some(options),
            }],
            ..SessionMessage::default()
        };
        // A session that closed meanwhile: as if there were none.
        session_tx.send(Ok(message)).await.ok()?;
        Some(subscription)
    }

    /// Where the messages of a node's `PublishLogs` call go: the route of
    /// its subscription, which must have been sent to that node.
    pub fn route(
        &self,
        node_id: &str,
        subscription_id: &str,
    ) -> Result<mpsc::Sender<PublishLogsMessage>, Status> {
        match self.lock().routes.get(subscription_id) {
            Some(route) if route.node_id == node_id => Ok(route.tx.clone()),
            Some(_) => Err(Status::permission_denied(
                "this log subscription was sent to another node",
            )),
            // The reader has gone (or never was): nothing to publish to.
            None => Err(Status::not_found(format!(
                "no log subscription {subscription_id}: its reader has gone"
            ))),
        }
    }
}
