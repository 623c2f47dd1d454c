//! Tracks: audio and video senders of ours, the peer's tracks, and the RTP and RTCP they
//! carry (RFC 3550, RFC 8834), in the media sections of the BUNDLE group (RFC 9143).

use crate::sdp::{Codec, Direction, Media, MediaKind};

/// A track of ours ([`PeerConnection::add_track`](crate::PeerConnection::add_track)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub(crate) u32);

/// What is known about a track of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: MediaKind,
    /// Its media section, once negotiated.
    pub mid: Option<String>,
    /// The SSRC its packets carry (written into every packet sent).
    pub ssrc: u32,
    /// The codecs: those offered until an answer is in, then those negotiated, with the
    /// payload types to put in the packets.
    pub codecs: Vec<Codec>,
}

/// A track of the peer's: a media section it sends in
/// ([`Event::Track`](crate::Event::Track), the browser's `ontrack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTrackInfo {
    /// Its media section.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRCs the peer announced (`a=ssrc`), if any.
    pub ssrcs: Vec<u32>,
    /// The negotiated codecs, with their payload types.
    pub codecs: Vec<Codec>,
}

/// An RTP packet that arrived, decrypted and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The media section (track) it belongs to.
    pub mid: String,
    /// The payload type (see the track's codecs).
    pub payload_type: u8,
    /// The SSRC.
    pub ssrc: u32,
    /// The sequence number.
    pub sequence: u16,
    /// The RTP timestamp.
    pub timestamp: u32,
    /// The marker bit (the end of a video frame).
    pub marker: bool,
    /// The whole packet, header included (parse it with `rtc-rtp` if needed).
    pub data: Vec<u8>,
}

impl RtpPacket {
    /// Reads the fixed header of a packet that passed SRTP (so at least 12 bytes).
    pub(crate) fn new(mid: String, data: Vec<u8>) -> Option<RtpPacket> {
        let h = data.get(..12)?;
        Some(RtpPacket {
            mid,
            payload_type: h[1] & 0x7f,
            marker: h[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([h[2], h[3]]),
            timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            data,
        })
    }
}

/// Why a packet could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// No such track.
    #[error("no such track")]
    UnknownTrack,
    /// The track has no negotiated media section that sends, or SRTP is not up yet.
    #[error("the track is not sending (not negotiated, not sendrecv/sendonly, or not connected)")]
    NotSending,
    /// Not an RTP (or RTCP) packet: version 2 and at least its fixed header.
    #[error("not an RTP packet")]
    NotRtp,
    /// No pair to send on.
    #[error("not connected")]
    NotConnected,
}

#[derive(Debug, Clone)]
pub(crate) struct LocalTrack {
    pub(crate) id: TrackId,
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: u32,
    pub(crate) stream_id: String,
    pub(crate) track_id: String,
    /// What we offer or accept.
    pub(crate) codecs: Vec<Codec>,
    /// Negotiated: its section and codecs, and whether the section sends.
    pub(crate) mid: Option<String>,
    pub(crate) negotiated: Vec<Codec>,
    pub(crate) sending: bool,
}

/// The session's tracks.
#[derive(Debug, Default)]
pub(crate) struct Tracks {
    pub(crate) local: Vec<LocalTrack>,
    pub(crate) remote: Vec<RemoteTrackInfo>,
    next: u32,
    pub(crate) cname: String,
}

/// The codecs we take when the peer offers media and we add none: the ones the issue and
/// browsers name (Opus, VP8, VP9, H.264, AV1).
pub(crate) fn default_codecs(kind: MediaKind) -> Vec<Codec> {
    match kind {
        MediaKind::Audio => vec![Codec::opus()],
        MediaKind::Video => vec![Codec::vp8(), Codec::vp9(), Codec::h264(), Codec::av1()],
        MediaKind::Application => Vec::new(),
    }
}

impl Tracks {
    /// No tracks yet; `cname` names the session's RTP sources (RFC 7022).
    pub(crate) fn new(cname: String) -> Tracks {
        Tracks {
            cname,
            ..Tracks::default()
        }
    }

    pub(crate) fn add(&mut self, kind: MediaKind, codecs: Vec<Codec>, ssrc: u32) -> TrackId {
        let id = TrackId(self.next);
        self.next += 1;
        self.local.push(LocalTrack {
            id,
            kind,
            ssrc,
            stream_id: format!("stream-{}", self.cname),
            track_id: format!("track-{}-{}", self.cname, id.0),
            codecs,
            mid: None,
            negotiated: Vec::new(),
            sending: false,
        });
        id
    }

    pub(crate) fn get(&self, id: TrackId) -> Option<&LocalTrack> {
        self.local.iter().find(|t| t.id == id)
    }

    pub(crate) fn info(&self, id: TrackId) -> Option<TrackInfo> {
        self.get(id).map(|t| TrackInfo {
            kind: t.kind,
            mid: t.mid.clone(),
            ssrc: t.ssrc,
            codecs: if t.negotiated.is_empty() {
                t.codecs.clone()
            } else {
                t.negotiated.clone()
            },
        })
    }

    /// Our track that goes in section `mid` (already there, or a free one of its kind).
    pub(crate) fn for_section(&self, mid: &str, kind: MediaKind) -> Option<usize> {
        self.local
            .iter()
            .position(|t| t.mid.as_deref() == Some(mid))
            .or_else(|| {
                self.local
                    .iter()
                    .position(|t| t.mid.is_none() && t.kind == kind)
            })
    }

    /// Writes a track's sending attributes into its section.
    pub(crate) fn describe(&self, i: usize, m: &mut Media) {
        let t = &self.local[i];
        m.ssrcs = vec![t.ssrc];
        m.cname = Some(self.cname.clone());
        m.msid = Some(format!("{} {}", t.stream_id, t.track_id));
    }

    /// An offer's section for track `i` (new, or renewed).
    pub(crate) fn offer_section(&self, i: usize, mid: String) -> Media {
        let t = &self.local[i];
        let mut m = Media::new(t.kind, mid);
        m.codecs = t.codecs.clone();
        m.direction = Direction::SendRecv;
        self.describe(i, &mut m);
        m
    }

    /// Our answer to an offered audio or video section: the offered codecs we take (the
    /// offerer's payload types and parameters, in its order), the direction from what the
    /// offer allows and whether a track of ours goes there (RFC 8829 §5.3.1).
    pub(crate) fn answer_section(&self, offered: &Media) -> Media {
        let mut m = Media::new(offered.kind, offered.mid.clone());
        let track = self.for_section(&offered.mid, offered.kind);
        let defaults;
        let ours = match track {
            Some(i) => &self.local[i].codecs,
            None => {
                defaults = default_codecs(offered.kind);
                &defaults
            }
        };
        m.codecs = offered
            .codecs
            .iter()
            .filter(|c| ours.iter().any(|o| o.same_format(c)))
            .cloned()
            .collect();
        m.extmaps = offered.extmaps.clone();
        if m.codecs.is_empty() || !offered.is_active() {
            m.port = 0;
            return m;
        }
        m.direction = offered.direction.answer(track.is_some(), true);
        if let (Some(i), true) = (track, m.direction.sends()) {
            self.describe(i, &mut m);
        }
        m
    }

    /// The local and remote descriptions are settled: tracks learn their sections (by their
    /// SSRC in our description) and codecs (the answer's), the peer's tracks are those
    /// whose sections send to us. Returns the peer's tracks that are new or changed.
    pub(crate) fn negotiated(
        &mut self,
        local: &[Media],
        remote: &[Media],
        answer_is_remote: bool,
    ) -> Vec<RemoteTrackInfo> {
        let answer = if answer_is_remote { remote } else { local };
        for t in &mut self.local {
            let section = local
                .iter()
                .find(|m| m.is_active() && m.ssrcs.contains(&t.ssrc));
            t.mid = section.map(|m| m.mid.clone()).or(t.mid.take());
            t.sending = section.is_some_and(|m| m.direction.sends());
            t.negotiated = t
                .mid
                .as_ref()
                .and_then(|mid| answer.iter().find(|m| &m.mid == mid))
                .map(|m| m.codecs.clone())
                .unwrap_or_default();
        }
        let mut changed = Vec::new();
        let mut now = Vec::new();
        for r in remote
            .iter()
            .filter(|m| m.kind != MediaKind::Application && m.is_active())
        {
            let ours = local.iter().find(|m| m.mid == r.mid);
            // The peer sends there if its direction says so and ours accepts.
            let receives = r.direction.sends() && ours.is_some_and(|m| m.direction.receives());
            if !receives {
                continue;
            }
            let codecs = answer
                .iter()
                .find(|m| m.mid == r.mid)
                .map(|m| m.codecs.clone())
                .unwrap_or_default();
            let t = RemoteTrackInfo {
                mid: r.mid.clone(),
                kind: r.kind,
                ssrcs: r.ssrcs.clone(),
                codecs,
            };
            if !self.remote.contains(&t) {
                changed.push(t.clone());
            }
            now.push(t);
        }
        self.remote = now;
        changed
    }

    /// The section of an arriving packet: by its SSRC (the peer's `a=ssrc`), else by its
    /// payload type when only one section has it (RFC 8843 §9.2 lets a receiver do this).
    pub(crate) fn route(&self, ssrc: u32, payload_type: u8) -> Option<&str> {
        if let Some(t) = self.remote.iter().find(|t| t.ssrcs.contains(&ssrc)) {
            return Some(&t.mid);
        }
        let mut by_pt = self
            .remote
            .iter()
            .filter(|t| t.codecs.iter().any(|c| c.payload_type == payload_type));
        match (by_pt.next(), by_pt.next()) {
            (Some(t), None) => Some(&t.mid),
            _ => None,
        }
    }
}
