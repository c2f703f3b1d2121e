//! The VXLAN device of an overlay network, enslaved to its bridge.
//!
//! Forwarding is static: learning is off, there is no multicast group, and
//! the device answers ARP for remote tasks itself (`proxy`) from the
//! entries [`crate::peers`] programs.

use netlink_packet_route::link::InfoKind;
use rtnetlink::{Handle, LinkVxlan};

use crate::error::{errno, Error, Result};
use crate::link::{self, LinkState, EEXIST};
use crate::network::OverlayNetwork;

/// The IANA VXLAN port (`shoal info`'s data path port).
pub const VXLAN_PORT: u16 = shoal_proto::DATA_PATH_PORT;

/// Creates the network's VXLAN device (or adopts a matching one), attaches
/// it to the bridge with index `bridge` and brings it up.
pub async fn apply(handle: &Handle, net: &OverlayNetwork, bridge: u32) -> Result<LinkState> {
    apply_named(handle, &net.vxlan_name(), net, bridge).await
}

/// [`apply`] under another name than netd's own ([`crate::names`]): the
/// same device for whoever needs one netd does not own (shoal-netbench's
/// bare kernel path).
pub async fn apply_named(
    handle: &Handle,
    name: &str,
    net: &OverlayNetwork,
    bridge: u32,
) -> Result<LinkState> {
    if let Some(existing) = link::get(handle, name).await? {
        if existing.kind == Some(InfoKind::Vxlan)
            && existing.vni == Some(net.vni)
            && existing.vxlan_proxy
            && existing.vxlan_local6 == net.vtep_local
        {
            link::set_mtu(handle, &existing, net.mtu).await?;
            link::set_controller(handle, &existing, bridge).await?;
            link::set_up(handle, &existing).await?;
            return Ok(existing);
        }
        if existing.kind != Some(InfoKind::Vxlan) {
            return Err(Error::invalid(
                format!("vxlan {name}"),
                format!("a link of kind {:?} already has this name", existing.kind),
            ));
        }
        // Ours but for another VNI (the network was re-created), made by
        // an older netd without the ARP proxy, or with another source (the
        // network became encrypted): replace it.
        link::delete(handle, name).await?;
    }
    let mut builder = LinkVxlan::new(name, net.vni)
        .port(VXLAN_PORT)
        .learning(false)
        .proxy(true);
    if let Some(local) = net.vtep_local {
        builder = builder.local6(local);
    }
    let msg = builder.mtu(net.mtu).build();
    match handle.link().add(msg).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(EEXIST) => {}
        Err(e) => {
            return Err(Error::netlink(format!(
                "create vxlan {name} (vni {})",
                net.vni
            ))(e))
        }
    }
    let created = link::get(handle, name)
        .await?
        .ok_or_else(|| Error::invalid(format!("vxlan {name}"), "vanished right after creation"))?;
    link::set_controller(handle, &created, bridge).await?;
    link::set_up(handle, &created).await?;
    Ok(created)
}

/// Deletes the device; a missing one is fine.
pub async fn teardown(handle: &Handle, name: &str) -> Result<()> {
    link::delete(handle, name).await
}
