//! IPv4 subnets in CIDR form, as the allocator hands them out.

use std::net::Ipv4Addr;

/// An IPv4 subnet in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `10.0.1.0/24` (host bits are cleared: `10.0.1.7/24` is 10.0.1.0/24).
    /// Prefixes longer than /30 leave no room for a gateway and a task.
    pub fn parse(cidr: &str) -> Option<Subnet> {
        let (addr, prefix) = cidr.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 30)?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        Some(Subnet::new(addr, prefix))
    }

    fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet {
            base: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn last(&self) -> u32 {
        (u64::from(u32::from(self.base)) + self.size() - 1) as u32
    }

    /// Usable host addresses: not the network, not the broadcast.
    pub fn hosts(&self) -> impl DoubleEndedIterator<Item = Ipv4Addr> {
        let base = u32::from(self.base);
        let last = self.last();
        (base + 1..last).map(Ipv4Addr::from)
    }

    /// The usable host addresses after `after`, then those up to it:
    /// where a serial allocator that gave `after` last looks next.
    pub fn hosts_after(&self, after: Ipv4Addr) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.base) + 1;
        let last = self.last();
        let next = u32::from(after).saturating_add(1).clamp(first, last);
        (next..last).chain(first..next).map(Ipv4Addr::from)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.base)
    }

    /// Whether `self` lies wholly inside `outer`.
    pub fn within(&self, outer: &Subnet) -> bool {
        self.prefix >= outer.prefix && outer.contains(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.within(other) || other.within(self)
    }

    /// The subnets of `prefix` bits that make up this one, in order.
    pub fn blocks(&self, prefix: u8) -> impl Iterator<Item = Subnet> {
        let base = u64::from(u32::from(self.base));
        let step = 1u64 << (32 - u32::from(prefix.max(self.prefix)));
        let end = base + self.size();
        (0..)
            .map(move |i| base + i * step)
            .take_while(move |start| *start < end)
            .map(move |start| Subnet::new(Ipv4Addr::from(start as u32), prefix))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_overlap_and_split_into_blocks() {
        let pool = Subnet::parse("10.0.0.0/8").unwrap();
        let a = Subnet::parse("10.0.1.9/24").unwrap();
        assert_eq!(a.to_string(), "10.0.1.0/24");
        assert!(a.within(&pool) && a.overlaps(&pool) && pool.overlaps(&a));
        assert!(!a.overlaps(&Subnet::parse("10.0.2.0/24").unwrap()));
        assert!(a.contains("10.0.1.255".parse().unwrap()));
        assert!(!a.contains("10.0.2.0".parse().unwrap()));
        let blocks: Vec<String> = Subnet::parse("10.0.0.0/22")
            .unwrap()
            .blocks(24)
            .map(|b| b.to_string())
            .collect();
        assert_eq!(
            blocks,
            ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
        );
        assert_eq!(pool.blocks(24).count(), 65536);
        let top = Subnet::parse("255.255.255.0/24").unwrap();
        assert_eq!(top.hosts().last(), Some("255.255.255.254".parse().unwrap()));
    }
}
