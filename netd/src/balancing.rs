//! What the node's load balancers hold, from the managers' view: the
//! routing mesh's published ports (in the node's table) and each task's
//! virtual IPs (in the task's own table). Pure functions of the view; the
//! data plane applies what they return.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_proto::dispatcher::v1::{Backend, ServiceEndpoints};
use shoal_proto::netd::v1::TaskAttachment;
use shoal_proto::types::v1::{PortProtocol, PublishMode};

use crate::network::OverlayNetwork;
use crate::nft::task::Vip;
use crate::nft::{Protocol, PublishedPort};

/// Where this node's routing mesh sends connections.
pub struct Mesh<'a> {
    pub node_id: &'a str,
    /// The ingress network's id, when the view has one.
    pub ingress: Option<&'a str>,
}

fn addresses<'a>(backends: impl Iterator<Item = &'a Backend>) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = backends
        .filter_map(|b| match b.address.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                tracing::warn!(address = %b.address, "ignoring backend with a bad address");
                None
            }
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// One address per local task (its first in the view), for host-mode ports.
fn local_tasks<'a>(backends: &'a [Backend], node_id: &'a str) -> impl Iterator<Item = &'a Backend> {
    let mut seen = BTreeSet::new();
    backends
        .iter()
        .filter(move |b| b.node_id == node_id && seen.insert(b.task_id.as_str()))
}

/// The published ports of a view, with their backends: an ingress-mode
/// port answers on every node and reaches the service's running tasks on
/// any node, over the ingress network; a host-mode port answers only where
/// a task of the service runs, at the tasks of this node. Draining tasks
/// (about to stop) are left out.
pub fn published_ports(
    services: &[ServiceEndpoints],
    draining: &BTreeSet<String>,
    mesh: &Mesh<'_>,
) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    for svc in services {
        let live: Vec<Backend> = svc
            .backends
            .iter()
            .filter(|b| !draining.contains(&b.task_id))
            .cloned()
            .collect();
        let on_ingress = addresses(
            live.iter()
                .filter(|b| Some(b.network_id.as_str()) == mesh.ingress),
        );
        let here = addresses(local_tasks(&live, mesh.node_id));
        let here_somewhere = addresses(local_tasks(&svc.backends, mesh.node_id));
        for p in &svc.ports {
            if p.published_port == 0 {
                continue;
            }
            let host_mode = p.publish_mode == PublishMode::Host as i32;
            if host_mode && here_somewhere.is_empty() {
                // No task of the service here: the port is not open here.
                continue;
            }
            let protocol = match PortProtocol::try_from(p.protocol) {
                Ok(PortProtocol::Tcp) => Protocol::Tcp,
                Ok(PortProtocol::Udp) => Protocol::Udp,
                Err(_) => continue,
            };
            let (Ok(published), Ok(target)) = (
                u16::try_from(p.published_port),
                u16::try_from(p.target_port),
            ) else {
                tracing::warn!(service = %svc.service_name, "ignoring port outside 1..65535");
                continue;
            };
            if target == 0 {
                continue;
            }
            let backends = if host_mode || mesh.ingress.is_none() {
                here.clone()
            } else {
                on_ingress.clone()
            };
            ports.push(PublishedPort {
                protocol,
                published,
                target,
                service_id: svc.service_id.clone(),
                service_name: svc.service_name.clone(),
                backends,
            });
        }
    }
    ports
}

/// The VIPs a task's namespace balances: every service in endpoint mode
/// vip with an address on one of the task's networks, over its running
/// tasks on that network. Not on the ingress network: as in Swarm it
/// carries the routing mesh only, no service discovery.
pub fn task_vips(
    services: &[ServiceEndpoints],
    draining: &BTreeSet<String>,
    networks: &BTreeMap<String, OverlayNetwork>,
    record: &TaskAttachment,
) -> Vec<Vip> {
    let mut vips = Vec::new();
    for att in &record.networks {
        if networks.get(&att.network_id).is_none_or(|n| n.ingress) {
            continue;
        }
        for svc in services {
            let Some(addr) = svc
                .virtual_ips
                .iter()
                .find(|v| v.network_id == att.network_id)
                .and_then(|v| v.addr.split('/').next()?.parse().ok())
            else {
                continue;
            };
            let backends = addresses(
                svc.backends
                    .iter()
                    .filter(|b| b.network_id == att.network_id && !draining.contains(&b.task_id)),
            );
            vips.push(Vip {
                addr,
                backends,
                service_name: svc.service_name.clone(),
            });
        }
    }
    vips.sort();
    vips.dedup_by(|a, b| a.addr == b.addr);
    vips
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::types::v1::PortConfig;

    fn backend(task: &str, node: &str, network: &str, addr: &str) -> Backend {
        Backend {
            task_id: task.into(),
            node_id: node.into(),
            address: addr.into(),
            network_id: network.into(),
            hostname: task.into(),
        }
    }

    fn web(mode: PublishMode) -> ServiceEndpoints {
        ServiceEndpoints {
            service_id: "s1".into(),
            service_name: "web".into(),
            ports: vec![PortConfig {
                target_port: 80,
                published_port: 8080,
                publish_mode: mode as i32,
                ..Default::default()
            }],
            backends: vec![
                backend("t1", "n1", "ingress", "10.0.0.3"),
                backend("t1", "n1", "front", "10.0.1.3"),
                backend("t2", "n2", "ingress", "10.0.0.4"),
                backend("t2", "n2", "front", "10.0.1.4"),
            ],
            ..Default::default()
        }
    }

    fn backends(ports: &[PublishedPort]) -> Vec<String> {
        ports[0].backends.iter().map(|b| b.to_string()).collect()
    }

    #[test]
    fn an_ingress_port_reaches_every_task_over_ingress_and_a_host_port_only_local_ones() {
        let none = BTreeSet::new();
        let mesh = |node| Mesh {
            node_id: node,
            ingress: Some("ingress"),
        };
        let ingress = published_ports(&[web(PublishMode::Ingress)], &none, &mesh("n3"));
        assert_eq!(backends(&ingress), ["10.0.0.3", "10.0.0.4"]);
        let host = published_ports(&[web(PublishMode::Host)], &none, &mesh("n1"));
        assert_eq!(backends(&host).len(), 1);
        assert!(published_ports(&[web(PublishMode::Host)], &none, &mesh("n3")).is_empty());
        let draining = ["t2".to_string()].into();
        let drained = published_ports(&[web(PublishMode::Ingress)], &draining, &mesh("n3"));
        assert_eq!(backends(&drained), ["10.0.0.3"]);
    }
}
