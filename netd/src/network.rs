//! An overlay network as netd builds it on a node: validated from the
//! cluster's `Network` (view) or `NetworkAttachment` (attach request).

use std::net::Ipv4Addr;

use shoal_proto::types::v1::{Network, NetworkAttachment};

use crate::cidr::Ipv4Cidr;
use crate::error::{Error, Result};
use crate::names;

/// Largest VNI a VXLAN header carries (24 bits).
const VNI_MAX: u32 = (1 << 24) - 1;

/// MTU of an overlay on a 1500-byte underlay: 50 bytes of VXLAN
/// encapsulation (outer IPv4, UDP, VXLAN and inner Ethernet headers).
pub const DEFAULT_MTU: u32 = 1450;
/// VXLAN's overhead over IPv4.
pub const VXLAN_OVERHEAD: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNetwork {
    pub id: String,
    pub vni: u32,
    pub subnet: Ipv4Cidr,
    pub gateway: Ipv4Addr,
    /// Of the VXLAN device and every task interface on the network; set
    /// by the data plane from the node's underlay.
    pub mtu: u32,
    /// Known from the managers' view only; an attach request does not say.
    pub encrypted: bool,
    /// No route out of the node (no NAT, no default route through it).
    pub internal: bool,
    /// The routing mesh's network: built on every node.
    pub ingress: bool,
    /// The node's own address on the network (the ingress network's, once
    /// the managers gave one): on the bridge beside the gateway, and the
    /// bridge's MAC derives from it, so other nodes reach this node there.
    pub node_address: Option<Ipv4Addr>,
    /// Where the VXLAN device sends from: the node's WireGuard mesh
    /// address on an encrypted network (so every packet goes through the
    /// mesh), none (the routing decides) on a plain one.
    pub vtep_local: Option<std::net::Ipv6Addr>,
}

impl OverlayNetwork {
    pub fn new(id: &str, vni: u32, subnet: &str, gateway: &str) -> Result<OverlayNetwork> {
        names::validate_id("network id", id)?;
        let what = || format!("network {id}");
        if vni == 0 || vni > VNI_MAX {
            return Err(Error::invalid(
                what(),
                format!("VNI {vni} is outside 1..={VNI_MAX}"),
            ));
        }
        let subnet: Ipv4Cidr = subnet
            .parse()
            .map_err(|e| Error::invalid(what(), format!("subnet: {e}")))?;
        let subnet = Ipv4Cidr {
            addr: subnet.network(),
            len: subnet.len,
        };
        // The gateway may be given bare or with the subnet's prefix.
        let gateway: Ipv4Addr = gateway
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e| Error::invalid(what(), format!("gateway {gateway:?}: {e}")))?;
        if !subnet.contains(gateway) {
            return Err(Error::invalid(
                what(),
                format!("gateway {gateway} is outside subnet {subnet}"),
            ));
        }
        Ok(OverlayNetwork {
            id: id.to_string(),
            vni,
            subnet,
            gateway,
            mtu: DEFAULT_MTU,
            encrypted: false,
            internal: false,
            ingress: false,
            node_address: None,
            vtep_local: None,
        })
    }

    pub fn from_view(network: &Network) -> Result<OverlayNetwork> {
        let id = network
            .meta
            .as_ref()
            .map(|m| m.id.as_str())
            .unwrap_or_default();
        let spec = network.spec.clone().unwrap_or_default();
        Ok(OverlayNetwork {
            encrypted: spec.encrypted,
            internal: spec.internal,
            ingress: network.ingress,
            ..OverlayNetwork::new(id, network.vni, &network.subnet, &network.gateway)?
        })
    }

    pub fn from_attachment(att: &NetworkAttachment) -> Result<OverlayNetwork> {
        OverlayNetwork::new(&att.network_id, att.vni, &att.subnet, &att.gateway)
    }

    /// The gateway with the subnet's prefix: the bridge's address.
    pub fn gateway_cidr(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: self.gateway,
            len: self.subnet.len,
        }
    }

    /// The bridge's MAC: derived from the node's own address where it has
    /// one (unique across nodes, so a frame for it crosses the overlay to
    /// the right node), else from the gateway.
    pub fn bridge_mac(&self) -> [u8; 6] {
        crate::link::mac_for(self.node_address.unwrap_or(self.gateway))
    }

    pub fn bridge_name(&self) -> String {
        names::bridge_name(&self.id)
    }

    pub fn vxlan_name(&self) -> String {
        names::vxlan_name(&self.id)
    }
}

/// Encapsulation overhead of an encrypted network: VXLAN over IPv6 mesh
/// addresses (70 bytes) inside WireGuard over IPv6 (80 bytes).
pub const ENCRYPTED_OVERHEAD: u32 = 150;

/// The MTU of an overlay over an underlay of `underlay` bytes (1500 when
/// not known yet).
pub fn mtu_over(underlay: Option<u32>, encrypted: bool) -> u32 {
    let underlay = underlay.unwrap_or(1500);
    let overhead = if encrypted {
        ENCRYPTED_OVERHEAD
    } else {
        VXLAN_OVERHEAD
    };
    underlay.saturating_sub(overhead).max(576)
}

/// A task's address on a network, checked against the network.
pub fn task_address(net: &OverlayNetwork, att: &NetworkAttachment) -> Result<Ipv4Cidr> {
    let what = || format!("address of the task on network {}", net.id);
    let cidr: Ipv4Cidr = att
        .address
        .parse()
        .map_err(|e: String| Error::invalid(what(), e))?;
    if cidr.len != net.subnet.len || !net.subnet.contains(cidr.addr) {
        return Err(Error::invalid(
            what(),
            format!("{cidr} is not a host of {}", net.subnet),
        ));
    }
    if cidr.addr == net.gateway || cidr.addr == net.subnet.network() {
        return Err(Error::invalid(
            what(),
            format!("{cidr} is the gateway or network address"),
        ));
    }
    Ok(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_networks_are_refused_before_any_kernel_change() {
        assert!(OverlayNetwork::new("n1", 0, "10.0.1.0/24", "10.0.1.1").is_err());
        assert!(OverlayNetwork::new("n1", 1 << 24, "10.0.1.0/24", "10.0.1.1").is_err());
        assert!(OverlayNetwork::new("n1", 7, "10.0.1.0", "10.0.1.1").is_err());
        assert!(OverlayNetwork::new("n1", 7, "10.0.1.0/24", "10.0.2.1").is_err());
        assert!(OverlayNetwork::new("../x", 7, "10.0.1.0/24", "10.0.1.1").is_err());
        let net = OverlayNetwork::new("n1", 7, "10.0.1.9/24", "10.0.1.1/24").expect("valid");
        assert_eq!(net.subnet.to_string(), "10.0.1.0/24");
        assert_eq!(net.gateway_cidr().to_string(), "10.0.1.1/24");
    }

    #[test]
    fn task_address_must_be_a_host_of_the_subnet() {
        let net = OverlayNetwork::new("n1", 7, "10.0.1.0/24", "10.0.1.1").expect("valid");
        let att = |a: &str| NetworkAttachment {
            address: a.into(),
            ..Default::default()
        };
        assert!(task_address(&net, &att("10.0.1.5/24")).is_ok());
        assert!(task_address(&net, &att("10.0.1.1/24")).is_err());
        assert!(task_address(&net, &att("10.0.2.5/24")).is_err());
        assert!(task_address(&net, &att("10.0.1.5/16")).is_err());
        assert!(task_address(&net, &att("10.0.1.5")).is_err());
    }
}
