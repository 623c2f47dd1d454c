//! The STUN Binding server core: answers, errors, RFC 5780, and what it must ignore.

use std::net::SocketAddr;

use sans_io::Receive;
use stun_codec::attr::*;
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};
use turn_server::stun::{StunServer, StunServerConfig};

/// Where and how long an answer is: `out[..len]`, from `from` to `to`.
struct Reply {
    from: SocketAddr,
    to: SocketAddr,
    len: usize,
}

/// The fast path over UDP, as these tests read it.
trait Udp {
    fn handle_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<Reply>;
}

impl Udp for StunServer {
    fn handle_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<Reply> {
        let t = self.answer(Receive::udp(local, remote, data), out)?;
        Some(Reply {
            from: t.local,
            to: t.remote,
            len: t.data.len(),
        })
    }
}

const TID: TransactionId = TransactionId([4; 12]);

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(method: Method, build: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let mut b =
        MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), TID).unwrap();
    build(&mut b);
    b.finish().to_vec()
}

fn rfc5780() -> StunServer {
    StunServer::new(StunServerConfig::with_alternate(
        a("192.0.2.1:3478"),
        a("192.0.2.2:3479"),
    ))
}

#[test]
fn binding_success_with_both_mapped_addresses_and_fingerprint() {
    let mut s = StunServer::new(StunServerConfig {
        software: Some("natstack".into()),
        ..StunServerConfig::new(a("192.0.2.1:3478"))
    });
    let req = request(Method::BINDING, |b| {
        b.add_fingerprint().unwrap();
    });
    let mut out = [0u8; 512];
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), a("198.51.100.9:4000"), &req, &mut out)
        .unwrap();
    assert_eq!(
        (r.from, r.to),
        (a("192.0.2.1:3478"), a("198.51.100.9:4000"))
    );
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::BINDING, Class::SuccessResponse)
    );
    assert_eq!(m.transaction_id(), TID);
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(a("198.51.100.9:4000")))
    );
    assert_eq!(
        m.get::<MappedAddress>().unwrap(),
        Some(MappedAddress(a("198.51.100.9:4000")))
    );
    assert_eq!(m.get::<Software>().unwrap(), Some(Software("natstack")));
    m.verify_fingerprint().unwrap();
    assert_eq!(
        m.get::<OtherAddress>().unwrap(),
        None,
        "no RFC 5780 without an alternate"
    );
    assert_eq!(s.stats().success, 1);
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let mut s = StunServer::new(StunServerConfig::new(a("192.0.2.1:3478")));
    let req = request(Method::BINDING, |b| {
        b.add_raw(AttributeType(0x7777), b"x").unwrap();
        b.add_raw(AttributeType(0xC777), b"ignored: comprehension-optional")
            .unwrap();
        // Without an alternate address, CHANGE-REQUEST is not understood either (RFC 5780 §6.1).
        b.add(&ChangeRequest {
            change_ip: true,
            change_port: false,
        })
        .unwrap();
    });
    let mut out = [0u8; 512];
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), a("198.51.100.9:4000"), &req, &mut out)
        .unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(m.message_type().class, Class::ErrorResponse);
    assert_eq!(m.get::<ErrorCode>().unwrap().unwrap().code, 420);
    let unknown: Vec<_> = m
        .get::<UnknownAttributes>()
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        unknown,
        [AttributeType(0x7777), AttributeType::CHANGE_REQUEST]
    );
}

#[test]
fn other_methods_get_400_and_non_requests_nothing() {
    let mut s = StunServer::new(StunServerConfig::new(a("192.0.2.1:3478")));
    let mut out = [0u8; 512];
    let req = request(Method::ALLOCATE, |_| {});
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), a("198.51.100.9:4000"), &req, &mut out)
        .unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(m.get::<ErrorCode>().unwrap().unwrap().code, 400);

    let mut buf = [0u8; 64];
    let ind = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Indication),
        TID,
    )
    .unwrap()
    .finish()
    .to_vec();
    assert!(s
        .handle_datagram(a("192.0.2.1:3478"), a("198.51.100.9:4000"), &ind, &mut out)
        .is_none());
    assert!(s
        .handle_datagram(
            a("192.0.2.1:3478"),
            a("198.51.100.9:4000"),
            b"garbage",
            &mut out
        )
        .is_none());
    let mut bad_fp = request(Method::BINDING, |b| {
        b.add_fingerprint().unwrap();
    });
    let n = bad_fp.len();
    bad_fp[n - 1] ^= 1;
    assert!(s
        .handle_datagram(
            a("192.0.2.1:3478"),
            a("198.51.100.9:4000"),
            &bad_fp,
            &mut out
        )
        .is_none());
    assert_eq!(s.stats().dropped, 3);
}

#[test]
fn rfc5780_change_request_response_port_and_padding() {
    let mut s = rfc5780();
    assert_eq!(
        s.local_addresses(),
        vec![
            a("192.0.2.1:3478"),
            a("192.0.2.1:3479"),
            a("192.0.2.2:3478"),
            a("192.0.2.2:3479")
        ]
    );
    let client = a("198.51.100.9:4000");
    let mut out = [0u8; 512];
    let cases = [
        (
            ChangeRequest {
                change_ip: false,
                change_port: false,
            },
            "192.0.2.1:3478",
        ),
        (
            ChangeRequest {
                change_ip: true,
                change_port: false,
            },
            "192.0.2.2:3478",
        ),
        (
            ChangeRequest {
                change_ip: false,
                change_port: true,
            },
            "192.0.2.1:3479",
        ),
        (
            ChangeRequest {
                change_ip: true,
                change_port: true,
            },
            "192.0.2.2:3479",
        ),
    ];
    for (change, from) in cases {
        let req = request(Method::BINDING, |b| {
            b.add(&change).unwrap();
        });
        let r = s
            .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut out)
            .unwrap();
        assert_eq!(r.from, a(from), "{change:?}");
        let m = Message::parse(&out[..r.len]).unwrap();
        assert_eq!(
            m.get::<ResponseOrigin>().unwrap(),
            Some(ResponseOrigin(a(from)))
        );
        assert_eq!(
            m.get::<OtherAddress>().unwrap(),
            Some(OtherAddress(a("192.0.2.2:3479")))
        );
    }
    // Arriving on the alternate, OTHER-ADDRESS is the primary.
    let req = request(Method::BINDING, |_| {});
    let r = s
        .handle_datagram(a("192.0.2.2:3479"), client, &req, &mut out)
        .unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(
        m.get::<OtherAddress>().unwrap(),
        Some(OtherAddress(a("192.0.2.1:3478")))
    );

    let req = request(Method::BINDING, |b| {
        b.add(&ResponsePort(5555)).unwrap();
    });
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut out)
        .unwrap();
    assert_eq!(r.to, a("198.51.100.9:5555"));
    let m = Message::parse(&out[..r.len]).unwrap();
    // XOR-MAPPED-ADDRESS is still the real source.
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(client))
    );
    let req = request(Method::BINDING, |b| {
        b.add(&Padding { len: 100 }).unwrap();
    });
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut out)
        .unwrap();
    assert_eq!(r.to, client);
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(m.get::<Padding>().unwrap(), Some(Padding { len: 100 }));
    // XOR-MAPPED-ADDRESS is still the real source.
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(client))
    );
}

#[test]
fn response_port_with_padding_is_refused_and_rfc5780_attributes_need_an_alternate() {
    let client = a("198.51.100.9:4000");
    let mut out = [0u8; 512];
    let req = request(Method::BINDING, |b| {
        b.add(&ResponsePort(5555)).unwrap();
        b.add(&Padding { len: 8 }).unwrap();
    });
    let mut s = rfc5780();
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut out)
        .unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(
        m.get::<ErrorCode>().unwrap().unwrap().code,
        400,
        "RFC 5780 §7.5"
    );
    assert_eq!(r.to, client);

    let mut plain = StunServer::new(StunServerConfig::new(a("192.0.2.1:3478")));
    let req = request(Method::BINDING, |b| {
        b.add(&ResponsePort(5555)).unwrap();
    });
    let r = plain
        .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut out)
        .unwrap();
    let m = Message::parse(&out[..r.len]).unwrap();
    assert_eq!(m.get::<ErrorCode>().unwrap().unwrap().code, 420);

    // A PADDING that cannot fit the caller's buffer gets a 400, not silence.
    let req = request(Method::BINDING, |b| {
        b.add(&Padding { len: 1000 }).unwrap();
    });
    let mut small = [0u8; 600];
    let r = s
        .handle_datagram(a("192.0.2.1:3478"), client, &req, &mut small)
        .unwrap();
    let m = Message::parse(&small[..r.len]).unwrap();
    assert_eq!(m.get::<ErrorCode>().unwrap().unwrap().code, 400);
}

#[test]
fn change_request_and_response_port_over_tcp_are_refused() {
    // RFC 5780 §3: over TCP or TLS the answer can only go back on the connection, so a
    // change of address or port cannot be honoured: 400, as coturn answers, never an answer
    // whose RESPONSE-ORIGIN it did not come from.
    let mut s = rfc5780();
    let (server, client) = (a("192.0.2.1:3478"), a("198.51.100.9:4000"));
    let mut out = [0u8; 512];
    let tcp = |s: &mut StunServer, req: &[u8], out: &mut [u8]| -> Vec<u8> {
        let r = Receive {
            transport: sans_io::Transport::Tcp,
            local: server,
            remote: client,
            data: req,
        };
        let t = s.answer(r, out).expect("an answer");
        assert_eq!((t.local, t.remote), (server, client), "on the connection");
        t.data.to_vec()
    };
    for change in [
        ChangeRequest {
            change_ip: true,
            change_port: false,
        },
        ChangeRequest {
            change_ip: false,
            change_port: true,
        },
    ] {
        let req = request(Method::BINDING, |b| {
            b.add(&change).unwrap();
        });
        let m = tcp(&mut s, &req, &mut out);
        let m = Message::parse(&m).unwrap();
        assert_eq!(m.get::<ErrorCode>().unwrap().map(|e| e.code), Some(400));
    }
    let req = request(Method::BINDING, |b| {
        b.add(&ResponsePort(5555)).unwrap();
    });
    let m = tcp(&mut s, &req, &mut out);
    assert_eq!(
        Message::parse(&m)
            .unwrap()
            .get::<ErrorCode>()
            .unwrap()
            .map(|e| e.code),
        Some(400)
    );
    // An all-zero CHANGE-REQUEST asks for nothing: answered, from where it came.
    let req = request(Method::BINDING, |b| {
        b.add(&ChangeRequest::default()).unwrap();
    });
    let m = tcp(&mut s, &req, &mut out);
    let m = Message::parse(&m).unwrap();
    assert_eq!(m.message_type().class, Class::SuccessResponse);
    assert_eq!(
        m.get::<ResponseOrigin>().unwrap(),
        Some(ResponseOrigin(server))
    );
}
