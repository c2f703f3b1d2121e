//! The local gRPC API (`shoal.netd.v1.Netd`) on a unix socket readable and
//! writable by root only: the agent asks for a task's namespace before it
//! starts the container and drops it after.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use shoal_proto::netd::v1::netd_server::{Netd, NetdServer};
use shoal_proto::netd::v1::{
    AttachTaskRequest, AttachTaskResponse, DetachTaskRequest, DetachTaskResponse, DrainTaskRequest,
    DrainTaskResponse, ForgetClusterRequest, ForgetClusterResponse, ListAttachmentsRequest,
    ListAttachmentsResponse,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::dataplane::Dataplane;
use crate::error::Error;

pub struct NetdService {
    dataplane: Arc<Dataplane>,
    /// Tells the manager watch to drop its stream (`ForgetCluster`).
    forget: Arc<tokio::sync::Notify>,
}

impl NetdService {
    pub fn new(dataplane: Arc<Dataplane>, forget: Arc<tokio::sync::Notify>) -> NetdService {
        NetdService { dataplane, forget }
    }
}

fn status(e: Error) -> Status {
    match e {
        Error::Invalid { .. } => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Netd for NetdService {
    async fn drain_task(
        &self,
        request: Request<DrainTaskRequest>,
    ) -> Result<Response<DrainTaskResponse>, Status> {
        self.dataplane
            .drain_task(&request.into_inner().task_id)
            .await
            .map_err(status)?;
        Ok(Response::new(DrainTaskResponse {}))
    }

    async fn forget_cluster(
        &self,
        _request: Request<ForgetClusterRequest>,
    ) -> Result<Response<ForgetClusterResponse>, Status> {
        tracing::info!("the node left the swarm: dropping the network view");
        self.forget.notify_one();
        self.dataplane
            .apply_view(&Default::default())
            .await
            .map_err(status)?;
        Ok(Response::new(ForgetClusterResponse {}))
    }

    async fn attach_task(
        &self,
        request: Request<AttachTaskRequest>,
    ) -> Result<Response<AttachTaskResponse>, Status> {
        let req = request.into_inner();
        let path = self.dataplane.attach_task(&req).await.map_err(|e| {
            tracing::warn!(task = %req.task_id, error = %e, "attach failed");
            status(e)
        })?;
        Ok(Response::new(AttachTaskResponse {
            netns_path: path.to_string_lossy().into_owned(),
            dns_server: crate::dataplane::dns_server(&req)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        }))
    }

    async fn detach_task(
        &self,
        request: Request<DetachTaskRequest>,
    ) -> Result<Response<DetachTaskResponse>, Status> {
        let req = request.into_inner();
        self.dataplane
            .detach_task(&req.task_id)
            .await
            .map_err(|e| {
                tracing::warn!(task = %req.task_id, error = %e, "detach failed");
                status(e)
            })?;
        Ok(Response::new(DetachTaskResponse {}))
    }

    async fn list_attachments(
        &self,
        _request: Request<ListAttachmentsRequest>,
    ) -> Result<Response<ListAttachmentsResponse>, Status> {
        Ok(Response::new(ListAttachmentsResponse {
            attachments: self.dataplane.list_attachments().await,
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listen on {path}: {source}")]
    Listen {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serve gRPC on {path}: {source}")]
    Serve {
        path: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Binds `socket` (replacing a stale socket file, mode 0600) and serves the
/// API until `shutdown` completes.
pub async fn serve(
    dataplane: Arc<Dataplane>,
    forget: Arc<tokio::sync::Notify>,
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let shown = socket.display().to_string();
    let listen_err = |source| ServeError::Listen {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err(e)),
    }
    let listener = UnixListener::bind(socket).map_err(listen_err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(listen_err)?;
    tracing::info!(socket = %shown, "serving the netd API");
    tonic::transport::Server::builder()
        .add_service(NetdServer::new(NetdService::new(dataplane, forget)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|source| ServeError::Serve {
            path: shown.clone(),
            source,
        })
}
