//! The static forwarding entries of one network's VXLAN device: for every
//! task of the network on another node, a neighbour entry (its address ->
//! its MAC, answered by the device's ARP proxy) and an FDB entry (its MAC
//! -> the node's VTEP address).
//!
//! Nothing is learnt and nothing is flooded: there is no all-zeros FDB
//! entry, so broadcasts (ARP included) never leave the node, and a local
//! task's ARP request for a remote task is answered by the VXLAN device
//! from these neighbour entries (`proxy`). Because a task's MAC derives
//! from its address ([`crate::link::mac_for`]), an address that moves to a
//! new task on another node needs only its FDB entry moved.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::Handle;

use crate::error::{errno, Error, Result};
use crate::link::{self, ENODEV};

/// Tasks of the network on other nodes: task address -> node's VTEP.
pub type RemoteTasks = BTreeMap<Ipv4Addr, IpAddr>;

const ENOENT: i32 = nix::libc::ENOENT;

/// What the device holds now.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entries {
    /// MAC -> VTEP (our FDB entries: static, with a destination).
    fdb: BTreeMap<[u8; 6], IpAddr>,
    /// Address -> MAC (permanent neighbour entries).
    neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
}

impl Entries {
    fn wanted(remote: &RemoteTasks) -> Entries {
        let mut e = Entries::default();
        for (&ip, &vtep) in remote {
            let mac = link::mac_for(ip);
            e.fdb.insert(mac, vtep);
            e.neighbours.insert(ip, mac);
        }
        e
    }
}

/// Makes the device's static entries exactly `remote`: missing ones are
/// added (or moved to their new VTEP), stale ones removed. Entries that
/// are already right are not touched, so traffic to them never pauses.
pub async fn sync(handle: &Handle, vxlan: u32, remote: &RemoteTasks) -> Result<()> {
    let have = read(handle, vxlan).await?;
    let want = Entries::wanted(remote);
    let mut errors = Vec::new();
    // Adds first: an address moving between nodes is never unreachable.
    for (mac, vtep) in &want.fdb {
        if have.fdb.get(mac) != Some(vtep) {
            if let Err(e) = add_fdb(handle, vxlan, *mac, *vtep).await {
                errors.push(e);
            }
        }
    }
    for (ip, mac) in &want.neighbours {
        if have.neighbours.get(ip) != Some(mac) {
            if let Err(e) = add_neighbour(handle, vxlan, *ip, *mac).await {
                errors.push(e);
            }
        }
    }
    for (mac, vtep) in &have.fdb {
        if !want.fdb.contains_key(mac) {
            if let Err(e) = delete(handle, fdb_message(vxlan, *mac, *vtep)).await {
                errors.push(e);
            }
        }
    }
    for (ip, mac) in &have.neighbours {
        if !want.neighbours.contains_key(ip) {
            if let Err(e) = delete(handle, neighbour_message(vxlan, *ip, *mac)).await {
                errors.push(e);
            }
        }
    }
    Error::collect(errors)
}

async fn read(handle: &Handle, vxlan: u32) -> Result<Entries> {
    let mut entries = Entries::default();
    for family in [AddressFamily::Bridge, AddressFamily::Inet] {
        let mut dump = handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(Error::netlink(format!("list neighbours of link {vxlan}")))?
        {
            if msg.header.ifindex != vxlan {
                continue;
            }
            let (mut mac, mut dst) = (None, None);
            for attr in &msg.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(lla) => {
                        mac = <[u8; 6]>::try_from(lla.as_slice()).ok();
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        dst = Some(IpAddr::V4(*v4));
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        dst = Some(IpAddr::V6(*v6));
                    }
                    // FDB entries (family bridge) carry their VTEP raw.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
                        dst = match raw.len() {
                            4 => <[u8; 4]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
                            _ => None,
                        };
                    }
                    _ => {}
                }
            }
            let (Some(mac), Some(dst)) = (mac, dst) else {
                continue;
            };
            match (family, dst) {
                // With learning off, every entry with a destination on
                // the device is one netd made.
                (AddressFamily::Bridge, _) => {
                    entries.fdb.insert(mac, dst);
                }
                (_, IpAddr::V4(ip)) => {
                    entries.neighbours.insert(ip, mac);
                }
                _ => {}
            }
        }
    }
    Ok(entries)
}

async fn add_fdb(handle: &Handle, vxlan: u32, mac: [u8; 6], vtep: IpAddr) -> Result<()> {
    handle
        .neighbours()
        .add_bridge(vxlan, &mac)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(vtep)
        .replace()
        .execute()
        .await
        .map_err(Error::netlink(format!(
            "fdb entry {} -> {vtep} on link {vxlan}",
            show_mac(mac)
        )))
}

async fn add_neighbour(handle: &Handle, vxlan: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
    handle
        .neighbours()
        .add(vxlan, IpAddr::V4(ip))
        .link_layer_address(&mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(Error::netlink(format!(
            "neighbour {ip} -> {} on link {vxlan}",
            show_mac(mac)
        )))
}

fn fdb_message(vxlan: u32, mac: [u8; 6], vtep: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = vxlan;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(match vtep {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    msg
}

fn neighbour_message(vxlan: u32, ip: Ipv4Addr, mac: [u8; 6]) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = vxlan;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg
}

/// Deletes an entry; one already gone (or its device) is fine.
async fn delete(handle: &Handle, msg: NeighbourMessage) -> Result<()> {
    match handle.neighbours().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(ENOENT) | Some(ENODEV)) => Ok(()),
        Err(e) => Err(Error::netlink("delete a stale overlay entry")(e)),
    }
}

fn show_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_remote_task_gets_its_derived_mac_in_both_tables() {
        let vtep: IpAddr = "192.168.1.2".parse().expect("ip");
        let ip: Ipv4Addr = "10.0.3.7".parse().expect("ip");
        let wanted = Entries::wanted(&[(ip, vtep)].into());
        let mac = link::mac_for(ip);
        assert_eq!(wanted.fdb, [(mac, vtep)].into());
        assert_eq!(wanted.neighbours, [(ip, mac)].into());
    }
}
