//! A sans-IO TURN client (RFC 8656): one allocation on one server, over UDP, TCP or TLS.
//!
//! The client writes the bytes for the server ([`TurnClient::poll_transmit`]) and reads the
//! server's bytes ([`TurnClient::handle_datagram`] for UDP, [`TurnClient::handle_stream_bytes`]
//! for TCP and TLS, which the caller has already decrypted). It does Allocate with the 401
//! retry (§7.1), renews stale nonces (438, §9.2 of RFC 8489), refreshes the allocation before
//! it expires (§8), installs and refreshes permissions (§9), binds and refreshes channels
//! (§12), and sends data as Send indications until a peer's channel is bound (§11).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ice_agent::turn_client::{TurnClient, TurnClientConfig, TurnEvent, TurnTransport};
//!
//! let now = Instant::now();
//! let server = "192.0.2.10:3478".parse()?;
//! let mut client = TurnClient::new(TurnClientConfig::new(server, TurnTransport::Udp, "alice", "secret"), 7);
//! client.allocate(now);
//! let first = client.poll_transmit().expect("an Allocate request");
//! assert_eq!(&first[..2], &[0x00, 0x03]); // Allocate request
//! assert!(client.poll_transmit().is_none());
//! // Nobody answers: the client resends, then gives up (RFC 8489 §6.2.1).
//! let mut t = now;
//! while let Some(next) = client.poll_timeout() {
//!     t = next;
//!     client.handle_timeout(t);
//!     while client.poll_transmit().is_some() {}
//! }
//! assert!(matches!(client.poll_event(), Some(TurnEvent::AllocationFailed(_))));
//! assert_eq!(t - now, Duration::from_millis(39_500));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun_codec::attr::{
    ChannelNumber, Data, ErrorCode, Lifetime, Nonce, PasswordAlgorithm, Realm, RequestedTransport,
    Software, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use stun_codec::{
    demux, ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method,
    PacketKind, StreamFramer, TransactionId, HEADER_LEN,
};

use sans_io::{Retransmit, RetransmitAction};

/// How the client reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TurnTransport {
    /// UDP (`turn:host?transport=udp`).
    Udp,
    /// TCP (`turn:host?transport=tcp`).
    Tcp,
    /// TLS over TCP (`turns:host`); the caller runs TLS and hands the client plaintext.
    Tls,
}

impl TurnTransport {
    /// Whether the transport is a byte stream (TCP or TLS).
    pub const fn is_stream(self) -> bool {
        !matches!(self, TurnTransport::Udp)
    }
}

/// Where and as whom to allocate.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnClientConfig {
    /// The server's address.
    pub server: SocketAddr,
    /// How to reach it.
    pub transport: TurnTransport,
    /// The long-term credential user name (for REST credentials, `expiry:user`).
    pub username: String,
    /// Its password.
    pub password: String,
    /// The initial retransmission timeout over UDP (RFC 8489 §6.2.1).
    pub rto: Duration,
    /// Transmissions of a request over UDP before giving up (Rc).
    pub max_sends: u32,
    /// The LIFETIME asked for in Allocate and Refresh (the server may shorten it).
    pub lifetime: Duration,
    /// A SOFTWARE attribute to send, if any.
    pub software: Option<String>,
}

impl std::fmt::Debug for TurnClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never goes to logs.
        f.debug_struct("TurnClientConfig")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("rto", &self.rto)
            .field("max_sends", &self.max_sends)
            .field("lifetime", &self.lifetime)
            .field("software", &self.software)
            .finish_non_exhaustive()
    }
}

impl TurnClientConfig {
    /// A configuration with the RFC 8489 defaults: RTO 500 ms, 7 transmissions, and the
    /// default 10-minute allocation lifetime.
    pub fn new(
        server: SocketAddr,
        transport: TurnTransport,
        username: &str,
        password: &str,
    ) -> TurnClientConfig {
        TurnClientConfig {
            server,
            transport,
            username: username.to_owned(),
            password: password.to_owned(),
            rto: Duration::from_millis(500),
            max_sends: 7,
            lifetime: Duration::from_secs(600),
            software: None,
        }
    }
}

/// Why an allocation or one of its requests failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// The server did not answer in time.
    #[error("no answer from the TURN server")]
    Timeout,
    /// The server answered with an error.
    #[error("TURN server answered {code} {reason}")]
    Server {
        /// The error code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The server asked for credentials a second time: they are wrong.
    #[error("the TURN server refused the credentials")]
    Unauthorized,
    /// The server's answer was malformed or lacked a required attribute.
    #[error("malformed answer from the TURN server: {0}")]
    Malformed(&'static str),
    /// The password cannot be used as a key (SASLprep refused it).
    #[error("the password is not a valid key")]
    BadPassword,
    /// The stream to the server ended or the allocation expired.
    #[error("the connection to the TURN server ended")]
    Closed,
}

/// Something the client wants its owner to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation exists.
    Allocated {
        /// The relayed transport address peers send to.
        relayed: SocketAddr,
        /// The client's address as the server saw it (a server-reflexive address).
        mapped: SocketAddr,
    },
    /// Allocating failed; the client is done.
    AllocationFailed(TurnError),
    /// The allocation ended: refresh failed, or the stream closed.
    AllocationLost(TurnError),
    /// A Refresh succeeded: the allocation is still there, from the client's current
    /// transport address (after [`TurnClient::refresh`], or a scheduled refresh).
    Refreshed,
    /// A permission is installed; peers at this IP can now reach the relayed address.
    PermissionCreated(IpAddr),
    /// A permission could not be installed.
    PermissionFailed(IpAddr, TurnError),
    /// A channel is bound: data to this peer now goes as ChannelData.
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// Data from a peer arrived over a stream transport (over UDP
    /// [`TurnClient::handle_datagram`] returns it directly, without copying).
    Data {
        /// The peer.
        peer: SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
}

/// Why [`TurnClient::send_to`] could not write a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnSendError {
    /// There is no allocation.
    #[error("no allocation")]
    NotAllocated,
    /// No permission has been installed for the peer's IP.
    #[error("no permission for the peer")]
    NoPermission,
    /// The output buffer is too small or the data too long for one message.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Bytes a Send indication adds around the data: header, XOR-PEER-ADDRESS (IPv6 at most),
/// DATA header and padding.
pub const SEND_OVERHEAD: usize = HEADER_LEN + 24 + 4 + 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Allocating,
    Allocated,
    Failed,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Allocate,
    Refresh { lifetime: u32 },
    CreatePermission(IpAddr),
    ChannelBind { peer: SocketAddr, channel: u16 },
}

#[derive(Debug)]
struct Transaction {
    id: TransactionId,
    request: Request,
    /// Whether it carried MESSAGE-INTEGRITY (then the answer must too).
    signed: bool,
    /// How many times it was re-sent with fresh credentials (401 once, 438 a few times).
    auth_retries: u8,
    bytes: Vec<u8>,
    timer: Retransmit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermissionState {
    Pending,
    Installed,
    Failed,
}

#[derive(Debug)]
struct Permission {
    ip: IpAddr,
    state: PermissionState,
    /// When to refresh (installed) — permissions live 300 s (§9).
    refresh_at: Option<Instant>,
}

#[derive(Debug)]
struct Channel {
    peer: SocketAddr,
    number: u16,
    bound: bool,
    refresh_at: Option<Instant>,
}

/// Permission lifetime (RFC 8656 §9) and channel lifetime (§12).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Refresh this long before something expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A TURN client for one allocation. See the module documentation.
#[derive(Debug)]
pub struct TurnClient {
    config: TurnClientConfig,
    rng: StdRng,
    state: State,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<IntegrityKey>,
    relayed: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    refresh_at: Option<Instant>,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    next_channel: u16,
    transactions: Vec<Transaction>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<TurnEvent>,
    framer: Option<StreamFramer>,
}

impl TurnClient {
    /// A client that will allocate on `config.server`; `seed` seeds the transaction ids.
    pub fn new(config: TurnClientConfig, seed: u64) -> TurnClient {
        TurnClient {
            framer: config.transport.is_stream().then(StreamFramer::new),
            config,
            rng: StdRng::seed_from_u64(seed),
            state: State::Idle,
            realm: None,
            nonce: None,
            key: None,
            relayed: None,
            mapped: None,
            refresh_at: None,
            permissions: Vec::new(),
            channels: Vec::new(),
            next_channel: 0x4000,
            transactions: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TurnClientConfig {
        &self.config
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.config.server
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed.filter(|_| self.state == State::Allocated)
    }

    /// The client's address as the server saw it, once allocated.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.mapped.filter(|_| self.state == State::Allocated)
    }

    /// Whether the client is finished (failed or closed) and will do nothing more.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Failed | State::Closed)
    }

    /// Whether a permission for `ip` is installed.
    pub fn has_permission(&self, ip: IpAddr) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.state == PermissionState::Installed)
    }

    /// The bound channel to `peer`, if any.
    pub fn channel(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.bound)
            .map(|c| c.number)
    }

    /// Starts allocating (a first Allocate without credentials, RFC 8656 §7.1, to learn the
    /// realm and nonce).
    pub fn allocate(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.state = State::Allocating;
        self.request(now, Request::Allocate, 0);
    }

    /// Asks the server to let peers at `ip` in (RFC 8656 §9). Idempotent; kept refreshed
    /// for as long as the allocation lives.
    pub fn create_permission(&mut self, now: Instant, ip: IpAddr) {
        if self.permissions.iter().any(|p| p.ip == ip) {
            return;
        }
        self.permissions.push(Permission {
            ip,
            state: PermissionState::Pending,
            refresh_at: None,
        });
        if self.state == State::Allocated {
            self.request(now, Request::CreatePermission(ip), 0);
        }
    }

    /// Binds a channel to `peer` (RFC 8656 §12); data to it then goes as ChannelData.
    /// Idempotent.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) {
        if self.channels.iter().any(|c| c.peer == peer) || self.next_channel > 0x4FFF {
            return;
        }
        let number = self.next_channel;
        self.next_channel += 1;
        self.channels.push(Channel {
            peer,
            number,
            bound: false,
            refresh_at: None,
        });
        if self.state == State::Allocated {
            self.request(
                now,
                Request::ChannelBind {
                    peer,
                    channel: number,
                },
                0,
            );
        }
    }

    /// Refreshes the allocation now (unless a Refresh is in flight), to learn whether it
    /// still exists for this client's transport address: after a NAT rebinding the server
    /// sees another 5-tuple and answers 437 (RFC 8656 §7.2). The answer comes as
    /// [`TurnEvent::Refreshed`] or [`TurnEvent::AllocationLost`].
    pub fn refresh(&mut self, now: Instant) {
        if self.state != State::Allocated
            || self
                .transactions
                .iter()
                .any(|t| matches!(t.request, Request::Refresh { .. }))
        {
            return;
        }
        self.refresh_at = None;
        let lifetime = secs(self.config.lifetime);
        self.request(now, Request::Refresh { lifetime }, 0);
    }

    /// Deletes the allocation (Refresh with lifetime 0, RFC 8656 §8), without waiting for an
    /// answer. The client is done afterwards.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Allocated {
            self.request(now, Request::Refresh { lifetime: 0 }, 0);
        }
        // The Refresh is sent once and its answer does not matter; a late answer to an
        // Allocate must not bring the client back either.
        self.transactions.clear();
        self.state = State::Closed;
    }

    /// The stream to the server ended (TCP and TLS).
    pub fn stream_closed(&mut self) {
        match self.state {
            State::Allocating | State::Idle => {
                self.fail(TurnError::Closed);
            }
            State::Allocated => {
                self.state = State::Failed;
                self.transactions.clear();
                self.events
                    .push_back(TurnEvent::AllocationLost(TurnError::Closed));
            }
            State::Failed | State::Closed => {}
        }
    }

    /// Writes `data` for `peer` into `out`: ChannelData if a channel is bound (padded on
    /// streams), a Send indication otherwise. Returns the length to send to the server.
    pub fn send_to(
        &mut self,
        peer: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<usize, TurnSendError> {
        if self.state != State::Allocated {
            return Err(TurnSendError::NotAllocated);
        }
        if !self.has_permission(peer.ip()) {
            return Err(TurnSendError::NoPermission);
        }
        if let Some(ch) = self.channel(peer) {
            return ChannelData::build(ch, data, self.config.transport.is_stream(), out)
                .map_err(|_| TurnSendError::BufferTooSmall);
        }
        let tid = TransactionId(self.rng.gen());
        let mut b =
            MessageBuilder::new(out, MessageType::new(Method::SEND, Class::Indication), tid)
                .map_err(|_| TurnSendError::BufferTooSmall)?;
        b.add(&XorPeerAddress(peer))
            .and_then(|b| b.add(&Data(data)))
            .map_err(|_| TurnSendError::BufferTooSmall)?;
        Ok(b.finish().len())
    }

    /// The next message for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        let refreshes = self
            .permissions
            .iter()
            .filter_map(|p| p.refresh_at)
            .chain(self.channels.iter().filter_map(|c| c.refresh_at))
            .chain(self.refresh_at);
        self.transactions
            .iter()
            .map(|t| t.timer.next())
            .chain(refreshes)
            .min()
    }

    /// Retransmits, gives up, and refreshes as the timers say.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_done() {
            return;
        }
        let mut i = 0;
        while i < self.transactions.len() {
            match self.transactions[i].timer.poll(now) {
                Some(RetransmitAction::Resend) => {
                    self.out.push_back(self.transactions[i].bytes.clone());
                    i += 1;
                }
                Some(RetransmitAction::TimedOut) => {
                    let t = self.transactions.swap_remove(i);
                    self.request_failed(now, t.request, TurnError::Timeout);
                    if self.is_done() {
                        return;
                    }
                }
                None => i += 1,
            }
        }
        if self.state != State::Allocated {
            return;
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh(now);
        }
        for i in 0..self.permissions.len() {
            if self.permissions[i].refresh_at.is_some_and(|t| t <= now) {
                self.permissions[i].refresh_at = None;
                let ip = self.permissions[i].ip;
                self.request(now, Request::CreatePermission(ip), 0);
            }
        }
        for i in 0..self.channels.len() {
            if self.channels[i].refresh_at.is_some_and(|t| t <= now) {
                self.channels[i].refresh_at = None;
                let (peer, channel) = (self.channels[i].peer, self.channels[i].number);
                self.request(now, Request::ChannelBind { peer, channel }, 0);
            }
        }
    }

    /// A datagram from the server (UDP). Returns application data from a peer (a Data
    /// indication or ChannelData), borrowed from `bytes`; handles answers to requests.
    /// Anything malformed or unexpected is ignored.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Option<(SocketAddr, &'a [u8])> {
        match demux(bytes) {
            PacketKind::ChannelData => {
                let cd = ChannelData::parse(bytes).ok()?;
                let peer = self
                    .channels
                    .iter()
                    .find(|c| c.number == cd.channel() && c.bound)?
                    .peer;
                Some((peer, cd.data()))
            }
            PacketKind::Stun => {
                let msg = Message::parse(bytes).ok()?;
                self.handle_message(now, &msg)
            }
            _ => None,
        }
    }

    /// Bytes from a stream to the server (TCP, or TLS after decryption). Peer data comes
    /// out as [`TurnEvent::Data`]. Returns false if the stream is corrupt and must be closed
    /// (the allocation is then lost).
    pub fn handle_stream_bytes(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let Some(mut framer) = self.framer.take() else {
            return false;
        };
        framer.push(bytes);
        let mut ok = true;
        loop {
            match framer.next_frame() {
                // The framer is out of `self`, so its frame needs no copy.
                Ok(Some((_, frame))) => {
                    if let Some((peer, data)) = self.handle_datagram(now, frame) {
                        self.events.push_back(TurnEvent::Data {
                            peer,
                            data: data.to_vec(),
                        });
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        self.framer = Some(framer);
        if !ok {
            self.stream_closed();
        }
        ok
    }

    fn handle_message<'a>(
        &mut self,
        now: Instant,
        msg: &Message<'a>,
    ) -> Option<(SocketAddr, &'a [u8])> {
        let mt = msg.message_type();
        if mt.method == Method::DATA && mt.class == Class::Indication {
            let peer = msg.get::<XorPeerAddress>().ok()??.0;
            let data = msg.get::<Data>().ok()??.0;
            return Some((peer, data));
        }
        if !matches!(mt.class, Class::SuccessResponse | Class::ErrorResponse) {
            return None;
        }
        let i = self
            .transactions
            .iter()
            .position(|t| t.id == msg.transaction_id())?;
        // An answer to a signed request must be signed with the same key (RFC 8489
        // §9.2.5); 401 and 438 answers carry no integrity and are taken as they are.
        let error = msg.get::<ErrorCode>().ok().flatten();
        let unsigned_ok = matches!(error.map(|e| e.code), Some(401) | Some(438));
        if self.transactions[i].signed && !unsigned_ok {
            let key = self.key.as_ref()?;
            msg.verify_integrity(key).ok()?;
        }
        let t = self.transactions.swap_remove(i);
        if mt.class == Class::SuccessResponse {
            self.request_succeeded(now, t.request, msg);
            return None;
        }
        let Some(err) = error else {
            self.request_failed(
                now,
                t.request,
                TurnError::Malformed("error without ERROR-CODE"),
            );
            return None;
        };
        match err.code {
            401 if t.auth_retries == 0 && t.request == Request::Allocate => {
                let (Some(realm), Some(nonce)) = (
                    msg.get::<Realm>().ok().flatten(),
                    msg.get::<Nonce>().ok().flatten(),
                ) else {
                    self.request_failed(now, t.request, TurnError::Malformed("401 without realm"));
                    return None;
                };
                match IntegrityKey::long_term(
                    &self.config.username,
                    realm.0,
                    &self.config.password,
                    PasswordAlgorithm::MD5,
                ) {
                    Ok(key) => self.key = Some(key),
                    Err(_) => {
                        self.request_failed(now, t.request, TurnError::BadPassword);
                        return None;
                    }
                }
                self.realm = Some(realm.0.to_owned());
                self.nonce = Some(nonce.0.to_owned());
                self.request(now, t.request, 1);
            }
            438 if t.auth_retries < 4 => {
                if let Some(nonce) = msg.get::<Nonce>().ok().flatten() {
                    self.nonce = Some(nonce.0.to_owned());
                    self.request(now, t.request, t.auth_retries + 1);
                } else {
                    self.request_failed(now, t.request, TurnError::Malformed("438 without nonce"));
                }
            }
            401 => self.request_failed(now, t.request, TurnError::Unauthorized),
            code => self.request_failed(
                now,
                t.request,
                TurnError::Server {
                    code,
                    reason: err.reason.to_owned(),
                },
            ),
        }
        None
    }

    fn request_succeeded(&mut self, now: Instant, request: Request, msg: &Message<'_>) {
        match request {
            Request::Allocate => {
                let relayed = msg.get::<XorRelayedAddress>().ok().flatten();
                let mapped = msg.get::<XorMappedAddress>().ok().flatten();
                let (Some(relayed), Some(mapped)) = (relayed, mapped) else {
                    self.fail(TurnError::Malformed("Allocate success without addresses"));
                    return;
                };
                self.state = State::Allocated;
                self.relayed = Some(relayed.0);
                self.mapped = Some(mapped.0);
                self.schedule_refresh(now, msg);
                tracing::debug!(server = %self.config.server, relayed = %relayed.0, "allocated");
                self.events.push_back(TurnEvent::Allocated {
                    relayed: relayed.0,
                    mapped: mapped.0,
                });
                // Permissions and channels asked for while allocating.
                for i in 0..self.permissions.len() {
                    let ip = self.permissions[i].ip;
                    self.request(now, Request::CreatePermission(ip), 0);
                }
                for i in 0..self.channels.len() {
                    let (peer, channel) = (self.channels[i].peer, self.channels[i].number);
                    self.request(now, Request::ChannelBind { peer, channel }, 0);
                }
            }
            Request::Refresh { lifetime: 0 } => {}
            Request::Refresh { .. } => {
                self.schedule_refresh(now, msg);
                self.events.push_back(TurnEvent::Refreshed);
            }
            Request::CreatePermission(ip) => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    let new = p.state != PermissionState::Installed;
                    p.state = PermissionState::Installed;
                    p.refresh_at = Some(now + PERMISSION_LIFETIME - REFRESH_MARGIN);
                    if new {
                        self.events.push_back(TurnEvent::PermissionCreated(ip));
                    }
                }
            }
            Request::ChannelBind { peer, channel } => {
                // A channel binding installs or refreshes the permission too (§12).
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) {
                    p.state = PermissionState::Installed;
                    p.refresh_at = Some(now + PERMISSION_LIFETIME - REFRESH_MARGIN);
                }
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    let new = !c.bound;
                    c.bound = true;
                    c.refresh_at = Some(now + CHANNEL_LIFETIME - REFRESH_MARGIN);
                    if new {
                        self.events
                            .push_back(TurnEvent::ChannelBound { peer, channel });
                    }
                }
            }
        }
    }

    fn request_failed(&mut self, _now: Instant, request: Request, error: TurnError) {
        tracing::debug!(server = %self.config.server, ?request, %error, "TURN request failed");
        match request {
            Request::Allocate => self.fail(error),
            Request::Refresh { lifetime: 0 } => {}
            Request::Refresh { .. } => {
                self.state = State::Failed;
                self.transactions.clear();
                self.events.push_back(TurnEvent::AllocationLost(error));
            }
            Request::CreatePermission(ip) => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    if p.state == PermissionState::Pending {
                        p.state = PermissionState::Failed;
                        self.events
                            .push_back(TurnEvent::PermissionFailed(ip, error));
                    } else {
                        // A failed refresh: the permission lapses with its lifetime; try
                        // again shortly, as it may have been a lost answer.
                        p.refresh_at = Some(_now + Duration::from_secs(5));
                    }
                }
            }
            Request::ChannelBind { channel, .. } => {
                // Data keeps flowing as Send indications.
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    c.bound = false;
                }
            }
        }
    }

    fn fail(&mut self, error: TurnError) {
        self.state = State::Failed;
        self.transactions.clear();
        self.events.push_back(TurnEvent::AllocationFailed(error));
    }

    fn schedule_refresh(&mut self, now: Instant, msg: &Message<'_>) {
        let lifetime = msg
            .get::<Lifetime>()
            .ok()
            .flatten()
            .map(|l| Duration::from_secs(u64::from(l.0)))
            .unwrap_or(self.config.lifetime);
        let margin = if lifetime > 2 * REFRESH_MARGIN {
            REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        self.refresh_at = Some(now + lifetime - margin);
    }

    /// Builds and sends `request`; `auth_retries` counts credential retries so far.
    fn request(&mut self, now: Instant, request: Request, auth_retries: u8) {
        let id = TransactionId(self.rng.gen());
        let method = match request {
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission(_) => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        };
        let mut buf = [0u8; 512];
        let signed = self.key.is_some();
        let built = (|| {
            let mut b =
                MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), id)?;
            match request {
                Request::Allocate => {
                    b.add(&RequestedTransport::UDP)?;
                    b.add(&Lifetime(secs(self.config.lifetime)))?;
                }
                Request::Refresh { lifetime } => {
                    b.add(&Lifetime(lifetime))?;
                }
                Request::CreatePermission(ip) => {
                    b.add(&XorPeerAddress(SocketAddr::new(ip, 0)))?;
                }
                Request::ChannelBind { peer, channel } => {
                    b.add(&ChannelNumber(channel))?;
                    b.add(&XorPeerAddress(peer))?;
                }
            }
            if let Some(s) = &self.config.software {
                b.add(&Software(s))?;
            }
            if let (Some(key), Some(realm), Some(nonce)) = (&self.key, &self.realm, &self.nonce) {
                b.add(&Username(&self.config.username))?;
                b.add(&Realm(realm))?;
                b.add(&Nonce(nonce))?;
                b.add_message_integrity(key)?;
            }
            b.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        let Ok(len) = built else {
            // Only an absurdly long user name or nonce gets here.
            self.request_failed(now, request, TurnError::Malformed("request too large"));
            return;
        };
        let bytes = buf[..len].to_vec();
        let timer = if self.config.transport.is_stream() {
            Retransmit::reliable(now, Duration::from_millis(39_500))
        } else {
            Retransmit::udp(now, self.config.rto, self.config.max_sends, 16)
        };
        self.out.push_back(bytes.clone());
        self.transactions.push(Transaction {
            id,
            request,
            signed,
            auth_retries,
            bytes,
            timer,
        });
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
