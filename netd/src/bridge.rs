//! The Linux bridge of an overlay network: carries the gateway address and
//! joins the network's VXLAN device and the task veths.

use rtnetlink::{Handle, LinkBridge};

use crate::error::{errno, Error, Result};
use crate::link::{self, LinkState, EEXIST};
use crate::network::OverlayNetwork;

/// The alias of every bridge netd owns; the network id follows it. It is
/// how netd finds its bridges again after a restart (names are truncated).
pub const ALIAS_PREFIX: &str = "shoal network ";

/// Creates the network's bridge or adopts the one that exists, and makes
/// sure it is up and carries the gateway address.
pub async fn apply(handle: &Handle, net: &OverlayNetwork) -> Result<LinkState> {
    let name = net.bridge_name();
    let bridge = create(handle, &name, net.bridge_mac()).await?;
    let alias = format!("{ALIAS_PREFIX}{}", net.id);
    if let Some(other) = bridge
        .alias
        .as_deref()
        .filter(|a| a.starts_with(ALIAS_PREFIX) && **a != alias)
    {
        return Err(Error::invalid(
            format!("bridge {name}"),
            format!("already owned by {other:?} (network ids share their first 10 characters)"),
        ));
    }
    link::set_alias(handle, &bridge, &alias).await?;
    link::set_mac(handle, &bridge, net.bridge_mac()).await?;
    link::add_address(handle, &bridge, net.gateway_cidr()).await?;
    if let Some(own) = net.node_address {
        let cidr = crate::cidr::Ipv4Cidr {
            addr: own,
            len: net.subnet.len,
        };
        link::add_address(handle, &bridge, cidr).await?;
    }
    link::set_up(handle, &bridge).await?;
    Ok(bridge)
}

/// The bridge called `name`, created with MAC `mac` or adopted as it is
/// (it must be a bridge), and changed in nothing else: [`apply`] makes it
/// one of netd's; shoal-netbench's bare kernel path uses it as it is, with
/// no alias (netd knows its bridges by their alias only).
pub async fn create(handle: &Handle, name: &str, mac: [u8; 6]) -> Result<LinkState> {
    let bridge = match link::get(handle, name).await? {
        Some(existing) => existing,
        None => {
            match handle
                .link()
                .add(LinkBridge::new(name).address(mac.to_vec()).build())
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(Error::netlink(format!("create bridge {name}"))(e)),
            }
            link::get(handle, name).await?.ok_or_else(|| {
                Error::invalid(format!("bridge {name}"), "vanished right after creation")
            })?
        }
    };
    if bridge.kind != Some(netlink_packet_route::link::InfoKind::Bridge) {
        return Err(Error::invalid(
            format!("bridge {name}"),
            format!("a link of kind {:?} already has this name", bridge.kind),
        ));
    }
    Ok(bridge)
}

/// The bridges netd owns, with their network ids.
pub async fn list_owned(handle: &Handle) -> Result<Vec<(String, LinkState)>> {
    Ok(link::list(handle)
        .await?
        .into_iter()
        .filter_map(|l| {
            let id = l.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)?.to_string();
            Some((id, l))
        })
        .collect())
}

/// Deletes the bridge; a missing one is fine.
pub async fn teardown(handle: &Handle, name: &str) -> Result<()> {
    link::delete(handle, name).await
}
