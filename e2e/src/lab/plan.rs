//! Every name a lab uses on the machine, derived from the lab's unique name so
//! that parallel labs never collide and a leak check can find what one left.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Error;

/// Longest lab name: keeps unix socket paths under the lab root well below
/// the 108-byte `sun_path` limit.
const MAX_NAME_LEN: usize = 32;
/// Host indices are encoded in the last octet (.11.. for managers, .21.. for
/// workers), so the counts are bounded by the /24.
pub const MAX_MANAGERS: u32 = 9;
pub const MAX_WORKERS: u32 = 200;

/// What a test host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the lab's OCI registry and nothing of shoal.
    Registry,
    Manager,
    Worker,
}

/// One test host: a network namespace with one veth on the lab bridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Host {
    /// Short name used by `lab exec` and in paths: `reg`, `m1`, `w3`.
    pub name: String,
    pub role: Role,
    /// Network namespace name (`ip netns exec <netns> …`).
    pub netns: String,
    /// Root-namespace end of the host's veth (the host's end is `eth0`).
    pub veth: String,
    pub addr: Ipv4Addr,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Registry => "registry",
            Role::Manager => "manager",
            Role::Worker => "worker",
        })
    }
}

/// Checks a lab name: it ends up in netns names and paths.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts_alnum = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_chars || !starts_alnum || name.len() > MAX_NAME_LEN {
        return Err(Error::Config(format!(
            "lab name {name:?} must be 1..={MAX_NAME_LEN} characters of a-z, 0-9 and '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Short digest of the lab name: interface names are limited to 15 bytes, too
/// short for the name itself.
fn tag(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    hex::encode(&digest[..4])
}

/// Bridge in the root namespace that joins the lab's hosts.
pub fn bridge_name(name: &str) -> String {
    format!("shl{}", tag(name))
}

/// Prefix of every root-namespace veth of the lab.
pub fn veth_prefix(name: &str) -> String {
    format!("shv{}", tag(name))
}

/// Prefix of every network namespace of the lab. The '.' cannot occur in a
/// lab name, so lab `a` never claims the namespaces of lab `a-b`.
pub fn netns_prefix(name: &str) -> String {
    format!("shl-{name}.")
}

/// Where a lab keeps its state when the caller does not choose.
pub fn default_root(name: &str) -> PathBuf {
    std::env::temp_dir().join("shoal-lab").join(name)
}

/// The lab's address in the lab subnet for a given last octet.
pub fn addr(octet: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, octet, last)
}

/// The hosts of a lab with `managers` managers and `workers` workers in
/// subnet `10.201.<octet>.0/24`, registry first.
pub fn hosts(name: &str, octet: u8, managers: u32, workers: u32) -> Result<Vec<Host>, Error> {
    if managers == 0 || managers > MAX_MANAGERS || workers > MAX_WORKERS {
        return Err(Error::Config(format!(
            "a lab has 1..={MAX_MANAGERS} managers and 0..={MAX_WORKERS} workers, not {managers} and {workers}"
        )));
    }
    let host = |short: String, role: Role, last: u32| -> Result<Host, Error> {
        let last = u8::try_from(last)
            .map_err(|_| Error::Config(format!("host {short} has no address in a /24")))?;
        Ok(Host {
            netns: format!("{}{short}", netns_prefix(name)),
            veth: format!("{}{short}", veth_prefix(name)),
            addr: addr(octet, last),
            name: short,
            role,
        })
    };
    let mut all = vec![host("reg".into(), Role::Registry, 2)?];
    for i in 1..=managers {
        all.push(host(format!("m{i}"), Role::Manager, 10 + i)?);
    }
    for i in 1..=workers {
        all.push(host(format!("w{i}"), Role::Worker, 20 + i)?);
    }
    Ok(all)
}

/// Directory of one host's state under the lab root.
pub fn host_dir(root: &Path, host: &str) -> PathBuf {
    root.join(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_the_kernel_limit_and_differ_per_lab() {
        let a = hosts("a-very-long-lab-name-for-a-test1", 7, 9, 200).unwrap();
        let b = hosts("a-very-long-lab-name-for-a-test2", 8, 1, 0).unwrap();
        for h in a.iter().chain(&b) {
            assert!(h.veth.len() <= 15, "{} too long", h.veth);
        }
        assert!(bridge_name("x").len() <= 15);
        assert_ne!(bridge_name("a"), bridge_name("b"));
        assert_ne!(a[1].veth, b[1].veth);
    }

    #[test]
    fn addresses_follow_the_lab_scheme() {
        let h = hosts("lab", 5, 2, 2).unwrap();
        let got: Vec<_> = h.iter().map(|h| (h.name.as_str(), h.addr)).collect();
        assert_eq!(
            got,
            [
                ("reg", Ipv4Addr::new(10, 201, 5, 2)),
                ("m1", Ipv4Addr::new(10, 201, 5, 11)),
                ("m2", Ipv4Addr::new(10, 201, 5, 12)),
                ("w1", Ipv4Addr::new(10, 201, 5, 21)),
                ("w2", Ipv4Addr::new(10, 201, 5, 22)),
            ]
        );
        assert_eq!(h[1].netns, "shl-lab.m1");
        let other = hosts("lab-x", 6, 1, 0).unwrap();
        assert!(!other[1].netns.starts_with(&netns_prefix("lab")));
    }

    #[test]
    fn bad_names_and_counts_are_refused() {
        assert!(validate_name("Lab").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(33)).is_err());
        assert!(validate_name("lab-1").is_ok());
        assert!(hosts("lab", 1, 0, 0).is_err());
        assert!(hosts("lab", 1, 10, 0).is_err());
    }
}
