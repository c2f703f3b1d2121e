//! The agent's client of netd's local API (unix socket).

use std::path::{Path, PathBuf};

use shoal_proto::netd::v1::netd_client::NetdClient;
use tonic::transport::{Channel, Endpoint};

/// A lazily connected channel to netd; calls fail (and are retried by the
/// caller) while netd is down.
pub fn connect(socket: &Path) -> Result<NetdClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")?.connect_with_connector_lazy(
        tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }),
    );
    Ok(NetdClient::new(channel))
}
