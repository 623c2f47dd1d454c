//! WebRTC sessions across the NAT matrix (issue 12): two `PeerConnection`s negotiate over a
//! signalling channel with 50 ms delay, connect through natsim with 10 ms links, open a
//! DataChannel and move 1 MiB through it, in one cell of each kind of path: host, server-
//! and peer-reflexive, relayed over UDP and over TCP. The channel must open (`onopen` on
//! the side that made it) within the cell's ICE time plus 250 ms, and every byte arrive in
//! order.
//!
//! What the 250 ms hold, in round trips from the answerer's ICE connection (it is the DTLS
//! client, `a=setup:active`): 2 of DTLS (no cookie exchange), then 1.5 of SCTP until the
//! offerer, which made the channel, is established and sends the DCEP OPEN — which opens the
//! channel there (RFC 8832 §6). The answerer's `ondatachannel` comes half a round trip later.
//! Relayed paths have an 80 ms round trip here, so they use most of the budget.

use std::time::Duration;

use ice_agent::CandidateKind::{self, *};
use scenarios::matrix::{Behind, Conditions};
use scenarios::session::{SessionCell, SessionResult};

const MIB: usize = 1024 * 1024;

fn run(kinds: [Behind; 2], conditions: Conditions, seed: u64) -> SessionResult {
    let mut cell = SessionCell::new(kinds, conditions, seed, MIB);
    // Virtual time. On the harsh links every hop loses 5 %, so a path of four hops loses
    // about 19 % each way, and SCTP's congestion control (RFC 9260 §7) crawls.
    let limit = match conditions {
        Conditions::Clean => Duration::from_secs(60),
        Conditions::Harsh => Duration::from_secs(900),
    };
    let r = cell.run(limit);
    println!("{} × {}: {r:?}", kinds[0], kinds[1]);
    r
}

fn check(kinds: [Behind; 2], want: fn((CandidateKind, CandidateKind)) -> bool, seed: u64) {
    let r = run(kinds, Conditions::Clean, seed);
    let pair = r
        .pair
        .unwrap_or_else(|| panic!("{kinds:?}: no pair: {r:?}"));
    assert!(want(pair), "{kinds:?}: selected {pair:?}");
    assert!(
        r.intact,
        "{kinds:?}: the transfer did not arrive whole: {r:?}"
    );
    let (ice, open) = (r.ice_time.unwrap(), r.open_time.unwrap());
    assert!(
        open <= ice + Duration::from_millis(250),
        "{kinds:?}: the channel opened {open:?} after the answer, ICE took {ice:?}"
    );
}

#[test]
fn host_pair() {
    check([Behind::NoNat, Behind::NoNat], |p| p == (Host, Host), 1);
}

#[test]
fn server_reflexive_pair() {
    check(
        [Behind::FullCone, Behind::FullCone],
        |p| p.0 == ServerReflexive || p.1 == ServerReflexive,
        2,
    );
}

#[test]
fn peer_reflexive_pair() {
    // Behind a symmetric NAT, side 0's mapping toward the peer is new: the peer learns it
    // from the checks (peer-reflexive).
    check(
        [Behind::NoNat, Behind::Symmetric],
        |p| p.0 == PeerReflexive || p.1 == PeerReflexive,
        3,
    );
}

#[test]
fn relayed_over_udp() {
    check(
        [Behind::Symmetric, Behind::PortRestricted],
        |p| p.0 == Relayed || p.1 == Relayed,
        4,
    );
}

#[test]
fn relayed_over_tcp() {
    check(
        [Behind::UdpBlocked, Behind::FullCone],
        |p| p.0 == Relayed || p.1 == Relayed,
        5,
    );
}

#[test]
fn harsh_links_still_open_and_transfer() {
    for (i, kinds) in [
        [Behind::NoNat, Behind::FullCone],
        [Behind::PortRestricted, Behind::Restricted],
        [Behind::Symmetric, Behind::PortRestricted],
    ]
    .into_iter()
    .enumerate()
    {
        let r = run(kinds, Conditions::Harsh, 10 + i as u64);
        assert!(
            r.open_time.is_some(),
            "{kinds:?}: no channel on harsh links: {r:?}"
        );
        assert!(
            r.intact,
            "{kinds:?}: the transfer did not arrive whole: {r:?}"
        );
    }
}
