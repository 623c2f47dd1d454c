//! The TURN server core's authenticated paths: structured requests that carry valid long-term
//! credentials (the harness plays a client that learned the nonce), Send indications,
//! ChannelData and peer datagrams, with relays granted or refused and time passing.
//! Two static users and one from the user database (dave), whose lookups the harness answers
//! when a step says so: found, not found, or the database down; a 401 or 438 hands the
//! harness a fresh nonce, as a client would take it.
//! Invariants: the per-user and total quotas and the permission and channel caps hold, every
//! datagram to a peer goes from a live relay to a peer the policy allows, and the core never
//! panics.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stun_codec::attr::{Data, Nonce, PasswordAlgorithm, Realm, Username, XorPeerAddress};
use stun_codec::{
    ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, OwnedAttribute,
    TransactionId,
};
use turn_server::auth::{RestSecrets, UserKeys, Users};
use turn_server::peer_policy::PeerPolicy;
use turn_server::stun::StunServerConfig;
use turn_server::turn::{
    FiveTuple, Output, Relay, RelayError, Request, Transmit, Transport, TurnConfig, TurnServer,
    UserLookup, RELAY_OVERHEAD,
};

const REALM: &str = "realm";

#[derive(Debug, Arbitrary)]
enum Step {
    Request {
        client: u8,
        method: u8,
        attrs: Vec<OwnedAttribute>,
        sha256: bool,
    },
    Send {
        client: u8,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    ChannelData {
        client: u8,
        channel: u16,
        data: Vec<u8>,
    },
    FromPeer {
        relay: u8,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    Advance {
        secs: u16,
    },
    RefuseNextRelay,
    /// Answers the oldest lookups: 0 found, 1 no such user, else the database down.
    AnswerLookups {
        count: u8,
        result: u8,
    },
}

const METHODS: [Method; 7] = [
    Method::ALLOCATE,
    Method::REFRESH,
    Method::CREATE_PERMISSION,
    Method::CHANNEL_BIND,
    Method::BINDING,
    Method::CONNECT,
    Method::CONNECTION_BIND,
];

fn five_tuple(client: u8) -> FiveTuple {
    FiveTuple {
        transport: if client & 0x80 != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, client % 4)),
            4000 + u16::from(client % 8),
        ),
        server: "192.0.2.1:3478".parse().unwrap(),
    }
}

/// Keeps the NONCE a 401 or 438 carries for its client's address, as a client would.
fn learn_nonce(nonces: &mut HashMap<IpAddr, String>, to: SocketAddr, data: &[u8]) {
    if let Some(n) = Message::parse(data)
        .ok()
        .and_then(|m| m.get::<Nonce>().ok().flatten())
    {
        nonces.insert(to.ip(), n.0.to_owned());
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let start = Instant::now();
    let mut now = start;
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    users.add("bob", REALM, "hunter2").unwrap();
    let key = |user: &str, password: &str| {
        IntegrityKey::long_term(user, REALM, password, PasswordAlgorithm::MD5).unwrap()
    };
    let (alice, bob, dave) = (
        key("alice", "secret"),
        key("bob", "hunter2"),
        key("dave", "pw"),
    );
    let dave_stored = UserKeys::from_stored(
        "dave",
        &UserKeys::stored_key("dave", REALM, "pw", false).unwrap(),
    )
    .unwrap();
    let mut lookups: Vec<(u64, String)> = Vec::new();
    // Every 5-tuple a step can name (the client byte folds onto these).
    let tuples: Vec<FiveTuple> = {
        let mut t: Vec<FiveTuple> = (0..=255u8).map(five_tuple).collect();
        t.sort();
        t.dedup();
        t
    };
    let policy = PeerPolicy::default();
    // Every datagram to a peer goes from a live relay to a peer the policy allows.
    let check = |relays: &[SocketAddr], t: Option<Transmit<&[u8]>>| {
        if let Some(t) = t {
            assert!(relays.contains(&t.local), "relayed from a released socket");
            assert!(
                policy.check(t.remote.ip()).is_ok(),
                "relayed to a denied peer {}",
                t.remote
            );
        }
    };
    let mut core = TurnServer::new(
        TurnConfig {
            realm: REALM.into(),
            user_quota: 3,
            total_quota: 5,
            max_permissions: 4,
            max_channels: 4,
            user_db: true,
            ..TurnConfig::default()
        },
        StunServerConfig::new("192.0.2.1:3478".parse().unwrap()),
        users,
        RestSecrets::default(),
        [9; 32],
        start,
        1_700_000_000,
    );
    let mut nonces: HashMap<IpAddr, String> = HashMap::new();
    let mut relays: Vec<SocketAddr> = Vec::new();
    let mut next_port = 50_000u16;
    let mut refuse = false;
    let mut tid = 0u32;
    for step in steps {
        match step {
            Step::Request {
                client,
                method,
                attrs,
                sha256,
            } => {
                let ft = five_tuple(client);
                let method = METHODS[usize::from(method) % METHODS.len()];
                // Learn a nonce for this client address with an unauthenticated request.
                if !nonces.contains_key(&ft.client.ip()) {
                    let mut buf = [0u8; 64];
                    let req = MessageBuilder::new(
                        &mut buf,
                        MessageType::new(Method::REFRESH, Class::Request),
                        TransactionId([0; 12]),
                    )
                    .unwrap()
                    .finish()
                    .to_vec();
                    let t = core.handle_client(now, ft, &req);
                    check(&relays, t);
                    while let Some(out) = core.poll_output() {
                        if let Output::Transmit(t) = out {
                            learn_nonce(&mut nonces, t.remote, &t.data);
                        }
                    }
                }
                let Some(nonce) = nonces.get(&ft.client.ip()).cloned() else {
                    continue;
                };
                tid += 1;
                let mut t = [0u8; 12];
                t[..4].copy_from_slice(&tid.to_be_bytes());
                let mut buf = vec![0u8; 4096];
                let Ok(mut b) = MessageBuilder::new(
                    &mut buf,
                    MessageType::new(method, Class::Request),
                    TransactionId(t),
                ) else {
                    continue;
                };
                for a in attrs.iter().take(12) {
                    let _ = a.add_to(&mut b);
                }
                // Clients with bit 6 set are bob, with bit 5 dave (from the database), the
                // others alice.
                let (user, md5) = if client & 0x40 != 0 {
                    ("bob", &bob)
                } else if client & 0x20 != 0 {
                    ("dave", &dave)
                } else {
                    ("alice", &alice)
                };
                let ok = b.add(&Username(user)).is_ok()
                    && b.add(&Realm(REALM)).is_ok()
                    && b.add(&Nonce(&nonce)).is_ok()
                    && if sha256 {
                        b.add_message_integrity_sha256(md5).is_ok()
                    } else {
                        b.add_message_integrity(md5).is_ok()
                    };
                if !ok {
                    continue;
                }
                let req = b.finish().to_vec();
                let t = core.handle_client(now, ft, &req);
                check(&relays, t);
            }
            Step::Send { client, peer, data } => {
                let mut buf = vec![0u8; 4096];
                let Ok(mut b) = MessageBuilder::new(
                    &mut buf,
                    MessageType::new(Method::SEND, Class::Indication),
                    TransactionId([1; 12]),
                ) else {
                    continue;
                };
                if b.add(&XorPeerAddress(peer)).is_ok()
                    && b.add(&Data(&data[..data.len().min(1200)])).is_ok()
                {
                    let ind = b.finish().to_vec();
                    let t = core.handle_client(now, five_tuple(client), &ind);
                    check(&relays, t);
                }
            }
            Step::ChannelData {
                client,
                channel,
                data,
            } => {
                let mut buf = vec![0u8; data.len() + 8];
                if let Ok(n) =
                    ChannelData::build(0x4000 | (channel & 0x0FFF), &data, false, &mut buf)
                {
                    let t = core.handle_client(now, five_tuple(client), &buf[..n]);
                    check(&relays, t);
                }
            }
            Step::FromPeer { relay, peer, data } => {
                if let Some(r) = relays
                    .get(usize::from(relay) % relays.len().max(1))
                    .copied()
                {
                    let mut out = vec![0u8; data.len() + RELAY_OVERHEAD];
                    if let Some(t) = core.handle_peer(now, r, peer, &data, &mut out) {
                        assert!(
                            Message::parse(t.data).is_ok() || ChannelData::parse(t.data).is_ok()
                        );
                    }
                }
            }
            Step::Advance { secs } => {
                now += Duration::from_secs(u64::from(secs));
                core.handle_timeout(now);
            }
            Step::RefuseNextRelay => refuse = true,
            Step::AnswerLookups { count, result } => {
                let n = usize::from(count).min(lookups.len());
                for (id, user) in lookups.drain(..n) {
                    let answer = match result % 3 {
                        0 if user == "dave" => UserLookup::Found(Box::new(dave_stored.clone())),
                        0 | 1 => UserLookup::NotFound,
                        _ => UserLookup::Unavailable,
                    };
                    core.user_looked_up(now, id, answer);
                }
            }
        }
        while let Some(out) = core.poll_output() {
            match out {
                Output::Request(Request::AllocateRelay(r)) => {
                    if refuse {
                        refuse = false;
                        core.relay_allocated(now, r.id, Err(RelayError::Exhausted));
                    } else {
                        let addr = SocketAddr::new("192.0.2.1".parse().unwrap(), next_port);
                        next_port = next_port.wrapping_add(2).max(50_000);
                        relays.push(addr);
                        core.relay_allocated(
                            now,
                            r.id,
                            Ok(Relay {
                                addr,
                                reservation_token: None,
                            }),
                        );
                    }
                }
                Output::Request(Request::ReleaseRelay { relay }) => {
                    assert!(relays.contains(&relay), "release of an unknown relay");
                    relays.retain(|r| *r != relay);
                }
                // No fleet here (TurnConfig::fleet_quota is off): never asked.
                Output::Request(Request::ReserveQuota { .. } | Request::ReleaseQuota { .. }) => {
                    panic!("fleet quota asked without a fleet")
                }
                // RFC 6062: a Connect goes only to a peer the policy allows, from a live relay;
                // the harness's driver connects at once.
                Output::Request(Request::ConnectPeer { id, relay, peer }) => {
                    assert!(relays.contains(&relay), "Connect from a released relay");
                    assert!(
                        policy.check(peer.ip()).is_ok(),
                        "Connect to a denied peer {peer}"
                    );
                    core.peer_connected(now, id, true);
                }
                Output::Request(Request::BindPeer { .. } | Request::ClosePeer { .. }) => {}
                Output::Request(Request::LookupUser { id, username }) => {
                    // dave, or a USERNAME among the step's own attributes (the first wins).
                    assert!(lookups.len() < 1024, "lookups are bounded");
                    lookups.push((id, username));
                }
                // A 401 or 438 carries a fresh nonce: use it from now on (nonces go stale
                // when time advances).
                Output::Transmit(t) => learn_nonce(&mut nonces, t.remote, &t.data),
                // Timers are checked in `turn_unauth`; here time moves by `Advance`.
                Output::Timeout(_) => {}
            }
        }
        // Quotas and caps hold: 3 allocations per user, 5 in all, 4 live permissions and
        // channels per allocation.
        let mut per_user: HashMap<&str, usize> = HashMap::new();
        for a in tuples.iter().filter_map(|t| core.allocation(t)) {
            *per_user.entry(a.username()).or_default() += 1;
            assert!(a.permissions().iter().filter(|p| p.expires > now).count() <= 4);
            assert!(a.channels().iter().filter(|c| c.expires > now).count() <= 4);
        }
        assert!(
            per_user.values().all(|&n| n <= 3),
            "user quota: {per_user:?}"
        );
        assert!(
            per_user.values().sum::<usize>() <= 5,
            "total quota: {per_user:?}"
        );
        assert_eq!(per_user.values().sum::<usize>(), core.allocation_count());
    }
});
