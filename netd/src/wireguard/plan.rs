//! What `Mesh::ensure` changes: the view's peers checked one by one (a bad
//! one is refused alone), then compared with what the device has, so that
//! an unchanged peer is not touched at all and keeps its session.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use wireguard_control::Key;

use super::control::DeviceState;
use super::{in_mesh, mesh_addr, MeshConfig, Refused};
use crate::error::Error;

/// A peer as the device must have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub node_id: String,
    pub key: Key,
    pub endpoint: SocketAddr,
    /// The peer's mesh address: its only allowed IP (/128).
    pub addr: Ipv6Addr,
}

/// Checks every peer of `config` on its own: the valid ones, and an error
/// naming the node for each refused one.
pub(crate) fn validate(config: &MeshConfig, own: &Key) -> (Vec<Peer>, Vec<Refused>) {
    let mut refused = Vec::new();
    let mut valid: Vec<Peer> = Vec::new();
    let refuse = |refused: &mut Vec<Refused>, node_id: &str, reason: String| {
        refused.push(Refused {
            node_id: node_id.to_string(),
            error: Error::invalid(format!("WireGuard peer {node_id:?}"), reason),
        })
    };
    for p in &config.peers {
        if p.node_id.is_empty() {
            refuse(&mut refused, &p.node_id, "no node id".into());
            continue;
        }
        if p.node_id == config.node_id {
            refuse(&mut refused, &p.node_id, "it is this node".into());
            continue;
        }
        let key = match Key::from_base64(p.public_key.trim()) {
            Ok(k) => k,
            Err(_) => {
                refuse(
                    &mut refused,
                    &p.node_id,
                    format!(
                        "public key {:?} is not 32 bytes of base64",
                        shorten(&p.public_key)
                    ),
                );
                continue;
            }
        };
        if key == Key::zero() {
            refuse(&mut refused, &p.node_id, "public key is all zeros".into());
            continue;
        }
        if &key == own {
            refuse(
                &mut refused,
                &p.node_id,
                "public key is this node's own".into(),
            );
            continue;
        }
        let ep = p.endpoint;
        if ep.port() == 0 || ep.ip().is_unspecified() || ep.ip().is_multicast() {
            refuse(
                &mut refused,
                &p.node_id,
                format!("endpoint {ep} is not a unicast address and port"),
            );
            continue;
        }
        if let IpAddr::V6(v6) = ep.ip() {
            if in_mesh(v6) {
                refuse(
                    &mut refused,
                    &p.node_id,
                    format!("endpoint {ep} is inside the mesh itself"),
                );
                continue;
            }
        }
        valid.push(Peer {
            node_id: p.node_id.clone(),
            key,
            endpoint: ep,
            addr: mesh_addr(&p.node_id),
        });
    }

    // One peer per node, one node per key: WireGuard tells peers apart by
    // key, so two nodes claiming one key (a copied state dir) cannot both
    // be right, and neither is trusted.
    let mut seen_nodes = HashSet::new();
    let mut keys: HashMap<Key, Vec<String>> = HashMap::new();
    for p in &valid {
        keys.entry(p.key.clone())
            .or_default()
            .push(p.node_id.clone());
    }
    let mut peers = Vec::new();
    for p in valid {
        if !seen_nodes.insert(p.node_id.clone()) {
            refuse(
                &mut refused,
                &p.node_id,
                "the view names this node twice".into(),
            );
            continue;
        }
        let claimants = &keys[&p.key];
        if claimants.len() > 1 {
            refuse(
                &mut refused,
                &p.node_id,
                format!("nodes {claimants:?} all claim the same public key"),
            );
            continue;
        }
        peers.push(p);
    }
    (peers, refused)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The changes that bring the device to the config.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub set_private_key: bool,
    pub set_listen_port: bool,
    /// Peers the config no longer names (public keys).
    pub remove: Vec<Key>,
    /// Peers the device has with another endpoint, allowed IPs or a
    /// keepalive.
    pub update: Vec<Peer>,
    pub add: Vec<Peer>,
}

#[cfg(test)]
impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

/// Compares the device with the config. `configured` is the endpoint last
/// set per peer: WireGuard follows a peer that roams (its endpoint becomes
/// the address its packets come from), and that is no reason to set the
/// endpoint again.
pub(crate) fn diff(
    current: &DeviceState,
    own: &Key,
    listen_port: u16,
    peers: &[Peer],
    configured: &HashMap<Key, SocketAddr>,
) -> Plan {
    let mut plan = Plan {
        set_private_key: current.public_key.as_ref() != Some(own),
        set_listen_port: current.listen_port != listen_port,
        ..Plan::default()
    };
    let wanted: BTreeMap<&[u8], &Peer> = peers.iter().map(|p| (p.key.as_bytes(), p)).collect();
    let mut present = HashSet::new();
    for have in &current.peers {
        let Some(want) = wanted.get(have.public_key.as_bytes()) else {
            plan.remove.push(have.public_key.clone());
            continue;
        };
        present.insert(have.public_key.clone());
        let ips_match = have.allowed_ips == [(IpAddr::V6(want.addr), 128)];
        let endpoint_matches = have.endpoint == Some(want.endpoint)
            || configured.get(&have.public_key) == Some(&want.endpoint);
        let keepalive_off = have.keepalive.is_none();
        if !(ips_match && endpoint_matches && keepalive_off) {
            plan.update.push((*want).clone());
        }
    }
    plan.add = peers
        .iter()
        .filter(|p| !present.contains(&p.key))
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wireguard::control::PeerState;
    use crate::wireguard::{MeshPeer, NodeKey};

    fn config(peers: Vec<MeshPeer>) -> MeshConfig {
        MeshConfig {
            node_id: "self".into(),
            key: NodeKey::generate(),
            listen_port: 51820,
            underlay_mtu: 1500,
            peers,
        }
    }

    fn peer(node: &str, key: &str, endpoint: &str) -> MeshPeer {
        MeshPeer {
            node_id: node.into(),
            public_key: key.into(),
            endpoint: endpoint.parse().unwrap(),
        }
    }

    fn pubkey() -> String {
        NodeKey::generate().public_key()
    }

    #[test]
    fn a_bad_peer_is_refused_alone_and_named() {
        let good = pubkey();
        let cfg = config(vec![
            peer("n-bad", "not-a-key", "192.0.2.2:51820"),
            peer("n-good", &good, "192.0.2.3:51820"),
            peer("n-zero", &Key::zero().to_base64(), "192.0.2.4:51820"),
            peer("n-port", &pubkey(), "192.0.2.5:0"),
            peer("self", &pubkey(), "192.0.2.6:51820"),
            peer("n-loop", &pubkey(), "[fdc5:5a1::1]:51820"),
        ]);
        let (peers, refused) = validate(&cfg, cfg.key.public());
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].node_id, "n-good");
        assert_eq!(peers[0].addr, mesh_addr("n-good"));
        let names: Vec<&str> = refused.iter().map(|r| r.node_id.as_str()).collect();
        assert_eq!(names, ["n-bad", "n-zero", "n-port", "self", "n-loop"]);
        assert!(refused[0].error.to_string().contains("n-bad"));
        assert!(refused[0].error.to_string().contains("not-a-key"));
    }

    #[test]
    fn nodes_sharing_a_key_are_all_refused() {
        let shared = pubkey();
        let cfg = config(vec![
            peer("n1", &shared, "192.0.2.2:51820"),
            peer("n2", &shared, "192.0.2.3:51820"),
            peer("n3", &pubkey(), "192.0.2.4:51820"),
            peer("n3", &pubkey(), "192.0.2.5:51820"),
        ]);
        let (peers, refused) = validate(&cfg, cfg.key.public());
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].endpoint, "192.0.2.4:51820".parse().unwrap());
        let names: Vec<&str> = refused.iter().map(|r| r.node_id.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n3"]);
    }

    fn state_of(own: &NodeKey, peers: &[Peer]) -> DeviceState {
        DeviceState {
            public_key: Some(own.public().clone()),
            listen_port: 51820,
            peers: peers
                .iter()
                .map(|p| PeerState {
                    public_key: p.key.clone(),
                    endpoint: Some(p.endpoint),
                    allowed_ips: vec![(IpAddr::V6(p.addr), 128)],
                    keepalive: None,
                    handshake_age: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn an_unchanged_device_needs_nothing() {
        let cfg = config(vec![
            peer("n1", &pubkey(), "192.0.2.2:51820"),
            peer("n2", &pubkey(), "192.0.2.3:51820"),
        ]);
        let (peers, _) = validate(&cfg, cfg.key.public());
        let current = state_of(&cfg.key, &peers);
        let plan = diff(&current, cfg.key.public(), 51820, &peers, &HashMap::new());
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn changes_touch_only_the_peers_that_changed() {
        let cfg = config(vec![
            peer("n1", &pubkey(), "192.0.2.2:51820"),
            peer("n2", &pubkey(), "192.0.2.3:51820"),
            peer("n3", &pubkey(), "192.0.2.4:51820"),
        ]);
        let (peers, _) = validate(&cfg, cfg.key.public());
        let mut current = state_of(&cfg.key, &peers[..2]);
        current.listen_port = 40000;
        // n2 roamed: the device saw it at another address.
        current.peers[1].endpoint = Some("198.51.100.9:3333".parse().unwrap());
        let gone = NodeKey::generate().public().clone();
        current.peers.push(PeerState {
            public_key: gone.clone(),
            ..current.peers[0].clone()
        });
        let mut moved = peers.clone();
        moved[0].endpoint = "192.0.2.22:51820".parse().unwrap();
        let configured = HashMap::from([
            (peers[0].key.clone(), peers[0].endpoint),
            (peers[1].key.clone(), peers[1].endpoint),
        ]);
        let plan = diff(&current, cfg.key.public(), 51820, &moved, &configured);
        assert!(!plan.set_private_key);
        assert!(plan.set_listen_port);
        assert_eq!(plan.remove, vec![gone]);
        assert_eq!(plan.update, vec![moved[0].clone()]);
        assert_eq!(plan.add, vec![moved[2].clone()]);
    }

    #[test]
    fn a_keepalive_or_foreign_allowed_ip_is_corrected() {
        let cfg = config(vec![peer("n1", &pubkey(), "192.0.2.2:51820")]);
        let (peers, _) = validate(&cfg, cfg.key.public());
        let mut current = state_of(&cfg.key, &peers);
        current.peers[0].keepalive = Some(25);
        let plan = diff(&current, cfg.key.public(), 51820, &peers, &HashMap::new());
        assert_eq!(plan.update.len(), 1);
        let mut current = state_of(&cfg.key, &peers);
        current.peers[0]
            .allowed_ips
            .push(("10.0.0.0".parse().unwrap(), 8));
        let plan = diff(&current, cfg.key.public(), 51820, &peers, &HashMap::new());
        assert_eq!(plan.update.len(), 1);
        let other = NodeKey::generate();
        let plan = diff(&current, other.public(), 51820, &peers, &HashMap::new());
        assert!(plan.set_private_key);
    }
}
