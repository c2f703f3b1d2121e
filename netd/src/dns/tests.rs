//! The server over real sockets on loopback: no root needed. Each loopback
//! source address (127.0.0.2, .3...) plays one task.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use super::*;

const FRONT_CLIENT: &str = "127.0.0.2"; // on front only
const BOTH_CLIENT: &str = "127.0.0.3"; // on back, then front
const OWN_UPSTREAM_CLIENT: &str = "127.0.0.4"; // on back, own upstream
const STRANGER: &str = "127.0.0.9"; // no task of this node

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn rec(name: &str, addrs: &[&str]) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
    }
}

fn client(addr: &str, networks: &[&str], upstreams: Vec<SocketAddr>) -> DnsClient {
    DnsClient {
        addr: ip(addr),
        networks: networks.iter().map(|n| n.to_string()).collect(),
        upstreams,
    }
}

/// Stack `shop`: service web (VIP 10.0.1.2, three tasks) on front with the
/// alias www; service db on back.
fn cluster(own_upstream: Vec<SocketAddr>) -> NameTable {
    let tasks = ["10.0.1.3", "10.0.1.4", "10.0.1.5"];
    let mut big = Vec::new();
    for i in 0..200u32 {
        big.push(Ipv4Addr::from(0x0a00_0300 + i));
    }
    NameTable::new(
        vec![
            DnsNetwork {
                network_id: "front".into(),
                records: vec![
                    rec("web.1.t1", &[tasks[0]]),
                    rec("web", &["10.0.1.2"]),
                    rec("shop_web", &["10.0.1.2"]),
                    rec("www", &["10.0.1.2"]),
                    rec("tasks.web", &tasks),
                    rec("tasks.shop_web", &tasks),
                    DnsRecord {
                        name: "tasks.big".into(),
                        addrs: big,
                    },
                ],
            },
            DnsNetwork {
                network_id: "back".into(),
                records: vec![rec("db", &["10.0.2.2"]), rec("tasks.db", &["10.0.2.3"])],
            },
        ],
        vec![
            client(FRONT_CLIENT, &["front"], vec![]),
            client(BOTH_CLIENT, &["back", "front"], vec![]),
            client(OWN_UPSTREAM_CLIENT, &["back"], own_upstream),
        ],
    )
}

async fn start(table: NameTable, upstreams: Vec<SocketAddr>) -> (DnsServer, SocketAddr) {
    let server = DnsServer::new(upstreams);
    server.set_table(Arc::new(table));
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (server, addr)
}

fn query_message(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    // Fully qualified, as every name on the wire is.
    let name = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).unwrap();
    msg.add_query(Query::query(name, rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg
}

async fn udp_exchange(src: &str, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((ip(src), 0)).await.unwrap();
    socket.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(n);
    Some(buf)
}

async fn ask_with(
    src: &str,
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
) -> Message {
    let query = query_message(name, rtype, edns);
    let bytes = udp_exchange(src, server, &query.to_vec().unwrap())
        .await
        .expect("an answer within 5 s");
    let answer = Message::from_vec(&bytes).unwrap();
    assert_eq!(answer.metadata.id, query.metadata.id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(answer.queries, query.queries);
    answer
}

async fn ask(src: &str, server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    ask_with(src, server, name, rtype, None).await
}

async fn ask_tcp(src: &str, server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let query = query_message(name, rtype, None);
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((ip(src), 0).into()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await.unwrap();
    let answer = Message::from_vec(&buf).unwrap();
    assert_eq!(answer.metadata.id, query.metadata.id);
    answer
}

fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(A(a)) => Some(a),
            _ => None,
        })
        .collect()
}

/// A tiny upstream: `example.test` is `addr`; `big.test` is truncated over
/// UDP and 100 addresses over TCP; anything else is NXDOMAIN.
async fn fake_upstream(addr: Ipv4Addr) -> SocketAddr {
    fn answer(query: &[u8], addr: Ipv4Addr, tcp: bool) -> Vec<u8> {
        let query = Message::from_vec(query).unwrap();
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.recursion_available = true;
        reply.add_queries(query.queries.iter().cloned());
        let name = query.queries[0].name().clone();
        match name.to_ascii().as_str() {
            "example.test." => {
                reply.add_answer(Record::from_rdata(name, 60, RData::A(A(addr))));
            }
            "big.test." if !tcp => reply.metadata.truncation = true,
            "big.test." => {
                for i in 0..100u32 {
                    let a = Ipv4Addr::from(0xc000_0200 + i);
                    reply.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(a))));
                }
            }
            _ => reply.metadata.response_code = ResponseCode::NXDomain,
        }
        reply.to_vec().unwrap()
    }
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(local).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            let reply = answer(&buf[..n], addr, false);
            udp.send_to(&reply, from).await.unwrap();
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let len = stream.read_u16().await.unwrap();
            let mut buf = vec![0u8; len as usize];
            stream.read_exact(&mut buf).await.unwrap();
            let reply = answer(&buf, addr, true);
            stream
                .write_all(&(reply.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&reply).await.unwrap();
        }
    });
    local
}

#[tokio::test]
async fn dns_service_name_resolves_to_its_vip() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    for name in ["web", "WEB.", "shop_web"] {
        let answer = ask(FRONT_CLIENT, addr, name, RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert_eq!(a_records(&answer), [ip("10.0.1.2")], "{name}");
        assert!(answer.answers.iter().all(|r| r.ttl == TTL));
    }
}

#[tokio::test]
async fn dns_tasks_name_lists_all_tasks_round_robin() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let answer = ask(FRONT_CLIENT, addr, "tasks.web", RecordType::A).await;
        let mut got = a_records(&answer);
        firsts.push(got[0]);
        got.sort();
        assert_eq!(got, [ip("10.0.1.3"), ip("10.0.1.4"), ip("10.0.1.5")]);
    }
    firsts.sort();
    assert_eq!(firsts, [ip("10.0.1.3"), ip("10.0.1.4"), ip("10.0.1.5")]);
    let answer = ask(FRONT_CLIENT, addr, "tasks.shop_web", RecordType::A).await;
    assert_eq!(a_records(&answer).len(), 3);
}

#[tokio::test]
async fn dns_alias_resolves() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let answer = ask(FRONT_CLIENT, addr, "www", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
}

#[tokio::test]
async fn dns_names_of_networks_the_client_is_not_on_are_nxdomain() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    for name in ["db", "tasks.db"] {
        let answer = ask(FRONT_CLIENT, addr, name, RecordType::A).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(answer.answers.is_empty());
    }
    // The task on both networks sees both.
    let answer = ask(BOTH_CLIENT, addr, "db", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.2.2")]);
    let answer = ask(BOTH_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
}

#[tokio::test]
async fn dns_unknown_single_label_and_tasks_names_are_nxdomain_at_once() {
    // The upstream never answers: a forwarded query would take 2 s.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_server, addr) = start(cluster(vec![]), vec![silent.local_addr().unwrap()]).await;
    for name in ["nosuchservice", "tasks.nosuch", "tasks.nosuch.example.com"] {
        let started = Instant::now();
        let answer = ask(FRONT_CLIENT, addr, name, RecordType::A).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
        assert!(started.elapsed() < Duration::from_millis(200), "{name}");
    }
}

#[tokio::test]
async fn dns_aaaa_and_other_types_of_a_known_name_are_nodata() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let answer = ask(FRONT_CLIENT, addr, "web", rtype).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.answers.is_empty(), "{rtype}");
    }
}

#[tokio::test]
async fn dns_ptr_of_a_known_address_gives_its_first_name() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let answer = ask(
        FRONT_CLIENT,
        addr,
        "3.1.0.10.in-addr.arpa.",
        RecordType::PTR,
    )
    .await;
    assert_eq!(answer.answers.len(), 1);
    match &answer.answers[0].data {
        RData::PTR(target) => assert_eq!(target.0.to_ascii(), "web.1.t1."),
        other => panic!("not a PTR: {other:?}"),
    }
    // Not on the client's networks: not the cluster's to answer (and no
    // upstream here).
    let answer = ask(
        FRONT_CLIENT,
        addr,
        "2.2.0.10.in-addr.arpa.",
        RecordType::PTR,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn dns_unknown_client_is_refused() {
    let upstream = fake_upstream(ip("192.0.2.10")).await;
    let (_server, addr) = start(cluster(vec![]), vec![upstream]).await;
    for name in ["web", "example.test"] {
        let answer = ask(STRANGER, addr, name, RecordType::A).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(answer.answers.is_empty());
    }
}

#[tokio::test]
async fn dns_other_names_are_forwarded_to_the_upstreams() {
    let default = fake_upstream(ip("192.0.2.10")).await;
    let own = fake_upstream(ip("192.0.2.20")).await;
    let (_server, addr) = start(cluster(vec![own]), vec![default]).await;

    let answer = ask(FRONT_CLIENT, addr, "example.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&answer), [ip("192.0.2.10")]);
    assert_eq!(answer.answers[0].ttl, 60, "relayed as it is");

    let answer = ask(OWN_UPSTREAM_CLIENT, addr, "example.test", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("192.0.2.20")]);

    let answer = ask(FRONT_CLIENT, addr, "missing.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

    let answer = ask_tcp(FRONT_CLIENT, addr, "example.test", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("192.0.2.10")]);
}

#[tokio::test]
async fn dns_truncated_upstream_answers_are_asked_again_over_tcp_for_tcp_clients() {
    let upstream = fake_upstream(ip("192.0.2.10")).await;
    let (_server, addr) = start(cluster(vec![]), vec![upstream]).await;
    let answer = ask(FRONT_CLIENT, addr, "big.test", RecordType::A).await;
    assert!(
        answer.metadata.truncation,
        "a UDP client gets TC and retries"
    );
    let answer = ask_tcp(FRONT_CLIENT, addr, "big.test", RecordType::A).await;
    assert!(!answer.metadata.truncation);
    assert_eq!(a_records(&answer).len(), 100);
}

#[tokio::test]
async fn dns_a_failing_upstream_is_skipped_for_the_next() {
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let good = fake_upstream(ip("192.0.2.10")).await;
    let (_server, addr) = start(cluster(vec![]), vec![closed, good]).await;
    let started = Instant::now();
    let answer = ask(FRONT_CLIENT, addr, "example.test", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("192.0.2.10")]);
    // A closed port answers with ICMP at once: no waiting for the timeout.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn dns_unreachable_upstream_gives_servfail_after_the_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_server, addr) = start(cluster(vec![]), vec![silent.local_addr().unwrap()]).await;
    let started = Instant::now();
    let answer = ask(FRONT_CLIENT, addr, "example.test", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn dns_no_upstream_at_all_is_nxdomain_at_once() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let started = Instant::now();
    let answer = ask(FRONT_CLIENT, addr, "example.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn dns_table_swap_takes_effect_on_the_next_query() {
    let (server, addr) = start(cluster(vec![]), vec![]).await;
    let answer = ask(FRONT_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
    server.set_table(Arc::new(NameTable::new(
        vec![DnsNetwork {
            network_id: "front".into(),
            records: vec![rec("web", &["10.0.1.77"])],
        }],
        vec![client(FRONT_CLIENT, &["front"], vec![])],
    )));
    let answer = ask(FRONT_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.77")]);
    let answer = ask(FRONT_CLIENT, addr, "www", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    // A client gone from the table is refused.
    let answer = ask(BOTH_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn dns_garbage_does_not_stop_the_server() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let socket = UdpSocket::bind((ip(FRONT_CLIENT), 0)).await.unwrap();
    // Runts, noise, a header claiming records that are not there, a
    // response (never answered), a label running past the end.
    let mut noise = vec![0u8; 1500];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    let packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0; 11],
        noise,
        vec![
            0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a'],
    ];
    for packet in &packets {
        socket.send_to(packet, addr).await.unwrap();
    }
    // Still answering, and a broken query from a client gets FORMERR.
    let answer = ask(FRONT_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
    let reply = udp_exchange(FRONT_CLIENT, addr, &packets[6]).await.unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // Garbage over TCP too.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    drop(stream);
    let answer = ask_tcp(FRONT_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
}

#[tokio::test]
async fn dns_big_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let (_server, addr) = start(cluster(vec![]), vec![]).await;
    let answer = ask(FRONT_CLIENT, addr, "tasks.big", RecordType::A).await;
    assert!(answer.metadata.truncation);
    let plain = a_records(&answer).len();
    assert!(plain > 10 && plain < 200, "{plain} fit in 512 bytes");
    let answer = ask_with(FRONT_CLIENT, addr, "tasks.big", RecordType::A, Some(4096)).await;
    assert!(!answer.metadata.truncation);
    assert_eq!(a_records(&answer).len(), 200);
    assert!(answer.edns.is_some());
    let answer = ask_tcp(FRONT_CLIENT, addr, "tasks.big", RecordType::A).await;
    assert!(!answer.metadata.truncation);
    assert_eq!(a_records(&answer).len(), 200);
}

#[tokio::test]
async fn dns_listen_is_idempotent_and_unlisten_frees_the_port() {
    let (server, addr) = start(cluster(vec![]), vec![]).await;
    assert_eq!(server.listen(addr).await.unwrap(), addr);
    assert_eq!(server.listening(), [addr]);
    assert!(server.unlisten(addr).await);
    assert!(!server.unlisten(addr).await);
    assert!(server.listening().is_empty());
    // The sockets are closed: the same address binds again at once.
    assert_eq!(server.listen(addr).await.unwrap(), addr);
    let answer = ask(FRONT_CLIENT, addr, "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip("10.0.1.2")]);
}

#[tokio::test]
async fn dns_listen_error_names_the_address() {
    let server = DnsServer::new(vec![]);
    // TEST-NET-1: on no host.
    let err = server
        .listen("192.0.2.1:5353".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("192.0.2.1:5353"), "{err}");
    // A port taken by someone else.
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let err = server
        .listen(taken.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}
