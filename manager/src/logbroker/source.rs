//! Where a reader gets a node's logs from: this manager's broker when it
//! holds the node's session, else the manager that does (asked in turn,
//! through its `LogRelay`).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use shoal_identity::live::LiveIdentity;
use shoal_proto::dispatcher::v1::log_relay_client::LogRelayClient;
use shoal_proto::dispatcher::v1::{NodeLogsRequest, PublishLogsMessage};
use shoal_proto::types::v1::LogOptions;
use tonic::Status;

use super::LogBroker;
use crate::store::Store;

/// A node's answer to a subscription, message by message; it ends when the
/// node has sent everything (the last message says `done`) or when the
/// node's call broke (no `done`).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<PublishLogsMessage, Status>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum NodeLogsError {
    #[error("the node has no session with any manager{}", details(.0))]
    NoSession(Vec<String>),
}

fn details(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

/// The logs of tasks on one node, wherever its session is.
#[tonic::async_trait]
pub trait NodeLogSource: Send + Sync + 'static {
    async fn open(
        &self,
        node_id: &str,
        task_ids: Vec<String>,
        options: LogOptions,
    ) -> Result<LogStream, NodeLogsError>;
}

/// The source a running manager uses: its own sessions, then its peers'.
pub struct ClusterLogs {
    pub broker: Arc<LogBroker>,
    pub store: Arc<Store>,
    pub identity: Arc<LiveIdentity>,
    /// This manager's node id (not asked through the relay).
    pub node_id: String,
}

#[tonic::async_trait]
impl NodeLogSource for ClusterLogs {
    async fn open(
        &self,
        node_id: &str,
        task_ids: Vec<String>,
        options: LogOptions,
    ) -> Result<LogStream, NodeLogsError> {
        if let Some(subscription) = self
            .broker
            .subscribe(node_id, task_ids.clone(), options)
            .await
        {
            return Ok(Box::pin(subscription.map(Ok)));
        }
        let peers: Vec<String> = self.store.view(|s| {
            s.nodes
                .values()
                .filter(|n| n.meta.as_ref().is_some_and(|m| m.id != self.node_id))
                .filter_map(|n| n.manager_status.as_ref())
                .map(|m| m.addr.clone())
                .filter(|a| !a.is_empty())
                .collect()
        });
        let identity = self.identity.current();
        let mut errors = Vec::new();
        for addr in peers {
            let asked = async {
                let channel = shoal_identity::connect(&addr, &identity)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let stream = LogRelayClient::new(channel)
                    .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
                    .node_logs(NodeLogsRequest {
                        node_id: node_id.to_string(),
                        task_ids: task_ids.clone(),
                        options: Some(options),
                    })
                    .await?
                    .into_inner();
                Ok::<_, Status>(stream)
            };
            match asked.await {
                Ok(stream) => return Ok(Box::pin(stream)),
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => errors.push(format!("manager {addr}: {}", status.message())),
            }
        }
        Err(NodeLogsError::NoSession(errors))
    }
}
