//! Session descriptions (RFC 8866) as JSEP uses them (RFC 9429): what crosses the
//! signalling channel, and the model the session negotiates with.
//!
//! rtc-sdp reads and writes the lines; this module gives them their WebRTC meaning (BUNDLE,
//! ICE credentials, `a=setup`, fingerprints, codecs, SCTP) and names the line when something
//! is wrong.

mod parse;
mod write;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::certificate::Fingerprint;

pub(crate) use parse::parse;
pub(crate) use write::write;

/// The kind of a session description (RFC 9429 §4.1.8, `RTCSdpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An offer.
    Offer,
    /// A provisional answer.
    Pranswer,
    /// A final answer.
    Answer,
    /// Back to the last stable state.
    Rollback,
}

impl fmt::Display for SdpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdpType::Offer => "offer",
            SdpType::Pranswer => "pranswer",
            SdpType::Answer => "answer",
            SdpType::Rollback => "rollback",
        })
    }
}

/// A session description as it crosses the signalling channel: the browser's
/// `RTCSessionDescriptionInit`, `{"type": "offer", "sdp": "v=0\r\n…"}` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// Offer or answer.
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// The SDP text.
    #[serde(default)]
    pub sdp: String,
}

impl SessionDescription {
    /// An offer with this SDP text.
    pub fn offer(sdp: impl Into<String>) -> SessionDescription {
        SessionDescription {
            kind: SdpType::Offer,
            sdp: sdp.into(),
        }
    }

    /// An answer with this SDP text.
    pub fn answer(sdp: impl Into<String>) -> SessionDescription {
        SessionDescription {
            kind: SdpType::Answer,
            sdp: sdp.into(),
        }
    }

    /// The browser's JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the browser's JSON form.
    pub fn from_json(json: &str) -> Result<SessionDescription, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// An ICE candidate as it crosses the signalling channel: the browser's
/// `RTCIceCandidateInit` (`{"candidate": "candidate:…", "sdpMid": "0", "sdpMLineIndex": 0}`).
/// An empty `candidate` is the end of candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute (RFC 8839 §5.1), with or without a leading `a=`; empty
    /// for the end of candidates.
    pub candidate: String,
    /// The media section it belongs to, by mid.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// The media section it belongs to, by index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    /// The ICE ufrag it was gathered under (after a restart, an old one is ignored).
    #[serde(default)]
    pub username_fragment: Option<String>,
}

impl IceCandidate {
    /// The browser's JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the browser's JSON form.
    pub fn from_json(json: &str) -> Result<IceCandidate, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Whether this is the end of candidates (an empty `candidate`).
    pub fn is_end_of_candidates(&self) -> bool {
        self.line().is_empty()
    }

    /// The candidate attribute without `a=` and surrounding space.
    pub(crate) fn line(&self) -> &str {
        let c = self.candidate.trim();
        c.strip_prefix("a=").unwrap_or(c)
    }
}

/// Why a session description was refused: the line (1-based, with its text) where known,
/// and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SdpError {
    /// The line number, from 1; `None` when the problem is what is missing.
    pub line: Option<usize>,
    /// The line's text.
    pub text: String,
    /// What is wrong.
    pub kind: SdpErrorKind,
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "SDP line {n} `{}`: {}", self.text, self.kind),
            None => write!(f, "SDP: {}", self.kind),
        }
    }
}

/// What is wrong with a session description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// Longer than we read.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    /// Not a `<letter>=<value>` line.
    #[error("not an SDP line (`<type>=<value>`)")]
    NotALine,
    /// The line syntax or order (the reason is rtc-sdp's).
    #[error("{0}")]
    Syntax(String),
    /// The description ended early.
    #[error("ends before its v=, o=, s= and t= lines")]
    Truncated,
    /// An attribute WebRTC needs is missing.
    #[error("missing a={0}")]
    Missing(&'static str),
    /// An attribute's value is not understood.
    #[error("bad a={attribute}: {reason}")]
    BadValue {
        /// The attribute.
        attribute: &'static str,
        /// Why.
        reason: String,
    },
    /// Not something a WebRTC session can be made of.
    #[error("{0}")]
    Unsupported(String),
}

/// What a media section carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application` with SCTP over DTLS: DataChannels.
    Application,
}

impl MediaKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
        }
    }
}

/// `a=setup` (RFC 8842 §5, RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    Active,
    Passive,
    Actpass,
}

impl Setup {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::Actpass => "actpass",
        }
    }
}

/// A media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Sends and receives.
    #[default]
    SendRecv,
    /// Only sends.
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction of the answer to an offer with this direction, given what we want
    /// (RFC 8829 §5.3.1 / RFC 3264 §6.1).
    pub(crate) fn answer(self, send: bool, recv: bool) -> Direction {
        let send = send && matches!(self, Direction::SendRecv | Direction::RecvOnly);
        let recv = recv && matches!(self, Direction::SendRecv | Direction::SendOnly);
        Direction::from_flags(send, recv)
    }

    pub(crate) fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// An RTP codec of a media section: `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` of one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// The payload type.
    pub payload_type: u8,
    /// The encoding name as written (`opus`, `VP8`, `H264`, …).
    pub name: String,
    /// The clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels (0: not given).
    pub channels: u16,
    /// The format parameters (`a=fmtp`), verbatim.
    pub fmtp: String,
    /// The feedback types (`a=rtcp-fb`), e.g. `nack pli`.
    pub rtcp_fb: Vec<String>,
}

impl Codec {
    /// A codec with no format parameters or feedback.
    pub fn new(payload_type: u8, name: &str, clock_rate: u32, channels: u16) -> Codec {
        Codec {
            payload_type,
            name: name.into(),
            clock_rate,
            channels,
            fmtp: String::new(),
            rtcp_fb: Vec::new(),
        }
    }

    /// Opus, 48 kHz stereo, in-band FEC (RFC 7587), as browsers offer it.
    pub fn opus() -> Codec {
        Codec {
            fmtp: "minptime=10;useinbandfec=1".into(),
            rtcp_fb: vec!["transport-cc".into()],
            ..Codec::new(111, "opus", 48000, 2)
        }
    }

    /// VP8 (RFC 7741) with NACK, PLI and FIR.
    pub fn vp8() -> Codec {
        Codec {
            rtcp_fb: vec!["nack".into(), "nack pli".into(), "ccm fir".into()],
            ..Codec::new(96, "VP8", 90000, 0)
        }
    }

    /// VP9 (RFC 9628), profile 0.
    pub fn vp9() -> Codec {
        Codec {
            fmtp: "profile-id=0".into(),
            ..Codec {
                payload_type: 98,
                ..Codec::vp8()
            }
        }
        .renamed("VP9")
    }

    /// H.264 (RFC 6184) constrained baseline, packetization mode 1.
    pub fn h264() -> Codec {
        Codec {
            fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
            ..Codec {
                payload_type: 102,
                ..Codec::vp8()
            }
        }
        .renamed("H264")
    }

    /// AV1 (the AOM RTP payload format).
    pub fn av1() -> Codec {
        Codec {
            payload_type: 45,
            ..Codec::vp8()
        }
        .renamed("AV1")
    }

    fn renamed(mut self, name: &str) -> Codec {
        self.name = name.into();
        self
    }

    /// Whether two codecs are the same format (name, clock rate, channels; RFC 3264 §6.1),
    /// whatever their payload types. H.264 also needs the same packetization mode.
    pub(crate) fn same_format(&self, other: &Codec) -> bool {
        let channels = |c: &Codec| if c.channels == 0 { 1 } else { c.channels };
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && channels(self) == channels(other)
            && (!self.name.eq_ignore_ascii_case("h264")
                || fmtp_param(&self.fmtp, "packetization-mode")
                    == fmtp_param(&other.fmtp, "packetization-mode"))
    }
}

/// One `key=value` of an fmtp line.
fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// An `a=extmap` (RFC 8285), passed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    /// The id.
    pub id: u16,
    /// The extension's URI (and any direction or attributes after it, verbatim).
    pub uri: String,
}

/// One media section of a description.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Media {
    pub(crate) kind: MediaKind,
    /// 0: rejected or removed (RFC 9429 §5.2.2 bundle-only uses 0 too, with
    /// `a=bundle-only`).
    pub(crate) port: u16,
    pub(crate) bundle_only: bool,
    pub(crate) mid: String,
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    pub(crate) ice_options: Vec<String>,
    pub(crate) fingerprints: Vec<Fingerprint>,
    pub(crate) setup: Option<Setup>,
    pub(crate) direction: Direction,
    pub(crate) rtcp_mux: bool,
    pub(crate) codecs: Vec<Codec>,
    pub(crate) extmaps: Vec<Extmap>,
    /// `a=msid` (stream id and track id).
    pub(crate) msid: Option<String>,
    /// The SSRCs of `a=ssrc` lines, in order, each once; the first is the media SSRC.
    pub(crate) ssrcs: Vec<u32>,
    pub(crate) cname: Option<String>,
    pub(crate) sctp_port: Option<u16>,
    pub(crate) max_message_size: Option<u64>,
    pub(crate) candidates: Vec<String>,
    pub(crate) end_of_candidates: bool,
}

impl Media {
    pub(crate) fn new(kind: MediaKind, mid: String) -> Media {
        Media {
            kind,
            port: 9,
            bundle_only: false,
            mid,
            ufrag: String::new(),
            pwd: String::new(),
            ice_options: Vec::new(),
            fingerprints: Vec::new(),
            setup: None,
            direction: Direction::SendRecv,
            rtcp_mux: kind != MediaKind::Application,
            codecs: Vec::new(),
            extmaps: Vec::new(),
            msid: None,
            ssrcs: Vec::new(),
            cname: None,
            sctp_port: None,
            max_message_size: None,
            candidates: Vec::new(),
            end_of_candidates: false,
        }
    }

    /// Whether the section is in use (not rejected).
    pub(crate) fn is_active(&self) -> bool {
        self.port != 0 || self.bundle_only
    }
}

/// A parsed description: what a WebRTC session negotiates over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Description {
    /// The session id and version of `o=` (RFC 9429 §5.2.1: the version grows with each
    /// new description).
    pub(crate) session_id: u64,
    pub(crate) session_version: u64,
    /// The mids of `a=group:BUNDLE`, first the tagged one.
    pub(crate) bundle: Vec<String>,
    pub(crate) ice_lite: bool,
    pub(crate) media: Vec<Media>,
}

impl Description {
    /// The section that carries the transport: the first of the BUNDLE group that is in
    /// use, or the first in use.
    pub(crate) fn transport(&self) -> Option<&Media> {
        self.bundle
            .first()
            .and_then(|mid| self.media.iter().find(|m| &m.mid == mid && m.is_active()))
            .or_else(|| self.media.iter().find(|m| m.is_active()))
    }
}

#[cfg(test)]
mod tests;
