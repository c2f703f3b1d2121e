//! The addresses in use, per network: live tasks', services' virtual IPs
//! and nodes' ingress addresses. Gathered for the networks a pass hands
//! out addresses on, from those networks' tasks only (the store indexes
//! tasks by network): placing one task must not cost a look at every
//! task of the cluster.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::store::State;

#[derive(Debug, Default)]
pub struct Used(HashMap<String, HashSet<Ipv4Addr>>);

fn ip_of(cidr: &str) -> Option<Ipv4Addr> {
    cidr.split('/').next().and_then(|ip| ip.parse().ok())
}

impl Used {
    /// What is in use on each of `networks`.
    pub fn on<'a>(state: &State, networks: impl IntoIterator<Item = &'a str>) -> Used {
        let mut used = Used::default();
        let ingress_id = super::ingress(state)
            .and_then(|n| n.meta.as_ref())
            .map(|m| m.id.as_str());
        for network in networks {
            if used.0.contains_key(network) {
                continue;
            }
            let mut ips = HashSet::new();
            for task in state.tasks_on_network(network) {
                if task.observed_state().is_terminal() {
                    continue;
                }
                ips.extend(
                    task.networks
                        .iter()
                        .filter(|a| a.network_id == network)
                        .filter_map(|a| ip_of(&a.address)),
                );
            }
            if ingress_id == Some(network) {
                ips.extend(
                    state
                        .nodes
                        .values()
                        .filter_map(|n| ip_of(&n.ingress_address)),
                );
            }
            for service in state.services.values() {
                ips.extend(
                    service
                        .virtual_ips
                        .iter()
                        .filter(|v| v.network_id == network)
                        .filter_map(|v| ip_of(&v.addr)),
                );
            }
            used.0.insert(network.to_string(), ips);
        }
        used
    }

    pub fn contains(&self, network: &str, ip: Ipv4Addr) -> bool {
        self.0.get(network).is_some_and(|ips| ips.contains(&ip))
    }

    pub fn insert(&mut self, network: &str, ip: Ipv4Addr) {
        match self.0.get_mut(network) {
            Some(ips) => {
                ips.insert(ip);
            }
            None => {
                self.0.insert(network.to_string(), HashSet::from([ip]));
            }
        }
    }

    /// Frees an address that a virtual IP being rewritten held, given
    /// with its prefix (`10.0.0.2/24`).
    pub fn remove(&mut self, network: &str, cidr: &str) {
        if let (Some(ips), Some(ip)) = (self.0.get_mut(network), ip_of(cidr)) {
            ips.remove(&ip);
        }
    }

    /// The highest address in use on the network.
    pub fn highest(&self, network: &str) -> Option<Ipv4Addr> {
        self.0
            .get(network)
            .and_then(|ips| ips.iter().max().copied())
    }
}
