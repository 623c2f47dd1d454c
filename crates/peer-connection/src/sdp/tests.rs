use super::*;

/// A data-only offer in Chromium's shape (our own credentials and fingerprint).
pub(crate) const CHROME_DATA_OFFER: &str = "v=0\r\n\
o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 127.0.0.1 46243 typ host generation 0 network-id 1\r\n\
a=candidate:3d0e1d4e-5b63-4b0a-9d7c-7a4d3f1f2a11.local 1 udp 2122260223 3d0e1d4e-5b63-4b0a-9d7c-7a4d3f1f2a11.local 46244 typ host generation 0\r\n\
a=ice-ufrag:Zx0q\r\n\
a=ice-pwd:kqS4o0Q7wT1m6yUfF9N3sPbA\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 0F:8D:7B:2A:54:C6:1E:9A:33:B0:71:DE:48:05:6C:AF:92:13:E4:5B:7C:D9:60:2E:A1:3F:88:04:B7:5D:C2:19\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

#[test]
fn parses_a_chrome_data_offer() {
    let d = parse(CHROME_DATA_OFFER).unwrap();
    assert_eq!(d.bundle, vec!["0"]);
    assert_eq!(d.media.len(), 1);
    let m = &d.media[0];
    assert_eq!(m.kind, MediaKind::Application);
    assert_eq!(m.mid, "0");
    assert_eq!(m.ufrag, "Zx0q");
    assert_eq!(m.pwd, "kqS4o0Q7wT1m6yUfF9N3sPbA");
    assert_eq!(m.ice_options, vec!["trickle"]);
    assert_eq!(m.setup, Some(Setup::Actpass));
    assert_eq!(m.fingerprints.len(), 1);
    assert_eq!(m.fingerprints[0].digest.len(), 32);
    assert_eq!(m.sctp_port, Some(5000));
    assert_eq!(m.max_message_size, Some(262144));
    assert_eq!(m.candidates.len(), 2);
    assert!(m.candidates[0].starts_with("candidate:1467250027 1 udp"));
    assert!(d.transport().is_some());
}

#[test]
fn parses_lf_only_and_session_level_attributes() {
    // Firefox's shape: LF only, fingerprint and ICE credentials at session level.
    let sdp = "v=0\n\
o=mozilla...THIS_IS_SDPARTA-99.0 7051740211563526123 0 IN IP4 0.0.0.0\n\
s=-\n\
t=0 0\n\
a=fingerprint:sha-256 0F:8D:7B:2A:54:C6:1E:9A:33:B0:71:DE:48:05:6C:AF:92:13:E4:5B:7C:D9:60:2E:A1:3F:88:04:B7:5D:C2:19\n\
a=group:BUNDLE 0 1\n\
a=ice-options:trickle\n\
a=msid-semantic:WMS *\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\n\
c=IN IP4 0.0.0.0\n\
a=sendrecv\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\n\
a=extmap:3/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\n\
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\n\
a=fmtp:101 0-15\n\
a=ice-pwd:b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6\n\
a=ice-ufrag:a1b2c3d4\n\
a=mid:0\n\
a=msid:{5f1f2c9e-1111-4c3b-9a55-0b6d0f7a1a11} {0a9b8c7d-2222-4e5f-8a9b-1c2d3e4f5a6b}\n\
a=rtcp-mux\n\
a=rtpmap:109 opus/48000/2\n\
a=rtpmap:9 G722/8000/1\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:101 telephone-event/8000/1\n\
a=setup:actpass\n\
a=ssrc:3482917634 cname:{c0ffee00-3333-4a4a-9b9b-123456789abc}\n\
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98\n\
c=IN IP4 0.0.0.0\n\
a=recvonly\n\
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\n\
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\n\
a=fmtp:120 max-fs=12288;max-fr=60\n\
a=fmtp:124 apt=120\n\
a=fmtp:121 max-fs=12288;max-fr=60\n\
a=fmtp:125 apt=121\n\
a=fmtp:127 apt=126\n\
a=fmtp:98 apt=97\n\
a=ice-pwd:b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6\n\
a=ice-ufrag:a1b2c3d4\n\
a=mid:1\n\
a=rtcp-fb:120 nack\n\
a=rtcp-fb:120 nack pli\n\
a=rtcp-fb:120 ccm fir\n\
a=rtcp-fb:* transport-cc\n\
a=rtcp-mux\n\
a=rtcp-rsize\n\
a=rtpmap:120 VP8/90000\n\
a=rtpmap:124 rtx/90000\n\
a=rtpmap:121 VP9/90000\n\
a=rtpmap:125 rtx/90000\n\
a=rtpmap:126 H264/90000\n\
a=rtpmap:127 rtx/90000\n\
a=rtpmap:97 H264/90000\n\
a=rtpmap:98 rtx/90000\n\
a=setup:actpass\n";
    let d = parse(sdp).unwrap();
    assert_eq!(d.bundle, vec!["0", "1"]);
    let audio = &d.media[0];
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!(
        audio.fingerprints.len(),
        1,
        "inherited from the session level"
    );
    assert_eq!(audio.ice_options, vec!["trickle"]);
    assert_eq!(audio.codecs[0].name, "opus");
    assert_eq!(audio.codecs[0].channels, 2);
    assert_eq!(
        audio.codecs[0].fmtp,
        "maxplaybackrate=48000;stereo=1;useinbandfec=1"
    );
    assert_eq!(audio.codecs.len(), 5);
    assert_eq!(audio.extmaps[1].id, 3);
    assert_eq!(audio.ssrcs, vec![3482917634]);
    assert!(audio.rtcp_mux);
    let video = &d.media[1];
    assert_eq!(video.direction, Direction::RecvOnly);
    let vp8 = &video.codecs[0];
    assert_eq!((vp8.payload_type, vp8.name.as_str()), (120, "VP8"));
    assert_eq!(
        vp8.rtcp_fb,
        vec!["nack", "nack pli", "ccm fir", "transport-cc"]
    );
    assert!(video.codecs[4].same_format(&Codec::h264()));
    assert!(
        !video.codecs[6].same_format(&Codec::h264()),
        "packetization-mode 0"
    );
}

#[test]
fn round_trips_through_write() {
    let d = parse(CHROME_DATA_OFFER).unwrap();
    let text = write(&d);
    assert!(text.ends_with("\r\n"));
    let again = parse(&text).unwrap();
    assert_eq!(again, d);
}

/// Malformed descriptions: each refused with the line that is wrong.
#[test]
fn malformed_descriptions_name_their_line() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        // (what, where replaced: from → to, expected line, reason fragment)
        (
            "a=setup:actpass\r\n",
            "a=setup:sideways\r\n",
            Some(16),
            "setup",
        ),
        ("a=mid:0\r\n", "", Some(8), "missing a=mid"),
        (
            "a=fingerprint:sha-256 0F:8D",
            "a=fingerprint:sha-256 0G:8D",
            Some(15),
            "fingerprint",
        ),
        (
            "a=max-message-size:262144",
            "a=max-message-size:lots",
            Some(19),
            "max-message-size",
        ),
        (
            "a=group:BUNDLE 0",
            "a=group:BUNDLE 0 7",
            Some(5),
            "BUNDLE names mid \"7\"",
        ),
        ("UDP/DTLS/SCTP", "RTP/AVP", Some(8), "WebRTC needs"),
        (
            "s=-\r\n",
            "s=-\r\nthis is not sdp\r\n",
            Some(4),
            "not an SDP line",
        ),
        ("m=application 9", "m=application 99999999", Some(8), ""),
        ("t=0 0\r\n", "", Some(4), "out of order"),
        (
            "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
            "o=- x 2 IN IP4 127.0.0.1",
            Some(2),
            "",
        ),
    ];
    for (from, to, line, reason) in cases {
        assert!(CHROME_DATA_OFFER.contains(from), "fixture lacks {from:?}");
        let text = CHROME_DATA_OFFER.replacen(from, to, 1);
        let e = parse(&text).expect_err(to);
        assert_eq!(e.line, *line, "{to:?}: {e}");
        if let Some(n) = e.line {
            let want = text.split('\n').nth(n - 1).unwrap().trim_end_matches('\r');
            assert_eq!(e.text, want, "{to:?}");
        }
        assert!(e.to_string().contains(reason), "{to:?}: {e}");
    }
    let short = parse("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n").unwrap_err();
    assert_eq!((short.line, short.kind), (None, SdpErrorKind::Truncated));
    let huge = "a".repeat(parse::MAX_SDP + 1);
    assert_eq!(
        parse(&huge).unwrap_err().kind,
        SdpErrorKind::TooLarge(parse::MAX_SDP)
    );
}

#[test]
fn json_forms_are_the_browsers() {
    let d = SessionDescription::offer("v=0\r\n");
    assert_eq!(d.to_json(), r#"{"type":"offer","sdp":"v=0\r\n"}"#);
    assert_eq!(SessionDescription::from_json(&d.to_json()).unwrap(), d);
    let c = IceCandidate::from_json(
        r#"{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#,
    )
    .unwrap();
    assert_eq!(c.sdp_mid.as_deref(), Some("0"));
    assert_eq!(c.sdp_mline_index, Some(0));
    assert!(!c.is_end_of_candidates());
    let end = IceCandidate::from_json(r#"{"candidate":"","sdpMid":"0"}"#).unwrap();
    assert!(end.is_end_of_candidates());
}

#[test]
fn answer_direction() {
    use Direction::*;
    assert_eq!(SendRecv.answer(true, true), SendRecv);
    assert_eq!(SendOnly.answer(true, true), RecvOnly);
    assert_eq!(RecvOnly.answer(true, true), SendOnly);
    assert_eq!(SendRecv.answer(false, true), RecvOnly);
    assert_eq!(Inactive.answer(true, true), Inactive);
}

/// Chromium's own descriptions, captured from Chromium 148 by tests/browser/selftest.mjs
/// (`--write-fixtures`): each parses, keeps its media sections and their codecs, and our
/// writing of it parses to the same model.
#[test]
fn chromium_fixtures_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sdp") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let d = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!d.media.is_empty(), "{}", path.display());
        assert!(d.transport().is_some());
        for m in d.media.iter().filter(|m| m.is_active()) {
            assert!(
                !m.ufrag.is_empty() && !m.fingerprints.is_empty(),
                "{}",
                path.display()
            );
            if m.kind != MediaKind::Application {
                assert!(!m.codecs.is_empty(), "{}: {}", path.display(), m.mid);
            }
        }
        assert_eq!(parse(&write(&d)).unwrap(), d, "{}", path.display());
        n += 1;
    }
    assert!(n >= 5, "{n} fixtures");
}
