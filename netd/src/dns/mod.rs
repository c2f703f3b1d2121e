//! The embedded DNS server: service discovery for the tasks of this node,
//! with Docker Swarm's semantics.
//!
//! netd builds a [`NameTable`] from the cluster view (service names, VIPs,
//! `tasks.<service>`, aliases, hostnames, per network; the tasks of this
//! node as clients) and swaps it into the [`DnsServer`], which answers on
//! each local network's gateway address, port 53:
//!
//! - a query from an address that is no client is REFUSED;
//! - a name on one of the client's networks is answered from the first of
//!   them (in the task's order) that has it: A records, TTL 0, the
//!   addresses rotated at each query; AAAA or another type gets NODATA;
//!   PTR of a known address gets the first name that has it;
//! - other single-label names and `tasks.` names get NXDOMAIN at once;
//! - the rest is forwarded as it is to the client's upstreams or the
//!   server's defaults (NXDOMAIN at once without any; SERVFAIL if none
//!   answers).
//!
//! Only the wire format comes from hickory-proto: the server itself is a
//! few small loops, so that every buffer and queue has a bound and an
//! upstream's answer is relayed byte for byte.

mod answer;
mod server;
mod table;
mod upstream;

#[cfg(test)]
mod tests;

pub use answer::TTL;
pub use server::{DnsServer, MAX_FORWARDS, MAX_TCP_CONNECTIONS};
pub use table::{ClientView, DnsClient, DnsNetwork, DnsRecord, NameTable};
pub use upstream::{upstreams_from_resolv_conf, FORWARD_TIMEOUT};
