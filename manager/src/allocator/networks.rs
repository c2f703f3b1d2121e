//! A network's resources, chosen once when it is created and kept for its
//! life: a VXLAN id, its subnet (the spec's, or the first free block of the
//! cluster's address pool), the gateway, and the range task addresses come
//! from. The choice is made inside the creating transaction, against every
//! network in the store, so nothing is handed out twice, whoever leads.

use std::net::Ipv4Addr;

use shoal_proto::types::v1::{Meta, Network, NetworkSpec};

use super::Subnet;
use crate::store::{State, StoreError};

/// Swarm's default address pool and block size.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_POOL_MASK_LENGTH: u32 = 24;
/// VXLAN ids below this are left to the hosts' own use (Swarm's rule).
const FIRST_VNI: u32 = 4096;
const LAST_VNI: u32 = (1 << 24) - 1;
/// The cluster's ingress network, as Swarm names it.
const INGRESS: &str = "ingress";

/// The spec `swarm init` makes the ingress network from (Swarm's: no
/// labels, not attachable); the rest is allocated as for any network, on a
/// cluster that has none yet: VXLAN id 4096 and the first block of the
/// address pool (10.0.0.0/24, gateway 10.0.0.1, on Swarm's default pool).
/// Every later network is allocated around it.
pub fn ingress_spec() -> NetworkSpec {
    NetworkSpec {
        name: INGRESS.into(),
        driver: "overlay".into(),
        ..Default::default()
    }
}

fn invalid(message: String) -> StoreError {
    StoreError::InvalidArgument(message)
}

fn parse(what: &str, cidr: &str) -> Result<Subnet, StoreError> {
    Subnet::parse(cidr).ok_or_else(|| {
        invalid(format!(
            "invalid {what} {cidr:?}: expected an IPv4 CIDR of /30 or wider, such as 10.1.2.0/24"
        ))
    })
}

fn name_of(network: &Network) -> &str {
    network.spec.as_ref().map_or("", |s| s.name.as_str())
}

/// The network `spec` asks for, with id `id` and everything allocated.
pub fn allocate_network(
    state: &State,
    id: &str,
    spec: &NetworkSpec,
) -> Result<Network, StoreError> {
    let subnet = match spec.subnet.as_str() {
        "" => pool_block(state, &spec.name)?,
        cidr => {
            let subnet = parse("subnet", cidr)?;
            if let Some(other) = state
                .networks
                .values()
                .find(|n| Subnet::parse(&n.subnet).is_some_and(|s| s.overlaps(&subnet)))
            {
                return Err(invalid(format!(
                    "subnet {subnet} overlaps network {} ({})",
                    name_of(other),
                    other.subnet
                )));
            }
            subnet
        }
    };
    let first_host = subnet.hosts().next().ok_or_else(|| {
        invalid(format!(
            "subnet {subnet} has no room for a gateway and tasks"
        ))
    })?;
    let gateway = match spec.gateway.as_str() {
        "" => first_host,
        text => {
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                invalid(format!(
                    "invalid gateway {text:?}: expected an IPv4 address"
                ))
            })?;
            if !subnet.hosts().any(|h| h == ip) {
                return Err(invalid(format!(
                    "gateway {ip} is not a host address of subnet {subnet}"
                )));
            }
            ip
        }
    };
    let ip_range = match spec.ip_range.as_str() {
        "" => String::new(),
        cidr => {
            let range = parse("ip range", cidr)?;
            if !range.within(&subnet) {
                return Err(invalid(format!(
                    "ip range {range} is not inside subnet {subnet}"
                )));
            }
            range.to_string()
        }
    };
    let mut spec = spec.clone();
    spec.driver = "overlay".into();
    Ok(Network {
        meta: Some(Meta {
            id: id.to_string(),
            ..Default::default()
        }),
        spec: Some(spec),
        vni: free_vni(state)?,
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        ip_range,
        // Not the ingress network (only `swarm init` makes that one).
        ..Default::default()
    })
}

/// The lowest VXLAN id no network holds.
fn free_vni(state: &State) -> Result<u32, StoreError> {
    let taken: std::collections::HashSet<u32> = state.networks.values().map(|n| n.vni).collect();
    (FIRST_VNI..=LAST_VNI)
        .find(|vni| !taken.contains(vni))
        .ok_or_else(|| StoreError::Unavailable("every VXLAN id is in use".into()))
}

/// The first block of the cluster's address pool that no network overlaps.
fn pool_block(state: &State, network: &str) -> Result<Subnet, StoreError> {
    let cluster = state.cluster();
    let mut pools: Vec<String> = cluster
        .map(|c| c.default_addr_pool.clone())
        .unwrap_or_default();
    if pools.is_empty() {
        pools.push(DEFAULT_POOL.to_string());
    }
    let mask_length = cluster
        .map(|c| c.default_addr_pool_mask_length)
        .filter(|m| *m != 0)
        .unwrap_or(DEFAULT_POOL_MASK_LENGTH);
    let taken: Vec<Subnet> = state
        .networks
        .values()
        .filter_map(|n| Subnet::parse(&n.subnet))
        .collect();
    for pool in &pools {
        let pool = parse("address pool", pool)?;
        let prefix = u8::try_from(mask_length)
            .unwrap_or(u8::MAX)
            .max(pool.prefix);
        if let Some(block) = pool
            .blocks(prefix)
            .find(|b| !taken.iter().any(|t| t.overlaps(b)))
        {
            return Ok(block);
        }
    }
    Err(StoreError::Unavailable(format!(
        "network {network}: the address pool ({}) has no free /{mask_length} left: remove unused networks or give a --subnet",
        pools.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::Cluster;

    fn state_with(networks: &[(&str, &str, u32)]) -> State {
        let mut state = State::default();
        for (name, subnet, vni) in networks {
            state.networks.insert(
                name.to_string(),
                Network {
                    spec: Some(NetworkSpec {
                        name: name.to_string(),
                        ..Default::default()
                    }),
                    subnet: subnet.to_string(),
                    vni: *vni,
                    ..Default::default()
                },
            );
        }
        state
    }

    fn spec(name: &str) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_network_gets_the_first_free_block_and_vni_and_its_first_host_as_gateway() {
        let state = state_with(&[("ingress", "10.0.0.0/24", 4096), ("a", "10.0.1.0/24", 4097)]);
        let network = allocate_network(&state, "id1", &spec("backend")).unwrap();
        assert_eq!(network.subnet, "10.0.2.0/24");
        assert_eq!(network.gateway, "10.0.2.1");
        assert_eq!(network.vni, 4098);
        assert_eq!(network.spec.unwrap().driver, "overlay");
    }

    #[test]
    fn the_ingress_network_is_swarms_and_nothing_else_gets_its_vni_or_subnet() {
        let mut state = State::default();
        let ingress = allocate_network(&state, "ingress-id", &ingress_spec()).unwrap();
        assert_eq!(
            (
                ingress.spec.as_ref().unwrap().name.as_str(),
                ingress.vni,
                ingress.subnet.as_str(),
                ingress.gateway.as_str()
            ),
            ("ingress", 4096, "10.0.0.0/24", "10.0.0.1")
        );
        state.networks.insert("ingress-id".into(), ingress);
        // Swarm's default pool starts at 10.0.0.0/24: the next network
        // skips the ingress's block and VXLAN id.
        let next = allocate_network(&state, "id1", &spec("backend")).unwrap();
        assert_eq!((next.vni, next.subnet.as_str()), (4097, "10.0.1.0/24"));
        state.networks.insert("id1".into(), next);
        // A freed VXLAN id is given again, never the ingress's.
        state.networks.remove("id1");
        let again = allocate_network(&state, "id2", &spec("other")).unwrap();
        assert_eq!(again.vni, 4097);
        let mut wanted = spec("web");
        wanted.subnet = "10.0.0.0/16".into();
        let clash = allocate_network(&state, "id3", &wanted).unwrap_err();
        assert_eq!(
            clash.to_string(),
            "subnet 10.0.0.0/16 overlaps network ingress (10.0.0.0/24)"
        );

        // On a cluster's own pool, the ingress gets its first block (Swarm's).
        let mut state = State::default();
        state.clusters.insert(
            "c".into(),
            Cluster {
                default_addr_pool: vec!["10.20.0.0/16".into()],
                default_addr_pool_mask_length: 26,
                ..Default::default()
            },
        );
        let ingress = allocate_network(&state, "ingress-id", &ingress_spec()).unwrap();
        assert_eq!(
            (
                ingress.vni,
                ingress.subnet.as_str(),
                ingress.gateway.as_str()
            ),
            (4096, "10.20.0.0/26", "10.20.0.1")
        );
    }

    #[test]
    fn the_clusters_pool_and_block_size_are_used_and_a_full_pool_is_a_clear_error() {
        let mut state = state_with(&[]);
        state.clusters.insert(
            "c".into(),
            Cluster {
                default_addr_pool: vec!["172.20.0.0/22".into()],
                default_addr_pool_mask_length: 23,
                ..Default::default()
            },
        );
        let first = allocate_network(&state, "1", &spec("one")).unwrap();
        assert_eq!(first.subnet, "172.20.0.0/23");
        state.networks.insert("1".into(), first);
        let second = allocate_network(&state, "2", &spec("two")).unwrap();
        assert_eq!(second.subnet, "172.20.2.0/23");
        state.networks.insert("2".into(), second);
        let full = allocate_network(&state, "3", &spec("three")).unwrap_err();
        assert!(full.to_string().contains("no free /23 left"), "{full}");
    }

    #[test]
    fn a_given_subnet_gateway_and_range_are_checked() {
        let state = state_with(&[("ingress", "10.0.0.0/24", 4096)]);
        let mut wanted = spec("web");
        wanted.subnet = "10.0.0.128/25".into();
        let clash = allocate_network(&state, "1", &wanted)
            .unwrap_err()
            .to_string();
        assert_eq!(
            clash,
            "subnet 10.0.0.128/25 overlaps network ingress (10.0.0.0/24)"
        );

        wanted.subnet = "192.168.5.0/24".into();
        wanted.gateway = "192.168.5.254".into();
        wanted.ip_range = "192.168.5.128/26".into();
        let network = allocate_network(&state, "1", &wanted).unwrap();
        assert_eq!(network.gateway, "192.168.5.254");
        assert_eq!(network.ip_range, "192.168.5.128/26");

        wanted.gateway = "192.168.6.1".into();
        let e = allocate_network(&state, "1", &wanted)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a host address of subnet 192.168.5.0/24"),
            "{e}"
        );
        wanted.gateway.clear();
        wanted.ip_range = "192.168.0.0/16".into();
        let e = allocate_network(&state, "1", &wanted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not inside subnet"), "{e}");
        wanted.subnet = "nonsense".into();
        let e = allocate_network(&state, "1", &wanted)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid subnet \"nonsense\""), "{e}");
    }
}
