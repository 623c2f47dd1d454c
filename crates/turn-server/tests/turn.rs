//! The TURN core, driven directly (sans-IO): authentication, allocations, permissions,
//! channels, relaying, the error codes, quotas, expiry, and the peer-policy attack list.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_codec::attr::*;
use stun_codec::integrity::userhash;
use stun_codec::{
    ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, UserKeys, Users};
use turn_server::peer_policy::PeerPolicy;
use turn_server::stun::StunServerConfig;
use turn_server::turn::{
    FiveTuple, Output, QuotaAnswer, Redirect, Relay, RelayError, RelayRequest, Request, Transport,
    TurnConfig, TurnServer, UserLookup, RELAY_OVERHEAD,
};

/// What the core asked for, relayed packets included, as owned values to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    ToClient {
        five_tuple: FiveTuple,
        data: Vec<u8>,
    },
    ToPeer {
        relay: SocketAddr,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    AllocateRelay(RelayRequest),
    ReleaseRelay {
        relay: SocketAddr,
    },
    LookupUser {
        id: u64,
        username: String,
    },
    ReserveQuota {
        id: u64,
        user: String,
    },
    ReleaseQuota {
        user: String,
    },
    ConnectPeer {
        id: u32,
        relay: SocketAddr,
        peer: SocketAddr,
    },
    BindPeer {
        id: u32,
        client: FiveTuple,
    },
    ClosePeer {
        id: u32,
    },
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        match o {
            Output::Transmit(t) => Out::ToClient {
                five_tuple: FiveTuple {
                    transport: t.transport,
                    client: t.remote,
                    server: t.local,
                },
                data: t.data,
            },
            Output::Request(Request::AllocateRelay(r)) => Out::AllocateRelay(r),
            Output::Request(Request::ReleaseRelay { relay }) => Out::ReleaseRelay { relay },
            Output::Request(Request::LookupUser { id, username }) => {
                Out::LookupUser { id, username }
            }
            Output::Request(Request::ReserveQuota { id, user }) => Out::ReserveQuota { id, user },
            Output::Request(Request::ReleaseQuota { user }) => Out::ReleaseQuota { user },
            Output::Request(Request::ConnectPeer { id, relay, peer }) => {
                Out::ConnectPeer { id, relay, peer }
            }
            Output::Request(Request::BindPeer { id, client }) => Out::BindPeer { id, client },
            Output::Request(Request::ClosePeer { id }) => Out::ClosePeer { id },
            Output::Timeout(_) => unreachable!("Harness::poll keeps the timer"),
        }
    }
}

const REALM: &str = "example.org";
const SERVER: &str = "192.0.2.10:3478";
const PEER: &str = "8.8.8.8:5000";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Client {
    ft: FiveTuple,
    username: String,
    key: IntegrityKey,
    nonce: Option<String>,
    next_tid: u8,
    sha256: Option<[u8; 32]>,
}

struct Harness {
    server: TurnServer,
    now: Instant,
    next_port: u16,
    relayed: Vec<Out>,
    /// The timer as the last drain reported it.
    timer: Option<Instant>,
}

impl Harness {
    fn with(config: TurnConfig, rest: RestSecrets) -> Harness {
        let now = Instant::now();
        let mut users = Users::default();
        users.add("alice", REALM, "secret").unwrap();
        users.add("bob", REALM, "hunter2").unwrap();
        users.add("carol", REALM, "pw").unwrap();
        let config = TurnConfig {
            realm: REALM.into(),
            ..config
        };
        Harness {
            server: TurnServer::new(
                config,
                StunServerConfig::new(a(SERVER)),
                users,
                rest,
                [42; 32],
                now,
                1_700_000_000,
            ),
            now,
            next_port: 50_000,
            relayed: Vec::new(),
            timer: None,
        }
    }

    fn new() -> Harness {
        Harness::with(TurnConfig::default(), RestSecrets::default())
    }

    /// The core's next output; the timer it reports is kept in `timer`.
    fn poll(&mut self) -> Option<Out> {
        loop {
            match self.server.poll_output()? {
                Output::Timeout(t) => self.timer = t,
                o => return Some(Out::from(o)),
            }
        }
    }

    /// The core's timer after a drain (what was drained waits for [`outputs`]).
    fn timeout(&mut self) -> Option<Instant> {
        while let Some(o) = self.poll() {
            self.relayed.push(o);
        }
        self.timer
    }

    fn outputs(&mut self) -> Vec<Out> {
        let mut out = std::mem::take(&mut self.relayed);
        out.extend(std::iter::from_fn(|| self.poll()));
        out
    }

    /// A datagram from `peer` to `relay`, as the driver hands it over.
    fn peer(&mut self, relay: SocketAddr, peer: SocketAddr, data: &[u8]) {
        let mut buf = vec![0u8; data.len() + RELAY_OVERHEAD];
        if let Some(t) = self
            .server
            .handle_peer(self.now, relay, peer, data, &mut buf)
        {
            self.relayed.push(Out::ToClient {
                five_tuple: FiveTuple {
                    transport: t.transport,
                    client: t.remote,
                    server: t.local,
                },
                data: t.data.to_vec(),
            });
        }
    }

    /// A message from a client, its relayed payload (if any) kept for [`outputs`].
    fn client(&mut self, ft: FiveTuple, bytes: &[u8]) {
        if let Some(t) = self.server.handle_client(self.now, ft, bytes) {
            self.relayed.push(Out::ToPeer {
                relay: t.local,
                peer: t.remote,
                data: t.data.to_vec(),
            });
        }
    }

    /// Sends `bytes` and returns what came out, granting relay sockets as a driver would.
    fn send(&mut self, ft: FiveTuple, bytes: &[u8]) -> Vec<Out> {
        self.client(ft, bytes);
        let mut out = std::mem::take(&mut self.relayed);
        while let Some(o) = self.poll() {
            if let Out::AllocateRelay(r) = o {
                let port = self.next_port;
                self.next_port += 2;
                let ip = match r.family {
                    AddressFamily::V4 => "192.0.2.10".parse().unwrap(),
                    AddressFamily::V6 => "2001:db8::10".parse().unwrap(),
                };
                let relay = Relay {
                    addr: SocketAddr::new(ip, port),
                    reservation_token: None,
                };
                self.server.relay_allocated(self.now, r.id, Ok(relay));
                out.push(Out::AllocateRelay(r));
            } else {
                out.push(o);
            }
        }
        out
    }
}

fn client(port: u16, user: &str, password: &str) -> Client {
    Client {
        ft: FiveTuple {
            transport: Transport::Udp,
            client: a(&format!("198.51.100.7:{port}")),
            server: a(SERVER),
        },
        username: user.into(),
        key: IntegrityKey::long_term(user, REALM, password, PasswordAlgorithm::MD5).unwrap(),
        nonce: None,
        next_tid: 0,
        sha256: None,
    }
}

/// The single message sent to the client among `outs`.
fn reply(outs: &[Out]) -> Vec<u8> {
    let msgs: Vec<&Vec<u8>> = outs
        .iter()
        .filter_map(|o| match o {
            Out::ToClient { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 1, "{outs:?}");
    msgs[0].clone()
}

fn code(bytes: &[u8]) -> Option<u16> {
    Message::parse(bytes)
        .unwrap()
        .get::<ErrorCode>()
        .unwrap()
        .map(|e| e.code)
}

impl Client {
    fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId([self.next_tid; 12])
    }

    /// A request with credentials (once a nonce is known) and `add`'s attributes.
    fn request(
        &mut self,
        method: Method,
        tid: TransactionId,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let mut b =
            MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), tid).unwrap();
        add(&mut b);
        if let Some(nonce) = &self.nonce {
            match &self.sha256 {
                Some(hash) => {
                    b.add(&UserHash(*hash)).unwrap();
                }
                None => {
                    b.add(&Username(&self.username)).unwrap();
                }
            }
            b.add(&Realm(REALM)).unwrap().add(&Nonce(nonce)).unwrap();
            if self.sha256.is_some() {
                b.add(&PasswordAlgorithms::new(&[
                    PasswordAlgorithm::SHA256,
                    PasswordAlgorithm::MD5,
                ]))
                .unwrap();
                b.add(&PasswordAlgorithm::SHA256).unwrap();
                b.add_message_integrity_sha256(&self.key).unwrap();
            } else {
                b.add_message_integrity(&self.key).unwrap();
            }
        }
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    /// Sends a request; on 401/438 learns the nonce and retries once.
    fn call(
        &mut self,
        h: &mut Harness,
        method: Method,
        add: impl Fn(&mut MessageBuilder<'_>),
    ) -> Vec<u8> {
        let tid = self.tid();
        let req = self.request(method, tid, &add);
        let resp = reply(&h.send(self.ft, &req));
        if matches!(code(&resp), Some(401 | 438)) {
            let m = Message::parse(&resp).unwrap();
            self.nonce = Some(m.get::<Nonce>().unwrap().unwrap().0.to_owned());
            let tid = self.tid();
            let req = self.request(method, tid, &add);
            return reply(&h.send(self.ft, &req));
        }
        resp
    }

    fn allocate(&mut self, h: &mut Harness) -> SocketAddr {
        let resp = self.call(h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        });
        let m = Message::parse(&resp).unwrap();
        assert_eq!(
            m.message_type().class,
            Class::SuccessResponse,
            "{:?}",
            code(&resp)
        );
        if self.sha256.is_some() {
            m.verify_integrity_sha256(&self.key).unwrap();
        } else {
            m.verify_integrity(&self.key).unwrap();
        }
        m.verify_fingerprint().unwrap();
        assert_eq!(m.get::<Lifetime>().unwrap(), Some(Lifetime(600)));
        assert_eq!(
            m.get::<XorMappedAddress>().unwrap(),
            Some(XorMappedAddress(self.ft.client))
        );
        m.get::<XorRelayedAddress>().unwrap().unwrap().0
    }
}

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

/// The lookups among `outs`.
fn lookups(outs: &[Out]) -> Vec<(u64, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::LookupUser { id, username } => Some((*id, username.clone())),
            _ => None,
        })
        .collect()
}

/// A user as the database stores them (coturn's MD5 `hmackey`).
fn stored(user: &str, password: &str) -> UserKeys {
    UserKeys::from_stored(
        user,
        &UserKeys::stored_key(user, REALM, password, false).unwrap(),
    )
    .unwrap()
}

fn with_user_db() -> Harness {
    Harness::with(
        TurnConfig {
            user_db: true,
            user_cache_ttl: Duration::from_secs(60),
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    )
}

/// The signed request of `c` (its nonce already learnt) and what came out of it.
fn signed(h: &mut Harness, c: &mut Client, method: Method) -> Vec<Out> {
    let tid = c.tid();
    let req = c.request(method, tid, |b| {
        if method == Method::ALLOCATE {
            b.add(&RequestedTransport::UDP).unwrap();
        }
    });
    h.send(c.ft, &req)
}

/// Learns a nonce with an unsigned Allocate.
fn learn_nonce(h: &mut Harness, c: &mut Client) {
    let tid = c.tid();
    let req = c.request(Method::ALLOCATE, tid, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    let resp = reply(&h.send(c.ft, &req));
    assert_eq!(code(&resp), Some(401));
    c.nonce = Some(
        Message::parse(&resp)
            .unwrap()
            .get::<Nonce>()
            .unwrap()
            .unwrap()
            .0
            .to_owned(),
    );
}

#[test]
fn database_users_are_looked_up_once_then_cached() {
    let mut h = with_user_db();
    let mut dave = client(4100, "dave", "pw-of-dave");
    learn_nonce(&mut h, &mut dave);
    // The signed Allocate waits for the lookup: no answer, nothing stored.
    let outs = signed(&mut h, &mut dave, Method::ALLOCATE);
    assert_eq!(lookups(&outs).len(), 1, "{outs:?}");
    let (id, user) = lookups(&outs)[0].clone();
    assert_eq!(user, "dave");
    assert!(!outs.iter().any(|o| matches!(o, Out::ToClient { .. })));
    assert_eq!(h.server.allocation_count(), 0);
    // A retransmission while the lookup is out joins it (no second lookup).
    let again = signed(&mut h, &mut dave, Method::ALLOCATE);
    assert!(lookups(&again).is_empty(), "{again:?}");
    // The answer replays the held requests: the first allocates; the second, on the same
    // 5-tuple while the first waits for its relay, gets the first's answer only.
    h.server.user_looked_up(
        h.now,
        id,
        UserLookup::Found(Box::new(stored("dave", "pw-of-dave"))),
    );
    let mut outs = h.outputs();
    let relay_req = outs
        .iter()
        .find_map(|o| match o {
            Out::AllocateRelay(r) => Some(*r),
            _ => None,
        })
        .expect("Allocate went ahead");
    h.server.relay_allocated(
        h.now,
        relay_req.id,
        Ok(Relay {
            addr: a("192.0.2.10:50000"),
            reservation_token: None,
        }),
    );
    outs.extend(h.outputs());
    let answers: Vec<Option<u16>> = outs
        .iter()
        .filter_map(|o| match o {
            Out::ToClient { data, .. } => Some(code(data)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![None], "{outs:?}");
    assert_eq!(h.server.allocation_count(), 1);
    // Refresh within the cache's lifetime: no lookup.
    let outs = signed(&mut h, &mut dave, Method::REFRESH);
    assert!(lookups(&outs).is_empty());
    assert_eq!(code(&reply(&outs)), None);
    assert_eq!(h.server.stats().user_lookups, 1);
}

#[test]
fn unknown_database_users_get_401_and_wrong_keys_401() {
    let mut h = with_user_db();
    let mut eve = client(4101, "eve", "guess");
    learn_nonce(&mut h, &mut eve);
    let outs = signed(&mut h, &mut eve, Method::ALLOCATE);
    let (id, _) = lookups(&outs)[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::NotFound);
    assert_eq!(code(&reply(&h.outputs())), Some(401));
    // Believed for a while: the next try is answered at once.
    let outs = signed(&mut h, &mut eve, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty());
    assert_eq!(code(&reply(&outs)), Some(401));
    // A user whose stored key is not the password's.
    let mut frank = client(4102, "frank", "wrong");
    learn_nonce(&mut h, &mut frank);
    let (id, _) = lookups(&signed(&mut h, &mut frank, Method::ALLOCATE))[0].clone();
    h.server.user_looked_up(
        h.now,
        id,
        UserLookup::Found(Box::new(stored("frank", "right"))),
    );
    assert_eq!(code(&reply(&h.outputs())), Some(401));
    assert_eq!(h.server.allocation_count(), 0);
    // Static users never reach the database.
    let mut alice = client(4103, "alice", "secret");
    learn_nonce(&mut h, &mut alice);
    let outs = signed(&mut h, &mut alice, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty());
}

#[test]
fn a_forged_nonce_is_never_worth_a_lookup() {
    let mut h = with_user_db();
    let mut mallory = client(4104, "mallory", "x");
    mallory.nonce = Some("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA".into());
    let outs = signed(&mut h, &mut mallory, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty(), "{outs:?}");
    assert_eq!(code(&reply(&outs)), Some(401));
    // Random names under a valid nonce: each lookup spends a challenge token, so a source
    // gets at most its burst of lookups.
    learn_nonce(&mut h, &mut mallory);
    let mut asked = 0;
    for i in 0..200 {
        mallory.username = format!("name-{i}");
        asked += lookups(&signed(&mut h, &mut mallory, Method::ALLOCATE)).len();
    }
    assert!(asked <= 20, "{asked} lookups from one source");
}

#[test]
fn a_database_outage_fails_new_users_with_500_and_keeps_known_ones() {
    let mut h = with_user_db();
    let mut dave = client(4105, "dave", "pw");
    learn_nonce(&mut h, &mut dave);
    let (id, _) = lookups(&signed(&mut h, &mut dave, Method::ALLOCATE))[0].clone();
    h.server
        .user_looked_up(h.now, id, UserLookup::Found(Box::new(stored("dave", "pw"))));
    let outs = h.outputs();
    let r = outs
        .iter()
        .find_map(|o| match o {
            Out::AllocateRelay(r) => Some(*r),
            _ => None,
        })
        .unwrap();
    h.server.relay_allocated(
        h.now,
        r.id,
        Ok(Relay {
            addr: a("192.0.2.10:50002"),
            reservation_token: None,
        }),
    );
    assert_eq!(code(&reply(&h.outputs())), None);
    // The cache entry ages out; the database is down when dave refreshes: he keeps his key.
    h.now += Duration::from_secs(61);
    let outs = signed(&mut h, &mut dave, Method::REFRESH);
    let (id, _) = lookups(&outs)[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::Unavailable);
    assert_eq!(
        code(&reply(&h.outputs())),
        None,
        "Refresh served from the kept key"
    );
    // A user never seen: 500 (Server Error), signed by nobody.
    let mut gina = client(4106, "gina", "pw");
    learn_nonce(&mut h, &mut gina);
    let (id, _) = lookups(&signed(&mut h, &mut gina, Method::ALLOCATE))[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::Unavailable);
    assert_eq!(code(&reply(&h.outputs())), Some(500));
    // A lookup that never comes back is given up at its deadline, with 500 too.
    let mut hal = client(4107, "hal", "pw");
    learn_nonce(&mut h, &mut hal);
    assert_eq!(
        lookups(&signed(&mut h, &mut hal, Method::ALLOCATE)).len(),
        1
    );
    let deadline = h.timeout().expect("a lookup deadline");
    assert!(deadline <= h.now + Duration::from_secs(5));
    h.now = deadline;
    h.server.handle_timeout(h.now);
    assert_eq!(code(&reply(&h.outputs())), Some(500));
    assert_eq!(h.server.stats().user_lookup_failures, 3);
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn reconfigure_keeps_allocations_and_removed_users_fail_their_next_refresh() {
    let mut h = Harness::new();
    let mut alice = client(4108, "alice", "secret");
    let mut bob = client(4109, "bob", "hunter2");
    alice.allocate(&mut h);
    bob.allocate(&mut h);
    // bob is removed; the quota goes down to what is live.
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    h.server.reconfigure(
        TurnConfig {
            realm: REALM.into(),
            total_quota: 2,
            ..TurnConfig::default()
        },
        users,
        RestSecrets::default(),
    );
    assert_eq!(h.server.allocation_count(), 2, "nothing dropped");
    let outs = signed(&mut h, &mut bob, Method::REFRESH);
    assert_eq!(code(&reply(&outs)), Some(401), "bob is gone");
    let outs = signed(&mut h, &mut alice, Method::REFRESH);
    assert_eq!(code(&reply(&outs)), None, "alice is not");
    // The new quota holds for new allocations.
    let mut carol = client(4110, "alice", "secret");
    let resp = carol.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(486));
}

#[test]
fn draining_refuses_allocations_and_keeps_the_live_ones() {
    let mut h = Harness::new();
    let mut alice = client(4111, "alice", "secret");
    alice.allocate(&mut h);
    h.server.drain();
    assert!(h.server.is_draining());
    let mut bob = client(4112, "bob", "hunter2");
    let resp = bob.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(403), "coturn's answer while draining");
    // alice's allocation goes on: Refresh works, and a Refresh 0 ends it.
    assert_eq!(
        code(&reply(&signed(&mut h, &mut alice, Method::REFRESH))),
        None
    );
    assert_eq!(h.server.stats().refused_draining, 1);
    assert_eq!(h.server.allocation_count(), 1);
}

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

/// The XOR-RELAYED-ADDRESSes of a success response.
fn relayed(resp: &[u8]) -> Vec<SocketAddr> {
    Message::parse(resp)
        .unwrap()
        .get_all::<XorRelayedAddress>()
        .map(|r| r.unwrap().0)
        .collect()
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

/// The ALTERNATE-SERVER of a 300 answer, checked to be signed by the client's key.
fn alternate_of(c: &Client, resp: &[u8]) -> Option<SocketAddr> {
    let m = Message::parse(resp).unwrap();
    if code(resp) != Some(300) {
        return None;
    }
    m.verify_integrity(&c.key)
        .expect("a signed 300 (RFC 8489 §10)");
    Some(
        m.get::<AlternateServer>()
            .unwrap()
            .expect("ALTERNATE-SERVER")
            .0,
    )
}

#[test]
fn alternate_servers_always_in_turn_or_only_while_draining() {
    let (x, y, z6) = (
        a("203.0.113.1:3478"),
        a("203.0.113.2:3478"),
        a("[2001:db8::1]:3478"),
    );
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![x, z6, y],
            tls_alternate_servers: vec![a("203.0.113.9:5349")],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let allocate = |h: &mut Harness, c: &mut Client| {
        c.call(h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })
    };
    // In turn, of the client's family only.
    let mut got = Vec::new();
    for port in 0..4 {
        let mut c = client(4200 + port, "alice", "secret");
        let resp = allocate(&mut h, &mut c);
        got.push(alternate_of(&c, &resp).expect("redirected"));
    }
    assert_eq!(got, vec![x, y, x, y]);
    // TLS clients get the TLS list.
    let mut t = client(4210, "alice", "secret");
    t.ft.transport = Transport::Tls;
    let resp = allocate(&mut h, &mut t);
    assert_eq!(alternate_of(&t, &resp), Some(a("203.0.113.9:5349")));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.stats().redirected, 5);

    // A server that finds itself in the list (a fleet naming all its members) keeps clients.
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![a(SERVER), x],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    client(4211, "alice", "secret").allocate(&mut h);

    // Only while draining, to the others.
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![a(SERVER), x],
            redirect: Redirect::WhenDraining,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    client(4212, "alice", "secret").allocate(&mut h);
    h.server.drain();
    let mut c = client(4213, "alice", "secret");
    let resp = allocate(&mut h, &mut c);
    assert_eq!(alternate_of(&c, &resp), Some(x), "instead of 403");
}

/// The quota asked for among `outs`.
fn quota_asked(outs: &[Out]) -> Option<(u64, String)> {
    outs.iter().find_map(|o| match o {
        Out::ReserveQuota { id, user } => Some((*id, user.clone())),
        _ => None,
    })
}

#[test]
fn fleet_quota_is_asked_before_the_relay_and_given_back_at_the_end() {
    let mut h = Harness::with(
        TurnConfig {
            fleet_quota: true,
            user_quota: 1,
            ..TurnConfig::default()
        },
        RestSecrets::new(["north"]),
    );
    let allocate = |h: &mut Harness, c: &mut Client| -> Vec<Out> {
        let _ = c.call(h, Method::REFRESH, |_| {}); // learn a nonce
        signed(h, c, Method::ALLOCATE)
    };
    // Asked of the fleet, for the user part of a REST name; no relay until it is granted.
    let user = format!("{}:dave", 1_700_000_000u64 + 3600);
    let password = RestSecrets::password(b"north", &user);
    let mut c = client(4300, &user, &password);
    let outs = allocate(&mut h, &mut c);
    let (id, who) = quota_asked(&outs).expect("ReserveQuota");
    assert_eq!(who, "dave");
    assert!(!outs.iter().any(|o| matches!(o, Out::AllocateRelay(_))));
    h.server.quota_reserved(h.now, id, QuotaAnswer::Granted);
    let outs = h.outputs();
    let Some(Out::AllocateRelay(r)) = outs.first().cloned() else {
        panic!("{outs:?}")
    };
    h.server.relay_allocated(
        h.now,
        r.id,
        Ok(Relay {
            addr: a("192.0.2.10:52000"),
            reservation_token: None,
        }),
    );
    assert_eq!(code(&reply(&h.outputs())), None);
    // The local counts do not decide: a second dave is asked of the fleet too.
    let mut d = client(4301, &user, &password);
    let (id2, _) = quota_asked(&allocate(&mut h, &mut d)).expect("asked again");
    h.server.quota_reserved(h.now, id2, QuotaAnswer::Refused);
    assert_eq!(code(&reply(&h.outputs())), Some(486));
    // The end of the allocation gives the quota back.
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |b| {
        b.add(&Lifetime(0)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    assert!(
        outs.contains(&Out::ReleaseQuota {
            user: "dave".into()
        }),
        "{outs:?}"
    );
    // The fleet's store down: the worker's own counts decide (user_quota 1, none live).
    let mut e = client(4302, "alice", "secret");
    let (id3, _) = quota_asked(&allocate(&mut h, &mut e)).unwrap();
    h.server
        .quota_reserved(h.now, id3, QuotaAnswer::Unavailable);
    assert!(matches!(h.outputs().first(), Some(Out::AllocateRelay(_))));
    // An Allocate given up while its quota is asked: a grant that comes later goes back.
    let mut f = client(4303, "bob", "hunter2");
    let (id4, _) = quota_asked(&allocate(&mut h, &mut f)).unwrap();
    h.now += Duration::from_secs(11);
    h.server.handle_timeout(h.now);
    let _ = h.outputs();
    h.server.quota_reserved(h.now, id4, QuotaAnswer::Granted);
    assert_eq!(h.outputs(), vec![Out::ReleaseQuota { user: "bob".into() }]);
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
