//! The sans-IO TURN server core (RFC 8656) with the STUN Binding server beside it.
//!
//! It shows the face of every core of the stack (the `sans-io` crate). Inputs, each with
//! `now`: datagrams or stream frames from clients ([`TurnServer::handle_client`]), datagrams
//! arriving on relayed addresses ([`TurnServer::handle_peer`]), the driver's answer to a relay
//! socket request ([`TurnServer::relay_allocated`]), a closed connection, and timeouts.
//! Outputs come from [`TurnServer::poll_output`]: messages to clients as [`Transmit`]s,
//! requests to bind or release relay sockets ([`Request`]) — so quotas, port exhaustion and
//! policy are testable without sockets, and natsim can host the same core — and last the
//! timer. Relayed packets are the fast path: they come back from the input call itself,
//! borrowed, never queued or copied.
//!
//! Timers do not walk the allocations: every expiry (allocation, permission, channel, the
//! reserve of an expired channel number) sits in one heap, and a pending Allocate's deadline
//! in a queue in arrival order.
//!
//! Nothing is stored for a client before its request authenticates: a request without valid
//! credentials gets a 401 (a stale or foreign nonce with valid credentials a 438) carrying a
//! fresh stateless nonce ([`crate::auth::Nonces`]); these answers are rate-limited per source.
//! Later requests on an allocation must come from the user who made it (else 441), and an
//! allocation past its lifetime is gone (437) even before its timer fires.

mod allocation;
mod bucket;
mod limiter;
mod lookup;
mod reject;
mod request;
mod tcp;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use allocation::Allocations;
pub use allocation::{Allocation, ChannelBinding, FiveTuple, Permission};
use bucket::TokenBucket;
pub use lookup::UserLookup;
use lookup::{Lookups, UserCache};
use reject::Reject;
pub use sans_io::{Transmit, Transport};

use crate::auth::{Nonces, RestSecrets, Users};
use crate::peer_policy::PeerPolicy;
use crate::stun::{StunServer, StunServerConfig};
use sans_io::{Outputs, Receive};
use stun_codec::attr::{AddressFamily, ChannelNumber, Data, XorPeerAddress};
use stun_codec::{
    demux, ChannelData, Class, Message, MessageBuilder, MessageType, Method, PacketKind,
    TransactionId,
};

/// Configuration of the TURN core.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// REALM (RFC 8489 §14.9).
    pub realm: String,
    /// SOFTWARE in responses, if any.
    pub software: Option<String>,
    /// Lifetime granted when the client asks for none (RFC 8656 §7.2: 600 s).
    pub default_lifetime: Duration,
    /// Longest lifetime granted (coturn's `max-allocate-lifetime`, 3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime (RFC 8656 §9: 300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (RFC 8656 §12: 600 s).
    pub channel_lifetime: Duration,
    /// How long a nonce stays fresh before 438.
    pub nonce_lifetime: Duration,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
    /// Allocations per user (0: unlimited).
    pub user_quota: usize,
    /// Allocations in all (0: unlimited).
    pub total_quota: usize,
    /// Which peers relays may talk to.
    pub peer_policy: PeerPolicy,
    /// Families the driver can relay (REQUESTED-ADDRESS-FAMILY outside them gets 440).
    pub relay_families: Vec<AddressFamily>,
    /// Bandwidth per allocation in bytes per second, both directions together (coturn's
    /// `max-bps`); 0 for unlimited. Packets beyond it are dropped.
    pub max_bps: u64,
    /// FINGERPRINT in every response (coturn's `fingerprint`), not only when the request has
    /// one.
    pub fingerprint: bool,
    /// 401/438 answers per second per source address (beyond, requests are dropped).
    pub challenge_rate: u32,
    /// Burst of 401/438 answers a source may get at once.
    pub challenge_burst: u32,
    /// A STUN server only (the `stunserver` program): Binding requests are answered, every
    /// other message is left to the STUN server (400 for a request it does not know, like
    /// Allocate), and nothing is relayed.
    pub stun_only: bool,
    /// Users not among the static ones are looked up through the driver
    /// ([`Request::LookupUser`]): a user database is configured.
    pub user_db: bool,
    /// How long a user's key from the database is used before it is looked up again.
    pub user_cache_ttl: Duration,
    /// Accept RFC 5766's channel numbers 0x5000–0x7FFF too (coturn's `turnutils_uclient`,
    /// older SIP clients); RFC 8656 §12 keeps 0x4000–0x4FFF and reserves the rest.
    pub rfc5766_channels: bool,
    /// ALTERNATE-SERVER addresses for clients over UDP and TCP (coturn's `alternate-server`).
    pub alternate_servers: Vec<SocketAddr>,
    /// ALTERNATE-SERVER addresses for clients over TLS (coturn's `tls-alternate-server`).
    pub tls_alternate_servers: Vec<SocketAddr>,
    /// When an Allocate is redirected to them.
    pub redirect: Redirect,
    /// The transport addresses this server is reached at (its host's, listening and external
    /// addresses with its ports): an ALTERNATE-SERVER among them is this server itself, which
    /// a wildcard listener's own address (0.0.0.0) would not tell.
    pub own_addresses: Vec<SocketAddr>,
    /// `user_quota` and `total_quota` are the fleet's, held by the driver (a shared database):
    /// each Allocate asks for a share ([`Request::ReserveQuota`]) before its relay is bound,
    /// and an allocation's end gives it back ([`Request::ReleaseQuota`]). Quotas are then
    /// not counted in the core, unless the driver cannot answer.
    pub fleet_quota: bool,
    /// RFC 6062 TCP allocations (REQUESTED-TRANSPORT TCP over a TCP or TLS control
    /// connection; coturn's `no-tcp-relay` turns them off).
    pub tcp_relay: bool,
}

/// When an Allocate gets 300 (Try Alternate) with ALTERNATE-SERVER (RFC 8489 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirect {
    /// Every Allocate, the alternates in turn (coturn's behaviour: a server that only
    /// balances).
    #[default]
    Always,
    /// Only while draining, instead of refusing (403).
    WhenDraining,
}

impl TurnConfig {
    /// The highest channel number accepted.
    pub fn max_channel(&self) -> u16 {
        if self.rfc5766_channels {
            stun_codec::RFC5766_MAX_CHANNEL
        } else {
            ChannelNumber::MAX
        }
    }
}

impl Default for TurnConfig {
    fn default() -> TurnConfig {
        TurnConfig {
            realm: "turn".into(),
            software: None,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(600),
            max_permissions: 64,
            max_channels: 64,
            user_quota: 0,
            total_quota: 0,
            peer_policy: PeerPolicy::default(),
            relay_families: vec![AddressFamily::V4, AddressFamily::V6],
            max_bps: 0,
            fingerprint: false,
            challenge_rate: 10,
            challenge_burst: 20,
            stun_only: false,
            user_db: false,
            user_cache_ttl: Duration::from_secs(60),
            rfc5766_channels: false,
            alternate_servers: Vec::new(),
            tls_alternate_servers: Vec::new(),
            redirect: Redirect::Always,
            own_addresses: Vec::new(),
            fleet_quota: false,
            tcp_relay: true,
        }
    }
}

/// A relay socket the core asks its driver to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRequest {
    /// Quote it in [`TurnServer::relay_allocated`].
    pub id: u64,
    /// The client whose Allocate this is (a stream's allocation ends with its connection, and
    /// the reverse).
    pub five_tuple: FiveTuple,
    /// The family of the relayed address.
    pub family: AddressFamily,
    /// EVEN-PORT: the port must be even.
    pub even_port: bool,
    /// EVEN-PORT with R: also reserve port + 1, answered with a token.
    pub reserve_next: bool,
    /// RESERVATION-TOKEN: use the port reserved under this token.
    pub reservation: Option<u64>,
    /// A TCP relayed address (RFC 6062): a listening socket, from which connections to
    /// peers are also made.
    pub tcp: bool,
}

/// Why the driver could not bind a relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// No free port in the range (answered with 508).
    Exhausted,
    /// The reservation token is unknown or expired (answered with 508).
    UnknownReservation,
}

/// What a bound relay socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Its address.
    pub addr: SocketAddr,
    /// With `reserve_next`: the token naming the reserved port + 1.
    pub reservation_token: Option<u64>,
}

/// Something only the driver can do for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Bind a relay socket and answer with [`TurnServer::relay_allocated`].
    AllocateRelay(RelayRequest),
    /// Close a relay socket (and, for an allocation over TCP or TLS, the client's
    /// connection: RFC 8656 §7 ties them).
    ReleaseRelay {
        /// Its address.
        relay: SocketAddr,
    },
    /// Take one allocation of the fleet's quotas for `user` (with
    /// [`TurnConfig::fleet_quota`]) and answer with [`TurnServer::quota_reserved`].
    ReserveQuota {
        /// Quote it in the answer.
        id: u64,
        /// Whom it counts against (the user part of a REST username).
        user: String,
    },
    /// Give back one allocation of the fleet's quotas taken for `user`.
    ReleaseQuota {
        /// Whom it counted against.
        user: String,
    },
    /// RFC 6062: open a TCP connection from `relay` to `peer` (30 s at least before giving
    /// up) and answer with [`TurnServer::peer_connected`].
    ConnectPeer {
        /// The CONNECTION-ID; quote it in the answer.
        id: u32,
        /// The TCP relayed address to connect from.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// RFC 6062 §5.4: from now on `client`'s connection carries peer connection `id`'s bytes
    /// both ways, unframed (after the response queued for it, which goes first).
    BindPeer {
        /// The peer connection.
        id: u32,
        /// The client data connection.
        client: FiveTuple,
    },
    /// Close peer connection `id` (and the client data connection bound to it, if any).
    ClosePeer {
        /// The peer connection.
        id: u32,
    },
    /// Look up a user's key in the user database (not on the packet path: the request that
    /// needs it waits) and answer with [`TurnServer::user_looked_up`].
    LookupUser {
        /// Quote it in the answer.
        id: u64,
        /// The USERNAME, as the client sent it, in the configured realm.
        username: String,
    },
}

/// What [`TurnServer::poll_output`] gives: transmits to clients, [`Request`]s, the timer.
pub type Output = sans_io::Output<Infallible, Request>;

/// How many bytes a ChannelData message or Data indication adds to a peer's datagram at most:
/// the STUN header, XOR-PEER-ADDRESS for IPv6, the DATA header and padding (20 + 24 + 4 + 3),
/// rounded up. Buffers passed to [`TurnServer::handle_peer`] need this much room beyond the
/// datagram.
pub const RELAY_OVERHEAD: usize = 64;

/// Counters for metrics. Bounded label sets only: no per-user values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Allocations made.
    pub allocations_created: u64,
    /// Allocations ended (expired or deleted).
    pub allocations_deleted: u64,
    /// Requests answered 401 without credentials.
    pub auth_unauthenticated: u64,
    /// Requests with wrong credentials (401).
    pub auth_wrong_credentials: u64,
    /// Requests with a stale or foreign nonce (438).
    pub auth_stale_nonce: u64,
    /// Unauthenticated requests dropped by the per-source rate limit.
    pub challenges_rate_limited: u64,
    /// Requests refused as malformed (400).
    pub bad_requests: u64,
    /// Packets relayed client → peer.
    pub packets_to_peers: u64,
    /// Bytes relayed client → peer.
    pub bytes_to_peers: u64,
    /// Packets relayed peer → client.
    pub packets_to_clients: u64,
    /// Bytes relayed peer → client.
    pub bytes_to_clients: u64,
    /// Packets dropped by the peer policy.
    pub dropped_peer_policy: u64,
    /// Packets dropped for lack of a permission, channel or allocation.
    pub dropped_no_permission: u64,
    /// Packets dropped because the allocation exceeded `max_bps`.
    pub dropped_bandwidth: u64,
    /// Peer datagrams dropped because the caller's buffer could not hold their message.
    pub dropped_too_big: u64,
    /// Users looked up in the user database.
    pub user_lookups: u64,
    /// Lookups the database did not answer (down, or too slow).
    pub user_lookup_failures: u64,
    /// Requests dropped because too many waited for lookups already.
    pub user_lookups_dropped: u64,
    /// Allocate requests refused while the server drains.
    pub refused_draining: u64,
    /// Allocate requests sent to an ALTERNATE-SERVER (300).
    pub redirected: u64,
    /// RFC 6062 peer connections made (Connect) or accepted.
    pub tcp_connections: u64,
    /// Connects that failed or timed out (447).
    pub tcp_connect_failures: u64,
}

/// What an Allocate with ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §7.2) gets besides its IPv4
/// relayed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dual {
    /// Not asked for.
    No,
    /// An IPv6 relayed address too, asked for once the IPv4 one is bound.
    Wanted,
    /// The IPv6 address is refused with this ADDRESS-ERROR-CODE (440: no IPv6 relay
    /// address; 508: none could be bound), the IPv4 one granted.
    Refused(u16),
}

/// The answer to [`Request::ReserveQuota`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaAnswer {
    /// Taken: the allocation goes ahead.
    Granted,
    /// The user's or the fleet's quota is reached (486).
    Refused,
    /// The fleet's store did not answer: the worker's own counts decide, as without a fleet.
    Unavailable,
}

/// Where an Allocate stands with the quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quota {
    /// Counted here (no fleet, or its store did not answer).
    Local,
    /// Asked of the fleet.
    Asked,
    /// Taken from the fleet: to be given back.
    Held,
}

/// An Allocate waiting for its relay socket (or, for a dual allocation, its second).
#[derive(Debug, Clone)]
struct Pending {
    quota: Quota,
    /// The relay socket to ask for (once the fleet's quota is granted).
    relay_request: RelayRequest,
    dual: Dual,
    /// A dual allocation's IPv4 relay, bound, while its IPv6 one is asked for.
    first: Option<Relay>,
    /// The request, to answer it.
    request: request::Context,
    username: String,
    lifetime: Duration,
}

/// The TURN server core.
#[derive(Debug)]
pub struct TurnServer {
    config: TurnConfig,
    stun: StunServer,
    users: Users,
    rest: RestSecrets,
    nonces: Nonces,
    limiter: limiter::ChallengeLimiter,
    epoch: Instant,
    epoch_unix: u64,
    allocations: Allocations,
    per_user: HashMap<String, usize>,
    pending: HashMap<u64, Pending>,
    /// When each pending Allocate is given up, in the order they came (one timeout for all).
    pending_deadlines: VecDeque<(Instant, u64)>,
    next_id: u64,
    out: Outputs<Infallible, Request>,
    stats: TurnStats,
    buf: Vec<u8>,
    cache: UserCache,
    lookups: Lookups,
    /// Draining: no new allocations.
    draining: bool,
    /// The next ALTERNATE-SERVER to name (round robin).
    next_alternate: usize,
    /// Fleet quota asked for by Allocates given up since: a grant that comes later is given
    /// back at once.
    abandoned_quota: HashMap<u64, String>,
    /// RFC 6062 peer connections.
    tcp: tcp::PeerConnections,
    /// Keys the CONNECTION-IDs (derived from the nonce key).
    id_key: [u8; 32],
}

/// How long an expired channel number stays reserved for its peer (RFC 8656 §12).
const CHANNEL_RESERVE: Duration = Duration::from_secs(300);
/// How long an Allocate waits for its relay socket before it is answered 508.
const PENDING_TIMEOUT: Duration = Duration::from_secs(10);

impl TurnServer {
    /// A core. `stun` configures the Binding server on the same addresses; `users` and `rest`
    /// are the credentials; `nonce_key` must come from a CSPRNG; `now` and `unix_now` (seconds
    /// since 1970, for REST credential expiry) fix the clock's origin.
    pub fn new(
        config: TurnConfig,
        stun: StunServerConfig,
        users: Users,
        rest: RestSecrets,
        nonce_key: [u8; 32],
        now: Instant,
        unix_now: u64,
    ) -> TurnServer {
        // A key of its own for the limiter, derived so it reveals nothing of the nonce key.
        let derived =
            <sha2::Sha256 as sha2::Digest>::digest([&nonce_key[..], b"challenge limiter"].concat());
        let mut limiter_key = [0u8; 16];
        limiter_key.copy_from_slice(&derived[..16]);
        let config_ttl = config.user_cache_ttl;
        TurnServer {
            nonces: Nonces::new(nonce_key, now, config.nonce_lifetime),
            limiter: limiter::ChallengeLimiter::new(
                limiter_key,
                config.challenge_rate,
                config.challenge_burst,
            ),
            config,
            stun: StunServer::new(stun),
            users,
            rest,
            epoch: now,
            epoch_unix: unix_now,
            allocations: Allocations::new(now, CHANNEL_RESERVE),
            per_user: HashMap::new(),
            pending: HashMap::new(),
            pending_deadlines: VecDeque::new(),
            next_id: 0,
            out: Outputs::new(),
            stats: TurnStats::default(),
            buf: vec![0; 1500],
            cache: UserCache::new(config_ttl),
            lookups: Lookups::default(),
            draining: false,
            next_alternate: 0,
            abandoned_quota: HashMap::new(),
            tcp: tcp::PeerConnections::default(),
            id_key: <sha2::Sha256 as sha2::Digest>::digest(
                [&nonce_key[..], b"connection ids"].concat(),
            )
            .into(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> TurnStats {
        self.stats
    }

    /// Live allocations.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Live permissions and channel bindings over all allocations, kept as they change and
    /// expire (no walk: metrics read it every second).
    pub fn permission_and_channel_counts(&self) -> (usize, usize) {
        self.allocations.live_counts()
    }

    /// Every allocation (a walk: for tests and diagnostics, not per packet or per tick).
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.allocations.iter()
    }

    /// The Binding server's counters.
    pub fn stun_stats(&self) -> crate::stun::StunStats {
        self.stun.stats()
    }

    /// The allocation of a 5-tuple.
    pub fn allocation(&self, five_tuple: &FiveTuple) -> Option<&Allocation> {
        self.allocations.get(five_tuple)
    }

    /// The next output: messages to clients, requests for the driver, and last the timer
    /// (see the drain rule of `sans-io`).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| Output::Timeout(self.next_timeout()))
        })
    }

    /// Queues a message to the client of `ft` (a datagram from the server address it used, or
    /// a frame on its connection).
    fn send_to_client(&mut self, ft: FiveTuple, data: Vec<u8>) {
        self.out.transmit(Transmit {
            transport: ft.transport,
            local: ft.server,
            remote: ft.client,
            data,
        });
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch_unix + now.saturating_duration_since(self.epoch).as_secs()
    }

    /// A message or ChannelData from a client on `five_tuple`. A relayed packet (ChannelData
    /// or a Send indication's DATA) comes back at once as the datagram for the peer, from the
    /// relayed address, borrowing its payload from `data`: nothing is copied or allocated for
    /// it. Everything else (responses, relay socket requests) is queued for
    /// [`poll_output`](Self::poll_output).
    #[must_use = "a relayed packet is returned, not queued"]
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        data: &'a [u8],
    ) -> Option<Transmit<&'a [u8]>> {
        if self.config.stun_only {
            let mut buf = std::mem::take(&mut self.buf);
            let r = Receive {
                transport: five_tuple.transport,
                local: five_tuple.server,
                remote: five_tuple.client,
                data,
            };
            if let Some(t) = self.stun.answer(r, &mut buf) {
                self.out.transmit(t.to_owned());
            }
            self.buf = buf;
            return None;
        }
        // ChannelData starts 01 (RFC 7983 lists 64–79 for RFC 8656's range; RFC 5766's went
        // up to 0x7FFF, first bytes 80–127).
        let channel_data = match demux(data) {
            PacketKind::ChannelData => true,
            PacketKind::Other => {
                self.config.rfc5766_channels && data.first().is_some_and(|b| b & 0xC0 == 0x40)
            }
            _ => false,
        };
        match channel_data {
            true => {
                let cd = ChannelData::parse_up_to(data, self.config.max_channel()).ok()?;
                let a = self.allocations.get_mut(&five_tuple);
                let Some(a) = a.filter(|a| a.expires > now) else {
                    self.stats.dropped_no_permission += 1;
                    return None;
                };
                let Some(peer) = a.channel(cd.channel(), now).map(|c| c.peer) else {
                    self.stats.dropped_no_permission += 1;
                    return None;
                };
                relay_to_peer(a, &self.config, &mut self.stats, now, peer, cd.data())
            }
            false => {
                let msg = Message::parse(data).ok()?;
                self.message_from_client(now, five_tuple, &msg)
            }
        }
    }

    fn message_from_client<'a>(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message<'a>,
    ) -> Option<Transmit<&'a [u8]>> {
        let mt = msg.message_type();
        match (mt.method, mt.class) {
            (Method::BINDING, _) => {
                let mut buf = std::mem::take(&mut self.buf);
                let ft = five_tuple;
                if let Some(t) =
                    self.stun
                        .answer_message(ft.transport, ft.server, ft.client, msg, &mut buf)
                {
                    self.out.transmit(t.to_owned());
                }
                self.buf = buf;
                None
            }
            (Method::SEND, Class::Indication) => self.send_indication(now, five_tuple, msg),
            (_, Class::Request) => {
                self.out.timer_moved();
                self.request(now, five_tuple, msg);
                None
            }
            _ => None,
        }
    }

    /// RFC 8656 §11.2: a Send indication without XOR-PEER-ADDRESS or DATA, or with a
    /// comprehension-required attribute the server does not process, is discarded.
    fn send_indication<'a>(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message<'a>,
    ) -> Option<Transmit<&'a [u8]>> {
        if msg
            .unknown_comprehension_required(request::understood)
            .next()
            .is_some()
        {
            return None;
        }
        let (Ok(Some(XorPeerAddress(peer))), Ok(Some(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        else {
            return None;
        };
        let a = self.allocations.get_mut(&five_tuple);
        let Some(a) = a.filter(|a| a.expires > now) else {
            self.stats.dropped_no_permission += 1;
            return None;
        };
        relay_to_peer(a, &self.config, &mut self.stats, now, peer, data)
    }

    /// A datagram from `peer` arrived on the relayed address `relay`. If it may be relayed,
    /// the ChannelData message or Data indication carrying it is written to `out` (which must
    /// have [`RELAY_OVERHEAD`] bytes more than `data`) and returned as the transmit to the
    /// client, borrowing `out`: one look-up, no allocation.
    #[must_use = "a relayed packet is returned, not queued"]
    pub fn handle_peer<'o>(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &'o mut [u8],
    ) -> Option<Transmit<&'o [u8]>> {
        let Some(a) = self.allocations.by_relay_mut(&relay) else {
            self.stats.dropped_no_permission += 1;
            return None;
        };
        let five_tuple = a.five_tuple;
        if a.expires <= now {
            // Gone (RFC 8656 §7); the timer deletes it.
            self.stats.dropped_no_permission += 1;
            return None;
        }
        if !may_relay(a, &self.config, &mut self.stats, peer, data.len(), now) {
            return None;
        }
        let len = match a.channel_for_peer(peer, now) {
            Some(c) => ChannelData::build_up_to(
                c.channel,
                data,
                five_tuple.transport.is_stream(),
                out,
                self.config.max_channel(),
            )
            .map_err(|_| ()),
            None => {
                let tid = TransactionId(data_indication_tid(self.next_id, now, self.epoch));
                self.next_id += 1;
                MessageBuilder::new(out, MessageType::new(Method::DATA, Class::Indication), tid)
                    .and_then(|mut b| {
                        b.add(&XorPeerAddress(peer))?.add(&Data(data))?;
                        Ok(b.finish().len())
                    })
                    .map_err(|_: stun_codec::BuildError| ())
            }
        };
        let Ok(len) = len else {
            self.stats.dropped_too_big += 1;
            return None;
        };
        self.stats.packets_to_clients += 1;
        self.stats.bytes_to_clients += data.len() as u64;
        Some(Transmit {
            transport: five_tuple.transport,
            local: five_tuple.server,
            remote: five_tuple.client,
            data: &out[..len],
        })
    }

    /// The driver's answer to [`Request::AllocateRelay`].
    pub fn relay_allocated(&mut self, now: Instant, id: u64, result: Result<Relay, RelayError>) {
        self.out.timer_moved();
        let removed = self.pending.remove(&id);
        self.trim_pending_deadlines();
        let Some(mut p) = removed else {
            // Not ours (or the allocation was given up): free the socket.
            if let Ok(relay) = result {
                self.out
                    .request(Request::ReleaseRelay { relay: relay.addr });
            }
            return;
        };
        match (result, p.first.take()) {
            // A dual allocation's IPv4 relay: now its IPv6 one (RFC 8656 §7.2).
            (Ok(relay), None) if p.dual == Dual::Wanted => {
                // The first's request, for IPv6 (EVEN-PORT and TCP as asked; no reservation
                // goes with a dual allocation).
                let request = RelayRequest {
                    id: self.next_id,
                    family: AddressFamily::V6,
                    reserve_next: false,
                    reservation: None,
                    ..p.relay_request
                };
                self.next_id += 1;
                p.first = Some(relay);
                self.pending.insert(request.id, p);
                self.pending_deadlines
                    .push_back((now + PENDING_TIMEOUT, request.id));
                self.out.request(Request::AllocateRelay(request));
            }
            (Ok(relay6), Some(relay)) => self.allocation_made(now, p, relay, Some(relay6.addr)),
            (Ok(relay), None) => self.allocation_made(now, p, relay, None),
            // Only the IPv6 one failed: the IPv4 one is granted, with ADDRESS-ERROR-CODE 508.
            (Err(_), Some(relay)) => {
                p.dual = Dual::Refused(508);
                self.allocation_made(now, p, relay, None)
            }
            (Err(_), None) => self.give_up(id, p, true),
        }
    }

    /// The driver's answer to [`Request::ReserveQuota`].
    pub fn quota_reserved(&mut self, _now: Instant, id: u64, answer: QuotaAnswer) {
        self.out.timer_moved();
        let Some(p) = self.pending.get_mut(&id) else {
            // The Allocate was given up meanwhile: what was taken goes back.
            if let Some(user) = self.abandoned_quota.remove(&id) {
                if answer == QuotaAnswer::Granted {
                    self.out.request(Request::ReleaseQuota { user });
                }
            }
            return;
        };
        if p.quota != Quota::Asked {
            return;
        }
        let user = quota_key(&p.username).to_owned();
        p.quota = match answer {
            QuotaAnswer::Granted => Quota::Held,
            _ => Quota::Local,
        };
        let refused = match answer {
            QuotaAnswer::Granted => false,
            QuotaAnswer::Refused => true,
            // The worker's own counts decide.
            QuotaAnswer::Unavailable => self.over_local_quota(&user, Some(id)),
        };
        if refused {
            let p = self.pending.remove(&id).expect("just seen");
            self.trim_pending_deadlines();
            return self.error(&p.request, Reject::AllocationQuotaReached);
        }
        let request = self.pending[&id].relay_request;
        self.out.request(Request::AllocateRelay(request));
    }

    /// Whether one more allocation for `user` would pass this core's own `total_quota` or
    /// `user_quota` (counting pending Allocates, but `except` the one asking).
    fn over_local_quota(&self, user: &str, except: Option<u64>) -> bool {
        let pending = || self.pending.iter().filter(|(id, _)| Some(**id) != except);
        let user_count = self.per_user.get(user).copied().unwrap_or(0)
            + pending()
                .filter(|(_, p)| quota_key(&p.username) == user)
                .count();
        (self.config.total_quota > 0
            && self.allocations.len() + pending().count() >= self.config.total_quota)
            || (self.config.user_quota > 0 && user_count >= self.config.user_quota)
    }

    /// A pending Allocate given up (no relay, a timeout, its connection gone): its answer
    /// (508) if `answer`, the IPv4 relay of a dual one back, and the fleet's quota.
    fn give_up(&mut self, id: u64, p: Pending, answer: bool) {
        if let Some(first) = p.first {
            self.out
                .request(Request::ReleaseRelay { relay: first.addr });
        }
        let user = quota_key(&p.username).to_owned();
        match p.quota {
            Quota::Held => self.out.request(Request::ReleaseQuota { user }),
            Quota::Asked => {
                self.abandoned_quota.insert(id, user);
            }
            Quota::Local => {}
        }
        if answer {
            self.error(&p.request, Reject::InsufficientCapacity);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the top of the
    /// expiry heap and the oldest pending Allocate, no walk.
    fn next_timeout(&self) -> Option<Instant> {
        let pending = self.pending_deadlines.front().map(|&(t, _)| t);
        [
            self.allocations.next_timeout(),
            pending,
            self.lookups.next_timeout(),
            self.tcp.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The allocation of `five_tuple` if it has not expired; an expired one is deleted here,
    /// whether or not its timer has fired yet (RFC 8656 §7: an expired allocation is gone).
    fn live(&mut self, five_tuple: FiveTuple, now: Instant) -> Option<&mut Allocation> {
        if self
            .allocations
            .get(&five_tuple)
            .is_some_and(|a| a.expires <= now)
        {
            self.delete(&five_tuple);
            return None;
        }
        self.allocations.get_mut(&five_tuple)
    }

    /// A TCP or TLS connection closed: its allocation ends with it (RFC 8656 §7).
    pub fn connection_closed(&mut self, _now: Instant, five_tuple: FiveTuple) {
        if five_tuple.transport.is_stream() {
            self.delete(&five_tuple);
            let gone: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, p)| p.request.ft == five_tuple)
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                if let Some(p) = self.pending.remove(&id) {
                    self.give_up(id, p, false);
                }
            }
            self.trim_pending_deadlines();
            self.lookups.forget(five_tuple);
            self.data_connection_closed(five_tuple);
        }
    }

    /// Expires allocations, permissions and channels due by `now`, and answers 508 to an
    /// Allocate whose relay socket never came. Only what is due is touched.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.out.timer_moved();
        while let Some(ft) = self.allocations.next_expired(now) {
            self.delete(&ft);
        }
        while let Some(&(t, id)) = self.pending_deadlines.front() {
            if t > now {
                break;
            }
            self.pending_deadlines.pop_front();
            if let Some(p) = self.pending.remove(&id) {
                self.give_up(id, p, true);
            }
            self.trim_pending_deadlines();
        }
        while let Some(id) = self.lookups.expired(now) {
            self.user_looked_up(now, id, UserLookup::Unavailable);
        }
        self.expire_peer_connections(now);
    }

    /// Applies a new configuration (a reload): credentials, peer policy, quotas, bandwidth
    /// and lifetimes. Live allocations go on as they are (a new `max_bps` or lifetime applies
    /// to allocations made from now on; a lower quota refuses new ones only); users cached
    /// from the database are looked up again. The relay families and `stun_only` of the
    /// running server stay.
    pub fn reconfigure(&mut self, config: TurnConfig, users: Users, rest: RestSecrets) {
        self.out.timer_moved();
        let TurnConfig {
            relay_families,
            stun_only,
            ..
        } = std::mem::replace(&mut self.config, config);
        self.config.relay_families = relay_families;
        self.config.stun_only = stun_only;
        self.nonces.set_lifetime(self.config.nonce_lifetime);
        self.cache.clear();
        self.cache.set_ttl(self.config.user_cache_ttl);
        self.users = users;
        self.rest = rest;
    }

    /// Stops granting allocations (coturn's drain mode): an Allocate is refused, everything
    /// else goes on, so live allocations run until they are deleted or expire.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Drops deadlines of Allocates no longer pending (answered, or gone with their
    /// connection) off the front, so the front is a live one and the timer exact.
    fn trim_pending_deadlines(&mut self) {
        while let Some(&(_, id)) = self.pending_deadlines.front() {
            if self.pending.contains_key(&id) {
                return;
            }
            self.pending_deadlines.pop_front();
        }
    }

    fn delete(&mut self, five_tuple: &FiveTuple) {
        if let Some(a) = self.allocations.remove(five_tuple) {
            let user = quota_key(&a.username);
            if let Some(n) = self.per_user.get_mut(user) {
                *n -= 1;
                if *n == 0 {
                    self.per_user.remove(user);
                }
            }
            self.stats.allocations_deleted += 1;
            for relay in a.relays() {
                self.out.request(Request::ReleaseRelay { relay });
            }
            if a.fleet_quota {
                self.out.request(Request::ReleaseQuota {
                    user: user.to_owned(),
                });
            }
            if a.tcp {
                self.close_peer_connections(a.five_tuple);
            }
        }
    }

    fn address_family(ip: IpAddr) -> AddressFamily {
        if ip.is_ipv4() {
            AddressFamily::V4
        } else {
            AddressFamily::V6
        }
    }
}

/// The checks every relayed packet passes, either way, on a live allocation: a peer the policy
/// allows, a permission for it, room in the bandwidth budget. Drops are counted here.
fn may_relay(
    a: &mut Allocation,
    config: &TurnConfig,
    stats: &mut TurnStats,
    peer: SocketAddr,
    bytes: usize,
    now: Instant,
) -> bool {
    if config.peer_policy.check(peer.ip()).is_err() {
        stats.dropped_peer_policy += 1;
        return false;
    }
    if !a.permits(peer.ip(), now) {
        stats.dropped_no_permission += 1;
        return false;
    }
    if a.budget
        .as_mut()
        .is_some_and(|b| !b.take(bytes as u64, now))
    {
        stats.dropped_bandwidth += 1;
        return false;
    }
    true
}

/// Client → peer (Send indication or ChannelData) on a live allocation.
fn relay_to_peer<'a>(
    a: &mut Allocation,
    config: &TurnConfig,
    stats: &mut TurnStats,
    now: Instant,
    peer: SocketAddr,
    payload: &'a [u8],
) -> Option<Transmit<&'a [u8]>> {
    // A TCP allocation relays over its peer connections only (RFC 6062 §5).
    if a.tcp {
        stats.dropped_no_permission += 1;
        return None;
    }
    if !may_relay(a, config, stats, peer, payload.len(), now) {
        return None;
    }
    // From the relayed address of the peer's family (a dual allocation has both).
    let Some(local) = a.relay_for(peer) else {
        stats.dropped_no_permission += 1;
        return None;
    };
    stats.packets_to_peers += 1;
    stats.bytes_to_peers += payload.len() as u64;
    Some(Transmit {
        transport: Transport::Udp,
        local,
        remote: peer,
        data: payload,
    })
}

/// Whom an allocation counts against for `user_quota`: the user part of a TURN REST username
/// (`expiry:user`), so minting fresh credentials does not escape the quota; else the username.
pub(crate) fn quota_key(username: &str) -> &str {
    match username.split_once(':') {
        Some((expiry, user)) if expiry.parse::<u64>().is_ok() => user,
        _ => username,
    }
}

/// A transaction id for a Data indication: unique per server, not secret (indications are not
/// matched to anything).
fn data_indication_tid(counter: u64, now: Instant, epoch: Instant) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..8].copy_from_slice(&counter.to_be_bytes());
    let ms = now.saturating_duration_since(epoch).as_millis() as u32;
    t[8..].copy_from_slice(&ms.to_be_bytes());
    t
}

impl sans_io::Core for TurnServer {
    type Event = Infallible;
    type Request = Request;

    fn poll_output(&mut self) -> Option<Output> {
        TurnServer::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        TurnServer::handle_timeout(self, now)
    }
}
