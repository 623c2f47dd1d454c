//! The ICE agent on a simulated host, and the signalling channel between two of them.
//!
//! Signalling is outside the simulated network (as a web socket to a signalling server
//! would be in practice, where it does not cross the peers' NATs on the same path): a
//! [`Mailbox`] delivers each message after a fixed delay. The controlled side holds its
//! candidates until the offer's credentials arrive, then answers with its credentials and
//! everything gathered so far, and trickles the rest.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ice_agent::{
    Agent, AgentConfig, Candidate, CandidateKind, ConnectionId, ConnectionState, Credentials,
    Event, LocalSocket, Receive, Request, Role, StreamId, Transmit, Transport,
};
use natsim::{Endpoint, Input, Output};
use stun_codec::StreamFramer;

/// One signalling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// `a=ice-ufrag`, `a=ice-pwd` and `a=ice-options` (an offer or answer).
    Credentials(Credentials, &'static str),
    /// A trickled `a=candidate` line.
    Candidate(String),
    /// `a=end-of-candidates`.
    EndOfCandidates,
}

#[derive(Debug)]
struct MailboxInner<S> {
    queues: [VecDeque<(Instant, S)>; 2],
}

impl<S> Default for MailboxInner<S> {
    fn default() -> Self {
        MailboxInner {
            queues: [VecDeque::new(), VecDeque::new()],
        }
    }
}

/// The signalling channel between side 0 and side 1, with a fixed one-way delay, carrying
/// messages of type `S` (ICE's [`Signal`]s by default).
#[derive(Debug)]
pub struct Mailbox<S = Signal> {
    inner: Rc<RefCell<MailboxInner<S>>>,
    delay: Duration,
    /// Where this mailbox notes that it was posted to (its tag), maybe with many others.
    board: Board,
    tag: usize,
}

/// The tags of the mailboxes posted to since it was last drained, so a run with many
/// mailboxes finds the receivers to wake without looking at every mailbox.
pub type Board = Rc<RefCell<Vec<usize>>>;

impl<S> Clone for Mailbox<S> {
    fn clone(&self) -> Self {
        Mailbox {
            inner: self.inner.clone(),
            delay: self.delay,
            board: self.board.clone(),
            tag: self.tag,
        }
    }
}

impl<S> Mailbox<S> {
    /// A channel delivering after `delay`, with a board of its own.
    pub fn new(delay: Duration) -> Mailbox<S> {
        Mailbox::on_board(delay, Board::default(), 0)
    }

    /// A channel delivering after `delay` that notes `tag` on `board` whenever it is posted
    /// to.
    pub fn on_board(delay: Duration, board: Board, tag: usize) -> Mailbox<S> {
        Mailbox {
            inner: Rc::new(RefCell::new(MailboxInner::default())),
            delay,
            board,
            tag,
        }
    }

    /// Posts `s` to side `to`, delivered after the delay.
    pub fn post(&self, now: Instant, to: usize, s: S) {
        let mut m = self.inner.borrow_mut();
        m.queues[to].push_back((now + self.delay, s));
        self.board.borrow_mut().push(self.tag);
    }

    /// When the next message for `side` is due.
    pub fn next(&self, side: usize) -> Option<Instant> {
        self.inner.borrow().queues[side].front().map(|x| x.0)
    }

    /// The next message for `side` that is due at `now`.
    pub fn take_due(&self, side: usize, now: Instant) -> Option<S> {
        let mut m = self.inner.borrow_mut();
        if m.queues[side].front().is_some_and(|x| x.0 <= now) {
            m.queues[side].pop_front().map(|x| x.1)
        } else {
            None
        }
    }

    /// Whether something was posted on this mailbox's board since the last
    /// [`take_posted`](Self::take_posted).
    pub fn posted(&self) -> bool {
        !self.board.borrow().is_empty()
    }

    /// Whether something was posted on the board since the last call (the simulator must
    /// then re-arm the receivers' timers: [`natsim::Sim::wake`]).
    pub fn take_posted(&self) -> bool {
        !std::mem::take(&mut *self.board.borrow_mut()).is_empty()
    }
}

/// An [`Agent`] hosted on a simulated host: its UDP sockets are the host's, TCP connections
/// to TURN servers are natsim connections. Once connected it sends one datagram of
/// application data on the selected pair, and records what it receives.
#[derive(Debug)]
pub struct AgentEndpoint {
    /// The agent.
    pub agent: Agent,
    side: usize,
    mailbox: Mailbox,
    sockets: Vec<SocketAddr>,
    stream: StreamId,
    answered: bool,
    held: Vec<Signal>,
    out: VecDeque<Output>,
    /// When this side last received the peer's credentials.
    pub remote_credentials_at: Option<Instant>,
    /// When the agent last became connected.
    pub connected_at: Option<Instant>,
    /// The latest selected pair: local and remote candidate.
    pub selected: Option<(Candidate, Candidate)>,
    /// Every selection, with its time: more than one after a renomination.
    pub selections: Vec<Instant>,
    /// Every state change, with its time.
    pub states: Vec<(Instant, ConnectionState)>,
    /// Application data received on the selected pair.
    pub received: Vec<Vec<u8>>,
    /// When application data last arrived.
    pub last_received: Option<Instant>,
    /// When the next greeting goes (every 100 ms while connected, so loss cannot starve
    /// the check that data flows).
    greet_at: Option<Instant>,
    /// This side started an ICE restart: the next credentials are the answer.
    restarting: bool,
    /// The agent's timer, as its last drain reported it.
    timer: Option<Instant>,
    /// TURN connections.
    conns: TurnConnections,
}

/// A TCP connection to a TURN server.
#[derive(Debug)]
struct Conn {
    server: SocketAddr,
    transport: Transport,
    local: Option<SocketAddr>,
    framer: StreamFramer,
}

/// The TCP (and TLS) connections to TURN servers a core asked its driver for, as natsim
/// connections: shared by every endpoint that hosts an ICE agent.
#[derive(Debug, Default)]
pub struct TurnConnections {
    conns: HashMap<ConnectionId, Conn>,
}

impl TurnConnections {
    /// Carries out the agent's request: a connection from a port of natsim's choosing on
    /// the local IP, or a close.
    pub fn request(&mut self, r: Request, out: &mut VecDeque<Output>) {
        match r {
            Request::Connect {
                id,
                transport,
                server,
                local,
                ..
            } => {
                self.conns.insert(
                    id,
                    Conn {
                        server,
                        transport,
                        local: None,
                        framer: StreamFramer::new(),
                    },
                );
                out.push_back(Output::TcpConnect {
                    conn: id,
                    local: SocketAddr::new(local.ip(), 40000 + id.0 as u16),
                    remote: server,
                });
            }
            Request::Close { id } => {
                self.conns.remove(&id);
                out.push_back(Output::TcpClose { conn: id });
            }
            _ => {}
        }
    }

    /// Queues a packet for natsim: a datagram, or bytes on a TURN connection.
    pub fn emit(&self, t: Transmit, out: &mut VecDeque<Output>) {
        if t.transport == Transport::Udp {
            out.push_back(crate::udp_output(t));
            return;
        }
        let conn = self
            .conns
            .iter()
            .find(|(_, c)| c.local == Some(t.local) && c.server == t.remote)
            .map(|(id, _)| *id);
        if let Some(conn) = conn {
            out.push_back(Output::TcpSend { conn, data: t.data });
        }
    }

    /// A connection is up on `local`.
    pub fn connected(&mut self, conn: ConnectionId, local: SocketAddr) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.local = Some(local);
        }
    }

    /// A connection ended.
    pub fn closed(&mut self, conn: ConnectionId) {
        self.conns.remove(&conn);
    }

    /// Bytes on a connection, cut into frames, each handed to `frame` as a [`Receive`].
    /// Returns false when the stream is broken: the connection is then closed (tell the
    /// core with `connection_closed`).
    pub fn feed(
        &mut self,
        conn: ConnectionId,
        data: &[u8],
        out: &mut VecDeque<Output>,
        mut frame: impl FnMut(Receive<'_>),
    ) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return true;
        };
        let Some(local) = c.local else {
            return true;
        };
        let (server, transport) = (c.server, c.transport);
        let fed = c.framer.feed(data, |f| {
            frame(Receive {
                transport,
                local,
                remote: server,
                data: f,
            })
        });
        if fed.is_err() {
            self.conns.remove(&conn);
            out.push_back(Output::TcpClose { conn });
            return false;
        }
        true
    }
}

impl AgentEndpoint {
    /// An agent for side `side` (0 offers and controls, 1 answers) with one stream of one
    /// component on a UDP socket at each of `sockets`.
    pub fn new(
        mut config: AgentConfig,
        side: usize,
        mailbox: Mailbox,
        sockets: Vec<SocketAddr>,
    ) -> AgentEndpoint {
        config.role = if side == 0 {
            Role::Controlling
        } else {
            Role::Controlled
        };
        let mut agent = Agent::new(config);
        let stream = agent.add_stream(1);
        AgentEndpoint {
            agent,
            side,
            mailbox,
            sockets,
            stream,
            answered: side == 0,
            held: Vec::new(),
            out: VecDeque::new(),
            remote_credentials_at: None,
            connected_at: None,
            selected: None,
            selections: Vec::new(),
            states: Vec::new(),
            received: Vec::new(),
            last_received: None,
            greet_at: None,
            restarting: false,
            timer: None,
            conns: TurnConnections::default(),
        }
    }

    /// Whether the agent is connected (or completed).
    pub fn is_connected(&self) -> bool {
        matches!(
            self.agent.state(),
            ConnectionState::Connected | ConnectionState::Completed
        )
    }

    /// The kinds of the selected pair's candidates (local, remote).
    pub fn selected_kinds(&self) -> Option<(CandidateKind, CandidateKind)> {
        self.selected.as_ref().map(|(l, r)| (l.kind, r.kind))
    }

    /// Starts an ICE restart from this side (call [`natsim::Sim::wake`] afterwards).
    pub fn restart(&mut self, now: Instant) {
        self.agent.restart(now);
        self.answered = true;
        self.restarting = true;
        self.greet_at = None;
        let c = self.agent.local_credentials().clone();
        let options = self.agent.local_ice_options();
        self.signal(now, Signal::Credentials(c, options));
        self.pump(now);
    }

    fn signal(&mut self, now: Instant, s: Signal) {
        if self.answered {
            self.mailbox.post(now, 1 - self.side, s);
        } else {
            self.held.push(s);
        }
    }

    fn emit(&mut self, t: Transmit) {
        self.conns.emit(t, &mut self.out);
    }

    fn pump(&mut self, now: Instant) {
        while let Some(s) = self.mailbox.take_due(self.side, now) {
            match s {
                Signal::Credentials(c, options) => {
                    let restart = self.remote_credentials_at.is_some() && !self.restarting;
                    self.restarting = false;
                    if restart {
                        // The peer restarted: so do we, and answer (RFC 8445 §9).
                        self.agent.restart(now);
                        self.greet_at = None;
                        let mine = self.agent.local_credentials().clone();
                        let options = self.agent.local_ice_options();
                        self.mailbox
                            .post(now, 1 - self.side, Signal::Credentials(mine, options));
                    }
                    self.agent.set_remote_ice_options(now, options);
                    self.agent.set_remote_credentials(now, c, false);
                    self.remote_credentials_at = Some(now);
                    if !self.answered {
                        self.answered = true;
                        let mine = self.agent.local_credentials().clone();
                        let options = self.agent.local_ice_options();
                        self.mailbox
                            .post(now, 1 - self.side, Signal::Credentials(mine, options));
                        for s in std::mem::take(&mut self.held) {
                            self.mailbox.post(now, 1 - self.side, s);
                        }
                    }
                }
                Signal::Candidate(line) => {
                    let _ = self
                        .agent
                        .add_remote_candidate_line(now, self.stream, &line);
                }
                Signal::EndOfCandidates => self.agent.end_of_remote_candidates(now, self.stream),
            }
        }
        loop {
            let mut progress = false;
            while let Some(o) = self.agent.poll_output() {
                let e = match o {
                    ice_agent::Output::Transmit(t) => {
                        progress = true;
                        self.emit(t);
                        continue;
                    }
                    ice_agent::Output::Request(r) => {
                        progress = true;
                        self.request(r);
                        continue;
                    }
                    ice_agent::Output::Timeout(t) => {
                        self.timer = t;
                        continue;
                    }
                    ice_agent::Output::Event(e) => e,
                };
                progress = true;
                match e {
                    Event::LocalCandidate { candidate, .. } => {
                        self.signal(now, Signal::Candidate(candidate.to_string()))
                    }
                    Event::GatheringComplete { .. } => self.signal(now, Signal::EndOfCandidates),
                    Event::StateChanged(s) => {
                        let up = |s: ConnectionState| {
                            matches!(s, ConnectionState::Connected | ConnectionState::Completed)
                        };
                        let was_up = self.states.last().is_some_and(|&(_, p)| up(p));
                        if up(s) && !was_up {
                            self.connected_at = Some(now);
                        }
                        self.states.push((now, s));
                    }
                    Event::SelectedPair { local, remote, .. } => {
                        self.selected = Some((local, remote));
                        self.selections.push(now);
                        self.greet_at = None;
                    }
                    _ => {}
                }
            }
            if self.is_connected() && self.greet_at.is_none_or(|t| t <= now) {
                self.greet_at = Some(now + Duration::from_millis(100));
                let mut buf = [0u8; 256];
                let hello = format!("hello from side {}", self.side);
                if let Ok(t) = self
                    .agent
                    .send(now, self.stream, 1, hello.as_bytes(), &mut buf)
                {
                    progress = true;
                    let t = t.to_owned();
                    self.emit(t);
                }
            }
            if !progress {
                break;
            }
        }
    }
}

impl AgentEndpoint {
    fn request(&mut self, r: Request) {
        self.conns.request(r, &mut self.out);
    }

    /// Bytes on a TURN connection, cut into frames for the agent.
    fn stream_data(&mut self, now: Instant, conn: ConnectionId, data: &[u8]) {
        let (agent, received, last) =
            (&mut self.agent, &mut self.received, &mut self.last_received);
        let ok = self.conns.feed(conn, data, &mut self.out, |r| {
            if let Some(r) = agent.handle_receive(now, r) {
                received.push(r.data.to_vec());
                *last = Some(now);
            }
        });
        if !ok {
            self.agent.connection_closed(now, conn);
        }
    }
}

impl Endpoint for AgentEndpoint {
    fn start(&mut self, now: Instant) {
        let sockets: Vec<LocalSocket> = self
            .sockets
            .iter()
            .map(|&addr| LocalSocket {
                stream: self.stream,
                component: 1,
                addr,
            })
            .collect();
        self.agent
            .add_local_sockets(now, &sockets)
            .expect("stream 0 component 1 exist");
        if self.side == 0 {
            let c = self.agent.local_credentials().clone();
            let options = self.agent.local_ice_options();
            self.signal(now, Signal::Credentials(c, options));
        }
        self.pump(now);
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Udp {
                local,
                remote,
                data,
            } => {
                if let Some(r) = self
                    .agent
                    .handle_receive(now, Receive::udp(local, remote, data))
                {
                    self.received.push(r.data.to_vec());
                    self.last_received = Some(now);
                }
            }
            Input::TcpConnected { conn, local } => {
                self.conns.connected(conn, local);
                self.agent.connection_established(now, conn, local)
            }
            Input::TcpData { conn, data } => self.stream_data(now, conn, data),
            Input::TcpClosed { conn, .. } => {
                self.conns.closed(conn);
                self.agent.connection_closed(now, conn)
            }
            Input::TcpAccepted { .. } => {}
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.agent.handle_timeout(now);
        self.pump(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timer,
            self.mailbox.next(self.side),
            self.greet_at.filter(|_| self.is_connected()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
