//! IPv4 prefixes as the cluster writes them (`10.0.1.5/24`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length; the address need not be the
/// network address (`10.0.1.5/24` is a host in `10.0.1.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Cidr {
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form (a.b.c.d/len)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| format!("{s:?}: bad IPv4 address: {e}"))?;
        let len: u8 = len
            .parse()
            .map_err(|e| format!("{s:?}: bad prefix length: {e}"))?;
        if len > 32 {
            return Err(format!("{s:?}: prefix length above 32"));
        }
        Ok(Ipv4Cidr { addr, len })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_tests_membership() {
        let c: Ipv4Cidr = "10.0.1.5/24".parse().expect("parse");
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 1, 0));
        assert!(c.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 2, 1)));
        assert!("10.0.1.5".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.1.5/33".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().expect("parse");
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }
}
