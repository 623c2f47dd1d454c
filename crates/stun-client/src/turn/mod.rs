//! A sans-IO TURN client (RFC 8656): one allocation on one server, over UDP, TCP or TLS.
//!
//! The client is a core like every other of the stack (see the `sans-io` crate): it is made
//! for one local transport address (a UDP socket, or the local end of a connection its owner
//! opened), reads what the server sends ([`TurnClient::handle_receive`], datagrams or frames
//! its driver cut from the stream), and says what to send and what happened through
//! [`TurnClient::poll_output`]. It does Allocate with the 401 retry (§7.1), renews stale
//! nonces (438, §9.2 of RFC 8489), refreshes the allocation before it expires (§8), installs
//! and refreshes permissions (§9), binds and refreshes channels (§12), and sends data as Send
//! indications until a peer's channel is bound (§11).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sans_io::{Output, Transport};
//! use stun_client::turn::{TurnClient, TurnClientConfig, TurnEvent};
//!
//! let now = Instant::now();
//! let (local, server) = ("198.51.100.7:5000".parse()?, "192.0.2.10:3478".parse()?);
//! let config = TurnClientConfig::new(server, Transport::Udp, "alice", "secret");
//! let mut client = TurnClient::new(config, local, 7);
//! client.allocate(now);
//! let Some(Output::Transmit(first)) = client.poll_output() else { panic!("an Allocate") };
//! assert_eq!((first.local, first.remote), (local, server));
//! assert_eq!(&first.data[..2], &[0x00, 0x03]); // Allocate request
//! // Nobody answers: the client resends, then gives up (RFC 8489 §6.2.1).
//! let mut timer = None;
//! let mut failed = None;
//! loop {
//!     while let Some(o) = client.poll_output() {
//!         match o {
//!             Output::Timeout(t) => timer = t,
//!             Output::Event(TurnEvent::AllocationFailed(e)) => failed = Some(e),
//!             _ => {}
//!         }
//!     }
//!     let Some(t) = timer.take() else { break };
//!     client.handle_timeout(t);
//!     if failed.is_some() {
//!         assert_eq!(t - now, Duration::from_millis(39_500));
//!     }
//! }
//! assert!(failed.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod answers;
mod bind;

pub use bind::{BindEvent, ConnectionBinder};

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sans_io::{Output, Outputs, Receive, Retransmit, RetransmitAction, Transmit, Transport};
use stun_codec::attr::{Data, XorPeerAddress};
use stun_codec::{
    demux, ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method,
    PacketKind, TransactionId, HEADER_LEN,
};

/// Where and as whom to allocate.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnClientConfig {
    /// The server's address.
    pub server: SocketAddr,
    /// How to reach it: UDP (`turn:host?transport=udp`), TCP (`turn:host?transport=tcp`),
    /// or TLS (`turns:host`, which the driver runs; the client sees the plaintext).
    pub transport: Transport,
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
    /// An RFC 6062 TCP allocation (REQUESTED-TRANSPORT TCP; over TCP or TLS only): peers are
    /// reached with [`TurnClient::connect`] and data connections
    /// ([`TurnClient::connection_binder`]), not Send or ChannelData.
    pub relay_tcp: bool,
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
        transport: Transport,
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
            relay_tcp: false,
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
    /// The server sent the client elsewhere (300 Try Alternate, RFC 8489 §10) and the client
    /// could not follow: over TCP or TLS (a new connection is its owner's to make), to
    /// another family, or after too many redirections.
    #[error("the TURN server redirects to {0}")]
    TryAlternate(SocketAddr),
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
    /// The server redirected the Allocate (300, ALTERNATE-SERVER): the client now talks to
    /// `server`, from the same local address (UDP only).
    Redirected {
        /// The new server.
        server: SocketAddr,
    },
    /// RFC 6062: a Connect succeeded; bind a new connection to `connection_id` to talk to
    /// the peer ([`TurnClient::connection_binder`]).
    PeerConnected {
        /// The peer.
        peer: SocketAddr,
        /// Its CONNECTION-ID.
        connection_id: u32,
    },
    /// RFC 6062: a Connect failed (447 when the server could not reach the peer).
    ConnectFailed(SocketAddr, TurnError),
    /// RFC 6062: a peer connected to the relayed address (ConnectionAttempt); bind a new
    /// connection to `connection_id` within 30 s to take it.
    ConnectionAttempt {
        /// The peer.
        peer: SocketAddr,
        /// Its CONNECTION-ID.
        connection_id: u32,
    },
    /// A channel is bound: data to this peer now goes as ChannelData.
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
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
    Connect(SocketAddr),
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
/// Redirections (300) followed before giving up, so two servers naming each other cannot
/// keep a client forever.
const MAX_REDIRECTS: u8 = 2;

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
    /// The local transport address the client sends from.
    local: SocketAddr,
    out: Outputs<TurnEvent>,
    /// 300 answers followed so far.
    redirects: u8,
}

impl TurnClient {
    /// A client that will allocate on `config.server` from `local` (its UDP socket, or the
    /// local end of the connection to the server); `seed` seeds the transaction ids.
    pub fn new(config: TurnClientConfig, local: SocketAddr, seed: u64) -> TurnClient {
        TurnClient {
            local,
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
            out: Outputs::new(),
            redirects: 0,
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

    /// The local transport address the client sends from.
    pub fn local(&self) -> SocketAddr {
        self.local
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

    /// The connection to the server ended (TCP and TLS), or its driver closed it because
    /// its bytes were not a sequence of frames.
    pub fn connection_closed(&mut self, _now: Instant) {
        self.out.timer_moved();
        match self.state {
            State::Allocating | State::Idle => {
                self.fail(TurnError::Closed);
            }
            State::Allocated => {
                self.state = State::Failed;
                self.transactions.clear();
                self.out.event(TurnEvent::AllocationLost(TurnError::Closed));
            }
            State::Failed | State::Closed => {}
        }
    }

    /// Writes `data` for `peer` into `out`: ChannelData if a channel is bound (padded on
    /// streams), a Send indication otherwise. Returns the message to send to the server,
    /// borrowed from `out` (`out` needs [`SEND_OVERHEAD`] bytes more than `data`).
    pub fn send_to<'o>(
        &mut self,
        peer: SocketAddr,
        data: &[u8],
        out: &'o mut [u8],
    ) -> Result<Transmit<&'o [u8]>, TurnSendError> {
        if self.state != State::Allocated {
            return Err(TurnSendError::NotAllocated);
        }
        if !self.has_permission(peer.ip()) {
            return Err(TurnSendError::NoPermission);
        }
        let len = match self.channel(peer) {
            Some(ch) => ChannelData::build(ch, data, self.config.transport.is_stream(), out)
                .map_err(|_| TurnSendError::BufferTooSmall)?,
            None => {
                let tid = TransactionId(self.rng.gen());
                let mut b = MessageBuilder::new(
                    out,
                    MessageType::new(Method::SEND, Class::Indication),
                    tid,
                )
                .map_err(|_| TurnSendError::BufferTooSmall)?;
                b.add(&XorPeerAddress(peer))
                    .and_then(|b| b.add(&Data(data)))
                    .map_err(|_| TurnSendError::BufferTooSmall)?;
                b.finish().len()
            }
        };
        Ok(Transmit {
            transport: self.config.transport,
            local: self.local,
            remote: self.config.server,
            data: &out[..len],
        })
    }

    /// The next output: messages for the server, events, and last the timer.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<TurnEvent>> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| Output::Timeout(self.next_timeout()))
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    fn next_timeout(&self) -> Option<Instant> {
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
        self.out.timer_moved();
        if self.is_done() {
            return;
        }
        let mut i = 0;
        while i < self.transactions.len() {
            match self.transactions[i].timer.poll(now) {
                Some(RetransmitAction::Resend) => {
                    let bytes = self.transactions[i].bytes.clone();
                    self.send(bytes);
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

    /// A datagram or frame from the server. Returns application data from a peer (a Data
    /// indication or ChannelData), borrowed from the input; handles answers to requests.
    /// Anything malformed, unexpected or not from the server is ignored.
    pub fn handle_receive<'a>(
        &mut self,
        now: Instant,
        r: Receive<'a>,
    ) -> Option<(SocketAddr, &'a [u8])> {
        if r.remote != self.config.server || r.transport != self.config.transport {
            return None;
        }
        match demux(r.data) {
            PacketKind::ChannelData => {
                let cd = ChannelData::parse(r.data).ok()?;
                let peer = self
                    .channels
                    .iter()
                    .find(|c| c.number == cd.channel() && c.bound)?
                    .peer;
                Some((peer, cd.data()))
            }
            PacketKind::Stun => {
                let msg = Message::parse(r.data).ok()?;
                self.out.timer_moved();
                self.handle_message(now, &msg)
            }
            _ => None,
        }
    }

    /// RFC 6062: asks the server to open a TCP connection to `peer` from the relayed address
    /// (a TCP allocation only); [`TurnEvent::PeerConnected`] or [`TurnEvent::ConnectFailed`]
    /// tells how it went.
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) {
        if self.state != State::Allocated || !self.config.relay_tcp {
            self.out.event(TurnEvent::ConnectFailed(
                peer,
                TurnError::Malformed("no TCP allocation"),
            ));
            return;
        }
        self.request(now, Request::Connect(peer), 0);
    }

    /// What binds a new connection to the server (from another local address) to peer
    /// connection `connection_id` (RFC 6062 §4.3), with this client's credentials and nonce;
    /// `None` before the allocation exists.
    pub fn connection_binder(
        &self,
        connection_id: u32,
        local: SocketAddr,
        seed: u64,
    ) -> Option<ConnectionBinder> {
        let (realm, nonce) = (self.realm.clone()?, self.nonce.clone()?);
        Some(ConnectionBinder::new(
            &self.config,
            local,
            (realm, nonce),
            connection_id,
            seed,
        ))
    }

    /// Queues a message for the server.
    fn send(&mut self, data: Vec<u8>) {
        self.out.transmit(Transmit {
            transport: self.config.transport,
            local: self.local,
            remote: self.config.server,
            data,
        });
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl sans_io::Core for TurnClient {
    type Event = TurnEvent;
    type Request = std::convert::Infallible;

    fn poll_output(&mut self) -> Option<Output<TurnEvent>> {
        TurnClient::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        TurnClient::handle_timeout(self, now)
    }
}
