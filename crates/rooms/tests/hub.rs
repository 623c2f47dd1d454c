//! The hub in virtual time: limits that need the clock (rate, idle), and fleets of hubs on a
//! bus that delivers in one order to all, as Redis does, with instances that die.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rooms::bus::Topic;
use rooms::hub::{Action, CloseReason, ConnId, FleetConfig, Hub, HubConfig};
use rooms::protocol::ServerMessage;
use sans_io::Output;

/// What one hub asked for in a drain.
#[derive(Default)]
struct Drained {
    sent: Vec<(ConnId, ServerMessage)>,
    closed: Vec<(ConnId, CloseReason)>,
    published: Vec<(Topic, String)>,
    timer: Option<Option<Instant>>,
}

fn drain(hub: &mut Hub) -> Drained {
    let mut d = Drained::default();
    while let Some(o) = hub.poll_output() {
        match o {
            Output::Request(Action::Send { conn, text }) => {
                d.sent.push((conn, serde_json::from_str(&text).unwrap()))
            }
            Output::Request(Action::Close { conn, reason }) => d.closed.push((conn, reason)),
            Output::Request(Action::Publish { topic, payload }) => {
                d.published.push((topic, payload))
            }
            Output::Timeout(t) => d.timer = Some(t),
            _ => {}
        }
    }
    d
}

fn codes(d: &Drained) -> Vec<&'static str> {
    d.sent
        .iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::Error { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect()
}

const JOIN: &str = r#"{"type":"join","room":"r1"}"#;

#[test]
fn rate_limit_drops_and_refills() {
    let t0 = Instant::now();
    let config = HubConfig {
        rate: 2.0,
        burst: 3.0,
        ..Default::default()
    };
    let mut hub = Hub::new(config, t0, 0);
    let c = ConnId(1);
    hub.handle_open(t0, c, None);
    for _ in 0..5 {
        hub.handle_text(t0, c, "{}");
    }
    let d = drain(&mut hub);
    // Three taken (each a bad_message), the fourth told once, the fifth dropped silently.
    assert_eq!(
        codes(&d),
        ["bad_message", "bad_message", "bad_message", "rate_limited"]
    );
    // Half a second later one token is back: the join goes through.
    hub.handle_text(t0 + Duration::from_millis(500), c, JOIN);
    let d = drain(&mut hub);
    assert!(matches!(d.sent[0].1, ServerMessage::Peers { .. }));
    assert_eq!(hub.metrics().dropped_rate_limited, 2);
}

#[test]
fn idle_connections_are_closed_joined_ones_are_not() {
    let t0 = Instant::now();
    let config = HubConfig {
        idle_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut hub = Hub::new(config, t0, 0);
    let (idle, joined) = (ConnId(1), ConnId(2));
    hub.handle_open(t0, idle, None);
    hub.handle_open(t0, joined, None);
    hub.handle_text(t0 + Duration::from_secs(1), joined, JOIN);
    let d = drain(&mut hub);
    assert_eq!(d.timer, Some(Some(t0 + Duration::from_secs(10))));
    hub.handle_timeout(t0 + Duration::from_secs(10));
    let d = drain(&mut hub);
    assert_eq!(d.closed, [(idle, CloseReason::Idle)]);
    assert_eq!(hub.connections(), 1);
    // Leaving starts the clock again.
    let t = t0 + Duration::from_secs(20);
    hub.handle_text(t, joined, r#"{"type":"leave"}"#);
    let _ = drain(&mut hub);
    hub.handle_timeout(t + Duration::from_secs(9));
    assert!(drain(&mut hub).closed.is_empty());
    hub.handle_timeout(t + Duration::from_secs(10));
    assert_eq!(drain(&mut hub).closed, [(joined, CloseReason::Idle)]);
}

#[test]
fn tokens_and_turn_credentials() {
    let t0 = Instant::now();
    let unix = 1_800_000_000;
    let config = HubConfig {
        token_secret: Some(b"app".to_vec()),
        turn: Some(rooms::hub::TurnCredentials {
            secret: b"turn-secret".to_vec(),
            urls: vec!["turn:{host}:3478?transport=udp".into()],
            ttl: Duration::from_secs(600),
        }),
        ..Default::default()
    };
    let mut hub = Hub::new(config, t0, unix);
    let c = ConnId(1);
    hub.handle_open(t0, c, Some("turn.example.org".into()));
    let join = |token: &str| format!(r#"{{"type":"join","room":"r1","token":"{token}"}}"#);
    hub.handle_text(t0, c, JOIN);
    hub.handle_text(t0, c, &join(&rooms::token::mint(b"app", "r2", unix + 60)));
    hub.handle_text(t0, c, &join(&rooms::token::mint(b"app", "r1", unix - 1)));
    hub.handle_text(t0, c, &join(&rooms::token::mint(b"other", "r1", unix + 60)));
    let d = drain(&mut hub);
    assert_eq!(codes(&d), ["bad_token"; 4]);
    hub.handle_text(t0, c, &join(&rooms::token::mint(b"app", "r1", unix + 60)));
    let d = drain(&mut hub);
    let ServerMessage::Peers {
        you, ice_servers, ..
    } = &d.sent[0].1
    else {
        panic!("joined: {:?}", d.sent)
    };
    let s = &ice_servers[0];
    assert_eq!(s.urls, ["turn:turn.example.org:3478?transport=udp"]);
    let username = s.username.as_deref().unwrap();
    assert_eq!(username, format!("{}:{you}", unix + 600));
    assert_eq!(
        s.credential.as_deref().unwrap(),
        turn_server::auth::RestSecrets::password(b"turn-secret", username)
    );
}

/// Hubs on one bus: every publish is delivered to every subscriber of its topic in the one
/// order the bus took them (as Redis does), when the test says.
struct Fleet {
    hubs: Vec<Hub>,
    /// Alive hubs (a dead one neither publishes nor receives).
    alive: Vec<bool>,
    queue: VecDeque<(usize, Topic, String)>,
    sent: Vec<Vec<(ConnId, ServerMessage)>>,
    now: Instant,
}

impl Fleet {
    fn new(n: usize, t0: Instant) -> Fleet {
        let hubs = (0..n)
            .map(|i| {
                let config = HubConfig {
                    fleet: Some(FleetConfig::default()),
                    instance: Some(format!("i{i}")),
                    seed: Some(i as u64),
                    ..Default::default()
                };
                Hub::new(config, t0, 0)
            })
            .collect();
        let mut f = Fleet {
            hubs,
            alive: vec![true; n],
            queue: VecDeque::new(),
            sent: vec![Vec::new(); n],
            now: t0,
        };
        for i in 0..n {
            f.hubs[i].handle_bus_up(t0);
        }
        f.settle();
        f
    }

    /// Drains every hub and delivers the bus until nothing moves.
    fn settle(&mut self) {
        loop {
            for i in 0..self.hubs.len() {
                if !self.alive[i] {
                    continue;
                }
                let d = drain(&mut self.hubs[i]);
                self.sent[i].extend(d.sent);
                for (topic, payload) in d.published {
                    self.queue.push_back((i, topic, payload));
                }
            }
            let Some((_, topic, payload)) = self.queue.pop_front() else {
                return;
            };
            for j in 0..self.hubs.len() {
                let to_it = match &topic {
                    Topic::Members => true,
                    Topic::Instance(id) => self.hubs[j].instance() == id,
                };
                if to_it && self.alive[j] {
                    self.hubs[j].handle_bus(self.now, &payload);
                }
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_millis(100);
            for i in 0..self.hubs.len() {
                if self.alive[i] {
                    self.hubs[i].handle_timeout(self.now);
                }
            }
            self.settle();
        }
    }

    fn text(&mut self, hub: usize, conn: ConnId, text: &str) {
        self.hubs[hub].handle_text(self.now, conn, text);
        self.settle();
    }

    fn take(&mut self, hub: usize) -> Vec<(ConnId, ServerMessage)> {
        std::mem::take(&mut self.sent[hub])
    }
}

fn you(sent: &[(ConnId, ServerMessage)]) -> (String, Vec<String>) {
    sent.iter()
        .find_map(|(_, m)| match m {
            ServerMessage::Peers { you, peers, .. } => Some((you.clone(), peers.clone())),
            _ => None,
        })
        .expect("a peers message")
}

#[test]
fn a_fleet_shares_rooms_relays_and_buries_its_dead() {
    let t0 = Instant::now();
    let mut f = Fleet::new(2, t0);
    assert!(!f.hubs[0].is_ready(), "not before the fleet answered");
    f.advance(Duration::from_secs(2));
    assert!(f.hubs.iter().all(Hub::is_ready));
    let (a, b) = (ConnId(1), ConnId(1));
    f.hubs[0].handle_open(f.now, a, None);
    f.hubs[1].handle_open(f.now, b, None);
    f.text(0, a, JOIN);
    let (pa, peers) = you(&f.take(0));
    assert!(peers.is_empty());
    f.text(1, b, JOIN);
    let (pb, peers) = you(&f.take(1));
    assert_eq!(
        peers,
        std::slice::from_ref(&pa),
        "b sees a, who is on the other instance"
    );
    assert_eq!(f.take(0), [(a, ServerMessage::NewPeer { id: pb.clone() })]);
    // b offers to a across the bus; a answers.
    f.text(
        1,
        b,
        &format!(r#"{{"type":"offer","to":"{pa}","sdp":"v=0 b"}}"#),
    );
    assert_eq!(
        f.take(0),
        [(
            a,
            ServerMessage::Offer {
                from: pb.clone(),
                sdp: "v=0 b".into()
            }
        )]
    );
    f.text(
        0,
        a,
        &format!(r#"{{"type":"answer","to":"{pb}","sdp":"v=0 a"}}"#),
    );
    assert_eq!(
        f.take(1),
        [(
            b,
            ServerMessage::Answer {
                from: pa.clone(),
                sdp: "v=0 a".into()
            }
        )]
    );
    // A third instance starts late and learns the room from the snapshots.
    f.hubs.push(Hub::new(
        HubConfig {
            fleet: Some(FleetConfig::default()),
            instance: Some("i2".into()),
            seed: Some(2),
            ..Default::default()
        },
        f.now,
        0,
    ));
    f.alive.push(true);
    f.sent.push(Vec::new());
    let now = f.now;
    f.hubs[2].handle_bus_up(now);
    f.settle();
    f.advance(Duration::from_secs(2));
    assert!(f.hubs[2].is_ready());
    assert_eq!(f.hubs[2].room_members("r1"), [pa.as_str(), pb.as_str()]);
    // Instance 0 dies without a word: within dead_after its peer is gone for the others.
    f.alive[0] = false;
    f.advance(Duration::from_secs(6));
    assert_eq!(
        f.take(1),
        [(b, ServerMessage::RemovePeer { id: pa.clone() })]
    );
    assert_eq!(f.hubs[1].room_members("r1"), [pb.as_str()]);
    assert_eq!(f.hubs[2].room_members("r1"), [pb.as_str()]);
}

#[test]
fn simultaneous_joins_to_a_full_room_are_refused_alike_everywhere() {
    let t0 = Instant::now();
    let mut f = Fleet::new(2, t0);
    for h in &mut f.hubs {
        *h = Hub::new(
            HubConfig {
                fleet: Some(FleetConfig::default()),
                max_room_size: 1,
                instance: Some(h.instance().to_owned()),
                ..Default::default()
            },
            t0,
            0,
        );
        h.handle_bus_up(t0);
    }
    f.settle();
    f.advance(Duration::from_secs(2));
    let (a, b) = (ConnId(1), ConnId(2));
    f.hubs[0].handle_open(f.now, a, None);
    f.hubs[1].handle_open(f.now, b, None);
    // Both joins are on the bus before either comes back.
    let now = f.now;
    f.hubs[0].handle_text(now, a, JOIN);
    f.hubs[1].handle_text(now, b, JOIN);
    f.settle();
    let (first, second) = (f.take(0), f.take(1));
    assert!(matches!(first[0].1, ServerMessage::Peers { .. }));
    assert_eq!(codes_of(&second), ["room_full"]);
    assert_eq!(f.hubs[0].room_members("r1"), f.hubs[1].room_members("r1"));
    assert_eq!(f.hubs[0].room_members("r1").len(), 1);
}

fn codes_of(sent: &[(ConnId, ServerMessage)]) -> Vec<&'static str> {
    sent.iter()
        .filter_map(|(_, m)| match m {
            ServerMessage::Error { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn losing_the_bus_closes_every_connection_and_the_fleet_forgets_them() {
    let t0 = Instant::now();
    let mut f = Fleet::new(2, t0);
    f.advance(Duration::from_secs(2));
    let (a, b) = (ConnId(1), ConnId(2));
    f.hubs[0].handle_open(f.now, a, None);
    f.hubs[1].handle_open(f.now, b, None);
    f.text(0, a, JOIN);
    f.text(1, b, JOIN);
    let (pa, _) = you(&f.take(0));
    let _ = f.take(1);
    let now = f.now;
    f.hubs[0].handle_bus_down(now);
    let d = drain(&mut f.hubs[0]);
    assert_eq!(d.closed, [(a, CloseReason::FleetLost)]);
    assert!(!f.hubs[0].is_ready());
    // Back on the bus: its empty snapshot tells the others at once.
    f.hubs[0].handle_bus_up(now);
    f.settle();
    assert_eq!(f.take(1), [(b, ServerMessage::RemovePeer { id: pa })]);
    f.advance(Duration::from_secs(2));
    assert!(f.hubs[0].is_ready());
}
