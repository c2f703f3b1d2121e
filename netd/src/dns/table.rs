//! The names the DNS server answers, per network, and which tasks may ask.
//!
//! Pure data built by netd from the cluster view and swapped whole into the
//! server behind an `Arc`: a query never waits for netd, and a half-applied
//! view is never seen.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The names of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsNetwork {
    pub network_id: String,
    pub records: Vec<DnsRecord>,
}

/// One name and its addresses on a network (`<service>`, `<stack>_<service>`,
/// `tasks.<service>`, an alias, a task's hostname...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: String,
    pub addrs: Vec<Ipv4Addr>,
}

/// A task of this node that may ask: its address on one network (a task on
/// several networks is one client per address), the networks whose names it
/// sees, in the task's order, and where its other names go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsClient {
    pub addr: Ipv4Addr,
    /// Network ids, in the task's order: the first one having a name wins.
    pub networks: Vec<String>,
    /// Its own upstream resolvers; empty means the server's defaults.
    pub upstreams: Vec<SocketAddr>,
}

/// What the server knows: the names of every network and the clients.
#[derive(Debug, Default)]
pub struct NameTable {
    networks: Vec<Network>,
    clients: HashMap<Ipv4Addr, Client>,
}

#[derive(Debug, Default)]
struct Network {
    names: HashMap<String, Entry>,
    /// Address -> the first name (in record order) that has it, for PTR.
    reverse: HashMap<Ipv4Addr, String>,
}

#[derive(Debug)]
struct Entry {
    addrs: Box<[Ipv4Addr]>,
    /// Where the next answer's rotation starts: a counter per name, not per
    /// server, so two names asked in turn each still go round all their
    /// addresses.
    next: AtomicUsize,
}

#[derive(Debug)]
struct Client {
    /// Indexes into `NameTable::networks`; unknown ids are dropped.
    networks: Box<[usize]>,
    upstreams: Option<Arc<[SocketAddr]>>,
}

/// A name as the table keys it: ASCII lower case, without the trailing dot
/// (DNS names compare case-insensitively; `web.` and `web` are one name).
pub(crate) fn normalize(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl NameTable {
    /// Builds the table. Records with the same name on one network merge
    /// their addresses (first occurrence order, no duplicates); a record
    /// without addresses names nothing (a service with no running task has
    /// no `tasks.` name, as in Docker). A client naming a network the table
    /// does not have simply sees no names there; of two clients with one
    /// address, the first counts.
    pub fn new(networks: Vec<DnsNetwork>, clients: Vec<DnsClient>) -> NameTable {
        let mut index = HashMap::with_capacity(networks.len());
        let mut built = Vec::with_capacity(networks.len());
        for network in networks {
            if index.contains_key(&network.network_id) {
                continue;
            }
            index.insert(network.network_id, built.len());
            built.push(build_network(network.records));
        }

        let mut table_clients = HashMap::with_capacity(clients.len());
        for client in clients {
            let mut nets: Vec<usize> = Vec::with_capacity(client.networks.len());
            for id in &client.networks {
                if let Some(&i) = index.get(id) {
                    if !nets.contains(&i) {
                        nets.push(i);
                    }
                }
            }
            let upstreams = (!client.upstreams.is_empty()).then(|| client.upstreams.into());
            table_clients.entry(client.addr).or_insert(Client {
                networks: nets.into(),
                upstreams,
            });
        }

        NameTable {
            networks: built,
            clients: table_clients,
        }
    }

    /// The view of the client with this address, if it is one.
    pub fn client(&self, addr: Ipv4Addr) -> Option<ClientView<'_>> {
        self.clients.get(&addr).map(|client| ClientView {
            table: self,
            client,
        })
    }
}

fn build_network(records: Vec<DnsRecord>) -> Network {
    let mut addrs: HashMap<String, Vec<Ipv4Addr>> = HashMap::with_capacity(records.len());
    let mut reverse = HashMap::new();
    for record in records {
        let name = normalize(&record.name);
        if name.is_empty() || record.addrs.is_empty() {
            continue;
        }
        for addr in &record.addrs {
            reverse.entry(*addr).or_insert_with(|| name.clone());
        }
        addrs.entry(name).or_default().extend(record.addrs);
    }
    let mut seen = HashSet::new();
    let names = addrs
        .into_iter()
        .map(|(name, mut list)| {
            seen.clear();
            list.retain(|a| seen.insert(*a));
            let entry = Entry {
                addrs: list.into(),
                next: AtomicUsize::new(0),
            };
            (name, entry)
        })
        .collect();
    Network { names, reverse }
}

/// What one client sees of the table.
#[derive(Debug, Clone, Copy)]
pub struct ClientView<'a> {
    table: &'a NameTable,
    client: &'a Client,
}

impl<'a> ClientView<'a> {
    fn entry(&self, key: &str) -> Option<&'a Entry> {
        let table = self.table;
        self.client
            .networks
            .iter()
            .find_map(|&i| table.networks[i].names.get(key))
    }

    /// Whether `name` is a name on one of the client's networks.
    pub fn has_name(&self, name: &str) -> bool {
        self.entry(&normalize(name)).is_some()
    }

    /// The addresses of `name` on the first of the client's networks that
    /// has it, rotated one step further at each call (round robin), into
    /// `out` (cleared first). False if no network of the client has it.
    pub fn resolve_into(&self, name: &str, out: &mut Vec<Ipv4Addr>) -> bool {
        out.clear();
        let Some(entry) = self.entry(&normalize(name)) else {
            return false;
        };
        let n = entry.addrs.len();
        let start = entry.next.fetch_add(1, Ordering::Relaxed) % n;
        out.extend_from_slice(&entry.addrs[start..]);
        out.extend_from_slice(&entry.addrs[..start]);
        true
    }

    /// `resolve_into` into a new vector.
    pub fn resolve(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let mut out = Vec::new();
        self.resolve_into(name, &mut out).then_some(out)
    }

    /// The first name that has `addr` on the first of the client's networks
    /// that knows the address (normalized: lower case, no trailing dot).
    pub fn reverse(&self, addr: Ipv4Addr) -> Option<&'a str> {
        let table = self.table;
        self.client
            .networks
            .iter()
            .find_map(|&i| table.networks[i].reverse.get(&addr))
            .map(String::as_str)
    }

    /// The client's own upstream resolvers, if it has any.
    pub fn upstreams(&self) -> Option<&'a Arc<[SocketAddr]>> {
        self.client.upstreams.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rec(name: &str, addrs: &[&str]) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            addrs: addrs.iter().map(|a| ip(a)).collect(),
        }
    }

    fn client(addr: &str, networks: &[&str]) -> DnsClient {
        DnsClient {
            addr: ip(addr),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            upstreams: vec![],
        }
    }

    fn table() -> NameTable {
        NameTable::new(
            vec![
                DnsNetwork {
                    network_id: "front".into(),
                    records: vec![
                        rec("web", &["10.0.0.2"]),
                        rec("Shared.", &["10.0.0.9"]),
                        rec("tasks.web", &["10.0.0.3", "10.0.0.4"]),
                        rec("tasks.web", &["10.0.0.4", "10.0.0.5"]),
                        rec("empty", &[]),
                    ],
                },
                DnsNetwork {
                    network_id: "back".into(),
                    records: vec![rec("db", &["10.1.0.2"]), rec("shared", &["10.1.0.9"])],
                },
            ],
            vec![
                client("10.0.0.3", &["front", "back", "gone"]),
                client("10.1.0.7", &["back", "front"]),
                client("10.1.0.8", &["back"]),
            ],
        )
    }

    #[test]
    fn dns_table_names_are_case_insensitive_and_dot_agnostic() {
        let t = table();
        let c = t.client(ip("10.0.0.3")).unwrap();
        assert_eq!(c.resolve("WEB."), Some(vec![ip("10.0.0.2")]));
        assert_eq!(c.resolve("shared"), Some(vec![ip("10.0.0.9")]));
        assert!(c.has_name("Tasks.Web."));
    }

    #[test]
    fn dns_table_first_network_of_the_client_wins() {
        let t = table();
        assert_eq!(
            t.client(ip("10.0.0.3")).unwrap().resolve("shared"),
            Some(vec![ip("10.0.0.9")])
        );
        assert_eq!(
            t.client(ip("10.1.0.7")).unwrap().resolve("shared"),
            Some(vec![ip("10.1.0.9")])
        );
    }

    #[test]
    fn dns_table_only_the_clients_networks_are_seen() {
        let t = table();
        let c = t.client(ip("10.1.0.8")).unwrap();
        assert_eq!(c.resolve("web"), None);
        assert_eq!(c.resolve("db"), Some(vec![ip("10.1.0.2")]));
        assert_eq!(c.reverse(ip("10.0.0.2")), None);
        assert!(t.client(ip("10.9.9.9")).is_none());
    }

    #[test]
    fn dns_table_merges_records_and_rotates() {
        let t = table();
        let c = t.client(ip("10.0.0.3")).unwrap();
        let a = [ip("10.0.0.3"), ip("10.0.0.4"), ip("10.0.0.5")];
        let answers: Vec<_> = (0..4).map(|_| c.resolve("tasks.web").unwrap()).collect();
        assert_eq!(answers[0], a);
        assert_eq!(answers[1], [a[1], a[2], a[0]]);
        assert_eq!(answers[2], [a[2], a[0], a[1]]);
        assert_eq!(answers[3], a);
    }

    #[test]
    fn dns_table_empty_records_name_nothing() {
        let t = table();
        assert!(!t.client(ip("10.0.0.3")).unwrap().has_name("empty"));
    }

    #[test]
    fn dns_table_reverse_gives_the_first_name() {
        let t = table();
        let c = t.client(ip("10.0.0.3")).unwrap();
        assert_eq!(c.reverse(ip("10.0.0.4")), Some("tasks.web"));
        assert_eq!(c.reverse(ip("10.0.0.9")), Some("shared"));
        assert_eq!(c.reverse(ip("10.1.0.2")), Some("db"));
        assert_eq!(c.reverse(ip("10.7.0.1")), None);
    }
}
