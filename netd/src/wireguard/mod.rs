//! The WireGuard mesh of encrypted overlay networks: one WireGuard device
//! per node, [`DEVICE_NAME`], with a peer for every other node. VXLAN of an
//! encrypted network uses the peers' mesh addresses as its remote
//! endpoints, so everything it sends between nodes is encrypted.
//!
//! - Mesh addresses need no allocation: [`mesh_addr`] derives a node's
//!   from its id, inside [`MESH_PREFIX`]`/64`. The device holds its own
//!   address as a /64, whose prefix route is the mesh's one route into the
//!   device; each peer's allowed IP is its /128, so WireGuard's cryptokey
//!   routing picks the peer of every packet, and a packet for a mesh
//!   address with no peer (a node that left, a refused key) is dropped by
//!   WireGuard, never sent in the clear. Per-peer /128 routes would only
//!   copy that table into a second one that can disagree with it.
//! - The kernel's WireGuard where the kernel has it, else boringtun's
//!   userspace device on netd's own threads (module `userspace`); both are
//!   configured with the same steps (module `control`).
//! - The node's key pair: [`keys`].
//! - [`Mesh::ensure`] is idempotent and touches only what differs: an
//!   unchanged peer is never sent to the device, so its session stays.
//!
//! Everything lives in the network namespace the [`Mesh`] was made for:
//! netlink sockets, the kernel device, boringtun's threads, TUN device and
//! UDP sockets.

mod control;
mod device;
pub mod keys;
mod plan;
mod uapi;
mod userspace;

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rtnetlink::Handle;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use wireguard_control::Key;

use crate::error::{Error, Result};
use crate::netns;
use control::{Change, Control};
use device::{KernelLink, MeshLink};
use userspace::Userspace;

pub use keys::NodeKey;
pub use userspace::{THREADS as USERSPACE_THREADS, THREAD_NAME as USERSPACE_THREAD_NAME};

/// The mesh device's name.
pub const DEVICE_NAME: &str = "shoal-wg";

/// The IANA WireGuard port, the default listen port.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;

/// The mesh's IPv6 ULA prefix (a /64): `fdc5:5a1::/64`.
pub const MESH_PREFIX: Ipv6Addr = Ipv6Addr::new(0xfdc5, 0x05a1, 0, 0, 0, 0, 0, 0);
pub const MESH_PREFIX_LEN: u8 = 64;

/// What WireGuard adds to a packet in the worst case: an IPv6 outer header
/// (40), UDP (8) and WireGuard's data header and tag (32).
pub const WIREGUARD_OVERHEAD: u32 = 80;

/// The smallest mesh MTU: IPv6 (the mesh's traffic) needs 1280.
pub const MIN_MESH_MTU: u32 = 1280;

/// The mesh address of node `node_id`: [`MESH_PREFIX`] and the first 8
/// bytes of SHA-256 of the id as the interface id.
pub fn mesh_addr(node_id: &str) -> Ipv6Addr {
    let digest = Sha256::digest(node_id.as_bytes());
    let mut octets = MESH_PREFIX.octets();
    octets[8..].copy_from_slice(&digest[..8]);
    Ipv6Addr::from(octets)
}

/// Whether `addr` is inside the mesh prefix.
pub fn in_mesh(addr: Ipv6Addr) -> bool {
    addr.octets()[..8] == MESH_PREFIX.octets()[..8]
}

/// The MTU of the mesh device over an underlay of `underlay_mtu`.
pub fn mesh_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(WIREGUARD_OVERHEAD)
}

/// What the mesh of this node must be.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// This node's id: its mesh address.
    pub node_id: String,
    pub key: NodeKey,
    pub listen_port: u16,
    /// The MTU of the interface that carries the mesh's UDP.
    pub underlay_mtu: u32,
    /// Every other node of the mesh.
    pub peers: Vec<MeshPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    pub node_id: String,
    /// base64, as the node published it.
    pub public_key: String,
    /// The node's underlay address and WireGuard port.
    pub endpoint: SocketAddr,
}

/// Which WireGuard implementation a mesh runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    /// boringtun, on threads of this process.
    Userspace,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Kernel => "kernel",
            Backend::Userspace => "userspace",
        })
    }
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The kernel's if creating a WireGuard link works, else userspace.
    #[default]
    Auto,
    Kernel,
    Userspace,
}

/// A peer of the config that is not on the device, and why.
#[derive(Debug)]
pub struct Refused {
    pub node_id: String,
    pub error: Error,
}

/// What an [`Mesh::ensure`] did.
#[derive(Debug)]
pub struct MeshReport {
    pub backend: Backend,
    pub public_key: String,
    pub address: Ipv6Addr,
    pub mtu: u32,
    /// Node ids.
    pub added: Vec<String>,
    /// Node ids of peers whose endpoint (or allowed IP) changed.
    pub updated: Vec<String>,
    /// Public keys (base64) of peers the config no longer names.
    pub removed: Vec<String>,
    pub refused: Vec<Refused>,
}

/// What the device has.
#[derive(Debug, Clone)]
pub struct MeshStatus {
    pub backend: Backend,
    pub public_key: Option<String>,
    pub listen_port: u16,
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub public_key: String,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<(IpAddr, u8)>,
    /// How long ago the current session's handshake was; `None` without a
    /// session.
    pub handshake_age: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The node's WireGuard mesh in one network namespace.
///
/// A userspace device lives as long as the `Mesh` (dropping it stops the
/// device's threads); a kernel device stays until [`Mesh::teardown`] and is
/// adopted by the next `Mesh`.
pub struct Mesh {
    ns: File,
    choice: BackendChoice,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    active: Option<Active>,
    /// The endpoint netd last set per peer.
    configured: HashMap<Key, SocketAddr>,
}

enum Active {
    Kernel,
    Userspace(Userspace),
}

impl Active {
    fn backend(&self) -> Backend {
        match self {
            Active::Kernel => Backend::Kernel,
            Active::Userspace(_) => Backend::Userspace,
        }
    }

    fn control<'a>(&'a self, ns: &'a File) -> Control<'a> {
        match self {
            Active::Kernel => Control::Kernel(ns),
            Active::Userspace(u) => Control::Userspace(&u.uapi),
        }
    }
}

impl Mesh {
    /// A mesh in the network namespace `ns`.
    pub fn new(ns: File) -> Mesh {
        Mesh {
            ns,
            choice: BackendChoice::Auto,
            state: Mutex::new(State::default()),
        }
    }

    /// A mesh in the calling thread's network namespace.
    pub fn current() -> Result<Mesh> {
        Ok(Mesh::new(netns::current()?))
    }

    pub fn with_backend(mut self, choice: BackendChoice) -> Mesh {
        self.choice = choice;
        self
    }

    /// Makes the device what `config` says: creates or adopts it, sets its
    /// key, listen port, address, MTU, brings it up, and makes its peers
    /// exactly the config's valid peers (only the changed ones are sent to
    /// the device). A peer that is refused (bad key, bad endpoint) or that
    /// the device refuses is in the report's `refused`, and the others are
    /// configured all the same; an error means the device itself failed.
    pub async fn ensure(&self, config: &MeshConfig) -> Result<MeshReport> {
        if config.node_id.is_empty() {
            return Err(Error::invalid("WireGuard mesh", "no node id"));
        }
        if config.listen_port == 0 {
            return Err(Error::invalid(
                "WireGuard mesh",
                "listen port 0 (the peers need to know the port)",
            ));
        }
        let mtu = mesh_mtu(config.underlay_mtu);
        if mtu < MIN_MESH_MTU {
            return Err(Error::invalid(
                format!("underlay MTU {}", config.underlay_mtu),
                format!(
                    "the mesh needs at least {} ({MIN_MESH_MTU} for IPv6 inside, \
                     {WIREGUARD_OVERHEAD} for WireGuard)",
                    MIN_MESH_MTU + WIREGUARD_OVERHEAD
                ),
            ));
        }
        let own = config.key.public().clone();
        let address = mesh_addr(&config.node_id);
        let (peers, mut refused) = plan::validate(config, &own);
        for r in &refused {
            tracing::warn!(node = %r.node_id, "WireGuard peer refused: {}", r.error);
        }

        let mut state = self.state.lock().await;
        let handle = netns::netlink_in(&self.ns).await?;
        let link = self.device(&mut state, &handle, mtu).await?;
        device::set_mtu(&handle, &link, mtu).await?;
        device::set_address(&handle, &link, address).await?;
        device::set_up(&handle, &link).await?;

        let State { active, configured } = &mut *state;
        let active = active.as_ref().expect("device() leaves an active device");
        let control = active.control(&self.ns);
        let current = control.get().await?;
        let plan = plan::diff(&current, &own, config.listen_port, &peers, configured);
        if plan.set_private_key || plan.set_listen_port {
            control
                .apply(Change::Device {
                    private_key: plan.set_private_key.then(|| config.key.private().clone()),
                    listen_port: plan.set_listen_port.then_some(config.listen_port),
                })
                .await?;
        }
        let mut report = MeshReport {
            backend: active.backend(),
            public_key: config.key.public_key(),
            address,
            mtu,
            added: Vec::new(),
            updated: Vec::new(),
            removed: Vec::new(),
            refused: Vec::new(),
        };
        // A peer that should be gone must be: a failed removal fails the
        // ensure (the node may have left the cluster).
        for key in plan.remove {
            control
                .apply(Change::RemovePeer { key: key.clone() })
                .await?;
            configured.remove(&key);
            tracing::info!(public_key = %key.to_base64(), "WireGuard peer removed");
            report.removed.push(key.to_base64());
        }
        let changes = plan
            .update
            .into_iter()
            .map(|p| (true, p))
            .chain(plan.add.into_iter().map(|p| (false, p)));
        for (update, p) in changes {
            let change = if update {
                Change::UpdatePeer {
                    key: p.key.clone(),
                    endpoint: p.endpoint,
                    addr: p.addr,
                }
            } else {
                Change::AddPeer {
                    key: p.key.clone(),
                    endpoint: p.endpoint,
                    addr: p.addr,
                }
            };
            match control.apply(change).await {
                Ok(()) => {
                    configured.insert(p.key.clone(), p.endpoint);
                    tracing::info!(
                        node = %p.node_id,
                        public_key = %p.key.to_base64(),
                        endpoint = %p.endpoint,
                        "WireGuard peer {}",
                        if update { "updated" } else { "added" }
                    );
                    if update {
                        report.updated.push(p.node_id);
                    } else {
                        report.added.push(p.node_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(node = %p.node_id, "WireGuard peer not configured: {error}");
                    refused.push(Refused {
                        node_id: p.node_id,
                        error,
                    });
                }
            }
        }
        if let Active::Userspace(_) = active {
            // boringtun's later threads open their TUN queues when they start.
            userspace::seal_fds();
        }
        report.refused = refused;
        Ok(report)
    }

    /// The device this mesh runs: the one it made or adopted if it is still
    /// there and fit, else an adopted kernel device, else a new one.
    async fn device(&self, state: &mut State, handle: &Handle, mtu: u32) -> Result<MeshLink> {
        let link = device::get(handle).await?;
        let stale = match (&state.active, &link) {
            (None, _) => None,
            (Some(Active::Kernel), Some(l)) if l.is_wireguard() => return Ok(l.clone()),
            (Some(Active::Kernel), _) => Some("the kernel device is gone"),
            (Some(Active::Userspace(u)), Some(l)) if l.state.index == u.ifindex => {
                if u.uapi.is_broken() {
                    Some("its UAPI stopped answering")
                } else if mtu > u.mtu {
                    Some("it cannot carry a larger MTU than it started with")
                } else {
                    return Ok(l.clone());
                }
            }
            (Some(Active::Userspace(_)), _) => Some("its TUN device is gone"),
        };
        if let Some(old) = state.active.take() {
            state.configured.clear();
            tracing::warn!(
                "replacing the WireGuard device {DEVICE_NAME}: {}",
                stale.unwrap_or("")
            );
            if let Active::Userspace(u) = old {
                if let Err(e) = u.stop().await {
                    tracing::warn!("stopping the old userspace WireGuard device: {e}");
                }
            }
        }

        if let Some(l) = device::get(handle).await? {
            if l.is_wireguard() && self.choice != BackendChoice::Userspace {
                tracing::info!("adopting the kernel WireGuard device {DEVICE_NAME}");
                state.active = Some(Active::Kernel);
                return Ok(l);
            }
            return Err(Error::invalid(
                format!("WireGuard device {DEVICE_NAME}"),
                format!(
                    "a {} link already has this name, and this netd does not run it",
                    l.kind()
                ),
            ));
        }
        if self.choice != BackendChoice::Userspace {
            match device::create_kernel(handle, mtu).await? {
                KernelLink::Created => {
                    tracing::info!("created the kernel WireGuard device {DEVICE_NAME}");
                    state.active = Some(Active::Kernel);
                    return vanished_check(device::get(handle).await?);
                }
                KernelLink::Unsupported if self.choice == BackendChoice::Kernel => {
                    return Err(Error::invalid(
                        format!("WireGuard device {DEVICE_NAME}"),
                        "this kernel has no WireGuard",
                    ));
                }
                KernelLink::Unsupported => {
                    tracing::info!("this kernel has no WireGuard: the mesh runs on boringtun");
                }
            }
        }
        let u = userspace::start(&self.ns, handle, mtu).await?;
        tracing::info!(
            threads = USERSPACE_THREADS,
            "started the userspace WireGuard device {DEVICE_NAME}"
        );
        state.active = Some(Active::Userspace(u));
        vanished_check(device::get(handle).await?)
    }

    /// What the device has now; `None` before the first ensure (and after
    /// a teardown).
    pub async fn status(&self) -> Result<Option<MeshStatus>> {
        let state = self.state.lock().await;
        let Some(active) = &state.active else {
            return Ok(None);
        };
        let current = active.control(&self.ns).get().await?;
        Ok(Some(MeshStatus {
            backend: active.backend(),
            public_key: current.public_key.map(|k| k.to_base64()),
            listen_port: current.listen_port,
            peers: current
                .peers
                .into_iter()
                .map(|p| PeerStatus {
                    public_key: p.public_key.to_base64(),
                    endpoint: p.endpoint,
                    allowed_ips: p.allowed_ips,
                    handshake_age: p.handshake_age,
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                })
                .collect(),
        }))
    }

    /// Removes the device: stops a userspace device's threads (its TUN
    /// device goes with them) and deletes a kernel device, also one this
    /// mesh only finds. Nothing there is fine.
    pub async fn teardown(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        state.configured.clear();
        let mut errors = Vec::new();
        if let Some(Active::Userspace(u)) = state.active.take() {
            if let Err(e) = u.stop().await {
                errors.push(e);
            }
        }
        let handle = netns::netlink_in(&self.ns).await?;
        match device::get(&handle).await {
            Ok(Some(l)) if l.is_wireguard() => {
                if let Err(e) = device::delete(&handle).await {
                    errors.push(e);
                }
            }
            Ok(Some(l)) => errors.push(Error::invalid(
                format!("WireGuard device {DEVICE_NAME}"),
                format!(
                    "a {} link of this name is still there after the teardown \
                     (another process holds it)",
                    l.kind()
                ),
            )),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            tracing::info!("WireGuard device {DEVICE_NAME} removed");
        }
        Error::collect(errors)
    }
}

fn vanished_check(link: Option<MeshLink>) -> Result<MeshLink> {
    link.ok_or_else(|| {
        Error::invalid(
            format!("WireGuard device {DEVICE_NAME}"),
            "vanished right after creation",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_addresses_come_from_the_node_id() {
        let a = mesh_addr("node-a");
        assert!(in_mesh(a));
        assert_eq!(a.segments()[..4], [0xfdc5, 0x05a1, 0, 0]);
        assert_eq!(a, mesh_addr("node-a"));
        assert_ne!(a, mesh_addr("node-b"));
        // The interface id is the first 8 bytes of SHA-256 of the id.
        let digest = Sha256::digest(b"node-a");
        assert_eq!(a.octets()[8..], digest[..8]);
        assert!(!in_mesh("fdc5:5a1:0:1::1".parse().unwrap()));
    }

    /// netd shares its data plane between tasks: the mesh and its futures
    /// must be Send (and the mesh Sync). Checked when this compiles.
    #[allow(dead_code)]
    fn mesh_is_shareable(mesh: &Mesh, config: &MeshConfig) {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        send_sync(mesh);
        send(&mesh.ensure(config));
        send(&mesh.status());
        send(&mesh.teardown());
    }

    #[test]
    fn the_mesh_mtu_leaves_room_for_ipv6_udp_and_wireguard() {
        assert_eq!(mesh_mtu(1500), 1420);
        assert_eq!(mesh_mtu(9000), 8920);
        assert_eq!(mesh_mtu(50), 0);
    }
}
