//! The agent's configuration and the types it exchanges with its driver and application.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::candidate::Candidate;
use crate::turn_client::TurnTransport;

/// A TURN server to gather a relayed candidate from.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServerConfig {
    /// The server's transport address (the driver resolves names).
    pub addr: SocketAddr,
    /// How to reach it.
    pub transport: TurnTransport,
    /// The name to verify the server's certificate against (TLS only).
    pub tls_name: Option<String>,
    /// The long-term credential user name.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for TurnServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never goes to logs.
        f.debug_struct("TurnServerConfig")
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .field("tls_name", &self.tls_name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The agent's initial role (RFC 8445 §6.1.1); a role conflict may change it (§7.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Nominates pairs. The offerer, by convention.
    Controlling,
    /// Accepts the controlling agent's nominations.
    Controlled,
}

/// Configuration of an [`Agent`](crate::Agent). [`AgentConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The initial role.
    pub role: Role,
    /// Be an ICE-lite agent (RFC 8445 §2.5): host candidates only, no checks of our own,
    /// always controlled.
    pub lite: bool,
    /// STUN servers for server-reflexive candidates.
    pub stun_servers: Vec<SocketAddr>,
    /// TURN servers for relayed candidates.
    pub turn_servers: Vec<TurnServerConfig>,
    /// Ta: the pacing of new checks (RFC 8445 §14.2). Default 50 ms.
    pub ta: Duration,
    /// The initial retransmission timeout of connectivity and consent checks and of STUN
    /// gathering requests (RFC 8489 §6.2.1, RFC 8445 §14.3). Default 500 ms.
    pub rto: Duration,
    /// Transmissions of a connectivity check before the pair fails. Default 7 (Rc).
    pub max_check_sends: u32,
    /// A pair whose check has had no answer this long after its first transmission fails,
    /// whatever is left of the retransmission schedule. Default 10 s: RFC 8489's 39.5 s would
    /// keep unreachable pairs, and with them the connection state, in checking long after
    /// any answer could arrive.
    pub check_timeout: Duration,
    /// How long gathering from one STUN or TURN server may take before it is given up, so a
    /// dead server never holds up the end of gathering. Default 3 s.
    pub gather_timeout: Duration,
    /// At most this many pairs per check list (RFC 8445 §6.1.2.5). Default 100.
    pub max_pairs: usize,
    /// At most this many remote candidates per stream are kept. Default 1000.
    pub max_remote_candidates: usize,
    /// The controlling agent nominates the best succeeded pair once no pair of higher
    /// priority can still succeed, or this long after that pair succeeded, whichever comes
    /// first. Default 100 ms.
    pub nomination_grace: Duration,
    /// Consent checks on the selected pair (RFC 7675 §5.1): every interval, randomized by
    /// ±20 %. Default 5 s.
    pub consent_interval: Duration,
    /// Consent is lost when no check has been answered for this long (RFC 7675: 30 s). An
    /// ICE-lite agent, which sends no checks, counts from the peer's last check instead.
    pub consent_timeout: Duration,
    /// The connection state shows `Disconnected` after this long without an answer to a
    /// consent check (the pair is kept until consent is lost). Default 7.5 s.
    pub disconnected_after: Duration,
    /// Keepalives (Binding indications, RFC 8445 §11) when nothing was sent on the selected
    /// pair for this long. Only ICE-lite agents need them: consent checks keep a full
    /// agent's pair alive. Default 15 s.
    pub keepalive_interval: Duration,
    /// When every pair has failed and the peer has not said end-of-candidates, wait this
    /// long for more candidates before failing. Default 5 s.
    pub trickle_wait: Duration,
    /// Gather and use relayed candidates only, like WebRTC's `iceTransportPolicy: "relay"`:
    /// no host or server-reflexive candidate is signalled or paired, so the peer never learns
    /// a local address. The sockets still reach the TURN servers (loopback ones too).
    pub relay_only: bool,
    /// Keep loopback host addresses as candidates (tests on one machine).
    pub allow_loopback: bool,
    /// Keep link-local host addresses as candidates.
    pub allow_link_local: bool,
    /// A SOFTWARE attribute for requests to STUN and TURN servers.
    pub software: Option<String>,
    /// Seed for credentials, tie-breaker, transaction ids and consent jitter; `None` draws
    /// one from the operating system. Set it only for reproducible tests.
    pub seed: Option<u64>,
}

impl AgentConfig {
    /// The defaults, with the given role.
    pub fn new(role: Role) -> AgentConfig {
        AgentConfig {
            role,
            lite: false,
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            ta: Duration::from_millis(50),
            rto: Duration::from_millis(500),
            max_check_sends: 7,
            check_timeout: Duration::from_secs(10),
            gather_timeout: Duration::from_secs(3),
            max_pairs: 100,
            max_remote_candidates: 1000,
            nomination_grace: Duration::from_millis(100),
            consent_interval: Duration::from_secs(5),
            consent_timeout: Duration::from_secs(30),
            disconnected_after: Duration::from_millis(7500),
            keepalive_interval: Duration::from_secs(15),
            trickle_wait: Duration::from_secs(5),
            relay_only: false,
            allow_loopback: false,
            allow_link_local: false,
            software: None,
            seed: None,
        }
    }
}

/// ICE credentials (RFC 8445 §5.3): the user name fragment and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ice-ufrag`.
    pub ufrag: String,
    /// `ice-pwd`.
    pub pwd: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never goes to logs.
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

/// A data stream of the session (an SDP media section), with its components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub usize);

pub use sans_io::ConnectionId;

/// The connection state of the whole agent, as in WebRTC's `RTCIceConnectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Waiting for the peer's credentials.
    New,
    /// Checking pairs; not every component has a selected pair yet.
    Checking,
    /// Every component of every stream has a selected pair.
    Connected,
    /// Connected, and checking is over: both sides are done gathering and checking.
    Completed,
    /// Some component has no pair that can work, or consent was lost (RFC 7675).
    Failed,
    /// Connected before, but consent checks are going unanswered.
    Disconnected,
    /// [`Agent::close`](crate::Agent::close) was called.
    Closed,
}

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// A UDP datagram from one of the agent's sockets.
    Udp {
        /// The local socket's address.
        local: SocketAddr,
        /// The destination.
        remote: SocketAddr,
    },
    /// Bytes on a TCP or TLS connection to a TURN server.
    Connection(ConnectionId),
}

/// A packet for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub via: Via,
    /// What.
    pub data: Vec<u8>,
}

/// Something the agent needs its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverRequest {
    /// Open a TCP connection (with TLS if `tls_name` is set) to a TURN server, from the
    /// local IP of `local` (port chosen by the driver), then report it with
    /// [`Agent::connection_established`](crate::Agent::connection_established) or
    /// [`Agent::connection_closed`](crate::Agent::connection_closed).
    Connect {
        /// The agent's name for the connection.
        id: ConnectionId,
        /// The server.
        server: SocketAddr,
        /// Local address to connect from (port 0: any).
        local: SocketAddr,
        /// For TLS, the name to verify the server's certificate against.
        tls_name: Option<String>,
    },
    /// Close a connection the agent no longer needs.
    Close {
        /// The connection.
        id: ConnectionId,
    },
}

/// Something the application wants to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A local candidate to signal to the peer (trickle ICE, RFC 8838).
    LocalCandidate {
        /// The stream.
        stream: StreamId,
        /// The candidate.
        candidate: Candidate,
    },
    /// Gathering for the stream is over: signal end-of-candidates.
    GatheringComplete {
        /// The stream.
        stream: StreamId,
    },
    /// The connection state changed.
    StateChanged(ConnectionState),
    /// A component has a new selected pair: data now goes this way.
    SelectedPair {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
        /// The local candidate (host, server- or peer-reflexive, or relayed).
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// Application data that came through a TURN server over TCP or TLS (UDP data is
    /// returned by [`Agent::handle_receive`](crate::Agent::handle_receive) without copying).
    Data {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
        /// The payload.
        data: Vec<u8>,
    },
}

/// Application data received on a validated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// The stream.
    pub stream: StreamId,
    /// The component.
    pub component: u16,
    /// The payload.
    pub data: &'a [u8],
}

/// Counters of one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Connectivity checks sent (retransmissions included).
    pub checks_sent: u64,
    /// Checks received and answered.
    pub checks_answered: u64,
    /// STUN messages that failed USERNAME, MESSAGE-INTEGRITY or FINGERPRINT checks.
    pub auth_failures: u64,
    /// Role conflicts (487) sent or resolved.
    pub role_conflicts: u64,
    /// Consent checks sent.
    pub consent_checks_sent: u64,
    /// Packets that were not STUN and did not come from a validated pair.
    pub dropped_unvalidated: u64,
}

/// Why [`Agent::send`](crate::Agent::send) could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No such stream or component.
    #[error("no such stream or component")]
    UnknownComponent,
    /// The component has no selected pair yet (or lost consent).
    #[error("no selected pair")]
    NotConnected,
    /// The data begins with a byte from 0 to 3, which the peer would take for STUN and drop
    /// (RFC 7983 §7). DTLS, RTP, RTCP, QUIC and ZRTP never do.
    #[error("data that begins with 0-3 would be taken for STUN")]
    LooksLikeStun,
    /// The buffer is too small for the data and its TURN framing.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Why a remote candidate was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddCandidateError {
    /// No such stream.
    #[error("no such stream")]
    UnknownStream,
    /// The candidate's component is not one of the stream's.
    #[error("component {0} is not in the stream")]
    UnknownComponent(u16),
    /// The stream already holds [`AgentConfig::max_remote_candidates`] remote candidates.
    #[error("too many remote candidates")]
    TooMany,
    /// The candidate line did not parse.
    #[error(transparent)]
    Parse(#[from] crate::candidate::CandidateParseError),
}
