//! Services' virtual IPs: one address per network a service in endpoint
//! mode vip is on, given when the service is written (inside the writing
//! transaction) and kept for as long as it stays on that network. Virtual
//! IPs and task addresses come from the same range and never collide.

use std::net::Ipv4Addr;

use shoal_proto::types::v1::{endpoint_spec::Mode, ServiceSpec, VirtualIp};

use super::{networks_of, Subnet, Used};
use crate::store::{State, StoreError};

pub fn allocate_vips(
    state: &State,
    service_id: &str,
    spec: &ServiceSpec,
    current: &[VirtualIp],
) -> Result<Vec<VirtualIp>, StoreError> {
    let mode = spec.endpoint.as_ref().map_or(Mode::Vip as i32, |e| e.mode);
    if mode == Mode::Dnsrr as i32 {
        return Ok(Vec::new());
    }
    let networks = networks_of(state, spec);
    let mut used = Used::on(
        state,
        networks
            .iter()
            .filter_map(|n| n.meta.as_ref().map(|m| m.id.as_str())),
    );
    // The service's own addresses are free for it again (kept below).
    for vip in state
        .services
        .get(service_id)
        .map(|s| s.virtual_ips.as_slice())
        .unwrap_or_default()
    {
        used.free(&vip.network_id, &vip.addr);
    }
    let mut vips = Vec::new();
    for network in networks {
        let network_id = network
            .meta
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        if let Some(kept) = current.iter().find(|v| v.network_id == network_id) {
            vips.push(kept.clone());
            continue;
        }
        let name = network.spec.as_ref().map_or("", |s| s.name.as_str());
        let full = || {
            StoreError::Unavailable(format!(
                "service {}: network {name} has no free address for its virtual IP",
                spec.name
            ))
        };
        let subnet = Subnet::parse(&network.subnet).ok_or_else(full)?;
        let range = Subnet::parse(&network.ip_range).unwrap_or(subnet);
        let gateway: Option<Ipv4Addr> = network.gateway.parse().ok();
        let ip = range
            .hosts()
            .find(|ip| Some(*ip) != gateway && !used.contains(&network_id, *ip))
            .ok_or_else(full)?;
        used.insert(&network_id, ip);
        vips.push(VirtualIp {
            network_id,
            addr: format!("{ip}/{}", subnet.prefix),
        });
    }
    Ok(vips)
}

#[cfg(test)]
mod tests {
    use shoal_proto::types::v1::{endpoint_spec::Mode, EndpointSpec};

    use crate::harness::{running, service, Harness};

    #[tokio::test]
    async fn a_service_holds_one_virtual_ip_per_network_apart_from_its_tasks() {
        let harness = Harness::start().await;
        harness.add_node("n1").await;
        let backend = harness.add_network("backend", "10.80.0.0/24", "").await;
        harness.add_network("front", "10.81.0.0/24", "").await;
        let mut spec = service("api", "api", 2);
        spec.networks = vec!["front".into(), "backend".into()];
        let api = harness.create_service(spec).await;
        let vips = harness.service(&api).virtual_ips;
        assert_eq!(vips.len(), 2, "{vips:?}");
        let on_backend = vips.iter().find(|v| v.network_id == backend).unwrap();
        assert_eq!(
            on_backend.addr, "10.80.0.2/24",
            "the first host after the gateway"
        );
        let tasks = harness
            .until("2 running", |s| {
                let tasks = running(s, &api);
                (tasks.len() == 2).then_some(tasks)
            })
            .await;
        for task in &tasks {
            for attachment in &task.networks {
                assert!(
                    !vips.iter().any(|v| v.addr == attachment.address),
                    "a task got a virtual IP: {attachment:?}"
                );
            }
        }
        // Kept across updates that leave the service on the network.
        harness
            .update_service(&api, |s| {
                s.task.as_mut().unwrap().container.as_mut().unwrap().image = "api:v2".into()
            })
            .await;
        assert_eq!(harness.service(&api).virtual_ips, vips);
        // Leaving a network gives its address back.
        harness
            .update_service(&api, |s| s.networks = vec!["front".into()])
            .await;
        let left = harness.service(&api).virtual_ips;
        assert_eq!(left.len(), 1);
        assert_ne!(left[0].network_id, backend);
        let mut other = service("other", "other", 1);
        other.networks = vec!["backend".into()];
        let other = harness.create_service(other).await;
        assert_eq!(harness.service(&other).virtual_ips[0].addr, "10.80.0.2/24");
    }

    #[tokio::test]
    async fn a_dnsrr_service_has_no_virtual_ip() {
        let harness = Harness::start().await;
        let mut spec = service("db", "db", 1);
        spec.endpoint = Some(EndpointSpec {
            mode: Mode::Dnsrr as i32,
            ..Default::default()
        });
        let db = harness.create_service(spec).await;
        assert!(harness.service(&db).virtual_ips.is_empty());
        let web = harness.create_service(service("web", "web", 1)).await;
        assert_eq!(harness.service(&web).virtual_ips.len(), 1);
    }
}
