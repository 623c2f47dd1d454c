//! The PROXY protocol listeners on real sockets: a load balancer on 127.0.0.1 (allowed by
//! `proxy-protocol-from`) passes the real client's address in a v2 or v1 header, over TCP and
//! before TLS, and the server answers as that client's (XOR-MAPPED-ADDRESS); a header from
//! 127.0.0.2, not an allowed front-end, or a connection without a header, is closed unanswered.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{read_until_closed, settings, tls, Client, Conn, LIMIT};
use stun_codec::attr::*;
use stun_codec::{
    Class, Message, MessageBuilder, MessageType, Method, StreamFramer, TransactionId,
};
use turn_server::driver::Server;
use turn_server::proxy_protocol::v2_header;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn server(tls: Option<&common::Tls>) -> Server {
    let mut s = settings(tls);
    s.tcp_proxy = vec![a("127.0.0.1:0")];
    if tls.is_some() {
        s.tls_proxy = vec![a("127.0.0.1:0")];
    }
    s.proxy_from = vec!["127.0.0.1/32".parse().unwrap()];
    Server::start(s).unwrap()
}

/// A TCP connection to `to` from `from` (an address of 127.0.0.0/8).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&a(&format!("{from}:0")).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let t: TcpStream = s.into();
    t.set_read_timeout(Some(LIMIT)).unwrap();
    t
}

fn binding() -> Vec<u8> {
    let mut buf = [0u8; 64];
    MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([5; 12]),
    )
    .unwrap()
    .finish()
    .to_vec()
}

fn mapped(conn: &mut Conn) -> SocketAddr {
    conn.send(&binding());
    let r = conn.recv();
    Message::parse(&r)
        .unwrap()
        .get::<XorMappedAddress>()
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn the_real_client_address_comes_from_an_allowed_front_end_only() {
    let s = server(None);
    let at = s.tcp_proxy_addrs()[0];
    let client = a("198.51.100.7:40000");
    // Version 2 from the allowed front-end: the server sees the client.
    let mut t = connect_from("127.0.0.1", at);
    t.write_all(&v2_header(client, a("203.0.113.5:3478")))
        .unwrap();
    let mut conn = Conn::Tcp(t, StreamFramer::new());
    assert_eq!(mapped(&mut conn), client);
    // Allocations too: XOR-MAPPED-ADDRESS is the client's, and the stream carries on.
    let mut alice = Client::new(conn, "alice", "secret");
    let r = alice.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    let m = Message::parse(&r).unwrap();
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(client))
    );

    // Version 1, IPv6 client.
    let mut t = connect_from("127.0.0.1", at);
    t.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::5 40001 3478\r\n")
        .unwrap();
    assert_eq!(
        mapped(&mut Conn::Tcp(t, StreamFramer::new())),
        a("[2001:db8::7]:40001")
    );

    // LOCAL (the front-end's health check): its own address stands.
    let mut local = v2_header(client, a("203.0.113.5:3478"));
    local[12] = 0x20;
    let mut t = connect_from("127.0.0.1", at);
    let own = t.local_addr().unwrap();
    t.write_all(&local).unwrap();
    assert_eq!(mapped(&mut Conn::Tcp(t, StreamFramer::new())), own);

    // From 127.0.0.2, not a configured front-end: closed without an answer.
    let mut t = connect_from("127.0.0.2", at);
    t.write_all(&v2_header(client, a("203.0.113.5:3478")))
        .unwrap();
    let _ = t.write_all(&binding());
    assert_eq!(read_until_closed(&mut t), 0);
    // From the front-end, but without a header: closed too.
    let mut t = connect_from("127.0.0.1", at);
    t.write_all(&binding()).unwrap();
    assert_eq!(read_until_closed(&mut t), 0);
    // The plain TCP listener takes no header.
    let mut plain = Conn::tcp(s.tcp_addrs()[0]);
    assert_eq!(mapped(&mut plain).ip().to_string(), "127.0.0.1");
    let refused = wait_for_refusals(&s, 2);
    assert_eq!(refused, 2);
    s.shutdown();
}

/// Waits for the metrics (published once a second) to count `n` refusals; the count.
fn wait_for_refusals(s: &Server, n: u64) -> u64 {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let got = s.metrics().total().driver.proxy_refused;
        if got >= n || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_proxy_header_comes_before_the_tls_handshake() {
    let cert = tls();
    let s = server(Some(&cert));
    let at = s.tls_proxy_addrs()[0];
    let client = a("198.51.100.8:40002");
    let mut t = connect_from("127.0.0.1", at);
    t.write_all(&v2_header(client, a("203.0.113.5:5349")))
        .unwrap();
    let c = rustls::ClientConnection::new(cert.client.clone(), "localhost".try_into().unwrap())
        .unwrap();
    let mut conn = Conn::Tls(
        Box::new(rustls::StreamOwned::new(c, t)),
        StreamFramer::new(),
    );
    assert_eq!(mapped(&mut conn), client);
    // TLS straight away, without the header, is closed.
    let mut t = connect_from("127.0.0.1", at);
    let mut hello =
        rustls::ClientConnection::new(cert.client.clone(), "localhost".try_into().unwrap())
            .unwrap();
    let mut bytes = Vec::new();
    hello.write_tls(&mut bytes).unwrap();
    t.write_all(&bytes).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(t.read(&mut buf).unwrap_or(0), 0, "closed, no ServerHello");
    s.shutdown();
}
