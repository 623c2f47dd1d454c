//! The sans-IO ICE agent (RFC 8445) with trickle ICE (RFC 8838) and consent freshness
//! (RFC 7675): the facade. Every input below ends in [`Agent::settle`], the one place where
//! what an input may have changed is followed up (TURN clients drained, nomination,
//! check pacing, end of gathering, the connection state, the timer); what the agent has to
//! say comes from [`Agent::poll_output`].
//!
//! The nouns live in their own files: `checklist` (candidates, pairs, the triggered queue),
//! `gather` (host, server-reflexive and relayed candidates), `relay` (a TURN allocation
//! slot), `checks` (sending and pacing checks), `receive` (what arrives: requests, answers,
//! data), `nomination` (nominating and selecting), `consent` (the selected pair's consent and
//! keepalives), `state` (the connection state).

mod checklist;
mod checks;
mod consent;
mod gather;
mod ids;
mod nomination;
mod receive;
mod relay;
mod state;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sans_io::{ConnectionId, Outputs, Receive, Transmit};
use stun_codec::{IntegrityKey, TransactionId};

use checklist::{CheckList, Path};
use consent::Selected;
use gather::Gathering;
use ids::IdVec;
use relay::RelayState;

use crate::candidate::{Candidate, CandidateTransport};
use crate::config::{AgentConfig, Credentials, Role};
use crate::event::{AgentStats, ConnectionState, Event, Output, Received, Request};
use crate::{AddCandidateError, SendError, StreamId};

/// A data stream of the session (an SDP media section) with its components.
#[derive(Debug, Default)]
struct Stream {
    components: u16,
    checklist: CheckList,
    /// Per component (index `component - 1`).
    selected: Vec<Option<Selected>>,
    remote_end_of_candidates: bool,
    last_remote_candidate: Option<Instant>,
    /// Armed when a remote candidate arrives: when to re-check for failure without
    /// end-of-candidates (`trickle_wait` later); disarmed once it has fired.
    trickle_timer: Option<Instant>,
    gathering_complete_sent: bool,
}

impl Stream {
    fn selected(&self, component: u16) -> Option<&Selected> {
        self.selected
            .get(usize::from(component).checked_sub(1)?)?
            .as_ref()
    }

    fn selected_mut(&mut self, component: u16) -> Option<&mut Selected> {
        self.selected
            .get_mut(usize::from(component).checked_sub(1)?)?
            .as_mut()
    }

    /// The pairs that carry the selection (a full check list must keep them).
    fn selected_pairs(&self) -> Vec<ids::PairId> {
        self.selected
            .iter()
            .flatten()
            .filter_map(|x| x.pair)
            .collect()
    }

    /// Whether the component's selection is final: a nominated pair is selected.
    fn component_done(&self, component: u16) -> bool {
        self.selected(component)
            .and_then(|sel| sel.pair)
            .is_some_and(|p| self.checklist.pairs[p].is_nominated())
    }

    /// Whether a pair is still worth checking: its component has no final selection yet,
    /// or, `renominating`, it relays less than the selected pair (a direct pair whose check
    /// comes through after a relayed one was nominated).
    fn worth_checking(&self, p: &checklist::Pair, renominating: bool) -> bool {
        if !self.component_done(p.component) {
            return true;
        }
        let list = &self.checklist;
        renominating
            && self
                .selected(p.component)
                .and_then(|sel| sel.pair)
                .is_some_and(|sp| list.relays(p) < list.relays(&list.pairs[sp]))
    }
}

/// Our ICE credentials and the peer's, with the integrity keys made from them.
#[derive(Debug)]
struct Keys {
    local: Credentials,
    local_key: IntegrityKey,
    remote: Option<(Credentials, IntegrityKey)>,
}

/// An ICE agent. See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    rng: StdRng,
    role: Role,
    tie_breaker: u64,
    keys: Keys,
    streams: IdVec<StreamId, Stream>,
    gathering: Gathering,
    /// Check pacing (Ta, §6.1.4.2): when the next new check may go, and when the last went.
    next_check: Option<Instant>,
    last_check: Option<Instant>,
    state: ConnectionState,
    /// Failed, and why: consent lost stays failed until a restart.
    consent_lost: bool,
    /// The peer signalled `renomination` in its ICE options.
    peer_renomination: bool,
    /// The last nomination value sent (renomination: each nomination gets a higher one).
    nominations: u32,
    out: Outputs<Event, Request>,
    stats: AgentStats,
    buf: Vec<u8>,
}

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

/// A socket the driver bound for the agent: [`Agent::add_local_sockets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSocket {
    /// The stream.
    pub stream: StreamId,
    /// The component.
    pub component: u16,
    /// The socket's address.
    pub addr: SocketAddr,
}

impl Agent {
    /// A new agent. Add streams with [`add_stream`](Self::add_stream) and sockets with
    /// [`add_local_sockets`](Self::add_local_sockets).
    pub fn new(config: AgentConfig) -> Agent {
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        let (local, local_key) = new_credentials(&mut rng);
        let role = if config.lite {
            Role::Controlled
        } else {
            config.role
        };
        Agent {
            tie_breaker: rng.gen(),
            rng,
            role,
            keys: Keys {
                local,
                local_key,
                remote: None,
            },
            streams: IdVec::default(),
            gathering: Gathering::default(),
            next_check: None,
            last_check: None,
            state: ConnectionState::New,
            consent_lost: false,
            peer_renomination: false,
            nominations: 0,
            out: Outputs::new(),
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
        &self.keys.local
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

    /// The selected pair of a component: local and remote candidate.
    pub fn selected_pair(
        &self,
        stream: StreamId,
        component: u16,
    ) -> Option<(&Candidate, &Candidate)> {
        let sel = self.streams.get(stream)?.selected(component)?;
        Some((&sel.local, &sel.remote))
    }

    /// The local candidates gathered so far for a stream (for an offer written after
    /// gathering instead of trickling).
    pub fn local_candidates(&self, stream: StreamId) -> Vec<Candidate> {
        self.streams
            .get(stream)
            .map(|s| s.checklist.signalled().cloned().collect())
            .unwrap_or_default()
    }

    /// The remote candidates of a stream: signalled ones and peer-reflexive ones learned
    /// from checks.
    pub fn remote_candidates(&self, stream: StreamId) -> &[Candidate] {
        self.streams
            .get(stream)
            .map_or(&[], |s| s.checklist.remote.as_slice())
    }

    /// The number of candidate pairs in a stream's check list.
    pub fn pair_count(&self, stream: StreamId) -> usize {
        self.streams
            .get(stream)
            .map_or(0, |s| s.checklist.pairs.len())
    }

    /// Adds a data stream with `components` components (1 with rtcp-mux, the common case).
    pub fn add_stream(&mut self, components: u16) -> StreamId {
        let components = components.max(1);
        self.streams.push(Stream {
            components,
            selected: (0..components).map(|_| None).collect(),
            ..Stream::default()
        })
    }

    /// Tells the agent about the UDP sockets the driver bound, all at once. Each address
    /// becomes a host candidate (unless it is loopback or link-local and the configuration
    /// leaves those out), and gathering from the STUN and TURN servers starts from it.
    /// Gathering of a stream can only complete once it has sockets, so its end-of-candidates
    /// comes after the candidates of every socket given here. Sockets given later (a new
    /// interface) give candidates a peer that already had end-of-candidates ignores
    /// (RFC 8838 §4.4); an ICE restart signals them.
    ///
    /// Refused as a whole if one names an unknown stream or component.
    pub fn add_local_sockets(
        &mut self,
        now: Instant,
        sockets: &[LocalSocket],
    ) -> Result<(), AddCandidateError> {
        for s in sockets {
            let stream = self
                .streams
                .get(s.stream)
                .ok_or(AddCandidateError::UnknownStream)?;
            if s.component == 0 || s.component > stream.components {
                return Err(AddCandidateError::UnknownComponent(s.component));
            }
        }
        if self.state != ConnectionState::Closed {
            for s in sockets {
                self.add_socket(now, *s);
            }
        }
        self.settle(now);
        Ok(())
    }

    /// The ICE options to signal (`a=ice-options`, RFC 8839 §5.6): `trickle`, and
    /// `renomination` unless [`AgentConfig::renomination`] is off.
    pub fn local_ice_options(&self) -> &'static str {
        if self.config.renomination && !self.config.lite {
            "trickle renomination"
        } else {
            "trickle"
        }
    }

    /// The peer's ICE options (the value of its `a=ice-options`, tokens separated by
    /// spaces). With `renomination` on both sides, the controlling agent keeps checking
    /// pairs that could beat the selected one and nominates again when one succeeds
    /// (draft-thatcher-ice-renomination); without it, the first nomination is final.
    pub fn set_remote_ice_options(&mut self, now: Instant, options: &str) {
        self.peer_renomination = options
            .split_ascii_whitespace()
            .any(|o| o == "renomination");
        self.settle(now);
    }

    /// Whether nominations may be replaced: both sides signalled renomination, and neither
    /// is ICE-lite.
    fn renominating(&self) -> bool {
        self.config.renomination && self.peer_renomination && !self.config.lite
    }

    /// The peer's credentials (from its offer or answer). `lite` says the peer is an
    /// ICE-lite agent (`a=ice-lite`): then this agent takes the controlling role.
    pub fn set_remote_credentials(&mut self, now: Instant, credentials: Credentials, lite: bool) {
        let key = IntegrityKey::new(credentials.pwd.as_bytes());
        self.keys.remote = Some((credentials, key));
        if lite && !self.config.lite && self.role != Role::Controlling {
            self.set_role(Role::Controlling);
        }
        self.settle(now);
    }

    /// Adds a remote candidate (trickle ICE: at any time). Candidates of a transport other
    /// than UDP are accepted and ignored. Adding the same candidate twice is harmless.
    pub fn add_remote_candidate(
        &mut self,
        now: Instant,
        stream: StreamId,
        candidate: Candidate,
    ) -> Result<(), AddCandidateError> {
        let r = self.insert_signalled(now, stream, candidate);
        self.settle(now);
        r
    }

    fn insert_signalled(
        &mut self,
        now: Instant,
        stream: StreamId,
        candidate: Candidate,
    ) -> Result<(), AddCandidateError> {
        let s = self
            .streams
            .get_mut(stream)
            .ok_or(AddCandidateError::UnknownStream)?;
        if candidate.component == 0 || candidate.component > s.components {
            return Err(AddCandidateError::UnknownComponent(candidate.component));
        }
        if candidate.transport != CandidateTransport::Udp {
            return Ok(());
        }
        if let Some(i) = s.checklist.remote_at(candidate.component, candidate.addr) {
            // Known, perhaps as peer-reflexive: signalling gives the real type and priority
            // (RFC 8445 §7.3.1.3 lets the signalled one replace it).
            let known = &mut s.checklist.remote[i];
            if known.kind == crate::CandidateKind::PeerReflexive {
                *known = candidate;
            }
            return Ok(());
        }
        if s.checklist.remote.len() >= self.config.max_remote_candidates {
            return Err(AddCandidateError::TooMany);
        }
        s.last_remote_candidate = Some(now);
        s.trickle_timer = Some(now + self.config.trickle_wait);
        self.insert_remote(now, stream, candidate);
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
        if let Some(s) = self.streams.get_mut(stream) {
            s.remote_end_of_candidates = true;
        }
        self.settle(now);
    }

    /// ICE restart (RFC 8445 §9): new local credentials, the remote ones forgotten until
    /// the peer's new ones arrive, candidates gathered again. The selected pairs carry data
    /// until new ones are selected.
    pub fn restart(&mut self, now: Instant) {
        if self.state != ConnectionState::Closed {
            let (c, k) = new_credentials(&mut self.rng);
            self.keys = Keys {
                local: c,
                local_key: k,
                remote: None,
            };
            self.consent_lost = false;
            for s in self.streams.values_mut() {
                s.checklist.clear();
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
            self.next_check = None;
            self.regather(now);
        }
        // Still Connected while the old pairs carry data (or Checking if there are none).
        self.settle(now);
    }

    /// Stops everything: TURN allocations are released, connections closed, no more
    /// timers.
    pub fn close(&mut self, now: Instant) {
        for r in self.gathering.relays.ids() {
            self.with_client(now, r, |c| c.close(now));
            if let Some(id) = self.gathering.relays[r].connection() {
                self.out.request(Request::Close { id });
            }
        }
        self.gathering.relays.clear();
        self.gathering.srflx.clear();
        for s in self.streams.values_mut() {
            s.checklist.pairs.clear();
            s.checklist.triggered.clear();
            s.selected.iter_mut().for_each(|x| *x = None);
        }
        self.next_check = None;
        self.set_state(ConnectionState::Closed);
        self.out.timer_moved();
    }

    /// A connection the driver opened for the agent ([`Request::Connect`]) is up; `local` is
    /// its local address, from which the agent's frames on it go.
    pub fn connection_established(&mut self, now: Instant, id: ConnectionId, local: SocketAddr) {
        if let Some(r) = self.gathering.relay_on(id) {
            self.connected(now, r, local);
        }
        self.settle(now);
    }

    /// A connection failed to open, ended, or its driver closed it because its bytes were not
    /// a sequence of STUN and ChannelData frames.
    pub fn connection_closed(&mut self, now: Instant, id: ConnectionId) {
        if let Some(r) = self.gathering.relay_on(id) {
            if self.gathering.relays[r].client.is_some() {
                self.with_client(now, r, |c| c.connection_closed(now));
            } else {
                // Never connected: nothing to gather from this server.
                self.gathering.relays[r].state = RelayState::Done;
            }
        }
        self.settle(now);
    }

    /// Bytes that arrived: a UDP datagram on one of the agent's sockets, or a frame on a
    /// TURN connection (the driver cuts the stream with `stun_codec::StreamFramer`). Returns
    /// application data if it came on a validated pair, directly or through a TURN relay,
    /// borrowed from the input; STUN is consumed. Anything malformed, unauthenticated or
    /// unexpected is dropped without creating state.
    #[must_use = "application data is returned, not queued"]
    pub fn handle_receive<'a>(&mut self, now: Instant, r: Receive<'a>) -> Option<Received<'a>> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        let got = self.receive(now, r);
        // Application data changes no state: the per-packet path skips the settle step.
        if got.is_none() {
            self.settle(now);
        }
        got
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != ConnectionState::Closed {
            self.gather_timeout(now);
            self.checks_timeout(now);
            self.consent_timeout(now);
            // A lost consent makes its component's pairs worth checking again.
            self.pace(now);
            // The trickle wait only matters to the connection state, settled below.
            for s in self.streams.values_mut() {
                s.trickle_timer = s.trickle_timer.filter(|&t| t > now);
            }
        }
        self.settle(now);
    }

    /// Sends application data on the component's selected pair: writes the datagram (with
    /// TURN framing when relayed) into `out` and returns where it goes, borrowing `out`
    /// (which needs `stun_client::SEND_OVERHEAD` bytes more than `data` when relayed). Data
    /// whose first byte is 0 to 3 is refused: the peer would demultiplex it as STUN
    /// (RFC 7983 §7).
    pub fn send<'o>(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        data: &[u8],
        out: &'o mut [u8],
    ) -> Result<Transmit<&'o [u8]>, SendError> {
        if data.first().is_some_and(|&b| b <= 3) {
            return Err(SendError::LooksLikeStun);
        }
        let s = self
            .streams
            .get_mut(stream)
            .ok_or(SendError::UnknownComponent)?;
        if component == 0 || component > s.components {
            return Err(SendError::UnknownComponent);
        }
        let sel = s.selected_mut(component).ok_or(SendError::NotConnected)?;
        sel.last_sent = now;
        let (path, remote) = (sel.path, sel.remote.addr);
        match path {
            Path::Socket(i) => {
                let out = out.get_mut(..data.len()).ok_or(SendError::BufferTooSmall)?;
                out.copy_from_slice(data);
                Ok(Transmit {
                    transport: sans_io::Transport::Udp,
                    local: self.gathering.sockets[i].addr,
                    remote,
                    data: out,
                })
            }
            Path::Relay(r) => {
                let client = self.gathering.relays[r]
                    .client
                    .as_mut()
                    .ok_or(SendError::NotConnected)?;
                client.send_to(remote, data, out).map_err(|e| match e {
                    stun_client::TurnSendError::BufferTooSmall => SendError::BufferTooSmall,
                    _ => SendError::NotConnected,
                })
            }
        }
    }

    /// The next output: datagrams and frames to send, events for the application, requests
    /// for the driver, and last the timer (see the drain rule of `sans-io`).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| sans_io::Output::Timeout(self.next_timeout()))
        })
    }

    /// The one follow-up of every input: the TURN clients' outputs are taken in, the
    /// controlling agent nominates what is due, the pacing timer runs if a check can go,
    /// finished gathering is announced, the connection state is recomputed, and the timer
    /// is reported again.
    fn settle(&mut self, now: Instant) {
        if self.state != ConnectionState::Closed {
            for r in self.gathering.relays.ids() {
                self.drain_relay(now, r);
            }
            self.maybe_nominate(now);
            self.wake_checks(now);
            for s in self.streams.ids() {
                self.check_gathering_complete(s);
            }
            self.update_state(now);
        }
        self.out.timer_moved();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the earliest of every
    /// timer of every noun.
    fn next_timeout(&self) -> Option<Instant> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some(n) = self.next_check {
            at(n);
        }
        self.gathering.timers(&mut at);
        for s in self.streams.values() {
            for p in s.checklist.pairs.values() {
                if let Some(c) = &p.check {
                    at(c.timer.next().min(c.deadline));
                }
            }
            for sel in s.selected.iter().flatten() {
                sel.timers(&self.config, self.state, &mut at);
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

    fn set_role(&mut self, role: Role) {
        if self.role == role {
            return;
        }
        tracing::debug!(?role, "ICE role changed");
        self.role = role;
        for s in self.streams.values_mut() {
            s.checklist.set_role(role);
        }
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            tracing::debug!(?state, "ICE connection state");
            self.state = state;
            self.out.event(Event::StateChanged(state));
        }
    }

    fn new_transaction_id(&mut self) -> TransactionId {
        TransactionId(self.rng.gen())
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // ±20 % (RFC 7675 §5.1).
        d.mul_f64(self.rng.gen_range(0.8..1.2))
    }

    /// The peer's credentials and key, once known.
    fn remote_keys(&self) -> Option<&(Credentials, IntegrityKey)> {
        self.keys.remote.as_ref()
    }
}

impl sans_io::Core for Agent {
    type Event = Event;
    type Request = Request;

    fn poll_output(&mut self) -> Option<Output> {
        Agent::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Agent::handle_timeout(self, now)
    }
}
