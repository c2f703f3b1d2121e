//! The node's data plane: ties the kernel-object modules together and owns
//! the desired state (networks of the last view, attached tasks, published
//! ports). Every change runs under one lock, validates its input before it
//! touches the kernel, and is idempotent, so the managers and the agent can
//! simply repeat themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_proto::dispatcher::v1::{NetworkView, ServiceEndpoints};
use shoal_proto::netd::v1::{AttachTaskRequest, TaskAttachment};
use tokio::sync::Mutex;

use crate::attachment::AttachmentStore;
use crate::dns::DnsServer;
use crate::error::{Error, Result};
use crate::mesh_return;
use crate::netns::{self, NetnsDir};
use crate::network::{self, OverlayNetwork};
use crate::nft::task::{self, MeshIn, TaskTable};
use crate::nft::{self, NatNetwork, Ruleset};
use crate::peers::{self, RemoteTasks};
use crate::veth::{self, TaskVeth};
use crate::wireguard::{self, Mesh, MeshConfig, MeshPeer, NodeKey};
use crate::{balancing, bridge, link, names, sysctl, vxlan};

/// How old the WireGuard key may get when the cluster says nothing.
const DEFAULT_KEY_ROTATION: Duration = Duration::from_secs(12 * 3600);

/// Sysctls of the host namespace netd depends on: forwarding between the
/// bridges and the outside, and DNAT of loopback traffic to the bridges.
const HOST_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.route_localnet", "1"),
];

pub struct Dataplane {
    /// The namespace netd was opened in: bridges, veth host ends, the table.
    host_ns: File,
    host: rtnetlink::Handle,
    netns: NetnsDir,
    records: AttachmentStore,
    /// Answers the tasks' names on every local network's gateway.
    dns: DnsServer,
    dns_port: u16,
    /// The node's WireGuard mesh: up while an encrypted network is built
    /// here, gone otherwise (plain networks pay nothing for it).
    mesh: Mesh,
    /// Made on this node, never leaves it; its public half goes to the
    /// managers. Replaced when it is older than the cluster's rotation.
    key: std::sync::Mutex<NodeKey>,
    /// Told when the key was replaced: the watch announces the new one.
    rekeyed: tokio::sync::Notify,
    state_dir: PathBuf,
    state: Mutex<State>,
}

/// How netd's embedded DNS server runs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Where it answers on each gateway (53; tests pick another).
    pub dns_port: u16,
    /// Where names no task or service has go, for tasks without their own
    /// `--dns` (normally the node's resolv.conf); empty: nowhere (NXDOMAIN).
    pub dns_upstreams: Vec<SocketAddr>,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            dns_port: 53,
            dns_upstreams: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Networks of the last view.
    view_networks: BTreeMap<String, OverlayNetwork>,
    /// The last view's node id, nodes and task addresses: the overlays'
    /// peers.
    view_peers: ViewPeers,
    /// The node's underlay MTU, once known (from its address in the view).
    underlay_mtu: Option<u32>,
    /// The mesh as last ensured, with the key it runs on (`None`: down).
    mesh: Option<(String, Vec<MeshPeer>)>,
    /// The cluster's key rotation period (from the view; 0: 12 hours).
    key_rotation_ms: u64,
    attachments: BTreeMap<String, TaskAttachment>,
    /// The services of the last view; `None` until the first view.
    view_services: Option<Vec<ServiceEndpoints>>,
    /// Tasks about to stop: out of every load balancer already, so that no
    /// new connection reaches a container that is going away.
    draining: BTreeSet<String>,
    /// The last batch applied, to skip rewrites that change nothing.
    last_nft: Option<String>,
    /// Per attached task, what its own table holds now.
    task_tables: BTreeMap<String, TaskTable>,
    /// Per attached task on ingress, the nodes its mesh routes lead to.
    task_mesh_routes: BTreeMap<String, Vec<Ipv4Addr>>,
}

#[derive(Default)]
struct ViewPeers {
    node_id: String,
    /// Ready nodes: node id -> underlay address.
    nodes: BTreeMap<String, IpAddr>,
    /// Network id -> every live task address on it, with its node.
    addresses: BTreeMap<String, Vec<(Ipv4Addr, String)>>,
    /// Node id -> its own address on the ingress network.
    ingress: BTreeMap<String, Ipv4Addr>,
    /// Node id -> its WireGuard public key.
    keys: BTreeMap<String, String>,
}

impl ViewPeers {
    fn from_view(view: &NetworkView) -> ViewPeers {
        let nodes = view
            .nodes
            .iter()
            .filter_map(|n| Some((n.node_id.clone(), n.addr.parse().ok()?)))
            .collect();
        let mut addresses: BTreeMap<String, Vec<(Ipv4Addr, String)>> = BTreeMap::new();
        for a in &view.addresses {
            if let Ok(ip) = a.address.parse() {
                addresses
                    .entry(a.network_id.clone())
                    .or_default()
                    .push((ip, a.node_id.clone()));
            }
        }
        let ingress = view
            .nodes
            .iter()
            .filter_map(|n| Some((n.node_id.clone(), n.ingress_address.parse().ok()?)))
            .collect();
        let keys = view
            .nodes
            .iter()
            .filter(|n| !n.wireguard_public_key.is_empty())
            .map(|n| (n.node_id.clone(), n.wireguard_public_key.clone()))
            .collect();
        ViewPeers {
            node_id: view.node_id.clone(),
            nodes,
            addresses,
            ingress,
            keys,
        }
    }

    /// The tasks of `network` on other ready nodes, with their node's VTEP;
    /// on the ingress network also the other nodes' own addresses (the
    /// sources of the connections their routing mesh forwards here).
    fn remote_tasks(&self, network: &OverlayNetwork) -> RemoteTasks {
        let nodes_on_ingress = self
            .ingress
            .iter()
            .filter(|_| network.ingress)
            .map(|(node, ip)| (*ip, node));
        self.addresses
            .get(&network.id)
            .into_iter()
            .flatten()
            .map(|(ip, node)| (*ip, node))
            .chain(nodes_on_ingress)
            .filter(|(_, node)| **node != self.node_id)
            .filter_map(|(ip, node)| {
                let vtep = if network.encrypted {
                    // Through the mesh: the peer's WireGuard address.
                    IpAddr::V6(wireguard::mesh_addr(node))
                } else {
                    *self.nodes.get(node)?
                };
                self.nodes.contains_key(node).then_some((ip, vtep))
            })
            .collect()
    }

    fn own_addr(&self) -> Option<IpAddr> {
        self.nodes.get(&self.node_id).copied()
    }

    /// Every other ready node that announced a WireGuard key.
    fn mesh_peers(&self) -> Vec<MeshPeer> {
        self.keys
            .iter()
            .filter(|(node, _)| **node != self.node_id)
            .filter_map(|(node, key)| {
                Some(MeshPeer {
                    node_id: node.clone(),
                    public_key: key.clone(),
                    endpoint: SocketAddr::new(
                        *self.nodes.get(node)?,
                        wireguard::DEFAULT_LISTEN_PORT,
                    ),
                })
            })
            .collect()
    }
}

impl State {
    /// Networks this node builds: those its tasks use (an attach may come
    /// before the view names the network) and the routing mesh's, with
    /// the node's MTU.
    fn networks(&self) -> BTreeMap<String, OverlayNetwork> {
        let mut nets: BTreeMap<String, OverlayNetwork> = self
            .view_networks
            .iter()
            .filter(|(_, n)| n.ingress)
            .map(|(id, n)| (id.clone(), n.clone()))
            .collect();
        for record in self.attachments.values() {
            for att in &record.networks {
                if let Some(net) = self.view_networks.get(&att.network_id) {
                    nets.entry(net.id.clone()).or_insert_with(|| net.clone());
                } else if let Ok(net) = OverlayNetwork::from_attachment(att) {
                    nets.entry(net.id.clone()).or_insert(net);
                }
            }
        }
        for net in nets.values_mut() {
            self.as_built_here(net);
        }
        nets
    }

    /// Fills in what this node decides about a network: its MTU, the
    /// node's own address on ingress, the mesh source of an encrypted one.
    fn as_built_here(&self, net: &mut OverlayNetwork) {
        net.mtu = network::mtu_over(self.underlay_mtu, net.encrypted);
        if net.ingress {
            net.node_address = self
                .view_peers
                .ingress
                .get(&self.view_peers.node_id)
                .copied();
        }
        if net.encrypted && !self.view_peers.node_id.is_empty() {
            net.vtep_local = Some(wireguard::mesh_addr(&self.view_peers.node_id));
        }
    }

    /// The ingress network as this node builds it.
    fn ingress_network(&self) -> Option<OverlayNetwork> {
        self.networks().into_values().find(|n| n.ingress)
    }
}

impl Dataplane {
    /// Opens the data plane in the calling thread's network namespace and
    /// adopts what a previous netd left: records whose namespace still
    /// exists are kept as they are (running tasks keep their network);
    /// leftovers of tasks whose namespace is gone are removed.
    pub async fn open(state_dir: &Path) -> Result<Dataplane> {
        Dataplane::open_with(state_dir, DataplaneConfig::default()).await
    }

    /// As [`Dataplane::open`], with the DNS server's settings.
    pub async fn open_with(state_dir: &Path, config: DataplaneConfig) -> Result<Dataplane> {
        let host_ns = netns::current()?;
        let host = netns::netlink_in(&host_ns).await?;
        let netns = NetnsDir::prepare(state_dir.join("netns"))?;
        let records = AttachmentStore::open(state_dir.join("attachments"))?;
        for (key, value) in HOST_SYSCTLS {
            sysctl::set(&host_ns, key, value).await?;
        }
        let mesh = Mesh::new(
            host_ns
                .try_clone()
                .map_err(Error::io("duplicate", "the host namespace handle"))?,
        );
        let dp = Dataplane {
            host_ns,
            host,
            netns,
            records,
            dns: DnsServer::new(config.dns_upstreams),
            dns_port: config.dns_port,
            mesh,
            key: std::sync::Mutex::new(NodeKey::load_or_create(state_dir)?),
            rekeyed: tokio::sync::Notify::new(),
            state_dir: state_dir.to_path_buf(),
            state: Mutex::new(State::default()),
        };
        dp.adopt().await?;
        Ok(dp)
    }

    async fn adopt(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let records = self.records.load_all()?;
        for (task_id, record) in records {
            if netns::is_mounted(&self.netns.path(&task_id)) {
                state.attachments.insert(task_id, record);
            } else {
                tracing::info!(task = %task_id, "namespace is gone; removing the task's leftovers");
                if let Err(e) = self.remove_task(&task_id, record.networks.len()).await {
                    tracing::warn!(task = %task_id, error = %e, "cleanup incomplete");
                }
            }
        }
        for task_id in self.netns.list()? {
            if !state.attachments.contains_key(&task_id)
                && names::validate_id("task id", &task_id).is_ok()
            {
                // An attach that never finished (netd stopped half-way).
                tracing::info!(task = %task_id, "removing an unfinished attachment");
                if let Err(e) = self.remove_task(&task_id, names::MAX_TASK_NETWORKS).await {
                    tracing::warn!(task = %task_id, error = %e, "cleanup incomplete");
                }
            }
        }
        tracing::info!(
            tasks = state.attachments.len(),
            "adopted existing attachments"
        );
        self.sync_nft(&mut state).await
    }

    /// Where a task's namespace is (or would be) mounted.
    pub fn netns_path(&self, task_id: &str) -> PathBuf {
        self.netns.path(task_id)
    }

    /// Converges the node to a complete network view: a bridge and VXLAN
    /// device per network, NAT and published ports in the nft table. Bridges
    /// of networks that left the view are removed once no task uses them.
    /// Every part is attempted; the errors are returned together.
    pub async fn apply_view(&self, view: &NetworkView) -> Result<()> {
        let mut state = self.state.lock().await;
        let mut errors = Vec::new();
        let mut networks = BTreeMap::new();
        for n in &view.networks {
            match OverlayNetwork::from_view(n) {
                Ok(net) => {
                    networks.insert(net.id.clone(), net);
                }
                Err(e) => errors.push(e),
            }
        }
        state.view_networks = networks;
        state.view_peers = ViewPeers::from_view(view);
        state.key_rotation_ms = view.network_key_rotation_ms;
        if state.underlay_mtu.is_none() {
            // A loopback address says nothing about the wire (its MTU is
            // 64 KiB): wait for the node's real address.
            if let Some(addr) = state.view_peers.own_addr().filter(|a| !a.is_loopback()) {
                match link::mtu_of_address(&self.host, addr).await {
                    Ok(mtu) => state.underlay_mtu = mtu,
                    Err(e) => errors.push(e),
                }
            }
        }
        let wanted = state.networks();
        if let Err(e) = self.sync_mesh(&mut state, &wanted).await {
            errors.push(e);
        }
        for net in wanted.values() {
            if let Err(e) = self.ensure_network(&mut state, net).await {
                errors.push(e);
            }
        }
        if let Err(e) = self.remove_unused_networks(&wanted).await {
            errors.push(e);
        }
        state.view_services = Some(view.services.clone());
        if let Err(e) = self.sync_nft(&mut state).await {
            errors.push(e);
        }
        if let Err(e) = self.sync_vips(&mut state).await {
            errors.push(e);
        }
        if let Err(e) = self.sync_dns(&state).await {
            errors.push(e);
        }
        Error::collect(errors)
    }

    /// Builds the network's bridge and VXLAN device and programs its
    /// remote tasks; returns the bridge's index.
    async fn ensure_network(&self, state: &mut State, net: &OverlayNetwork) -> Result<u32> {
        let br = bridge::apply(&self.host, net).await?;
        let vx = vxlan::apply(&self.host, net, br.index).await?;
        // Always against what the device holds, never against what was
        // last written: a device re-made (its source moved to the mesh) or
        // a neighbour table flushed by the kernel starts empty, and a cache
        // of our own writes once left a VM's encrypted network without its
        // neighbour entries. Entries already right are not touched.
        let remote = state.view_peers.remote_tasks(net);
        peers::sync(&self.host, vx.index, &remote).await?;
        Ok(br.index)
    }

    async fn remove_unused_networks(
        &self,
        wanted: &BTreeMap<String, OverlayNetwork>,
    ) -> Result<()> {
        let mut errors = Vec::new();
        for (id, br) in bridge::list_owned(&self.host).await? {
            if wanted.contains_key(&id) {
                continue;
            }
            tracing::info!(network = %id, bridge = %br.name, "removing network no longer in use");
            if let Err(e) = vxlan::teardown(&self.host, &names::vxlan_name(&id)).await {
                errors.push(e);
            }
            if let Err(e) = bridge::teardown(&self.host, &br.name).await {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    /// Gives the task a network namespace with one interface per network.
    /// Attaching an attached task again re-checks and repairs it. On error,
    /// whatever this call created is removed again.
    pub async fn attach_task(&self, req: &AttachTaskRequest) -> Result<PathBuf> {
        let task_id = req.task_id.as_str();
        names::validate_id("task id", task_id)?;
        if req.networks.len() > names::MAX_TASK_NETWORKS {
            return Err(Error::invalid(
                format!("task {task_id}"),
                format!(
                    "{} networks (at most {})",
                    req.networks.len(),
                    names::MAX_TASK_NETWORKS
                ),
            ));
        }
        let mut state = self.state.lock().await;
        let plan = plan_interfaces(&state, req)?;
        let prefix = names::veth_host_name(task_id, 0);
        if let Some(other) = state
            .attachments
            .keys()
            .find(|other| *other != task_id && names::veth_host_name(other, 0) == prefix)
        {
            return Err(Error::invalid(
                format!("task {task_id}"),
                format!("its interface name {prefix} is already used by task {other}"),
            ));
        }

        let ns_created = self.netns.ensure(task_id).await?;
        if ns_created {
            // A new namespace has no table.
            state
                .task_tables
                .insert(task_id.to_string(), TaskTable::default());
        }
        let mut created_veths = Vec::new();
        let result = self
            .attach_interfaces(&mut state, task_id, &plan, &mut created_veths)
            .await;
        if let Err(e) = result {
            for name in created_veths.iter().rev() {
                if let Err(e) = veth::teardown(&self.host, name).await {
                    tracing::warn!(veth = %name, error = %e, "rollback: veth not removed");
                }
            }
            if ns_created {
                if let Err(e) = self.netns.remove(task_id) {
                    tracing::warn!(task = %task_id, error = %e, "rollback: namespace not removed");
                }
            }
            return Err(e);
        }

        // Interfaces of networks the task had before and no longer has.
        let before = state
            .attachments
            .get(task_id)
            .map_or(0, |r| r.networks.len());
        for i in plan.len()..before {
            if let Err(e) = veth::teardown(&self.host, &names::veth_host_name(task_id, i)).await {
                tracing::warn!(task = %task_id, error = %e, "stale veth not removed");
            }
        }
        let path = self.netns.path(task_id);
        let record = TaskAttachment {
            task_id: task_id.to_string(),
            netns_path: path.to_string_lossy().into_owned(),
            networks: req.networks.clone(),
            dns_upstreams: req.dns_upstreams.clone(),
            hostname: req.hostname.clone(),
        };
        self.records.save(&record)?;
        state.attachments.insert(task_id.to_string(), record);
        self.sync_nft(&mut state).await?;
        // Before the container starts: its first connection to a VIP
        // must already be balanced, its first name answered.
        self.sync_vips(&mut state).await?;
        self.sync_dns(&state).await?;
        tracing::info!(task = %task_id, netns = %path.display(), "task attached");
        Ok(path)
    }

    async fn attach_interfaces(
        &self,
        state: &mut State,
        task_id: &str,
        plan: &[(OverlayNetwork, TaskVeth)],
        created: &mut Vec<String>,
    ) -> Result<()> {
        if plan.iter().any(|(n, _)| n.encrypted) {
            // The VXLAN device of an encrypted network sends from the mesh.
            let mut nets = state.networks();
            for (n, _) in plan {
                nets.entry(n.id.clone()).or_insert_with(|| n.clone());
            }
            self.sync_mesh(state, &nets).await?;
        }
        let task_ns = self.netns.open(task_id)?;
        let task = netns::netlink_in(&task_ns).await?;
        for (net, veth) in plan {
            let bridge = self.ensure_network(state, net).await?;
            let (_, made) = veth.apply(&self.host, &task_ns, &task, bridge).await?;
            if made {
                created.push(veth.host_name.clone());
            }
        }
        Ok(())
    }

    /// Removes the task's veths, namespace and record. Detaching an unknown
    /// task is fine; every step is attempted and the errors are returned
    /// together.
    pub async fn detach_task(&self, task_id: &str) -> Result<()> {
        names::validate_id("task id", task_id)?;
        let mut state = self.state.lock().await;
        let count = state
            .attachments
            .get(task_id)
            .map_or(names::MAX_TASK_NETWORKS, |r| r.networks.len());
        let removed = self.remove_task(task_id, count).await;
        if removed.is_ok() {
            state.attachments.remove(task_id);
            state.draining.remove(task_id);
            state.task_tables.remove(task_id);
            state.task_mesh_routes.remove(task_id);
            tracing::info!(task = %task_id, "task detached");
        }
        let synced = self.sync_nft(&mut state).await;
        let named = self.sync_dns(&state).await;
        removed.and(synced).and(named)
    }

    async fn remove_task(&self, task_id: &str, interfaces: usize) -> Result<()> {
        let mut errors = Vec::new();
        for i in 0..interfaces.max(1) {
            if let Err(e) = veth::teardown(&self.host, &names::veth_host_name(task_id, i)).await {
                errors.push(e);
            }
        }
        if let Err(e) = self.netns.remove(task_id) {
            errors.push(e);
        }
        if errors.is_empty() {
            // The record goes last: while anything is left, it says what.
            if let Err(e) = self.records.remove(task_id) {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    /// Takes the task out of every published port's backends now, ahead
    /// of its stop; the managers' next view drops it for good.
    pub async fn drain_task(&self, task_id: &str) -> Result<()> {
        names::validate_id("task id", task_id)?;
        let mut state = self.state.lock().await;
        if state.draining.insert(task_id.to_string()) {
            tracing::info!(task = %task_id, "task drained from the load balancers");
        }
        self.sync_nft(&mut state).await?;
        self.sync_vips(&mut state).await?;
        self.sync_dns(&state).await
    }

    /// The public key of the node's WireGuard mesh, announced to the
    /// managers (always: a peer may need it before this node builds an
    /// encrypted network).
    fn current_key(&self) -> NodeKey {
        self.key.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves when the node's WireGuard key was replaced (the managers
    /// must hear the new public key).
    pub async fn rekeyed(&self) {
        self.rekeyed.notified().await
    }

    /// Makes a new WireGuard key when the current one is older than the
    /// cluster's rotation period, puts it on the mesh (its peers learn it
    /// from the managers) and tells the watch to announce it. True when it
    /// rotated.
    pub async fn rotate_key_if_due(&self) -> Result<bool> {
        let mut state = self.state.lock().await;
        let period = match state.key_rotation_ms {
            0 => DEFAULT_KEY_ROTATION,
            ms => Duration::from_millis(ms),
        };
        let path = NodeKey::path(&self.state_dir);
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if age < period {
            return Ok(false);
        }
        self.rotate_key(&mut state).await?;
        Ok(true)
    }

    /// Replaces the node's WireGuard key now.
    pub async fn rotate_key_now(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.rotate_key(&mut state).await
    }

    async fn rotate_key(&self, state: &mut State) -> Result<()> {
        let key = NodeKey::rotate(&self.state_dir)?;
        tracing::info!(public_key = %key.public_key(), "WireGuard key rotated");
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = key;
        if state.mesh.is_some() {
            let networks = state.networks();
            self.sync_mesh(state, &networks).await?;
        }
        self.rekeyed.notify_one();
        Ok(())
    }

    pub async fn wireguard_public_key(&self) -> String {
        self.current_key().public_key()
    }

    pub async fn list_attachments(&self) -> Vec<TaskAttachment> {
        self.state
            .lock()
            .await
            .attachments
            .values()
            .cloned()
            .collect()
    }

    /// Brings the WireGuard mesh up (peers: every other ready node) while
    /// an encrypted network is built here, and down when none is.
    async fn sync_mesh(
        &self,
        state: &mut State,
        networks: &BTreeMap<String, OverlayNetwork>,
    ) -> Result<()> {
        let needed = networks.values().any(|n| n.encrypted) && !state.view_peers.node_id.is_empty();
        if !needed {
            if state.mesh.take().is_some() {
                tracing::info!("no encrypted network here any more: WireGuard mesh down");
                self.mesh.teardown().await?;
            }
            return Ok(());
        }
        let peers = state.view_peers.mesh_peers();
        let key = self.current_key();
        if state.mesh.as_ref() == Some(&(key.public_key(), peers.clone())) {
            return Ok(());
        }
        let config = MeshConfig {
            node_id: state.view_peers.node_id.clone(),
            key: key.clone(),
            listen_port: wireguard::DEFAULT_LISTEN_PORT,
            underlay_mtu: state.underlay_mtu.unwrap_or(1500),
            peers: peers.clone(),
        };
        let report = self.mesh.ensure(&config).await?;
        for refused in &report.refused {
            tracing::warn!(node = %refused.node_id, error = %refused.error, "WireGuard peer refused");
        }
        // A new peer (a node that joined, or rotated its key) gets a
        // handshake now rather than at the first packet or WireGuard's
        // 5 s retry: one empty datagram to its mesh address starts it.
        if !report.added.is_empty() {
            let nudge = tokio::net::UdpSocket::bind("[::]:0").await;
            for node in &report.added {
                let to = SocketAddr::new(IpAddr::V6(wireguard::mesh_addr(node)), 9);
                if let Ok(socket) = &nudge {
                    let _ = socket.send_to(&[], to).await;
                }
            }
        }
        tracing::info!(
            backend = %report.backend,
            peers = peers.len(),
            added = report.added.len(),
            removed = report.removed.len(),
            "WireGuard mesh up to date"
        );
        state.mesh = Some((key.public_key(), peers));
        Ok(())
    }

    /// Listens on the gateway of every network built here (and on no
    /// other), and answers from a table of the current view and tasks.
    async fn sync_dns(&self, state: &State) -> Result<()> {
        let networks = state.networks();
        let services = backend_services(state);
        let table = crate::discovery::name_table(&services, &state.attachments, &networks);
        self.dns.set_table(std::sync::Arc::new(table));
        let wanted: BTreeSet<SocketAddr> = networks
            .values()
            .map(|n| SocketAddr::V4(SocketAddrV4::new(n.gateway, self.dns_port)))
            .collect();
        let mut errors = Vec::new();
        for addr in self.dns.listening() {
            if !wanted.contains(&addr) {
                self.dns.unlisten(addr).await;
            }
        }
        for addr in wanted {
            if let Err(e) = self.dns.listen(addr).await {
                errors.push(e);
            }
        }
        Error::collect(errors)
    }

    /// Rewrites the VIP table of every attached task whose VIPs changed.
    async fn sync_vips(&self, state: &mut State) -> Result<()> {
        let mut errors = Vec::new();
        let networks = state.networks();
        let mesh_nodes: Vec<Ipv4Addr> = state.view_peers.ingress.values().copied().collect();
        let tasks: Vec<(String, TaskTable, Option<usize>)> = state
            .attachments
            .iter()
            .map(|(id, record)| {
                let services = state.view_services.as_deref().unwrap_or_default();
                let vips = balancing::task_vips(services, &state.draining, &networks, record);
                // The task's interface on ingress, if it is on it.
                let ingress = record
                    .networks
                    .iter()
                    .position(|a| networks.get(&a.network_id).is_some_and(|n| n.ingress))
                    .filter(|_| !mesh_nodes.is_empty());
                let mesh = ingress.map(|i| MeshIn {
                    ifname: names::task_ifname(i),
                    nodes: mesh_nodes
                        .iter()
                        .map(|n| (link::mac_for(*n), mesh_return::mark_of(*n)))
                        .collect(),
                });
                (id.clone(), TaskTable { vips, mesh }, ingress)
            })
            .collect();
        for (task_id, table, ingress) in tasks {
            // Unknown (adopted after a restart): written once, whatever it is.
            if state.task_tables.get(&task_id) == Some(&table) {
                continue;
            }
            let routes_known = state.task_mesh_routes.get(&task_id) == Some(&mesh_nodes);
            let applied = async {
                let ns = self.netns.open(&task_id)?;
                if let Some(i) = ingress.filter(|_| !routes_known) {
                    let handle = netns::netlink_in(&ns).await?;
                    let ifname = names::task_ifname(i);
                    let link = link::get(&handle, &ifname).await?.ok_or_else(|| {
                        Error::invalid(format!("task {task_id}"), format!("has no {ifname}"))
                    })?;
                    mesh_return::apply(&handle, link.index, &mesh_nodes).await?;
                }
                nft::apply(&ns, &task::batch(&table)).await
            }
            .await;
            match applied {
                Ok(()) => {
                    if ingress.is_some() {
                        state
                            .task_mesh_routes
                            .insert(task_id.clone(), mesh_nodes.clone());
                    }
                    state.task_tables.insert(task_id, table);
                }
                Err(e) => errors.push(e),
            }
        }
        Error::collect(errors)
    }

    async fn sync_nft(&self, state: &mut State) -> Result<()> {
        let networks: BTreeSet<NatNetwork> = state
            .networks()
            .values()
            .map(|n| NatNetwork {
                bridge: n.bridge_name(),
                subnet: n.subnet,
                internal: n.internal,
            })
            .collect();
        let ruleset = Ruleset {
            networks: networks.into_iter().collect(),
            ports: state.view_services.as_ref().map(|services| {
                let ingress = state.ingress_network();
                let mesh = balancing::Mesh {
                    node_id: &state.view_peers.node_id,
                    ingress: ingress.as_ref().map(|n| n.id.as_str()),
                };
                balancing::published_ports(services, &state.draining, &mesh)
            }),
        };
        if ruleset.networks.is_empty() && ruleset.ports.is_none() {
            // Nothing known yet (fresh start before the first view): leave
            // whatever table exists alone.
            return Ok(());
        }
        let batch = ruleset.batch();
        let json = serde_json::to_string(&batch)?;
        if state.last_nft.as_deref() == Some(json.as_str()) {
            return Ok(());
        }
        nft::apply(&self.host_ns, &batch).await?;
        state.last_nft = Some(json);
        Ok(())
    }
}

/// The view's services with draining tasks taken out of their backends.
fn backend_services(state: &State) -> Vec<ServiceEndpoints> {
    let mut services = state.view_services.clone().unwrap_or_default();
    for svc in &mut services {
        svc.backends
            .retain(|b| !state.draining.contains(&b.task_id));
    }
    services
}

/// The address a task's resolv.conf names: the embedded DNS server
/// answers on the gateway of every network on the node, and a task asks
/// the one of its first network.
pub fn dns_server(req: &AttachTaskRequest) -> Option<Ipv4Addr> {
    let first = req.networks.first()?;
    first.gateway.split('/').next()?.parse().ok()
}

/// The task's interfaces, one per network in the request's order, checked
/// before anything is created. The default route goes through the first
/// network that is not internal; a task only on internal networks has no
/// route out.
fn plan_interfaces(
    state: &State,
    req: &AttachTaskRequest,
) -> Result<Vec<(OverlayNetwork, TaskVeth)>> {
    let task_id = req.task_id.as_str();
    let known = state.networks();
    let mut plan = Vec::new();
    let mut routed = false;
    for (i, att) in req.networks.iter().enumerate() {
        let mut net = OverlayNetwork::from_attachment(att)?;
        if let Some(built) = known.get(&net.id) {
            net = built.clone();
        } else if let Some(view) = state.view_networks.get(&net.id) {
            net = view.clone();
            state.as_built_here(&mut net);
        } else {
            state.as_built_here(&mut net);
        }
        let address = network::task_address(&net, att)?;
        let gateway = (!routed && !net.internal).then_some(net.gateway);
        routed |= gateway.is_some();
        let veth = TaskVeth {
            host_name: names::veth_host_name(task_id, i),
            task_ifname: names::task_ifname(i),
            address,
            gateway,
            mtu: net.mtu,
        };
        plan.push((net, veth));
    }
    Ok(plan)
}
