//! The CLI's connection to a manager's control API: the local unix socket
//! (root only, no certificate) or a remote manager over mTLS with a
//! certificate bundle issued by the cluster CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use shoal_identity::{error_chain, NodeIdentity};
use shoal_proto::control::v1::control_client::ControlClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub const DEFAULT_HOST: &str = "unix:///run/shoal/control.sock";
/// The manager's default mTLS port (`shoal-manager --listen`).
pub const DEFAULT_PORT: u16 = 4242;
/// A manager that does not answer within this is reported unreachable (3 s;
/// `SHOAL_CONNECT_TIMEOUT` seconds where set).
fn connect_timeout() -> Duration {
    shoal_identity::connect_timeout()
}

/// A manager that accepted the connection but does not answer a call within this is
/// reported rather than waited for forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the manager is, as `--host` / `SHOAL_HOST` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path/to/control.sock`
    Unix(PathBuf),
    /// `tcp://HOST:PORT`, as `HOST:PORT`.
    Tcp(String),
}

impl FromStr for Host {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{s:?} {why}: expected unix:///path/to/control.sock or tcp://HOST[:PORT]")
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("needs an absolute socket path"));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() || addr.contains('/') {
                return Err(bad("is not HOST[:PORT]"));
            }
            // A bare IPv6 address has colons but no port; it must be bracketed.
            let has_port = match addr.rfind(']') {
                Some(end) => addr[end..].contains(':'),
                None => addr.contains(':'),
            };
            if has_port {
                let port = addr.rsplit(':').next().unwrap_or_default();
                if port.parse::<u16>().is_err() {
                    return Err(bad("has an invalid port"));
                }
                return Ok(Host::Tcp(addr.to_string()));
            }
            return Ok(Host::Tcp(format!("{addr}:{DEFAULT_PORT}")));
        }
        Err(bad("has an unknown scheme"))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the manager at {host}: {reason}\n{}",
        unreachable_hint(reason)
    )]
    Unreachable { host: Host, reason: String },
    #[error(
        "{host} needs a client certificate bundle: use a context (`shoal context create`), \
         or pass --tls-dir or set SHOAL_TLS_DIR (a bundle file from \
         `shoal swarm client-bundle create`, or a directory holding node.key, node.crt and ca.crt)"
    )]
    NoTlsDir { host: Host },
    #[error("load the client certificate bundle {}: {source}", path.display())]
    Identity {
        path: PathBuf,
        source: shoal_identity::IdentityError,
    },
}

fn unreachable_hint(reason: &str) -> &'static str {
    if reason.contains("certificate") || reason.contains("tls") || reason.contains("TLS") {
        "Is this the right --host (or SHOAL_HOST), and does --tls-dir hold a certificate \
         bundle issued by this cluster's CA?"
    } else {
        "Is the manager running there, and is this the right --host (or SHOAL_HOST)?"
    }
}

/// A connected control API client and what the CLI knows about whom it talks to.
#[derive(Debug, Clone)]
pub struct Session {
    pub client: ControlClient<Channel>,
    pub host: Host,
    /// The node id in the client certificate, when the bundle is a node's own.
    pub cert_node_id: Option<String>,
}

impl Session {
    /// A session over an already connected channel (tests, embedding).
    pub fn new(channel: Channel, host: Host) -> Self {
        Session {
            client: ControlClient::new(channel)
                .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES),
            host,
            cert_node_id: None,
        }
    }
}

/// Connects to the manager at `host` now, failing within [`connect_timeout`]
/// with [`ClientError::Unreachable`] when nothing answers.
pub async fn connect(host: &Host, tls_dir: Option<&Path>) -> Result<Session, ClientError> {
    match host {
        Host::Unix(path) => {
            let channel = connect_unix(path).await.map_err(|reason| {
                let reason = if path.exists() {
                    reason
                } else {
                    format!("no socket at {} ({reason})", path.display())
                };
                ClientError::Unreachable {
                    host: host.clone(),
                    reason,
                }
            })?;
            Ok(Session::new(channel, host.clone()))
        }
        Host::Tcp(addr) => {
            let path = tls_dir.ok_or_else(|| ClientError::NoTlsDir { host: host.clone() })?;
            let identity = load_identity(path)?;
            // tonic's TLS needs a process-wide provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let connecting = shoal_identity::connect(addr, &identity);
            let channel = match tokio::time::timeout(connect_timeout(), connecting).await {
                Ok(Ok(channel)) => channel,
                Ok(Err(e)) => {
                    let reason = match &e {
                        shoal_identity::IdentityError::Connect { source, .. } => {
                            error_chain(source)
                        }
                        other => error_chain(other),
                    };
                    return Err(ClientError::Unreachable {
                        host: host.clone(),
                        reason,
                    });
                }
                Err(_) => {
                    return Err(ClientError::Unreachable {
                        host: host.clone(),
                        reason: timeout_reason(),
                    })
                }
            };
            let mut session = Session::new(channel, host.clone());
            session.cert_node_id = Some(identity.peer.node_id.clone());
            Ok(session)
        }
    }
}

/// The client identity at `path`: a bundle file (`shoal swarm client-bundle
/// create`) or a directory holding node.key, node.crt and ca.crt (a node's own).
pub fn load_identity(path: &Path) -> Result<NodeIdentity, ClientError> {
    let loaded = if path.is_file() {
        shoal_identity::bundle::read(path)
    } else {
        NodeIdentity::load(path)
    };
    loaded.map_err(|source| ClientError::Identity {
        path: path.to_path_buf(),
        source,
    })
}

async fn connect_unix(path: &Path) -> Result<Channel, String> {
    let path = path.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    let endpoint = Endpoint::from_static("http://[::]:50051")
        .connect_timeout(connect_timeout())
        .timeout(REQUEST_TIMEOUT);
    let connecting = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    }));
    match tokio::time::timeout(connect_timeout(), connecting).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err(timeout_reason()),
    }
}

fn timeout_reason() -> String {
    format!("no answer within {} s", connect_timeout().as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_like_docker_host_urls() {
        assert_eq!(
            "unix:///run/shoal/control.sock".parse(),
            Ok(Host::Unix(PathBuf::from("/run/shoal/control.sock")))
        );
        assert_eq!(
            "tcp://10.0.0.1:4000".parse(),
            Ok(Host::Tcp("10.0.0.1:4000".into()))
        );
        assert_eq!(
            "tcp://manager1".parse(),
            Ok(Host::Tcp("manager1:4242".into()))
        );
        assert_eq!("tcp://[::1]".parse(), Ok(Host::Tcp("[::1]:4242".into())));
        assert_eq!("tcp://[::1]:99".parse(), Ok(Host::Tcp("[::1]:99".into())));
        assert!("10.0.0.1:4242".parse::<Host>().is_err());
        assert!("unix://relative.sock".parse::<Host>().is_err());
        assert!("tcp://host:http".parse::<Host>().is_err());
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::Unix(dir.path().join("control.sock"));
        let err = connect(&host, None).await.expect_err("nothing listens");
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&host.to_string()), "{text}");
        assert!(text.contains("no socket at"), "{text}");
    }

    #[test]
    fn a_bundle_file_and_a_certificate_dir_both_load() {
        use shoal_identity::Role;
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = crate::context::test_ca::TestCa::new().identity("b1", Role::Viewer);
        let file = dir.path().join("ci.bundle");
        shoal_identity::bundle::write(&file, &identity).expect("write bundle");
        let certs = dir.path().join("node");
        identity.save(&certs).expect("save dir");
        for path in [&file, &certs] {
            let loaded = load_identity(path).expect("load");
            assert_eq!(loaded.peer, identity.peer, "{}", path.display());
        }
        let junk = dir.path().join("junk.bundle");
        std::fs::write(&junk, "no pem here").expect("write");
        let err = load_identity(&junk).expect_err("junk");
        assert!(err.to_string().contains("junk.bundle"), "{err}");
    }

    #[tokio::test]
    async fn tcp_without_a_bundle_says_which_flag_is_missing() {
        let host = Host::Tcp("127.0.0.1:1".into());
        let err = connect(&host, None).await.expect_err("no bundle");
        assert!(err.to_string().contains("--tls-dir"), "{err}");
    }
}
