//! The way back of routing-mesh connections, inside a task's namespace.
//!
//! The mesh DNATs a connection to a task on any node but keeps the
//! client's address as its source (Swarm SNATs it, moby#25526), so the
//! task's reply must go back through the node that took the connection,
//! not out of its default route. The frame arrives on the task's ingress
//! interface from that node's ingress bridge, whose MAC derives from the
//! node's ingress address ([`crate::link::mac_for`]): the task's table
//! (`nft::task`) marks the connection with that node's mark, its replies
//! carry the mark, and a policy rule per node routes marked packets via
//! that node's ingress address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use crate::error::{errno, Error, Result};
use crate::link::{self, EEXIST};

/// Where the rules sit among the namespace's policy rules (before `main`).
const RULE_PRIORITY: u32 = 1000;
/// Marks (and table ids) of mesh connections: this prefix and the low 16
/// bits of the node's ingress address, unique within the ingress subnet.
const MARK_BASE: u32 = 0x5e00_0000;

/// The mark, and routing table, of connections from the node whose
/// ingress address is `node`.
pub fn mark_of(node: Ipv4Addr) -> u32 {
    MARK_BASE | (u32::from(node) & 0xffff)
}

fn is_ours(rule: &RuleMessage) -> Option<u32> {
    let mut priority = None;
    let mut mark = None;
    for attr in &rule.attributes {
        match attr {
            RuleAttribute::Priority(p) => priority = Some(*p),
            RuleAttribute::FwMark(m) => mark = Some(*m),
            _ => {}
        }
    }
    (priority == Some(RULE_PRIORITY)).then_some(mark?)
}

/// Makes the task namespace's policy routing exactly one rule and table
/// per node in `nodes` (their ingress addresses), via interface `ifindex`.
pub async fn apply(task: &Handle, ifindex: u32, nodes: &[Ipv4Addr]) -> Result<()> {
    let wanted: BTreeSet<u32> = nodes.iter().map(|n| mark_of(*n)).collect();
    let existing: Vec<RuleMessage> = task
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(Error::netlink("list policy rules"))?;
    let mut have = BTreeSet::new();
    for rule in existing {
        let Some(mark) = is_ours(&rule) else {
            continue;
        };
        if wanted.contains(&mark) {
            have.insert(mark);
        } else {
            task.rule()
                .del(rule)
                .execute()
                .await
                .map_err(Error::netlink(format!(
                    "delete the mesh rule of mark {mark:#x}"
                )))?;
        }
    }
    for node in nodes {
        let mark = mark_of(*node);
        link::replace_default_route(task, *node, ifindex, Some(mark)).await?;
        if have.contains(&mark) {
            continue;
        }
        match task
            .rule()
            .add()
            .v4()
            .fw_mark(mark)
            .table_id(mark)
            .action(RuleAction::ToTable)
            .priority(RULE_PRIORITY)
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(Error::netlink(format!("add the mesh rule for {node}"))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_per_node_and_never_a_reserved_table() {
        let a = mark_of("10.0.0.254".parse().expect("ip"));
        let b = mark_of("10.0.0.253".parse().expect("ip"));
        assert_ne!(a, b);
        for m in [a, b] {
            assert!(m > 255, "tables 0 and 253-255 are the kernel's");
        }
    }
}
