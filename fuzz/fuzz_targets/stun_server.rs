//! The STUN Binding server core in RFC 5780 mode: any datagram on any of its four addresses.
//! Every answer leaves from one of its own addresses, fits the buffer and parses.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use sans_io::{Receive, Transport};
use stun_codec::{Class, Message};
use turn_server::stun::{StunServer, StunServerConfig};

fuzz_target!(|input: (u8, u16, bool, Vec<u8>)| {
    let (which, port, tcp, data) = input;
    let mut server = StunServer::new(StunServerConfig::with_alternate(
        "192.0.2.1:3478".parse().unwrap(),
        "192.0.2.2:3479".parse().unwrap(),
    ));
    let locals = server.local_addresses();
    let local = locals[usize::from(which) % locals.len()];
    let remote = SocketAddr::new("198.51.100.9".parse().unwrap(), port.max(1));
    let mut out = [0u8; 1500];
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    let r = Receive {
        transport,
        local,
        remote,
        data: &data,
    };
    if let Some(reply) = server.answer(r, &mut out) {
        assert!(locals.contains(&reply.local));
        assert_eq!(reply.remote.ip(), remote.ip());
        assert_eq!(reply.transport, transport);
        if tcp {
            // Over a stream the answer goes back on the connection.
            assert_eq!((reply.local, reply.remote), (local, remote));
        }
        let answer = Message::parse(reply.data).expect("answers parse");
        let request = Message::parse(&data).expect("only STUN requests are answered");
        assert_eq!(answer.transaction_id(), request.transaction_id());
        // A response to the request's method, FINGERPRINT exactly when the request had one.
        let (q, a) = (request.message_type(), answer.message_type());
        assert_eq!(q.class, Class::Request);
        assert_eq!(a.method, q.method);
        assert!(matches!(
            a.class,
            Class::SuccessResponse | Class::ErrorResponse
        ));
        assert_eq!(answer.has_fingerprint(), request.has_fingerprint());
        assert!(!answer.has_fingerprint() || answer.verify_fingerprint().is_ok());
    }
});
