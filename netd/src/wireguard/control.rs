//! Reading and configuring the WireGuard device, the same way for both
//! backends: the kernel device through wireguard-control (generic netlink,
//! from a thread inside the mesh's namespace), boringtun's device through
//! its UAPI ([`super::uapi`]).
//!
//! Every change names only what changes: a peer that stays as it is never
//! appears in a request, so its session is left alone.

use std::fs::File;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use wireguard_control::{Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder};

use super::uapi::Uapi;
use super::DEVICE_NAME;
use crate::error::{Error, Result};
use crate::netns;

/// What the device has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceState {
    pub public_key: Option<Key>,
    pub listen_port: u16,
    pub peers: Vec<PeerState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerState {
    pub public_key: Key,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<(IpAddr, u8)>,
    /// A persistent keepalive other than off.
    pub keepalive: Option<u16>,
    /// How long ago the current session's handshake completed.
    pub handshake_age: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// One step of a configuration.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Device {
        private_key: Option<Key>,
        listen_port: Option<u16>,
    },
    AddPeer {
        key: Key,
        endpoint: SocketAddr,
        addr: Ipv6Addr,
    },
    /// Set the endpoint and the one allowed IP, keepalive off.
    UpdatePeer {
        key: Key,
        endpoint: SocketAddr,
        addr: Ipv6Addr,
    },
    RemovePeer {
        key: Key,
    },
}

/// The device a mesh talks to.
pub(crate) enum Control<'a> {
    /// The kernel's device, in namespace `.0`.
    Kernel(&'a File),
    Userspace(&'a Uapi),
}

fn wg_error(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |e| Error::WireGuard {
        op,
        source: Box::new(e),
    }
}

fn iface() -> InterfaceName {
    DEVICE_NAME.parse().expect("the device name is valid")
}

impl Control<'_> {
    pub async fn get(&self) -> Result<DeviceState> {
        match self {
            Control::Kernel(ns) => {
                let device = netns::run_in(ns, "reading the WireGuard device", || {
                    Device::get(&iface(), Backend::Kernel)
                        .map_err(wg_error(format!("read device {DEVICE_NAME}")))
                })
                .await?;
                Ok(from_kernel(device))
            }
            Control::Userspace(uapi) => uapi.get().await,
        }
    }

    pub async fn apply(&self, change: Change) -> Result<()> {
        match self {
            Control::Kernel(ns) => {
                let what = describe(&change);
                netns::run_in(ns, "configuring the WireGuard device", move || {
                    kernel_update(change)
                        .apply(&iface(), Backend::Kernel)
                        .map_err(wg_error(what))
                })
                .await
            }
            Control::Userspace(uapi) => match change {
                // boringtun cannot change a peer it has (it panics): the
                // peer goes and comes back, which costs its session; only
                // a changed endpoint or allowed IP ever gets here.
                Change::UpdatePeer {
                    key,
                    endpoint,
                    addr,
                } => {
                    uapi.set(&Change::RemovePeer { key: key.clone() }).await?;
                    uapi.set(&Change::AddPeer {
                        key,
                        endpoint,
                        addr,
                    })
                    .await
                }
                other => uapi.set(&other).await,
            },
        }
    }
}

pub(crate) fn describe(change: &Change) -> String {
    match change {
        Change::Device { listen_port, .. } => match listen_port {
            Some(port) => format!("set the key and listen port {port} of {DEVICE_NAME}"),
            None => format!("set the key of {DEVICE_NAME}"),
        },
        Change::AddPeer { key, endpoint, .. } => {
            format!("add peer {} at {endpoint}", key.to_base64())
        }
        Change::UpdatePeer { key, endpoint, .. } => {
            format!("update peer {} to {endpoint}", key.to_base64())
        }
        Change::RemovePeer { key } => format!("remove peer {}", key.to_base64()),
    }
}

fn kernel_update(change: Change) -> DeviceUpdate {
    let update = DeviceUpdate::new();
    match change {
        Change::Device {
            private_key,
            listen_port,
        } => {
            let mut update = update;
            if let Some(key) = private_key {
                update = update.set_private_key(key);
            }
            if let Some(port) = listen_port {
                update = update.set_listen_port(port);
            }
            update
        }
        Change::AddPeer {
            key,
            endpoint,
            addr,
        } => update.add_peer(
            PeerConfigBuilder::new(&key)
                .set_endpoint(endpoint)
                .replace_allowed_ips()
                .add_allowed_ip(IpAddr::V6(addr), 128),
        ),
        // The kernel changes a peer in place: its session stays.
        Change::UpdatePeer {
            key,
            endpoint,
            addr,
        } => update.add_peer(
            PeerConfigBuilder::new(&key)
                .set_endpoint(endpoint)
                .replace_allowed_ips()
                .add_allowed_ip(IpAddr::V6(addr), 128)
                .unset_persistent_keepalive(),
        ),
        Change::RemovePeer { key } => update.remove_peer_by_key(&key),
    }
}

fn from_kernel(device: Device) -> DeviceState {
    let now = SystemTime::now();
    DeviceState {
        public_key: device.public_key,
        listen_port: device.listen_port.unwrap_or(0),
        peers: device
            .peers
            .into_iter()
            .map(|p| PeerState {
                public_key: p.config.public_key,
                endpoint: p.config.endpoint,
                allowed_ips: p
                    .config
                    .allowed_ips
                    .iter()
                    .map(|ip| (ip.address, ip.cidr))
                    .collect(),
                keepalive: p.config.persistent_keepalive_interval.filter(|k| *k != 0),
                handshake_age: p
                    .stats
                    .last_handshake_time
                    .map(|t| now.duration_since(t).unwrap_or_default()),
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
            })
            .collect(),
    }
}
