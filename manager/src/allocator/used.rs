//! The addresses in use on networks: live tasks' (from the store's index
//! of them, never a scan of every task), and, gathered for the networks a
//! pass hands out addresses on, services' virtual IPs and nodes' ingress
//! addresses, plus what the pass gives itself.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::store::{address_of, State};

pub struct Used<'a> {
    state: &'a State,
    /// Not tasks' addresses, and those the pass gave.
    others: HashMap<String, HashSet<Ipv4Addr>>,
}

impl<'a> Used<'a> {
    /// What is in use on each of `networks`.
    pub fn on<'n>(state: &'a State, networks: impl IntoIterator<Item = &'n str>) -> Used<'a> {
        let ingress_id = super::ingress(state)
            .and_then(|n| n.meta.as_ref())
            .map(|m| m.id.as_str());
        let mut others = HashMap::new();
        for network in networks {
            if others.contains_key(network) {
                continue;
            }
            let mut ips = HashSet::new();
            if ingress_id == Some(network) {
                ips.extend(
                    state
                        .nodes
                        .values()
                        .filter_map(|n| address_of(&n.ingress_address)),
                );
            }
            for service in state.services.values() {
                ips.extend(
                    service
                        .virtual_ips
                        .iter()
                        .filter(|v| v.network_id == network)
                        .filter_map(|v| address_of(&v.addr)),
                );
            }
            others.insert(network.to_string(), ips);
        }
        Used { state, others }
    }

    pub fn contains(&self, network: &str, ip: Ipv4Addr) -> bool {
        self.others
            .get(network)
            .is_some_and(|ips| ips.contains(&ip))
            || self
                .state
                .task_addresses(network)
                .is_some_and(|held| held.contains_key(&ip))
    }

    pub fn insert(&mut self, network: &str, ip: Ipv4Addr) {
        match self.others.get_mut(network) {
            Some(ips) => {
                ips.insert(ip);
            }
            None => {
                self.others.insert(network.to_string(), HashSet::from([ip]));
            }
        }
    }

    /// Frees an address that is not a task's (a virtual IP being
    /// rewritten, `10.0.0.2/24`) or that this pass gave.
    pub fn free(&mut self, network: &str, cidr: &str) {
        if let (Some(ips), Some(ip)) = (self.others.get_mut(network), address_of(cidr)) {
            ips.remove(&ip);
        }
    }

    /// The highest address in use on the network.
    pub fn highest(&self, network: &str) -> Option<Ipv4Addr> {
        let tasks = self
            .state
            .task_addresses(network)
            .and_then(|held| held.keys().next_back().copied());
        let others = self
            .others
            .get(network)
            .and_then(|ips| ips.iter().max().copied());
        tasks.max(others)
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{NetworkAttachment, TaskState};

    use super::*;
    use crate::store::{Kind, Write};

    fn task(id: &str, address: &str, state: TaskState) -> Write {
        let mut task = crate::harness::task_in_state(id, state);
        task.networks = vec![NetworkAttachment {
            network_id: "net1".into(),
            address: address.into(),
            ..Default::default()
        }];
        Write::Put(task.into())
    }

    #[test]
    fn a_task_holds_its_address_while_it_lives_and_a_moved_one_frees_the_old() {
        let ip = |last: u8| Ipv4Addr::new(10, 0, 9, last);
        let mut state = State::default();
        state.apply(task("t1", "10.0.9.2/24", TaskState::Running), 1);
        state.apply(task("t2", "10.0.9.3/24", TaskState::Pending), 2);
        let used = Used::on(&state, ["net1"]);
        assert!(used.contains("net1", ip(2)) && used.contains("net1", ip(3)));
        assert!(!used.contains("net2", ip(2)));
        assert_eq!(used.highest("net1"), Some(ip(3)));

        // t1 dies: its address is free; t2 is given another one.
        state.apply(task("t1", "10.0.9.2/24", TaskState::Failed), 3);
        state.apply(task("t2", "10.0.9.7/24", TaskState::Running), 4);
        let used = Used::on(&state, ["net1"]);
        assert!(!used.contains("net1", ip(2)) && !used.contains("net1", ip(3)));
        assert_eq!(used.highest("net1"), Some(ip(7)));

        state.apply(Write::Delete(Kind::Task, "t2".into()), 5);
        assert_eq!(Used::on(&state, ["net1"]).highest("net1"), None);
    }
}
