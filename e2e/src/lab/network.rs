//! The lab's network: a bridge in the root namespace holding the lab's .1
//! address, and per host a network namespace joined to it by a veth pair.
//! Nothing is routed or NATed beyond the lab subnet.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::command::ip;
use super::plan::{self, Host};
use super::Error;

/// Serialises subnet choice between labs starting at the same time; the
/// bridges' addresses are the allocation record, so nothing else is kept.
const LOCK_DIR: &str = "/run/shoal-lab";

/// Third octets of 10.201.X.0/24 already on an interface of the root namespace.
fn used_octets() -> Result<HashSet<u8>, Error> {
    let out = ip(["-j", "-4", "addr", "show"])?;
    let links: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Command {
            cmd: "ip -j -4 addr show".into(),
            status: "unparsable output".into(),
            stderr: e.to_string(),
        })?;
    let mut used = HashSet::new();
    for link in &links {
        let infos = link["addr_info"].as_array().into_iter().flatten();
        for local in infos.filter_map(|i| i["local"].as_str()) {
            if let Some(rest) = local.strip_prefix("10.201.") {
                if let Some(octet) = rest.split('.').next().and_then(|o| o.parse().ok()) {
                    used.insert(octet);
                }
            }
        }
    }
    Ok(used)
}

/// Picks a free /24 in 10.201.0.0/16 and creates the lab bridge holding its
/// .1 address, under a machine-wide lock so parallel labs never pick the same.
pub fn create_bridge(bridge: &str) -> Result<u8, Error> {
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| Error::io(format!("create {LOCK_DIR}"), e))?;
    let lock_path = Path::new(LOCK_DIR).join("subnet.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("open {}", lock_path.display()), e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(format!("lock {}", lock_path.display()), e.into()))?;
    let used = used_octets()?;
    let octet = (1..=254u8)
        .find(|o| !used.contains(o))
        .ok_or(Error::NoSubnet)?;
    ip(["link", "add", bridge, "type", "bridge"])?;
    let cidr = format!("{}/24", plan::addr(octet, 1));
    if let Err(e) =
        ip(["addr", "add", &cidr, "dev", bridge]).and_then(|_| ip(["link", "set", bridge, "up"]))
    {
        let _ = ip(["link", "del", bridge]);
        return Err(e);
    }
    Ok(octet)
}

/// Creates `host`'s namespace with loopback up and `eth0` on the lab bridge.
pub fn create_host(host: &Host, bridge: &str) -> Result<(), Error> {
    let ns = host.netns.as_str();
    ip(["netns", "add", ns])?;
    ip([
        "link", "add", &host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(["link", "set", &host.veth, "master", bridge, "up"])?;
    let cidr = format!("{}/24", host.addr);
    ip(["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(["-n", ns, "link", "set", "eth0", "up"])?;
    ip(["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Network namespaces whose name starts with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    names_in("/run/netns", |n| n.starts_with(prefix))
}

/// Root-namespace links that are the lab's bridge or one of its veths.
pub fn links_of(bridge: &str, veth_prefix: &str) -> Vec<String> {
    names_in("/sys/class/net", |n| {
        n == bridge || n.starts_with(veth_prefix)
    })
}

fn names_in(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Deletes every namespace and link of the lab named `name`; returns what failed.
pub fn destroy(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for ns in netns_with_prefix(&plan::netns_prefix(name)) {
        if let Err(e) = ip(["netns", "del", &ns]) {
            errors.push(e.to_string());
        }
    }
    // Deleting a namespace destroys its veth pairs; what is left is the bridge
    // and veths whose namespace never got its end.
    for link in links_of(&plan::bridge_name(name), &plan::veth_prefix(name)) {
        if let Err(e) = ip(["link", "del", &link]) {
            // Gone meanwhile (its peer's namespace just went away) is fine.
            if Path::new("/sys/class/net").join(&link).exists() {
                errors.push(e.to_string());
            }
        }
    }
    errors
}
