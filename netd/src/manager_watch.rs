//! netd's link to the managers: a `WatchNetwork` stream over mTLS with the
//! node's identity, each view applied to the data plane. Reconnects with
//! backoff forever; before the node has joined (no certificate yet) it
//! waits for one. When the agent renews the node's certificate the stream
//! is reopened with the new one (the data plane is left as it is).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use shoal_identity::live::LiveIdentity;
use shoal_identity::NodeIdentity;
use shoal_proto::dispatcher::v1::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::v1::WatchNetworkRequest;

use crate::dataplane::Dataplane;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const IDENTITY_POLL: Duration = Duration::from_secs(1);
/// How often netd checks whether its WireGuard key is due for rotation.
const KEY_ROTATION_CHECK: Duration = Duration::from_secs(60);

pub struct ManagerWatch {
    pub dataplane: Arc<Dataplane>,
    pub node_dir: PathBuf,
    pub manager: String,
    /// Notified when the node left the swarm: drop the stream and the view.
    pub forget: Arc<tokio::sync::Notify>,
}

impl ManagerWatch {
    /// Runs until the future is dropped; never returns on its own.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        // The configured manager first, then the others the views name:
        // when a manager dies, netd moves on to the next at once.
        let mut managers = vec![self.manager.clone()];
        let mut next = 0;
        let mut live: Option<Arc<LiveIdentity>> = None;
        loop {
            // Waits after a `swarm leave` until the node joins again.
            let read = wait_for_identity(&self.node_dir).await;
            let identity = match &live {
                Some(live) => {
                    if let Err(e) = live.reload() {
                        tracing::warn!(error = %e, "node identity unreadable; keeping the last");
                    }
                    live.clone()
                }
                None => {
                    let new = LiveIdentity::new(&self.node_dir, read);
                    new.spawn_watch();
                    live = Some(new.clone());
                    new
                }
            };
            let manager = managers[next % managers.len()].clone();
            match self.watch(&identity, &manager, &mut managers).await {
                Ok(()) => {
                    tracing::info!(%manager, "network view stream ended; reconnecting");
                    backoff = BACKOFF_MIN;
                }
                Err(Failure { error, received }) => {
                    if received {
                        backoff = BACKOFF_MIN;
                    }
                    tracing::warn!(%manager, %error, retry_in = ?backoff, "network view stream failed");
                    next += 1;
                    if next % managers.len() != 0 {
                        continue;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn watch(
        &self,
        live: &LiveIdentity,
        manager: &str,
        managers: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let fail = |received: bool| move |error: String| Failure { error, received };
        let mut renewed = live.subscribe();
        let identity = renewed.borrow_and_update().clone();
        let channel = shoal_identity::connect(manager, &identity)
            .await
            .map_err(|e| fail(false)(e.to_string()))?;
        let mut stream = DispatcherClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
            .watch_network(WatchNetworkRequest {
                wireguard_public_key: self.dataplane.wireguard_public_key().await,
            })
            .await
            .map_err(|e| fail(false)(e.to_string()))?
            .into_inner();
        tracing::info!(%manager, "watching the network view");
        let mut rotation_check = tokio::time::interval(KEY_ROTATION_CHECK);
        rotation_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut received = false;
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = renewed.changed() => {
                    tracing::info!(%manager, "node certificate renewed: reopening the network view stream");
                    return Ok(());
                }
                () = self.dataplane.rekeyed() => {
                    tracing::info!(%manager, "WireGuard key rotated: reopening the network view stream to announce it");
                    return Ok(());
                }
                _ = rotation_check.tick() => {
                    if let Err(e) = self.dataplane.rotate_key_if_due().await {
                        tracing::warn!(error = %e, "WireGuard key rotation failed; the old key stays");
                    }
                    continue;
                }
                () = self.forget.notified() => {
                    if let Err(e) = self.dataplane.apply_view(&Default::default()).await {
                        tracing::warn!(error = %e, "dropping the network view");
                    }
                    return Ok(());
                }
            };
            let Some(mut view) = message.map_err(|e| fail(received)(e.to_string()))? else {
                break;
            };
            // Every view is complete: when several are waiting (a burst
            // of commits while the last one was applied), only the newest
            // matters.
            while let Some(Ok(Some(newer))) = stream.message().now_or_never() {
                view = newer;
            }
            received = true;
            for addr in &view.managers {
                if !managers.contains(addr) {
                    managers.push(addr.clone());
                }
            }
            tracing::debug!(
                networks = view.networks.len(),
                services = view.services.len(),
                "network view received"
            );
            // A view that cannot be fully applied is logged; the next one
            // (complete again) gets another chance.
            if let Err(e) = self.dataplane.apply_view(&view).await {
                tracing::warn!(error = %e, "network view applied partially");
            }
        }
        Ok(())
    }
}

struct Failure {
    error: String,
    /// Whether the stream delivered a view before failing (then the
    /// connection worked and the backoff starts over).
    received: bool,
}

/// Loads the node identity, waiting for the node to join (the certificate
/// to appear) and retrying while it is unreadable.
async fn wait_for_identity(node_dir: &Path) -> NodeIdentity {
    let mut logged = false;
    loop {
        if node_dir.join(shoal_identity::CERT_FILE).exists() {
            match NodeIdentity::load(node_dir) {
                Ok(identity) => return identity,
                Err(e) => tracing::warn!(error = %e, "node identity unreadable; retrying"),
            }
        } else if !logged {
            tracing::info!(node_dir = %node_dir.display(), "waiting for the node to join (no certificate yet)");
            logged = true;
        }
        tokio::time::sleep(IDENTITY_POLL).await;
    }
}
