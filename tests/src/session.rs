//! WebRTC sessions ([`PeerConnection`]) on simulated hosts: offer/answer and trickled
//! candidates over a [`Mailbox`], then a DataChannel transfer, in the NAT matrix's cells.
//!
//! Side 0 creates a reliable ordered channel and offers; side 1 answers. Once the channel is
//! open, side 0 sends `transfer` bytes in `chunk`-sized messages, keeping at most
//! [`SEND_WINDOW`] bytes buffered (more go on the buffered-amount-low event), and side 1
//! checks every byte against the pattern.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::{AgentConfig, ConnectionState};
use natsim::{Endpoint, Input, Output, Sim};
use peer_connection::{
    ChannelId, Config, DataChannelEvent, DataChannelInit, Event, IceCandidate, PeerConnection,
    PeerConnectionState, Receive, SdpType, SessionDescription,
};

use crate::ice::{Mailbox, TurnConnections};
use crate::matrix::{self, Behind, Conditions, Network, SIGNALLING_DELAY};

/// What crosses the signalling channel.
#[derive(Debug, Clone)]
pub enum SessionSignal {
    /// An offer or answer.
    Description(SessionDescription),
    /// A trickled candidate (empty: end of candidates).
    Candidate(IceCandidate),
}

/// The most side 0 keeps buffered in the channel.
pub const SEND_WINDOW: usize = 256 * 1024;

/// The byte at `offset` of a transfer.
pub fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 9)) as u8
}

/// A session on a simulated host.
pub struct PeerEndpoint {
    /// The session.
    pub pc: PeerConnection,
    side: usize,
    mailbox: Mailbox<SessionSignal>,
    sockets: Vec<SocketAddr>,
    conns: TurnConnections,
    out: VecDeque<Output>,
    timer: Option<Instant>,
    /// Bytes side 0 sends once the channel is open.
    pub transfer: usize,
    /// The message size.
    pub chunk: usize,
    sent: usize,
    /// The channel (side 0's own; side 1's incoming).
    pub channel: Option<ChannelId>,
    /// When the peer's answer was applied (side 0) or the offer (side 1).
    pub remote_description_at: Option<Instant>,
    /// When the ICE agent first connected.
    pub ice_connected_at: Option<Instant>,
    /// When the channel opened here.
    pub open_at: Option<Instant>,
    /// Bytes received, all matching the pattern so far unless `corrupt`.
    pub received: usize,
    /// A received byte did not match.
    pub corrupt: bool,
    /// When the last byte of the transfer arrived.
    pub done_at: Option<Instant>,
    /// Every session state change.
    pub states: Vec<(Instant, PeerConnectionState)>,
}

impl std::fmt::Debug for PeerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerEndpoint")
            .field("side", &self.side)
            .field("pc", &self.pc)
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl PeerEndpoint {
    /// Side `side` (0 offers) with an ICE configuration and one UDP socket per address.
    pub fn new(
        ice: AgentConfig,
        side: usize,
        mailbox: Mailbox<SessionSignal>,
        sockets: Vec<SocketAddr>,
    ) -> PeerEndpoint {
        let pc = PeerConnection::new(Config {
            ice,
            ..Config::default()
        })
        .expect("a certificate");
        PeerEndpoint {
            pc,
            side,
            mailbox,
            sockets,
            conns: TurnConnections::default(),
            out: VecDeque::new(),
            timer: None,
            transfer: 0,
            chunk: 16 * 1024,
            sent: 0,
            channel: None,
            remote_description_at: None,
            ice_connected_at: None,
            open_at: None,
            received: 0,
            corrupt: false,
            done_at: None,
            states: Vec::new(),
        }
    }

    fn signal(&self, now: Instant, s: SessionSignal) {
        self.mailbox.post(now, 1 - self.side, s);
    }

    fn pump(&mut self, now: Instant) {
        while let Some(s) = self.mailbox.take_due(self.side, now) {
            match s {
                SessionSignal::Description(d) => {
                    self.pc
                        .set_remote_description(now, &d)
                        .expect("a description of ours");
                    self.remote_description_at = Some(now);
                    if d.kind == SdpType::Offer {
                        let answer = self.pc.create_answer(now).expect("an answer");
                        self.pc
                            .set_local_description(now, &answer)
                            .expect("our answer");
                        self.signal(now, SessionSignal::Description(answer));
                    }
                }
                SessionSignal::Candidate(c) => {
                    let _ = self.pc.add_ice_candidate(now, Some(&c));
                }
            }
        }
        loop {
            self.send_more(now);
            let mut progress = false;
            while let Some(o) = self.pc.poll_output() {
                progress = true;
                match o {
                    sans_io::Output::Transmit(t) => self.conns.emit(t, &mut self.out),
                    sans_io::Output::Request(r) => self.conns.request(r, &mut self.out),
                    sans_io::Output::Timeout(t) => self.timer = t,
                    sans_io::Output::Event(e) => self.event(now, e),
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn event(&mut self, now: Instant, e: Event) {
        match e {
            Event::IceCandidate(c) => self.signal(now, SessionSignal::Candidate(c)),
            Event::IceConnectionState(ConnectionState::Connected | ConnectionState::Completed) => {
                self.ice_connected_at.get_or_insert(now);
            }
            Event::ConnectionState(s) => self.states.push((now, s)),
            Event::DataChannel(DataChannelEvent::Open { channel })
            | Event::DataChannel(DataChannelEvent::Incoming { channel, .. }) => {
                self.channel = Some(channel);
                self.open_at.get_or_insert(now);
                self.pc
                    .set_buffered_amount_low_threshold(channel, SEND_WINDOW / 4);
            }
            Event::DataChannel(DataChannelEvent::Message { data, .. }) => {
                for (i, &b) in data.iter().enumerate() {
                    if b != pattern(self.received + i) {
                        self.corrupt = true;
                    }
                }
                self.received += data.len();
                if self.transfer > 0 && self.received >= self.transfer {
                    self.done_at.get_or_insert(now);
                }
            }
            _ => {}
        }
    }

    /// Side 0 sends what the window allows.
    fn send_more(&mut self, now: Instant) {
        let Some(ch) = self.channel.filter(|_| self.side == 0) else {
            return;
        };
        while self.sent < self.transfer && self.pc.buffered_amount(ch) < SEND_WINDOW {
            let n = self.chunk.min(self.transfer - self.sent);
            let data: Vec<u8> = (self.sent..self.sent + n).map(pattern).collect();
            if self.pc.send_binary(now, ch, &data).is_err() {
                return;
            }
            self.sent += n;
        }
    }
}

impl Endpoint for PeerEndpoint {
    fn start(&mut self, now: Instant) {
        self.pc.add_local_sockets(now, &self.sockets);
        if self.side == 0 {
            self.pc
                .create_data_channel(now, "transfer", DataChannelInit::default());
            let offer = self.pc.create_offer(now, false).expect("an offer");
            self.pc
                .set_local_description(now, &offer)
                .expect("our offer");
            self.signal(now, SessionSignal::Description(offer));
        }
        self.pump(now);
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Udp {
                local,
                remote,
                data,
            } => self
                .pc
                .handle_receive(now, Receive::udp(local, remote, data)),
            Input::TcpConnected { conn, local } => {
                self.conns.connected(conn, local);
                self.pc.connection_established(now, conn, local);
            }
            Input::TcpData { conn, data } => {
                let pc = &mut self.pc;
                if !self
                    .conns
                    .feed(conn, data, &mut self.out, |r| pc.handle_receive(now, r))
                {
                    self.pc.connection_closed(now, conn);
                }
            }
            Input::TcpClosed { conn, .. } => {
                self.conns.closed(conn);
                self.pc.connection_closed(now, conn);
            }
            Input::TcpAccepted { .. } => {}
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pc.handle_timeout(now);
        self.pump(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.timer, self.mailbox.next(self.side)]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A NAT-matrix cell with a session on each side.
pub struct SessionCell {
    /// The cell's network.
    pub net: Network,
    mailbox: Mailbox<SessionSignal>,
}

/// What a session cell gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    /// The selected pair's candidate types, as side 0 sees them.
    pub pair: Option<(ice_agent::CandidateKind, ice_agent::CandidateKind)>,
    /// From side 0 applying the answer to both ICE agents connected.
    pub ice_time: Option<Duration>,
    /// From side 0 applying the answer to the channel open on side 0, which made it (its
    /// `onopen`).
    pub open_time: Option<Duration>,
    /// From side 0 applying the answer to the channel announced on side 1 (its
    /// `ondatachannel`), half a round trip later.
    pub remote_open_time: Option<Duration>,
    /// From the channel opening on side 0 to the last byte at side 1.
    pub transfer_time: Option<Duration>,
    /// Every byte arrived, in order and unchanged.
    pub intact: bool,
}

impl SessionCell {
    /// Builds the cell: side 0 will send `transfer` bytes.
    pub fn new(kinds: [Behind; 2], conditions: Conditions, seed: u64, transfer: usize) -> Self {
        SessionCell::with(kinds, conditions, seed, transfer, |_, _| {})
    }

    /// [`new`](Self::new) with each side's ICE configuration changed by `configure`.
    pub fn with(
        kinds: [Behind; 2],
        conditions: Conditions,
        seed: u64,
        transfer: usize,
        configure: impl Fn(usize, &mut AgentConfig),
    ) -> Self {
        let mut net = matrix::network(kinds, conditions, seed);
        let mailbox = Mailbox::new(SIGNALLING_DELAY);
        for side in 0..2 {
            let mut config = matrix::agent_config(seed * 2 + side as u64);
            configure(side, &mut config);
            let mut ep = PeerEndpoint::new(config, side, mailbox.clone(), vec![net.sockets[side]]);
            ep.transfer = transfer;
            net.sim.set_endpoint(net.hosts[side], ep);
        }
        SessionCell { net, mailbox }
    }

    /// A side's endpoint.
    pub fn peer(&self, side: usize) -> &PeerEndpoint {
        self.net
            .sim
            .endpoint::<PeerEndpoint>(self.net.hosts[side])
            .expect("a peer")
    }

    /// The simulator.
    pub fn sim(&mut self) -> &mut Sim {
        &mut self.net.sim
    }

    /// Runs until `done` holds or `limit` of virtual time since the start.
    pub fn run_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&PeerEndpoint, &PeerEndpoint) -> bool,
    ) -> bool {
        loop {
            let mailbox = self.mailbox.clone();
            let hosts = self.net.hosts;
            let r = self.net.sim.run_until(limit, |sim| {
                mailbox.posted() || {
                    let a = sim.endpoint::<PeerEndpoint>(hosts[0]).expect("peer");
                    let b = sim.endpoint::<PeerEndpoint>(hosts[1]).expect("peer");
                    done(a, b)
                }
            });
            if self.mailbox.take_posted() {
                self.net.sim.wake(hosts[0]);
                self.net.sim.wake(hosts[1]);
                continue;
            }
            return r.is_ok();
        }
    }

    /// Runs until the transfer is done (or `limit`) and reports.
    pub fn run(&mut self, limit: Duration) -> SessionResult {
        let transfer = self.peer(0).transfer;
        self.run_until(limit, |a, b| {
            a.open_at.is_some() && b.open_at.is_some() && b.received >= transfer
        });
        let (a, b) = (self.peer(0), self.peer(1));
        let start = a.remote_description_at;
        let since = |t: Option<Instant>| t.zip(start).map(|(t, s)| t.saturating_duration_since(s));
        let both = |x: Option<Instant>, y: Option<Instant>| x.zip(y).map(|(x, y)| x.max(y));
        SessionResult {
            pair: a
                .pc
                .selected_candidate_pair()
                .map(|(l, r)| (l.kind, r.kind)),
            ice_time: since(both(a.ice_connected_at, b.ice_connected_at)),
            open_time: since(a.open_at),
            remote_open_time: since(b.open_at),
            transfer_time: b.done_at.zip(a.open_at).map(|(d, o)| d - o),
            intact: !b.corrupt && b.received == transfer,
        }
    }
}
