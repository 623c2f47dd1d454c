//! The DTLS handshake completes, and the DataChannel opens, when handshake flights are lost:
//! the exact losses that left rtc-dtls 0.21.1 without a retransmission timer on both sides
//! (patches/README.md), and random loss.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Pair;
use peer_connection::{DataChannelEvent, DataChannelInit, Event};

/// The DTLS handshake flight (RFC 6347 §4.2.4) a datagram belongs to, from its records and
/// its sender: side 1 (the answerer, `a=setup:active`) is the client. Encrypted records
/// (the Finished messages) travel with their ChangeCipherSpec.
fn flight(side: usize, data: &[u8]) -> Option<u8> {
    if !(20..=63).contains(data.first()?) {
        return None;
    }
    let client = side == 1;
    let mut rest = data;
    while rest.len() >= 13 {
        let (kind, epoch) = (rest[0], u16::from_be_bytes([rest[3], rest[4]]));
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let body = rest.get(13..13 + len)?;
        match (kind, epoch, body.first(), client) {
            // ClientHello: flight 1, or 3 once it carries the cookie (counted as one here).
            (22, 0, Some(1), true) => return Some(1),
            (22, 0, Some(3), false) => return Some(2),
            (22, 0, Some(2 | 11 | 12 | 13 | 14), false) => return Some(4),
            (22, 0, Some(11 | 15 | 16), true) => return Some(5),
            (20, _, _, true) => return Some(5),
            (20, _, _, false) => return Some(6),
            _ => {}
        }
        rest = &rest[13 + len..];
    }
    None
}

/// Loses the first `copies` transmissions of each listed flight (a transmission being the
/// datagrams a side sent at one instant).
fn lose(rules: &[(u8, usize)]) -> common::Loss {
    let rules: HashMap<u8, usize> = rules.iter().copied().collect();
    let mut seen: HashMap<u8, Vec<Instant>> = HashMap::new();
    Box::new(move |now, side, _, data| {
        let Some(f) = flight(side, data) else {
            return false;
        };
        let Some(&copies) = rules.get(&f) else {
            return false;
        };
        let times = seen.entry(f).or_default();
        if !times.contains(&now) {
            times.push(now);
        }
        times.iter().position(|&t| t == now).unwrap() < copies
    })
}

fn open_with(seed: u64, loss: common::Loss, limit: Duration) -> (bool, Pair) {
    let mut pair = Pair::new(seed);
    pair.loss = loss;
    let now = pair.now;
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    let ok = pair.run_until(limit, |p| {
        p.incoming(1).is_some()
            && p.first_event(0, |e| {
                matches!(e, Event::DataChannel(DataChannelEvent::Open { .. }))
            })
            .is_some()
    });
    (ok, pair)
}

#[test]
fn flights_lost_twice_still_complete() {
    let cases: &[&[(u8, usize)]] = &[
        &[(4, 1), (5, 1)],
        &[(5, 1), (6, 1)],
        &[(5, 2)],
        &[(6, 2)],
        &[(4, 2)],
        &[(1, 1), (4, 1), (6, 1)],
    ];
    for rules in cases {
        let (ok, pair) = open_with(7, lose(rules), Duration::from_secs(30));
        assert!(
            ok,
            "losing {rules:?}: the channel never opened: {:?}",
            pair.peers
        );
        assert!(pair.connected());
    }
}

/// Loses one DTLS datagram (handshake and SCTP records alike) in `n` at random, seeded
/// (splitmix64 of the seed and a counter). STUN is spared: ICE under loss is the NAT
/// matrix's harsh-link test, and an ICE failure would hide what this one is about.
fn random_loss(seed: u64, n: u64) -> common::Loss {
    let mut counter = 0u64;
    Box::new(move |_, _, _, data| {
        if data.first().is_some_and(|&b| b <= 3) {
            return false;
        }
        counter += 1;
        let mut z = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(counter.wrapping_mul(0xBF58_476D_1CE4_E5B9));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z.is_multiple_of(n)
    })
}

#[test]
fn handshakes_complete_under_random_loss() {
    // 200 seeded runs, one DTLS datagram in five lost at random. SCTP's INIT backs off to
    // 32 s and more after a few losses in a row, hence the long (virtual) limit.
    let mut failed = Vec::new();
    for seed in 0..200u64 {
        let loss = random_loss(seed, 5);
        let (ok, _) = open_with(1000 + seed, loss, Duration::from_secs(300));
        if !ok {
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 200 runs never opened: seeds {failed:?}",
        failed.len()
    );
}

/// The DTLS client (side 1, controlled) selects a pair when the nominating check arrives, and
/// sends its ClientHello at once; when the answer to that check is lost, the server (side 0)
/// has no selected pair yet when the ClientHello comes. Its first flight waits for the pair
/// instead of being dropped (which would cost the client's 1 s retransmission timer).
#[test]
fn a_server_flight_waits_for_the_selected_pair() {
    let mut pair = Pair::new(21);
    let mut responses = 0;
    pair.loss = Box::new(move |_, side, _, data| {
        // A STUN Binding success response (0x0101) from side 1: lose the second, the answer
        // to side 0's nominating check.
        if side == 1 && data.len() >= 20 && data[0] == 0x01 && data[1] == 0x01 {
            responses += 1;
            return responses == 2;
        }
        false
    });
    let now = pair.now;
    pair.peers[0].create_data_channel(now, "c", DataChannelInit::default());
    pair.negotiate();
    assert!(pair.run_until(Duration::from_secs(10), |p| p.connected()));
    let ice = |side: usize| {
        pair.first_event(side, |e| {
            matches!(
                e,
                Event::IceConnectionState(
                    peer_connection::IceConnectionState::Connected
                        | peer_connection::IceConnectionState::Completed
                )
            )
        })
        .unwrap()
    };
    let connected = pair
        .first_event(0, |e| {
            matches!(
                e,
                Event::ConnectionState(peer_connection::PeerConnectionState::Connected)
            )
        })
        .unwrap();
    assert!(ice(1) < ice(0), "the loss delays side 0's selection");
    // Virtual time: DTLS needs one round trip (20 ms) once side 0 can send.
    assert!(
        connected - ice(0) < Duration::from_millis(100),
        "DTLS connected {:?} after side 0's ICE",
        connected - ice(0)
    );
}
