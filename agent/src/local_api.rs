//! Clients of the local APIs on this host (unix sockets): netd's, and the
//! control API of the host's own manager process.

use std::path::{Path, PathBuf};

use shoal_proto::control::v1::control_client::ControlClient;
use shoal_proto::netd::v1::netd_client::NetdClient;
use tonic::transport::{Channel, Endpoint};

/// A lazily connected channel to a unix socket; calls fail (and are
/// retried by the caller) while the daemon behind it is down.
fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    Ok(
        Endpoint::try_from("http://[::]:50051")?.connect_with_connector_lazy(tower::service_fn(
            move |_| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            },
        )),
    )
}

pub fn netd(socket: &Path) -> Result<NetdClient<Channel>, tonic::transport::Error> {
    channel(socket).map(NetdClient::new)
}

/// The manager process on this host (idle until it joins the managers).
pub fn manager(socket: &Path) -> Result<ControlClient<Channel>, tonic::transport::Error> {
    channel(socket)
        .map(|c| ControlClient::new(c).max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES))
}
