//! The manager's mTLS listener. tonic's own TLS takes one certificate for
//! the life of the server; this listener does the handshakes itself with
//! the node's identity as it is at each connection, so a renewed
//! certificate or a new trust bundle (root CA rotation) applies to the next
//! connection without a restart. Handshakes run concurrently with a
//! deadline; tonic gets the finished streams (`serve_with_incoming`) and
//! reads the peer's certificates from them as before.

use std::sync::Arc;
use std::time::Duration;

use shoal_identity::NodeIdentity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// A client that does not finish its handshake within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub type Incoming = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// The server config for the identity, rebuilt when the identity changes;
/// a new identity that does not make a config keeps the last good one.
struct Configs {
    identity: watch::Receiver<Arc<NodeIdentity>>,
    config: Arc<rustls::ServerConfig>,
}

impl Configs {
    fn current(&mut self) -> Arc<rustls::ServerConfig> {
        if self.identity.has_changed().unwrap_or(false) {
            let identity = self.identity.borrow_and_update().clone();
            match identity.server_config() {
                Ok(config) => {
                    tracing::info!("TLS server now presents the renewed node certificate");
                    self.config = Arc::new(config);
                }
                Err(e) => {
                    tracing::warn!("renewed identity unusable for TLS, keeping the last: {e}")
                }
            }
        }
        self.config.clone()
    }
}

/// Accepts connections on `listener` and hands tonic those whose TLS
/// handshake succeeded.
pub fn incoming(
    listener: TcpListener,
    mut identity: watch::Receiver<Arc<NodeIdentity>>,
) -> Result<Incoming, shoal_identity::IdentityError> {
    let config = Arc::new(identity.borrow_and_update().server_config()?);
    let mut configs = Configs { identity, config };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(configs.current());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(ReceiverStream::new(rx))
}
