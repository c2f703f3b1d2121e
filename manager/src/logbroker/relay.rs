//! `LogRelay`: how another manager reads the logs of a node whose session
//! this manager holds. Only managers of this cluster may ask.

use std::sync::Arc;

use futures::StreamExt;
use shoal_identity::Role;
use shoal_proto::dispatcher::v1::log_relay_server::LogRelay;
use shoal_proto::dispatcher::v1::{NodeLogsRequest, PublishLogsMessage};
use tonic::{Request, Response, Status};

use super::{LogBroker, LogStream};

pub struct LogRelayService {
    broker: Arc<LogBroker>,
    cluster_id: String,
}

impl LogRelayService {
    pub fn new(broker: Arc<LogBroker>, cluster_id: String) -> Self {
        LogRelayService { broker, cluster_id }
    }
}

#[tonic::async_trait]
impl LogRelay for LogRelayService {
    type NodeLogsStream = LogStream;

    async fn node_logs(
        &self,
        request: Request<NodeLogsRequest>,
    ) -> Result<Response<Self::NodeLogsStream>, Status> {
        let peer = shoal_identity::peer_of(&request)
            .ok_or_else(|| Status::unauthenticated("a manager certificate is required"))?;
        if peer.cluster_id != self.cluster_id || peer.role != Role::Manager {
            return Err(Status::permission_denied(
                "only the cluster's managers relay logs",
            ));
        }
        let NodeLogsRequest {
            node_id,
            task_ids,
            options,
        } = request.into_inner();
        let subscription = self
            .broker
            .subscribe(&node_id, task_ids, options.unwrap_or_default())
            .await
            .ok_or_else(|| Status::not_found(format!("no session of node {node_id} here")))?;
        let stream: LogStream = Box::pin(subscription.map(Ok::<PublishLogsMessage, Status>));
        Ok(Response::new(stream))
    }
}
