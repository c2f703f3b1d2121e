//! A manager process: opens (or, at `swarm init`, creates) the sealed store
//! and the Raft node, serves the control API on the local socket and every
//! gRPC service on the mTLS port, and runs the leader-only components while
//! this manager leads.

mod membership;

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
use shoal_proto::control::v1::control_server::ControlServer;
use shoal_proto::control::v1::{InitClusterRequest, JoinClusterRequest};
use shoal_proto::dispatcher::v1::dispatcher_server::DispatcherServer;
use shoal_proto::raft::v1::raft_server::RaftServer;
use shoal_proto::types::v1::*;

use crate::ca::{CaService, RootCa};
use crate::controlapi::ControlApi;
use crate::dispatcher::{Dispatcher, Heartbeats};
use crate::leader::{LeaderEnv, Restarts, Supervisor};
use crate::raft::{self, LogStore, Raft, RaftProposer, RaftService, StateMachine};
use crate::seal::{DataKey, KeyFiles, UnlockKey, Wrapping};
use crate::store::{Store, StoreError};
use shoal_proto::ca::v1::certificate_authority_server::CertificateAuthorityServer;

const MANAGER_STATE_FILE: &str = "manager.json";
/// The network every task joins unless its service names others.
pub const DEFAULT_NETWORK: (&str, &str, &str, u32) = ("default", "10.0.1.0/24", "10.0.1.1", 4097);
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
    log_store: LogStore,
    dek: DataKey,
    /// When each peer manager last answered this one over Raft.
    pub contacts: raft::Contacts,
    keykeeper: tokio::task::AbortHandle,
}

impl Running {
    /// Waits until this manager has applied everything committed before the
    /// call (Raft read index): a read after this sees every acknowledged write.
    pub async fn linearize(&self) -> Result<(), StoreError> {
        // A leader may miss a quorum of heartbeat answers for a moment (a
        // busy host, an election under way): retry until the deadline, and
        // report only what the last attempt said.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut last = StoreError::Unavailable(
            "no quorum: the managers could not confirm the leader within 2 s".into(),
        );
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.linearize_once()).await;
            match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => return Err(last),
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn linearize_once(&self) -> Result<(), StoreError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader() {
                Some(fwd) => match &fwd.leader_node {
                    Some(leader) => self.read_index_from(&leader.addr).await,
                    None => Err(StoreError::no_leader()),
                },
                None => Err(StoreError::Unavailable(
                    "this manager could not confirm with a quorum of managers that it still leads: the managers have no quorum".into(),
                )),
            },
        }
    }

    /// Why taking Raft member `raft_id` out of the group would leave the
    /// others without a reachable quorum, if it would. The leader knows who
    /// answers its heartbeats; a follower goes by which managers are Ready.
    pub fn removal_refusal(&self, state: &crate::store::State, raft_id: u64) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters = raft::voters(&self.raft);
        if !voters.contains(&raft_id) {
            return None;
        }
        let contacts = if metrics.current_leader == Some(metrics.id) {
            self.contacts.clone()
        } else {
            let ready = raft::Contacts::default();
            for node in state.nodes.values() {
                let up = node
                    .status
                    .as_ref()
                    .is_some_and(|s| s.state == NodeState::Ready as i32);
                if let (true, Some(ms)) = (up, &node.manager_status) {
                    ready.heard_from(ms.raft_id);
                }
            }
            ready
        };
        raft::removal_breaks_quorum(&voters, raft_id, metrics.id, &contacts)
    }

    /// A follower's read index: asked of the leader, then waited for here.
    async fn read_index_from(&self, leader_addr: &str) -> Result<(), StoreError> {
        use shoal_proto::raft::v1::{raft_client::RaftClient, RaftMessage};
        let unavailable = |e: String| {
            StoreError::Unavailable(format!("read index from the leader at {leader_addr}: {e}"))
        };
        let channel = shoal_identity::connect(leader_addr, &self.identity.current())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let reply = RaftClient::new(channel)
            .read_index(RaftMessage { data: Vec::new() })
            .await
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        let index: Result<u64, String> =
            serde_json::from_slice(&reply.data).map_err(|e| unavailable(e.to_string()))?;
        let index = index.map_err(unavailable)?;
        self.raft
            .wait(Some(Duration::from_secs(2)))
            .applied_index_at_least(Some(index), "read index applied")
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(())
    }
}

pub struct Manager {
    config: ManagerConfig,
    running: OnceLock<Arc<Running>>,
    init_lock: tokio::sync::Mutex<()>,
}

impl Manager {
    pub fn new(config: ManagerConfig) -> Arc<Manager> {
        Arc::new(Manager {
            config,
            running: OnceLock::new(),
            init_lock: tokio::sync::Mutex::new(()),
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
        use anyhow::Context;
        create_private_dir(&self.config.state_dir)?;
        if let Some(parent) = self.config.control_socket.parent() {
            create_private_dir(&parent.to_path_buf())?;
        }
        let keys = KeyFiles::new(&self.config.state_dir);
        let handed_over = crate::restart::take_handed_over_key();
        if let (Some(dek), true) = (handed_over, keys.exist()) {
            let identity = read_manager_identity(&self.config.state_dir)?;
            self.clone()
                .start(identity, dek, None)
                .await
                .map_err(|e| anyhow::anyhow!("start the manager: {e}"))?;
            tracing::info!("manager restarted in place");
        } else if keys.locked() {
            tracing::warn!("this manager is locked (autolock): run `shoal swarm unlock`");
        } else if keys.exist() {
            let dek = keys.open(None).context("open the store's data key")?;
            let identity = read_manager_identity(&self.config.state_dir)?;
            self.clone()
                .start(identity, dek, None)
                .await
                .map_err(|e| anyhow::anyhow!("start the manager: {e}"))?;
            tracing::info!("manager started from {}", self.config.state_dir.display());
        } else {
            tracing::info!("not part of a swarm yet: waiting for `shoal swarm init`");
        }
        let socket = &self.config.control_socket;
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)
            .with_context(|| format!("bind {}", socket.display()))?;
        set_mode(socket, 0o600)?;
        let local = tonic::transport::Server::builder()
            .add_service(ControlServer::new(ControlApi::local(self.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                shutdown_signal(),
            );
        local.await.context("serve the control socket")?;
        Ok(())
    }

    /// `swarm init`: a new cluster with this manager as its only voter.
    pub async fn init(
        self: Arc<Self>,
        request: InitClusterRequest,
    ) -> Result<(String, String, Option<UnlockKey>), StoreError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() || KeyFiles::new(&self.config.state_dir).exist() {
            return Err(StoreError::AlreadyExists(
                "this node is already part of a swarm".into(),
            ));
        }
        let result = self.clone().create_cluster(&request).await;
        if result.is_err() && self.running.get().is_none() {
            // Nothing half-made stays behind: the next init starts clean.
            let _ = std::fs::remove_dir_all(&self.config.state_dir);
            let _ = create_private_dir(&self.config.state_dir);
            let _ = std::fs::remove_dir_all(&self.config.node_dir);
        }
        result
    }

    async fn create_cluster(
        self: Arc<Self>,
        request: &InitClusterRequest,
    ) -> Result<(String, String, Option<UnlockKey>), StoreError> {
        let internal = |what: &str| {
            let what = what.to_string();
            move |e: &dyn std::fmt::Display| StoreError::Internal(format!("{what}: {e}"))
        };
        let advertise_ip = match request.advertise_addr.as_str() {
            "" => "127.0.0.1".to_string(),
            a => a.split(':').next().unwrap_or(a).to_string(),
        };
        if advertise_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(StoreError::InvalidArgument(format!(
                "advertise address {:?} is not an IP address",
                request.advertise_addr
            )));
        }
        let advertise_addr = format!("{advertise_ip}:{}", self.config.listen.port());
        let cluster_id = crate::ids::new_id();
        let node_id = crate::ids::new_id();
        let ca = RootCa::generate(&cluster_id).map_err(|e| internal("create the root CA")(&e))?;
        let (key_pem, csr_pem) =
            shoal_identity::generate_key_and_csr().map_err(|e| internal("node key")(&e))?;
        let peer = PeerIdentity {
            node_id: node_id.clone(),
            role: Role::Manager,
            cluster_id: cluster_id.clone(),
        };
        let cert_pem = ca
            .issue(
                &csr_pem,
                &peer,
                std::slice::from_ref(&advertise_ip),
                crate::ca::DEFAULT_CERT_EXPIRY,
            )
            .map_err(|e| internal("node certificate")(&e))?;
        let identity = NodeIdentity::new(key_pem, cert_pem, ca.cert_pem.clone())
            .map_err(|e| internal("node identity")(&e))?;
        identity
            .save(&self.config.node_dir)
            .map_err(|e| internal("save the node identity")(&e))?;
        let spec = request.spec.clone().unwrap_or_default();
        let unlock_key = spec.autolock.then(UnlockKey::generate);
        let wrapping = match &unlock_key {
            Some(key) => Wrapping::UnlockKey(key.clone()),
            None => Wrapping::StoredKek,
        };
        let dek = KeyFiles::new(&self.config.state_dir)
            .create(&wrapping)
            .map_err(|e| internal("create the store keys")(&e))?;
        let manager_identity = ManagerIdentity {
            cluster_id: cluster_id.clone(),
            node_id: node_id.clone(),
            raft_id: 1,
            advertise_addr: advertise_addr.clone(),
        };
        write_manager_identity(&self.config.state_dir, &manager_identity)?;
        let running = self
            .clone()
            .start(manager_identity, dek, Some(advertise_addr.clone()))
            .await?;

        let digest = ca.digest().map_err(|e| internal("CA digest")(&e))?;
        let network_id = crate::ids::new_id();
        let hostname = request.hostname.clone();
        running
            .store
            .update(|_, tx| {
                tx.put(Cluster {
                    meta: Some(Meta {
                        id: cluster_id.clone(),
                        ..Default::default()
                    }),
                    spec: Some(ClusterSpec {
                        name: if spec.name.is_empty() {
                            "default".into()
                        } else {
                            spec.name.clone()
                        },
                        heartbeat_period_ms: if spec.heartbeat_period_ms == 0 {
                            DEFAULT_HEARTBEAT.as_millis() as u32
                        } else {
                            spec.heartbeat_period_ms
                        },
                        cert_expiry_hours: 90 * 24,
                        autolock: unlock_key.is_some(),
                    }),
                    root_ca_pem: ca.cert_pem.clone(),
                    root_ca_key_pem: ca.key_pem.clone(),
                    join_tokens: Some(JoinTokens {
                        worker: JoinToken::generate(&digest).to_string(),
                        manager: JoinToken::generate(&digest).to_string(),
                    }),
                    default_network_id: network_id.clone(),
                    client_bundles: Vec::new(),
                    unlock_key: unlock_key
                        .as_ref()
                        .map(|k| k.to_string())
                        .unwrap_or_default(),
                    root_rotation: None,
                });
                let (name, subnet, gateway, vni) = DEFAULT_NETWORK;
                tx.put(Network {
                    meta: Some(Meta {
                        id: network_id.clone(),
                        ..Default::default()
                    }),
                    spec: Some(NetworkSpec {
                        name: name.into(),
                        driver: "overlay".into(),
                        ..Default::default()
                    }),
                    vni,
                    subnet: subnet.into(),
                    gateway: gateway.into(),
                });
                tx.put(Node {
                    meta: Some(Meta {
                        id: node_id.clone(),
                        ..Default::default()
                    }),
                    spec: Some(NodeSpec {
                        desired_role: NodeRole::Manager as i32,
                        availability: NodeAvailability::Active as i32,
                        ..Default::default()
                    }),
                    description: Some(NodeDescription {
                        hostname: hostname.clone(),
                        addr: advertise_ip.clone(),
                        ..Default::default()
                    }),
                    status: Some(NodeStatus {
                        state: NodeState::Unknown as i32,
                        message: "waiting for the agent".into(),
                        addr: advertise_ip.clone(),
                    }),
                    manager_status: Some(ManagerStatus {
                        raft_id: 1,
                        addr: advertise_addr.clone(),
                        leader: true,
                        reachability: "reachable".into(),
                    }),
                    role: NodeRole::Manager as i32,
                    cert_root_digest: String::new(),
                });
                Ok(())
            })
            .await?;
        Ok((cluster_id, node_id, unlock_key))
    }

    /// `swarm unlock`: opens the data key with the user's unlock key and
    /// starts the manager that restarted locked.
    pub async fn unlock(self: Arc<Self>, key: &str) -> Result<(), StoreError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() {
            return Err(StoreError::InvalidArgument(
                "this manager is not locked".into(),
            ));
        }
        let keys = KeyFiles::new(&self.config.state_dir);
        if !keys.locked() {
            return Err(StoreError::InvalidArgument(
                "this manager is not locked (or not part of a swarm)".into(),
            ));
        }
        let key = UnlockKey::parse(key).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let dek = keys
            .open(Some(&key))
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let me = read_manager_identity(&self.config.state_dir)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.clone().start(me, dek, None).await?;
        tracing::info!("manager unlocked");
        Ok(())
    }

    /// `swarm join` with a manager token: the CLI wrote this node's identity;
    /// this manager now opens its own sealed store and joins the Raft group.
    pub async fn join(self: Arc<Self>, request: JoinClusterRequest) -> Result<String, StoreError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() || KeyFiles::new(&self.config.state_dir).exist() {
            return Err(StoreError::AlreadyExists(
                "this manager is already part of a swarm".into(),
            ));
        }
        let identity = NodeIdentity::load(&self.config.node_dir).map_err(|e| {
            StoreError::InvalidArgument(format!(
                "no node identity to join with ({e}): run `shoal swarm join` with a manager token"
            ))
        })?;
        if identity.peer.role != Role::Manager {
            return Err(StoreError::InvalidArgument(
                "this node joined as a worker: a manager needs a manager token".into(),
            ));
        }
        let advertise_ip = if request.advertise_addr.is_empty() {
            local_ip_towards(&request.remote_addr).await?
        } else {
            request
                .advertise_addr
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let advertise_addr = format!("{advertise_ip}:{}", self.config.listen.port());
        let me = ManagerIdentity {
            cluster_id: identity.peer.cluster_id.clone(),
            node_id: identity.peer.node_id.clone(),
            raft_id: crate::raft::raft_id_of(&identity.peer.node_id),
            advertise_addr: advertise_addr.clone(),
        };
        let result = async {
            // Wrapped with a stored KEK at first; the key keeper re-wraps it
            // with the cluster's unlock key once it sees autolock is on.
            let dek = KeyFiles::new(&self.config.state_dir)
                .create(&Wrapping::StoredKek)
                .map_err(|e| StoreError::Internal(format!("create the store keys: {e}")))?;
            write_manager_identity(&self.config.state_dir, &me)?;
            self.clone().start(me.clone(), dek, None).await?;
            join_raft(&request.remote_addr, &advertise_addr, &identity).await
        }
        .await;
        if let Err(e) = &result {
            tracing::error!("joining the managers failed: {e}");
            if self.running.get().is_none() {
                let _ = std::fs::remove_dir_all(&self.config.state_dir);
                let _ = create_private_dir(&self.config.state_dir);
            }
        }
        result.map(|_| me.node_id)
    }

    async fn start(
        self: Arc<Self>,
        me: ManagerIdentity,
        dek: DataKey,
        bootstrap_addr: Option<String>,
    ) -> Result<Arc<Running>, StoreError> {
        let internal =
            |what: &'static str| move |e: String| StoreError::Internal(format!("{what}: {e}"));
        let db = sled::open(self.config.state_dir.join("store"))
            .map_err(|e| internal("open the store")(e.to_string()))?;
        let store = Arc::new(Store::new(crate::clock::Clock::system()));
        let sealer = dek.sealer();
        let log = LogStore::open(&db, sealer.clone())
            .map_err(|e| internal("open the raft log")(e.to_string()))?;
        let log_store = log.clone();
        let sm = StateMachine::open(&db, sealer, store.clone())
            .map_err(|e| internal("open the state")(e.to_string()))?;
        // Live: the agent renews the node's certificate in these files.
        let identity = LiveIdentity::load(&self.config.node_dir)
            .map_err(|e| internal("load the node identity")(e.to_string()))?;
        identity.spawn_watch();
        let config = raft::config(&me.cluster_id, self.config.snapshot_every);
        let contacts = raft::Contacts::default();
        let raft = Raft::new(
            me.raft_id,
            config,
            raft::Network::new(identity.clone(), contacts.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| internal("start raft")(e.to_string()))?;
        store.set_proposer(Arc::new(RaftProposer {
            raft: raft.clone(),
            identity: identity.clone(),
        }));
        if let Some(addr) = bootstrap_addr.clone() {
            let members = BTreeMap::from([(me.raft_id, BasicNode { addr })]);
            raft.initialize(members)
                .await
                .map_err(|e| internal("initialise raft")(e.to_string()))?;
        }
        if bootstrap_addr.is_some() {
            raft.wait(Some(Duration::from_secs(10)))
                .current_leader(me.raft_id, "single manager elects itself")
                .await
                .ok();
        }
        let heartbeats = Arc::new(Heartbeats::new(DEFAULT_HEARTBEAT, store.clock().clone()));
        // Writes into the state directory: stopped before a leave wipes it.
        let keykeeper = tokio::spawn(crate::keykeeper::run(
            store.clone(),
            KeyFiles::new(&self.config.state_dir),
            dek.clone(),
        ))
        .abort_handle();
        let running = Arc::new(Running {
            store: store.clone(),
            raft: raft.clone(),
            identity: identity.clone(),
            cluster_id: me.cluster_id.clone(),
            node_id: me.node_id.clone(),
            raft_id: me.raft_id,
            heartbeats: heartbeats.clone(),
            log_store,
            dek: dek.clone(),
            contacts,
            keykeeper,
        });
        self.running
            .set(running.clone())
            .map_err(|_| StoreError::Internal("the manager started twice".into()))?;
        tokio::spawn(lead_while_leader(running.clone()));
        let removed = Arc::new(tokio::sync::Notify::new());
        if identity.current().peer.role != Role::Manager {
            // Demoted while this manager was down: the node's agent already
            // holds the worker certificate the CA issued once it was out.
            tracing::warn!("this node's certificate is a worker's: it was demoted");
            removed.notify_one();
        }
        tokio::spawn(membership::notice_removal(running.clone(), removed.clone()));
        let manager = self.clone();
        let notice = removed.clone();
        tokio::spawn(async move {
            notice.notified().await;
            if let Err(e) = manager.leave(true).await {
                tracing::error!("leave after removal from raft: {e}");
            }
        });
        let listen = self.config.listen;
        let server = tonic::transport::Server::builder()
            .add_service(ControlServer::new(ControlApi::remote(self.clone())))
            .add_service(DispatcherServer::new(Dispatcher::new(
                store.clone(),
                me.cluster_id.clone(),
                heartbeats,
            )))
            .add_service(RaftServer::new(RaftService::new(
                raft,
                me.cluster_id.clone(),
                store.clone(),
                removed.clone(),
            )))
            .add_service(CertificateAuthorityServer::new(CaService::new(
                store.clone(),
            )));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| StoreError::Unavailable(format!("listen on {listen}: {e}")))?;
        let incoming = crate::tls::incoming(listener, identity.subscribe())
            .map_err(|e| internal("TLS config")(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = server.serve_with_incoming(incoming).await {
                tracing::error!("the manager's TCP server stopped: {e}");
                std::process::exit(1);
            }
        });
        Ok(running)
    }
}

/// Asks the leader (following redirects) to add this manager to Raft.
async fn join_raft(
    remote: &str,
    advertise_addr: &str,
    identity: &NodeIdentity,
) -> Result<u64, StoreError> {
    use shoal_proto::raft::v1::{raft_client::RaftClient, JoinRaftRequest};
    let mut target = remote.to_string();
    for _ in 0..5 {
        let channel = shoal_identity::connect(&target, identity)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reply = RaftClient::new(channel)
            .join_raft(JoinRaftRequest {
                addr: advertise_addr.to_string(),
            })
            .await
            .map_err(|s| {
                StoreError::Unavailable(format!("join the managers via {target}: {}", s.message()))
            })?
            .into_inner();
        if reply.raft_id != 0 {
            return Ok(reply.raft_id);
        }
        if reply.leader_addr.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            target = reply.leader_addr;
        }
    }
    Err(StoreError::Unavailable(format!(
        "no leader accepted this manager (asked {remote})"
    )))
}

/// The local address the kernel would use to reach `remote` (host:port).
async fn local_ip_towards(remote: &str) -> Result<String, StoreError> {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    socket
        .connect(remote)
        .await
        .map_err(|e| StoreError::InvalidArgument(format!("no route to {remote}: {e}")))?;
    socket
        .local_addr()
        .map(|a| a.ip().to_string())
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Runs the leader's components (under their supervisor) while this
/// manager is the Raft leader.
async fn lead_while_leader(running: Arc<Running>) {
    let mut metrics = running.raft.metrics();
    let mut supervisor: Option<Supervisor> = None;
    let restarts = Restarts::default();
    loop {
        let leading = metrics.borrow().current_leader == Some(running.raft_id);
        match (leading, supervisor.is_some()) {
            (true, false) => {
                let specs = crate::leader::components();
                let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                tracing::info!("leading: starting {}", names.join(", "));
                let env = LeaderEnv {
                    store: running.store.clone(),
                    heartbeats: running.heartbeats.clone(),
                    membership: Arc::new(raft::Group {
                        raft: running.raft.clone(),
                        contacts: running.contacts.clone(),
                        identity: running.identity.clone(),
                    }),
                };
                supervisor = Some(Supervisor::start(env, specs, restarts.clone()));
            }
            (false, true) => {
                tracing::info!("no longer leading: stopping leader components");
                supervisor = None;
            }
            _ => {}
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn read_manager_identity(dir: &std::path::Path) -> anyhow::Result<ManagerIdentity> {
    let path = dir.join(MANAGER_STATE_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parse {}: {e}", path.display()))
}

fn write_manager_identity(dir: &std::path::Path, me: &ManagerIdentity) -> Result<(), StoreError> {
    let path = dir.join(MANAGER_STATE_FILE);
    let text = serde_json::to_string_pretty(me).map_err(|e| StoreError::Internal(e.to_string()))?;
    std::fs::write(&path, text)
        .map_err(|e| StoreError::Internal(format!("write {}: {e}", path.display())))
}

fn create_private_dir(dir: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| anyhow::anyhow!("chmod {}: {e}", path.display()))
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
