//! Cutting a test host off the lab network and healing it: the root-namespace
//! end of the host's veth goes down, so nothing crosses between the host and
//! the bridge in either direction while everything inside the host
//! (loopback, its daemons, their local sockets) keeps working — a network
//! partition as a host sees it, with no reset or refusal to tell it apart
//! from a slow peer.
//!
//! Nothing is added to the machine: tearing the lab down deletes the
//! namespace and with it both ends of the veth, cut or not.

use super::command::ip;
use super::plan::Host;
use super::Error;

/// Takes `host` off the lab bridge.
pub fn cut(host: &Host) -> Result<(), Error> {
    ip(["link", "set", &host.veth, "down"]).map(|_| ())
}

/// Puts `host` back on the lab bridge.
pub fn heal(host: &Host) -> Result<(), Error> {
    ip(["link", "set", &host.veth, "up"]).map(|_| ())
}

/// Whether `host` is cut off: its root-namespace veth is administratively
/// down.
pub fn is_cut(host: &Host) -> Result<bool, Error> {
    let out = ip(["-j", "link", "show", "dev", &host.veth])?;
    let links: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Command {
            cmd: format!("ip -j link show dev {}", host.veth),
            status: "unparsable output".into(),
            stderr: e.to_string(),
        })?;
    let up = links.iter().any(|l| {
        l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP"))
    });
    Ok(!up)
}
