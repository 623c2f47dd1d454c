//! The TURN core hosted on natsim: a client behind a symmetric NAT allocates a relay,
//! permits a peer, and exchanges data with it through the relay.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natsim::scripted::Scripted;
use natsim::{Endpoint, Input, LinkConfig, NatConfig, Output, Preset, Topology};
use scenarios::TurnServerEndpoint;
use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::peer_policy::PeerPolicy;
use turn_server::stun::StunServerConfig;
use turn_server::turn::{TurnConfig, TurnServer};

const REALM: &str = "natsim";

/// A minimal TURN client: Allocate (with the 401 round), CreatePermission, one Send
/// indication, then it records Data indications.
struct Client {
    local: SocketAddr,
    server: SocketAddr,
    peer: SocketAddr,
    key: IntegrityKey,
    nonce: Option<String>,
    step: u8,
    relay: Option<SocketAddr>,
    received: Vec<(SocketAddr, Vec<u8>)>,
    out: VecDeque<Output>,
}

impl Client {
    fn request(&mut self, method: Method, add: impl FnOnce(&mut MessageBuilder<'_>)) {
        self.step += 1;
        let mut buf = [0u8; 512];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(method, Class::Request),
            TransactionId([self.step; 12]),
        )
        .unwrap();
        add(&mut b);
        if let Some(n) = &self.nonce {
            b.add(&Username("alice"))
                .unwrap()
                .add(&Realm(REALM))
                .unwrap()
                .add(&Nonce(n))
                .unwrap();
            b.add_message_integrity(&self.key).unwrap();
        }
        b.add_fingerprint().unwrap();
        self.out.push_back(Output::Udp {
            local: self.local,
            remote: self.server,
            data: b.finish().to_vec(),
        });
    }

    fn allocate(&mut self) {
        self.request(Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        });
    }
}

impl Endpoint for Client {
    fn start(&mut self, _now: Instant) {
        self.allocate();
    }

    fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        let Input::Udp { data, .. } = input else {
            return;
        };
        let Ok(m) = Message::parse(data) else { return };
        let mt = m.message_type();
        match (mt.method, mt.class) {
            (Method::ALLOCATE, Class::ErrorResponse) if self.nonce.is_none() => {
                self.nonce = m.get::<Nonce>().unwrap().map(|n| n.0.to_owned());
                self.allocate();
            }
            (Method::ALLOCATE, Class::SuccessResponse) => {
                m.verify_integrity(&self.key).unwrap();
                self.relay = m.get::<XorRelayedAddress>().unwrap().map(|r| r.0);
                let peer = self.peer;
                self.request(Method::CREATE_PERMISSION, |b| {
                    b.add(&XorPeerAddress(peer)).unwrap();
                });
            }
            (Method::CREATE_PERMISSION, Class::SuccessResponse) => {
                let mut buf = [0u8; 128];
                let mut b = MessageBuilder::new(
                    &mut buf,
                    MessageType::new(Method::SEND, Class::Indication),
                    TransactionId([0xee; 12]),
                )
                .unwrap();
                b.add(&XorPeerAddress(self.peer))
                    .unwrap()
                    .add(&Data(b"hello peer"))
                    .unwrap();
                self.out.push_back(Output::Udp {
                    local: self.local,
                    remote: self.server,
                    data: b.finish().to_vec(),
                });
            }
            (Method::DATA, Class::Indication) => {
                let peer = m.get::<XorPeerAddress>().unwrap().unwrap().0;
                let data = m.get::<Data>().unwrap().unwrap().0.to_vec();
                self.received.push((peer, data));
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
fn relayed_exchange_through_a_symmetric_nat() {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    t.nat(
        "nat",
        NatConfig::preset(Preset::Symmetric),
        (home, "192.168.1.1"),
        (internet, &["203.0.113.1"]),
    );
    let client = t.host("client", &[(home, "192.168.1.10")]);
    let turn = t.host("turn", &[(internet, "198.51.100.1")]);
    let peer = t.host("peer", &[(internet, "198.51.100.50")]);
    t.link_all(LinkConfig::with_latency(Duration::from_millis(10)));
    let mut sim = t.build(3).unwrap();

    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    // natsim's public addresses are documentation ranges, which the secure default denies:
    // allow them explicitly, as an operator of a test network would.
    let policy = PeerPolicy {
        allowed: vec![
            "198.51.100.0/24".parse().unwrap(),
            "203.0.113.0/24".parse().unwrap(),
        ],
        ..PeerPolicy::default()
    };
    let core = TurnServer::new(
        TurnConfig {
            realm: REALM.into(),
            peer_policy: policy,
            ..TurnConfig::default()
        },
        StunServerConfig::new("198.51.100.1:3478".parse().unwrap()),
        users,
        RestSecrets::default(),
        [1; 32],
        sim.now(),
        1_700_000_000,
    );
    sim.set_endpoint(
        turn,
        TurnServerEndpoint::new(
            core,
            "198.51.100.1:3478".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        ),
    );
    let echo = Scripted::echoing();
    sim.set_endpoint(peer, echo);
    sim.set_endpoint(
        client,
        Client {
            local: "192.168.1.10:5000".parse().unwrap(),
            server: "198.51.100.1:3478".parse().unwrap(),
            peer: "198.51.100.50:9000".parse().unwrap(),
            key: IntegrityKey::long_term("alice", REALM, "secret", PasswordAlgorithm::MD5).unwrap(),
            nonce: None,
            step: 0,
            relay: None,
            received: Vec::new(),
            out: VecDeque::new(),
        },
    );
    let took = sim
        .run_until(Duration::from_secs(5), |s| {
            !s.endpoint::<Client>(client).unwrap().received.is_empty()
        })
        .expect("data comes back through the relay");
    let c = sim.endpoint::<Client>(client).unwrap();
    assert_eq!(
        c.received,
        vec![(
            "198.51.100.50:9000".parse().unwrap(),
            b"hello peer".to_vec()
        )]
    );
    // The peer saw the relayed address, not the client's.
    let seen = sim.endpoint::<Scripted>(peer).unwrap().datagrams();
    assert_eq!(Some(seen[0].1), c.relay);
    // Client ↔ server is 20 ms each way (two 10 ms links), server ↔ peer 10 ms: Allocate twice
    // (the 401 round) and CreatePermission are 3 × 40 ms, then Send → peer → Data is 60 ms.
    assert_eq!(took, Duration::from_millis(180));
    let stats = sim
        .endpoint::<TurnServerEndpoint>(turn)
        .unwrap()
        .core()
        .stats();
    assert_eq!((stats.packets_to_peers, stats.packets_to_clients), (1, 1));
}
