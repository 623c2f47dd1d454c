//! Tracks between two sessions in virtual time: negotiation (codecs, directions, SSRCs),
//! RTP and RTCP through SRTP both ways, replays refused, adding media to a data-only session
//! by renegotiation, and an ICE restart by renegotiation.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::Pair;
use peer_connection::{
    Codec, DataChannelEvent, DataChannelInit, Event, MediaKind, RtpPacket, TrackId,
};

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn received(pair: &Pair, side: usize) -> Vec<RtpPacket> {
    pair.events[side]
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Rtp(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn opened(p: &Pair) -> bool {
    p.incoming(1).is_some()
        && p.first_event(0, |e| {
            matches!(e, Event::DataChannel(DataChannelEvent::Open { .. }))
        })
        .is_some()
}

/// Sends `n` Opus-sized packets on `track` from `side`, 20 ms apart.
fn send_audio(pair: &mut Pair, side: usize, track: TrackId, n: u16) {
    let pt = pair.peers[side].track(track).unwrap().codecs[0].payload_type;
    for i in 0..n {
        let now = pair.now;
        let p = rtp(pt, i, u32::from(i) * 960, &[0xf8, 0xff, 0xfe]);
        pair.peers[side].write_rtp(now, track, &p).unwrap();
        let until = pair.now + Duration::from_millis(20);
        pair.run_until(Duration::from_millis(20), move |p| p.now >= until);
    }
}

#[test]
fn audio_flows_with_the_negotiated_payload_type_and_ssrc_and_replays_are_refused() {
    let mut pair = Pair::new(11);
    // Keep a copy of every SRTP datagram side 0 sends, to replay one.
    let sent: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let keep = sent.clone();
    pair.loss = Box::new(move |_, side, _, data| {
        if side == 0 && data.first().is_some_and(|b| (128..=191).contains(b)) {
            keep.borrow_mut().push(data.to_vec());
        }
        false
    });
    let now = pair.now;
    let track = pair.peers[0].add_track(now, MediaKind::Audio, vec![]);
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    let offer = pair.negotiate_from(0, false);
    assert!(
        offer.sdp.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111"),
        "{}",
        offer.sdp
    );
    assert!(offer.sdp.contains("a=rtpmap:111 opus/48000/2"));
    assert!(pair.run_until(Duration::from_secs(10), opened));
    let info = pair.peers[0].track(track).unwrap();
    let mid = info.mid.clone().expect("negotiated");
    assert_eq!(info.codecs[0].name, "opus");
    // Side 1 was told about the track, with side 0's SSRC.
    let announced = pair.events[1]
        .iter()
        .find_map(|(_, e)| match e {
            Event::Track(t) => Some(t.clone()),
            _ => None,
        })
        .expect("ontrack on side 1");
    assert_eq!((announced.kind, &announced.mid), (MediaKind::Audio, &mid));
    assert_eq!(announced.ssrcs, vec![info.ssrc]);
    assert_eq!(announced.codecs[0].payload_type, 111);

    send_audio(&mut pair, 0, track, 50);
    let got = received(&pair, 1);
    assert_eq!(got.len(), 50);
    for (i, p) in got.iter().enumerate() {
        assert_eq!((&p.mid, p.payload_type, p.ssrc), (&mid, 111, info.ssrc));
        assert_eq!(p.sequence, i as u16);
        assert_eq!(&p.data[12..], &[0xf8, 0xff, 0xfe]);
    }
    assert_eq!(pair.peers[1].stats().rtp_received, 50);
    // A replayed packet is refused (RFC 3711 §3.3.2).
    let replay = sent.borrow()[10].clone();
    pair.inject(1, &replay);
    assert_eq!(pair.peers[1].stats().rtp_received, 50);
    assert_eq!(pair.peers[1].stats().media_dropped, 1);
    // RTCP goes through too: a PLI from side 1 for side 0's SSRC (RFC 4585 §6.3.1).
    let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
    pli.extend_from_slice(&info.ssrc.to_be_bytes());
    let now = pair.now;
    pair.peers[1].write_rtcp(now, &pli).unwrap();
    assert!(pair.run_until(Duration::from_secs(1), |p| p.events[0]
        .iter()
        .any(|(_, e)| matches!(e, Event::Rtcp { .. }))));
    let rtcp = pair.events[0].iter().find_map(|(_, e)| match e {
        Event::Rtcp { data } => Some(data.clone()),
        _ => None,
    });
    assert_eq!(rtcp.as_deref(), Some(pli.as_slice()));
}

#[test]
fn both_sides_send_video_and_audio_with_codecs_chosen_from_the_offer() {
    let mut pair = Pair::new(12);
    let now = pair.now;
    let audio0 = pair.peers[0].add_track(now, MediaKind::Audio, vec![]);
    let video0 = pair.peers[0].add_track(now, MediaKind::Video, vec![Codec::h264(), Codec::vp8()]);
    // Side 1 only does VP8, and sends audio back.
    let audio1 = pair.peers[1].add_track(now, MediaKind::Audio, vec![]);
    let video1 = pair.peers[1].add_track(now, MediaKind::Video, vec![Codec::vp8()]);
    pair.negotiate();
    assert!(pair.run_until(Duration::from_secs(10), |p| p.connected()
        && p.peers[1].track(video1).unwrap().mid.is_some()));
    let v0 = pair.peers[0].track(video0).unwrap();
    let v1 = pair.peers[1].track(video1).unwrap();
    // Both use what the answer took: VP8 with the offerer's payload type.
    assert_eq!(v0.codecs.len(), 1, "{:?}", v0.codecs);
    assert_eq!(
        (v0.codecs[0].name.as_str(), v0.codecs[0].payload_type),
        ("VP8", 96)
    );
    assert_eq!(v1.codecs, v0.codecs);
    assert_eq!(v0.mid, v1.mid);
    send_audio(&mut pair, 0, audio0, 5);
    send_audio(&mut pair, 1, audio1, 7);
    let now = pair.now;
    pair.peers[0]
        .write_rtp(
            now,
            video0,
            &rtp(96, 1, 90_000, &[0x10, 0, 0x9d, 0x01, 0x2a]),
        )
        .unwrap();
    let until = pair.now + Duration::from_millis(50);
    pair.run_until(Duration::from_millis(50), move |p| p.now >= until);
    let at1 = received(&pair, 1);
    let at0 = received(&pair, 0);
    assert_eq!(at1.iter().filter(|p| p.payload_type == 111).count(), 5);
    assert_eq!(at1.iter().filter(|p| p.payload_type == 96).count(), 1);
    assert_eq!(at0.len(), 7);
    assert!(at1
        .iter()
        .all(|p| p.mid != at1[0].mid || p.payload_type == at1[0].payload_type));
}

#[test]
fn media_is_added_to_a_data_session_by_renegotiation_with_no_new_candidates() {
    let mut pair = Pair::new(13);
    let now = pair.now;
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    let first = pair.negotiate_from(0, false);
    assert!(pair.run_until(Duration::from_secs(10), opened));
    let now = pair.now;
    let track = pair.peers[0].add_track(now, MediaKind::Audio, vec![]);
    pair.run_until(Duration::ZERO, |_| true); // takes in what side 0 said
    assert!(
        pair.events[0]
            .iter()
            .filter(|(_, e)| matches!(e, Event::NegotiationNeeded))
            .count()
            >= 2
    );
    let second = pair.negotiate_from(0, false);
    let ufrag = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    assert_eq!(ufrag(&first.sdp), ufrag(&second.sdp), "no ICE restart");
    assert!(
        second.sdp.contains("m=application"),
        "the data section stays"
    );
    assert!(second.sdp.contains("m=audio"));
    let n_candidates = |p: &Pair, side: usize| {
        p.events[side]
            .iter()
            .filter(|(_, e)| matches!(e, Event::IceCandidate(_)))
            .count()
    };
    let gathered = n_candidates(&pair, 0);
    assert!(pair.run_until(Duration::from_secs(5), |p| p.peers[0]
        .track(track)
        .is_some_and(|t| t.mid.is_some())));
    send_audio(&mut pair, 0, track, 10);
    assert_eq!(received(&pair, 1).len(), 10);
    assert_eq!(n_candidates(&pair, 0), gathered, "no new candidates");
}

#[test]
fn an_ice_restart_by_renegotiation_keeps_the_session() {
    let mut pair = Pair::new(14);
    let now = pair.now;
    let ch = pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    let first = pair.negotiate_from(0, false);
    assert!(pair.run_until(Duration::from_secs(10), opened));
    let restart = pair.negotiate_from(0, true);
    let ufrag = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    assert_ne!(ufrag(&first.sdp), ufrag(&restart.sdp), "new credentials");
    // Both agents run new checks under the new credentials and stay connected.
    let creds = pair.peers[1].agent().unwrap().local_credentials().clone();
    assert!(pair.run_until(Duration::from_secs(10), |p| {
        p.peers[1].agent().unwrap().local_credentials() != &creds && p.connected()
    }));
    let until = pair.now + Duration::from_secs(2);
    pair.run_until(Duration::from_secs(2), move |p| p.now >= until);
    assert!(pair.connected());
    let now = pair.now;
    pair.peers[0]
        .send_text(now, ch, "after the restart")
        .unwrap();
    assert!(pair.run_until(Duration::from_secs(5), |p| p.messages(1).len() == 1));
}
