//! The NAT matrix (issue 5): two agents, each behind one of eight kinds of NAT, connect
//! through natsim with the real turn-server core as STUN/TURN server; the selected pair's
//! types match the table below (after renomination has had its chance), both sides agree on
//! it, and every cell is within its time budget. The clean and
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
        _ => true,
    }
}

const DIRECT_BUDGET: Duration = Duration::from_millis(300);
const RELAY_BUDGET: Duration = Duration::from_millis(600);
/// From the credentials to the last selection, where a renomination replaced the first pair
/// (docs/nat-matrix.md shows where this comes from).
const SWITCH_BUDGET: Duration = Duration::from_millis(1000);

fn types(r: &CellResult) -> String {
    r.pair.map_or("—".into(), pair_name)
}

fn pair_name((l, r): (CandidateKind, CandidateKind)) -> String {
    format!("{}–{}", l.as_str(), r.as_str())
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
                    if !r.agree {
                        failures.push(format!(
                            "{a} × {b}: the sides selected different pairs, or data stopped"
                        ));
                    }
                    // A first pair that a renomination replaced was relayed: it has the
                    // relay budget, the switch its own.
                    let first_direct = r.first_pair.map_or(direct, is_direct);
                    let budget = if first_direct {
                        DIRECT_BUDGET
                    } else {
                        RELAY_BUDGET
                    };
                    if t > budget {
                        failures.push(format!("{a} × {b}: connected in {t:?}, budget {budget:?}"));
                    }
                    if let Some(s) = r.time_to_final_pair.filter(|&s| s > SWITCH_BUDGET) {
                        failures.push(format!(
                            "{a} × {b}: final pair after {s:?}, budget {SWITCH_BUDGET:?}"
                        ));
                    }
                }
                _ => failures.push(format!("{a} × {b}: did not connect (clean)")),
            }
            clean.push(r);
            let h = run_cell([a, b], Conditions::Harsh, seed, Duration::from_secs(60));
            if !h.data_exchanged {
                failures.push(format!("{a} × {b}: did not connect (harsh)"));
            }
            if h.data_exchanged && !h.agree {
                failures.push(format!(
                    "{a} × {b}: the sides selected different pairs, or data stopped (harsh)"
                ));
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
            "| A (controlling) | B | selected pair (A's view) | expected | connected after (ms) | budget (ms) | renominated from, after (ms) | checks sent A / B |"
        );
        let _ = writeln!(s, "|---|---|---|---|---:|---:|---|---|");
        for r in rows {
            let [a, b] = r.kinds;
            let direct = expect_direct(a, b);
            // Harsh runs are checked only for connecting: no expected type, no budget.
            let harsh = title.starts_with("Harsh");
            // A first pair that a renomination replaced has the budget of its kind.
            let first_direct = r.first_pair.map_or(direct, is_direct);
            let (expected, budget) = match (harsh, direct, first_direct) {
                (true, _, _) => ("—", "—".to_string()),
                (false, true, true) => ("direct", DIRECT_BUDGET.as_millis().to_string()),
                (false, true, false) => ("direct", RELAY_BUDGET.as_millis().to_string()),
                (false, false, _) => ("relay", RELAY_BUDGET.as_millis().to_string()),
            };
            let switched = match r.first_pair {
                Some(first) => format!("{} – {}", pair_name(first), ms(r.time_to_final_pair)),
                None => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {a} | {b} | {} | {} | {} | {budget} | {switched} | {} / {} |",
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
