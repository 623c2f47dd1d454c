//! What the agent tells its application and its driver: events, driver requests, received
//! data, the connection state and counters.

use std::net::SocketAddr;

use sans_io::{ConnectionId, Transport};

use crate::candidate::Candidate;

/// A data stream of the session (an SDP media section), with its components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub usize);

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

/// Something the agent needs its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Open a TCP connection (with TLS if `tls_name` is set) to a TURN server, from the
    /// local IP of `local` (port chosen by the driver), then report it with
    /// [`Agent::connection_established`](crate::Agent::connection_established) (with its
    /// local address) or [`Agent::connection_closed`](crate::Agent::connection_closed). The
    /// connection's frames come and go as [`Transmit`](sans_io::Transmit) and
    /// [`Receive`](sans_io::Receive) between its two addresses, `transport` TCP or TLS.
    Connect {
        /// The agent's name for the connection.
        id: ConnectionId,
        /// TCP, or TLS (then `tls_name` is set).
        transport: Transport,
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
}

/// What [`Agent::poll_output`](crate::Agent::poll_output) gives: datagrams and frames to send,
/// [`Event`]s, [`Request`]s, and last the timer.
pub type Output = sans_io::Output<Event, Request>;

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
