//! The public TURN client alone, with the server's answers built by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sans_io::{Output, Receive, Transport};
use stun_client::{TurnClient, TurnClientConfig};
use stun_codec::attr::*;
use stun_codec::{Class, Message, MessageBuilder, MessageType};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A 401 with REALM and NONCE to `request`.
fn challenge(request: &[u8]) -> Vec<u8> {
    let req = Message::parse(request).unwrap();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(req.message_type().method, Class::ErrorResponse),
        req.transaction_id(),
    )
    .unwrap();
    b.add(&ErrorCode::new(401)).unwrap();
    b.add(&Realm("example.org")).unwrap();
    b.add(&Nonce("obMatJos2wAAAnonce")).unwrap();
    b.finish().to_vec()
}

/// Drains the client: its transmits' bytes, and whether it reported any event.
fn drain(c: &mut TurnClient) -> (Vec<Vec<u8>>, bool) {
    let (mut sent, mut events) = (Vec::new(), false);
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit(t) => sent.push(t.data),
            Output::Event(_) => events = true,
            Output::Timeout(_) => {}
        }
    }
    (sent, events)
}

fn from_server(data: &[u8]) -> Receive<'_> {
    Receive::udp(addr("198.51.100.7:5000"), addr("192.0.2.10:3478"), data)
}

#[test]
fn a_client_closed_while_allocating_stays_closed_when_a_late_answer_comes() {
    let t = Instant::now();
    let (local, server) = (addr("198.51.100.7:5000"), addr("192.0.2.10:3478"));
    let config = || TurnClientConfig::new(server, Transport::Udp, "alice", "secret");
    let mut c = TurnClient::new(config(), local, 1);
    c.allocate(t);
    let allocate = drain(&mut c).0.pop().expect("an Allocate");
    // The challenge is answered with a signed Allocate, as long as the client is open.
    let mut open = TurnClient::new(config(), local, 1);
    open.allocate(t);
    let first = drain(&mut open).0.pop().unwrap();
    assert!(open
        .handle_receive(t, from_server(&challenge(&first)))
        .is_none());
    assert_eq!(drain(&mut open).0.len(), 1, "a signed Allocate");

    // Closed (e.g. given up at the gathering deadline), the late challenge does nothing.
    c.close(t);
    assert!(drain(&mut c).0.is_empty(), "nothing to release yet");
    let late = challenge(&allocate);
    assert!(c
        .handle_receive(t + Duration::from_secs(4), from_server(&late))
        .is_none());
    let mut timeouts = Vec::new();
    let (mut sent, mut events) = (Vec::new(), false);
    while let Some(o) = c.poll_output() {
        match o {
            Output::Transmit(t) => sent.push(t),
            Output::Event(_) => events = true,
            Output::Timeout(t) => timeouts.push(t),
        }
    }
    assert!(sent.is_empty(), "no new Allocate after close");
    assert!(!events);
    assert_eq!(timeouts, [None], "no timer");
    assert!(c.is_done());
}

/// A 300 to `request` naming `alternate`.
fn try_alternate(request: &[u8], alternate: SocketAddr) -> Vec<u8> {
    let req = Message::parse(request).unwrap();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(req.message_type().method, Class::ErrorResponse),
        req.transaction_id(),
    )
    .unwrap();
    b.add(&ErrorCode::new(300)).unwrap();
    b.add(&AlternateServer(alternate)).unwrap();
    b.finish().to_vec()
}

#[test]
fn a_300_moves_a_udp_client_and_fails_a_stream_client_with_the_alternate() {
    let t = Instant::now();
    let (local, server, other) = (
        addr("198.51.100.7:5000"),
        addr("192.0.2.10:3478"),
        addr("192.0.2.11:3478"),
    );
    let mut c = TurnClient::new(
        TurnClientConfig::new(server, Transport::Udp, "alice", "secret"),
        local,
        1,
    );
    c.allocate(t);
    let allocate = drain(&mut c).0.pop().unwrap();
    c.handle_receive(t, from_server(&try_alternate(&allocate, other)));
    let mut redirected = false;
    let mut to = Vec::new();
    while let Some(o) = c.poll_output() {
        match o {
            Output::Event(stun_client::TurnEvent::Redirected { server }) => {
                redirected = server == other
            }
            Output::Transmit(tx) => to.push(tx.remote),
            _ => {}
        }
    }
    assert!(redirected);
    assert_eq!(to, vec![other], "the Allocate goes to the alternate now");
    assert_eq!(c.server(), other);

    // Over TCP the owner must connect elsewhere: the allocation fails naming where.
    let mut s = TurnClient::new(
        TurnClientConfig::new(server, Transport::Tcp, "alice", "secret"),
        local,
        2,
    );
    s.allocate(t);
    let allocate = drain(&mut s).0.pop().unwrap();
    let r = Receive {
        transport: Transport::Tcp,
        ..from_server(&[])
    };
    let answer = try_alternate(&allocate, other);
    s.handle_receive(t, Receive { data: &answer, ..r });
    let mut failed = None;
    while let Some(o) = s.poll_output() {
        if let Output::Event(stun_client::TurnEvent::AllocationFailed(e)) = o {
            failed = Some(e);
        }
    }
    assert_eq!(failed, Some(stun_client::TurnError::TryAlternate(other)));
}
