//! JSEP (RFC 9429): offers, answers, descriptions, candidates.

use std::time::Instant;

use ice_agent::{Credentials, Role};

use super::{Event, Negotiated, PeerConnection, SignalingState};
use crate::dtls::{Dtls, DtlsRole};
use crate::sdp::Direction;
use crate::sdp::{
    self, Description, IceCandidate, Media, MediaKind, SdpType, SessionDescription, Setup,
};
use crate::Error;

impl PeerConnection {
    pub(super) fn current_local(&self) -> Option<&Description> {
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
        let next_mid = |media: &[Media]| {
            (0..)
                .map(|n: usize| n.to_string())
                .find(|mid| !media.iter().any(|m| &m.mid == mid))
                .unwrap_or_default()
        };
        if !self.channels.is_empty() && !media.iter().any(|m| m.kind == MediaKind::Application) {
            let mid = next_mid(&media);
            media.push(Media::new(MediaKind::Application, mid));
        }
        // Tracks added since: into a section of their kind that has no track of ours
        // (which then sends too), else a new section each (RFC 8829 §5.2.2).
        let mut placed: Vec<usize> = Vec::new();
        for m in media.iter_mut().filter(|m| m.is_active()) {
            if m.kind == MediaKind::Application {
                continue;
            }
            if let Some(i) = self
                .tracks
                .for_section(&m.mid, m.kind)
                .filter(|i| !placed.contains(i))
            {
                placed.push(i);
                m.direction = Direction::SendRecv;
                self.tracks.describe(i, m);
                if m.codecs.is_empty() {
                    m.codecs = self.tracks.local[i].codecs.clone();
                }
            }
        }
        for i in 0..self.tracks.local.len() {
            if !placed.contains(&i) && self.tracks.local[i].mid.is_none() {
                let mid = next_mid(&media);
                media.push(self.tracks.offer_section(i, mid));
            }
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
        m.candidates = self.local_candidate_lines();
    }

    /// Our candidates gathered so far, as `candidate:` attribute values.
    fn local_candidate_lines(&self) -> Vec<String> {
        match (&self.agent, self.stream) {
            (Some(a), Some(s)) => a
                .local_candidates(s)
                .iter()
                .map(|c| c.to_string())
                .collect(),
            _ => Vec::new(),
        }
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
        self.agent.as_ref()?;
        let candidates = self.local_candidate_lines();
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
        // Our DTLS role: kept from the first negotiation (RFC 8842 §5.5), else the client's
        // part unless the offerer takes it (RFC 8842 §5.3, as browsers do).
        let setup = match (
            self.negotiated.as_ref(),
            offer.transport().and_then(|m| m.setup),
        ) {
            (Some(n), _) if n.dtls_role == DtlsRole::Client => Setup::Active,
            (Some(_), _) => Setup::Passive,
            (None, Some(Setup::Active)) => Setup::Passive,
            (None, _) => Setup::Active,
        };
        let mut media = Vec::new();
        for m in &offer.media {
            let mut a = match m.kind {
                MediaKind::Application => {
                    let mut a = Media::new(m.kind, m.mid.clone());
                    if !m.is_active() {
                        a.port = 0;
                    }
                    a
                }
                _ => self.tracks.answer_section(m),
            };
            if a.is_active() {
                a.setup = Some(setup);
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
        // New ICE credentials in an offer after the first are the peer's ICE restart
        // (RFC 8839 §4.4.1.1.1).
        let restart = desc.kind == SdpType::Offer
            && self
                .remote
                .as_ref()
                .and_then(|r| r.transport())
                .is_some_and(|m| m.ufrag != transport.ufrag);
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
        self.apply_remote_ice(now, &d, &transport, restart);
        if desc.kind == SdpType::Answer {
            self.negotiation_done(now)?;
        }
        self.settle(now);
        Ok(())
    }

    /// The peer's ICE credentials and candidates; with `restart` (the peer started an ICE
    /// restart), ours are renewed too (RFC 8445 §9).
    fn apply_remote_ice(
        &mut self,
        now: Instant,
        d: &Description,
        transport: &Media,
        restart: bool,
    ) {
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        let stream = self.stream.expect("made with the agent");
        if restart {
            agent.restart(now);
            self.gathering_complete = false;
        }
        agent.set_remote_ice_options(now, &transport.ice_options.join(" "));
        let creds = Credentials {
            ufrag: transport.ufrag.clone(),
            pwd: transport.pwd.clone(),
        };
        agent.set_remote_credentials(now, creds, d.ice_lite);
        for c in &transport.candidates {
            if let Err(e) = add_candidate(agent, now, stream, c) {
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
        // The answer is the remote description when we offered.
        let answer_is_remote = self.local_kind == SdpType::Offer;
        let (local, remote) = (
            self.local.as_ref().map_or(&[][..], |d| &d.media),
            self.remote.as_ref().map_or(&[][..], |d| &d.media),
        );
        for t in self.tracks.negotiated(local, remote, answer_is_remote) {
            self.out.event(Event::Track(t));
        }
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
            Some(c) => add_candidate(agent, now, stream, c.line())?,
        }
        self.settle(now);
        Ok(())
    }

    pub(super) fn set_signaling(&mut self, s: SignalingState) {
        if self.signaling != s {
            self.signaling = s;
            self.out.event(Event::SignalingState(s));
        }
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        if self.signaling == SignalingState::Closed {
            Err(Error::InvalidState("the session is closed"))
        } else {
            Ok(())
        }
    }
}

/// Adds a remote candidate line, from a description or trickled. One with an mDNS name
/// (RFC 8828) cannot be resolved here: it is ignored, not an error.
fn add_candidate(
    agent: &mut ice_agent::Agent,
    now: Instant,
    stream: ice_agent::StreamId,
    line: &str,
) -> Result<(), Error> {
    match agent.add_remote_candidate_line(now, stream, line) {
        Err(ice_agent::AddCandidateError::Parse(ice_agent::CandidateParseError::Address(a)))
            if a.ends_with(".local") =>
        {
            tracing::debug!(candidate = line, "mDNS candidate ignored");
            Ok(())
        }
        r => r.map_err(|e| Error::Candidate(e.to_string())),
    }
}
