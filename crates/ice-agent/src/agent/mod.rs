//! The sans-IO ICE agent (RFC 8445) with trickle ICE (RFC 8838) and consent freshness
//! (RFC 7675).
//!
//! Inputs: [`Agent::add_local_socket`], [`Agent::handle_receive`],
//! [`Agent::handle_connection_data`], [`Agent::handle_timeout`], remote credentials and
//! candidates. Outputs: [`Agent::poll_transmit`], [`Agent::poll_event`],
//! [`Agent::poll_request`], [`Agent::poll_timeout`]. After any input the driver drains the
//! three queues and re-arms its timer.

mod checks;
mod gather;
mod receive;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun_codec::{IntegrityKey, TransactionId};

use crate::candidate::{Candidate, CandidateKind, CandidateTransport};
use crate::config::*;
use crate::turn_client::{TurnClient, TurnTransport};
use sans_io::Retransmit;

/// How a local candidate sends: from one of the host sockets, or through a TURN allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Socket(usize),
    Relay(usize),
}

#[derive(Debug)]
struct HostSocket {
    addr: SocketAddr,
    stream: usize,
    component: u16,
    /// The host candidate of this socket, if the address is used as one.
    candidate: Option<usize>,
}

#[derive(Debug)]
struct LocalCandidate {
    cand: Candidate,
    base: SocketAddr,
    path: Path,
    local_pref: u16,
}

/// Pair states (RFC 8445 §6.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Frozen,
    Waiting,
    InProgress,
    Succeeded,
    Failed,
}

#[derive(Debug)]
struct Check {
    id: TransactionId,
    /// When it was last (re)transmitted.
    sent_at: Instant,
    /// The transaction a triggered check replaced: its answer still counts (§7.3.1.4).
    previous: Option<TransactionId>,
    /// The role the request claimed.
    role: Role,
    timer: Retransmit,
    deadline: Instant,
    nominating: bool,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Pair {
    local: usize,
    remote: usize,
    component: u16,
    priority: u64,
    state: PairState,
    check: Option<Check>,
    /// The candidate the mapped address of a successful check names (RFC 8445 §7.2.5.3.2):
    /// the local side of the valid pair.
    valid_local: Option<usize>,
    succeeded_at: Option<Instant>,
    /// When the first check of the pair left.
    first_sent: Option<Instant>,
    /// Round-trip time of the check that succeeded (from its last transmission).
    rtt: Option<Duration>,
    /// The controlled agent saw USE-CANDIDATE for this pair (§7.3.1.5).
    remote_nominated: bool,
    /// The controlling agent's nominating check succeeded.
    nominated: bool,
    /// Queued for a nominating check (controlling).
    nominate: bool,
    queued: bool,
}

/// The selected pair of a component, kept apart from the check list so an ICE restart can
/// clear the list while data still flows (RFC 8445 §9).
#[derive(Debug)]
struct Selected {
    pair: Option<usize>,
    local: Candidate,
    remote: Candidate,
    path: Path,
    last_response: Instant,
    next_consent: Instant,
    consent: Option<Check>,
    last_sent: Instant,
}

#[derive(Debug, Default)]
struct Stream {
    components: u16,
    local: Vec<LocalCandidate>,
    remote: Vec<Candidate>,
    remote_index: HashMap<(u16, SocketAddr), usize>,
    pairs: Vec<Pair>,
    triggered: VecDeque<usize>,
    selected: Vec<Option<Selected>>,
    remote_end_of_candidates: bool,
    last_remote_candidate: Option<Instant>,
    /// Armed when a remote candidate arrives: when to re-check for failure without
    /// end-of-candidates (`trickle_wait` later); disarmed once it has fired.
    trickle_timer: Option<Instant>,
    gathering_complete_sent: bool,
}

impl Stream {
    /// The foundation of the pair (local, remote): the two candidates' foundations
    /// (RFC 8445 §6.1.2.6).
    fn pair_foundation(&self, local: usize, remote: usize) -> (&str, &str) {
        (
            &self.local[local].cand.foundation,
            &self.remote[remote].foundation,
        )
    }

    /// Whether a pair of the same foundation as (local, remote) is Waiting or In-Progress:
    /// then a new or frozen pair of that foundation stays Frozen (§6.1.2.6, §6.1.4.2).
    fn foundation_busy(&self, local: usize, remote: usize) -> bool {
        let f = self.pair_foundation(local, remote);
        self.pairs.iter().any(|q| {
            matches!(q.state, PairState::Waiting | PairState::InProgress)
                && self.pair_foundation(q.local, q.remote) == f
        })
    }
}

#[derive(Debug)]
struct SrflxRequest {
    stream: usize,
    socket: usize,
    server: SocketAddr,
    id: TransactionId,
    bytes: Vec<u8>,
    timer: Retransmit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnPath {
    Udp(usize),
    Connection(ConnectionId, bool),
}

#[derive(Debug)]
struct Turn {
    client: TurnClient,
    stream: usize,
    component: u16,
    base_socket: usize,
    path: TurnPath,
    candidate: Option<usize>,
    /// Gathering from this server is over (allocated, failed, or past the deadline).
    gathered: bool,
    deadline: Instant,
    /// Left from before an ICE restart: carries the old selected pair, gathers nothing.
    retired: bool,
    /// Kept over an ICE restart: a Refresh is checking that the allocation is still ours
    /// before its candidates join the new generation.
    revalidating: bool,
}

/// An ICE agent. See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    rng: StdRng,
    role: Role,
    tie_breaker: u64,
    local_credentials: Credentials,
    local_key: IntegrityKey,
    remote_credentials: Option<Credentials>,
    remote_key: Option<IntegrityKey>,
    streams: Vec<Stream>,
    sockets: Vec<HostSocket>,
    host_ips: Vec<IpAddr>,
    /// Foundation keys (§5.1.1.3): type, base IP, and the STUN/TURN server's IP and transport.
    foundations: Vec<FoundationKey>,
    srflx: Vec<SrflxRequest>,
    turns: Vec<Turn>,
    next_connection: u64,
    next_check: Option<Instant>,
    last_check: Option<Instant>,
    state: ConnectionState,
    /// Failed, and why: consent lost stays failed until a restart.
    consent_lost: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    requests: VecDeque<DriverRequest>,
    stats: AgentStats,
    buf: Vec<u8>,
}

/// What makes a foundation (RFC 8445 §5.1.1.3): type, base IP, and the STUN or TURN server
/// with its transport.
type FoundationKey = (CandidateKind, IpAddr, Option<(IpAddr, TurnTransport)>);

/// Room for a STUN check with TURN framing around it.
const BUF_LEN: usize = 2048;

fn generate(rng: &mut StdRng, len: usize) -> String {
    // ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4); alphanumerics only, so the
    // strings need no escaping anywhere.
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

fn new_credentials(rng: &mut StdRng) -> (Credentials, IntegrityKey) {
    // RFC 8445 §5.3: at least 24 bits of randomness in the ufrag, 128 in the password.
    let c = Credentials {
        ufrag: generate(rng, 8),
        pwd: generate(rng, 24),
    };
    let key = IntegrityKey::new(c.pwd.as_bytes());
    (c, key)
}

impl Agent {
    /// A new agent. Add streams with [`add_stream`](Self::add_stream) and sockets with
    /// [`add_local_socket`](Self::add_local_socket).
    pub fn new(config: AgentConfig) -> Agent {
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        let (local_credentials, local_key) = new_credentials(&mut rng);
        let role = if config.lite {
            Role::Controlled
        } else {
            config.role
        };
        Agent {
            tie_breaker: rng.gen(),
            rng,
            role,
            local_credentials,
            local_key,
            remote_credentials: None,
            remote_key: None,
            streams: Vec::new(),
            sockets: Vec::new(),
            host_ips: Vec::new(),
            foundations: Vec::new(),
            srflx: Vec::new(),
            turns: Vec::new(),
            next_connection: 1,
            next_check: None,
            last_check: None,
            state: ConnectionState::New,
            consent_lost: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
            stats: AgentStats::default(),
            buf: vec![0; BUF_LEN],
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The local credentials to signal to the peer (`a=ice-ufrag`, `a=ice-pwd`).
    pub fn local_credentials(&self) -> &Credentials {
        &self.local_credentials
    }

    /// The current role (a role conflict may have changed it).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// Adds a data stream with `components` components (1 with rtcp-mux, the common case).
    pub fn add_stream(&mut self, components: u16) -> StreamId {
        let components = components.max(1);
        self.streams.push(Stream {
            components,
            selected: (0..components).map(|_| None).collect(),
            ..Stream::default()
        });
        StreamId(self.streams.len() - 1)
    }

    /// The peer's credentials (from its offer or answer). `lite` says the peer is an
    /// ICE-lite agent (`a=ice-lite`): then this agent takes the controlling role.
    pub fn set_remote_credentials(&mut self, now: Instant, credentials: Credentials, lite: bool) {
        self.remote_key = Some(IntegrityKey::new(credentials.pwd.as_bytes()));
        self.remote_credentials = Some(credentials);
        if lite && !self.config.lite && self.role != Role::Controlling {
            self.set_role(Role::Controlling);
        }
        self.wake_checks(now);
        self.update_state(now);
    }

    /// The selected pair of a component: local and remote candidate.
    pub fn selected_pair(
        &self,
        stream: StreamId,
        component: u16,
    ) -> Option<(&Candidate, &Candidate)> {
        let s = self.streams.get(stream.0)?;
        let sel = s
            .selected
            .get(usize::from(component).checked_sub(1)?)?
            .as_ref()?;
        Some((&sel.local, &sel.remote))
    }

    /// The local candidates gathered so far for a stream (for an offer written after
    /// gathering instead of trickling).
    pub fn local_candidates(&self, stream: StreamId) -> Vec<Candidate> {
        self.streams
            .get(stream.0)
            .map(|s| {
                s.local
                    .iter()
                    .filter(|l| l.cand.kind != CandidateKind::PeerReflexive)
                    .map(|l| l.cand.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The remote candidates of a stream: signalled ones and peer-reflexive ones learned
    /// from checks.
    pub fn remote_candidates(&self, stream: StreamId) -> &[Candidate] {
        self.streams.get(stream.0).map_or(&[], |s| &s.remote)
    }

    /// The number of candidate pairs in a stream's check list.
    pub fn pair_count(&self, stream: StreamId) -> usize {
        self.streams.get(stream.0).map_or(0, |s| s.pairs.len())
    }

    /// Adds a remote candidate (trickle ICE: at any time). Candidates of a transport other
    /// than UDP are accepted and ignored. Adding the same candidate twice is harmless.
    pub fn add_remote_candidate(
        &mut self,
        now: Instant,
        stream: StreamId,
        candidate: Candidate,
    ) -> Result<(), AddCandidateError> {
        let s = self
            .streams
            .get(stream.0)
            .ok_or(AddCandidateError::UnknownStream)?;
        if candidate.component == 0 || candidate.component > s.components {
            return Err(AddCandidateError::UnknownComponent(candidate.component));
        }
        if candidate.transport != CandidateTransport::Udp {
            return Ok(());
        }
        if let Some(&i) = s.remote_index.get(&(candidate.component, candidate.addr)) {
            // Known, perhaps as peer-reflexive: signalling gives the real type and priority
            // (RFC 8445 §7.3.1.3 lets the signalled one replace it).
            let s = &mut self.streams[stream.0];
            if s.remote[i].kind == CandidateKind::PeerReflexive {
                s.remote[i] = candidate;
            }
            return Ok(());
        }
        if s.remote.len() >= self.config.max_remote_candidates {
            return Err(AddCandidateError::TooMany);
        }
        let s = &mut self.streams[stream.0];
        s.last_remote_candidate = Some(now);
        s.trickle_timer = Some(now + self.config.trickle_wait);
        self.insert_remote(now, stream.0, candidate);
        self.update_state(now);
        Ok(())
    }

    /// Parses an `a=candidate` line and adds it.
    pub fn add_remote_candidate_line(
        &mut self,
        now: Instant,
        stream: StreamId,
        line: &str,
    ) -> Result<(), AddCandidateError> {
        let c = Candidate::parse(line)?;
        self.add_remote_candidate(now, stream, c)
    }

    /// The peer signalled end-of-candidates for the stream (RFC 8838 §8.2).
    pub fn end_of_remote_candidates(&mut self, now: Instant, stream: StreamId) {
        if let Some(s) = self.streams.get_mut(stream.0) {
            s.remote_end_of_candidates = true;
        }
        self.update_state(now);
    }

    /// ICE restart (RFC 8445 §9): new local credentials, the remote ones forgotten until
    /// the peer's new ones arrive, candidates gathered again. The selected pairs carry data
    /// until new ones are selected.
    pub fn restart(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        let (c, k) = new_credentials(&mut self.rng);
        self.local_credentials = c;
        self.local_key = k;
        self.remote_credentials = None;
        self.remote_key = None;
        self.consent_lost = false;
        self.srflx.clear();
        // Live allocations are kept: the old selected pair may run through one, and a new
        // Allocate from the same 5-tuple would get 437 (RFC 8656 §7.2). A Refresh checks each
        // is still ours (a NAT rebinding loses it) before its candidates join the new
        // generation; a lost one is allocated again. Done ones are retired and gathered anew.
        for t in &mut self.turns {
            // Its candidate belonged to the old generation (`local` is cleared below).
            t.candidate = None;
            if t.retired || t.client.is_done() {
                t.retired = true;
                t.gathered = true;
            } else if t.client.relayed().is_some() {
                t.revalidating = true;
                t.gathered = false;
                t.deadline = now + self.config.gather_timeout;
                t.client.refresh(now);
            } else {
                // Still allocating: its candidate will be of the new generation.
                t.deadline = now + self.config.gather_timeout;
            }
        }
        for s in &mut self.streams {
            s.local.clear();
            s.remote.clear();
            s.remote_index.clear();
            s.pairs.clear();
            s.triggered.clear();
            s.remote_end_of_candidates = false;
            s.last_remote_candidate = None;
            s.trickle_timer = None;
            s.gathering_complete_sent = false;
            for sel in s.selected.iter_mut().flatten() {
                // No consent checks until a new pair is selected (the old credentials are
                // gone); the old pair still lapses 30 s after its last answer.
                sel.pair = None;
                sel.consent = None;
            }
        }
        for sock in &mut self.sockets {
            sock.candidate = None;
        }
        self.next_check = None;
        for t in 0..self.turns.len() {
            self.drain_turn(now, t);
        }
        for i in 0..self.sockets.len() {
            self.gather_from_socket(now, i);
        }
        // Still Connected while the old pairs carry data (or Checking if there are none).
        self.update_state(now);
    }

    /// Stops everything: TURN allocations are released, connections closed, no more
    /// timers.
    pub fn close(&mut self, now: Instant) {
        for i in 0..self.turns.len() {
            self.turns[i].client.close(now);
            self.drain_turn(now, i);
            if let TurnPath::Connection(id, _) = self.turns[i].path {
                self.requests.push_back(DriverRequest::Close { id });
            }
        }
        self.turns.clear();
        self.srflx.clear();
        for s in &mut self.streams {
            s.pairs.clear();
            s.triggered.clear();
            s.selected.iter_mut().for_each(|x| *x = None);
        }
        self.next_check = None;
        self.set_state(ConnectionState::Closed);
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next request for the driver.
    pub fn poll_request(&mut self) -> Option<DriverRequest> {
        self.requests.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some(n) = self.next_check {
            at(n);
        }
        for r in &self.srflx {
            at(r.timer.next());
        }
        for turn in &self.turns {
            if let Some(x) = turn.client.poll_timeout() {
                at(x);
            }
            if !turn.gathered {
                at(turn.deadline);
            }
        }
        for s in &self.streams {
            for p in &s.pairs {
                if let Some(c) = &p.check {
                    at(c.timer.next().min(c.deadline));
                }
            }
            for sel in s.selected.iter().flatten() {
                if self.config.lite {
                    // No consent checks of its own: keepalives instead.
                    at(sel.last_sent + self.config.keepalive_interval);
                } else {
                    at(sel.next_consent);
                    if let Some(c) = &sel.consent {
                        at(c.timer.next());
                    }
                }
                at(sel.last_response + self.config.consent_timeout);
                if self.state == ConnectionState::Connected
                    || self.state == ConnectionState::Completed
                {
                    at(sel.last_response + self.config.disconnected_after);
                }
            }
            if let Some(x) = self.nomination_due(s) {
                at(x);
            }
            if let Some(x) = s.trickle_timer {
                at(x);
            }
        }
        t
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        self.gather_timeout(now);
        self.checks_timeout(now);
        self.consent_timeout(now);
        // The trickle wait only matters to `update_state`, below.
        for s in &mut self.streams {
            s.trickle_timer = s.trickle_timer.filter(|&t| t > now);
        }
        self.update_state(now);
    }

    /// Sends application data on the component's selected pair: writes the datagram (with
    /// TURN framing when relayed) into `out` and says where it goes. Data whose first byte
    /// is 0 to 3 is refused: the peer would demultiplex it as STUN (RFC 7983 §7).
    pub fn send(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(Via, usize), SendError> {
        if data.first().is_some_and(|&b| b <= 3) {
            return Err(SendError::LooksLikeStun);
        }
        let sel = self
            .streams
            .get_mut(stream.0)
            .ok_or(SendError::UnknownComponent)?
            .selected
            .get_mut(usize::from(component).wrapping_sub(1))
            .ok_or(SendError::UnknownComponent)?
            .as_mut()
            .ok_or(SendError::NotConnected)?;
        sel.last_sent = now;
        let (path, remote) = (sel.path, sel.remote.addr);
        match path {
            Path::Socket(i) => {
                let out = out.get_mut(..data.len()).ok_or(SendError::BufferTooSmall)?;
                out.copy_from_slice(data);
                Ok((
                    Via::Udp {
                        local: self.sockets[i].addr,
                        remote,
                    },
                    data.len(),
                ))
            }
            Path::Relay(t) => {
                let turn = &mut self.turns[t];
                let len = turn
                    .client
                    .send_to(remote, data, out)
                    .map_err(|e| match e {
                        crate::turn_client::TurnSendError::BufferTooSmall => {
                            SendError::BufferTooSmall
                        }
                        _ => SendError::NotConnected,
                    })?;
                Ok((self.turn_via(t), len))
            }
        }
    }

    fn turn_via(&self, t: usize) -> Via {
        let turn = &self.turns[t];
        match turn.path {
            TurnPath::Udp(s) => Via::Udp {
                local: self.sockets[s].addr,
                remote: turn.client.server(),
            },
            TurnPath::Connection(id, _) => Via::Connection(id),
        }
    }

    fn set_role(&mut self, role: Role) {
        if self.role == role {
            return;
        }
        tracing::debug!(?role, "ICE role changed");
        self.role = role;
        // Pair priorities depend on the role (RFC 8445 §6.1.2.3, §7.2.5.1).
        for si in 0..self.streams.len() {
            for pi in 0..self.streams[si].pairs.len() {
                let p = &self.streams[si].pairs[pi];
                let prio = self.pair_priority(si, p.local, p.remote);
                self.streams[si].pairs[pi].priority = prio;
            }
        }
    }

    fn pair_priority(&self, stream: usize, local: usize, remote: usize) -> u64 {
        let s = &self.streams[stream];
        let l = s.local[local].cand.priority;
        let r = s.remote[remote].priority;
        match self.role {
            Role::Controlling => crate::candidate::pair_priority(l, r),
            Role::Controlled => crate::candidate::pair_priority(r, l),
        }
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            tracing::debug!(?state, "ICE connection state");
            self.state = state;
            self.events.push_back(Event::StateChanged(state));
        }
    }

    /// Recomputes the connection state from the streams (RFC 8445 §8.1.2 for failure).
    fn update_state(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        if self.consent_lost {
            self.set_state(ConnectionState::Failed);
            return;
        }
        if self.remote_credentials.is_none() && self.all_selected() == Some(false) {
            if self.state != ConnectionState::New {
                self.set_state(ConnectionState::Checking);
            }
            return;
        }
        if self.streams.is_empty() {
            return;
        }
        if self.all_selected() == Some(true) {
            let stale = self
                .streams
                .iter()
                .flat_map(|s| s.selected.iter().flatten())
                .any(|sel| {
                    now.saturating_duration_since(sel.last_response)
                        >= self.config.disconnected_after
                });
            let done = self.remote_credentials.is_some()
                && self.streams.iter().all(|s| {
                    s.remote_end_of_candidates
                        && s.gathering_complete_sent
                        && !s.pairs.iter().any(|p| {
                            matches!(p.state, PairState::Waiting | PairState::InProgress)
                                && !self.component_done(s, p.component)
                        })
                });
            if done && matches!(self.state, ConnectionState::New | ConnectionState::Checking) {
                // As in WebRTC: connected comes before completed, even in one step.
                self.set_state(ConnectionState::Connected);
            }
            self.set_state(if stale {
                ConnectionState::Disconnected
            } else if done {
                ConnectionState::Completed
            } else {
                ConnectionState::Connected
            });
            return;
        }
        // Failed when some component without a selected pair has nothing left to try.
        let failed = self.streams.iter().any(|s| {
            (1..=s.components).any(|c| {
                s.selected[usize::from(c - 1)].is_none()
                    && !s
                        .pairs
                        .iter()
                        .any(|p| p.component == c && p.state != PairState::Failed)
                    && (s.remote_end_of_candidates
                        || s.last_remote_candidate
                            .is_some_and(|t| now >= t + self.config.trickle_wait))
                    && s.gathering_complete_sent
            })
        });
        if failed {
            self.set_state(ConnectionState::Failed);
        } else if self.remote_credentials.is_some() {
            self.set_state(ConnectionState::Checking);
        }
    }

    /// Whether every component of every stream has a selected pair (`None` without streams).
    fn all_selected(&self) -> Option<bool> {
        if self.streams.is_empty() {
            return None;
        }
        Some(
            self.streams
                .iter()
                .all(|s| s.selected.iter().all(|x| x.is_some())),
        )
    }

    /// Whether the component's selection is final: a nominated pair is selected.
    fn component_done(&self, s: &Stream, component: u16) -> bool {
        s.selected[usize::from(component - 1)]
            .as_ref()
            .and_then(|sel| sel.pair)
            .is_some_and(|p| s.pairs[p].nominated || s.pairs[p].remote_nominated)
    }

    fn foundation(
        &mut self,
        kind: CandidateKind,
        base: IpAddr,
        server: Option<(IpAddr, TurnTransport)>,
    ) -> String {
        // RFC 8445 §5.1.1.3: the same type, base IP, server and transport share a
        // foundation.
        let key = (kind, base, server);
        let i = match self.foundations.iter().position(|f| *f == key) {
            Some(i) => i,
            None => {
                self.foundations.push(key);
                self.foundations.len() - 1
            }
        };
        (i + 1).to_string()
    }

    fn new_transaction_id(&mut self) -> TransactionId {
        TransactionId(self.rng.gen())
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // ±20 % (RFC 7675 §5.1).
        d.mul_f64(self.rng.gen_range(0.8..1.2))
    }
}
