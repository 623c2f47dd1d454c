//! SDP text to [`Description`], with the line named in every error.

use std::io::Cursor;

use rtc_sdp::description::media::MediaDescription;
use rtc_sdp::SessionDescription as Sdp;

use super::{
    Codec, Description, Direction, Extmap, Media, MediaKind, SdpError, SdpErrorKind, Setup,
};
use crate::certificate::Fingerprint;

/// The largest description read (Chromium's own are a few kilobytes; a long candidate list
/// stays well under this).
pub(crate) const MAX_SDP: usize = 256 * 1024;

/// The lines of the text, numbered from 1, blank ones skipped.
struct Lines<'a> {
    lines: Vec<(usize, &'a str)>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Result<Lines<'a>, SdpError> {
        if text.len() > MAX_SDP {
            return Err(SdpError {
                line: None,
                text: String::new(),
                kind: SdpErrorKind::TooLarge(MAX_SDP),
            });
        }
        let mut lines = Vec::new();
        for (i, l) in text.split('\n').enumerate() {
            let l = l.strip_suffix('\r').unwrap_or(l);
            if l.is_empty() {
                continue;
            }
            let b = l.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' || l.contains('\r') {
                return Err(SdpError {
                    line: Some(i + 1),
                    text: l.into(),
                    kind: SdpErrorKind::NotALine,
                });
            }
            lines.push((i + 1, l));
        }
        Ok(Lines { lines })
    }

    fn error(&self, index: usize, kind: SdpErrorKind) -> SdpError {
        match self.lines.get(index) {
            Some(&(n, l)) => SdpError {
                line: Some(n),
                text: l.into(),
                kind,
            },
            None => SdpError {
                line: None,
                text: String::new(),
                kind,
            },
        }
    }

    /// The index range of each media section (its m= line first).
    fn sections(&self) -> Vec<std::ops::Range<usize>> {
        let starts: Vec<usize> = (0..self.lines.len())
            .filter(|&i| self.lines[i].1.starts_with("m="))
            .collect();
        let mut out = Vec::new();
        for (k, &s) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(self.lines.len());
            out.push(s..end);
        }
        out
    }

    /// The first line in `range` that is `a=<key>` or `a=<key>:…`, else the range's first.
    fn find(&self, range: std::ops::Range<usize>, key: &str) -> usize {
        let first = range.start;
        range
            .into_iter()
            .find(|&i| {
                let l = self.lines[i].1;
                l.strip_prefix("a=")
                    .and_then(|a| a.strip_prefix(key))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
            })
            .unwrap_or(first)
    }
}

/// Parses a description.
pub(crate) fn parse(text: &str) -> Result<Description, SdpError> {
    let lines = Lines::new(text)?;
    let mut cursor = Cursor::new(text.as_bytes());
    let sdp = match Sdp::unmarshal(&mut cursor) {
        Ok(s) => s,
        Err(e) => {
            // rtc-sdp stops on (or just after) the line it refused: name that line.
            let pos = (cursor.position() as usize)
                .saturating_sub(1)
                .min(text.len());
            let line_no = text.as_bytes()[..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            let reason = match &e {
                rtc_shared::error::Error::SdpInvalidSyntax(key)
                    if key.len() == 2 && key.ends_with('=') =>
                {
                    format!(
                        "`{key}` line out of order (a description runs v=, o=, s=, \
                         [i= u= e= p= c= b=], t=, [r= z= k=], a=, then m= sections)"
                    )
                }
                e => e.to_string(),
            };
            let at_end =
                matches!(&e, rtc_shared::error::Error::SdpInvalidSyntax(s) if s.is_empty());
            if at_end {
                return Err(SdpError {
                    line: None,
                    text: String::new(),
                    kind: SdpErrorKind::Truncated,
                });
            }
            let index = lines
                .lines
                .iter()
                .position(|&(n, _)| n >= line_no)
                .unwrap_or(lines.lines.len().saturating_sub(1));
            return Err(lines.error(index, SdpErrorKind::Syntax(reason)));
        }
    };
    let sections = lines.sections();
    let session = Session::of(&sdp);
    let mut media = Vec::new();
    for (i, m) in sdp.media_descriptions.iter().enumerate() {
        let range = sections.get(i).cloned().unwrap_or(0..lines.lines.len());
        media.push(parse_media(&lines, range, m, &session)?);
    }
    let bundle = sdp
        .attributes
        .iter()
        .filter(|a| a.key == "group")
        .filter_map(|a| a.value.as_deref())
        .find_map(|v| {
            let mut it = v.split_whitespace();
            (it.next() == Some("BUNDLE")).then(|| it.map(String::from).collect::<Vec<_>>())
        })
        .unwrap_or_default();
    for mid in &bundle {
        if !media.iter().any(|m| &m.mid == mid) {
            let i = lines.find(
                0..sections.first().map_or(lines.lines.len(), |r| r.start),
                "group",
            );
            return Err(lines.error(
                i,
                SdpErrorKind::BadValue {
                    attribute: "group",
                    reason: format!("BUNDLE names mid {mid:?}, which no m= section has"),
                },
            ));
        }
    }
    Ok(Description {
        session_id: sdp.origin.session_id,
        session_version: sdp.origin.session_version,
        bundle,
        ice_lite: sdp.attributes.iter().any(|a| a.key == "ice-lite"),
        media,
    })
}

/// Session-level attributes that media sections inherit.
struct Session<'a> {
    ufrag: Option<&'a str>,
    pwd: Option<&'a str>,
    ice_options: Option<&'a str>,
    fingerprints: Vec<&'a str>,
    setup: Option<&'a str>,
    direction: Option<Direction>,
}

impl<'a> Session<'a> {
    fn of(sdp: &'a Sdp) -> Session<'a> {
        let get = |k: &str| {
            sdp.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.as_deref())
        };
        Session {
            ufrag: get("ice-ufrag"),
            pwd: get("ice-pwd"),
            ice_options: get("ice-options"),
            fingerprints: sdp
                .attributes
                .iter()
                .filter(|a| a.key == "fingerprint")
                .filter_map(|a| a.value.as_deref())
                .collect(),
            setup: get("setup"),
            direction: sdp.attributes.iter().find_map(|a| Direction::parse(&a.key)),
        }
    }
}

fn parse_media(
    lines: &Lines<'_>,
    range: std::ops::Range<usize>,
    m: &MediaDescription,
    session: &Session<'_>,
) -> Result<Media, SdpError> {
    let at = |key: &str| lines.find(range.clone(), key);
    let bad = |key: &'static str, reason: String| {
        lines.error(
            at(key),
            SdpErrorKind::BadValue {
                attribute: key,
                reason,
            },
        )
    };
    let protos = m.media_name.protos.join("/");
    let kind = match m.media_name.media.as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        "application" => MediaKind::Application,
        other => {
            return Err(lines.error(
                range.start,
                SdpErrorKind::Unsupported(format!("m={other} is not audio, video or application")),
            ))
        }
    };
    let port = u16::try_from(m.media_name.port.value).map_err(|_| {
        lines.error(
            range.start,
            SdpErrorKind::Unsupported("the port is not 0 to 65535".into()),
        )
    })?;
    let rejected = port == 0 && !m.has_attribute("bundle-only");
    let secure = match kind {
        MediaKind::Application => {
            protos.ends_with("DTLS/SCTP")
                && m.media_name
                    .formats
                    .iter()
                    .any(|f| f == "webrtc-datachannel")
        }
        _ => protos.contains("SAVP"),
    };
    if !secure && !rejected {
        return Err(lines.error(
            range.start,
            SdpErrorKind::Unsupported(format!(
                "{} over {protos} (WebRTC needs UDP/TLS/RTP/SAVPF or UDP/DTLS/SCTP webrtc-datachannel)",
                kind.as_str()
            )),
        ));
    }
    let value = |k: &str| m.attribute(k).flatten();
    let mid = value("mid").map(str::to_owned);
    let Some(mid) = mid else {
        if rejected {
            // A rejected section may have lost everything; it keeps its place.
            let mut media = Media::new(kind, String::new());
            media.port = 0;
            return Ok(media);
        }
        return Err(lines.error(range.start, SdpErrorKind::Missing("mid")));
    };
    let mut media = Media::new(kind, mid);
    media.port = port;
    media.bundle_only = m.has_attribute("bundle-only");
    media.ufrag = value("ice-ufrag")
        .or(session.ufrag)
        .unwrap_or_default()
        .into();
    media.pwd = value("ice-pwd").or(session.pwd).unwrap_or_default().into();
    media.ice_options = value("ice-options")
        .or(session.ice_options)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let fingerprints: Vec<&str> = {
        let here: Vec<&str> = m
            .attributes
            .iter()
            .filter(|a| a.key == "fingerprint")
            .filter_map(|a| a.value.as_deref())
            .collect();
        if here.is_empty() {
            session.fingerprints.clone()
        } else {
            here
        }
    };
    for f in fingerprints {
        let f: Fingerprint = f
            .parse()
            .map_err(|e: crate::certificate::FingerprintError| bad("fingerprint", e.to_string()))?;
        media.fingerprints.push(f);
    }
    media.setup = match value("setup").or(session.setup) {
        None => None,
        Some("active") => Some(Setup::Active),
        Some("passive") => Some(Setup::Passive),
        Some("actpass") => Some(Setup::Actpass),
        Some(other) => {
            return Err(bad(
                "setup",
                format!("{other:?} is not active, passive or actpass"),
            ))
        }
    };
    media.direction = m
        .attributes
        .iter()
        .find_map(|a| Direction::parse(&a.key))
        .or(session.direction)
        .unwrap_or_default();
    media.rtcp_mux = m.has_attribute("rtcp-mux");
    // Codecs in the order of the m= line (the offerer's preference, RFC 3264 §5.1).
    for f in &m.media_name.formats {
        if kind == MediaKind::Application {
            break;
        }
        let Ok(pt) = f.parse::<u8>() else {
            return Err(lines.error(
                range.start,
                SdpErrorKind::Unsupported(format!("payload type {f:?} is not a number")),
            ));
        };
        if let Some(c) = codec(m, pt).map_err(|r| bad("rtpmap", r))? {
            media.codecs.push(c);
        }
    }
    for a in m.attributes.iter().filter(|a| a.key == "extmap") {
        let v = a.value.as_deref().unwrap_or_default();
        let (id, uri) = v.split_once(' ').unwrap_or((v, ""));
        let id = id.split('/').next().unwrap_or_default();
        let id: u16 = id
            .parse()
            .ok()
            .filter(|&i| (1..=255).contains(&i))
            .ok_or_else(|| bad("extmap", format!("{v:?}: the id is not 1 to 255")))?;
        media.extmaps.push(Extmap {
            id,
            uri: uri.trim().into(),
        });
    }
    media.msid = value("msid").map(str::to_owned);
    for a in m.attributes.iter().filter(|a| a.key == "ssrc") {
        let v = a.value.as_deref().unwrap_or_default();
        let (ssrc, rest) = v.split_once(' ').unwrap_or((v, ""));
        let ssrc: u32 = ssrc
            .parse()
            .map_err(|_| bad("ssrc", format!("{ssrc:?} is not a 32-bit number")))?;
        if !media.ssrcs.contains(&ssrc) {
            media.ssrcs.push(ssrc);
        }
        if let Some(c) = rest.strip_prefix("cname:") {
            media.cname.get_or_insert_with(|| c.trim().into());
        }
    }
    if let Some(p) = value("sctp-port") {
        media.sctp_port = Some(
            p.parse()
                .map_err(|_| bad("sctp-port", format!("{p:?} is not a port")))?,
        );
    }
    if let Some(s) = value("max-message-size") {
        media.max_message_size = Some(
            s.parse()
                .map_err(|_| bad("max-message-size", format!("{s:?} is not a number")))?,
        );
    }
    for a in m.attributes.iter().filter(|a| a.key == "candidate") {
        media.candidates.push(format!(
            "candidate:{}",
            a.value.as_deref().unwrap_or_default()
        ));
    }
    media.end_of_candidates = m.has_attribute("end-of-candidates");
    Ok(media)
}

/// The codec of payload type `pt`: its rtpmap (or the static assignment of RFC 3551 §6 for
/// the few browsers still send without one), fmtp and rtcp-fb lines.
fn codec(m: &MediaDescription, pt: u8) -> Result<Option<Codec>, String> {
    let of = |key: &'static str| values_for(m, key, pt);
    let mut codec = match of("rtpmap").next() {
        Some(map) => {
            let mut parts = map.trim().split('/');
            let name = parts.next().unwrap_or_default();
            let rate = parts
                .next()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| format!("{pt} {map}: no clock rate"))?;
            let channels = match parts.next() {
                Some(c) => c
                    .parse()
                    .map_err(|_| format!("{pt} {map}: {c:?} is not a channel count"))?,
                None => 0,
            };
            Codec::new(pt, name, rate, channels)
        }
        None => match pt {
            0 => Codec::new(0, "PCMU", 8000, 1),
            8 => Codec::new(8, "PCMA", 8000, 1),
            9 => Codec::new(9, "G722", 8000, 1),
            _ => return Ok(None),
        },
    };
    codec.fmtp = of("fmtp").next().unwrap_or_default().trim().into();
    codec.rtcp_fb = of("rtcp-fb").map(|v| v.trim().to_owned()).collect();
    // Wildcard feedback (RFC 4585 §4.2) applies to every payload type.
    codec.rtcp_fb.extend(
        m.attributes
            .iter()
            .filter(|a| a.key == "rtcp-fb")
            .filter_map(|a| a.value.as_deref()?.strip_prefix("* "))
            .map(|v| v.trim().to_owned()),
    );
    Ok(Some(codec))
}

/// The values of `a=<key>:<pt> <value>` lines, without the payload type.
fn values_for<'m>(
    m: &'m MediaDescription,
    key: &'static str,
    pt: u8,
) -> impl Iterator<Item = &'m str> + 'm {
    let prefix = format!("{pt} ");
    m.attributes
        .iter()
        .filter(move |a| a.key == key)
        .filter_map(|a| a.value.as_deref())
        .filter_map(move |v| v.strip_prefix(prefix.as_str()))
}
