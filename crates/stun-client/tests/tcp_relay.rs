//! Our TURN client's RFC 6062 side against our server on loopback: a TCP allocation over TCP,
//! Connect to a TCP peer, a data connection bound with [`ConnectionBinder`], and a peer that
//! connects in (ConnectionAttempt); bytes both ways on each. The client is driven here by a
//! small blocking loop over real sockets; every wait is for a frame, bounded by a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sans_io::{Output, Receive, Transport};
use stun_client::{BindEvent, ConnectionBinder, TurnClient, TurnClientConfig, TurnEvent};
use stun_codec::StreamFramer;
use turn_server::auth::Users;
use turn_server::driver::{RelayIp, Server, Settings};
use turn_server::peer_policy::PeerPolicy;
use turn_server::turn::TurnConfig;

const LIMIT: Duration = Duration::from_secs(10);

fn server() -> Server {
    let mut users = Users::default();
    users.add("alice", "example.org", "secret").unwrap();
    let lo = "127.0.0.1".parse().unwrap();
    let mut s = Settings::stun_only("127.0.0.1:0".parse().unwrap(), None, true);
    s.udp.clear();
    s.relay_ips = vec![RelayIp {
        bind: lo,
        advertise: lo,
    }];
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.ports = (
        free.saturating_sub(200).max(20_000),
        free.saturating_sub(100).max(20_100),
    );
    s.users = users;
    s.turn = TurnConfig {
        realm: "example.org".into(),
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..PeerPolicy::default()
        },
        ..TurnConfig::default()
    };
    Server::start(s).unwrap()
}

/// A stream and the frames cut from it.
struct Stream {
    tcp: TcpStream,
    framer: StreamFramer,
}

impl Stream {
    fn connect(to: SocketAddr) -> Stream {
        let tcp = TcpStream::connect(to).unwrap();
        tcp.set_read_timeout(Some(LIMIT)).unwrap();
        Stream {
            tcp,
            framer: StreamFramer::new(),
        }
    }

    fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some((_, f)) = self.framer.next_frame().unwrap() {
                return f.to_vec();
            }
            let mut buf = [0u8; 4096];
            let n = self.tcp.read(&mut buf).unwrap();
            assert!(n > 0, "closed");
            self.framer.push(&buf[..n]);
        }
    }
}

/// Sends what the client queued; its events.
fn flush(c: &mut TurnClient, s: &mut Stream) -> Vec<TurnEvent> {
    let mut events = Vec::new();
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit(t) => s.tcp.write_all(&t.data).unwrap(),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => {}
        }
    }
    events
}

/// Runs the client until an event comes.
fn until_event(c: &mut TurnClient, s: &mut Stream, server: SocketAddr) -> TurnEvent {
    loop {
        if let Some(e) = flush(c, s).into_iter().next() {
            return e;
        }
        let f = s.frame();
        let local = s.tcp.local_addr().unwrap();
        let _ = c.handle_receive(
            Instant::now(),
            Receive {
                transport: Transport::Tcp,
                local,
                remote: server,
                data: &f,
            },
        );
    }
}

/// Binds a new data connection to `id`; its raw stream.
fn bind(c: &TurnClient, server: SocketAddr, id: u32) -> TcpStream {
    let mut s = Stream::connect(server);
    let local = s.tcp.local_addr().unwrap();
    let mut b: ConnectionBinder = c.connection_binder(id, local, 9).expect("allocated");
    b.start(Instant::now());
    loop {
        while let Some(o) = b.poll_output() {
            match o {
                Output::Transmit(t) => s.tcp.write_all(&t.data).unwrap(),
                Output::Event(BindEvent::Bound) => {
                    assert_eq!(s.framer.buffered(), 0);
                    return s.tcp;
                }
                Output::Event(BindEvent::Failed(e)) => panic!("{e}"),
                Output::Timeout(_) => {}
            }
        }
        let f = s.frame();
        b.handle_receive(
            Instant::now(),
            Receive {
                transport: Transport::Tcp,
                local,
                remote: server,
                data: &f,
            },
        );
    }
}

fn exchange(a: &mut TcpStream, b: &mut TcpStream) {
    a.write_all(b"to the peer").unwrap();
    let mut buf = [0u8; 11];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to the peer");
    b.write_all(b"to the client").unwrap();
    let mut buf = [0u8; 13];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to the client");
}

#[test]
fn connect_and_connection_attempt_through_our_server() {
    let server = server();
    let at = server.tcp_addrs()[0];
    let mut control = Stream::connect(at);
    let mut config = TurnClientConfig::new(at, Transport::Tcp, "alice", "secret");
    config.relay_tcp = true;
    let mut c = TurnClient::new(config, control.tcp.local_addr().unwrap(), 1);
    c.allocate(Instant::now());
    let TurnEvent::Allocated { relayed, .. } = until_event(&mut c, &mut control, at) else {
        panic!("not allocated")
    };
    // Connect to a peer; bind a data connection; bytes both ways.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = listener.local_addr().unwrap();
    c.connect(Instant::now(), peer);
    let TurnEvent::PeerConnected { connection_id, .. } = until_event(&mut c, &mut control, at)
    else {
        panic!("Connect failed")
    };
    let (mut p, from) = listener.accept().unwrap();
    p.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(from, relayed);
    let mut data = bind(&c, at, connection_id);
    data.set_read_timeout(Some(LIMIT)).unwrap();
    exchange(&mut data, &mut p);
    // A peer connecting in is announced, and bound the same way.
    let mut incoming = TcpStream::connect(relayed).unwrap();
    incoming.set_read_timeout(Some(LIMIT)).unwrap();
    let TurnEvent::ConnectionAttempt {
        peer: from,
        connection_id,
    } = until_event(&mut c, &mut control, at)
    else {
        panic!("no ConnectionAttempt")
    };
    assert_eq!(from, incoming.local_addr().unwrap());
    let mut data2 = bind(&c, at, connection_id);
    data2.set_read_timeout(Some(LIMIT)).unwrap();
    exchange(&mut data2, &mut incoming);
    // A Connect to where nobody listens fails (447).
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.connect(Instant::now(), dead);
    let e = until_event(&mut c, &mut control, at);
    assert!(
        matches!(&e, TurnEvent::ConnectFailed(p, stun_client::TurnError::Server { code: 447, .. }) if *p == dead),
        "{e:?}"
    );
    server.shutdown();
}
