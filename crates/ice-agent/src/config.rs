//! The agent's configuration: its role, timers and limits, its STUN and TURN servers, and
//! ICE credentials.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use sans_io::Transport;

/// A TURN server to gather a relayed candidate from.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServerConfig {
    /// The server's transport address (the driver resolves names).
    pub addr: SocketAddr,
    /// How to reach it: UDP, TCP, or TLS (`turns:`).
    pub transport: Transport,
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
    /// ICE renomination (draft-thatcher-ice-renomination, as libwebrtc implements it):
    /// signal `renomination` in the ICE options, and with a peer that does too, keep
    /// checking the pairs that could beat the selected one and switch when one succeeds
    /// (controlling: nominate it with a higher NOMINATION value; controlled: follow the
    /// highest value). Default on; a peer that does not signal it sees plain RFC 8445.
    pub renomination: bool,
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
            renomination: true,
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
