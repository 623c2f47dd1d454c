//! What a session refuses: a peer whose certificate is not the one its description names,
//! garbage on the DTLS and SRTP paths, a message larger than the negotiated maximum.

mod common;

use std::time::Duration;

use common::Pair;
use peer_connection::{DataChannelEvent, DataChannelInit, Event, PeerConnectionState, SendError};

fn opened(p: &Pair) -> bool {
    p.incoming(1).is_some()
        && p.first_event(0, |e| {
            matches!(e, Event::DataChannel(DataChannelEvent::Open { .. }))
        })
        .is_some()
}

#[test]
fn a_wrong_fingerprint_is_refused() {
    let mut pair = Pair::new(3);
    // The answer reaches side 0 naming another certificate than side 1's.
    let other = peer_connection::Certificate::generate().unwrap();
    pair.munge = Box::new(move |to, d| {
        if to == 0 {
            let lines: Vec<String> = d
                .sdp
                .split("\r\n")
                .map(|l| {
                    if l.starts_with("a=fingerprint:") {
                        format!("a=fingerprint:{}", other.fingerprint())
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            d.sdp = lines.join("\r\n");
        }
    });
    let now = pair.now;
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    let failed = pair.run_until(Duration::from_secs(20), |p| {
        p.peers[0].connection_state() == PeerConnectionState::Failed
    });
    assert!(
        failed,
        "side 0 accepted a certificate its peer's description does not name"
    );
    assert!(!opened(&pair));
    assert!(
        pair.incoming(1).is_none(),
        "no channel may open with an unverified peer"
    );
}

#[test]
fn garbage_is_dropped_and_the_session_goes_on() {
    let mut pair = Pair::new(4);
    let now = pair.now;
    let ch = pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    assert!(pair.run_until(Duration::from_secs(10), opened));
    // Forged DTLS application data, a forged handshake record, SRTP-looking bytes, and
    // bytes outside every demultiplexing range, from the peer's own address.
    let mut forged = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40];
    forged.extend([0xaa; 40]);
    let mut handshake = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 99, 0, 12];
    handshake.extend([1; 12]);
    for junk in [
        forged.as_slice(),
        &handshake,
        &[0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xde, 0xad],
        &[200; 30],
        &[],
        &[20],
    ] {
        pair.inject(0, junk);
        pair.inject(1, junk);
    }
    assert!(pair.connected(), "{:?}", pair.peers);
    // The SRTP-looking datagram was dropped and counted on each side (no tracks, no keys
    // for it).
    for p in &pair.peers {
        assert_eq!(p.stats().media_dropped, 1);
        assert_eq!(p.stats().rtp_received, 0);
    }
    let now = pair.now;
    pair.peers[0].send_text(now, ch, "still here").unwrap();
    assert!(pair.run_until(Duration::from_secs(5), |p| p.messages(1).len() == 1));
    assert_eq!(pair.messages(1), vec![b"still here".as_slice()]);
}

#[test]
fn a_message_over_the_negotiated_maximum_is_refused() {
    let mut pair = Pair::new(5);
    let now = pair.now;
    let ch = pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    assert!(pair.run_until(Duration::from_secs(10), opened));
    assert_eq!(pair.peers[0].max_message_size(), Some(262_144));
    let now = pair.now;
    let big = vec![7u8; 262_145];
    assert_eq!(
        pair.peers[0].send_binary(now, ch, &big),
        Err(SendError::TooLarge {
            size: 262_145,
            max: 262_144
        })
    );
    // The largest allowed goes through whole.
    pair.peers[0].send_binary(now, ch, &big[..262_144]).unwrap();
    assert!(pair.run_until(Duration::from_secs(10), |p| p.messages(1).len() == 1));
    assert_eq!(pair.messages(1)[0].len(), 262_144);
}

#[test]
fn an_mdns_candidate_is_ignored_and_a_malformed_one_refused() {
    let mut pair = Pair::new(6);
    let now = pair.now;
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    assert!(pair.run_until(Duration::from_secs(10), opened));
    let remote = |p: &Pair| {
        let pc = &p.peers[0];
        pc.agent()
            .map(|a| a.remote_candidates(ice_agent::StreamId(0)).len())
    };
    let before = remote(&pair);
    let now = pair.now;
    // RFC 8828: a browser's host candidate behind a name we cannot resolve.
    let mdns = peer_connection::IceCandidate {
        candidate:
            "candidate:1 1 udp 2122260223 3d0e1d4e-5b63-4b0a-9d7c-7a4d3f1f2a11.local 46244 typ host"
                .into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    pair.peers[0].add_ice_candidate(now, Some(&mdns)).unwrap();
    assert_eq!(remote(&pair), before, "nothing added for it");
    let bad = peer_connection::IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 not-an-address 46244 typ host".into(),
        ..mdns
    };
    assert!(matches!(
        pair.peers[0].add_ice_candidate(now, Some(&bad)),
        Err(peer_connection::Error::Candidate(_))
    ));
    assert!(pair.connected());
}
