//! Tracks on the session: adding ours, sending RTP and RTCP through SRTP, and the peer's
//! packets in (RFC 7983 §7: first byte 128–191; RTCP by payload type 64–95, RFC 5761 §4).

use std::time::Instant;

use sans_io::Transmit;

use super::{Event, PeerConnection};
use crate::media::{MediaError, RtpPacket, TrackId, TrackInfo};
use crate::sdp::{Codec, MediaKind};
use crate::srtp::Srtp;

/// Whether an RTP/RTCP datagram is RTCP: its second byte, less the marker bit, is in the
/// range RTCP packet types occupy (RFC 5761 §4).
fn is_rtcp(data: &[u8]) -> bool {
    data.get(1).is_some_and(|b| (64..=95).contains(&(b & 0x7f)))
}

impl PeerConnection {
    /// Adds an audio or video track to send (`addTrack`): a media section of its own in the
    /// next offer (or the section of its kind the peer offered, in the next answer). It
    /// asks for negotiation. `codecs` are offered in this order; empty: the defaults (Opus;
    /// VP8, VP9, H.264, AV1).
    pub fn add_track(&mut self, now: Instant, kind: MediaKind, codecs: Vec<Codec>) -> TrackId {
        let codecs = if codecs.is_empty() {
            crate::media::default_codecs(kind)
        } else {
            codecs
        };
        let ssrc = loop {
            let s: u32 = rand::random();
            if s != 0 && !self.tracks.local.iter().any(|t| t.ssrc == s) {
                break s;
            }
        };
        let id = self.tracks.add(kind, codecs, ssrc);
        self.need_negotiation();
        self.settle(now);
        id
    }

    /// What is known about a track of ours.
    pub fn track(&self, id: TrackId) -> Option<TrackInfo> {
        self.tracks.info(id)
    }

    /// Sends an RTP packet on a track: its SSRC is set to the track's, then it goes out
    /// through SRTP on the selected pair. The payload type is the caller's (one of
    /// [`TrackInfo::codecs`]).
    pub fn write_rtp(
        &mut self,
        now: Instant,
        id: TrackId,
        packet: &[u8],
    ) -> Result<(), MediaError> {
        let t = self.tracks.get(id).ok_or(MediaError::UnknownTrack)?;
        if !t.sending {
            return Err(MediaError::NotSending);
        }
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return Err(MediaError::NotRtp);
        }
        let mut p = packet.to_vec();
        p[8..12].copy_from_slice(&t.ssrc.to_be_bytes());
        let srtp = self.srtp.as_mut().ok_or(MediaError::NotSending)?;
        let protected = srtp.protect_rtp(&p).ok_or(MediaError::NotRtp)?;
        self.stats.rtp_sent += 1;
        self.send_media(now, &protected)
    }

    /// Sends an RTCP packet (compound or not) through SRTCP: feedback for a peer's track
    /// (PLI, FIR, NACK), or reports.
    pub fn write_rtcp(&mut self, now: Instant, packet: &[u8]) -> Result<(), MediaError> {
        if packet.len() < 8 || packet[0] >> 6 != 2 || !is_rtcp(packet) {
            return Err(MediaError::NotRtp);
        }
        let srtp = self.srtp.as_mut().ok_or(MediaError::NotSending)?;
        let protected = srtp.protect_rtcp(packet).ok_or(MediaError::NotRtp)?;
        self.send_media(now, &protected)
    }

    fn send_media(&mut self, now: Instant, data: &[u8]) -> Result<(), MediaError> {
        let (Some(agent), Some(stream)) = (self.agent.as_mut(), self.stream) else {
            return Err(MediaError::NotConnected);
        };
        let t = agent
            .send(now, stream, 1, data, &mut self.buf)
            .map_err(|_| MediaError::NotConnected)?;
        self.out.transmit(Transmit::to_owned(&t));
        self.out.timer_moved();
        Ok(())
    }

    /// The DTLS handshake is done: SRTP keys come out of it.
    pub(super) fn start_srtp(&mut self) {
        if self.srtp.is_none() {
            self.srtp = self.dtls.as_ref().and_then(Srtp::new);
            if let Some(s) = &self.srtp {
                tracing::debug!(profile = s.profile, "SRTP keys from DTLS");
            }
        }
    }

    /// An SRTP or SRTCP datagram. What fails authentication, is replayed or belongs to no
    /// track is dropped and counted.
    pub(super) fn handle_srtp(&mut self, data: &[u8]) {
        let Some(srtp) = self.srtp.as_mut() else {
            self.stats.media_dropped += 1;
            return;
        };
        if is_rtcp(data) {
            match srtp.unprotect_rtcp(data) {
                Some(plain) => self.out.event(Event::Rtcp { data: plain }),
                None => self.stats.media_dropped += 1,
            }
            return;
        }
        let Some(plain) = srtp.unprotect_rtp(data) else {
            self.stats.media_dropped += 1;
            return;
        };
        let Some(p) = RtpPacket::new(String::new(), plain) else {
            self.stats.media_dropped += 1;
            return;
        };
        match self.tracks.route(p.ssrc, p.payload_type) {
            Some(mid) => {
                let p = RtpPacket {
                    mid: mid.to_owned(),
                    ..p
                };
                self.stats.rtp_received += 1;
                self.out.event(Event::Rtp(p));
            }
            None => self.stats.media_dropped += 1,
        }
    }

    /// Whether a section of this kind is negotiated (for the stats of callers).
    pub fn has_media(&self, kind: MediaKind) -> bool {
        self.tracks.remote.iter().any(|t| t.kind == kind)
            || self
                .tracks
                .local
                .iter()
                .any(|t| t.kind == kind && t.mid.is_some())
    }
}
