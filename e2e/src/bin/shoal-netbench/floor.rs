//! The bare kernel VXLAN path, the floor under the plain overlay: on each
//! of the test hosts w1 and w2, a bridge, a VXLAN device on it and a veth
//! from it into a fresh network namespace (the "task" end), with static
//! FDB and neighbour entries for the other side's end. All of it is made
//! by netd's own code (`shoal_netd::{bridge, vxlan, veth, peers}`) with
//! netd's parameters (VXLAN port, no learning, ARP proxy, the MTU netd
//! takes from the underlay, MACs derived from addresses), so it is the
//! kernel path of a plain overlay network with nothing of shoal in it: no
//! nftables in the end namespaces, no DNS, no VIPs, no netd watching. (The
//! VXLAN packets still cross the hosts' own netd table, `inet shoal`, as
//! the plain overlay's do: the hosts are the same.)
//!
//! netd neither makes nor recognises any of it: the names have none of
//! netd's prefixes (`sh-`, `vx-`, `vt`, see `shoal_netd::names`), the
//! bridge has no alias (netd finds its bridges by their alias only), and
//! the VNI and subnet are far from what the allocator hands out in the
//! bench (VNIs from 4096, subnets from 10.0.0.0/24 up). The bridge has no
//! address either, so the hosts' routing tables do not change.
//!
//! The end namespaces are never mounted anywhere: only this process's
//! handles keep them alive (they are reached as `/proc/<pid>/fd/<fd>`), so
//! they and their veths vanish with the process however it ends. The
//! bridges and VXLAN devices are removed when the [`KernelFloor`] drops,
//! and at the latest with the lab's host namespaces.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use shoal_netd::cidr::Ipv4Cidr;
use shoal_netd::network::{self, OverlayNetwork};
use shoal_netd::{bridge, link, netns, peers, veth, vxlan};

/// Only for netd's checks of the network (never part of a kernel name).
const NETWORK_ID: &str = "netbench-kernel-floor";
const VNI: u32 = 9000;
const SUBNET: &str = "10.250.0.0/24";
/// Not on any interface; `OverlayNetwork` wants one (and derives the
/// bridge's MAC from it, as netd does).
const GATEWAY: &str = "10.250.0.1";
/// Names in each test host's namespace, none of them netd's.
const BRIDGE: &str = "nbk-br";
const VXLAN: &str = "nbk-vx";
const VETH: &str = "nbk-veth";
/// The end's interface in its own namespace.
const IFNAME: &str = "eth0";

/// One side of the path: a test host's namespace and its underlay address.
pub struct Host {
    pub netns: PathBuf,
    pub underlay: Ipv4Addr,
}

/// The bare kernel path between two test hosts; removed when dropped.
pub struct KernelFloor {
    rt: tokio::runtime::Handle,
    /// Host namespaces where something may have been created.
    hosts: Vec<PathBuf>,
    /// The ends' namespaces, alive only through these handles.
    ends: Vec<File>,
    addresses: Vec<Ipv4Addr>,
    /// The MTU of each side (netd's, from its underlay).
    pub mtus: Vec<u32>,
}

impl KernelFloor {
    /// Builds both sides; on error whatever was made is removed again.
    pub fn build(rt: &tokio::runtime::Runtime, client: Host, server: Host) -> Result<KernelFloor> {
        let mut floor = KernelFloor {
            rt: rt.handle().clone(),
            hosts: Vec::new(),
            ends: Vec::new(),
            addresses: vec![Ipv4Addr::new(10, 250, 0, 2), Ipv4Addr::new(10, 250, 0, 3)],
            mtus: Vec::new(),
        };
        let sides = [client, server];
        for (i, side) in sides.iter().enumerate() {
            let end = new_netns().context("create a network namespace")?;
            floor.ends.push(end);
            floor.hosts.push(side.netns.clone());
            let other = &sides[1 - i];
            let remote: peers::RemoteTasks =
                BTreeMap::from([(floor.addresses[1 - i], IpAddr::V4(other.underlay))]);
            let mtu = rt
                .block_on(build_side(
                    side,
                    floor.addresses[i],
                    &floor.ends[i],
                    &remote,
                ))
                .with_context(|| format!("bare kernel VXLAN in {}", side.netns.display()))?;
            floor.mtus.push(mtu);
        }
        Ok(floor)
    }

    /// The client end's namespace (on the first host), as a path.
    pub fn client_ns(&self) -> PathBuf {
        fd_path(&self.ends[0])
    }

    /// The server end's namespace (on the second host), as a path.
    pub fn server_ns(&self) -> PathBuf {
        fd_path(&self.ends[1])
    }

    /// The server end's address, which the client dials.
    pub fn server_addr(&self) -> IpAddr {
        IpAddr::V4(self.addresses[1])
    }

    /// Removes the links from the hosts and closes the ends' namespaces;
    /// returns what could not be removed.
    fn teardown(&mut self) -> Vec<String> {
        let hosts = std::mem::take(&mut self.hosts);
        let errors = self.rt.block_on(async {
            let mut errors = Vec::new();
            for ns in &hosts {
                if let Err(e) = teardown_side(ns).await {
                    errors.push(format!("{}: {e:#}", ns.display()));
                }
            }
            errors
        });
        // With its namespace goes the end of the veth in it, and with that
        // end its peer (already deleted above unless that failed).
        self.ends.clear();
        errors
    }
}

impl Drop for KernelFloor {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("bare kernel VXLAN: not removed: {e}");
        }
    }
}

/// One side: bridge, VXLAN device, the veth into `end` with `address`,
/// the entries for the other side's end. Returns the MTU.
async fn build_side(
    host: &Host,
    address: Ipv4Addr,
    end: &File,
    remote: &peers::RemoteTasks,
) -> Result<u32> {
    let host_ns = File::open(&host.netns)
        .with_context(|| format!("open namespace {}", host.netns.display()))?;
    let h = netns::netlink_in(&host_ns).await?;
    let mut net = OverlayNetwork::new(NETWORK_ID, VNI, SUBNET, GATEWAY)?;
    // As netd does: the MTU of the interface holding the node's address.
    let underlay_mtu = link::mtu_of_address(&h, IpAddr::V4(host.underlay)).await?;
    net.mtu = network::mtu_over(underlay_mtu, false);
    let br = bridge::create(&h, BRIDGE, net.bridge_mac()).await?;
    link::set_up(&h, &br).await?;
    let vx = vxlan::apply_named(&h, VXLAN, &net, br.index).await?;
    let task = netns::netlink_in(end).await?;
    veth::TaskVeth {
        host_name: VETH.into(),
        task_ifname: IFNAME.into(),
        address: Ipv4Cidr {
            addr: address,
            len: net.subnet.len,
        },
        gateway: None,
        mtu: net.mtu,
    }
    .apply(&h, end, &task, br.index)
    .await?;
    peers::sync(&h, vx.index, remote).await?;
    Ok(net.mtu)
}

/// Deletes this module's links from a host's namespace (missing ones are
/// fine) and checks that none is left.
async fn teardown_side(ns: &Path) -> Result<()> {
    let host_ns = File::open(ns).context("open namespace")?;
    let h = netns::netlink_in(&host_ns).await?;
    let mut errors = Vec::new();
    for name in [VETH, VXLAN, BRIDGE] {
        if let Err(e) = link::delete(&h, name).await {
            errors.push(e.to_string());
        } else if link::get(&h, name).await?.is_some() {
            errors.push(format!("{name} is still there"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("; ")))
    }
}

/// A new network namespace held by nothing but the returned handle: made
/// by a thread of its own, which ends right after.
fn new_netns() -> Result<File> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<File> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .context("unshare the network namespace")?;
            File::open("/proc/thread-self/ns/net").context("open /proc/thread-self/ns/net")
        })
        .join()
        .map_err(|_| anyhow!("namespace thread panicked"))?
    })
}

/// A path that opens the namespace `ns` holds, for this process and for
/// its children (`nsenter --net=`) alike.
fn fd_path(ns: &File) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        ns.as_raw_fd()
    ))
}
