//! A client of netd's unix-socket API, for the agent.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use shoal_proto::netd::v1::netd_client::NetdClient;
use tonic::transport::{Channel, Endpoint};

/// Connects to netd's socket at `socket`.
pub async fn connect(socket: &Path) -> Result<NetdClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://netd.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await?;
    Ok(NetdClient::new(channel))
}
