//! The manager's servers: the control API on the local unix socket (root
//! only), and on the mTLS port every gRPC service: control API, dispatcher,
//! Raft and CA. Also how the runtime answers the control API's narrow
//! interfaces (`controlapi::port`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use shoal_proto::ca::v1::certificate_authority_server::CertificateAuthorityServer;
use shoal_proto::control::v1::control_server::ControlServer;
use shoal_proto::control::v1::{InitClusterRequest, InitClusterResponse, JoinClusterRequest};
use shoal_proto::dispatcher::v1::dispatcher_server::DispatcherServer;
use shoal_proto::raft::v1::raft_server::RaftServer;

use super::{set_mode, shutdown_signal, Manager, Running};
use crate::ca::CaService;
use crate::controlapi::port::{ManagerNode, Member};
use crate::controlapi::ControlApi;
use crate::dispatcher::Dispatcher;
use crate::error::{Context, ManagerError};
use crate::logbroker::relay::LogRelayService;
use crate::logbroker::{ClusterLogs, NodeLogSource};
use crate::raft::RaftService;
use crate::store::{State, Store, StoreError};
use shoal_proto::dispatcher::v1::log_relay_server::LogRelayServer;

/// Serves the local CLI until SIGINT/SIGTERM.
pub(super) async fn serve_control_socket(
    manager: Arc<Manager>,
    socket: &Path,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener =
        tokio::net::UnixListener::bind(socket).context(format!("bind {}", socket.display()))?;
    set_mode(socket, 0o600)?;
    tonic::transport::Server::builder()
        .add_service(
            ControlServer::new(ControlApi::local(manager))
                .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown_signal(),
        )
        .await
        .map_err(|e| anyhow::Error::new(e).context("serve the control socket"))
}

/// Listens on the mTLS port and serves it in the background; the process
/// ends if that server stops.
pub(super) async fn serve_tcp(
    manager: Arc<Manager>,
    listen: SocketAddr,
    running: &Arc<Running>,
    removed: Arc<tokio::sync::Notify>,
) -> Result<(), ManagerError> {
    let store = &running.store;
    let server = tonic::transport::Server::builder()
        .add_service(
            ControlServer::new(ControlApi::remote(manager))
                .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(
            DispatcherServer::new(Dispatcher::new(
                store.clone(),
                running.cluster_id.clone(),
                running.heartbeats.clone(),
                running.logs.clone(),
            ))
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(
            RaftServer::new(RaftService::new(
                running.raft.clone(),
                running.cluster_id.clone(),
                store.clone(),
                removed,
            ))
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(
            LogRelayServer::new(LogRelayService::new(
                running.logs.clone(),
                running.cluster_id.clone(),
            ))
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(CertificateAuthorityServer::new(CaService::new(
            store.clone(),
        )));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .context(format!("listen on {listen}"))?;
    let incoming = crate::tls::incoming(listener, running.identity.subscribe())
        .map_err(|e| ManagerError::other("the mTLS server's TLS configuration", e))?;
    tokio::spawn(async move {
        if let Err(e) = server.serve_with_incoming(incoming).await {
            tracing::error!("the manager's TCP server stopped: {e}");
            std::process::exit(1);
        }
    });
    Ok(())
}

#[tonic::async_trait]
impl Member for Running {
    fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn raft_status(&self) -> shoal_proto::control::v1::RaftStatus {
        self.store.view(|state| {
            crate::raft::snapshot_policy::status(&self.raft, state, self.snapshot_every)
        })
    }

    async fn linearize(&self) -> Result<(), StoreError> {
        Running::linearize(self).await
    }

    fn removal_refusal(&self, state: &State, raft_id: u64) -> Option<String> {
        Running::removal_refusal(self, state, raft_id)
    }

    fn node_logs(&self) -> Arc<dyn NodeLogSource> {
        Arc::new(ClusterLogs {
            broker: self.logs.clone(),
            store: self.store.clone(),
            identity: self.identity.clone(),
            node_id: self.node_id.clone(),
        })
    }
}

impl Manager {
    fn this(&self) -> Arc<Manager> {
        // `this` is made with the manager and outlives every call on it.
        self.this
            .upgrade()
            .expect("the manager is alive while it serves")
    }
}

#[tonic::async_trait]
impl ManagerNode for Manager {
    fn member(&self) -> Result<Arc<dyn Member>, StoreError> {
        self.running().map(|r| r.clone() as Arc<dyn Member>)
    }

    fn advertise_addr(&self) -> Option<String> {
        Manager::advertise_addr(self)
    }

    fn leader_addr(&self) -> Option<String> {
        Manager::leader_addr(self)
    }

    fn leader_node_id(&self) -> Option<String> {
        Manager::leader_node_id(self)
    }

    async fn init(&self, request: InitClusterRequest) -> Result<InitClusterResponse, ManagerError> {
        let (cluster_id, node_id, unlock_key) = self.this().init(request).await?;
        Ok(InitClusterResponse {
            cluster_id,
            node_id,
            unlock_key: unlock_key.map(|k| k.to_string()).unwrap_or_default(),
        })
    }

    async fn join(&self, request: JoinClusterRequest) -> Result<String, ManagerError> {
        Ok(self.this().join(request).await?)
    }

    async fn unlock(&self, key: &str) -> Result<(), ManagerError> {
        Ok(self.this().unlock(key).await?)
    }

    async fn leave(&self, force: bool) -> Result<(), ManagerError> {
        Ok(self.this().leave(force).await?)
    }

    async fn force_new_cluster(&self) -> Result<(String, String), ManagerError> {
        Ok(self.this().force_new_cluster().await?)
    }
}
