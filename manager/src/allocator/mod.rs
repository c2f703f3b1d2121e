//! The allocator: network resources. Networks get their VXLAN id and subnet
//! when they are created (`networks.rs`) and published ports when a service
//! is written (`ports.rs`), so a refusal changes nothing; task addresses are
//! given to new tasks here (a leader component), which moves them to
//! pending for the scheduler.
//!
//! Addresses are handed out serially, as Swarm's IPAM does: each network
//! goes on from the address it gave last and wraps around at the end, so a
//! freed address is reused as late as possible (clients' DNS answers and
//! neighbour caches for it have long expired by then).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use shoal_proto::types::v1::{
    Network, NetworkAttachment, PublishMode, ServiceSpec, Task, TaskState,
};

use crate::error::ManagerError;
use crate::leader::{Component, LeaderEnv};
mod networks;
mod ports;
mod subnet;
mod used;
mod vips;

pub use networks::{allocate_network, ingress_spec, DEFAULT_POOL, DEFAULT_POOL_MASK_LENGTH};
pub use ports::allocate_ports;
pub use subnet::Subnet;
use used::Used;
pub use vips::allocate_vips;

use crate::store::{watch, Change, Kind, State, Store, StoreError, Tx};

pub struct Allocator {
    store: Arc<Store>,
    /// The address each network handed out last. Held by the leader only:
    /// a new leader goes on from the highest address in use.
    last_given: Mutex<LastGiven>,
}

/// Network id to the address it handed out last.
type LastGiven = HashMap<String, Ipv4Addr>;

impl Component for Allocator {
    const NAME: &'static str = "allocator";

    fn build(env: &LeaderEnv) -> Self {
        Allocator {
            store: env.store.clone(),
            last_given: Mutex::default(),
        }
    }

    async fn run(self) -> Result<(), ManagerError> {
        watch::run_passes(&self.store, Self::NAME, relevant, watch::NO_SETTLE, || {
            self.pass()
        })
        .await;
        Ok(())
    }
}

impl Allocator {
    pub async fn pass(&self) -> Result<(), StoreError> {
        self.store
            .update(|state, tx| {
                let new_tasks: Vec<&Task> = state
                    .waiting_tasks()
                    .filter(|t| t.observed_state() == TaskState::New)
                    .collect();
                let ingress = ingress(state)
                    .filter(|_| state.nodes.values().any(|n| n.ingress_address.is_empty()));
                if new_tasks.is_empty() && ingress.is_none() {
                    // Most commits are status reports: nothing to give.
                    return Ok(());
                }
                let no_spec = ServiceSpec::default();
                let spec_of = |task: &Task| {
                    state
                        .services
                        .get(&task.service_id)
                        .and_then(|s| s.spec.as_ref())
                        .unwrap_or(&no_spec)
                };
                let mut networks: BTreeSet<&str> = new_tasks
                    .iter()
                    .flat_map(|t| networks_of(state, spec_of(t)))
                    .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str()))
                    .collect();
                networks.extend(ingress.and_then(|n| n.meta.as_ref()).map(|m| m.id.as_str()));
                let mut used = Used::on(state, networks);
                let mut last_given = self.last_given.lock().unwrap_or_else(|e| e.into_inner());
                allocate_nodes(state, tx, &mut used);
                for task in new_tasks {
                    allocate_task(state, task, spec_of(task), tx, &mut used, &mut last_given);
                }
                Ok(())
            })
            .await
    }
}

fn relevant(change: &Change) -> bool {
    matches!(change, Change::Put { new, .. } if matches!(new.kind(), Kind::Task | Kind::Node))
}

/// Gives every node without one an address on the ingress network (as
/// Swarm's ingress sandbox has): the routing mesh on that node forwards
/// connections to other nodes' tasks from it. From the top of the range
/// down, out of the way of task addresses (which go up); freed with the
/// node.
fn allocate_nodes(state: &State, tx: &mut Tx, used: &mut Used) {
    let Some(ingress) = ingress(state) else {
        return;
    };
    let network_id = ingress.meta.as_ref().map_or("", |m| m.id.as_str());
    let Some(subnet) = Subnet::parse(&ingress.subnet) else {
        return;
    };
    let range = Subnet::parse(&ingress.ip_range).unwrap_or(subnet);
    let gateway: Option<Ipv4Addr> = ingress.gateway.parse().ok();
    for node in state.nodes.values() {
        if !node.ingress_address.is_empty() {
            continue;
        }
        let free = range
            .hosts()
            .rev()
            .find(|ip| Some(*ip) != gateway && !used.contains(network_id, *ip));
        let Some(ip) = free else {
            let id = node.meta.as_ref().map_or("", |m| m.id.as_str());
            tracing::warn!(node = %id, "the ingress network has no free address for the node");
            continue;
        };
        used.insert(network_id, ip);
        let mut node = node.clone();
        node.ingress_address = format!("{ip}/{}", subnet.prefix);
        tx.put(node);
    }
}

/// Gives a new task its addresses (pending), or shuts it down if it is no
/// longer wanted. A task whose service is gone gets the ingress network
/// (and is shut down by the orchestrator soon after).
fn allocate_task(
    state: &State,
    task: &Task,
    spec: &ServiceSpec,
    tx: &mut Tx,
    used: &mut Used,
    last_given: &mut LastGiven,
) {
    let mut task = task.clone();
    let status = task.status.get_or_insert_with(Default::default);
    status.timestamp = tx.now();
    if task.desired_state > TaskState::Running as i32 {
        // Never placed anywhere: nothing to stop.
        status.state = TaskState::Shutdown as i32;
        status.message = "shut down before it was scheduled".into();
        tx.put(task);
        return;
    }
    let mut attachments = Vec::new();
    let mut failure = None;
    for network in networks_of(state, spec) {
        match attach(network, used, last_given) {
            Some(a) => attachments.push(a),
            None => {
                failure = Some(format!(
                    "network {} has no free address",
                    network.spec.clone().unwrap_or_default().name
                ))
            }
        }
    }
    match failure {
        Some(err) => {
            if status.err != err {
                status.err = err;
                tx.put(task);
            }
        }
        None => {
            task.networks = attachments;
            let status = task.status.get_or_insert_with(Default::default);
            status.state = TaskState::Pending as i32;
            status.message = "pending task scheduling".into();
            status.err.clear();
            tx.put(task);
        }
    }
}

/// The cluster's ingress network (`swarm init` makes it: Swarm's `ingress`,
/// the network `Cluster.default_network_id` names).
pub fn ingress(state: &State) -> Option<&Network> {
    state
        .cluster()
        .and_then(|c| state.networks.get(&c.default_network_id))
}

/// Whether the network is the cluster's ingress network.
pub fn is_ingress(state: &State, network: &Network) -> bool {
    let id = network.meta.as_ref().map_or("", |m| m.id.as_str());
    !id.is_empty() && state.cluster().is_some_and(|c| c.default_network_id == id)
}

/// Whether the service publishes a port in ingress mode (Swarm's
/// `IsIngressNetworkNeeded`: the routing mesh reaches its tasks over the
/// ingress network).
pub fn publishes_ingress(spec: &ServiceSpec) -> bool {
    spec.endpoint.as_ref().is_some_and(|e| {
        e.ports
            .iter()
            .any(|p| p.publish_mode == PublishMode::Ingress as i32)
    })
}

/// The networks a service's tasks attach to, and it has a virtual IP on;
/// the one rule, read by task addresses, virtual IPs and `network rm`:
/// the networks its spec names, in its order, then the ingress network
/// when it publishes a port in ingress mode (Swarm's rule); a service that
/// names no network is on the ingress network alone (unlike Swarm, which
/// leaves its tasks on no overlay: they need a network for outbound access).
pub fn networks_of<'a>(state: &'a State, spec: &ServiceSpec) -> Vec<&'a Network> {
    let mut networks: Vec<&Network> = Vec::new();
    for network in spec
        .networks
        .iter()
        .filter_map(|r| state.find_network(r).ok())
    {
        if !networks.iter().any(|n| n.meta == network.meta) {
            networks.push(network);
        }
    }
    if spec.networks.is_empty() || publishes_ingress(spec) {
        if let Some(ingress) = ingress(state) {
            if !networks.iter().any(|n| n.meta == ingress.meta) {
                networks.push(ingress);
            }
        }
    }
    networks
}

fn attach(
    network: &Network,
    used: &mut Used,
    last_given: &mut LastGiven,
) -> Option<NetworkAttachment> {
    let id = network
        .meta
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let subnet = Subnet::parse(&network.subnet)?;
    // Task addresses come from the network's ip range where it has one.
    let range = Subnet::parse(&network.ip_range).unwrap_or(subnet);
    let gateway: Option<Ipv4Addr> = network.gateway.parse().ok();
    let free =
        |ip: &Ipv4Addr| Some(*ip) != gateway && subnet.contains(*ip) && !used.contains(&id, *ip);
    let after = last_given.get(&id).copied().or_else(|| used.highest(&id));
    let ip = match after {
        Some(after) => range.hosts_after(after).find(free)?,
        None => range.hosts().find(free)?,
    };
    used.insert(&id, ip);
    last_given.insert(id.clone(), ip);
    Some(NetworkAttachment {
        network_id: id,
        network_name: network
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        vni: network.vni,
        address: format!("{ip}/{}", subnet.prefix),
        gateway: network.gateway.clone(),
        subnet: network.subnet.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_hosts_skip_network_and_broadcast() {
        let s = Subnet::parse("10.0.1.7/30").unwrap();
        let hosts: Vec<_> = s.hosts().collect();
        assert_eq!(
            hosts,
            vec![Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6)]
        );
        assert!(Subnet::parse("10.0.1.0/33").is_none());
        assert!(Subnet::parse("nonsense").is_none());
    }

    #[test]
    fn addresses_are_handed_out_serially_and_freed_ones_come_last() {
        let network = Network {
            meta: Some(shoal_proto::types::v1::Meta {
                id: "net1".into(),
                ..Default::default()
            }),
            subnet: "10.0.9.0/29".into(),
            gateway: "10.0.9.1".into(),
            ..Default::default()
        };
        let state = State::default();
        let mut used = Used::on(&state, ["net1"]);
        let mut last_given = LastGiven::new();
        let mut give = |used: &mut Used| attach(&network, used, &mut last_given).map(|a| a.address);
        let first: Vec<_> = (0..3).filter_map(|_| give(&mut used)).collect();
        assert_eq!(first, ["10.0.9.2/29", "10.0.9.3/29", "10.0.9.4/29"]);
        // The first task goes away: its address is reused only after the
        // rest of the subnet, wrapping around the end.
        used.free("net1", "10.0.9.2/29");
        assert_eq!(give(&mut used).as_deref(), Some("10.0.9.5/29"));
        assert_eq!(give(&mut used).as_deref(), Some("10.0.9.6/29"));
        assert_eq!(give(&mut used).as_deref(), Some("10.0.9.2/29"));
        assert_eq!(give(&mut used), None, "the subnet is full");

        // A new leader (nothing given yet) goes on after the highest in use.
        let mut used = Used::on(&state, ["net1"]);
        used.insert("net1", Ipv4Addr::new(10, 0, 9, 4));
        let address = attach(&network, &mut used, &mut LastGiven::new()).map(|a| a.address);
        assert_eq!(address.as_deref(), Some("10.0.9.5/29"));
    }
}

#[cfg(test)]
mod harness_tests {
    use shoal_proto::types::v1::{Task, TaskState};

    use crate::harness::{id, running, service, tasks_of, Harness};

    fn address(task: &Task) -> String {
        task.networks
            .first()
            .map(|a| a.address.clone())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn tasks_get_distinct_addresses_and_a_replacement_does_not_reuse_a_fresh_one() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let web = harness.create_service(service("web", "web", 3)).await;
        let tasks = harness
            .until("3 running", |s| {
                let tasks = running(s, &web);
                (tasks.len() == 3).then_some(tasks)
            })
            .await;
        let mut addresses: Vec<String> = tasks.iter().map(address).collect();
        addresses.sort();
        // .2 is the service's virtual IP.
        assert_eq!(addresses, ["10.0.0.3/24", "10.0.0.4/24", "10.0.0.5/24"]);
        let attachment = &tasks[0].networks[0];
        assert_eq!(tasks[0].networks.len(), 1);
        assert_eq!(attachment.network_name, "ingress");
        assert_eq!(
            (attachment.vni, attachment.gateway.as_str()),
            (4096, "10.0.0.1")
        );

        // The task holding .3 dies: its replacement gets the next address,
        // and .3 stays unused until the subnet wraps around.
        let holder = tasks.iter().find(|t| address(t) == "10.0.0.3/24").unwrap();
        harness.exit(&id(holder), 1).await;
        let replacement = harness
            .until("the replacement running", |s| {
                running(s, &web).into_iter().find(|t| t.slot == holder.slot)
            })
            .await;
        assert_eq!(address(&replacement), "10.0.0.6/24");
    }

    #[tokio::test]
    async fn every_node_gets_its_own_ingress_address_from_the_top_apart_from_tasks() {
        let harness = Harness::start().await;
        let n1 = harness.add_node("n1").await;
        let n2 = harness.add_node("n2").await;
        let web = harness.create_service(service("web", "web", 2)).await;
        let tasks = harness
            .until("2 running", |s| {
                let tasks = running(s, &web);
                (tasks.len() == 2).then_some(tasks)
            })
            .await;
        let of = |id: &str| {
            harness
                .store
                .view(|s| s.nodes.get(id).map(|n| n.ingress_address.clone()))
                .unwrap_or_default()
        };
        let mut nodes = [of(&n1), of(&n2)];
        nodes.sort();
        assert_eq!(nodes, ["10.0.0.253/24", "10.0.0.254/24"]);
        for t in &tasks {
            assert!(!nodes.contains(&address(t)), "{} taken twice", address(t));
        }
    }

    fn names(task: &Task) -> Vec<&str> {
        task.networks
            .iter()
            .map(|a| a.network_name.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_service_publishing_in_ingress_mode_is_on_the_ingress_network_too() {
        use shoal_proto::types::v1::{EndpointSpec, PortConfig, PublishMode};
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let backend = harness.add_network("backend", "10.80.0.0/24", "").await;
        let ports = |mode: PublishMode| EndpointSpec {
            ports: vec![PortConfig {
                target_port: 80,
                published_port: 8080,
                publish_mode: mode as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut spec = service("api", "api", 1);
        spec.networks = vec!["backend".into()];
        let api = harness.create_service(spec).await;
        let first = harness
            .until("api running", |s| running(s, &api).into_iter().next())
            .await;
        assert_eq!(names(&first), ["backend"], "no port, no ingress");
        assert_eq!(harness.service(&api).virtual_ips.len(), 1);

        // A port in host mode does not need the routing mesh.
        harness
            .update_service(&api, |s| s.endpoint = Some(ports(PublishMode::Host)))
            .await;
        let host = harness
            .until("api rolled with a host port", |s| {
                running(s, &api).into_iter().find(|t| t.meta != first.meta)
            })
            .await;
        assert_eq!(names(&host), ["backend"]);

        // Published in ingress mode: its own network first, then ingress,
        // with a virtual IP on each.
        harness
            .update_service(&api, |s| s.endpoint = Some(ports(PublishMode::Ingress)))
            .await;
        let meshed = harness
            .until("api rolled onto ingress", |s| {
                running(s, &api)
                    .into_iter()
                    .find(|t| t.meta != first.meta && t.meta != host.meta)
            })
            .await;
        assert_eq!(names(&meshed), ["backend", "ingress"]);
        assert!(
            meshed.networks[1].address.starts_with("10.0.0."),
            "{meshed:?}"
        );
        let vips = harness.service(&api).virtual_ips;
        let on: Vec<&str> = vips.iter().map(|v| v.network_id.as_str()).collect();
        assert_eq!(on, [backend.as_str(), crate::harness::DEFAULT_NETWORK_ID]);

        // A service naming no network is on ingress once, ports or not.
        let mut spec = service("web", "web", 1);
        spec.endpoint = Some(ports(PublishMode::Ingress));
        spec.endpoint.as_mut().unwrap().ports[0].published_port = 8081;
        let web = harness.create_service(spec).await;
        let task = harness
            .until("web running", |s| running(s, &web).into_iter().next())
            .await;
        assert_eq!(names(&task), ["ingress"]);
        assert_eq!(harness.service(&web).virtual_ips.len(), 1);
    }

    #[tokio::test]
    async fn tasks_of_a_created_network_get_addresses_from_its_ip_range() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let spec = shoal_proto::types::v1::NetworkSpec {
            name: "backend".into(),
            subnet: "10.70.0.0/24".into(),
            ip_range: "10.70.0.64/28".into(),
            ..Default::default()
        };
        crate::controlapi::validate::network_spec(&spec).unwrap();
        harness
            .store
            .update(|s, tx| crate::controlapi::networks::create(s, tx, "backend-id", spec))
            .await
            .unwrap();
        let mut db = service("db", "db", 3);
        db.networks = vec!["backend".into()];
        let db = harness.create_service(db).await;
        let tasks = harness
            .until("3 running", |s| {
                let tasks = running(s, &db);
                (tasks.len() == 3).then_some(tasks)
            })
            .await;
        let mut addresses: Vec<String> = tasks.iter().map(address).collect();
        addresses.sort();
        assert_eq!(
            addresses,
            ["10.70.0.66/24", "10.70.0.67/24", "10.70.0.68/24"]
        );
        let attachment = &tasks[0].networks[0];
        assert_eq!(
            (attachment.vni, attachment.gateway.as_str()),
            (4097, "10.70.0.1")
        );
    }

    #[tokio::test]
    async fn a_full_subnet_is_a_clear_error_and_freed_addresses_are_given_again() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        // 10.0.9.0/29: .1 is the gateway, .2 to .6 for the virtual IP and tasks.
        harness.add_network("tiny", "10.0.9.0/29", "10.0.9.1").await;
        let mut spec = service("big", "big", 5);
        spec.networks = vec!["tiny".into()];
        let big = harness.create_service(spec).await;
        harness
            .until("4 running", |s| (running(s, &big).len() == 4).then_some(()))
            .await;
        harness.settle().await;
        let waiting: Vec<Task> = harness
            .tasks(&big)
            .into_iter()
            .filter(|t| t.observed_state() == TaskState::New)
            .collect();
        assert_eq!(waiting.len(), 1);
        assert_eq!(
            waiting[0].status.as_ref().unwrap().err,
            "network tiny has no free address"
        );

        // Once the service goes, its addresses are free for others.
        harness.remove_service(&big).await;
        harness
            .until("the removed service's tasks gone", |s| {
                tasks_of(s, &big).is_empty().then_some(())
            })
            .await;
        let mut spec = service("next", "next", 4);
        spec.networks = vec!["tiny".into()];
        let next = harness.create_service(spec).await;
        let tasks = harness
            .until("4 running on the freed addresses", |s| {
                let tasks = running(s, &next);
                (tasks.len() == 4).then_some(tasks)
            })
            .await;
        let mut addresses: Vec<String> = tasks.iter().map(address).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 4);
    }
}
