//! A DNS A query over UDP, just enough to ask netd's embedded server
//! whether a name resolves yet: one question out, the answer's A records
//! back (compressed names skipped, other record types ignored).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

static NEXT_ID: AtomicU16 = AtomicU16::new(0x5a5a);

/// The A records `server` answers for `name` (none for NXDOMAIN or NODATA),
/// asked from the calling thread's network namespace.
pub fn lookup_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>> {
    let sock = UdpSocket::bind("0.0.0.0:0").context("bind a UDP socket for DNS")?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(server)
        .with_context(|| format!("connect to {server}"))?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    sock.send(&query(id, name)?)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock
            .recv(&mut buf)
            .with_context(|| format!("no DNS answer from {server} for {name}"))?;
        let msg = &buf[..n];
        if msg.len() >= 2 && u16::from_be_bytes([msg[0], msg[1]]) == id {
            return parse_a(msg);
        }
    }
}

fn query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            bail!("bad DNS name {name:?}");
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    Ok(q)
}

fn parse_a(msg: &[u8]) -> Result<Vec<Ipv4Addr>> {
    let short = || anyhow::anyhow!("short DNS answer ({} bytes)", msg.len());
    if msg.len() < 12 {
        return Err(short());
    }
    let rcode = msg[3] & 0x0f;
    let questions = u16::from_be_bytes([msg[4], msg[5]]);
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    if rcode != 0 {
        return Ok(Vec::new());
    }
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at).ok_or_else(short)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at).ok_or_else(short)?;
        let fixed = msg.get(at..at + 10).ok_or_else(short)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = msg.get(at + 10..at + 10 + len).ok_or_else(short)?;
        if rtype == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Ok(addrs)
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_a_compressed_name_gives_its_a_records() {
        let mut msg = query(7, "tasks.web").unwrap();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 2; // two answers
        for last in [5u8, 6] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 1, last]);
        }
        assert_eq!(
            parse_a(&msg).unwrap(),
            [Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6)]
        );
        msg[3] = 0x83; // NXDOMAIN
        assert!(parse_a(&msg).unwrap().is_empty());
        assert!(parse_a(&msg[..20]).is_ok_and(|a| a.is_empty()));
        msg[3] = 0x80;
        assert!(parse_a(&msg[..40]).is_err());
    }
}
