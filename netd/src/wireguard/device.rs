//! The mesh device's link through rtnetlink: find it, make a kernel
//! WireGuard link (or learn that the kernel has no WireGuard), MTU,
//! address, up, delete.

use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkWireguard};

use super::{in_mesh, DEVICE_NAME, MESH_PREFIX_LEN};
use crate::error::{errno, Error, Result};
use crate::link::{self, LinkState, EEXIST, ENODEV};

/// The mesh device as netd sees it.
#[derive(Debug, Clone)]
pub(crate) struct MeshLink {
    pub state: LinkState,
    pub mtu: u32,
}

impl MeshLink {
    pub fn is_wireguard(&self) -> bool {
        self.state.kind == Some(InfoKind::Wireguard)
    }

    pub fn kind(&self) -> String {
        match &self.state.kind {
            Some(k) => format!("{k:?}").to_lowercase(),
            None => "unknown".into(),
        }
    }
}

/// The device called [`DEVICE_NAME`], if there is one.
pub(crate) async fn get(handle: &Handle) -> Result<Option<MeshLink>> {
    let mut links = handle.link().get().match_name(DEVICE_NAME).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("get link {DEVICE_NAME}"))(e)),
    }
}

fn from_message(msg: &LinkMessage) -> MeshLink {
    let mtu = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .unwrap_or(0);
    MeshLink {
        state: LinkState::from_message(msg),
        mtu,
    }
}

/// What creating a kernel WireGuard link gave.
pub(crate) enum KernelLink {
    Created,
    /// This kernel has no WireGuard (no module, none to load).
    Unsupported,
}

/// Creates a kernel WireGuard link with `mtu`. The kernel answers an
/// unknown link kind (after trying to load its module) with EOPNOTSUPP.
pub(crate) async fn create_kernel(handle: &Handle, mtu: u32) -> Result<KernelLink> {
    let msg = LinkWireguard::new(DEVICE_NAME).mtu(mtu).build();
    match handle.link().add(msg).execute().await {
        Ok(()) => Ok(KernelLink::Created),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(KernelLink::Created),
        Err(e) if errno(&e) == Some(nix::libc::EOPNOTSUPP) => Ok(KernelLink::Unsupported),
        Err(e) => Err(Error::netlink(format!(
            "create WireGuard link {DEVICE_NAME}"
        ))(e)),
    }
}

pub(crate) async fn set_mtu(handle: &Handle, link: &MeshLink, mtu: u32) -> Result<()> {
    if link.mtu == mtu {
        return Ok(());
    }
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(link.state.index)
                .mtu(mtu)
                .build(),
        )
        .execute()
        .await
        .map_err(Error::netlink(format!("set MTU of {DEVICE_NAME} to {mtu}")))
}

pub(crate) async fn set_up(handle: &Handle, link: &MeshLink) -> Result<()> {
    link::set_up(handle, &link.state).await
}

/// Gives the device `addr`/64 and no other address inside the mesh prefix.
/// The /64 is the mesh's one route into the device: the peer a packet goes
/// to is WireGuard's choice (the peer whose allowed IP, its /128, matches),
/// and a mesh address without a peer is dropped there.
pub(crate) async fn set_address(handle: &Handle, link: &MeshLink, addr: Ipv6Addr) -> Result<()> {
    let msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(link.state.index)
        .execute()
        .try_collect()
        .await
        .map_err(Error::netlink(format!("list addresses of {DEVICE_NAME}")))?;
    let mut present = false;
    for msg in msgs {
        if msg.header.family != AddressFamily::Inet6 {
            continue;
        }
        let Some(IpAddr::V6(have)) = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        }) else {
            continue;
        };
        if have == addr && msg.header.prefix_len == MESH_PREFIX_LEN {
            present = true;
        } else if in_mesh(have) {
            handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(Error::netlink(format!(
                    "remove stale address {have} from {DEVICE_NAME}"
                )))?;
        }
    }
    if present {
        return Ok(());
    }
    match handle
        .address()
        .add(link.state.index, IpAddr::V6(addr), MESH_PREFIX_LEN)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(format!(
            "add address {addr}/{MESH_PREFIX_LEN} to {DEVICE_NAME}"
        ))(e)),
    }
}

/// Deletes the device; a missing one is fine.
pub(crate) async fn delete(handle: &Handle) -> Result<()> {
    link::delete(handle, DEVICE_NAME).await
}
