//! The node lifecycle of a manager: `swarm init`, joining the managers,
//! `swarm unlock`, and opening the sealed store and Raft at start-up
//! (here); leaving and `--force-new-cluster` (`leave.rs`).

mod leave;

use super::*;

/// sled's page cache: enough for the Raft log's recent entries, which
/// followers catching up read back.
const SLED_CACHE_BYTES: u64 = 16 << 20;

impl Manager {
    /// `swarm init`: a new cluster with this manager as its only voter.
    pub async fn init(
        self: Arc<Self>,
        request: InitClusterRequest,
    ) -> Result<(String, String, Option<UnlockKey>), ManagerError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() || KeyFiles::new(&self.config.state_dir).exist() {
            return Err(
                StoreError::AlreadyExists("this node is already part of a swarm".into()).into(),
            );
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
    ) -> Result<(String, String, Option<UnlockKey>), ManagerError> {
        let advertise_ip = match request.advertise_addr.as_str() {
            "" => "127.0.0.1".to_string(),
            a => a.split(':').next().unwrap_or(a).to_string(),
        };
        if advertise_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(StoreError::InvalidArgument(format!(
                "advertise address {:?} is not an IP address",
                request.advertise_addr
            ))
            .into());
        }
        let advertise_addr = format!("{advertise_ip}:{}", self.config.listen.port());
        let spec = request.spec.clone().unwrap_or_default();
        let cert_expiry_hours = match spec.cert_expiry_hours {
            0 => (crate::ca::DEFAULT_CERT_EXPIRY.as_secs() / 3600) as u32,
            hours => hours,
        };
        let availability = crate::ca::joiner::availability(request.availability)?;
        let cluster_id = crate::ids::new_id();
        let node_id = crate::ids::new_id();
        let ca = RootCa::generate(&cluster_id)
            .map_err(|e| ManagerError::other("create the root CA", e))?;
        let (key_pem, csr_pem) = shoal_identity::generate_key_and_csr()
            .map_err(|e| ManagerError::other("node key", e))?;
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
                Duration::from_secs(u64::from(cert_expiry_hours) * 3600),
            )
            .map_err(|e| ManagerError::other("node certificate", e))?;
        let identity = NodeIdentity::new(key_pem, cert_pem, ca.cert_pem.clone())
            .map_err(|e| ManagerError::other("node identity", e))?;
        identity
            .save(&self.config.node_dir)
            .map_err(|e| ManagerError::other("save the node identity", e))?;
        let unlock_key = spec.autolock.then(UnlockKey::generate);
        let wrapping = match &unlock_key {
            Some(key) => Wrapping::UnlockKey(key.clone()),
            None => Wrapping::StoredKek,
        };
        let dek = KeyFiles::new(&self.config.state_dir)
            .create(&wrapping)
            .map_err(|e| ManagerError::other("create the store keys", e))?;
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

        let digest = ca
            .digest()
            .map_err(|e| ManagerError::other("CA digest", e))?;
        let network_id = crate::ids::new_id();
        let hostname = request.hostname.clone();
        running
            .store
            .update(|_, tx| {
                let cluster = Cluster {
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
                        cert_expiry_hours,
                        autolock: unlock_key.is_some(),
                        // Swarm-like default (12 h), read by netd from 0.
                        network_key_rotation_ms: 0,
                        task_history_limit: spec.task_history_limit,
                        // Written out, so every manager follows the same
                        // interval whatever its own --snapshot-every.
                        snapshot_interval: if spec.snapshot_interval == 0 {
                            self.config.snapshot_every
                        } else {
                            spec.snapshot_interval
                        },
                        keep_old_snapshots: spec.keep_old_snapshots,
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
                    default_addr_pool: request.default_addr_pool.clone(),
                    default_addr_pool_mask_length: request.default_addr_pool_mask_length,
                };
                tx.put(ingress_network(&network_id, &cluster)?);
                tx.put(cluster);
                tx.put(Node {
                    meta: Some(Meta {
                        id: node_id.clone(),
                        ..Default::default()
                    }),
                    spec: Some(NodeSpec {
                        desired_role: NodeRole::Manager as i32,
                        availability: availability as i32,
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
                        addr: if request.data_path_addr.is_empty() {
                            advertise_ip.clone()
                        } else {
                            request.data_path_addr.clone()
                        },
                    }),
                    manager_status: Some(ManagerStatus {
                        raft_id: 1,
                        addr: advertise_addr.clone(),
                        leader: true,
                        reachability: "reachable".into(),
                    }),
                    role: NodeRole::Manager as i32,
                    cert_root_digest: String::new(),
                    wireguard_public_key: String::new(),
                    ingress_address: String::new(),
                    data_path_addr: request.data_path_addr.clone(),
                    ..Default::default()
                });
                Ok(())
            })
            .await?;
        Ok((cluster_id, node_id, unlock_key))
    }

    /// `swarm unlock`: opens the data key with the user's unlock key and
    /// starts the manager that restarted locked.
    pub async fn unlock(self: Arc<Self>, key: &str) -> Result<(), ManagerError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() {
            return Err(StoreError::InvalidArgument("this manager is not locked".into()).into());
        }
        let keys = KeyFiles::new(&self.config.state_dir);
        if !keys.locked() {
            return Err(StoreError::InvalidArgument(
                "this manager is not locked (or not part of a swarm)".into(),
            )
            .into());
        }
        let key = UnlockKey::parse(key).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let dek = keys
            .open(Some(&key))
            .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let me = read_manager_identity(&self.config.state_dir)?;
        self.clone().start(me, dek, None).await?;
        tracing::info!("manager unlocked");
        Ok(())
    }

    /// `swarm join` with a manager token: the CLI wrote this node's identity;
    /// this manager now opens its own sealed store and joins the Raft group.
    pub async fn join(
        self: Arc<Self>,
        request: JoinClusterRequest,
    ) -> Result<String, ManagerError> {
        let _serial = self.init_lock.lock().await;
        if self.running.get().is_some() || KeyFiles::new(&self.config.state_dir).exist() {
            return Err(StoreError::AlreadyExists(
                "this manager is already part of a swarm".into(),
            )
            .into());
        }
        let identity = NodeIdentity::load(&self.config.node_dir).map_err(|e| {
            StoreError::InvalidArgument(format!(
                "no node identity to join with ({e}): run `shoal swarm join` with a manager token"
            ))
        })?;
        if identity.peer.role != Role::Manager {
            return Err(StoreError::InvalidArgument(
                "this node joined as a worker: a manager needs a manager token".into(),
            )
            .into());
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
                .context("create the store keys")?;
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

    pub(super) async fn start(
        self: Arc<Self>,
        me: ManagerIdentity,
        dek: DataKey,
        bootstrap_addr: Option<String>,
    ) -> Result<Arc<Running>, ManagerError> {
        // Readers read the in-memory state, never sled: its page cache
        // (1 GiB by default, filled by every write) only costs memory.
        let db = sled::Config::new()
            .path(self.config.state_dir.join("store"))
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|e| ManagerError::other("open the store", e))?;
        let store = Arc::new(Store::new(crate::clock::Clock::system()));
        let sealer = dek.sealer();
        let log = LogStore::open(&db, sealer.clone())
            .map_err(|e| ManagerError::other("open the raft log", e))?;
        let log_store = log.clone();
        let sm = StateMachine::open(&db, sealer, store.clone())
            .await
            .map_err(|e| ManagerError::other("open the state", e))?;
        let proposed = sm.proposed();
        // Live: the agent renews the node's certificate in these files.
        let identity = LiveIdentity::load(&self.config.node_dir)
            .map_err(|e| ManagerError::other("load the node identity", e))?;
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
        .map_err(|e| ManagerError::other("start raft", e))?;
        store.set_proposer(Arc::new(RaftProposer {
            raft: raft.clone(),
            identity: identity.clone(),
            proposed,
        }));
        if let Some(addr) = bootstrap_addr.clone() {
            let members = BTreeMap::from([(me.raft_id, BasicNode { addr })]);
            raft.initialize(members)
                .await
                .map_err(|e| ManagerError::other("initialise raft", e))?;
        }
        if bootstrap_addr.is_some() {
            raft.wait(Some(Duration::from_secs(10)))
                .current_leader(me.raft_id, "single manager elects itself")
                .await
                .ok();
        }
        tokio::spawn(raft::snapshot_policy::run(
            raft.clone(),
            store.clone(),
            self.config.snapshot_every,
        ));
        let heartbeats = Arc::new(Heartbeats::new(store.clone(), DEFAULT_HEARTBEAT));
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
            logs: crate::logbroker::LogBroker::new(),
            log_store,
            dek: dek.clone(),
            contacts,
            keykeeper,
            snapshot_every: self.config.snapshot_every,
        });
        self.running
            .set(running.clone())
            .map_err(|_| StoreError::Internal("the manager started twice".into()))?;
        tokio::spawn(super::leadership::lead_while_leader(running.clone()));
        let removed = Arc::new(tokio::sync::Notify::new());
        if identity.current().peer.role != Role::Manager {
            // Demoted while this manager was down: the node's agent already
            // holds the worker certificate the CA issued once it was out.
            tracing::warn!("this node's certificate is a worker's: it was demoted");
            removed.notify_one();
        }
        tokio::spawn(leave::notice_removal(running.clone(), removed.clone()));
        let manager = self.clone();
        let notice = removed.clone();
        tokio::spawn(async move {
            notice.notified().await;
            if let Err(e) = manager.leave(true).await {
                tracing::error!("leave after removal from raft: {e}");
            }
        });
        servers::serve_tcp(self.clone(), self.config.listen, &running, removed.clone()).await?;
        Ok(running)
    }
}

/// Asks the leader (following redirects) to add this manager to Raft.
async fn join_raft(
    remote: &str,
    advertise_addr: &str,
    identity: &NodeIdentity,
) -> Result<u64, ManagerError> {
    use shoal_proto::raft::v1::{raft_client::RaftClient, JoinRaftRequest};
    let mut target = remote.to_string();
    for _ in 0..5 {
        let channel = shoal_identity::connect(&target, identity)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reply = RaftClient::new(channel)
            .max_decoding_message_size(shoal_proto::MAX_MESSAGE_BYTES)
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
    Err(StoreError::Unavailable(format!("no leader accepted this manager (asked {remote})")).into())
}

/// The local address the kernel would use to reach `remote` (host:port).
async fn local_ip_towards(remote: &str) -> Result<String, ManagerError> {
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .context("open a socket to find the local address")?;
    socket
        .connect(remote)
        .await
        .map_err(|e| StoreError::InvalidArgument(format!("no route to {remote}: {e}")))?;
    socket
        .local_addr()
        .map(|a| a.ip().to_string())
        .context("the local address towards the managers")
}
