//! Bad input to the agent: unauthenticated checks, 487 storms, garbage, huge remote
//! descriptions, malformed candidate lines, TURN and STUN servers that fail or stay silent.
//! Each is dropped or refused cleanly, without state, and the rest goes on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::*;

mod support;
use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use support::Queued;

const LOCAL: &str = "192.0.2.1:5000";
const PEER: &str = "192.0.2.2:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A controlling agent with one socket and the peer's credentials.
fn agent(t: Instant, config: AgentConfig) -> (Queued, StreamId, Credentials) {
    let mut a = Queued::new(Agent::new(config));
    let s = a.add_stream(1);
    let socket = LocalSocket {
        stream: s,
        component: 1,
        addr: addr(LOCAL),
    };
    a.add_local_sockets(t, &[socket]).unwrap();
    let peer = Credentials {
        ufrag: "peer".into(),
        pwd: "peerpasswordpeerpassword".into(),
    };
    a.set_remote_credentials(t, peer.clone(), false);
    while a.poll_event().is_some() {}
    while a.poll_transmit().is_some() {}
    (a, s, peer)
}

fn config() -> AgentConfig {
    let mut c = AgentConfig::new(Role::Controlling);
    c.seed = Some(1);
    c
}

/// A Binding request as the peer would send it, with the given user name and key.
fn check(username: &str, key: &IntegrityKey, controlling: Option<u64>, tid: u8) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([tid; 12]),
    )
    .unwrap();
    b.add(&Username(username))
        .unwrap()
        .add(&Priority(1234))
        .unwrap();
    match controlling {
        Some(tb) => b.add(&IceControlling(tb)).unwrap(),
        None => b.add(&IceControlled(1)).unwrap(),
    };
    b.add_message_integrity(key)
        .unwrap()
        .add_fingerprint()
        .unwrap();
    b.finish().to_vec()
}

#[test]
fn checks_with_a_wrong_username_or_integrity_are_ignored_without_state() {
    let t = Instant::now();
    let (mut a, s, _) = agent(t, config());
    let ufrag = a.local_credentials().ufrag.clone();
    let good_key = IntegrityKey::new(a.local_credentials().pwd.as_bytes());
    let bad_key = IntegrityKey::new(b"not the password at all!");
    let cases = [
        check("wrong:peer", &good_key, None, 1),
        check("", &good_key, None, 2),
        check(&format!("{ufrag}:peer"), &bad_key, None, 3),
    ];
    for (i, c) in cases.iter().enumerate() {
        assert!(a
            .handle_receive(t, Receive::udp(addr(LOCAL), addr(PEER), c))
            .is_none());
        assert!(a.poll_transmit().is_none(), "case {i} got an answer");
        assert!(
            a.remote_candidates(s).is_empty(),
            "case {i} created a candidate"
        );
        assert_eq!(a.pair_count(s), 0);
    }
    // A correctly signed check without FINGERPRINT (MESSAGE-INTEGRITY stays valid: it
    // covers the header with the length up to itself).
    let mut no_fp = check(&format!("{ufrag}:peer"), &good_key, None, 5);
    no_fp.truncate(no_fp.len() - 8);
    let len = u16::from_be_bytes([no_fp[2], no_fp[3]]) - 8;
    no_fp[2..4].copy_from_slice(&len.to_be_bytes());
    assert!(a
        .handle_receive(t, Receive::udp(addr(LOCAL), addr(PEER), &no_fp))
        .is_none());
    assert!(a.poll_transmit().is_none());
    assert_eq!(a.stats().auth_failures, 4);

    // The same check, correctly signed, is answered and teaches a peer-reflexive candidate.
    let ok = check(&format!("{ufrag}:peer"), &good_key, None, 4);
    let _ = a.handle_receive(t, Receive::udp(addr(LOCAL), addr(PEER), &ok));
    let answer = a.poll_transmit().expect("an answer");
    let m = Message::parse(&answer.data).unwrap();
    assert_eq!(m.message_type().class, Class::SuccessResponse);
    m.verify_integrity(&good_key).unwrap();
    assert_eq!(
        m.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(addr(PEER)))
    );
    assert_eq!(a.remote_candidates(s)[0].kind, CandidateKind::PeerReflexive);
}

#[test]
fn a_487_storm_costs_no_state() {
    let t = Instant::now();
    let (mut a, s, _) = agent(t, config());
    let ufrag = a.local_credentials().ufrag.clone();
    let key = IntegrityKey::new(a.local_credentials().pwd.as_bytes());
    // A controlling peer with tie-breaker 0 always loses (ours is at least 0; ties go to
    // us): every request gets 487 and nothing else happens.
    for i in 0..5000u32 {
        let c = check(&format!("{ufrag}:peer"), &key, Some(0), i as u8);
        let _ = a.handle_receive(t, Receive::udp(addr(LOCAL), addr(PEER), &c));
        let r = a.poll_transmit().expect("487");
        let m = Message::parse(&r.data).unwrap();
        assert_eq!(m.get::<ErrorCode>().unwrap().unwrap().code, 487);
        assert!(a.poll_transmit().is_none());
    }
    assert_eq!(a.role(), Role::Controlling);
    assert!(a.remote_candidates(s).is_empty());
    assert_eq!(a.pair_count(s), 0);
    assert_eq!(a.stats().role_conflicts, 5000);
}

#[test]
fn garbage_datagrams_are_dropped() {
    let t = Instant::now();
    let (mut a, s, _) = agent(t, config());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..20_000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = n % 600;
        let mut data: Vec<u8> = (0..len).map(|i| (x >> (i % 57)) as u8).collect();
        // A third look like STUN (first byte 0-3, the magic cookie), a third like
        // ChannelData.
        if len >= 20 && n % 3 == 0 {
            data[0] &= 0x03;
            data[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        } else if len >= 4 && n % 3 == 1 {
            data[0] = 0x40;
        }
        assert!(a
            .handle_receive(t, Receive::udp(addr(LOCAL), addr(PEER), &data))
            .is_none());
        // Also on an address that is not one of ours.
        assert!(a
            .handle_receive(t, Receive::udp(addr(PEER), addr(LOCAL), &data))
            .is_none());
    }
    assert!(a.poll_transmit().is_none());
    assert!(a.remote_candidates(s).is_empty());
    assert!(a.stats().dropped_unvalidated > 0);
}

#[test]
fn ten_thousand_remote_candidates_keep_the_check_list_capped() {
    let t = Instant::now();
    let mut c = config();
    c.max_remote_candidates = 20_000;
    let (mut a, s, _) = agent(t, c);
    for i in 0..10_000u32 {
        let cand = Candidate {
            foundation: format!("{}", i % 7),
            component: 1,
            transport: CandidateTransport::Udp,
            priority: i,
            addr: SocketAddr::from(([198, 51, (i / 250) as u8, (i % 250) as u8 + 1], 9000)),
            kind: CandidateKind::Host,
            related: None,
        };
        a.add_remote_candidate(t, s, cand).unwrap();
    }
    assert_eq!(a.remote_candidates(s).len(), 10_000);
    assert_eq!(a.pair_count(s), 100);
    // The checks that go out are to the highest-priority remote candidates.
    let mut sent = Vec::new();
    for _ in 0..10 {
        let now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        while let Some(tx) = a.poll_transmit() {
            sent.push(tx.remote);
        }
    }
    let top: Vec<SocketAddr> = a.remote_candidates(s)[9_900..]
        .iter()
        .map(|c| c.addr)
        .collect();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|r| top.contains(r)), "{sent:?}");

    // With the default limit, the 1001st candidate is refused with a clear error.
    let (mut b, sb, _) = agent(t, config());
    for i in 0..1000u32 {
        let line = format!(
            "candidate:1 1 UDP {i} 198.51.{}.{} 9 typ host",
            i / 250,
            i % 250 + 1
        );
        b.add_remote_candidate_line(t, sb, &line).unwrap();
    }
    assert_eq!(
        b.add_remote_candidate_line(t, sb, "candidate:1 1 UDP 1 203.0.113.9 9 typ host"),
        Err(AddCandidateError::TooMany)
    );
}

#[test]
fn malformed_candidate_lines_get_a_clear_error() {
    let t = Instant::now();
    let (mut a, s, _) = agent(t, config());
    for line in [
        "candidate:",
        "candidate:1 1 UDP x 1.2.3.4 5 typ host",
        "candidate:1 1 UDP 1 host.local 5 typ host",
        "candidate:1 9 UDP 1 1.2.3.4 5 typ host",
        "candidate:1 1 UDP 1 1.2.3.4 5 typ",
    ] {
        let e = a.add_remote_candidate_line(t, s, line).expect_err(line);
        assert!(!e.to_string().is_empty());
    }
    assert!(a.remote_candidates(s).is_empty());
    // Unknown extensions and TCP candidates are accepted, and TCP ones set aside.
    a.add_remote_candidate_line(
        t,
        s,
        "candidate:1 1 UDP 5 198.51.100.9 9 typ host generation 0 ufrag x network-cost 10",
    )
    .unwrap();
    a.add_remote_candidate_line(
        t,
        s,
        "candidate:2 1 TCP 5 198.51.100.9 9 typ host tcptype passive",
    )
    .unwrap();
    assert_eq!(a.remote_candidates(s).len(), 1);
}

fn turn_config() -> TurnServerConfig {
    TurnServerConfig {
        addr: addr("198.51.100.1:3478"),
        transport: Transport::Udp,
        tls_name: None,
        username: "u".into(),
        password: "p".into(),
    }
}

#[test]
fn silent_servers_do_not_hold_up_gathering() {
    let t = Instant::now();
    let mut c = config();
    c.stun_servers = vec![addr("198.51.100.2:3478")];
    c.turn_servers = vec![turn_config()];
    let mut a = Queued::new(Agent::new(c));
    let s = a.add_stream(1);
    let socket = LocalSocket {
        stream: s,
        component: 1,
        addr: addr(LOCAL),
    };
    a.add_local_sockets(t, &[socket]).unwrap();
    let mut host = false;
    let mut complete = None;
    let mut now = t;
    loop {
        while let Some(e) = a.poll_event() {
            match e {
                Event::LocalCandidate { candidate, .. } => {
                    host |= candidate.kind == CandidateKind::Host
                }
                Event::GatheringComplete { .. } => complete = Some(now),
                _ => {}
            }
        }
        while a.poll_transmit().is_some() {}
        if complete.is_some() {
            break;
        }
        now = a.poll_timeout().expect("a timer while gathering");
        a.handle_timeout(now);
    }
    assert!(host);
    // The per-server deadline (3 s by default), not RFC 8489's 39.5 s.
    assert_eq!(complete.map(|c| c - t), Some(Duration::from_secs(3)));
}

#[test]
fn a_turn_server_answering_errors_fails_relay_gathering_cleanly() {
    let t = Instant::now();
    let mut c = config();
    c.turn_servers = vec![turn_config()];
    let mut a = Queued::new(Agent::new(c));
    let s = a.add_stream(1);
    let socket = LocalSocket {
        stream: s,
        component: 1,
        addr: addr(LOCAL),
    };
    a.add_local_sockets(t, &[socket]).unwrap();
    let server = addr("198.51.100.1:3478");
    while a.poll_event().is_some() {}
    let key = IntegrityKey::long_term("u", "r", "p", PasswordAlgorithm::MD5).unwrap();
    let answer = |req: &Message<'_>, code: u16, signed: bool| {
        let mut buf = [0u8; 256];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::ErrorResponse),
            req.transaction_id(),
        )
        .unwrap();
        b.add(&ErrorCode::new(code)).unwrap();
        b.add(&Realm("r")).unwrap().add(&Nonce("n")).unwrap();
        if signed {
            b.add_message_integrity(&key).unwrap();
        }
        b.finish().to_vec()
    };
    let mut complete = false;
    // The 401 round.
    let tx = a.poll_transmit().unwrap();
    let req = Message::parse(&tx.data).unwrap();
    assert_eq!(req.message_type().method, Method::ALLOCATE);
    let _ = a.handle_receive(
        t,
        Receive::udp(addr(LOCAL), server, &answer(&req, 401, false)),
    );
    let tx = a.poll_transmit().expect("Allocate with credentials");
    let req = Message::parse(&tx.data).unwrap();
    assert!(req.has_integrity());
    // An unsigned 500 to an authenticated request could be forged: ignored.
    let _ = a.handle_receive(
        t,
        Receive::udp(addr(LOCAL), server, &answer(&req, 500, false)),
    );
    assert!(a.poll_event().is_none());
    // A signed one ends relay gathering.
    let _ = a.handle_receive(
        t,
        Receive::udp(addr(LOCAL), server, &answer(&req, 500, true)),
    );
    while let Some(e) = a.poll_event() {
        complete |= matches!(e, Event::GatheringComplete { .. });
    }
    assert!(complete, "gathering completes without the relay");
    assert!(a
        .local_candidates(s)
        .iter()
        .all(|c| c.kind == CandidateKind::Host));
    assert!(
        a.poll_transmit().is_none(),
        "no more requests to the failed server"
    );
    // A response to a transaction nobody sent changes nothing.
    let mut buf = [0u8; 64];
    let b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::SuccessResponse),
        TransactionId([9; 12]),
    )
    .unwrap();
    let stray = b.finish().to_vec();
    assert!(a
        .handle_receive(t, Receive::udp(addr(LOCAL), server, &stray))
        .is_none());
    assert!(a.poll_event().is_none());
}
