//! The table `inet shoal` inside a task's namespace: east-west load
//! balancing of service virtual IPs.
//!
//! A connection to a VIP is DNAT-ed in the client's own namespace, before
//! it leaves it, to one of the service's running tasks (round-robin). So
//! the backend sees the client's real address, the reply comes straight
//! back (conntrack in the client's namespace undoes the DNAT), and no node
//! in between holds any state for it. A VIP without backends refuses at
//! once (TCP reset, ICMP unreachable) instead of letting clients time out.
//!
//! Layout: `vip-output` (nat, output, dstnat) holds one DNAT rule per VIP;
//! `vip-refuse` (filter, output) the refusals.

use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::schema::{FlushObject, NfCmd, NfListObject, Nftables};
use nftables::stmt::{NATFamily, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainType, NfHook};

use super::{base_chain, ipv4, m, meta, payload, round_robin, rule, table};

pub const CHAIN_VIP: &str = "vip-output";
pub const CHAIN_VIP_REFUSE: &str = "vip-refuse";

/// One service as a task's namespace balances it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vip {
    pub addr: Ipv4Addr,
    /// Sorted, without duplicates (the same view gives the same rules).
    pub backends: Vec<Ipv4Addr>,
    pub service_name: String,
}

/// The batch that makes a task namespace's table hold exactly `vips`
/// (sorted by address); with none, the table goes.
pub fn batch(vips: &[Vip]) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    if vips.is_empty() {
        batch.delete(NfListObject::Table(table()));
        return batch.to_nftables();
    }
    let chains = [
        base_chain(CHAIN_VIP, NfChainType::NAT, NfHook::Output, -100),
        base_chain(CHAIN_VIP_REFUSE, NfChainType::Filter, NfHook::Output, 0),
    ];
    for c in chains {
        batch.add(NfListObject::Chain(c.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(c)));
    }
    for vip in vips {
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
                meta(nftables::expr::MetaKey::L4proto),
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
        let j = serde_json::to_string(&batch(&[
            vip("10.0.2.2", &["10.0.2.5", "10.0.2.7"]),
            vip("10.0.2.3", &[]),
        ]))
        .expect("json");
        assert!(j.contains(r#""numgen":{"mode":"inc","mod":2}"#), "{j}");
        assert!(j.contains(r#"[0,"10.0.2.5"],[1,"10.0.2.7"]"#), "{j}");
        // The port is kept: no "port" in the DNAT.
        assert!(!j.contains(r#""port""#), "{j}");
        assert!(j.contains(r#""reject":{"type":"tcp reset"}"#), "{j}");
    }

    #[test]
    fn no_vips_remove_the_table() {
        let j = serde_json::to_string(&batch(&[])).expect("json");
        assert!(j.contains(r#"{"delete":{"table":{"family":"inet","name":"shoal"}}}"#));
    }
}
