//! The public TURN client alone, with the server's answers built by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::{TurnClient, TurnClientConfig, TurnTransport};
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

#[test]
fn a_client_closed_while_allocating_stays_closed_when_a_late_answer_comes() {
    let t = Instant::now();
    let server = addr("192.0.2.10:3478");
    let config = TurnClientConfig::new(server, TurnTransport::Udp, "alice", "secret");
    let mut c = TurnClient::new(config, 1);
    c.allocate(t);
    let allocate = c.poll_transmit().expect("an Allocate");
    // The challenge is answered with a signed Allocate, as long as the client is open.
    let mut open = TurnClient::new(
        TurnClientConfig::new(server, TurnTransport::Udp, "alice", "secret"),
        1,
    );
    open.allocate(t);
    let first = open.poll_transmit().unwrap();
    assert!(open.handle_datagram(t, &challenge(&first)).is_none());
    assert!(open.poll_transmit().is_some(), "a signed Allocate");

    // Closed (e.g. given up at the gathering deadline), the late challenge does nothing.
    c.close(t);
    assert!(c.poll_transmit().is_none(), "nothing to release yet");
    assert!(c
        .handle_datagram(t + Duration::from_secs(4), &challenge(&allocate))
        .is_none());
    assert!(c.poll_transmit().is_none(), "no new Allocate after close");
    assert!(c.poll_event().is_none());
    assert_eq!(c.poll_timeout(), None);
    assert!(c.is_done());
}
