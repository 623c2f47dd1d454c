//! The sans-IO signalling hub: connections, rooms, the relay between peers of a room, the
//! limits, and (in a fleet) the replica of every other instance's peers.
//!
//! The hub never touches a socket or a clock. Its driver gives it what happens (a connection
//! opened, a text message arrived, a connection closed, a bus message arrived, the timer
//! fired), each with `now`, and carries out what comes out of
//! [`poll_output`](Hub::poll_output): [`Action::Send`] a text message on a connection,
//! [`Action::Close`] one, [`Action::Publish`] on the bus, and the one timer.
//!
//! ```
//! use std::time::Instant;
//! use rooms::hub::{Action, ConnId, Hub, HubConfig};
//! use sans_io::Output;
//!
//! let now = Instant::now();
//! let mut hub = Hub::new(HubConfig::default(), now, 1_800_000_000);
//! let (a, b) = (ConnId(1), ConnId(2));
//! hub.handle_open(now, a, None);
//! hub.handle_open(now, b, None);
//! hub.handle_text(now, a, r#"{"type":"join","room":"r1"}"#);
//! hub.handle_text(now, b, r#"{"type":"join","room":"r1"}"#);
//!
//! let mut sent = Vec::new();
//! while let Some(o) = hub.poll_output() {
//!     if let Output::Request(Action::Send { conn, text }) = o {
//!         sent.push((conn, text));
//!     }
//! }
//! // a is told it is alone, b that a is there, and a that b came.
//! assert!(sent[0].1.starts_with(r#"{"type":"peers""#) && sent[0].1.contains(r#""peers":[]"#));
//! assert_eq!(sent[1].0, b);
//! assert!(sent[1].1.starts_with(r#"{"type":"peers""#));
//! assert_eq!(sent[2].0, a);
//! assert!(sent[2].1.starts_with(r#"{"type":"new_peer""#));
//! ```

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sans_io::{Output, Outputs};

use crate::bus::{BusMessage, Topic};
use crate::metrics::HubMetrics;
use crate::protocol::{self, ClientMessage, ErrorCode, IceServer, ServerMessage};
use crate::token;

/// The driver's name for one WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// TURN credentials handed to each peer (the TURN REST scheme `turnserver` and coturn check:
/// username `<expiry>:<peer id>`, password base64(HMAC-SHA1(secret, username))).
#[derive(Clone)]
pub struct TurnCredentials {
    /// The secret shared with the TURN server (`static-auth-secret`).
    pub secret: Vec<u8>,
    /// `stun:`/`turn:`/`turns:` URLs; `{host}` in one stands for the host the client reached
    /// this server by (from its `Host` header).
    pub urls: Vec<String>,
    /// How long a credential lasts.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Fleet mode: the hub shares rooms with other instances over a bus.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How often this instance says it is alive.
    pub heartbeat: Duration,
    /// An instance not heard from for this long is dead: its peers leave every room.
    pub dead_after: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            heartbeat: Duration::from_secs(1),
            dead_after: Duration::from_secs(5),
        }
    }
}

/// The hub's limits and settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The most peers in one room.
    pub max_room_size: usize,
    /// The largest client message, in bytes of text.
    pub max_message_size: usize,
    /// Messages a connection may send per second, sustained.
    pub rate: f64,
    /// Messages a connection may send at once (an ICE candidate burst).
    pub burst: f64,
    /// A connection that is in no room for this long is closed.
    pub idle_timeout: Duration,
    /// Joins need a token signed with this secret (`rooms::token`).
    pub token_secret: Option<Vec<u8>>,
    /// TURN credentials for `iceServers`; without them `iceServers` is empty.
    pub turn: Option<TurnCredentials>,
    /// Share rooms with other instances over a bus.
    pub fleet: Option<FleetConfig>,
    /// This instance's id on the bus (random when `None`).
    pub instance: Option<String>,
    /// Seeds the peer ids (random when `None`; tests fix it).
    pub seed: Option<u64>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_room_size: 6,
            max_message_size: 64 * 1024,
            rate: 50.0,
            burst: 200.0,
            idle_timeout: Duration::from_secs(30),
            token_secret: None,
            turn: None,
            fleet: None,
            instance: None,
            seed: None,
        }
    }
}

/// Why the hub closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// In no room for longer than the idle timeout.
    Idle,
    /// The bus to the fleet was lost: the connection's peer is gone for the others.
    FleetLost,
}

impl CloseReason {
    /// The WebSocket close code (RFC 6455 §7.4) and reason text.
    pub fn code(self) -> (u16, &'static str) {
        match self {
            CloseReason::Idle => (1008, "idle: join a room"),
            CloseReason::FleetLost => (1012, "signalling server restarting"),
        }
    }
}

/// What the hub asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Send a text message on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The JSON text.
        text: String,
    },
    /// Close a connection (the hub has forgotten it already).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Publish on the bus (fleet mode only).
    Publish {
        /// Where.
        topic: Topic,
        /// The JSON text of a [`BusMessage`].
        payload: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnState {
    /// In no room, since then.
    Fresh(Instant),
    /// Its join is on the bus.
    Joining { room: String, peer: String },
    /// In a room.
    Joined { room: String, peer: String },
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    /// What `{host}` in TURN URLs becomes for this connection.
    host: Option<String>,
    tokens: f64,
    refilled: Instant,
    /// When the last `rate_limited` error went out (one a second at most).
    limited_told: Option<Instant>,
}

#[derive(Debug)]
struct Member {
    peer: String,
    instance: String,
}

#[derive(Debug)]
struct Instance {
    last_seen: Instant,
    /// It answered our latest hello.
    snapshot: bool,
}

/// The hub (see the [module docs](self)).
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    me: String,
    rng: rand::rngs::StdRng,
    /// Unix seconds at `epoch`, for token expiry and TURN credentials.
    unix_epoch: (Instant, u64),
    conns: HashMap<ConnId, Conn>,
    /// Peers of this instance in a room, by peer id.
    local: HashMap<String, ConnId>,
    /// Every room of the fleet, its members in the order they joined.
    rooms: HashMap<String, Vec<Member>>,
    /// Joins on the bus: the connection of each peer id.
    pending: HashMap<String, ConnId>,
    /// Connections that may go idle, oldest first (entries may be stale).
    fresh: VecDeque<(Instant, ConnId)>,
    /// Other instances (fleet mode).
    instances: HashMap<String, Instance>,
    /// Fleet mode: the bus is up, and since when (our hello).
    bus_up: Option<Instant>,
    ready: bool,
    next_heartbeat: Option<Instant>,
    metrics: HubMetrics,
    out: Outputs<Infallible, Action>,
}

impl Hub {
    /// A hub at `now`, which is Unix second `unix_now`. In fleet mode it takes no joins until
    /// [`handle_bus_up`](Hub::handle_bus_up) and the fleet's snapshots.
    pub fn new(config: HubConfig, now: Instant, unix_now: u64) -> Hub {
        let mut rng = match config.seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s),
            None => rand::rngs::StdRng::from_entropy(),
        };
        let me = config
            .instance
            .clone()
            .unwrap_or_else(|| format!("{:016x}", rng.gen::<u64>()));
        let ready = config.fleet.is_none();
        Hub {
            config,
            me,
            rng,
            unix_epoch: (now, unix_now),
            conns: HashMap::new(),
            local: HashMap::new(),
            pending: HashMap::new(),
            rooms: HashMap::new(),
            fresh: VecDeque::new(),
            instances: HashMap::new(),
            bus_up: None,
            ready,
            next_heartbeat: None,
            metrics: HubMetrics::default(),
            out: Outputs::new(),
        }
    }

    /// This instance's id on the bus.
    pub fn instance(&self) -> &str {
        &self.me
    }

    /// Whether it takes joins: always alone; in a fleet, once it has the fleet's peers.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The counters, with the gauges as of now.
    pub fn metrics(&self) -> HubMetrics {
        let mut m = self.metrics.clone();
        m.connections = self.conns.len() as u64;
        m.rooms = self.rooms.len() as u64;
        m.peers = self.rooms.values().map(|r| r.len() as u64).sum();
        m.local_peers = self.local.len() as u64;
        m.instances = self.instances.len() as u64 + 1;
        m.ready = self.ready;
        m
    }

    /// The peers of `room`, in the order they joined (for tests and the metrics).
    pub fn room_members(&self, room: &str) -> Vec<&str> {
        self.rooms
            .get(room)
            .map(|r| r.iter().map(|m| m.peer.as_str()).collect())
            .unwrap_or_default()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_epoch.1 + now.saturating_duration_since(self.unix_epoch.0).as_secs()
    }

    /// A connection opened; `host` is how the client named this server (its `Host` header,
    /// without the port), for `{host}` in TURN URLs.
    pub fn handle_open(&mut self, now: Instant, conn: ConnId, host: Option<String>) {
        let c = Conn {
            state: ConnState::Fresh(now),
            host,
            tokens: self.config.burst,
            refilled: now,
            limited_told: None,
        };
        self.conns.insert(conn, c);
        self.fresh.push_back((now, conn));
        self.out.timer_moved();
    }

    /// A connection closed (by the client, or by the driver: a write failed, too slow a
    /// reader, no pong). Its peer leaves its room.
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let ConnState::Joined { room, peer } = c.state {
            self.local.remove(&peer);
            let from = self.me.clone();
            self.emit(now, BusMessage::Left { from, room, peer });
        }
        // A join still on the bus is taken back when it comes in (see `joined`).
    }

    /// A text message from a client.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // The token bucket: `rate` a second, up to `burst`.
        let elapsed = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.tokens = (c.tokens + elapsed * self.config.rate).min(self.config.burst);
        c.refilled = now;
        if c.tokens < 1.0 {
            self.metrics.dropped_rate_limited += 1;
            let tell = c
                .limited_told
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if tell {
                c.limited_told = Some(now);
                self.error(
                    conn,
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} messages a second: messages are dropped",
                        self.config.rate
                    ),
                );
            }
            return;
        }
        c.tokens -= 1.0;
        self.metrics.messages_received += 1;
        if text.len() > self.config.max_message_size {
            let max = self.config.max_message_size;
            self.error(
                conn,
                ErrorCode::TooLarge,
                format!("{} bytes: the limit is {max}", text.len()),
            );
            return;
        }
        match protocol::parse_client(text) {
            Ok(m) => self.handle_message(now, conn, m),
            Err((code, message)) => self.error(conn, code, message),
        }
    }

    fn handle_message(&mut self, now: Instant, conn: ConnId, m: ClientMessage) {
        match m {
            ClientMessage::Join { room, token } => self.join(now, conn, room, token),
            ClientMessage::Leave => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match std::mem::replace(&mut c.state, ConnState::Fresh(now)) {
                    ConnState::Joined { room, peer } => {
                        self.local.remove(&peer);
                        self.fresh.push_back((now, conn));
                        self.out.timer_moved();
                        let from = self.me.clone();
                        self.emit(now, BusMessage::Left { from, room, peer });
                    }
                    ConnState::Joining { .. } => {
                        self.fresh.push_back((now, conn));
                        self.out.timer_moved();
                    }
                    // Leaving when in no room: nothing to do (pages leave on unload).
                    fresh @ ConnState::Fresh(_) => c.state = fresh,
                }
            }
            ClientMessage::Offer { to, sdp } => {
                self.relay(conn, to, |from| ServerMessage::Offer { from, sdp }, 0)
            }
            ClientMessage::Answer { to, sdp } => {
                self.relay(conn, to, |from| ServerMessage::Answer { from, sdp }, 1)
            }
            ClientMessage::Candidate { to, candidate } => self.relay(
                conn,
                to,
                |from| ServerMessage::Candidate { from, candidate },
                2,
            ),
        }
    }

    fn join(&mut self, now: Instant, conn: ConnId, room: String, token: Option<String>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !matches!(c.state, ConnState::Fresh(_)) {
            return self.error(
                conn,
                ErrorCode::AlreadyJoined,
                "already in a room: leave first".into(),
            );
        }
        if !protocol::valid_room(&room) {
            return self.error(
                conn,
                ErrorCode::BadRoom,
                "a room name is 1 to 64 of A-Z a-z 0-9 _ -".into(),
            );
        }
        if let Some(secret) = &self.config.token_secret {
            let checked = match &token {
                None => Err(token::TokenError::Missing),
                Some(t) => token::verify(secret, t, &room, self.unix(now)),
            };
            if let Err(e) = checked {
                return self.error(conn, ErrorCode::BadToken, e.to_string());
            }
        }
        if !self.ready {
            return self.error(
                conn,
                ErrorCode::Unavailable,
                "the server is joining its fleet: try again shortly".into(),
            );
        }
        if self.rooms.get(&room).map_or(0, Vec::len) >= self.config.max_room_size {
            return self.room_full(conn);
        }
        let peer = format!("{:016x}", self.rng.gen::<u64>());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Joining {
                room: room.clone(),
                peer: peer.clone(),
            };
        }
        self.pending.insert(peer.clone(), conn);
        let from = self.me.clone();
        self.emit(now, BusMessage::Joined { from, room, peer });
    }

    fn room_full(&mut self, conn: ConnId) {
        let max = self.config.max_room_size;
        self.error(
            conn,
            ErrorCode::RoomFull,
            format!("the room has {max} peers, the most it may have"),
        );
    }

    /// Relays a message from `conn`'s peer to `to`, in its room only.
    fn relay(
        &mut self,
        conn: ConnId,
        to: String,
        make: impl FnOnce(String) -> ServerMessage,
        kind: usize,
    ) {
        let Some(ConnState::Joined { room, peer }) = self.conns.get(&conn).map(|c| &c.state) else {
            return self.error(
                conn,
                ErrorCode::NotJoined,
                "join a room before sending to its peers".into(),
            );
        };
        let target = self
            .rooms
            .get(room)
            .and_then(|r| r.iter().find(|m| m.peer == to))
            .filter(|_| to != *peer);
        let Some(target) = target else {
            let mut shown = to;
            shown.truncate(64);
            return self.error(
                conn,
                ErrorCode::UnknownPeer,
                format!("no peer {shown:?} in room {room:?}"),
            );
        };
        let (room, instance) = (room.clone(), target.instance.clone());
        let message = make(peer.clone());
        self.metrics.relayed[kind] += 1;
        if instance == self.me {
            if let Some(&t) = self.local.get(&to) {
                self.send(t, &message);
            }
        } else {
            let from = self.me.clone();
            self.publish(
                Topic::Instance(instance),
                &BusMessage::Relay {
                    from,
                    room,
                    to,
                    message,
                },
            );
        }
    }

    fn send(&mut self, conn: ConnId, m: &ServerMessage) {
        self.metrics.messages_sent += 1;
        self.out.request(Action::Send {
            conn,
            text: m.to_text(),
        });
    }

    fn error(&mut self, conn: ConnId, code: ErrorCode, message: String) {
        tracing::debug!(conn = conn.0, code = code.as_str(), %message, "refused");
        self.metrics.errors[code.index()] += 1;
        self.send(conn, &ServerMessage::Error { code, message });
    }

    fn publish(&mut self, topic: Topic, m: &BusMessage) {
        self.metrics.bus_published += 1;
        let payload = serde_json::to_string(m).expect("bus messages always serialise");
        self.out.request(Action::Publish { topic, payload });
    }

    /// Membership goes through the bus in a fleet, so every instance applies it in one
    /// order; alone, it applies at once.
    fn emit(&mut self, now: Instant, m: BusMessage) {
        if self.config.fleet.is_some() {
            if self.bus_up.is_some() {
                self.publish(Topic::Members, &m);
            }
        } else {
            self.apply(now, m);
        }
    }

    /// A message from the bus (fleet mode).
    pub fn handle_bus(&mut self, now: Instant, payload: &str) {
        if self.config.fleet.is_none() || self.bus_up.is_none() {
            return;
        }
        match serde_json::from_str::<BusMessage>(payload) {
            Ok(m) => {
                self.metrics.bus_received += 1;
                self.apply(now, m);
            }
            Err(e) => tracing::warn!(error = %e, "a bus message that is not ours: ignored"),
        }
    }

    fn apply(&mut self, now: Instant, m: BusMessage) {
        let from = m.sender().to_owned();
        if from != self.me && self.config.fleet.is_some() {
            let i = self.instances.entry(from.clone()).or_insert(Instance {
                last_seen: now,
                snapshot: false,
            });
            i.last_seen = now;
        }
        match m {
            BusMessage::Hello { .. } if from != self.me => {
                let members = self
                    .rooms
                    .iter()
                    .flat_map(|(room, ms)| {
                        ms.iter()
                            .filter(|m| m.instance == self.me)
                            .map(|m| (room.clone(), m.peer.clone()))
                    })
                    .collect();
                let from = self.me.clone();
                self.publish(Topic::Members, &BusMessage::Snapshot { from, members });
            }
            BusMessage::Snapshot { members, .. } if from != self.me => {
                self.replace_instance(&from, members);
                if let Some(i) = self.instances.get_mut(&from) {
                    i.snapshot = true;
                }
                self.check_ready(now);
            }
            BusMessage::Joined { room, peer, .. } => self.joined(now, from, room, peer),
            BusMessage::Left { room, peer, .. } => self.left(&room, &peer),
            BusMessage::Relay {
                room, to, message, ..
            } if from != self.me => self.relayed(&room, &to, message),
            _ => {}
        }
    }

    /// A join, in the order the bus gave it (alone: at once).
    fn joined(&mut self, now: Instant, instance: String, room: String, peer: String) {
        let mine = instance == self.me;
        let conn = if mine { self.joining(&peer) } else { None };
        let members = self.rooms.entry(room.clone()).or_default();
        if members.len() >= self.config.max_room_size || members.iter().any(|m| m.peer == peer) {
            // Full by the time it came: refused on every instance alike.
            if members.is_empty() {
                self.rooms.remove(&room);
            }
            if let Some(conn) = conn {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.state = ConnState::Fresh(now);
                }
                self.fresh.push_back((now, conn));
                self.out.timer_moved();
                self.room_full(conn);
            }
            return;
        }
        let others: Vec<(String, Option<ConnId>)> = members
            .iter()
            .map(|m| {
                let local = (m.instance == self.me)
                    .then(|| self.local.get(&m.peer).copied())
                    .flatten();
                (m.peer.clone(), local)
            })
            .collect();
        members.push(Member {
            peer: peer.clone(),
            instance,
        });
        if let Some(conn) = conn {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.state = ConnState::Joined {
                    room: room.clone(),
                    peer: peer.clone(),
                };
            }
            self.local.insert(peer.clone(), conn);
            self.metrics.joins += 1;
            tracing::info!(conn = conn.0, %room, %peer, peers = others.len(), "joined");
            let ice_servers = self.ice_servers(now, conn, &peer);
            let peers = others.iter().map(|(p, _)| p.clone()).collect();
            self.send(
                conn,
                &ServerMessage::Peers {
                    you: peer.clone(),
                    peers,
                    ice_servers,
                },
            );
        }
        let news = ServerMessage::NewPeer { id: peer.clone() };
        for c in others.into_iter().filter_map(|(_, c)| c) {
            self.send(c, &news);
        }
        if mine && conn.is_none() {
            // Its connection closed or left while the join was on the bus.
            let from = self.me.clone();
            self.emit(now, BusMessage::Left { from, room, peer });
        }
    }

    /// The connection whose join for `peer` is on the bus, if it still waits for it.
    fn joining(&mut self, peer: &str) -> Option<ConnId> {
        let conn = self.pending.remove(peer)?;
        let c = self.conns.get(&conn)?;
        matches!(&c.state, ConnState::Joining { peer: p, .. } if p == peer).then_some(conn)
    }

    fn left(&mut self, room: &str, peer: &str) {
        let Some(members) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(at) = members.iter().position(|m| m.peer == peer) else {
            return;
        };
        let gone = members.remove(at);
        if gone.instance == self.me {
            self.metrics.leaves += 1;
            tracing::info!(%room, %peer, "left");
        }
        let notify: Vec<ConnId> = members
            .iter()
            .filter(|m| m.instance == self.me)
            .filter_map(|m| self.local.get(&m.peer).copied())
            .collect();
        if members.is_empty() {
            self.rooms.remove(room);
        }
        let m = ServerMessage::RemovePeer { id: peer.into() };
        for c in notify {
            self.send(c, &m);
        }
    }

    /// A relayed message for a peer of ours: delivered only if both are in `room`.
    fn relayed(&mut self, room: &str, to: &str, message: ServerMessage) {
        let sender = match &message {
            ServerMessage::Offer { from, .. }
            | ServerMessage::Answer { from, .. }
            | ServerMessage::Candidate { from, .. } => from.as_str(),
            _ => return,
        };
        let both_in = self
            .rooms
            .get(room)
            .is_some_and(|r| r.iter().any(|m| m.peer == sender) && r.iter().any(|m| m.peer == to));
        let Some(&conn) = self.local.get(to).filter(|_| both_in) else {
            tracing::debug!(%room, %to, "relay for a peer not here or not in that room: dropped");
            return;
        };
        self.send(conn, &message);
    }

    /// What others knew of `instance` becomes `members`; our peers hear who came and went.
    fn replace_instance(&mut self, instance: &str, members: Vec<(String, String)>) {
        let old: Vec<(String, String)> = self
            .rooms
            .iter()
            .flat_map(|(room, ms)| {
                ms.iter()
                    .filter(|m| m.instance == instance)
                    .map(|m| (room.clone(), m.peer.clone()))
            })
            .collect();
        for (room, peer) in &old {
            if !members.contains(&(room.clone(), peer.clone())) {
                self.left(room, peer);
            }
        }
        for (room, peer) in members {
            if old.contains(&(room.clone(), peer.clone())) || !protocol::valid_room(&room) {
                continue;
            }
            let ms = self.rooms.entry(room.clone()).or_default();
            let notify: Vec<ConnId> = ms
                .iter()
                .filter(|m| m.instance == self.me)
                .filter_map(|m| self.local.get(&m.peer).copied())
                .collect();
            ms.push(Member {
                peer: peer.clone(),
                instance: instance.to_owned(),
            });
            let m = ServerMessage::NewPeer { id: peer };
            for c in notify {
                self.send(c, &m);
            }
        }
    }

    fn ice_servers(&self, now: Instant, conn: ConnId, peer: &str) -> Vec<IceServer> {
        let Some(turn) = &self.config.turn else {
            return Vec::new();
        };
        let host = self
            .conns
            .get(&conn)
            .and_then(|c| c.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let expiry = self.unix(now) + turn.ttl.as_secs();
        let username = format!("{expiry}:{peer}");
        let credential = turn_server::auth::RestSecrets::password(&turn.secret, &username);
        let urls = turn
            .urls
            .iter()
            .map(|u| u.replace("{host}", &host))
            .collect();
        vec![IceServer {
            urls,
            username: Some(username),
            credential: Some(credential),
        }]
    }

    /// Fleet mode: the bus is up (again). Clears what others may still hold of this
    /// instance's peers and asks every instance for its own.
    pub fn handle_bus_up(&mut self, now: Instant) {
        if self.config.fleet.is_none() {
            return;
        }
        self.bus_up = Some(now);
        self.instances.clear();
        let from = self.me.clone();
        self.publish(
            Topic::Members,
            &BusMessage::Snapshot {
                from: from.clone(),
                members: Vec::new(),
            },
        );
        self.publish(Topic::Members, &BusMessage::Hello { from });
        self.next_heartbeat = Some(now);
        self.out.timer_moved();
        tracing::info!(instance = %self.me, "on the fleet's bus");
    }

    /// Fleet mode: the bus is lost. Every connection is closed (their peers can no longer be
    /// seen by the fleet's other peers), and joins wait until the bus is back.
    pub fn handle_bus_down(&mut self, _now: Instant) {
        if self.config.fleet.is_none() || self.bus_up.is_none() {
            return;
        }
        tracing::warn!(
            connections = self.conns.len(),
            "lost the fleet's bus: closing every connection"
        );
        self.bus_up = None;
        self.ready = false;
        self.next_heartbeat = None;
        self.instances.clear();
        self.rooms.clear();
        self.local.clear();
        self.pending.clear();
        self.fresh.clear();
        let mut conns: Vec<ConnId> = self.conns.drain().map(|(id, _)| id).collect();
        conns.sort();
        for conn in conns {
            self.out.request(Action::Close {
                conn,
                reason: CloseReason::FleetLost,
            });
        }
        self.out.timer_moved();
    }

    fn check_ready(&mut self, now: Instant) {
        let (Some(fleet), Some(up)) = (&self.config.fleet, self.bus_up) else {
            return;
        };
        // Two heartbeats after our hello every live instance has been heard from; each has
        // answered the hello once it sent its snapshot.
        if !self.ready
            && now >= up + 2 * fleet.heartbeat
            && self.instances.values().all(|i| i.snapshot)
        {
            self.ready = true;
            tracing::info!(
                instances = self.instances.len() + 1,
                "ready: the fleet's peers are known"
            );
        }
    }

    /// The timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(since, conn)) = self.fresh.front() {
            if now < since + self.config.idle_timeout {
                break;
            }
            self.fresh.pop_front();
            let idle = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.state == ConnState::Fresh(since));
            if idle {
                self.conns.remove(&conn);
                self.metrics.idle_closed += 1;
                self.out.request(Action::Close {
                    conn,
                    reason: CloseReason::Idle,
                });
            }
        }
        if let (Some(fleet), Some(beat)) = (self.config.fleet.clone(), self.next_heartbeat) {
            if now >= beat {
                let from = self.me.clone();
                self.publish(Topic::Members, &BusMessage::Heartbeat { from });
                self.next_heartbeat = Some(now + fleet.heartbeat);
            }
            let dead: Vec<String> = self
                .instances
                .iter()
                .filter(|(_, i)| now >= i.last_seen + fleet.dead_after)
                .map(|(id, _)| id.clone())
                .collect();
            for id in dead {
                tracing::warn!(instance = %id, "an instance of the fleet went silent: its peers leave");
                self.instances.remove(&id);
                self.metrics.instances_lost += 1;
                self.replace_instance(&id, Vec::new());
            }
            self.check_ready(now);
        }
        self.out.timer_moved();
    }

    fn next_timeout(&self) -> Option<Instant> {
        let idle = self
            .fresh
            .front()
            .map(|&(since, _)| since + self.config.idle_timeout);
        let fleet = self.config.fleet.as_ref().and_then(|f| {
            let beat = self.next_heartbeat?;
            let dead = self
                .instances
                .values()
                .map(|i| i.last_seen + f.dead_after)
                .min();
            let ready = (!self.ready).then(|| self.bus_up.map(|up| up + 2 * f.heartbeat));
            [Some(beat), dead, ready.flatten()]
                .into_iter()
                .flatten()
                .min()
        });
        [idle, fleet].into_iter().flatten().min()
    }

    /// The next output; see the drain rule of `sans_io`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<Infallible, Action>> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| Output::Timeout(self.next_timeout()))
        })
    }
}

impl sans_io::Core for Hub {
    type Event = Infallible;
    type Request = Action;

    fn poll_output(&mut self) -> Option<Output<Infallible, Action>> {
        Hub::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Hub::handle_timeout(self, now)
    }
}
