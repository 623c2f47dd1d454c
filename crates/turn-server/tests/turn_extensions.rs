//! The TURN core's extensions of RFC 8656, driven directly (sans-IO): RFC 5766's channel
//! range behind its switch, dual-stack allocations (ADDITIONAL-ADDRESS-FAMILY), and RFC 6062
//! TCP relaying with the peer policy on every Connect.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use stun_codec::attr::*;
use stun_codec::{ChannelData, Class, Message, MessageBuilder, MessageType, Method};
use turn_server::auth::RestSecrets;
use turn_server::peer_policy::PeerPolicy;
use turn_server::turn::{Relay, RelayError, Transport, TurnConfig};

use harness::*;

#[test]
fn rfc5766_channel_numbers_only_with_the_switch() {
    let peer = a(PEER);
    let mut h = Harness::with(
        TurnConfig {
            peer_policy: PeerPolicy::default(),
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4113, "alice", "secret");
    c.allocate(&mut h);
    let bind = |c: &mut Client, h: &mut Harness, n: u16| {
        code(&c.call(h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(n)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        }))
    };
    assert_eq!(bind(&mut c, &mut h, 0x5000), Some(400), "RFC 8656 §12");

    let mut h = Harness::with(
        TurnConfig {
            rfc5766_channels: true,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4114, "alice", "secret");
    let relay = c.allocate(&mut h);
    assert_eq!(bind(&mut c, &mut h, 0x7FFF), None);
    assert_eq!(
        bind(&mut c, &mut h, 0x8000),
        Some(400),
        "not ChannelData at all"
    );
    let mut buf = [0u8; 32];
    let n = ChannelData::build_up_to(0x7FFF, b"old", false, &mut buf, 0x7FFF).unwrap();
    let outs = h.send(c.ft, &buf[..n]);
    assert_eq!(
        outs,
        vec![Out::ToPeer {
            relay,
            peer,
            data: b"old".to_vec()
        }]
    );
    h.peer(relay, peer, b"back");
    let outs = h.outputs();
    let Out::ToClient { data, .. } = &outs[0] else {
        panic!("{outs:?}")
    };
    let cd = ChannelData::parse_up_to(data, 0x7FFF).unwrap();
    assert_eq!((cd.channel(), cd.data()), (0x7FFF, &b"back"[..]));
}

#[test]
fn dual_allocations_relay_both_families() {
    let mut h = Harness::new(); // IPv4 and IPv6 relay addresses
    let mut c = client(4115, "alice", "secret");
    let resp = c.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
    });
    assert_eq!(code(&resp), None);
    let relays = relayed(&resp);
    assert_eq!(relays.len(), 2, "RFC 8656 §7.2: two XOR-RELAYED-ADDRESS");
    let (r4, r6) = (relays[0], relays[1]);
    assert!(r4.is_ipv4() && r6.is_ipv6());
    assert!(Message::parse(&resp)
        .unwrap()
        .get::<AddressErrorCode>()
        .unwrap()
        .is_none());
    // Peers of both families in one CreatePermission (RFC 8656 §10.2).
    let (p4, p6) = (a("8.8.8.8:5000"), a("[2001:4860::8888]:5000"));
    let resp = c.call(&mut h, Method::CREATE_PERMISSION, |b| {
        b.add(&XorPeerAddress(p4)).unwrap();
        b.add(&XorPeerAddress(p6)).unwrap();
    });
    assert_eq!(code(&resp), None);
    // Each peer is reached from the relayed address of its family, and answers come back.
    for (peer, relay) in [(p4, r4), (p6, r6)] {
        let tid = c.tid();
        let mut buf = [0u8; 128];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            tid,
        )
        .unwrap();
        b.add(&XorPeerAddress(peer)).unwrap();
        b.add(&Data(b"hi")).unwrap();
        let ind = b.finish().to_vec();
        assert_eq!(
            h.send(c.ft, &ind),
            vec![Out::ToPeer {
                relay,
                peer,
                data: b"hi".to_vec()
            }]
        );
        h.peer(relay, peer, b"back");
        assert_eq!(h.outputs().len(), 1, "a Data indication to the client");
    }
    // A channel to the IPv6 peer.
    let resp = c.call(&mut h, Method::CHANNEL_BIND, |b| {
        b.add(&ChannelNumber(0x4001)).unwrap();
        b.add(&XorPeerAddress(p6)).unwrap();
    });
    assert_eq!(code(&resp), None);
    // Refresh names either family (443 for one it does not have is tested elsewhere); the
    // deletion releases both relays.
    let resp = c.call(&mut h, Method::REFRESH, |b| {
        b.add(&RequestedAddressFamily(AddressFamily::V6)).unwrap();
    });
    assert_eq!(code(&resp), None);
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |b| {
        b.add(&Lifetime(0)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    let mut released: Vec<SocketAddr> = outs
        .iter()
        .filter_map(|o| match o {
            Out::ReleaseRelay { relay } => Some(*relay),
            _ => None,
        })
        .collect();
    released.sort();
    let mut both = vec![r4, r6];
    both.sort();
    assert_eq!(released, both);
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn a_dual_allocation_without_an_ipv6_port_gets_ipv4_and_508_for_ipv6() {
    let mut h = Harness::new();
    let mut c = client(4116, "alice", "secret");
    let _ = c.call(&mut h, Method::REFRESH, |_| {}); // learn a nonce
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
    });
    h.client(c.ft, &req);
    let Some(Out::AllocateRelay(r4)) = h.poll() else {
        panic!("the IPv4 relay first")
    };
    assert_eq!(r4.family, AddressFamily::V4);
    let v4 = a("192.0.2.10:51000");
    h.server.relay_allocated(
        h.now,
        r4.id,
        Ok(Relay {
            addr: v4,
            reservation_token: None,
        }),
    );
    let Some(Out::AllocateRelay(r6)) = h.poll() else {
        panic!("then the IPv6 one")
    };
    assert_eq!(r6.family, AddressFamily::V6);
    h.server
        .relay_allocated(h.now, r6.id, Err(RelayError::Exhausted));
    let resp = reply(&h.outputs());
    assert_eq!(code(&resp), None, "partly met: a success");
    assert_eq!(relayed(&resp), vec![v4]);
    let e = Message::parse(&resp)
        .unwrap()
        .get::<AddressErrorCode>()
        .unwrap()
        .unwrap();
    assert_eq!((e.family, e.code), (AddressFamily::V6, 508));
    // A peer of the family it lacks: 443.
    let resp = c.call(&mut h, Method::CREATE_PERMISSION, |b| {
        b.add(&XorPeerAddress(a("[2001:4860::8888]:5000"))).unwrap();
    });
    assert_eq!(code(&resp), Some(443));

    // A dual Allocate whose IPv6 relay never comes: 508, and its IPv4 relay goes back.
    let mut d = client(4117, "bob", "hunter2");
    let _ = d.call(&mut h, Method::REFRESH, |_| {});
    let tid = d.tid();
    let req = d.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
    });
    h.client(d.ft, &req);
    let Some(Out::AllocateRelay(r4)) = h.poll() else {
        panic!()
    };
    let v4 = a("192.0.2.10:51002");
    h.server.relay_allocated(
        h.now,
        r4.id,
        Ok(Relay {
            addr: v4,
            reservation_token: None,
        }),
    );
    assert!(matches!(h.poll(), Some(Out::AllocateRelay(_))));
    let deadline = h.timeout().unwrap();
    h.server.handle_timeout(deadline);
    let outs = h.outputs();
    assert!(outs.contains(&Out::ReleaseRelay { relay: v4 }), "{outs:?}");
    assert_eq!(code(&reply(&outs)), Some(508));
    assert_eq!(h.server.allocation_count(), 1);
}

/// A TCP allocation (RFC 6062) for `c` over TCP; its relayed address.
fn tcp_allocate(h: &mut Harness, c: &mut Client) -> SocketAddr {
    c.ft.transport = Transport::Tcp;
    let resp = c.call(h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::TCP).unwrap();
    });
    assert_eq!(code(&resp), None);
    relayed(&resp)[0]
}

fn connect(h: &mut Harness, c: &mut Client, peer: SocketAddr) -> (Vec<u8>, Option<u32>) {
    let tid = c.tid();
    let req = c.request(Method::CONNECT, tid, |b| {
        b.add(&XorPeerAddress(peer)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    let asked = outs.iter().find_map(|o| match o {
        // From the allocation's relayed address.
        Out::ConnectPeer { id, peer: p, relay } if *p == peer => {
            assert_eq!(Some(*relay), h.server.allocation(&c.ft).map(|a| a.relay()));
            Some(*id)
        }
        _ => None,
    });
    let answer = outs
        .iter()
        .find_map(|o| match o {
            Out::ToClient { data, .. } => Some(data.clone()),
            _ => None,
        })
        .unwrap_or_default();
    (answer, asked)
}

/// A Connect installs a permission; with no room for one it is refused as a ChannelBind
/// would be (508), and nothing is connected.
#[test]
fn rfc6062_connect_with_the_permission_table_full_is_508() {
    let mut h = Harness::with(
        TurnConfig {
            max_permissions: 1,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4402, "alice", "secret");
    tcp_allocate(&mut h, &mut c);
    let (resp, asked) = connect(&mut h, &mut c, a("8.8.8.8:443"));
    assert!(
        resp.is_empty() && asked.is_some(),
        "the first peer is connected"
    );
    let (resp, asked) = connect(&mut h, &mut c, a("8.8.4.4:443"));
    assert_eq!((code(&resp), asked), (Some(508), None));
}

#[test]
fn rfc6062_connect_bind_and_every_peer_policy_probe() {
    let mut h = Harness::with(
        TurnConfig {
            peer_policy: PeerPolicy {
                server_addresses: vec!["192.0.2.10".parse().unwrap()],
                ..PeerPolicy::default()
            },
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    // Over UDP a TCP allocation is refused (RFC 6062 §5.1: 400).
    let mut u = client(4400, "alice", "secret");
    let resp = u.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::TCP).unwrap();
    });
    assert_eq!(code(&resp), Some(400));
    let mut c = client(4401, "alice", "secret");
    let relay = tcp_allocate(&mut h, &mut c);
    // The attack list on Connect: metadata, loopback, private, the server itself, ULA and
    // the IPv4-in-IPv6 forms (443 on an IPv4 relay), never a ConnectPeer.
    for p in [
        "169.254.169.254:80",
        "127.0.0.1:22",
        "10.0.0.5:80",
        "0.0.0.0:80",
        "192.0.2.10:3478",
        "224.0.0.1:1",
    ] {
        let (resp, asked) = connect(&mut h, &mut c, a(p));
        assert_eq!((code(&resp), asked), (Some(403), None), "{p}");
    }
    for p in ["[fd00::1]:80", "[::ffff:169.254.169.254]:80", "[::1]:22"] {
        let (resp, asked) = connect(&mut h, &mut c, a(p));
        assert!(
            matches!(code(&resp), Some(403 | 443)) && asked.is_none(),
            "{p}"
        );
    }
    // An allowed peer: the driver connects; the answer carries CONNECTION-ID.
    let peer = a("8.8.8.8:443");
    let (resp, asked) = connect(&mut h, &mut c, peer);
    assert!(resp.is_empty(), "no answer before the connection is made");
    let id = asked.expect("ConnectPeer");
    h.server.peer_connected(h.now, id, true);
    let resp = reply(&h.outputs());
    let m = Message::parse(&resp).unwrap();
    m.verify_integrity(&c.key).unwrap();
    assert_eq!(m.get::<ConnectionId>().unwrap(), Some(ConnectionId(id)));
    // The same peer again while that connection lives: 446.
    let (resp, _) = connect(&mut h, &mut c, peer);
    assert_eq!(code(&resp), Some(446));
    // A failed connect: 447.
    let (_, other) = connect(&mut h, &mut c, a("8.8.4.4:443"));
    h.server.peer_connected(h.now, other.unwrap(), false);
    assert_eq!(code(&reply(&h.outputs())), Some(447));
    // UDP relaying does not apply to a TCP allocation.
    let resp = c.call(&mut h, Method::CHANNEL_BIND, |b| {
        b.add(&ChannelNumber(0x4000)).unwrap();
        b.add(&XorPeerAddress(peer)).unwrap();
    });
    assert_eq!(code(&resp), Some(400));

    // ConnectionBind: on the control connection, 400; by another user, 400; unknown id,
    // 400; on a new connection by alice, success and the splice.
    let bind = |h: &mut Harness, d: &mut Client, id: u32| {
        d.call(h, Method::CONNECTION_BIND, |b| {
            b.add(&ConnectionId(id)).unwrap();
        })
    };
    assert_eq!(code(&bind(&mut h, &mut c, id)), Some(400));
    let mut bob = client(4402, "bob", "hunter2");
    bob.ft.transport = Transport::Tcp;
    assert_eq!(code(&bind(&mut h, &mut bob, id)), Some(400));
    let mut data = client(4403, "alice", "secret");
    data.ft.transport = Transport::Tcp;
    assert_eq!(code(&bind(&mut h, &mut data, id ^ 1)), Some(400));
    let tid = data.tid();
    let req = data.request(Method::CONNECTION_BIND, tid, |b| {
        b.add(&ConnectionId(id)).unwrap();
    });
    let outs = h.send(data.ft, &req);
    assert_eq!(code(&reply(&outs)), None);
    assert!(outs.contains(&Out::BindPeer {
        id,
        client: data.ft
    }));
    // Bound once only.
    let mut again = client(4404, "alice", "secret");
    again.ft.transport = Transport::Tcp;
    assert_eq!(code(&bind(&mut h, &mut again, id)), Some(400));

    // A peer connecting in: without a permission, closed; with one, a ConnectionAttempt.
    assert_eq!(
        h.server
            .peer_connection_incoming(h.now, relay, a("9.9.9.9:5000")),
        None
    );
    let incoming = h
        .server
        .peer_connection_incoming(h.now, relay, a("8.8.8.8:5001"))
        .expect("8.8.8.8 is permitted (the Connect installed it)");
    let ind = reply(&h.outputs());
    let m = Message::parse(&ind).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication)
    );
    assert_eq!(
        m.get::<ConnectionId>().unwrap(),
        Some(ConnectionId(incoming))
    );
    // Never bound: closed after 30 s.
    h.now += Duration::from_secs(31);
    h.server.handle_timeout(h.now);
    assert!(h.outputs().contains(&Out::ClosePeer { id: incoming }));
    // The allocation ends: its bound connection closes with it.
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |b| {
        b.add(&Lifetime(0)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    assert!(outs.contains(&Out::ClosePeer { id }), "{outs:?}");
}
