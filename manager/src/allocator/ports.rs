//! Published ports: allocated (and clashes refused) when a service is
//! written, so a refused port changes nothing.

use std::collections::HashSet;

use shoal_proto::types::v1::{PortConfig, PortProtocol, PublishMode, ServiceSpec};

use crate::store::{State, StoreError};

/// Where Swarm picks published ports the user left to the cluster.
const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

fn protocol_name(protocol: i32) -> &'static str {
    if protocol == PortProtocol::Udp as i32 {
        "udp"
    } else {
        "tcp"
    }
}

/// The ports a service publishes, with the cluster's choice filled in where
/// the spec left the published port 0. Refuses a port another service holds.
pub fn allocate_ports(
    state: &State,
    service_id: &str,
    spec: &ServiceSpec,
    current: &[PortConfig],
) -> Result<Vec<PortConfig>, StoreError> {
    let mut taken: HashSet<(i32, u32)> = HashSet::new();
    let mut owner = std::collections::HashMap::new();
    for other in state.services.values() {
        let id = other.meta.as_ref().map(|m| m.id.as_str()).unwrap_or("");
        if id == service_id {
            continue;
        }
        for p in &other.endpoint_ports {
            if p.published_port != 0 && p.publish_mode == PublishMode::Ingress as i32 {
                taken.insert((p.protocol, p.published_port));
                owner.insert(
                    (p.protocol, p.published_port),
                    other.spec.clone().unwrap_or_default().name,
                );
            }
        }
    }
    let ports = spec
        .endpoint
        .as_ref()
        .map(|e| e.ports.clone())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for mut port in ports {
        if port.target_port == 0 || port.target_port > 65535 || port.published_port > 65535 {
            return Err(StoreError::InvalidArgument(format!(
                "invalid port {}:{}: ports must be between 1 and 65535",
                port.published_port, port.target_port
            )));
        }
        let ingress = port.publish_mode == PublishMode::Ingress as i32;
        if port.published_port == 0 && ingress {
            // Keep what an earlier write picked, so an update does not move it.
            port.published_port = current
                .iter()
                .find(|c| c.target_port == port.target_port && c.protocol == port.protocol)
                .map(|c| c.published_port)
                .filter(|p| !taken.contains(&(port.protocol, *p)))
                .or_else(|| {
                    DYNAMIC_PORTS.clone().find(|p| {
                        !taken.contains(&(port.protocol, *p))
                            && !seen.contains(&(port.protocol, *p))
                    })
                })
                .ok_or_else(|| StoreError::Unavailable("no free dynamic port left".into()))?;
        }
        let key = (port.protocol, port.published_port);
        if port.published_port != 0 {
            if ingress && taken.contains(&key) {
                return Err(StoreError::InvalidArgument(format!(
                    "port {}/{} is already published by service {}",
                    port.published_port,
                    protocol_name(port.protocol),
                    owner.get(&key).cloned().unwrap_or_default()
                )));
            }
            if !seen.insert(key) {
                return Err(StoreError::InvalidArgument(format!(
                    "port {}/{} is published twice",
                    port.published_port,
                    protocol_name(port.protocol)
                )));
            }
        }
        out.push(port);
    }
    Ok(out)
}
