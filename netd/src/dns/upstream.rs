//! Asking the upstream resolvers for names that are not the cluster's.
//!
//! The query goes as it came (only the id is ours), over UDP; an answer
//! marked truncated is asked again over TCP when the client is on TCP (a
//! UDP client gets the truncated answer and retries over TCP itself, as it
//! would with the upstream directly). Upstreams are tried in order, each
//! for at most [`FORWARD_TIMEOUT`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, timeout_at, Instant};

use super::answer::{Transport, MAX_UDP};

/// How long one upstream has to answer before the next is asked.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// glibc uses the first three `nameserver` lines (MAXNS); so does netd,
/// which then behaves like the host's own lookups.
const MAX_UPSTREAMS: usize = 3;

/// The resolvers of a resolv.conf text, port 53. Loopback resolvers (such
/// as systemd-resolved's 127.0.0.53) are kept: netd forwards from its own
/// namespace, where they answer. IPv6 addresses with a zone (`%eth0`) are
/// kept only with a numeric zone.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        let addr = match word.split_once('%') {
            None => word
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53)),
            Some((ip, zone)) => match (ip.parse::<Ipv6Addr>(), zone.parse::<u32>()) {
                (Ok(ip), Ok(zone)) => {
                    Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, 53, 0, zone)))
                }
                _ => None,
            },
        };
        if let Some(addr) = addr {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        if out.len() == MAX_UPSTREAMS {
            break;
        }
    }
    out
}

/// The first usable answer of `upstreams` to `packet` (whose id is `id` and
/// question `query`), with the upstream's id; None if all failed.
/// SERVFAIL, REFUSED and NOTIMP count as failures (the next upstream may
/// do better, as glibc's resolver assumes).
pub(crate) async fn exchange(
    packet: &[u8],
    id: u16,
    query: &Query,
    upstreams: &[SocketAddr],
    transport: Transport,
    per_upstream: Duration,
) -> Option<Vec<u8>> {
    // One buffer for the whole exchange; a byte more than the largest UDP
    // message we take tells a message cut by the buffer.
    let mut buf = vec![0u8; MAX_UDP + 1];
    for &upstream in upstreams {
        let answer = match udp(packet, upstream, &mut buf, per_upstream).await {
            Ok(n) => &buf[..n],
            Err(error) => {
                tracing::debug!(%upstream, %error, "DNS upstream failed over UDP");
                continue;
            }
        };
        let Some(header) = check(answer, id, query) else {
            continue;
        };
        let cut = answer.len() > MAX_UDP;
        if header.metadata.truncation || cut {
            if transport == Transport::Tcp {
                match tcp(packet, upstream, per_upstream).await {
                    Ok(answer) if check(&answer, id, query).is_some() => return Some(answer),
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!(%upstream, %error, "DNS upstream failed over TCP");
                        continue;
                    }
                }
            }
            if cut {
                // Not a whole message: build a truncated answer ourselves.
                let mut answer = Message::response(id, header.metadata.op_code);
                answer.metadata = header.metadata;
                answer.metadata.truncation = true;
                answer.add_query(query.clone());
                return answer.to_vec().ok();
            }
        }
        return Some(answer.to_vec());
    }
    None
}

/// The header of `answer` if it answers our query and is worth relaying.
fn check(answer: &[u8], id: u16, query: &Query) -> Option<Header> {
    let mut decoder = BinDecoder::new(answer);
    let header = Header::read(&mut decoder).ok()?;
    if header.metadata.id != id || header.metadata.message_type != MessageType::Response {
        return None;
    }
    let queries = Message::read_queries(&mut decoder, header.counts.queries as usize).ok()?;
    if queries.len() != 1 || queries[0] != *query {
        return None;
    }
    match header.metadata.response_code {
        ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::NotImp => None,
        _ => Some(header),
    }
}

/// Sends over a connected UDP socket of its own (a fresh source port per
/// query; the kernel drops datagrams from anyone but the upstream, and an
/// ICMP "port unreachable" ends the wait at once) and waits for the answer
/// with our id: late answers to earlier queries are skipped.
async fn udp(
    packet: &[u8],
    upstream: SocketAddr,
    buf: &mut [u8],
    wait: Duration,
) -> std::io::Result<usize> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(packet).await?;
    let deadline = Instant::now() + wait;
    loop {
        let n = timeout_at(deadline, socket.recv(buf))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n >= 2 && buf[..2] == packet[..2] {
            return Ok(n);
        }
    }
}

/// One query over a new TCP connection (length-prefixed, RFC 1035 4.2.2).
async fn tcp(packet: &[u8], upstream: SocketAddr, wait: Duration) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        let len = u16::try_from(packet.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let mut out = Vec::with_capacity(packet.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(packet);
        stream.write_all(&out).await?;
        let len = stream.read_u16().await?;
        let mut answer = vec![0u8; len as usize];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    };
    timeout(wait, exchange)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_resolv_conf_nameservers_in_order_loopback_kept() {
        let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver 10.0.0.1 # office\n;nameserver 10.9.9.9\n\
                    nameserver   2001:db8::1\nnameserver fe80::1%eth0\n\
                    nameserver fe80::2%3\nnameserver 10.0.0.1\nnameserver bogus\n\
                    options ndots:2\n";
        let got = upstreams_from_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
            ]
        );
        assert!(upstreams_from_resolv_conf("").is_empty());
    }

    #[test]
    fn dns_resolv_conf_zoned_ipv6_needs_a_numeric_zone() {
        let got = upstreams_from_resolv_conf("nameserver fe80::1%eth0\nnameserver fe80::2%3\n");
        assert_eq!(got.len(), 1);
        match got[0] {
            SocketAddr::V6(a) => assert_eq!(a.scope_id(), 3),
            _ => panic!("not v6"),
        }
    }
}
