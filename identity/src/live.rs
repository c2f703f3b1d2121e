//! The node's identity as it is now. The agent renews the node's
//! certificate (periodically, and at once during a root CA rotation) and
//! rewrites the identity files; the agent's session, netd's watch, and the
//! manager's server and Raft channels all read the identity through a
//! [`LiveIdentity`], which re-reads the files when inotify says they
//! changed and tells its subscribers, so nothing restarts to pick up a
//! renewed certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::dir_watch::DirWatch;
use crate::{IdentityError, NodeIdentity};

/// How often the files are read where inotify is not available.
pub const POLL: Duration = Duration::from_secs(1);
/// After a change is seen, the wait for the rest of a rewrite.
const SETTLE: Duration = Duration::from_millis(50);

pub struct LiveIdentity {
    dir: PathBuf,
    current: watch::Sender<Arc<NodeIdentity>>,
}

impl LiveIdentity {
    /// The identity in `dir` as it is now.
    pub fn load(dir: &Path) -> Result<Arc<LiveIdentity>, IdentityError> {
        Ok(Self::new(dir, NodeIdentity::load(dir)?))
    }

    pub fn new(dir: &Path, identity: NodeIdentity) -> Arc<LiveIdentity> {
        Arc::new(LiveIdentity {
            dir: dir.to_path_buf(),
            current: watch::Sender::new(Arc::new(identity)),
        })
    }

    pub fn current(&self) -> Arc<NodeIdentity> {
        self.current.borrow().clone()
    }

    /// Changes from now on (the receiver starts at the current identity).
    pub fn subscribe(&self) -> watch::Receiver<Arc<NodeIdentity>> {
        self.current.subscribe()
    }

    /// Re-reads the files; true when the identity changed. A set of files
    /// caught in the middle of a rewrite (a key that does not match the
    /// certificate) is left for the next read.
    pub fn reload(&self) -> Result<bool, IdentityError> {
        let read = NodeIdentity::load(&self.dir)?;
        let now = self.current();
        if read.key_pem == now.key_pem && read.cert_pem == now.cert_pem && read.ca_pem == now.ca_pem
        {
            return Ok(false);
        }
        if !read.key_matches_certificate() {
            return Ok(false);
        }
        // Whatever the directory holds is the node's identity now, even with
        // another role (promotion, demotion) or node (a new join): only root
        // writes there.
        self.current.send_replace(Arc::new(read));
        Ok(true)
    }

    /// Re-reads the files whenever inotify says the directory changed (or
    /// every [`POLL`] where inotify is unavailable), for as long as the
    /// future runs.
    pub async fn watch(self: Arc<Self>) {
        let changes = match DirWatch::new(&self.dir) {
            Ok(changes) => Some(changes),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} ({e}): reading it every {POLL:?}",
                    self.dir.display()
                );
                None
            }
        };
        let mut failing = false;
        loop {
            match &changes {
                Some(changes) => {
                    if let Err(e) = changes.changed().await {
                        tracing::warn!("watch {}: {e}", self.dir.display());
                        tokio::time::sleep(POLL).await;
                    }
                    // A renewal rewrites three files: let it finish.
                    tokio::time::sleep(SETTLE).await;
                }
                None => tokio::time::sleep(POLL).await,
            }
            match self.reload() {
                Ok(true) => {
                    failing = false;
                    tracing::info!(
                        "node identity reloaded from {} (renewed certificate)",
                        self.dir.display()
                    );
                }
                Ok(false) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("node identity unreadable, keeping the current one: {e}");
                }
                Err(_) => {}
            }
        }
    }

    /// Starts [`LiveIdentity::watch`] on the current runtime.
    pub fn spawn_watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().watch())
    }
}
