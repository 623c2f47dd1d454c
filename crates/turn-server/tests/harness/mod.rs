//! The TURN core's test harness, shared by the test binaries that drive it directly
//! (sans-IO): a client with long-term credentials, a driver that grants relay sockets, and
//! the core's outputs as owned values to compare.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Instant;

use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::stun::StunServerConfig;
use turn_server::turn::{
    FiveTuple, Output, Relay, RelayRequest, Request, Transport, TurnConfig, TurnServer,
    RELAY_OVERHEAD,
};

/// What the core asked for, relayed packets included, as owned values to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
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

pub const REALM: &str = "example.org";
pub const SERVER: &str = "192.0.2.10:3478";
pub const PEER: &str = "8.8.8.8:5000";

pub fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub struct Client {
    pub ft: FiveTuple,
    pub username: String,
    pub key: IntegrityKey,
    pub nonce: Option<String>,
    pub next_tid: u8,
    pub sha256: Option<[u8; 32]>,
}

pub struct Harness {
    pub server: TurnServer,
    pub now: Instant,
    pub next_port: u16,
    pub relayed: Vec<Out>,
    /// The timer as the last drain reported it.
    pub timer: Option<Instant>,
}

impl Harness {
    pub fn with(config: TurnConfig, rest: RestSecrets) -> Harness {
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

    pub fn new() -> Harness {
        Harness::with(TurnConfig::default(), RestSecrets::default())
    }

    /// The core's next output; the timer it reports is kept in `timer`.
    pub fn poll(&mut self) -> Option<Out> {
        loop {
            match self.server.poll_output()? {
                Output::Timeout(t) => self.timer = t,
                o => return Some(Out::from(o)),
            }
        }
    }

    /// The core's timer after a drain (what was drained waits for [`outputs`]).
    pub fn timeout(&mut self) -> Option<Instant> {
        while let Some(o) = self.poll() {
            self.relayed.push(o);
        }
        self.timer
    }

    pub fn outputs(&mut self) -> Vec<Out> {
        let mut out = std::mem::take(&mut self.relayed);
        out.extend(std::iter::from_fn(|| self.poll()));
        out
    }

    /// A datagram from `peer` to `relay`, as the driver hands it over.
    pub fn peer(&mut self, relay: SocketAddr, peer: SocketAddr, data: &[u8]) {
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
    pub fn client(&mut self, ft: FiveTuple, bytes: &[u8]) {
        if let Some(t) = self.server.handle_client(self.now, ft, bytes) {
            self.relayed.push(Out::ToPeer {
                relay: t.local,
                peer: t.remote,
                data: t.data.to_vec(),
            });
        }
    }

    /// Sends `bytes` and returns what came out, granting relay sockets as a driver would.
    pub fn send(&mut self, ft: FiveTuple, bytes: &[u8]) -> Vec<Out> {
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

pub fn client(port: u16, user: &str, password: &str) -> Client {
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
pub fn reply(outs: &[Out]) -> Vec<u8> {
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

pub fn code(bytes: &[u8]) -> Option<u16> {
    Message::parse(bytes)
        .unwrap()
        .get::<ErrorCode>()
        .unwrap()
        .map(|e| e.code)
}

impl Client {
    pub fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId([self.next_tid; 12])
    }

    /// A request with credentials (once a nonce is known) and `add`'s attributes.
    pub fn request(
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
    pub fn call(
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

    pub fn allocate(&mut self, h: &mut Harness) -> SocketAddr {
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

/// The signed request of `c` (its nonce already learnt) and what came out of it.
pub fn signed(h: &mut Harness, c: &mut Client, method: Method) -> Vec<Out> {
    let tid = c.tid();
    let req = c.request(method, tid, |b| {
        if method == Method::ALLOCATE {
            b.add(&RequestedTransport::UDP).unwrap();
        }
    });
    h.send(c.ft, &req)
}

/// Learns a nonce with an unsigned Allocate.
pub fn learn_nonce(h: &mut Harness, c: &mut Client) {
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

/// The XOR-RELAYED-ADDRESSes of a success response.
pub fn relayed(resp: &[u8]) -> Vec<SocketAddr> {
    Message::parse(resp)
        .unwrap()
        .get_all::<XorRelayedAddress>()
        .map(|r| r.unwrap().0)
        .collect()
}
