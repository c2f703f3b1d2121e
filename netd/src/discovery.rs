//! Service discovery: the names the node's embedded DNS server answers,
//! built from the managers' view and the node's attached tasks.
//!
//! On each network (not the ingress network: as in Swarm it carries the
//! routing mesh only), a service answers by its full name
//! (`<stack>_<service>`), its stack-local short name (`<service>`, as
//! `docker stack deploy` aliases it), and its aliases on that network:
//! with its VIP in endpoint mode vip, with its running tasks' addresses in
//! dnsrr. `tasks.<name>` lists the running tasks for each of those names,
//! and every running task answers by its hostname. A task asks from its
//! address on any of its networks and sees the names of all of them, its
//! first network first.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use shoal_proto::dispatcher::v1::ServiceEndpoints;
use shoal_proto::netd::v1::TaskAttachment;
use shoal_proto::types::v1::endpoint_spec::Mode as EndpointMode;

use crate::dns::{DnsClient, DnsNetwork, DnsRecord, NameTable};
use crate::network::OverlayNetwork;

/// The port of upstream resolvers named without one.
const DNS_PORT: u16 = 53;

fn bare(addr: &str) -> Option<Ipv4Addr> {
    addr.split('/').next()?.parse().ok()
}

/// The names of `service` on `network`, with their addresses.
fn service_records(service: &ServiceEndpoints, network: &str, out: &mut Vec<DnsRecord>) {
    let tasks: Vec<Ipv4Addr> = service
        .backends
        .iter()
        .filter(|b| b.network_id == network)
        .filter_map(|b| b.address.parse().ok())
        .collect();
    let vip = service
        .virtual_ips
        .iter()
        .find(|v| v.network_id == network)
        .and_then(|v| bare(&v.addr));
    let on_network = vip.is_some() || !tasks.is_empty();
    if !on_network {
        return;
    }
    let dnsrr = service.endpoint_mode == EndpointMode::Dnsrr as i32;
    let addrs = match vip {
        Some(vip) if !dnsrr => vec![vip],
        _ => tasks.clone(),
    };
    let mut names = vec![service.service_name.clone()];
    let stack_prefix = format!("{}_", service.stack);
    if let Some(short) = service
        .service_name
        .strip_prefix(&stack_prefix)
        .filter(|s| !service.stack.is_empty() && !s.is_empty())
    {
        names.push(short.to_string());
    }
    names.extend(
        service
            .aliases
            .iter()
            .filter(|a| a.network_id == network)
            .flat_map(|a| a.aliases.iter().cloned()),
    );
    for name in names {
        out.push(DnsRecord {
            name: format!("tasks.{name}"),
            addrs: tasks.clone(),
        });
        out.push(DnsRecord {
            name,
            addrs: addrs.clone(),
        });
    }
    for b in service.backends.iter().filter(|b| b.network_id == network) {
        if let (false, Ok(addr)) = (b.hostname.is_empty(), b.address.parse()) {
            out.push(DnsRecord {
                name: b.hostname.clone(),
                addrs: vec![addr],
            });
        }
    }
}

/// Upstream resolvers as the task's spec names them (`10.0.0.53`,
/// `10.0.0.53:5353`); unparsable ones were refused by the managers.
fn upstreams(record: &TaskAttachment) -> Vec<SocketAddr> {
    record
        .dns_upstreams
        .iter()
        .filter_map(|u| {
            u.parse::<SocketAddr>()
                .ok()
                .or_else(|| Some(SocketAddr::new(u.parse::<IpAddr>().ok()?, DNS_PORT)))
        })
        .collect()
}

/// The table for the networks built on this node and its attached tasks.
pub fn name_table(
    services: &[ServiceEndpoints],
    attachments: &BTreeMap<String, TaskAttachment>,
    networks: &BTreeMap<String, OverlayNetwork>,
) -> NameTable {
    let discoverable = |id: &str| networks.get(id).is_some_and(|n| !n.ingress);
    let dns_networks = networks
        .keys()
        .filter(|id| discoverable(id))
        .map(|id| {
            let mut records = Vec::new();
            for service in services {
                service_records(service, id, &mut records);
            }
            DnsNetwork {
                network_id: id.clone(),
                records,
            }
        })
        .collect();
    let mut clients = Vec::new();
    for record in attachments.values() {
        let task_networks: Vec<String> = record
            .networks
            .iter()
            .map(|a| a.network_id.clone())
            .filter(|id| discoverable(id))
            .collect();
        let upstreams = upstreams(record);
        for att in &record.networks {
            if let Some(addr) = bare(&att.address) {
                clients.push(DnsClient {
                    addr,
                    networks: task_networks.clone(),
                    upstreams: upstreams.clone(),
                });
            }
        }
    }
    NameTable::new(dns_networks, clients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::dispatcher::v1::{Backend, NetworkAliases};
    use shoal_proto::types::v1::{NetworkAttachment, VirtualIp};

    fn net(id: &str, ingress: bool) -> (String, OverlayNetwork) {
        let mut n = OverlayNetwork::new(id, 4100, "10.0.1.0/24", "10.0.1.1").expect("net");
        n.ingress = ingress;
        (id.to_string(), n)
    }

    fn backend(addr: &str, network: &str, hostname: &str) -> Backend {
        Backend {
            task_id: hostname.into(),
            node_id: "n1".into(),
            address: addr.into(),
            network_id: network.into(),
            hostname: hostname.into(),
        }
    }

    fn client(id: &str, addrs: &[(&str, &str)]) -> (String, TaskAttachment) {
        (
            id.to_string(),
            TaskAttachment {
                task_id: id.into(),
                networks: addrs
                    .iter()
                    .map(|(network, addr)| NetworkAttachment {
                        network_id: (*network).into(),
                        address: (*addr).into(),
                        ..Default::default()
                    })
                    .collect(),
                dns_upstreams: vec!["10.9.9.9".into(), "10.9.9.8:5353".into()],
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_stack_service_answers_by_full_and_short_name_alias_tasks_and_hostnames() {
        let web = ServiceEndpoints {
            service_id: "s1".into(),
            service_name: "shop_web".into(),
            stack: "shop".into(),
            virtual_ips: vec![VirtualIp {
                network_id: "front".into(),
                addr: "10.0.1.2/24".into(),
            }],
            backends: vec![
                backend("10.0.1.5", "front", "web-1"),
                backend("10.0.1.6", "front", "web-2"),
                backend("10.0.0.5", "ingress", "web-1"),
            ],
            aliases: vec![NetworkAliases {
                network_id: "front".into(),
                aliases: vec!["www".into()],
            }],
            ..Default::default()
        };
        let networks = [net("front", false), net("ingress", true)].into();
        let attachments = [client(
            "t1",
            &[("ingress", "10.0.0.9/24"), ("front", "10.0.1.9/24")],
        )]
        .into();
        let table = name_table(&[web], &attachments, &networks);
        let asking: Ipv4Addr = "10.0.1.9".parse().expect("ip");
        let view = table.client(asking).expect("the task may ask");
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        for name in ["shop_web", "web", "www"] {
            assert_eq!(view.resolve(name), Some(vec![ip("10.0.1.2")]), "{name}");
        }
        let mut tasks = view.resolve("tasks.web").expect("tasks.web");
        tasks.sort();
        assert_eq!(tasks, [ip("10.0.1.5"), ip("10.0.1.6")]);
        assert_eq!(view.resolve("web-2"), Some(vec![ip("10.0.1.6")]));
        // Its address on ingress asks too, but ingress has no names.
        assert!(table.client(ip("10.0.0.9")).is_some());
        assert_eq!(
            view.upstreams().map(|u| u.to_vec()),
            Some(vec![
                "10.9.9.9:53".parse().expect("addr"),
                "10.9.9.8:5353".parse().expect("addr")
            ])
        );
    }

    #[test]
    fn dnsrr_answers_with_the_tasks_and_a_service_off_the_network_is_unknown() {
        let db = ServiceEndpoints {
            service_name: "db".into(),
            endpoint_mode: EndpointMode::Dnsrr as i32,
            backends: vec![backend("10.0.1.7", "back", "db-1")],
            ..Default::default()
        };
        let networks = [net("back", false), net("front", false)].into();
        let attachments = [
            client("t1", &[("back", "10.0.1.9/24")]),
            client("t2", &[("front", "10.0.2.9/24")]),
        ]
        .into();
        let table = name_table(&[db], &attachments, &networks);
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        let on_back = table.client(ip("10.0.1.9")).expect("client on back");
        assert_eq!(on_back.resolve("db"), Some(vec![ip("10.0.1.7")]));
        let on_front = table.client(ip("10.0.2.9")).expect("client on front");
        assert_eq!(on_front.resolve("db"), None);
    }
}
