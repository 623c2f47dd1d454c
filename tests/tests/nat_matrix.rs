//! The NAT matrix (issue 5): two agents, each behind one of eight kinds of NAT, connect
//! through natsim with the real turn-server core as STUN/TURN server; the selected pair's
//! types match the table below, and every cell is within its time budget. The clean and
//! harsh runs are written to `docs/nat-matrix.md` with
//! `NAT_MATRIX_DOC=write cargo test -p scenarios --test nat_matrix`; otherwise the test checks
//! that the document is current.

use std::fmt::Write as _;
use std::time::Duration;

use ice_agent::CandidateKind;
use scenarios::matrix::{run_cell, Behind, CellResult, Conditions};

/// Whether the selected pair should be direct (no relay on either side) for A (controlling,
/// offerer) behind `a` and B behind `b`.
fn expect_direct(a: Behind, b: Behind) -> bool {
    use Behind::*;
    // Address-and-port-dependent filtering on a side whose mapping the other side cannot
    // predict (symmetric) rules direct out; UDP blocked rules out everything but TURN over
    // TCP.
    let apdf = |k| matches!(k, PortRestricted | Symmetric | Masquerade | DoubleNat);
    match (a, b) {
        (UdpBlocked, _) | (_, UdpBlocked) => false,
        (Symmetric, k) | (k, Symmetric) if apdf(k) => false,
        // Direct is possible here, but only through the symmetric side's retransmitted
        // check: its first check reaches the restricted NAT 30 ms before that NAT has seen
        // a packet to the symmetric side's address, and the retransmission comes 500 ms
        // later (RFC 8445 §14.3's minimum RTO), after the relayed pair has been nominated.
        // In the mirrored cell (symmetric controlling) the order works out and the pair is
        // direct. See docs/nat-matrix.md.
        (Restricted, Symmetric) => false,
        _ => true,
    }
}

const DIRECT_BUDGET: Duration = Duration::from_millis(300);
const RELAY_BUDGET: Duration = Duration::from_millis(600);

fn types(r: &CellResult) -> String {
    match r.pair {
        Some((l, r)) => format!("{}–{}", l.as_str(), r.as_str()),
        None => "—".into(),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{}", d.as_millis()))
}

fn is_direct(pair: (CandidateKind, CandidateKind)) -> bool {
    pair.0.is_direct() && pair.1.is_direct()
}

#[test]
fn nat_matrix() {
    let mut clean = Vec::new();
    let mut harsh = Vec::new();
    let mut failures = Vec::new();
    for (i, a) in Behind::ALL.into_iter().enumerate() {
        for (j, b) in Behind::ALL.into_iter().enumerate() {
            let seed = (i * 8 + j) as u64 + 1;
            let r = run_cell([a, b], Conditions::Clean, seed, Duration::from_secs(10));
            let direct = expect_direct(a, b);
            match (r.pair, r.time_to_connected) {
                (Some(pair), Some(t)) => {
                    if is_direct(pair) != direct {
                        failures.push(format!(
                            "{a} × {b}: selected {} but expected {}",
                            types(&r),
                            if direct { "direct" } else { "relay" }
                        ));
                    }
                    let budget = if direct { DIRECT_BUDGET } else { RELAY_BUDGET };
                    if t > budget {
                        failures.push(format!("{a} × {b}: connected in {t:?}, budget {budget:?}"));
                    }
                }
                _ => failures.push(format!("{a} × {b}: did not connect (clean)")),
            }
            clean.push(r);
            let h = run_cell([a, b], Conditions::Harsh, seed, Duration::from_secs(60));
            if !h.data_exchanged {
                failures.push(format!("{a} × {b}: did not connect (harsh)"));
            }
            harsh.push(h);
        }
    }
    let doc = render(&clean, &harsh);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/nat-matrix.md");
    if std::env::var("NAT_MATRIX_DOC").as_deref() == Ok("write") {
        std::fs::write(path, &doc).expect("write docs/nat-matrix.md");
    } else {
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current != doc {
            failures.push(
                "docs/nat-matrix.md is not current: run \
                 `NAT_MATRIX_DOC=write cargo test -p scenarios --test nat_matrix`"
                    .into(),
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn render(clean: &[CellResult], harsh: &[CellResult]) -> String {
    let mut s = String::new();
    s.push_str(include_str!("nat_matrix_head.md"));
    for (title, rows) in [("Clean links", clean), ("Harsh links", harsh)] {
        let _ = writeln!(s, "\n## {title}\n");
        let _ = writeln!(
            s,
            "| A (controlling) | B | selected pair (A's view) | expected | connected after (ms) | budget (ms) | checks sent A / B |"
        );
        let _ = writeln!(s, "|---|---|---|---|---:|---:|---|");
        for r in rows {
            let [a, b] = r.kinds;
            let direct = expect_direct(a, b);
            // Harsh runs are checked only for connecting: no expected type, no budget.
            let harsh = title.starts_with("Harsh");
            let (expected, budget) = match (harsh, direct) {
                (true, _) => ("—", "—".to_string()),
                (false, true) => ("direct", DIRECT_BUDGET.as_millis().to_string()),
                (false, false) => ("relay", RELAY_BUDGET.as_millis().to_string()),
            };
            let _ = writeln!(
                s,
                "| {a} | {b} | {} | {} | {} | {budget} | {} / {} |",
                types(r),
                expected,
                ms(r.time_to_connected),
                r.checks_sent[0],
                r.checks_sent[1],
            );
        }
    }
    s
}
