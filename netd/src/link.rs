//! Netlink helpers shared by the kernel-object modules: look a link up by
//! name, read the few attributes netd cares about, and make the idempotent
//! changes (up, controller, address) that tolerate "already so".

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec};

use crate::cidr::Ipv4Cidr;
use crate::error::{errno, Error, Result};

pub(crate) const ENODEV: i32 = nix::libc::ENODEV;
pub(crate) const EEXIST: i32 = nix::libc::EEXIST;

/// The MAC address netd gives the interface that holds `address` (a task's
/// end of its veth, a network's bridge for its gateway): locally
/// administered, `02:42:` and the four address bytes, as Docker does.
///
/// Random MACs break neighbour caches. An address handed from a stopped
/// task to its replacement would keep the old MAC in every cache that
/// holds it (the node's, and over the overlay every other node's), and
/// traffic to it would vanish until those entries expire, tens of seconds
/// later. A bridge without a MAC of its own takes the lowest of its ports'
/// and changes it as tasks come and go, flushing the node's cache and
/// leaving the tasks' cached gateway stale.
pub fn mac_for(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// What netd reads back from a link.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub controller: Option<u32>,
    pub alias: Option<String>,
    pub up: bool,
    pub vni: Option<u32>,
    /// A VXLAN device's ARP proxy (answers from its neighbour entries).
    pub vxlan_proxy: bool,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    /// A VXLAN device's IPv6 source (encrypted networks: the mesh address).
    pub vxlan_local6: Option<std::net::Ipv6Addr>,
}

impl LinkState {
    pub fn from_message(msg: &LinkMessage) -> LinkState {
        let mut state = LinkState {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            controller: None,
            alias: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            vni: None,
            vxlan_proxy: false,
            mtu: 0,
            mac: None,
            vxlan_local6: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => state.name = n.clone(),
                LinkAttribute::Mtu(m) => state.mtu = *m,
                LinkAttribute::Address(a) => state.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::IfAlias(a) => state.alias = Some(a.clone()),
                LinkAttribute::Controller(c) if *c != 0 => state.controller = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => state.kind = Some(k.clone()),
                            LinkInfo::Data(InfoData::Vxlan(v)) => {
                                for i in v {
                                    match i {
                                        InfoVxlan::Id(id) => state.vni = Some(*id),
                                        InfoVxlan::Proxy(p) => state.vxlan_proxy = *p,
                                        InfoVxlan::Local6(a) => state.vxlan_local6 = Some(*a),
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        state
    }
}

/// The link called `name`, if there is one.
pub async fn get(handle: &Handle, name: &str) -> Result<Option<LinkState>> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkState::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("get link {name}"))(e)),
    }
}

/// Every link in the namespace.
pub async fn list(handle: &Handle) -> Result<Vec<LinkState>> {
    let msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(Error::netlink("list links"))?;
    Ok(msgs.iter().map(LinkState::from_message).collect())
}

pub async fn set_up(handle: &Handle, link: &LinkState) -> Result<()> {
    if link.up {
        return Ok(());
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(Error::netlink(format!("set {} up", link.name)))
}

pub async fn set_controller(handle: &Handle, link: &LinkState, controller: u32) -> Result<()> {
    if link.controller == Some(controller) {
        return Ok(());
    }
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(link.index)
                .controller(controller)
                .build(),
        )
        .execute()
        .await
        .map_err(Error::netlink(format!(
            "attach {} to its bridge",
            link.name
        )))
}

pub async fn set_mtu(handle: &Handle, link: &LinkState, mtu: u32) -> Result<()> {
    if link.mtu == mtu {
        return Ok(());
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).mtu(mtu).build())
        .execute()
        .await
        .map_err(Error::netlink(format!("set MTU of {} to {mtu}", link.name)))
}

pub async fn set_mac(handle: &Handle, link: &LinkState, mac: [u8; 6]) -> Result<()> {
    if link.mac == Some(mac) {
        return Ok(());
    }
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(link.index)
                .address(mac.to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(Error::netlink(format!("set the MAC of {}", link.name)))
}

pub async fn set_alias(handle: &Handle, link: &LinkState, alias: &str) -> Result<()> {
    if link.alias.as_deref() == Some(alias) {
        return Ok(());
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).alias(alias).build())
        .execute()
        .await
        .map_err(Error::netlink(format!("set alias of {}", link.name)))
}

/// Adds an address; one that is already there is fine.
pub async fn add_address(handle: &Handle, link: &LinkState, cidr: Ipv4Cidr) -> Result<()> {
    match handle
        .address()
        .add(link.index, IpAddr::V4(cidr.addr), cidr.len)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(format!(
            "add address {cidr} to {}",
            link.name
        ))(e)),
    }
}

/// Deletes the link called `name`; a missing one is fine.
pub async fn delete(handle: &Handle, name: &str) -> Result<()> {
    let Some(link) = get(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(link.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
        Err(e) => Err(Error::netlink(format!("delete link {name}"))(e)),
    }
}

/// The MTU of the interface that holds `addr` (the node's underlay
/// address), or `None` when no interface here holds it.
pub async fn mtu_of_address(handle: &Handle, addr: IpAddr) -> Result<Option<u32>> {
    use netlink_packet_route::address::AddressAttribute;
    let mut addresses = handle.address().get().execute();
    let mut index = None;
    while let Some(msg) = addresses
        .try_next()
        .await
        .map_err(Error::netlink("list addresses"))?
    {
        let holds = msg.attributes.iter().any(|a| match a {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => *ip == addr,
            _ => false,
        });
        if holds {
            index = Some(msg.header.index);
            break;
        }
    }
    let Some(index) = index else {
        return Ok(None);
    };
    let mut links = handle.link().get().match_index(index).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkState::from_message(&msg).mtu).filter(|m| *m > 0)),
        Ok(None) => Ok(None),
        Err(e) => Err(Error::netlink(format!("get link {index}"))(e)),
    }
}

/// Makes the default route of routing table `table` (`None`: main) go via
/// `gateway` out of interface `ifindex`; whatever default it had, the new
/// one wins.
pub async fn replace_default_route(
    handle: &Handle,
    gateway: Ipv4Addr,
    ifindex: u32,
    table: Option<u32>,
) -> Result<()> {
    let mut route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(ifindex);
    if let Some(table) = table {
        route = route.table_id(table);
    }
    handle
        .route()
        .add(route.build())
        .replace()
        .execute()
        .await
        .map_err(Error::netlink(format!("default route via {gateway}")))
}
