//! One query in, one decision out: the reply to send, or the query to
//! forward. No I/O here, so the rules are the same over UDP and TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::table::{ClientView, NameTable};

/// TTL of every answer about cluster names: 0, so nothing caches them.
/// Task addresses (`tasks.x`, dnsrr, hostnames) change with every update or
/// restart, and a cached one sends connections to a task that is gone; the
/// answer is one hop away, so asking again costs nothing. Round robin also
/// only works if clients ask again.
pub const TTL: u32 = 0;

/// Largest UDP message this server sends or reads, and the EDNS payload it
/// advertises. Answers bigger than what the client accepts are truncated.
pub(crate) const MAX_UDP: usize = 4096;

/// A classic DNS client without EDNS accepts 512 bytes over UDP.
const MIN_UDP: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

pub(crate) enum Outcome {
    Reply(Vec<u8>),
    Forward(Forward),
    /// No answer at all: a runt packet or a response (answering responses
    /// would let two servers bounce packets forever).
    Ignore,
}

/// A query for a name that is not the cluster's, to send upstream.
pub(crate) struct Forward {
    /// The client's query as it came, with an id of ours: a fresh random id
    /// (with the fresh source port of each exchange) makes a spoofed answer
    /// from elsewhere unlikely to be taken.
    pub packet: Vec<u8>,
    pub id: u16,
    pub upstreams: Arc<[SocketAddr]>,
    request: Message,
    transport: Transport,
}

impl Forward {
    /// The question the upstream's answer must echo.
    pub fn query(&self) -> &Query {
        &self.request.queries[0]
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The reply to the client for the upstream's answer: the answer as it
    /// is with the client's id back, or SERVFAIL if no upstream answered.
    pub fn reply(&self, answer: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let Some(mut answer) = answer else {
            return encode(
                reply_to(&self.request, ResponseCode::ServFail),
                limit(&self.request, self.transport),
            );
        };
        answer[..2].copy_from_slice(&self.request.metadata.id.to_be_bytes());
        if answer.len() > limit(&self.request, self.transport) {
            // Only an upstream ignoring the client's size gets here: say
            // "truncated" so the client asks again over TCP.
            let mut reply = reply_to(&self.request, ResponseCode::NoError);
            reply.metadata.truncation = true;
            return encode(reply, MIN_UDP);
        }
        Some(answer)
    }
}

/// Decides what to do with one packet from `src`. `defaults` are the
/// server's upstreams, for clients without their own.
pub(crate) fn handle(
    table: &NameTable,
    defaults: &Arc<[SocketAddr]>,
    src: IpAddr,
    packet: &[u8],
    transport: Transport,
) -> Outcome {
    let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
        return Outcome::Ignore;
    };
    if header.metadata.message_type == MessageType::Response {
        return Outcome::Ignore;
    }
    let client = match src {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
    .and_then(|a| table.client(a));
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(_) => {
            let rcode = match client {
                Some(_) => ResponseCode::FormErr,
                None => ResponseCode::Refused,
            };
            return reply_or_ignore(header_reply(&header.metadata, rcode), MIN_UDP);
        }
    };
    let limit = limit(&request, transport);
    // Only tasks of this node may ask: the server is no open resolver for
    // whatever else can reach a gateway address.
    let Some(client) = client else {
        return reply_or_ignore(reply_to(&request, ResponseCode::Refused), limit);
    };
    if request.metadata.op_code != OpCode::Query {
        return reply_or_ignore(reply_to(&request, ResponseCode::NotImp), limit);
    }
    if request.queries.len() != 1 {
        return reply_or_ignore(reply_to(&request, ResponseCode::FormErr), limit);
    }

    if let Some(reply) = local_answer(&client, &request) {
        return reply_or_ignore(reply, limit);
    }

    let upstreams = client.upstreams().unwrap_or(defaults).clone();
    if upstreams.is_empty() {
        // Nowhere to ask: say so now rather than let the client time out.
        return reply_or_ignore(reply_to(&request, ResponseCode::NXDomain), limit);
    }
    let id = rand::random::<u16>();
    let mut packet = packet.to_vec();
    packet[..2].copy_from_slice(&id.to_be_bytes());
    Outcome::Forward(Forward {
        packet,
        id,
        upstreams,
        request,
        transport,
    })
}

/// The reply for a cluster name, or None if the name is not the cluster's
/// and may be forwarded.
fn local_answer(client: &ClientView<'_>, request: &Message) -> Option<Message> {
    let query = &request.queries[0];
    let name = query.name();
    let class_in = query.query_class() == DNSClass::IN;

    if query.query_type() == RecordType::PTR && class_in {
        if let Some(target) = arpa_v4(name).and_then(|a| client.reverse(a)) {
            if let Ok(target) = Name::from_ascii(format!("{target}.")) {
                let mut reply = authoritative(request, ResponseCode::NoError);
                reply.add_answer(Record::from_rdata(
                    name.clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                ));
                return Some(reply);
            }
        }
    }

    let ascii = name.to_ascii();
    let mut addrs: Vec<Ipv4Addr> = Vec::new();
    let wants_a = class_in && matches!(query.query_type(), RecordType::A | RecordType::ANY);
    let found = if wants_a {
        client.resolve_into(&ascii, &mut addrs)
    } else {
        client.has_name(&ascii)
    };
    if found {
        // A name of ours asked for AAAA (or anything but A) is NODATA:
        // NOERROR without answers, so resolvers asking A and AAAA together
        // take the A answer instead of failing the whole lookup.
        let mut reply = authoritative(request, ResponseCode::NoError);
        for addr in addrs {
            reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(addr))));
        }
        return Some(reply);
    }

    // A single label or `tasks.` can only be a cluster name (no public
    // name looks like that); forwarding it would only leak it and make the
    // client wait for the upstream's NXDOMAIN.
    let first_is_tasks = name
        .iter()
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"tasks"));
    if name.num_labels() == 1 || first_is_tasks {
        return Some(authoritative(request, ResponseCode::NXDomain));
    }
    None
}

/// `d.c.b.a.in-addr.arpa.` as the address a.b.c.d.
fn arpa_v4(name: &Name) -> Option<Ipv4Addr> {
    let net = name.parse_arpa_name().ok()?;
    match net.addr() {
        IpAddr::V4(a) if net.prefix_len() == 32 => Some(a),
        _ => None,
    }
}

/// How big a reply may be: what the client advertised over UDP (EDNS), up
/// to our own maximum; a TCP message may be as big as DNS allows.
fn limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => u16::MAX as usize,
        Transport::Udp => request
            .edns
            .as_ref()
            .map_or(MIN_UDP, |e| e.max_payload() as usize)
            .clamp(MIN_UDP, MAX_UDP),
    }
}

fn authoritative(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = reply_to(request, rcode);
    reply.metadata.authoritative = true;
    reply
}

/// A reply echoing the request's question (and EDNS, which RFC 6891 asks
/// of a server answering a query that had it).
fn reply_to(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = header_reply(&request.metadata, rcode);
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP as u16);
        reply.set_edns(edns);
    }
    reply
}

/// A reply from the header alone, for a request whose body does not parse.
fn header_reply(meta: &Metadata, rcode: ResponseCode) -> Message {
    let mut reply = Message::error_msg(meta.id, meta.op_code, rcode);
    reply.metadata.recursion_desired = meta.recursion_desired;
    reply.metadata.checking_disabled = meta.checking_disabled;
    // Forwarding is recursion on the client's behalf.
    reply.metadata.recursion_available = true;
    reply
}

fn reply_or_ignore(reply: Message, limit: usize) -> Outcome {
    encode(reply, limit).map_or(Outcome::Ignore, Outcome::Reply)
}

/// The reply's bytes, truncated to `limit`: as many answers as fit, with
/// TC set. Resolvers that can retry over TCP do; musl's (which cannot)
/// still gets the addresses that fit, as Docker's resolver does.
fn encode(mut reply: Message, limit: usize) -> Option<Vec<u8>> {
    let mut bytes = reply.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    reply.metadata.truncation = true;
    reply.additionals.clear();
    reply.authorities.clear();
    // Every A answer has the same size, so the first guess is close.
    let mut keep = reply.answers.len() * limit / bytes.len();
    loop {
        reply.answers.truncate(keep);
        bytes = reply.to_vec().ok()?;
        if bytes.len() <= limit || keep == 0 {
            return Some(bytes);
        }
        keep -= 1;
    }
}
