//! TCP relaying (RFC 6062): allocations whose relayed address is a TCP one, Connect (the
//! server opens a connection to a peer, §5.2), ConnectionAttempt (a peer connected to the
//! relayed address, §5.3), and ConnectionBind (a new client connection takes one of those
//! peer connections, §5.4; from then on it carries the peer's bytes, unframed).
//!
//! The core decides; the driver opens, accepts, splices and closes the TCP connections:
//! [`Request::ConnectPeer`] → [`TurnServer::peer_connected`]; an accepted peer goes through
//! [`TurnServer::peer_connection_incoming`]; a bound pair is [`Request::BindPeer`]; anything
//! the core ends goes as [`Request::ClosePeer`]; a bound pair also ends with its client's data
//! connection, and an unbound one at its 30 s deadline.
//! Every peer address passes the same peer policy as UDP relaying, on Connect and on incoming
//! connections alike (coturn's Connect to 169.254.169.254 and to ULA ranges was a 2026
//! advisory).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_codec::attr::{ConnectionId, XorPeerAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

use super::request::Context;
use super::{FiveTuple, Reject, Request, TurnServer};

/// How long a peer connection waits for its ConnectionBind (RFC 6062 §5.2, §5.3: 30 s).
pub(super) const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the core waits for the driver's answer to a Connect (the driver gives up at
/// 30 s, RFC 6062 §5.2's least; this only bounds a driver that never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(35);
/// Peer connections (connecting, waiting for their bind, or bound) per allocation.
pub(super) const MAX_PER_ALLOCATION: usize = 64;

#[derive(Debug)]
enum State {
    /// Connect asked; the answer goes to this request.
    Connecting(Box<Context>),
    /// Connected (or accepted), waiting for a ConnectionBind.
    Pending,
    /// Bound to this client data connection.
    Bound(FiveTuple),
}

#[derive(Debug)]
struct PeerConnection {
    /// The allocation's control connection.
    owner: FiveTuple,
    peer: SocketAddr,
    state: State,
    /// When it is given up, while connecting or waiting for its bind.
    until: Instant,
}

/// The peer connections of every TCP allocation, by CONNECTION-ID.
#[derive(Debug, Default)]
pub(super) struct PeerConnections {
    by_id: HashMap<u32, PeerConnection>,
    /// Every deadline set (`until`), earliest first; one no longer a connection's `until` is
    /// skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl PeerConnections {
    fn count(&self, owner: FiveTuple) -> usize {
        self.by_id.values().filter(|c| c.owner == owner).count()
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    fn insert(&mut self, id: u32, c: PeerConnection) {
        self.deadlines.push(Reverse((c.until, id)));
        self.by_id.insert(id, c);
    }

    /// The ids of an allocation's connections (it is gone: they all close).
    pub(super) fn of(&self, owner: FiveTuple) -> Vec<u32> {
        self.by_id
            .iter()
            .filter(|(_, c)| c.owner == owner)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The connection a client data connection is bound to.
    fn bound_to(&self, data: FiveTuple) -> Option<u32> {
        self.by_id
            .iter()
            .find(|(_, c)| matches!(c.state, State::Bound(d) if d == data))
            .map(|(id, _)| *id)
    }
}

impl TurnServer {
    /// A fresh CONNECTION-ID: unpredictable (a ConnectionBind is authenticated, but the id
    /// should not be guessable either), never 0, not in use.
    fn connection_id(&mut self) -> u32 {
        loop {
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.id_key)
                .expect("any key length");
            hmac::Mac::update(&mut mac, &self.next_id.to_be_bytes());
            self.next_id += 1;
            let out = hmac::Mac::finalize(mac).into_bytes();
            let id = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
            if id != 0 && !self.tcp.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// RFC 6062 §5.2: Connect on a TCP allocation's control connection.
    pub(super) fn connect(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
    ) -> Result<(), Reject> {
        let ft = cx.ft;
        let relay = self.relays_of(ft, Some(true))?; // a UDP allocation connects nothing
        let Ok(Some(XorPeerAddress(peer))) = msg.get::<XorPeerAddress>() else {
            return Err(Reject::BadRequest);
        };
        // The same checks as every UDP path: family (443) and peer policy (403).
        self.check_peer(relay, peer)?;
        if self
            .tcp
            .by_id
            .values()
            .any(|c| c.owner == ft && c.peer == peer)
        {
            return Err(Reject::ConnectionAlreadyExists);
        }
        if self.tcp.count(ft) >= MAX_PER_ALLOCATION {
            return Err(Reject::InsufficientCapacity);
        }
        let Some(local) = super::allocation::relay_for(relay, peer) else {
            return Err(Reject::PeerAddressFamilyMismatch);
        };
        // A Connect permits the peer, as a CreatePermission would (its data may then come in);
        // with no room for the permission it fails as ChannelBind does (508).
        let until = now + self.config.permission_lifetime;
        let max = self.config.max_permissions;
        let permitted = self
            .allocations
            .update(&ft, now, |a| a.permit(peer.ip(), until, now, max))
            .ok_or(Reject::AllocationMismatch)?;
        if !permitted {
            return Err(Reject::InsufficientCapacity);
        }
        let id = self.connection_id();
        self.tcp.insert(
            id,
            PeerConnection {
                owner: ft,
                peer,
                state: State::Connecting(Box::new(cx.clone())),
                until: now + CONNECT_TIMEOUT,
            },
        );
        self.out.request(Request::ConnectPeer {
            id,
            relay: local,
            peer,
        });
        Ok(())
    }

    /// The driver's answer to [`Request::ConnectPeer`]: connected (the Connect succeeds with
    /// its CONNECTION-ID, and the connection waits 30 s for a ConnectionBind) or not (447).
    pub fn peer_connected(&mut self, now: Instant, id: u32, connected: bool) {
        self.out.timer_moved();
        let Some(c) = self.tcp.by_id.get_mut(&id) else {
            if connected {
                self.out.request(Request::ClosePeer { id });
            }
            return;
        };
        let cx = match std::mem::replace(&mut c.state, State::Pending) {
            State::Connecting(cx) => cx,
            answered => {
                c.state = answered;
                return;
            }
        };
        if !connected {
            self.tcp.by_id.remove(&id);
            self.stats.tcp_connect_failures += 1;
            self.error(&cx, Reject::ConnectionTimeoutOrFailure);
            return;
        }
        c.until = now + BIND_TIMEOUT;
        self.tcp.deadlines.push(Reverse((c.until, id)));
        self.respond(&cx, Class::SuccessResponse, |b| {
            b.add(&ConnectionId(id))?;
            Ok(())
        });
        self.stats.tcp_connections += 1;
    }

    /// A peer connected to the relayed address `relay` from `peer` (RFC 6062 §5.3): accepted
    /// if the allocation is a TCP one, permits the peer's IP and the policy allows it; the
    /// client is told with a ConnectionAttempt indication. `None`: close it at once.
    #[must_use = "None means the connection must be closed"]
    pub fn peer_connection_incoming(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Option<u32> {
        self.out.timer_moved();
        let a = self.allocations.by_relay_mut(&relay)?;
        let owner = a.five_tuple;
        if !a.tcp || a.expires <= now || !a.permits(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return None;
        }
        if self.config.peer_policy.check(peer.ip()).is_err() {
            self.stats.dropped_peer_policy += 1;
            return None;
        }
        if self.tcp.count(owner) >= MAX_PER_ALLOCATION {
            return None;
        }
        let id = self.connection_id();
        self.tcp.insert(
            id,
            PeerConnection {
                owner,
                peer,
                state: State::Pending,
                until: now + BIND_TIMEOUT,
            },
        );
        let mut buf = [0u8; 96];
        let tid = TransactionId(super::data_indication_tid(self.next_id, now, self.epoch));
        self.next_id += 1;
        let built = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication),
            tid,
        )
        .and_then(|mut b| {
            b.add(&XorPeerAddress(peer))?.add(&ConnectionId(id))?;
            Ok(b.finish().to_vec())
        });
        if let Ok(ind) = built {
            self.send_to_client(owner, ind);
        }
        self.stats.tcp_connections += 1;
        Some(id)
    }

    /// RFC 6062 §5.4: ConnectionBind on a new client connection (not the control connection:
    /// it has no allocation), by the allocation's own user, for a peer connection waiting for
    /// its bind. The success response is sent, then the driver splices the two.
    pub(super) fn connection_bind(
        &mut self,
        cx: &Context,
        msg: &Message<'_>,
        username: &str,
    ) -> Result<(), Reject> {
        let ft = cx.ft;
        if !ft.transport.is_stream() || self.allocations.get(&ft).is_some() {
            return Err(Reject::BadRequest);
        }
        let Ok(Some(ConnectionId(id))) = msg.get::<ConnectionId>() else {
            return Err(Reject::BadRequest);
        };
        let Some(c) = self.tcp.by_id.get(&id) else {
            return Err(Reject::BadRequest);
        };
        // Only the allocation's user may take its connections ("the same credentials as
        // for the control connection", §4.3); to anyone else the id is unknown.
        let owner_ok = self
            .allocations
            .get(&c.owner)
            .is_some_and(|a| *a.username == *username);
        if !owner_ok || !matches!(c.state, State::Pending) {
            return Err(Reject::BadRequest);
        }
        if self.tcp.bound_to(ft).is_some() {
            return Err(Reject::BadRequest);
        }
        if let Some(c) = self.tcp.by_id.get_mut(&id) {
            c.state = State::Bound(ft);
        }
        self.respond(cx, Class::SuccessResponse, |_| Ok(()));
        self.out.request(Request::BindPeer { id, client: ft });
        Ok(())
    }

    /// Closes every peer connection of `owner` (its allocation is gone).
    pub(super) fn close_peer_connections(&mut self, owner: FiveTuple) {
        for id in self.tcp.of(owner) {
            self.tcp.by_id.remove(&id);
            self.out.request(Request::ClosePeer { id });
        }
    }

    /// A client connection closed: if it was a data connection, its peer goes too.
    pub(super) fn data_connection_closed(&mut self, ft: FiveTuple) {
        if let Some(id) = self.tcp.bound_to(ft) {
            self.tcp.by_id.remove(&id);
            self.out.request(Request::ClosePeer { id });
        }
    }

    /// Connects that got no answer and peer connections never bound, due by `now`.
    pub(super) fn expire_peer_connections(&mut self, now: Instant) {
        while let Some(&Reverse((t, id))) = self.tcp.deadlines.peek() {
            if t > now {
                break;
            }
            self.tcp.deadlines.pop();
            let due = self
                .tcp
                .by_id
                .get(&id)
                .is_some_and(|c| c.until == t && !matches!(c.state, State::Bound(_)));
            if !due {
                continue; // bound, gone, or given a later deadline since
            }
            if let Some(c) = self.tcp.by_id.remove(&id) {
                if let State::Connecting(cx) = c.state {
                    self.stats.tcp_connect_failures += 1;
                    self.error(&cx, Reject::ConnectionTimeoutOrFailure);
                }
                self.out.request(Request::ClosePeer { id });
            }
        }
    }
}
