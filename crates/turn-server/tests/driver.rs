//! The tokio driver end to end on loopback: a Rust TURN client over UDP, TCP and TLS relays
//! to a UDP peer both ways (Send/Data and ChannelData), and the listeners survive garbage,
//! idle connections, bad TLS and port exhaustion.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};

use common::*;
use stun_codec::attr::*;
use stun_codec::{ChannelData, Class, Message, MessageBuilder, MessageType, Method, TransactionId};
use turn_server::driver::Server;

fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn exchange(mut c: Client) -> SocketAddr {
    exchange_on(&mut c)
}

fn exchange_on(c: &mut Client) -> SocketAddr {
    let relay = c.allocate();
    assert_eq!(relay.ip().to_string(), "127.0.0.1");
    let (p, peer) = peer();
    assert_eq!(c.permit(peer), None);

    // Send indication → the peer, from the relayed address.
    c.send_indication(peer, b"hello peer");
    let mut buf = [0u8; 2048];
    let (n, from) = p.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"hello peer"[..], relay));

    // The peer answers → a Data indication.
    p.send_to(b"hello client", relay).unwrap();
    let m = c.conn.recv();
    let m = Message::parse(&m).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::DATA, Class::Indication)
    );
    assert_eq!(
        m.get::<XorPeerAddress>().unwrap(),
        Some(XorPeerAddress(peer))
    );
    assert_eq!(m.get::<Data>().unwrap(), Some(Data(b"hello client")));

    // A channel, both ways; large payloads too.
    assert_eq!(c.bind(0x4001, peer), None);
    let big = vec![0xAB; 1200];
    for payload in [&b"via channel"[..], &b"odd"[..], &big] {
        c.channel_data(0x4001, payload);
        let (n, from) = p.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (payload, relay));
        p.send_to(payload, relay).unwrap();
        let m = c.conn.recv();
        let cd = ChannelData::parse(&m).unwrap();
        assert_eq!((cd.channel(), cd.data()), (0x4001, payload));
    }
    relay
}

#[test]
fn relays_over_udp_tcp_and_tls() {
    let tls = tls();
    let server = Server::start(settings(Some(&tls))).unwrap();
    exchange(Client::new(
        Conn::udp(server.udp_addrs()[0]),
        "alice",
        "secret",
    ));
    exchange(Client::new(
        Conn::tcp(server.tcp_addrs()[0]),
        "alice",
        "secret",
    ));
    exchange(Client::new(
        Conn::tls(server.tls_addrs()[0], &tls.client),
        "bob",
        "hunter2",
    ));
    // TLS 1.2 too (the default client above negotiates 1.3).
    let mut c = Client::new(
        Conn::tls(server.tls_addrs()[0], &tls.client_tls12),
        "bob",
        "hunter2",
    );
    exchange_on(&mut c);
    let Conn::Tls(s, _) = &c.conn else {
        unreachable!()
    };
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    // TURN REST credentials.
    let user = format!("{}:carol", 4_000_000_000u64);
    let password = turn_server::auth::RestSecrets::password(b"north", &user);
    exchange(Client::new(
        Conn::udp(server.udp_addrs()[0]),
        &user,
        &password,
    ));
    let metrics = server.metrics().clone();
    server.shutdown();
    let t = metrics.total();
    assert_eq!(t.turn.allocations_created, 5);
    assert_eq!(t.turn.packets_to_peers, 20);
    assert_eq!(t.turn.packets_to_clients, 20);
}

/// Over TCP, Refresh with LIFETIME 0 ends the allocation and with it the connection, but the
/// response is written first.
#[test]
fn refresh_zero_over_tcp_is_answered_then_closed() {
    let server = Server::start(settings(None)).unwrap();
    let mut c = Client::new(Conn::tcp(server.tcp_addrs()[0]), "alice", "secret");
    c.allocate();
    let r = c.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(0)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    let Conn::Tcp(s, _) = &mut c.conn else {
        unreachable!()
    };
    let mut b = [0u8; 16];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "the connection ends with its allocation"
    );
    server.shutdown();
}

#[test]
fn wrong_password_and_the_peer_policy() {
    let server = Server::start(settings(None)).unwrap();
    let mut c = Client::new(Conn::udp(server.udp_addrs()[0]), "alice", "wrong");
    let r = c.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(error_code(&r), Some(401));
    let mut c = Client::new(Conn::udp(server.udp_addrs()[0]), "alice", "secret");
    c.allocate();
    for p in [
        "10.0.0.5:1",
        "169.254.169.254:80",
        "0.0.0.0:1",
        "192.168.1.1:9",
    ] {
        assert_eq!(c.permit(p.parse().unwrap()), Some(403), "{p}");
    }
    server.shutdown();
}

/// Truncated and garbage input on every listener is ignored; the server keeps answering.
#[test]
fn garbage_on_every_listener() {
    let tls = tls();
    // Timeouts longer than the client's read limit: a stream must be closed for its bytes,
    // not for its silence.
    let mut s = settings(Some(&tls));
    s.stream_idle_timeout = 3 * LIMIT;
    s.handshake_timeout = 3 * LIMIT;
    let server = Server::start(s).unwrap();
    let udp = server.udp_addrs()[0];
    let mut c = Client::new(Conn::udp(udp), "alice", "secret");
    let relay = c.allocate();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12],
        vec![
            0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
        vec![0x40, 0x00, 0xFF, 0xFF, 1, 2],
        vec![0xFF, 0x00, 0x00, 0x04, 1, 2, 3, 4],
        vec![0xFF; 1500],
        (0..=255).collect(),
    ];
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for j in &junk {
        s.send_to(j, udp).unwrap();
        s.send_to(j, relay).unwrap();
    }
    // TCP: garbage closes the stream (it is out of step), silently.
    for j in junk.iter().filter(|j| j.len() >= 4 && j[0] >= 0x80) {
        let mut t = TcpStream::connect(server.tcp_addrs()[0]).unwrap();
        t.set_read_timeout(Some(LIMIT)).unwrap();
        std::io::Write::write_all(&mut t, j).unwrap();
        assert_eq!(read_until_closed(&mut t), 0, "closed without an answer");
    }
    // Garbage instead of a TLS handshake: closed.
    let mut t = TcpStream::connect(server.tls_addrs()[0]).unwrap();
    t.set_read_timeout(Some(LIMIT)).unwrap();
    std::io::Write::write_all(&mut t, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).unwrap();
    // rustls may send an alert before closing; then the stream ends.
    read_until_closed(&mut t);
    // Still serving.
    let mut fresh = Client::new(Conn::udp(udp), "bob", "hunter2");
    fresh.allocate();
    let binding = {
        let mut buf = [0u8; 64];
        MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([5; 12]),
        )
        .unwrap()
        .finish()
        .to_vec()
    };
    c.conn.send(&binding);
    let r = c.conn.recv();
    assert_eq!(
        Message::parse(&r).unwrap().message_type(),
        MessageType::new(Method::BINDING, Class::SuccessResponse)
    );
    let metrics = server.metrics().clone();
    server.shutdown();
    let t = metrics.total();
    let garbage_streams = junk.iter().filter(|j| j.len() >= 4 && j[0] >= 0x80).count();
    assert_eq!(
        t.driver.stream_framing_errors, garbage_streams as u64,
        "{t:?}"
    );
    assert_eq!(t.driver.tls_handshake_failures, 1);
}

/// With four relay ports, the fifth Allocate gets 508, and no port is handed out twice.
#[test]
fn port_exhaustion_is_508_without_duplicates() {
    let mut s = settings(None);
    s.ports = free_ports(4);
    let server = Server::start(s).unwrap();
    let mut clients: Vec<Client> = (0..5)
        .map(|_| Client::new(Conn::udp(server.udp_addrs()[0]), "alice", "secret"))
        .collect();
    let mut ports = HashSet::new();
    let mut first = 0;
    for c in clients.iter_mut().take(4) {
        first = c.allocate().port();
        assert!(ports.insert(first), "a relay port given twice");
    }
    let r = clients[4].call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(error_code(&r), Some(508));
    // Freeing one (Refresh 0) lets the fifth in, on the freed port.
    let r = clients[3].call(Method::REFRESH, &|b| {
        b.add(&Lifetime(0)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    // The relay socket closes when its task next runs: wait until the port is really free.
    let freed = std::time::Instant::now();
    while UdpSocket::bind(("127.0.0.1", first)).is_err() {
        assert!(freed.elapsed() < LIMIT, "the released port stays bound");
        std::thread::yield_now();
    }
    let port = clients[4].allocate().port();
    assert_eq!(port, first);
    server.shutdown();
}

#[test]
fn metrics_endpoint() {
    let mut s = settings(None);
    s.metrics = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start(s).unwrap();
    let mut t = TcpStream::connect(server.metrics_addr().unwrap()).unwrap();
    t.set_read_timeout(Some(LIMIT)).unwrap();
    std::io::Write::write_all(&mut t, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    t.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for name in [
        "turn_allocations ",
        "turn_permissions ",
        "turn_channels ",
        "turn_relayed_packets_total{direction=\"to_peer\"}",
        "turn_relayed_bytes_total{direction=\"to_client\"}",
        "turn_auth_failures_total{reason=\"stale_nonce\"}",
    ] {
        assert!(body.contains(name), "{name} missing");
    }
    server.shutdown();
}

/// Two workers share the ports (SO_REUSEPORT); each client stays on one worker, and each
/// worker relays from its own half of the port range.
#[test]
fn two_workers() {
    let mut s = settings(None);
    s.workers = 2;
    let (lo, hi) = s.ports;
    let server = Server::start(s).unwrap();
    // Worker 0 takes an even number of ports, half the range; worker 1 the rest.
    let span = u32::from(hi - lo) + 1;
    let half = lo + ((span / 2) & !1) as u16;
    let mut halves = HashSet::new();
    for i in 0..24 {
        let conn = if i % 2 == 0 {
            Conn::udp(server.udp_addrs()[0])
        } else {
            Conn::tcp(server.tcp_addrs()[0])
        };
        let relay = exchange(Client::new(conn, "alice", "secret"));
        assert!((lo..=hi).contains(&relay.port()));
        halves.insert(relay.port() < half);
    }
    let metrics = server.metrics().clone();
    server.shutdown();
    let t = metrics.total();
    assert_eq!(t.turn.allocations_created, 24);
    assert_eq!(t.turn.packets_to_peers, 96);
    // 24 clients on two workers: both are used unless the kernel's hash put every
    // one of them on one side (a chance of 2 in 16 million).
    assert_eq!(halves.len(), 2, "one worker took every client");
}

/// A client's burst, read while the worker lets datagrams gather (`udp-batch-delay`), is read
/// in one `recvmmsg` and relayed to its peer as GSO sends: every datagram arrives whole and in
/// order, and the metrics show the batching.
#[test]
fn a_burst_is_relayed_in_batches_whole_and_in_order() {
    let mut s = settings(None);
    // Long enough that the burst is in the socket before the worker reads it, even on a
    // loaded machine (only this test's worker sleeps it).
    s.batch_delay = std::time::Duration::from_millis(50);
    let server = Server::start(s).unwrap();
    let mut c = Client::new(Conn::udp(server.udp_addrs()[0]), "alice", "secret");
    let relay = c.allocate();
    let (p, peer) = peer();
    assert_eq!(c.bind(0x4001, peer), None);
    for i in 0..20u8 {
        c.channel_data(0x4001, &[i; 100]);
    }
    let mut buf = [0u8; 2048];
    for i in 0..20u8 {
        let (n, from) = p.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[i; 100][..], relay), "datagram {i}");
    }
    let metrics = server.metrics().clone();
    server.shutdown();
    let d = metrics.total().driver;
    assert!(d.udp_gso_sends >= 1, "no GSO send: {d:?}");
    assert!(
        d.udp_received > d.udp_recv_calls,
        "no recvmmsg read more than one datagram: {d:?}"
    );
}
