//! [`Description`] to SDP text, in the shape browsers write (RFC 9429 §5.2, §5.3).

use rtc_sdp::description::common::Attribute;
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::SessionDescription as Sdp;

use super::{Description, Media, MediaKind};

/// Writes a description.
pub(crate) fn write(d: &Description) -> String {
    let mut sdp = Sdp::new_jsep_session_description(false);
    sdp.origin.session_id = d.session_id;
    sdp.origin.session_version = d.session_version;
    let attr = |key: &str, value: Option<String>| Attribute {
        key: key.into(),
        value,
    };
    if !d.bundle.is_empty() {
        sdp.attributes.push(attr(
            "group",
            Some(format!("BUNDLE {}", d.bundle.join(" "))),
        ));
    }
    sdp.attributes.push(attr("extmap-allow-mixed", None));
    sdp.attributes
        .push(attr("msid-semantic", Some(" WMS".into())));
    for m in &d.media {
        sdp.media_descriptions.push(media(m));
    }
    sdp.marshal()
}

fn media(m: &Media) -> MediaDescription {
    let mut md = MediaDescription::new_jsep_media_description(m.kind.as_str().into(), vec![]);
    md.media_name = MediaName {
        media: m.kind.as_str().into(),
        port: RangedPort {
            value: m.port as isize,
            range: None,
        },
        protos: match m.kind {
            MediaKind::Application => vec!["UDP".into(), "DTLS".into(), "SCTP".into()],
            _ => vec!["UDP".into(), "TLS".into(), "RTP".into(), "SAVPF".into()],
        },
        formats: match m.kind {
            MediaKind::Application => vec!["webrtc-datachannel".into()],
            _ if m.codecs.is_empty() => vec!["0".into()],
            _ => m
                .codecs
                .iter()
                .map(|c| c.payload_type.to_string())
                .collect(),
        },
    };
    let mut a = |key: &str, value: Option<String>| {
        md.attributes.push(Attribute {
            key: key.into(),
            value,
        })
    };
    if !m.is_active() {
        // A rejected section keeps only its mid (RFC 9429 §5.3.1).
        if !m.mid.is_empty() {
            a("mid", Some(m.mid.clone()));
        }
        return md;
    }
    for c in &m.candidates {
        a(
            "candidate",
            Some(c.strip_prefix("candidate:").unwrap_or(c).into()),
        );
    }
    if m.end_of_candidates {
        a("end-of-candidates", None);
    }
    a("ice-ufrag", Some(m.ufrag.clone()));
    a("ice-pwd", Some(m.pwd.clone()));
    if !m.ice_options.is_empty() {
        a("ice-options", Some(m.ice_options.join(" ")));
    }
    for f in &m.fingerprints {
        a("fingerprint", Some(f.to_string()));
    }
    if let Some(s) = m.setup {
        a("setup", Some(s.as_str().into()));
    }
    a("mid", Some(m.mid.clone()));
    if m.kind == MediaKind::Application {
        a("sctp-port", Some(m.sctp_port.unwrap_or(5000).to_string()));
        if let Some(n) = m.max_message_size {
            a("max-message-size", Some(n.to_string()));
        }
        return md;
    }
    for e in &m.extmaps {
        a("extmap", Some(format!("{} {}", e.id, e.uri)));
    }
    a(m.direction.as_str(), None);
    if let Some(msid) = &m.msid {
        a("msid", Some(msid.clone()));
    }
    a("rtcp-mux", None);
    a("rtcp-rsize", None);
    for c in &m.codecs {
        let rtpmap = if c.channels > 0 {
            format!(
                "{} {}/{}/{}",
                c.payload_type, c.name, c.clock_rate, c.channels
            )
        } else {
            format!("{} {}/{}", c.payload_type, c.name, c.clock_rate)
        };
        a("rtpmap", Some(rtpmap));
        for fb in &c.rtcp_fb {
            a("rtcp-fb", Some(format!("{} {fb}", c.payload_type)));
        }
        if !c.fmtp.is_empty() {
            a("fmtp", Some(format!("{} {}", c.payload_type, c.fmtp)));
        }
    }
    if let Some(cname) = &m.cname {
        for ssrc in &m.ssrcs {
            a("ssrc", Some(format!("{ssrc} cname:{cname}")));
            if let Some(msid) = &m.msid {
                a("ssrc", Some(format!("{ssrc} msid:{msid}")));
            }
        }
    }
    md
}
