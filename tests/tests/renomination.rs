//! ICE renomination (draft-thatcher-ice-renomination) in the one clean NAT matrix cell where
//! a relayed pair is nominated before a direct pair's retransmitted check succeeds:
//! restricted cone (A, controlling) × symmetric (B). With both sides signalling
//! `renomination`, A nominates the direct pair once it succeeds and both switch to it; with
//! either side not signalling it, the first nomination is final (plain RFC 8445).

use std::time::Duration;

use ice_agent::CandidateKind;
use scenarios::matrix::{run_cell_with, Behind, CellResult, Conditions};

/// The seed the NAT matrix gives this cell.
const SEED: u64 = 21;

fn run(renomination: [bool; 2]) -> CellResult {
    run_cell_with(
        [Behind::Restricted, Behind::Symmetric],
        Conditions::Clean,
        SEED,
        Duration::from_secs(10),
        |side, c| c.renomination = renomination[side],
    )
}

fn direct(pair: (CandidateKind, CandidateKind)) -> bool {
    pair.0.is_direct() && pair.1.is_direct()
}

#[test]
fn with_both_sides_signalling_it_the_relayed_pair_gives_way_to_the_direct_one() {
    let r = run([true, true]);
    let first = r.first_pair.expect("a first pair, replaced");
    assert!(!direct(first), "the first pair is relayed: {first:?}");
    let last = r.pair.expect("connected");
    assert!(direct(last), "then direct: {last:?}");
    assert!(r.agree, "both sides on the direct pair, data flowing");
    let t = r.time_to_final_pair.expect("a switch");
    assert!(t < Duration::from_secs(1), "switched after {t:?}");
}

#[test]
fn with_a_peer_that_does_not_signal_it_the_first_nomination_is_final() {
    for renomination in [[true, false], [false, true]] {
        let r = run(renomination);
        assert_eq!(r.first_pair, None, "{renomination:?}: no switch");
        let pair = r.pair.expect("connected");
        assert!(!direct(pair), "{renomination:?}: stays relayed: {pair:?}");
        assert!(r.agree, "{renomination:?}");
    }
}
