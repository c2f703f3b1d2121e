//! The table `inet shoal` inside a task's namespace: east-west load
//! balancing of service virtual IPs, and the marks that send replies of
//! routing-mesh connections back through the node that took them
//! ([`crate::mesh_return`]).
//!
//! A connection to a VIP is DNAT-ed in the client's own namespace, before
//! it leaves it, to one of the service's running tasks (round-robin). So
//! the backend sees the client's real address, the reply comes straight
//! back (conntrack in the client's namespace undoes the DNAT), and no node
//! in between holds any state for it. A VIP without backends refuses at
//! once (TCP reset, ICMP unreachable) instead of letting clients time out.
//!
//! Layout: `vip-output` (nat, output, dstnat) holds one DNAT rule per VIP;
//! `vip-refuse` (filter, output) the refusals; `mesh-in` (filter,
//! prerouting, mangle) marks a new connection arriving on the ingress
//! interface with the mark of the node whose bridge sent it; `mesh-out`
//! (route, output, mangle) puts the connection's mark on its replies.

use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{Expression, Map, MetaKey, NamedExpression, SetItem, CT};
use nftables::schema::{FlushObject, NfCmd, NfListObject, Nftables, Rule};
use nftables::stmt::{Mangle, NATFamily, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainType, NfHook};

use super::{base_chain, ipv4, m, meta, payload, round_robin, rule, table};

pub const CHAIN_VIP: &str = "vip-output";
pub const CHAIN_VIP_REFUSE: &str = "vip-refuse";
pub const CHAIN_MESH_IN: &str = "mesh-in";
pub const CHAIN_MESH_OUT: &str = "mesh-out";

/// What a task's table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTable {
    pub vips: Vec<Vip>,
    pub mesh: Option<MeshIn>,
}

/// Routing-mesh connections into the task: on which interface they
/// arrive, and each node's bridge MAC with the mark of that node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshIn {
    pub ifname: String,
    pub nodes: Vec<([u8; 6], u32)>,
}

impl TaskTable {
    pub fn is_empty(&self) -> bool {
        self.vips.is_empty() && self.mesh.is_none()
    }
}

/// One service as a task's namespace balances it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vip {
    pub addr: Ipv4Addr,
    /// Sorted, without duplicates (the same view gives the same rules).
    pub backends: Vec<Ipv4Addr>,
    pub service_name: String,
}

/// The batch that makes a task namespace's table hold exactly `table`
/// (VIPs sorted by address); with nothing in it, the table goes.
pub fn batch(task: &TaskTable) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    if task.is_empty() {
        batch.delete(NfListObject::Table(table()));
        return batch.to_nftables();
    }
    let chains = [
        base_chain(CHAIN_VIP, NfChainType::NAT, NfHook::Output, -100),
        base_chain(CHAIN_VIP_REFUSE, NfChainType::Filter, NfHook::Output, 0),
        base_chain(CHAIN_MESH_IN, NfChainType::Filter, NfHook::Prerouting, -150),
        base_chain(CHAIN_MESH_OUT, NfChainType::Route, NfHook::Output, -150),
    ];
    for c in chains {
        batch.add(NfListObject::Chain(c.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(c)));
    }
    if let Some(mesh) = &task.mesh {
        for r in mesh_rules(mesh) {
            batch.add(NfListObject::Rule(r));
        }
    }
    for vip in &task.vips {
        let to_vip = || {
            vec![
                ipv4(),
                m(
                    payload("ip", "daddr"),
                    Expression::String(vip.addr.to_string().into()),
                    Operator::EQ,
                ),
            ]
        };
        let comment = Some(format!("service {}", vip.service_name));
        if vip.backends.is_empty() {
            let mut tcp = to_vip();
            tcp.push(m(
                meta(MetaKey::L4proto),
                Expression::String("tcp".into()),
                Operator::EQ,
            ));
            tcp.push(Statement::Reject(Some(Reject::new(
                Some(RejectType::TCPReset),
                None,
            ))));
            batch.add(NfListObject::Rule(rule(
                CHAIN_VIP_REFUSE,
                tcp,
                comment.clone(),
            )));
            let mut other = to_vip();
            other.push(Statement::Reject(Some(Reject::new(None, None))));
            batch.add(NfListObject::Rule(rule(CHAIN_VIP_REFUSE, other, comment)));
            continue;
        }
        let mut expr = to_vip();
        expr.push(Statement::DNAT(Some(NAT {
            addr: Some(round_robin(&vip.backends)),
            family: Some(NATFamily::IP),
            port: None,
            flags: None,
        })));
        batch.add(NfListObject::Rule(rule(CHAIN_VIP, expr, comment)));
    }
    batch.to_nftables()
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn mesh_rules(mesh: &MeshIn) -> Vec<Rule<'static>> {
    let by_mac = mesh
        .nodes
        .iter()
        .map(|(mac, mark)| {
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            SetItem::Mapping(Expression::String(mac.into()), Expression::Number(*mark))
        })
        .collect();
    let mark_in = vec![
        m(
            meta(MetaKey::Iifname),
            Expression::String(mesh.ifname.clone().into()),
            Operator::EQ,
        ),
        m(ct("state"), Expression::String("new".into()), Operator::IN),
        Statement::Mangle(Mangle {
            key: ct("mark"),
            value: Expression::Named(NamedExpression::Map(Box::new(Map {
                key: payload("ether", "saddr"),
                data: Expression::Named(NamedExpression::Set(by_mac)),
            }))),
        }),
    ];
    let mark_out = vec![
        m(ct("mark"), Expression::Number(0), Operator::NEQ),
        Statement::Mangle(Mangle {
            key: meta(MetaKey::Mark),
            value: ct("mark"),
        }),
    ];
    vec![
        rule(
            CHAIN_MESH_IN,
            mark_in,
            Some("which node's mesh sent it".into()),
        ),
        rule(
            CHAIN_MESH_OUT,
            mark_out,
            Some("replies go back that way".into()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(addr: &str, backends: &[&str]) -> Vip {
        Vip {
            addr: addr.parse().expect("ip"),
            backends: backends.iter().map(|b| b.parse().expect("ip")).collect(),
            service_name: "web".into(),
        }
    }

    #[test]
    fn a_vip_balances_over_its_backends_on_every_port_and_an_empty_one_refuses() {
        let j = serde_json::to_string(&batch(&TaskTable {
            vips: vec![
                vip("10.0.2.2", &["10.0.2.5", "10.0.2.7"]),
                vip("10.0.2.3", &[]),
            ],
            mesh: None,
        }))
        .expect("json");
        assert!(j.contains(r#""numgen":{"mode":"inc","mod":2}"#), "{j}");
        assert!(j.contains(r#"[0,"10.0.2.5"],[1,"10.0.2.7"]"#), "{j}");
        // The port is kept: no "port" in the DNAT.
        assert!(!j.contains(r#""port""#), "{j}");
        assert!(j.contains(r#""reject":{"type":"tcp reset"}"#), "{j}");
    }

    #[test]
    fn no_vips_remove_the_table() {
        let j = serde_json::to_string(&batch(&TaskTable::default())).expect("json");
        assert!(j.contains(r#"{"delete":{"table":{"family":"inet","name":"shoal"}}}"#));
    }
}
