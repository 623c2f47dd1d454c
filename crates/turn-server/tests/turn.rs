//! The TURN core, driven directly (sans-IO): authentication, allocations, permissions,
//! channels, relaying, the error codes, quotas, expiry, and the peer-policy attack list.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use stun_codec::attr::*;
use stun_codec::integrity::userhash;
use stun_codec::{
    ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::RestSecrets;
use turn_server::peer_policy::PeerPolicy;
use turn_server::turn::{FiveTuple, RelayError, Transport, TurnConfig};

use harness::*;

#[test]
fn no_credentials_401_and_no_state() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    let outs = h.send(c.ft, &req);
    let resp = reply(&outs);
    let m = Message::parse(&resp).unwrap();
    assert_eq!(code(&resp), Some(401));
    assert_eq!(m.get::<Realm>().unwrap(), Some(Realm(REALM)));
    let nonce = m.get::<Nonce>().unwrap().unwrap();
    assert!(
        nonce.security_features().is_some(),
        "RFC 8489 §9.2 nonce cookie"
    );
    assert!(m.get::<PasswordAlgorithms>().unwrap().is_some());
    assert!(!outs.iter().any(|o| matches!(o, Out::AllocateRelay(_))));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.timeout(), None, "nothing to expire: nothing stored");
}

#[test]
fn wrong_password_401_stale_nonce_438() {
    let mut h = Harness::with(
        TurnConfig {
            nonce_lifetime: Duration::from_secs(60),
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4000, "alice", "wrong");
    let resp = c.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(401));
    let m = Message::parse(&resp).unwrap();
    assert!(!m.has_integrity(), "a 401 carries no MESSAGE-INTEGRITY");
    assert_eq!(h.server.stats().auth_wrong_credentials, 1);

    let mut c = client(4001, "alice", "secret");
    c.allocate(&mut h);
    h.now += Duration::from_secs(61); // the nonce is stale, the allocation alive
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |_| {});
    let resp = reply(&h.send(c.ft, &req));
    assert_eq!(code(&resp), Some(438));
    let m = Message::parse(&resp).unwrap();
    assert_eq!(m.get::<Realm>().unwrap(), Some(Realm(REALM)));
    assert_ne!(
        m.get::<Nonce>().unwrap().unwrap().0,
        c.nonce.as_deref().unwrap()
    );
    assert!(!m.has_integrity());
    // The client retries with the fresh nonce and succeeds.
    let resp = c.call(&mut h, Method::REFRESH, |_| {});
    assert_eq!(code(&resp), None);
}

#[test]
fn malformed_credentials_400_and_downgrade() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    c.allocate(&mut h);
    let nonce = c.nonce.clone().unwrap();
    let build = |add: &dyn Fn(&mut MessageBuilder<'_>)| {
        let mut buf = [0u8; 512];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::REFRESH, Class::Request),
            TransactionId([77; 12]),
        )
        .unwrap();
        add(&mut b);
        b.add_message_integrity(&c.key).unwrap();
        b.finish().to_vec()
    };
    // No REALM: 400.
    let req = build(&|b| {
        b.add(&Username("alice"))
            .unwrap()
            .add(&Nonce(&nonce))
            .unwrap();
    });
    assert_eq!(code(&reply(&h.send(c.ft, &req))), Some(400));
    // PASSWORD-ALGORITHMS that is not the server's list (a downgrade attempt): 400.
    let req = build(&|b| {
        b.add(&Username("alice"))
            .unwrap()
            .add(&Realm(REALM))
            .unwrap()
            .add(&Nonce(&nonce))
            .unwrap();
        b.add(&PasswordAlgorithms::new(&[PasswordAlgorithm::MD5]))
            .unwrap();
        b.add(&PasswordAlgorithm::MD5).unwrap();
    });
    assert_eq!(code(&reply(&h.send(c.ft, &req))), Some(400));
    // PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS: 400.
    let req = build(&|b| {
        b.add(&Username("alice"))
            .unwrap()
            .add(&Realm(REALM))
            .unwrap()
            .add(&Nonce(&nonce))
            .unwrap();
        b.add(&PasswordAlgorithm::MD5).unwrap();
    });
    assert_eq!(code(&reply(&h.send(c.ft, &req))), Some(400));
    // A forged nonce with valid credentials: 438 with a fresh one.
    let req = build(&|b| {
        b.add(&Username("alice"))
            .unwrap()
            .add(&Realm(REALM))
            .unwrap();
        b.add(&Nonce("obMatJos2wAAA0000000000000000000000000000000000"))
            .unwrap();
    });
    assert_eq!(code(&reply(&h.send(c.ft, &req))), Some(438));
}

#[test]
fn another_user_on_the_allocation_gets_441_and_expired_allocations_437() {
    let mut h = Harness::new();
    let mut alice = client(4000, "alice", "secret");
    alice.allocate(&mut h);
    // Bob, with valid credentials, from Alice's 5-tuple (behind her NAT, or spoofing UDP).
    let mut bob = client(4000, "bob", "hunter2");
    assert_eq!(
        code(&bob.call(&mut h, Method::REFRESH, |b| {
            b.add(&Lifetime(0)).unwrap();
        })),
        Some(441)
    );
    assert_eq!(
        code(&bob.call(&mut h, Method::CREATE_PERMISSION, |b| {
            b.add(&XorPeerAddress(a(PEER))).unwrap();
        })),
        Some(441)
    );
    assert_eq!(h.server.allocation_count(), 1);
    // Past its lifetime the allocation is gone even before the timer fires.
    h.now += Duration::from_secs(601);
    let resp = alice.call(&mut h, Method::REFRESH, |_| {});
    assert_eq!(code(&resp), Some(437));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn additional_address_family_and_unprocessed_attributes() {
    // A server with IPv4 relay addresses only.
    let mut h = Harness::with(
        TurnConfig {
            relay_families: vec![AddressFamily::V4],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4000, "alice", "secret");
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&AdditionalAddressFamily(AddressFamily::V4)).unwrap();
        })),
        Some(400),
        "ADDITIONAL-ADDRESS-FAMILY must ask for IPv6"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&RequestedAddressFamily(AddressFamily::V4)).unwrap();
            b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
        })),
        Some(400),
        "not with REQUESTED-ADDRESS-FAMILY"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&Priority(1)).unwrap();
        })),
        Some(420),
        "PRIORITY means nothing to a TURN server"
    );
    // RFC 8656 §7.2: a server that cannot set DF treats DONT-FRAGMENT as unknown.
    let resp = c.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&DontFragment).unwrap();
    });
    assert_eq!(code(&resp), Some(420));
    assert_eq!(
        Message::parse(&resp)
            .unwrap()
            .get::<UnknownAttributes>()
            .unwrap()
            .map(|u| u.iter().collect::<Vec<_>>()),
        Some(vec![AttributeType::DONT_FRAGMENT])
    );
    // A dual request to a server without IPv6 relays: IPv4 granted, IPv6 refused with
    // ADDRESS-ERROR-CODE 440 (RFC 8656 §7.2 step 9).
    let resp = c.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
        b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
    });
    let m = Message::parse(&resp).unwrap();
    assert_eq!(m.message_type().class, Class::SuccessResponse);
    let e = m.get::<AddressErrorCode>().unwrap().unwrap();
    assert_eq!((e.family, e.code), (AddressFamily::V6, 440));
}

#[test]
fn stuck_relay_requests_time_out_with_508_and_closed_streams_end_allocations() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let _ = c.call(&mut h, Method::REFRESH, |_| {}); // learn a nonce
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    h.client(c.ft, &req);
    assert!(matches!(h.poll(), Some(Out::AllocateRelay(_))));
    let deadline = h.timeout().expect("the pending Allocate has a deadline");
    h.server.handle_timeout(deadline);
    assert_eq!(code(&reply(&h.outputs())), Some(508));
    assert_eq!(h.timeout(), None);

    let mut t = client(4001, "alice", "secret");
    t.ft.transport = Transport::Tcp;
    let relay = t.allocate(&mut h);
    h.server.connection_closed(h.now, t.ft);
    assert_eq!(h.outputs(), vec![Out::ReleaseRelay { relay }]);
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn allocate_retransmission_and_437() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    c.allocate(&mut h);
    // The same transaction again: the same answer.
    let tid = TransactionId([c.next_tid; 12]);
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    let first = h.server.allocation(&c.ft).unwrap().response().to_vec();
    assert_eq!(reply(&h.send(c.ft, &req)), first);
    // A new Allocate on the same 5-tuple: 437.
    let resp = c.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(437));
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn allocate_errors() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |_| {})),
        Some(400),
        "no REQUESTED-TRANSPORT"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::TCP).unwrap();
        })),
        Some(400),
        "TCP relaying over UDP (RFC 6062 §5.1)"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport(132)).unwrap();
        })),
        Some(442),
        "SCTP"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&EvenPort { reserve: false }).unwrap();
            b.add(&ReservationToken(7)).unwrap();
        })),
        Some(400)
    );
    let mut h = Harness::with(
        TurnConfig {
            relay_families: vec![AddressFamily::V4],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&RequestedAddressFamily(AddressFamily::V6)).unwrap();
        })),
        Some(440)
    );
    assert_eq!(
        code(&c.call(&mut h, Method::REFRESH, |_| {})),
        Some(437),
        "no allocation"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
            b.add(&XorPeerAddress(a(PEER))).unwrap();
        })),
        Some(437)
    );
    assert_eq!(
        code(&c.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add_raw(AttributeType(0x7ABC), b"?").unwrap();
        })),
        Some(420)
    );
}

#[test]
fn relay_exhaustion_508_and_quotas_486() {
    let mut h = Harness::with(
        TurnConfig {
            user_quota: 1,
            total_quota: 2,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4000, "alice", "secret");
    c.allocate(&mut h);
    let mut c2 = client(4001, "alice", "secret");
    assert_eq!(
        code(&c2.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })),
        Some(486),
        "per-user quota"
    );
    let mut b1 = client(4002, "bob", "hunter2");
    b1.allocate(&mut h);
    // Carol has no allocation: only the total quota (2) can refuse her.
    let mut carol = client(4003, "carol", "pw");
    assert_eq!(
        code(&carol.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })),
        Some(486),
        "total quota"
    );

    // The driver has no port left: 508, and nothing is kept.
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let _ = c.call(&mut h, Method::REFRESH, |_| {}); // learn a nonce
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    h.client(c.ft, &req);
    let Some(Out::AllocateRelay(r)) = h.poll() else {
        panic!("asks for a relay")
    };
    h.server
        .relay_allocated(h.now, r.id, Err(RelayError::Exhausted));
    let outs = h.outputs();
    assert_eq!(code(&reply(&outs)), Some(508));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn permissions_send_data_and_channels() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let relay = c.allocate(&mut h);
    let peer = a(PEER);

    // Send before any permission: dropped.
    let send = |data: &[u8]| {
        let mut buf = [0u8; 512];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([9; 12]),
        )
        .unwrap();
        b.add(&XorPeerAddress(peer))
            .unwrap()
            .add(&Data(data))
            .unwrap();
        b.finish().to_vec()
    };
    assert!(h.send(c.ft, &send(b"early")).is_empty());
    assert_eq!(
        code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
            b.add(&XorPeerAddress(peer)).unwrap();
            b.add(&XorPeerAddress(a("1.1.1.1:1"))).unwrap();
        })),
        None
    );
    assert_eq!(
        h.send(c.ft, &send(b"hello")),
        vec![Out::ToPeer {
            relay,
            peer,
            data: b"hello".to_vec()
        }]
    );

    // From the peer: a Data indication.
    h.peer(relay, peer, b"pong");
    let msg = reply(&h.outputs());
    let m = Message::parse(&msg).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::DATA, Class::Indication)
    );
    assert_eq!(
        m.get::<XorPeerAddress>().unwrap(),
        Some(XorPeerAddress(peer))
    );
    assert_eq!(m.get::<Data>().unwrap(), Some(Data(b"pong")));
    // From a peer without permission: nothing.
    h.peer(relay, a("9.9.9.9:1"), b"spam");
    assert!(h.outputs().is_empty());

    // Channels: range, one channel per peer, one peer per channel.
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x3FFF)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        Some(400)
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x5000)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        Some(400)
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x4000)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        None
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x4000)).unwrap();
            b.add(&XorPeerAddress(a("1.1.1.1:1"))).unwrap();
        })),
        Some(400),
        "one channel to two peers"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x4001)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        Some(400),
        "a second channel for one peer"
    );
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x4000)).unwrap();
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        None,
        "rebinding the same pair refreshes"
    );

    // ChannelBind installs the permission itself: a peer never permitted before.
    let other = a("1.0.0.1:7");
    assert_eq!(
        code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(0x4010)).unwrap();
            b.add(&XorPeerAddress(other)).unwrap();
        })),
        None
    );
    h.peer(relay, other, b"via new permission");
    assert_eq!(
        ChannelData::parse(&reply(&h.outputs())).unwrap().channel(),
        0x4010
    );

    let mut cd = [0u8; 16];
    let n = ChannelData::build(0x4000, b"via channel", false, &mut cd).unwrap();
    assert_eq!(
        h.send(c.ft, &cd[..n]),
        vec![Out::ToPeer {
            relay,
            peer,
            data: b"via channel".to_vec()
        }]
    );
    let n = ChannelData::build(0x4005, b"unbound", false, &mut cd).unwrap();
    assert!(h.send(c.ft, &cd[..n]).is_empty());
    h.peer(relay, peer, b"back");
    let msg = reply(&h.outputs());
    let cd = ChannelData::parse(&msg).unwrap();
    assert_eq!((cd.channel(), cd.data()), (0x4000, &b"back"[..]));
}

#[test]
fn a_channel_bind_refused_for_lack_of_permissions_binds_nothing() {
    let mut h = Harness::with(
        TurnConfig {
            max_permissions: 1,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4000, "alice", "secret");
    let relay = c.allocate(&mut h);
    let bind = |c: &mut Client, h: &mut Harness, channel: u16, peer: &str| {
        code(&c.call(h, Method::CHANNEL_BIND, |b| {
            b.add(&ChannelNumber(channel)).unwrap();
            b.add(&XorPeerAddress(a(peer))).unwrap();
        }))
    };
    assert_eq!(bind(&mut c, &mut h, 0x4000, PEER), None);
    // The one permission is taken: a second peer gets 508 and no channel. Had 0x4001 been
    // bound anyway, the peer would now have a channel, and another one would be 400.
    assert_eq!(bind(&mut c, &mut h, 0x4001, "1.0.0.1:7"), Some(508));
    assert_eq!(bind(&mut c, &mut h, 0x4002, "1.0.0.1:7"), Some(508));
    h.peer(relay, a("1.0.0.1:7"), b"y");
    assert!(h.outputs().is_empty());
    // The existing binding still refreshes.
    assert_eq!(bind(&mut c, &mut h, 0x4000, PEER), None);
}

#[test]
fn refresh_zero_deletes_and_expiry() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let relay = c.allocate(&mut h);
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |b| {
        b.add(&Lifetime(0)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    assert!(outs.contains(&Out::ReleaseRelay { relay }), "{outs:?}");
    assert_eq!(
        Message::parse(&reply(&outs))
            .unwrap()
            .get::<Lifetime>()
            .unwrap(),
        Some(Lifetime(0))
    );
    assert_eq!(h.server.allocation_count(), 0);
    // An allocation left alone expires at the end of its lifetime.
    let mut c = client(4001, "alice", "secret");
    let relay2 = c.allocate(&mut h);
    let deadline = h.timeout().unwrap();
    assert_eq!(deadline, h.now + Duration::from_secs(600));
    h.server.handle_timeout(deadline);
    assert_eq!(h.outputs(), vec![Out::ReleaseRelay { relay: relay2 }]);
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.stats().allocations_deleted, 2);
}

#[test]
fn rest_credentials_and_sha256_with_userhash() {
    let secret = "north";
    let mut h = Harness::with(
        TurnConfig::default(),
        RestSecrets::new(["old-secret", secret]),
    );
    let username = "1700003600:carol";
    let password = RestSecrets::password(secret.as_bytes(), username);
    let mut c = client(4000, username, &password);
    c.allocate(&mut h);
    // An expired REST username is refused.
    let mut old = client(
        4001,
        "1600000000:carol",
        &RestSecrets::password(secret.as_bytes(), "1600000000:carol"),
    );
    assert_eq!(
        code(&old.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })),
        Some(401)
    );

    // RFC 8489: SHA-256 long-term key, USERHASH instead of USERNAME, MESSAGE-INTEGRITY-SHA256.
    let mut s = client(4002, "alice", "secret");
    s.key = IntegrityKey::long_term("alice", REALM, "secret", PasswordAlgorithm::SHA256).unwrap();
    s.sha256 = Some(userhash("alice", REALM));
    s.allocate(&mut h);
}

#[test]
fn user_quota_counts_rest_users_by_the_part_after_the_colon() {
    let secret = "north";
    let mut h = Harness::with(
        TurnConfig {
            user_quota: 1,
            ..TurnConfig::default()
        },
        RestSecrets::new([secret]),
    );
    let rest = |port: u16, username: &str| {
        client(
            port,
            username,
            &RestSecrets::password(secret.as_bytes(), username),
        )
    };
    rest(4000, "1700003600:dave").allocate(&mut h);
    // A freshly minted credential of the same user does not escape the quota.
    let mut again = rest(4001, "1700007200:dave");
    assert_eq!(
        code(&again.call(&mut h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })),
        Some(486)
    );
    // Another user is counted apart.
    rest(4002, "1700003600:erin").allocate(&mut h);
}

#[test]
fn peer_policy_attack_list() {
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
    let mut c = client(4000, "alice", "secret");
    let relay = c.allocate(&mut h);
    let v4 = [
        "127.0.0.1:1",
        "0.0.0.0:1",
        "169.254.169.254:80",
        "10.0.0.5:1",
    ];
    let v6 = [
        "[::1]:1",
        "[::]:1",
        "[::ffff:127.0.0.1]:1",
        "[::127.0.0.1]:1",
        "[2002:7f00:1::]:1",
        "[64:ff9b::7f00:1]:1",
    ];
    for p in v4 {
        let peer = a(p);
        assert_eq!(
            code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
                b.add(&XorPeerAddress(peer)).unwrap();
            })),
            Some(403),
            "{p}"
        );
        assert_eq!(
            code(&c.call(&mut h, Method::CHANNEL_BIND, |b| {
                b.add(&ChannelNumber(0x4000)).unwrap();
                b.add(&XorPeerAddress(peer)).unwrap();
            })),
            Some(403),
            "{p}"
        );
        h.peer(relay, peer, b"x");
    }
    for p in v6 {
        // An IPv4 relay: IPv6 peers are a family mismatch (443) before policy even applies;
        // the policy itself is tested on these addresses in peer_policy's unit tests.
        assert_eq!(
            code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
                b.add(&XorPeerAddress(a(p))).unwrap();
            })),
            Some(443),
            "{p}"
        );
    }
    // Send indications to denied peers are dropped silently.
    for p in v4 {
        let mut buf = [0u8; 128];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([1; 12]),
        )
        .unwrap();
        b.add(&XorPeerAddress(a(p)))
            .unwrap()
            .add(&Data(b"x"))
            .unwrap();
        let ind = b.finish().to_vec();
        assert!(h.send(c.ft, &ind).is_empty(), "{p}");
    }
    assert!(h.outputs().is_empty());
    let s = h.server.stats();
    assert_eq!(s.packets_to_peers + s.packets_to_clients, 0);
    assert!(s.dropped_peer_policy >= 8);
}

#[test]
fn binding_requests_are_answered_on_the_turn_port() {
    let mut h = Harness::new();
    let c = client(4000, "alice", "secret");
    let mut buf = [0u8; 64];
    let req = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([5; 12]),
    )
    .unwrap()
    .finish()
    .to_vec();
    let resp = reply(&h.send(c.ft, &req));
    let m = Message::parse(&resp).unwrap();
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(c.ft.client))
    );
    // Garbage and truncated datagrams: ignored.
    assert!(h.send(c.ft, b"\x00\x01\x00").is_empty());
    assert!(h.send(c.ft, &[0xff; 40]).is_empty());
    assert!(h.send(c.ft, &req[..19]).is_empty());
}

#[test]
fn challenge_answers_are_rate_limited_per_source_and_floods_store_nothing() {
    let mut h = Harness::new();
    let mut c = client(4000, "alice", "secret");
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    let answered = (0..100).filter(|_| !h.send(c.ft, &req).is_empty()).count();
    assert_eq!(answered, 20, "the burst, then silence");
    assert_eq!(h.server.stats().challenges_rate_limited, 80);
    h.now += Duration::from_secs(1);
    let answered = (0..100).filter(|_| !h.send(c.ft, &req).is_empty()).count();
    assert_eq!(answered, 10, "then the rate");

    // 20,000 sources, one request each: every one may be answered, nothing is kept.
    let mut answered = 0;
    for i in 0..20_000u32 {
        let [_, _, x, y] = i.to_be_bytes();
        let ft = FiveTuple {
            transport: Transport::Udp,
            client: SocketAddr::new([100, 100, x, y].into(), 5000),
            server: a(SERVER),
        };
        answered += h.send(ft, &req).len();
    }
    assert!(
        answered > 19_000,
        "{answered}: only hash collisions of the fixed table cost answers"
    );
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.timeout(), None);
}

#[test]
fn max_bps_limits_each_allocation() {
    let mut h = Harness::with(
        TurnConfig {
            max_bps: 1000,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4000, "alice", "secret");
    let relay = c.allocate(&mut h);
    let peer = a(PEER);
    assert_eq!(
        code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        None
    );
    // 1000 bytes per second, both directions together: four 300-byte packets, the fourth over.
    for _ in 0..3 {
        h.peer(relay, peer, &[0; 300]);
    }
    h.peer(relay, peer, &[0; 300]);
    let delivered = h.outputs().len();
    assert_eq!(delivered, 3);
    assert_eq!(h.server.stats().dropped_bandwidth, 1);
    // Half a second later 500 more bytes are allowed.
    h.now += Duration::from_millis(500);
    h.peer(relay, peer, &[0; 400]);
    h.peer(relay, peer, &[0; 400]);
    assert_eq!(h.outputs().len(), 1);
    assert_eq!(h.server.stats().dropped_bandwidth, 2);
}

/// The budget refills from time however finely it is sliced: packets every 100 µs (each
/// worth a tenth of a byte of refill at 1000 B/s) still get the configured rate, not just the
/// first second's burst.
#[test]
fn max_bps_holds_under_frequent_small_packets() {
    let mut h = Harness::with(
        TurnConfig {
            max_bps: 1000,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let mut c = client(4001, "alice", "secret");
    let relay = c.allocate(&mut h);
    let peer = a(PEER);
    assert_eq!(
        code(&c.call(&mut h, Method::CREATE_PERMISSION, |b| {
            b.add(&XorPeerAddress(peer)).unwrap();
        })),
        None
    );
    // 2 s of 1-byte datagrams every 100 µs: 1000 bytes of burst, then 1000 bytes a second.
    let mut delivered = 0;
    for _ in 0..20_000 {
        h.now += Duration::from_micros(100);
        h.peer(relay, peer, &[0]);
        delivered += h.outputs().len();
    }
    assert!((2990..=3000).contains(&delivered), "{delivered} delivered");
}
