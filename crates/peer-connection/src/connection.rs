//! [`PeerConnection`]: the sans-IO WebRTC session.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use ice_agent::{
    Agent, AgentConfig, ConnectionState, Credentials, LocalSocket, Receive, Role, StreamId,
};
use sans_io::{Outputs, Transmit};

use crate::certificate::{Certificate, Fingerprint};
use crate::datachannel::{ChannelId, Channels, DataChannelEvent, DataChannelInfo, DataChannelInit};
use crate::dtls::{Dtls, DtlsError, DtlsEvent, DtlsRole};
use crate::sctp::{Sctp, SctpEvent, SendError};
use crate::sdp::{
    self, Description, IceCandidate, Media, MediaKind, SdpType, SessionDescription, Setup,
};
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
            sctp: None,
            channels: Channels::default(),
            ice_state: ConnectionState::New,
            state: PeerConnectionState::New,
            dtls_failed: None,
            agent_timer: None,
            out: Outputs::new(),
            buf: vec![0; BUF_LEN],
            negotiation_needed: false,
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

    // ---- JSEP ----

    fn current_local(&self) -> Option<&Description> {
        self.pending_local.as_ref().or(self.local.as_ref())
    }

    /// The media sections we would offer now: what was negotiated, and an application
    /// section if there are channels and none yet.
    fn local_media(&self, setup: Setup) -> Vec<Media> {
        let mut media: Vec<Media> = self
            .local
            .as_ref()
            .map(|d| d.media.clone())
            .unwrap_or_default();
        if !self.channels.is_empty() && !media.iter().any(|m| m.kind == MediaKind::Application) {
            media.push(Media::new(MediaKind::Application, media.len().to_string()));
        }
        for m in &mut media {
            m.setup = Some(setup);
        }
        media
    }

    fn fill_transport(&self, m: &mut Media) {
        let agent = self.agent.as_ref().expect("the agent exists");
        let c = agent.local_credentials();
        m.ufrag = c.ufrag.clone();
        m.pwd = c.pwd.clone();
        m.ice_options = agent
            .local_ice_options()
            .split(' ')
            .map(String::from)
            .collect();
        m.fingerprints = vec![self.certificate.fingerprint().clone()];
        if m.kind == MediaKind::Application {
            m.sctp_port = Some(5000);
            m.max_message_size = Some(self.config.max_message_size as u64);
        }
        m.candidates = self
            .stream
            .map(|s| agent.local_candidates(s))
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_string())
            .collect();
    }

    fn description(&mut self, media: Vec<Media>) -> Description {
        self.session_version += 1;
        let mut d = Description {
            session_id: self.session_id,
            session_version: self.session_version,
            bundle: media
                .iter()
                .filter(|m| m.is_active())
                .map(|m| m.mid.clone())
                .collect(),
            ice_lite: false,
            media,
        };
        for m in d.media.iter_mut().filter(|m| m.is_active()) {
            self.fill_transport(m);
        }
        d
    }

    /// Our description as it stands (`localDescription`): the last one set, with the
    /// candidates gathered since and `a=end-of-candidates` once gathering is over — what a
    /// peer without trickle needs, or a copy-paste exchange.
    pub fn local_description(&self) -> Option<SessionDescription> {
        let (d, kind) = match (&self.pending_local, &self.local) {
            (Some(d), _) => (d, SdpType::Offer),
            (None, Some(d)) => (d, self.local_kind),
            (None, None) => return None,
        };
        let mut d = d.clone();
        let agent = self.agent.as_ref()?;
        let candidates: Vec<String> = self
            .stream
            .map(|s| agent.local_candidates(s))
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_string())
            .collect();
        for m in d.media.iter_mut().filter(|m| m.is_active()) {
            m.candidates = candidates.clone();
            m.end_of_candidates = self.gathering_complete;
        }
        Some(SessionDescription {
            kind,
            sdp: sdp::write(&d),
        })
    }

    /// Creates an offer (`createOffer`). With `ice_restart`, new ICE credentials.
    pub fn create_offer(
        &mut self,
        now: Instant,
        ice_restart: bool,
    ) -> Result<SessionDescription, Error> {
        self.check_open()?;
        if self.signaling == SignalingState::HaveRemoteOffer {
            return Err(Error::InvalidState(
                "an offer is in from the peer: answer it",
            ));
        }
        let fresh = self.agent.is_none();
        self.ensure_agent(Role::Controlling);
        if ice_restart && !fresh {
            if let Some(a) = self.agent.as_mut() {
                a.restart(now);
                self.gathering_complete = false;
            }
        }
        let media = self.local_media(Setup::Actpass);
        if media.is_empty() {
            return Err(Error::InvalidState(
                "nothing to offer: create a DataChannel or add a track first",
            ));
        }
        let d = self.description(media);
        self.settle(now);
        Ok(SessionDescription::offer(sdp::write(&d)))
    }

    /// Creates an answer to the peer's offer (`createAnswer`).
    pub fn create_answer(&mut self, now: Instant) -> Result<SessionDescription, Error> {
        self.check_open()?;
        let Some(offer) = self.pending_remote.clone() else {
            return Err(Error::InvalidState("no offer from the peer to answer"));
        };
        let mut media = Vec::new();
        for m in &offer.media {
            let mut a = Media::new(m.kind, m.mid.clone());
            let accept = m.is_active() && m.kind == MediaKind::Application;
            if !accept {
                // Audio and video are refused until tracks exist (port 0, RFC 3264 §6).
                a.port = 0;
            } else {
                a.setup = Some(match m.setup {
                    Some(Setup::Active) => Setup::Passive,
                    // actpass or passive: we take the client's part (RFC 8842 §5.3,
                    // as browsers do).
                    _ => Setup::Active,
                });
            }
            media.push(a);
        }
        let mut d = self.description(media);
        // BUNDLE in the answer: the offer's group, minus what we refused (RFC 9143 §7.3).
        d.bundle = offer
            .bundle
            .iter()
            .filter(|mid| d.media.iter().any(|m| &&m.mid == mid && m.is_active()))
            .cloned()
            .collect();
        self.settle(now);
        Ok(SessionDescription::answer(sdp::write(&d)))
    }

    /// Applies our own description (`setLocalDescription`); gathering starts.
    pub fn set_local_description(
        &mut self,
        now: Instant,
        desc: &SessionDescription,
    ) -> Result<(), Error> {
        self.check_open()?;
        let d = sdp::parse(&desc.sdp)?;
        match (desc.kind, self.signaling) {
            (SdpType::Offer, SignalingState::Stable | SignalingState::HaveLocalOffer) => {
                self.pending_local = Some(d);
                self.set_signaling(SignalingState::HaveLocalOffer);
            }
            (SdpType::Answer, SignalingState::HaveRemoteOffer) => {
                self.local = Some(d);
                self.local_kind = SdpType::Answer;
                self.remote = self.pending_remote.take();
                self.pending_local = None;
                self.set_signaling(SignalingState::Stable);
                self.negotiation_done(now)?;
            }
            _ => {
                return Err(Error::InvalidState(
                    "this description does not fit the signalling state",
                ))
            }
        }
        self.give_sockets(now);
        self.settle(now);
        Ok(())
    }

    /// Applies the peer's description (`setRemoteDescription`).
    pub fn set_remote_description(
        &mut self,
        now: Instant,
        desc: &SessionDescription,
    ) -> Result<(), Error> {
        self.check_open()?;
        let d = sdp::parse(&desc.sdp)?;
        let transport = d
            .transport()
            .ok_or(Error::InvalidState(
                "the description has no media section in use",
            ))?
            .clone();
        if transport.ufrag.is_empty() || transport.pwd.is_empty() {
            return Err(Error::Sdp(sdp::SdpError {
                line: None,
                text: String::new(),
                kind: sdp::SdpErrorKind::Missing("ice-ufrag"),
            }));
        }
        if transport.fingerprints.is_empty() {
            return Err(Error::Sdp(sdp::SdpError {
                line: None,
                text: String::new(),
                kind: sdp::SdpErrorKind::Missing("fingerprint"),
            }));
        }
        match (desc.kind, self.signaling) {
            (SdpType::Offer, SignalingState::Stable) => {
                self.ensure_agent(Role::Controlled);
                self.pending_remote = Some(d.clone());
                self.set_signaling(SignalingState::HaveRemoteOffer);
            }
            (SdpType::Answer, SignalingState::HaveLocalOffer) => {
                self.remote = Some(d.clone());
                self.local = self.pending_local.take();
                self.local_kind = SdpType::Offer;
                self.set_signaling(SignalingState::Stable);
            }
            _ => {
                return Err(Error::InvalidState(
                    "this description does not fit the signalling state",
                ))
            }
        }
        self.apply_remote_ice(now, &d, &transport);
        if desc.kind == SdpType::Answer {
            self.negotiation_done(now)?;
        }
        self.settle(now);
        Ok(())
    }

    /// The peer's ICE credentials and candidates. New credentials after the first are an
    /// ICE restart (RFC 8839 §4.4.1.1.1): ours are renewed too when the peer started it.
    fn apply_remote_ice(&mut self, now: Instant, d: &Description, transport: &Media) {
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        let stream = self.stream.expect("made with the agent");
        let creds = Credentials {
            ufrag: transport.ufrag.clone(),
            pwd: transport.pwd.clone(),
        };
        let previous = self
            .remote
            .as_ref()
            .filter(|r| !std::ptr::eq(*r, d))
            .and_then(|r| r.transport())
            .map(|m| m.ufrag.clone());
        let restart = previous.is_some_and(|u| u != creds.ufrag);
        if restart && self.signaling == SignalingState::HaveRemoteOffer {
            agent.restart(now);
            self.gathering_complete = false;
        }
        agent.set_remote_ice_options(now, &transport.ice_options.join(" "));
        agent.set_remote_credentials(now, creds, d.ice_lite);
        for c in &transport.candidates {
            if let Err(e) = agent.add_remote_candidate_line(now, stream, c) {
                tracing::debug!(candidate = %c, error = %e, "remote candidate ignored");
            }
        }
        if transport.end_of_candidates {
            agent.end_of_remote_candidates(now, stream);
        }
    }

    /// An answer is in: the DTLS role, the peer's fingerprint and SCTP follow.
    fn negotiation_done(&mut self, now: Instant) -> Result<(), Error> {
        self.negotiation_needed = false;
        let (Some(local), Some(remote)) = (self.local.as_ref(), self.remote.as_ref()) else {
            return Ok(());
        };
        let (Some(l), Some(r)) = (local.transport(), remote.transport()) else {
            return Ok(());
        };
        let dtls_role = match (l.setup, r.setup) {
            (Some(Setup::Active), _) => DtlsRole::Client,
            (Some(Setup::Passive), _) => DtlsRole::Server,
            (_, Some(Setup::Active)) => DtlsRole::Server,
            (_, Some(Setup::Passive)) => DtlsRole::Client,
            // Both actpass cannot be an answer; an answer without a=setup means active
            // (RFC 8842 §5.2: the default of the answerer is active).
            _ => DtlsRole::Server,
        };
        let application = |d: &Description| {
            d.media
                .iter()
                .any(|m| m.kind == MediaKind::Application && m.is_active())
        };
        let remote_max = remote
            .media
            .iter()
            .find(|m| m.kind == MediaKind::Application)
            .and_then(|m| m.max_message_size)
            // RFC 8841 §6.1: no attribute means 64 KiB; 0 means no limit.
            .map_or(65536, |n| if n == 0 { usize::MAX } else { n as usize });
        let n = Negotiated {
            dtls_role,
            remote_fingerprints: r.fingerprints.clone(),
            sctp: application(local) && application(remote),
            remote_max_message_size: remote_max,
        };
        if let Some(old) = &self.negotiated {
            if old.remote_fingerprints != n.remote_fingerprints && self.dtls.is_some() {
                return Err(Error::InvalidState(
                    "the peer's fingerprint changed: that needs a new session",
                ));
            }
        }
        self.channels.set_dtls_client(dtls_role == DtlsRole::Client);
        let start_sctp = n.sctp;
        self.negotiated = Some(n);
        if start_sctp && self.sctp.is_none() && self.dtls.as_ref().is_some_and(Dtls::is_connected) {
            self.start_sctp(now);
        }
        Ok(())
    }

    /// Adds the peer's candidate (`addIceCandidate`); `None` or an empty candidate is the
    /// end of candidates.
    pub fn add_ice_candidate(
        &mut self,
        now: Instant,
        candidate: Option<&IceCandidate>,
    ) -> Result<(), Error> {
        self.check_open()?;
        let (Some(agent), Some(stream)) = (self.agent.as_mut(), self.stream) else {
            return Err(Error::InvalidState("no remote description yet"));
        };
        match candidate.filter(|c| !c.is_end_of_candidates()) {
            None => agent.end_of_remote_candidates(now, stream),
            Some(c) => {
                let line = c.line();
                // An mDNS name (RFC 8828) cannot be resolved here: ignored, not an error.
                if line
                    .split_whitespace()
                    .nth(4)
                    .is_some_and(|h| h.ends_with(".local"))
                {
                    tracing::debug!(candidate = line, "mDNS candidate ignored");
                } else {
                    agent
                        .add_remote_candidate_line(now, stream, line)
                        .map_err(|e| Error::Candidate(e.to_string()))?;
                }
            }
        }
        self.settle(now);
        Ok(())
    }

    fn set_signaling(&mut self, s: SignalingState) {
        if self.signaling != s {
            self.signaling = s;
            self.out.event(Event::SignalingState(s));
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.signaling == SignalingState::Closed {
            Err(Error::InvalidState("the session is closed"))
        } else {
            Ok(())
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
        let data = match self.agent.as_mut() {
            Some(agent) => agent.handle_receive(now, r).map(|d| d.data.to_vec()),
            None => None,
        };
        if let Some(data) = data {
            self.handle_data(now, &data);
        }
        self.settle(now);
    }

    /// Application data on the selected pair, demultiplexed by its first byte (RFC 7983).
    fn handle_data(&mut self, now: Instant, data: &[u8]) {
        match data.first() {
            Some(20..=63) => self.handle_dtls(now, data),
            // SRTP/SRTCP: no tracks yet.
            Some(128..=191) => {}
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
                    if self.negotiated.as_ref().is_some_and(|n| n.sctp) && self.sctp.is_none() {
                        self.start_sctp(now);
                    }
                }
                DtlsEvent::Data(d) => {
                    if let Some(sctp) = self.sctp.as_mut() {
                        let mut sctp_events = Vec::new();
                        sctp.handle_packet(now, &d, &mut sctp_events);
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
        self.drain_agent(now);
        self.maybe_start_dtls(now);
        self.flush(now);
        self.update_state();
        self.out.timer_moved();
    }

    fn drain_agent(&mut self, _now: Instant) {
        let mid = self
            .current_local()
            .and_then(|d| d.transport())
            .map(|m| m.mid.clone());
        let index = self.current_local().and_then(|d| {
            let t = d.transport()?;
            d.media.iter().position(|m| m.mid == t.mid)
        });
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        let ufrag = agent.local_credentials().ufrag.clone();
        while let Some(o) = agent.poll_output() {
            match o {
                sans_io::Output::Transmit(t) => self.out.transmit(t),
                sans_io::Output::Request(r) => self.out.request(r),
                sans_io::Output::Timeout(t) => self.agent_timer = t,
                sans_io::Output::Event(e) => match e {
                    ice_agent::Event::LocalCandidate { candidate, .. } => {
                        self.out.event(Event::IceCandidate(IceCandidate {
                            candidate: candidate.to_string(),
                            sdp_mid: mid.clone(),
                            sdp_mline_index: index.map(|i| i as u16),
                            username_fragment: Some(ufrag.clone()),
                        }))
                    }
                    ice_agent::Event::GatheringComplete { .. } => {
                        self.gathering_complete = true;
                        self.out.event(Event::IceCandidate(IceCandidate {
                            candidate: String::new(),
                            sdp_mid: mid.clone(),
                            sdp_mline_index: index.map(|i| i as u16),
                            username_fragment: Some(ufrag.clone()),
                        }))
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
        while let Some(record) = dtls.poll_transmit() {
            match agent.send(now, stream, 1, &record, &mut self.buf) {
                Ok(t) => self.out.transmit(Transmit::to_owned(&t)),
                // No pair yet (a server's first flight cannot precede the ClientHello that
                // came on one): dropped, DTLS retransmits.
                Err(e) => tracing::debug!(error = %e, "DTLS record not sent"),
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
