//! shoal-netd: all kernel networking of a node.
//!
//! A module per kernel object kind, each with an idempotent `apply` and a
//! best-effort `teardown` ([`netns`], [`bridge`], [`vxlan`], [`veth`],
//! [`nft`], [`sysctl`]); [`dataplane::Dataplane`] ties them together and
//! holds the desired state; [`server`] is the local gRPC API the agent
//! calls; [`manager_watch`] feeds the managers' network view in; [`dns`]
//! is the embedded DNS server tasks ask for service names.
//!
//! Architecture invariant: netd changes the kernel only through rtnetlink
//! and `nft -j` on its own table `inet shoal`; it never runs `ip`, and it
//! never reads or writes other nftables tables.
//!
//! [`wireguard`] is the node's WireGuard mesh for encrypted networks
//! (kernel WireGuard, or boringtun where the kernel has none).

pub mod attachment;
pub mod balancing;
pub mod bridge;
pub mod cidr;
pub mod client;
pub mod dataplane;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod link;
pub mod manager_watch;
pub mod mesh_return;
pub mod names;
pub mod netns;
pub mod network;
pub mod nft;
pub mod peers;
pub mod server;
pub mod sysctl;
pub mod veth;
pub mod vxlan;
pub mod wireguard;

pub use dataplane::{Dataplane, DataplaneConfig};
pub use error::{Error, Result};
