//! A manager process: opens (or, at `swarm init`, creates) the sealed store
//! and the Raft node, serves the control API on the local socket and every
//! gRPC service on the mTLS port, and runs the leader-only components while
//! this manager leads.

mod leadership;
mod lifecycle;
mod reads;
mod servers;

pub use leadership::components as leader_components;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use shoal_identity::join::JoinToken;
use shoal_identity::live::LiveIdentity;
use shoal_identity::{NodeIdentity, PeerIdentity, Role};
use shoal_proto::control::v1::{InitClusterRequest, JoinClusterRequest};
use shoal_proto::types::v1::*;

use crate::ca::RootCa;
use crate::error::{Context, ManagerError};
use crate::heartbeats::Heartbeats;
use crate::raft::{self, LogStore, Raft, RaftProposer, StateMachine};
use crate::seal::{DataKey, KeyFiles, UnlockKey, Wrapping};
use crate::store::{Store, StoreError};

const MANAGER_STATE_FILE: &str = "manager.json";
/// The ingress network `swarm init` makes for `cluster`, with id `id`
/// (Swarm's: named `ingress`, VXLAN id 4096, the first block of the
/// cluster's address pool: 10.0.0.0/24 and gateway 10.0.0.1 on Swarm's
/// default pool). The routing mesh reaches tasks over it, and it is the
/// network of services that name none (`allocator::networks_of`).
pub fn ingress_network(id: &str, cluster: &Cluster) -> Result<Network, StoreError> {
    let mut state = crate::store::State::default();
    let cluster_id = cluster.meta.as_ref().map_or("", |m| m.id.as_str());
    state
        .clusters
        .insert(cluster_id.to_string(), cluster.clone());
    let mut network =
        crate::allocator::allocate_network(&state, id, &crate::allocator::ingress_spec())?;
    network.ingress = true;
    Ok(network)
}

/// The cluster's default network: the ingress network of a cluster on
/// Swarm's default address pool (10.0.0.0/24), with id `id`.
pub fn default_network(id: &str) -> Network {
    ingress_network(id, &Cluster::default())
        .expect("Swarm's default address pool has room for the ingress network")
}
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub state_dir: PathBuf,
    pub node_dir: PathBuf,
    pub control_socket: PathBuf,
    pub listen: SocketAddr,
    /// Raft log entries between snapshots.
    pub snapshot_every: u64,
}

/// Who this manager is; not secret, kept beside the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManagerIdentity {
    cluster_id: String,
    node_id: String,
    raft_id: u64,
    advertise_addr: String,
}

/// A manager that is part of a cluster.
pub struct Running {
    pub store: Arc<Store>,
    pub raft: Raft,
    pub identity: Arc<LiveIdentity>,
    pub cluster_id: String,
    pub node_id: String,
    raft_id: u64,
    heartbeats: Arc<Heartbeats>,
    /// Routes `service logs` subscriptions over this manager's sessions.
    logs: Arc<crate::logbroker::LogBroker>,
    log_store: LogStore,
    dek: DataKey,
    /// When each peer manager last answered this one over Raft.
    pub contacts: raft::Contacts,
    keykeeper: tokio::task::AbortHandle,
    /// Raft entries between snapshots where the cluster names no interval
    /// (`--snapshot-every`).
    snapshot_every: u64,
}

pub struct Manager {
    config: ManagerConfig,
    running: OnceLock<Arc<Running>>,
    init_lock: tokio::sync::Mutex<()>,
    /// This manager itself, for the calls that spawn work that outlives them.
    this: std::sync::Weak<Manager>,
}

impl Manager {
    pub fn new(config: ManagerConfig) -> Arc<Manager> {
        Arc::new_cyclic(|this| Manager {
            config,
            running: OnceLock::new(),
            init_lock: tokio::sync::Mutex::new(()),
            this: this.clone(),
        })
    }

    pub fn running(&self) -> Result<&Arc<Running>, StoreError> {
        if self.running.get().is_none() && KeyFiles::new(&self.config.state_dir).locked() {
            return Err(StoreError::Unavailable(
                crate::seal::SealError::Locked.to_string(),
            ));
        }
        self.running.get().ok_or_else(|| {
            StoreError::Unavailable(
                "this node is not a swarm manager: run `shoal swarm init` first".into(),
            )
        })
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.running.get().map(|r| r.cluster_id.clone())
    }

    fn leader(&self) -> Option<(u64, BasicNode)> {
        let running = self.running.get()?;
        let metrics = running.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .clone();
        Some((leader, node))
    }

    /// The address this manager advertises to nodes (host:port).
    pub fn advertise_addr(&self) -> Option<String> {
        read_manager_identity(&self.config.state_dir)
            .ok()
            .map(|m| m.advertise_addr)
    }

    pub fn leader_addr(&self) -> Option<String> {
        self.leader().map(|(_, n)| n.addr)
    }

    pub fn leader_node_id(&self) -> Option<String> {
        let (raft_id, _) = self.leader()?;
        let running = self.running.get()?;
        running.store.view(|s| {
            s.nodes
                .values()
                .find(|n| {
                    n.manager_status
                        .as_ref()
                        .is_some_and(|m| m.raft_id == raft_id)
                })
                .and_then(|n| n.meta.as_ref().map(|m| m.id.clone()))
        })
    }

    /// Runs until SIGINT/SIGTERM.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        create_private_dir(&self.config.state_dir)?;
        if let Some(parent) = self.config.control_socket.parent() {
            create_private_dir(parent)?;
        }
        let keys = KeyFiles::new(&self.config.state_dir);
        let handed_over = crate::restart::take_handed_over_key();
        if let (Some(dek), true) = (handed_over, keys.exist()) {
            let identity = read_manager_identity(&self.config.state_dir)?;
            self.clone()
                .start(identity, dek, None)
                .await
                .map_err(|e| anyhow::Error::new(e).context("start the manager"))?;
            tracing::info!("manager restarted in place");
        } else if keys.locked() {
            tracing::warn!("this manager is locked (autolock): run `shoal swarm unlock`");
        } else if keys.exist() {
            let dek = keys.open(None).context("open the store's data key")?;
            let identity = read_manager_identity(&self.config.state_dir)?;
            self.clone()
                .start(identity, dek, None)
                .await
                .map_err(|e| anyhow::Error::new(e).context("start the manager"))?;
            tracing::info!("manager started from {}", self.config.state_dir.display());
        } else {
            tracing::info!("not part of a swarm yet: waiting for `shoal swarm init`");
        }
        servers::serve_control_socket(self.clone(), &self.config.control_socket).await
    }
}

fn read_manager_identity(dir: &std::path::Path) -> Result<ManagerIdentity, ManagerError> {
    let path = dir.join(MANAGER_STATE_FILE);
    let text = std::fs::read_to_string(&path).context(format!("read {}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| ManagerError::other(format!("parse {}", path.display()), e))
}

fn write_manager_identity(dir: &std::path::Path, me: &ManagerIdentity) -> Result<(), ManagerError> {
    let path = dir.join(MANAGER_STATE_FILE);
    let text = serde_json::to_string_pretty(me)
        .map_err(|e| ManagerError::other("encode the manager identity", e))?;
    std::fs::write(&path, text).context(format!("write {}", path.display()))
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), ManagerError> {
    std::fs::create_dir_all(dir).context(format!("create {}", dir.display()))?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), ManagerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(format!("chmod {}", path.display()))
}

pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
