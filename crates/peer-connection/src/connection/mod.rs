//! [`PeerConnection`]: the sans-IO WebRTC session.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use ice_agent::{Agent, AgentConfig, ConnectionState, LocalSocket, Receive, Role, StreamId};
use sans_io::{Outputs, Transmit};

use crate::certificate::{Certificate, Fingerprint};
use crate::datachannel::{ChannelId, Channels, DataChannelEvent, DataChannelInfo, DataChannelInit};
use crate::dtls::{Dtls, DtlsError, DtlsEvent, DtlsRole};
use crate::media::{RemoteTrackInfo, RtpPacket, Tracks};
use crate::sctp::{Sctp, SctpEvent, SendError};
use crate::sdp::{Description, IceCandidate, MediaKind, SdpType};
use crate::srtp::Srtp;

mod jsep;
mod media;
use crate::Error;

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The ICE agent's configuration (STUN and TURN servers, timers, seed). Its role is set
    /// by the session: the offerer controls.
    pub ice: AgentConfig,
    /// The DTLS certificate; `None` makes a new one.
    pub certificate: Option<Certificate>,
    /// The largest DataChannel message we take (`a=max-message-size`, RFC 8841 §6).
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ice: AgentConfig::new(Role::Controlling),
            certificate: None,
            max_message_size: 262_144,
        }
    }
}

/// Where offer/answer stands (RFC 9429 §3.2, `RTCSignalingState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalingState {
    /// No exchange under way.
    Stable,
    /// We offered.
    HaveLocalOffer,
    /// The peer offered.
    HaveRemoteOffer,
    /// Closed.
    Closed,
}

/// The session's overall state (`RTCPeerConnectionState`): ICE and DTLS together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerConnectionState {
    /// Nothing yet.
    New,
    /// ICE checking or DTLS handshaking.
    Connecting,
    /// ICE connected and DTLS up.
    Connected,
    /// ICE lost consent for a while.
    Disconnected,
    /// ICE or DTLS failed (a wrong fingerprint included).
    Failed,
    /// Closed.
    Closed,
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A local candidate to send to the peer (trickle ICE); the end of candidates is one
    /// with an empty `candidate`.
    IceCandidate(IceCandidate),
    /// The ICE agent's state.
    IceConnectionState(ConnectionState),
    /// The session's state.
    ConnectionState(PeerConnectionState),
    /// The signalling state.
    SignalingState(SignalingState),
    /// Something changed that needs an offer/answer exchange (a first DataChannel).
    NegotiationNeeded,
    /// A DataChannel event.
    DataChannel(DataChannelEvent),
    /// The peer sends a track (`ontrack`): its section, SSRCs and codecs.
    Track(RemoteTrackInfo),
    /// An RTP packet of one of the peer's tracks.
    Rtp(RtpPacket),
    /// An RTCP packet (compound) from the peer: reports, and feedback on our tracks.
    Rtcp {
        /// The decrypted packet.
        data: Vec<u8>,
    },
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received and delivered.
    pub rtp_received: u64,
    /// SRTP/SRTCP datagrams dropped: failed authentication, replayed, for no track, or
    /// before the keys.
    pub media_dropped: u64,
}

/// What the session asks of its driver: the ICE agent's requests (TURN connections).
pub type Request = ice_agent::Request;

/// What [`PeerConnection::poll_output`] gives.
pub type Output = sans_io::Output<Event, Request>;

/// What the session negotiated, once an answer is in.
#[derive(Debug, Clone)]
struct Negotiated {
    dtls_role: DtlsRole,
    remote_fingerprints: Vec<Fingerprint>,
    /// The application section is in use: SCTP runs.
    sctp: bool,
    remote_max_message_size: usize,
}

/// A WebRTC session: JSEP offer/answer, ICE through the stack's agent, DTLS, SCTP
/// DataChannels. See the [crate documentation](crate) for an example.
pub struct PeerConnection {
    config: Config,
    certificate: Certificate,
    agent: Option<Agent>,
    stream: Option<StreamId>,
    /// Sockets the driver bound, given to the agent once the local description is set.
    sockets: Vec<SocketAddr>,
    sockets_given: usize,
    signaling: SignalingState,
    local: Option<Description>,
    remote: Option<Description>,
    /// A local description awaiting its answer.
    pending_local: Option<Description>,
    pending_remote: Option<Description>,
    session_id: u64,
    session_version: u64,
    negotiated: Option<Negotiated>,
    dtls: Option<Dtls>,
    /// DTLS records that came before the DTLS association could be made (bounded).
    early: Vec<Vec<u8>>,
    /// DTLS records to send once ICE has selected a pair (bounded).
    unsent: std::collections::VecDeque<Vec<u8>>,
    sctp: Option<Sctp>,
    channels: Channels,
    ice_state: ConnectionState,
    state: PeerConnectionState,
    dtls_failed: Option<DtlsError>,
    agent_timer: Option<Instant>,
    out: Outputs<Event, Request>,
    buf: Vec<u8>,
    /// Negotiation was asked for and not yet answered.
    negotiation_needed: bool,
    tracks: Tracks,
    srtp: Option<Srtp>,
    stats: Stats,
    /// The kind of the current local description (an answer, or an offer once answered).
    local_kind: SdpType,
    /// The agent announced the end of gathering.
    gathering_complete: bool,
}

impl std::fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnection")
            .field("signaling", &self.signaling)
            .field("state", &self.state)
            .field("ice", &self.ice_state)
            .finish_non_exhaustive()
    }
}

/// DTLS records held before the association exists (a ClientHello that beat the answer).
const MAX_EARLY: usize = 8;
/// DTLS records held until ICE has a pair to send them on (a handshake flight, the first
/// SCTP packets).
const MAX_UNSENT: usize = 64;
/// Room for a datagram with TURN framing.
const BUF_LEN: usize = 2048;

impl PeerConnection {
    /// A new session (with a new certificate unless the configuration has one).
    pub fn new(config: Config) -> Result<PeerConnection, Error> {
        let certificate = match &config.certificate {
            Some(c) => c.clone(),
            None => Certificate::generate()?,
        };
        Ok(PeerConnection::with_certificate(config, certificate))
    }

    /// A new session with this certificate (the configuration's is ignored).
    pub fn with_certificate(config: Config, certificate: Certificate) -> PeerConnection {
        // RFC 8866 §5.2: a number unique to the session; 63 bits so that it stays positive
        // for parsers that read it signed.
        let session_id = match config.ice.seed {
            Some(s) => s,
            None => rand::random::<u64>(),
        } & 0x7fff_ffff_ffff_ffff;
        PeerConnection {
            config,
            certificate,
            agent: None,
            stream: None,
            sockets: Vec::new(),
            sockets_given: 0,
            signaling: SignalingState::Stable,
            local: None,
            remote: None,
            pending_local: None,
            pending_remote: None,
            session_id,
            session_version: 1,
            negotiated: None,
            dtls: None,
            early: Vec::new(),
            unsent: std::collections::VecDeque::new(),
            sctp: None,
            channels: Channels::default(),
            ice_state: ConnectionState::New,
            state: PeerConnectionState::New,
            dtls_failed: None,
            agent_timer: None,
            out: Outputs::new(),
            buf: vec![0; BUF_LEN],
            negotiation_needed: false,
            tracks: Tracks::new(format!("{session_id:x}")),
            srtp: None,
            stats: Stats::default(),
            local_kind: SdpType::Offer,
            gathering_complete: false,
        }
    }

    /// The certificate (its fingerprint goes in every description).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The signalling state.
    pub fn signaling_state(&self) -> SignalingState {
        self.signaling
    }

    /// The session's state.
    pub fn connection_state(&self) -> PeerConnectionState {
        self.state
    }

    /// The ICE agent's state.
    pub fn ice_connection_state(&self) -> ConnectionState {
        self.ice_state
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The ICE agent, once the first description made it.
    pub fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref()
    }

    /// The pair ICE selected (local and remote candidate), once there is one
    /// (`RTCIceTransport.getSelectedCandidatePair()`).
    pub fn selected_candidate_pair(
        &self,
    ) -> Option<(&ice_agent::Candidate, &ice_agent::Candidate)> {
        self.agent.as_ref()?.selected_pair(self.stream?, 1)
    }

    /// UDP sockets the driver bound (any time; used from the local description on).
    pub fn add_local_sockets(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.sockets.extend_from_slice(addrs);
        self.give_sockets(now);
        self.settle(now);
    }

    fn give_sockets(&mut self, now: Instant) {
        let (Some(agent), Some(stream)) = (self.agent.as_mut(), self.stream) else {
            return;
        };
        if self.local.is_none() && self.pending_local.is_none() {
            return;
        }
        let new: Vec<LocalSocket> = self.sockets[self.sockets_given..]
            .iter()
            .map(|&addr| LocalSocket {
                stream,
                component: 1,
                addr,
            })
            .collect();
        self.sockets_given = self.sockets.len();
        if !new.is_empty() {
            let _ = agent.add_local_sockets(now, &new);
        }
    }

    fn ensure_agent(&mut self, role: Role) -> &mut Agent {
        if self.agent.is_none() {
            let mut config = self.config.ice.clone();
            config.role = role;
            let mut agent = Agent::new(config);
            self.stream = Some(agent.add_stream(1));
            self.agent = Some(agent);
        }
        self.agent.as_mut().expect("made above")
    }

    // ---- DataChannels ----

    /// Creates a DataChannel (the browser's `createDataChannel`). It opens once the session
    /// is connected; the first one asks for negotiation.
    pub fn create_data_channel(
        &mut self,
        now: Instant,
        label: &str,
        init: DataChannelInit,
    ) -> ChannelId {
        let first = self.channels.is_empty();
        let id = self.channels.create(label, &init);
        let has_application = self
            .current_local()
            .is_some_and(|d| d.media.iter().any(|m| m.kind == MediaKind::Application));
        if first && !has_application {
            self.need_negotiation();
        }
        if let Some(sctp) = self.sctp.as_mut() {
            let mut events = Vec::new();
            self.channels.open(now, sctp, id, &mut events);
            self.data_events(events);
        }
        self.settle(now);
        id
    }

    /// What is known about a channel.
    pub fn data_channel(&self, id: ChannelId) -> Option<&DataChannelInfo> {
        self.channels.info(id)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, now: Instant, id: ChannelId, text: &str) -> Result<(), SendError> {
        self.send_message(now, id, text.as_bytes(), false)
    }

    /// Sends a binary message.
    pub fn send_binary(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: &[u8],
    ) -> Result<(), SendError> {
        self.send_message(now, id, data, true)
    }

    fn send_message(
        &mut self,
        now: Instant,
        id: ChannelId,
        data: &[u8],
        binary: bool,
    ) -> Result<(), SendError> {
        let sctp = self.sctp.as_mut().ok_or(SendError::NotOpen)?;
        let r = self.channels.send(now, sctp, id, data, binary);
        self.settle(now);
        r
    }

    /// Bytes sent on the channel and not yet acknowledged (`bufferedAmount`).
    pub fn buffered_amount(&mut self, id: ChannelId) -> usize {
        match self.sctp.as_mut() {
            Some(sctp) => self.channels.buffered_amount(sctp, id),
            None => 0,
        }
    }

    /// When the buffered amount falls to `threshold`,
    /// [`DataChannelEvent::BufferedAmountLow`] comes (`bufferedAmountLowThreshold`).
    pub fn set_buffered_amount_low_threshold(&mut self, id: ChannelId, threshold: usize) {
        self.channels
            .set_low_threshold(self.sctp.as_mut(), id, threshold);
    }

    /// The largest message the channels can send now (the smaller of both sides'
    /// `a=max-message-size`).
    pub fn max_message_size(&self) -> Option<usize> {
        self.sctp.as_ref().map(Sctp::max_send)
    }

    /// Closes a DataChannel.
    pub fn close_data_channel(&mut self, now: Instant, id: ChannelId) {
        let mut events = Vec::new();
        if let Some(sctp) = self.sctp.as_mut() {
            self.channels.close(now, sctp, id, &mut events);
        }
        self.data_events(events);
        self.settle(now);
    }

    fn data_events(&mut self, events: Vec<DataChannelEvent>) {
        for e in events {
            self.out.event(Event::DataChannel(e));
        }
    }

    fn need_negotiation(&mut self) {
        if !self.negotiation_needed {
            self.negotiation_needed = true;
            self.out.event(Event::NegotiationNeeded);
        }
    }

    /// Closes the session: channels and association end, DTLS sends close_notify, ICE stops.
    pub fn close(&mut self, now: Instant) {
        if self.signaling == SignalingState::Closed {
            return;
        }
        if let Some(sctp) = self.sctp.as_mut() {
            sctp.abort();
        }
        self.flush(now);
        if let Some(d) = self.dtls.as_mut() {
            d.close(now);
        }
        self.flush(now);
        if let Some(a) = self.agent.as_mut() {
            a.close(now);
        }
        self.set_signaling(SignalingState::Closed);
        self.settle(now);
        self.set_state(PeerConnectionState::Closed);
    }

    // ---- Inputs ----

    /// A datagram or TURN frame that arrived (see `ice_agent::Agent::handle_receive`).
    pub fn handle_receive(&mut self, now: Instant, r: Receive<'_>) {
        // The agent returns the data borrowed from the input, not from itself: no copy.
        if let Some(d) = self.agent.as_mut().and_then(|a| a.handle_receive(now, r)) {
            self.handle_data(now, d.data);
        }
        self.settle(now);
    }

    /// Application data on the selected pair, demultiplexed by its first byte (RFC 7983).
    fn handle_data(&mut self, now: Instant, data: &[u8]) {
        match data.first() {
            Some(20..=63) => self.handle_dtls(now, data),
            Some(128..=191) => self.handle_srtp(data),
            _ => {}
        }
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) {
        let Some(dtls) = self.dtls.as_mut() else {
            if self.early.len() < MAX_EARLY {
                self.early.push(data.to_vec());
            }
            return;
        };
        let mut events = Vec::new();
        if let Err(e) = dtls.handle_datagram(now, data, &mut events) {
            self.dtls_failure(e);
        }
        self.dtls_events(now, events);
    }

    fn dtls_failure(&mut self, e: DtlsError) {
        tracing::warn!(error = %e, "DTLS failed");
        self.dtls_failed = Some(e);
    }

    fn dtls_events(&mut self, now: Instant, events: Vec<DtlsEvent>) {
        for e in events {
            match e {
                DtlsEvent::Connected => {
                    tracing::debug!("DTLS connected");
                    self.start_srtp();
                    if self.negotiated.as_ref().is_some_and(|n| n.sctp) && self.sctp.is_none() {
                        self.start_sctp(now);
                    }
                }
                DtlsEvent::Data(d) => {
                    if let Some(sctp) = self.sctp.as_mut() {
                        let mut sctp_events = Vec::new();
                        sctp.handle_packet(now, d.freeze(), &mut sctp_events);
                        self.sctp_events(now, sctp_events);
                    }
                }
                DtlsEvent::Closed => {
                    if let Some(sctp) = self.sctp.as_mut() {
                        sctp.abort();
                        let mut ev = Vec::new();
                        self.channels.handle(now, sctp, SctpEvent::Closed, &mut ev);
                        self.data_events(ev);
                    }
                }
            }
        }
    }

    fn start_sctp(&mut self, now: Instant) {
        let Some(n) = &self.negotiated else { return };
        let client = n.dtls_role == DtlsRole::Client;
        let max_send = n.remote_max_message_size;
        self.sctp = Some(Sctp::new(
            now,
            client,
            max_send,
            self.config.max_message_size,
        ));
    }

    fn sctp_events(&mut self, now: Instant, events: Vec<SctpEvent>) {
        let Some(sctp) = self.sctp.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        for e in events {
            self.channels.handle(now, sctp, e, &mut out);
        }
        self.data_events(out);
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(a) = self.agent.as_mut() {
            a.handle_timeout(now);
        }
        if let Some(d) = self.dtls.as_mut() {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = d.handle_timeout(now) {
                    self.dtls_failure(e);
                }
            }
        }
        if let Some(s) = self.sctp.as_mut() {
            let mut events = Vec::new();
            s.handle_timeout(now, &mut events);
            self.sctp_events(now, events);
        }
        self.settle(now);
    }

    /// A TURN connection the agent asked for is up (see `ice_agent::Request::Connect`).
    pub fn connection_established(
        &mut self,
        now: Instant,
        id: sans_io::ConnectionId,
        local: SocketAddr,
    ) {
        if let Some(a) = self.agent.as_mut() {
            a.connection_established(now, id, local);
        }
        self.settle(now);
    }

    /// A TURN connection closed or could not be made.
    pub fn connection_closed(&mut self, now: Instant, id: sans_io::ConnectionId) {
        if let Some(a) = self.agent.as_mut() {
            a.connection_closed(now, id);
        }
        self.settle(now);
    }

    // ---- Outputs ----

    /// The next output; see the drain rule of `sans-io`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| sans_io::Output::Timeout(self.next_timeout()))
        })
    }

    fn next_timeout(&self) -> Option<Instant> {
        [
            self.agent_timer,
            self.dtls.as_ref().and_then(Dtls::poll_timeout),
            self.sctp.as_ref().and_then(Sctp::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The follow-up of every input: the agent's outputs are taken in, DTLS starts when it
    /// can, SCTP packets go into DTLS records and DTLS records onto the selected pair, the
    /// state is recomputed and the timer reported.
    fn settle(&mut self, now: Instant) {
        self.drain_agent();
        self.maybe_start_dtls(now);
        self.flush(now);
        self.update_state();
        self.out.timer_moved();
    }

    fn drain_agent(&mut self) {
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        // Candidates are rare: what they need from the description is looked up then, not
        // on every input.
        let mut candidates = Vec::new();
        while let Some(o) = agent.poll_output() {
            match o {
                sans_io::Output::Transmit(t) => self.out.transmit(t),
                sans_io::Output::Request(r) => self.out.request(r),
                sans_io::Output::Timeout(t) => self.agent_timer = t,
                sans_io::Output::Event(e) => match e {
                    ice_agent::Event::LocalCandidate { candidate, .. } => {
                        candidates.push(candidate.to_string())
                    }
                    ice_agent::Event::GatheringComplete { .. } => {
                        self.gathering_complete = true;
                        candidates.push(String::new());
                    }
                    ice_agent::Event::StateChanged(s) => {
                        self.ice_state = s;
                        self.out.event(Event::IceConnectionState(s));
                    }
                    ice_agent::Event::SelectedPair { local, remote, .. } => {
                        tracing::debug!(local = %local, remote = %remote, "selected pair");
                    }
                    _ => {}
                },
            }
        }
        if candidates.is_empty() {
            return;
        }
        // The transport's section: its mid and index, as the browser's candidates carry.
        let transport = self.current_local().and_then(|d| {
            let t = d.transport()?;
            let index = d.media.iter().position(|m| m.mid == t.mid)?;
            Some((t.mid.clone(), index as u16))
        });
        let ufrag = self
            .agent
            .as_ref()
            .map(|a| a.local_credentials().ufrag.clone());
        for candidate in candidates {
            self.out.event(Event::IceCandidate(IceCandidate {
                candidate,
                sdp_mid: transport.as_ref().map(|t| t.0.clone()),
                sdp_mline_index: transport.as_ref().map(|t| t.1),
                username_fragment: ufrag.clone(),
            }));
        }
    }

    /// DTLS starts once the roles are known: a server at once (it waits for the
    /// ClientHello), a client once ICE has a pair to send it on.
    fn maybe_start_dtls(&mut self, now: Instant) {
        if self.dtls.is_some() || self.dtls_failed.is_some() {
            return;
        }
        let Some(n) = &self.negotiated else { return };
        let ice_up = matches!(
            self.ice_state,
            ConnectionState::Connected | ConnectionState::Completed
        );
        if n.dtls_role == DtlsRole::Client && !ice_up {
            return;
        }
        match Dtls::new(
            now,
            &self.certificate,
            n.dtls_role,
            n.remote_fingerprints.clone(),
        ) {
            Ok(d) => self.dtls = Some(d),
            Err(e) => {
                self.dtls_failure(e);
                return;
            }
        }
        for record in std::mem::take(&mut self.early) {
            self.handle_dtls(now, &record);
        }
    }

    /// SCTP packets into DTLS records, DTLS records onto the selected pair.
    fn flush(&mut self, now: Instant) {
        if let (Some(sctp), Some(dtls)) = (self.sctp.as_mut(), self.dtls.as_mut()) {
            let mut packets: Vec<Bytes> = Vec::new();
            sctp.poll_transmit(now, &mut packets);
            for p in packets {
                if let Err(e) = dtls.write(now, &p) {
                    tracing::debug!(error = %e, "SCTP packet not sent");
                }
            }
        }
        let (Some(dtls), Some(agent), Some(stream)) =
            (self.dtls.as_mut(), self.agent.as_mut(), self.stream)
        else {
            return;
        };
        // Records wait for a pair: the peer's ClientHello can come on a pair its checks
        // validated before our agent has selected one (the controlled side selects on the
        // peer's nomination), and a server flight dropped then would cost the client's
        // retransmission timer, a whole second. Once a pair exists they go straight out.
        let send =
            |agent: &mut Agent, buf: &mut Vec<u8>, out: &mut Outputs<Event, Request>, r: &[u8]| {
                match agent.send(now, stream, 1, r, buf) {
                    Ok(t) => {
                        out.transmit(Transmit::to_owned(&t));
                        true
                    }
                    Err(ice_agent::SendError::NotConnected) => false,
                    Err(e) => {
                        tracing::debug!(error = %e, "DTLS record not sent");
                        true
                    }
                }
            };
        while let Some(r) = self.unsent.front() {
            if !send(agent, &mut self.buf, &mut self.out, r) {
                break;
            }
            self.unsent.pop_front();
        }
        while let Some(record) = dtls.poll_transmit() {
            let sent = self.unsent.is_empty() && send(agent, &mut self.buf, &mut self.out, &record);
            if !sent && self.unsent.len() < MAX_UNSENT {
                self.unsent.push_back(Vec::from(record));
            }
        }
    }

    fn update_state(&mut self) {
        let s = if self.signaling == SignalingState::Closed {
            PeerConnectionState::Closed
        } else if self.dtls_failed.is_some() || self.ice_state == ConnectionState::Failed {
            PeerConnectionState::Failed
        } else if self.ice_state == ConnectionState::Disconnected {
            PeerConnectionState::Disconnected
        } else if self.dtls.as_ref().is_some_and(Dtls::is_connected)
            && matches!(
                self.ice_state,
                ConnectionState::Connected | ConnectionState::Completed
            )
        {
            PeerConnectionState::Connected
        } else if self.ice_state == ConnectionState::New && self.dtls.is_none() {
            PeerConnectionState::New
        } else {
            PeerConnectionState::Connecting
        };
        self.set_state(s);
    }

    fn set_state(&mut self, s: PeerConnectionState) {
        if self.state != s {
            self.state = s;
            self.out.event(Event::ConnectionState(s));
        }
    }
}

impl sans_io::Core for PeerConnection {
    type Event = Event;
    type Request = Request;

    fn poll_output(&mut self) -> Option<Output> {
        PeerConnection::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        PeerConnection::handle_timeout(self, now)
    }
}
