//! RFC 6062 TCP relaying on real sockets: a client allocates a TCP relayed address over TCP,
//! Connects to a TCP peer (the connection comes from the relayed address), binds a new data
//! connection to it, and bytes flow both ways unframed; a peer connecting to the relayed
//! address is announced with ConnectionAttempt and bound likewise; the allocation's end
//! closes its data connections.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{error_code, read_until_closed, settings, Client, Conn, LIMIT};
use stun_codec::attr::*;
use stun_codec::{Class, Message, MessageType, Method};
use turn_server::driver::Server;

fn allocate_tcp(c: &mut Client) -> SocketAddr {
    let r = c.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::TCP).unwrap();
    });
    assert_eq!(error_code(&r), None);
    Message::parse(&r)
        .unwrap()
        .get::<XorRelayedAddress>()
        .unwrap()
        .unwrap()
        .0
}

/// A new data connection bound to `id`: its raw stream.
fn bind(server: SocketAddr, id: u32) -> TcpStream {
    let mut d = Client::new(Conn::tcp(server), "alice", "secret");
    let r = d.call(Method::CONNECTION_BIND, &|b| {
        b.add(&ConnectionId(id)).unwrap();
    });
    assert_eq!(error_code(&r), None, "ConnectionBind");
    let Conn::Tcp(s, framer) = d.conn else {
        unreachable!()
    };
    assert_eq!(framer.buffered(), 0);
    s
}

fn exchange(client: &mut TcpStream, peer: &mut TcpStream, round: u8) {
    let out = vec![round; 3000];
    client.write_all(&out).unwrap();
    let mut got = vec![0u8; out.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, out);
    let back = vec![round.wrapping_add(1); 5000];
    peer.write_all(&back).unwrap();
    let mut got = vec![0u8; back.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, back);
}

#[test]
fn connect_connection_attempt_and_bind_relay_tcp_both_ways() {
    let server = Server::start(settings(None)).unwrap();
    let at = server.tcp_addrs()[0];
    let mut control = Client::new(Conn::tcp(at), "alice", "secret");
    let relay = allocate_tcp(&mut control);
    assert_eq!(relay.ip().to_string(), "127.0.0.1");

    // Connect: the server connects to the peer from the relayed address.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = listener.local_addr().unwrap();
    let r = control.call(Method::CONNECT, &|b| {
        b.add(&XorPeerAddress(peer_addr)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    let id = Message::parse(&r)
        .unwrap()
        .get::<ConnectionId>()
        .unwrap()
        .unwrap()
        .0;
    let (mut peer, from) = listener.accept().unwrap();
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(
        from, relay,
        "RFC 6062 §5.2: from the relayed transport address"
    );
    // What the peer sends before the bind waits for it.
    peer.write_all(b"early").unwrap();
    let mut data = bind(at, id);
    let mut early = [0u8; 5];
    data.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early");
    for round in 0..3 {
        exchange(&mut data, &mut peer, round * 2);
    }

    // A peer connects to the relayed address (its IP has a permission, from the Connect).
    let mut incoming = TcpStream::connect(relay).unwrap();
    incoming.set_read_timeout(Some(LIMIT)).unwrap();
    let ind = control.conn.recv();
    let m = Message::parse(&ind).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication)
    );
    assert_eq!(
        m.get::<XorPeerAddress>().unwrap(),
        Some(XorPeerAddress(incoming.local_addr().unwrap()))
    );
    let id2 = m.get::<ConnectionId>().unwrap().unwrap().0;
    let mut data2 = bind(at, id2);
    exchange(&mut data2, &mut incoming, 9);

    // The allocation ends: both data connections and both peers are closed.
    let r = control.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(0)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    for s in [&mut data, &mut data2, &mut peer, &mut incoming] {
        assert_eq!(read_until_closed(s), 0);
    }
    server.shutdown();
}

#[test]
fn a_peer_closing_closes_its_data_connection_and_connect_failures_are_447() {
    let server = Server::start(settings(None)).unwrap();
    let at = server.tcp_addrs()[0];
    let mut control = Client::new(Conn::tcp(at), "alice", "secret");
    allocate_tcp(&mut control);
    // Nobody listens there: 447.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = control.call(Method::CONNECT, &|b| {
        b.add(&XorPeerAddress(dead)).unwrap();
    });
    assert_eq!(error_code(&r), Some(447));
    // A peer that hangs up: the client data connection ends too.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = control.call(Method::CONNECT, &|b| {
        b.add(&XorPeerAddress(listener.local_addr().unwrap()))
            .unwrap();
    });
    let id = Message::parse(&r)
        .unwrap()
        .get::<ConnectionId>()
        .unwrap()
        .unwrap()
        .0;
    let (peer, _) = listener.accept().unwrap();
    let mut data = bind(at, id);
    drop(peer);
    assert_eq!(read_until_closed(&mut data), 0);
    // The control connection is still there.
    let r = control.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(600)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    server.shutdown();
}
