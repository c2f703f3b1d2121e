//! What a node asks for itself when it joins (`swarm join`) or creates
//! the cluster (`swarm init`): its availability and its data path
//! address, checked before anything is issued or written.

use shoal_proto::types::v1::NodeAvailability;

use crate::store::StoreError;

/// `--availability` (active when not given).
pub fn availability(given: Option<i32>) -> Result<NodeAvailability, StoreError> {
    match given {
        None => Ok(NodeAvailability::Active),
        Some(value) => NodeAvailability::try_from(value).map_err(|_| {
            StoreError::InvalidArgument(format!(
                "invalid availability {value} (--availability): active, pause or drain"
            ))
        }),
    }
}

/// `--data-path-addr`: an IP address other nodes can send to (empty: not
/// given). Interface names, which docker also takes, are not: the manager
/// cannot see the node's interfaces.
pub fn data_path_addr(addr: &str) -> Result<(), StoreError> {
    if addr.is_empty() {
        return Ok(());
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            Err(StoreError::InvalidArgument(format!(
                "data path address {addr} (--data-path-addr) is not an address other nodes can \
                 send to: give this node's own IP address"
            )))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(StoreError::InvalidArgument(format!(
            "data path address {addr:?} (--data-path-addr) is not an IP address (an interface \
             name is not supported: give its address)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_path_address_is_an_ip_others_can_reach() {
        data_path_addr("").unwrap();
        data_path_addr("10.0.0.5").unwrap();
        data_path_addr("fd00::5").unwrap();
        let m = data_path_addr("eth0").unwrap_err().to_string();
        assert!(
            m.contains("\"eth0\" (--data-path-addr) is not an IP address"),
            "{m}"
        );
        let m = data_path_addr("0.0.0.0").unwrap_err().to_string();
        assert!(m.contains("not an address other nodes can send to"), "{m}");
    }

    #[test]
    fn availability_is_active_unless_given() {
        assert_eq!(availability(None).unwrap(), NodeAvailability::Active);
        assert_eq!(
            availability(Some(NodeAvailability::Drain as i32)).unwrap(),
            NodeAvailability::Drain
        );
        let m = availability(Some(7)).unwrap_err().to_string();
        assert!(m.contains("invalid availability 7"), "{m}");
    }
}
