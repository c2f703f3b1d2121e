//! netd's nftables table, `inet shoal`: outbound NAT of the overlay
//! subnets and the published ports of the routing mesh.
//!
//! netd reads and writes this table only. Every change is one `nft -j`
//! batch, so the kernel switches from the old rules to the new ones
//! atomically; NAT decisions of established connections live in conntrack,
//! so rewriting the rules never breaks them.
//!
//! Layout (all names fixed):
//! * `nat-prerouting`, `nat-output` (nat, dstnat): traffic to a local
//!   address jumps to `published`.
//! * `published`: one rule per published port, DNAT to the service's
//!   backends round-robin (`numgen inc mod N map { ... }`).
//! * `refuse` (filter, input): published ports whose service has no backend
//!   answer with a TCP reset (ICMP port unreachable for UDP).
//! * `nat-postrouting` (nat, srcnat): masquerade of overlay traffic leaving
//!   the node not via its bridge, of DNAT-ed traffic from loopback (so
//!   `curl 127.0.0.1:PORT` works on the node), and of hairpin traffic
//!   (a task reaching a published port served on its own bridge).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression, NgMode, Numgen,
    Payload, PayloadField, Prefix, SetItem, CT,
};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NATFamily, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::cidr::Ipv4Cidr;
use crate::error::Result;
use crate::netns;

pub mod task;

pub const TABLE: &str = "shoal";
pub const FAMILY: NfFamily = NfFamily::INet;

pub const CHAIN_PREROUTING: &str = "nat-prerouting";
pub const CHAIN_OUTPUT: &str = "nat-output";
pub const CHAIN_POSTROUTING: &str = "nat-postrouting";
pub const CHAIN_PUBLISHED: &str = "published";
pub const CHAIN_REFUSE: &str = "refuse";
pub const CHAIN_ISOLATE: &str = "isolate";
pub const CHAIN_RAW_PREROUTING: &str = "raw-prerouting";
pub const CHAIN_RAW_OUTPUT: &str = "raw-output";

/// An overlay network as NAT sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NatNetwork {
    pub bridge: String,
    pub subnet: Ipv4Cidr,
    /// No outbound NAT, no forwarding out of the bridge.
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port of a service and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublishedPort {
    pub protocol: Protocol,
    pub published: u16,
    pub target: u16,
    pub service_id: String,
    pub service_name: String,
    /// Sorted and without duplicates, so the same view gives the same rules.
    pub backends: Vec<Ipv4Addr>,
}

/// What the table should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<NatNetwork>,
    /// `None` until netd has its first network view: the published-port
    /// chains are then left as they are (a restarted netd keeps serving the
    /// ports it served before, instead of dropping them until the managers
    /// answer).
    pub ports: Option<Vec<PublishedPort>>,
}

impl Ruleset {
    /// Nothing to do on this node: the table should not exist.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.ports.as_ref().is_some_and(|p| p.is_empty())
    }

    /// The batch that makes the table match `self`.
    pub fn batch(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(table()));
        if self.is_empty() {
            // `add` first so that the delete cannot fail on a missing table.
            batch.delete(NfListObject::Table(table()));
            return batch.to_nftables();
        }
        for c in chains() {
            batch.add(NfListObject::Chain(c));
        }
        let mut rewrite = |chain: &'static str, rules: Vec<Rule<'static>>| {
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(regular_chain(chain))));
            for r in rules {
                batch.add(NfListObject::Rule(r));
            }
        };
        let to_published = || {
            vec![
                m(
                    fib_daddr_type(),
                    Expression::String("local".into()),
                    Operator::EQ,
                ),
                Statement::Jump(JumpTarget {
                    target: CHAIN_PUBLISHED.into(),
                }),
            ]
        };
        rewrite(
            CHAIN_PREROUTING,
            vec![rule(CHAIN_PREROUTING, to_published(), None)],
        );
        rewrite(CHAIN_OUTPUT, vec![rule(CHAIN_OUTPUT, to_published(), None)]);
        rewrite(CHAIN_POSTROUTING, postrouting_rules(&self.networks));
        rewrite(CHAIN_ISOLATE, isolation_rules(&self.networks));
        rewrite(CHAIN_RAW_PREROUTING, untracked_rules(CHAIN_RAW_PREROUTING));
        rewrite(CHAIN_RAW_OUTPUT, untracked_rules(CHAIN_RAW_OUTPUT));
        if let Some(ports) = &self.ports {
            let (published, refuse) = port_rules(ports);
            rewrite(CHAIN_PUBLISHED, published);
            rewrite(CHAIN_REFUSE, refuse);
        }
        batch.to_nftables()
    }
}

/// Runs `nft -j -f -` with `nftables` in the namespace `ns`.
pub async fn apply(ns: &File, nftables: &Nftables<'_>) -> Result<()> {
    // The nftables crate (0.6) writes the `notrack` statement as a bare
    // string; nft's JSON parser wants an object.
    let payload =
        serde_json::to_string(nftables)?.replace(r#","notrack"]"#, r#",{"notrack":null}]"#);
    netns::run_in(ns, "running nft", move || {
        nftables::helper::apply_ruleset_raw(
            &payload,
            nftables::helper::DEFAULT_NFT,
            nftables::helper::DEFAULT_ARGS,
        )?;
        Ok(())
    })
    .await
}

pub(crate) fn table() -> Table<'static> {
    Table {
        family: FAMILY,
        name: TABLE.into(),
        handle: None,
    }
}

pub(crate) fn regular_chain(name: &'static str) -> Chain<'static> {
    Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: name.into(),
        ..Default::default()
    }
}

pub(crate) fn base_chain(
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> Chain<'static> {
    Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..regular_chain(name)
    }
}

fn chains() -> Vec<Chain<'static>> {
    vec![
        // dstnat = -100, srcnat = 100, filter = 0.
        base_chain(CHAIN_PREROUTING, NfChainType::NAT, NfHook::Prerouting, -100),
        base_chain(CHAIN_OUTPUT, NfChainType::NAT, NfHook::Output, -100),
        base_chain(
            CHAIN_POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
        ),
        base_chain(CHAIN_REFUSE, NfChainType::Filter, NfHook::Input, 0),
        base_chain(CHAIN_ISOLATE, NfChainType::Filter, NfHook::Forward, 0),
        // raw = -300: before conntrack.
        base_chain(
            CHAIN_RAW_PREROUTING,
            NfChainType::Filter,
            NfHook::Prerouting,
            -300,
        ),
        base_chain(CHAIN_RAW_OUTPUT, NfChainType::Filter, NfHook::Output, -300),
        regular_chain(CHAIN_PUBLISHED),
    ]
}

pub(crate) fn rule(
    chain: &'static str,
    expr: Vec<Statement<'static>>,
    comment: Option<String>,
) -> Rule<'static> {
    Rule {
        family: FAMILY,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        comment: comment.map(Cow::Owned),
        ..Default::default()
    }
}

pub(crate) fn m(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(crate) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

pub(crate) fn prefix(cidr: Ipv4Cidr) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(cidr.network().to_string().into())),
        len: u32::from(cidr.len),
    }))
}

fn fib_daddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Daddr]),
    }))
}

fn ct_status_dnat() -> Statement<'static> {
    m(
        Expression::Named(NamedExpression::CT(CT {
            key: "status".into(),
            family: None,
            dir: None,
        })),
        Expression::String("dnat".into()),
        Operator::IN,
    )
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

pub(crate) fn ipv4() -> Statement<'static> {
    m(
        meta(MetaKey::Nfproto),
        Expression::String("ipv4".into()),
        Operator::EQ,
    )
}

fn postrouting_rules(networks: &[NatNetwork]) -> Vec<Rule<'static>> {
    let loopback = Ipv4Cidr {
        addr: Ipv4Addr::new(127, 0, 0, 0),
        len: 8,
    };
    let mut rules = vec![rule(
        CHAIN_POSTROUTING,
        vec![
            ipv4(),
            m(payload("ip", "saddr"), prefix(loopback), Operator::EQ),
            ct_status_dnat(),
            masquerade(),
        ],
        Some("published ports reached from loopback".into()),
    )];
    for net in networks {
        let bridge = || Expression::String(net.bridge.clone().into());
        // The input interface is unknown in postrouting: a DNAT-ed packet
        // from the subnet going back out its own bridge is hairpin traffic.
        rules.push(rule(
            CHAIN_POSTROUTING,
            vec![
                ipv4(),
                m(payload("ip", "saddr"), prefix(net.subnet), Operator::EQ),
                m(meta(MetaKey::Oifname), bridge(), Operator::EQ),
                ct_status_dnat(),
                masquerade(),
            ],
            Some(format!("hairpin on {}", net.bridge)),
        ));
        if net.internal {
            continue;
        }
        rules.push(rule(
            CHAIN_POSTROUTING,
            vec![
                ipv4(),
                m(payload("ip", "saddr"), prefix(net.subnet), Operator::EQ),
                m(meta(MetaKey::Oifname), bridge(), Operator::NEQ),
                masquerade(),
            ],
            Some(format!("outbound NAT of {}", net.subnet)),
        ));
    }
    rules
}

/// The overlays' own UDP (VXLAN, and WireGuard carrying encrypted VXLAN)
/// skips conntrack: nothing NATs or filters it by state, and tracking
/// every encapsulated packet costs throughput. The traffic inside the
/// tunnels is tracked as usual where it is routed.
fn untracked_rules(chain: &'static str) -> Vec<Rule<'static>> {
    [
        (crate::vxlan::VXLAN_PORT, "VXLAN"),
        (crate::wireguard::DEFAULT_LISTEN_PORT, "WireGuard"),
    ]
    .into_iter()
    .map(|(port, what)| {
        rule(
            chain,
            vec![
                m(
                    meta(MetaKey::L4proto),
                    Expression::String("udp".into()),
                    Operator::EQ,
                ),
                m(
                    payload("th", "dport"),
                    Expression::Number(u32::from(port)),
                    Operator::EQ,
                ),
                Statement::Notrack,
            ],
            Some(format!("{what} is not tracked")),
        )
    })
    .collect()
}

/// Networks do not reach each other through the node (a task reaches
/// another network's tasks only by being attached to it), and an internal
/// network reaches nothing beyond its bridge. Connections the routing mesh
/// DNAT-ed are let through: a task may use a published port.
fn isolation_rules(networks: &[NatNetwork]) -> Vec<Rule<'static>> {
    let mut rules = vec![rule(
        CHAIN_ISOLATE,
        vec![ct_status_dnat(), Statement::Accept(None)],
        Some("published ports".into()),
    )];
    let wildcard = || Expression::String(format!("{}*", crate::names::BRIDGE_PREFIX).into());
    for net in networks {
        let bridge = || Expression::String(net.bridge.clone().into());
        let mut expr = vec![m(meta(MetaKey::Iifname), bridge(), Operator::EQ)];
        if !net.internal {
            expr.push(m(meta(MetaKey::Oifname), wildcard(), Operator::EQ));
        }
        expr.push(m(meta(MetaKey::Oifname), bridge(), Operator::NEQ));
        expr.push(Statement::Drop(None));
        let comment = if net.internal {
            format!("{} is internal", net.bridge)
        } else {
            format!("{} reaches no other network", net.bridge)
        };
        rules.push(rule(CHAIN_ISOLATE, expr, Some(comment)));
    }
    rules
}

/// The DNAT target that takes turns over `backends` (at least one).
pub(crate) fn round_robin(backends: &[Ipv4Addr]) -> Expression<'static> {
    if backends.len() == 1 {
        return Expression::String(backends[0].to_string().into());
    }
    let items = backends
        .iter()
        .zip(0u32..)
        .map(|(ip, i)| {
            SetItem::Mapping(
                Expression::Number(i),
                Expression::String(ip.to_string().into()),
            )
        })
        .collect();
    Expression::Named(NamedExpression::Map(Box::new(Map {
        key: Expression::Named(NamedExpression::Numgen(Numgen {
            mode: NgMode::Inc,
            ng_mod: u32::try_from(backends.len()).unwrap_or(u32::MAX),
            offset: None,
        })),
        data: Expression::Named(NamedExpression::Set(items)),
    })))
}

/// Rules of `published` and `refuse`. A port published twice (which the
/// allocator prevents) keeps its first service in (protocol, port, service
/// id) order.
fn port_rules(ports: &[PublishedPort]) -> (Vec<Rule<'static>>, Vec<Rule<'static>>) {
    let mut sorted: Vec<&PublishedPort> = ports.iter().collect();
    sorted.sort();
    let mut seen = HashSet::new();
    let (mut published, mut refuse) = (Vec::new(), Vec::new());
    for p in sorted {
        if !seen.insert((p.protocol, p.published)) {
            tracing::warn!(
                port = p.published,
                protocol = p.protocol.name(),
                service = %p.service_name,
                "port is published by another service too; ignoring this one"
            );
            continue;
        }
        let comment = Some(format!("service {} ({})", p.service_name, p.service_id));
        let port_match = || {
            vec![
                m(
                    meta(MetaKey::L4proto),
                    Expression::String(p.protocol.name().into()),
                    Operator::EQ,
                ),
                m(
                    payload("th", "dport"),
                    Expression::Number(u32::from(p.published)),
                    Operator::EQ,
                ),
            ]
        };
        if p.backends.is_empty() {
            let reject = match p.protocol {
                Protocol::Tcp => Reject::new(Some(RejectType::TCPReset), None),
                Protocol::Udp => Reject::new(None, None),
            };
            let mut expr = port_match();
            expr.push(Statement::Reject(Some(reject)));
            refuse.push(rule(CHAIN_REFUSE, expr, comment));
            continue;
        }
        let addr = round_robin(&p.backends);
        let mut expr = vec![ipv4()];
        expr.extend(port_match());
        expr.push(Statement::DNAT(Some(NAT {
            addr: Some(addr),
            family: Some(NATFamily::IP),
            port: Some(Expression::Number(u32::from(p.target))),
            flags: None,
        })));
        published.push(rule(CHAIN_PUBLISHED, expr, comment));
    }
    (published, refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(published: u16, backends: &[&str]) -> PublishedPort {
        PublishedPort {
            protocol: Protocol::Tcp,
            published,
            target: 80,
            service_id: format!("svc{published}"),
            service_name: "web".into(),
            backends: backends.iter().map(|b| b.parse().expect("ip")).collect(),
        }
    }

    fn json(r: &Ruleset) -> String {
        serde_json::to_string(&r.batch()).expect("serialize")
    }

    #[test]
    fn before_the_first_view_published_ports_are_left_alone() {
        let r = Ruleset {
            networks: vec![],
            ports: None,
        };
        let j = json(&r);
        assert!(
            !j.contains(
                r#"{"flush":{"chain":{"family":"inet","table":"shoal","name":"published"}}}"#
            ),
            "{j}"
        );
        assert!(!j.contains(r#""delete""#), "{j}");
    }

    #[test]
    fn round_robin_map_lists_every_backend_and_empty_services_refuse() {
        let r = Ruleset {
            networks: vec![],
            ports: Some(vec![port(8080, &["10.0.1.3", "10.0.1.2"]), port(9090, &[])]),
        };
        let j = json(&r);
        assert!(j.contains(r#""numgen":{"mode":"inc","mod":2}"#), "{j}");
        assert!(j.contains(r#"[0,"10.0.1.3"],[1,"10.0.1.2"]"#), "{j}");
        assert!(j.contains(r#""reject":{"type":"tcp reset"}"#), "{j}");
    }

    #[test]
    fn nothing_to_do_deletes_the_table() {
        let r = Ruleset {
            networks: vec![],
            ports: Some(vec![]),
        };
        assert!(r.is_empty());
        assert!(json(&r).contains(r#"{"delete":{"table":{"family":"inet","name":"shoal"}}}"#));
    }
}
