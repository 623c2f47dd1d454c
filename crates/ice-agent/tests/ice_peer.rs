//! `ice-peer` as two real processes on loopback: directly, and relayed through our TURN
//! server over TLS. Each waits on the programs' own output and exit; the kill timer only
//! bounds a failing run.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PEER: &str = env!("CARGO_BIN_EXE_ice-peer");

struct Run {
    offer: String,
    answer: String,
}

/// One process's end: how it exited, its standard output and error.
struct Exit {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Starts the offerer, reads its signalling address, starts the answerer, and waits for
/// both to exit successfully.
fn run(common_args: &[&str]) -> Run {
    let (offer, answer) = run_both(common_args);
    for (who, e) in [("offerer", &offer), ("answerer", &answer)] {
        assert!(
            e.status.success(),
            "{who} failed: {}\nstdout:\n{}\nstderr:\n{}",
            e.status,
            e.stdout,
            e.stderr
        );
    }
    Run {
        offer: offer.stdout,
        answer: answer.stdout,
    }
}

/// Both processes, however they end.
fn run_both(common_args: &[&str]) -> (Exit, Exit) {
    let mut offer = Command::new(PEER)
        .args(["offer", "--signal-listen", "127.0.0.1:0", "--count", "3"])
        .args(common_args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ice-peer runs");
    let mut out = BufReader::new(offer.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("signalling on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    let answer = Command::new(PEER)
        .args(["answer", "--signal-connect", &addr])
        .args(common_args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ice-peer runs");
    // Both at once: neither may block on a full pipe while the other is waited for.
    let answer = std::thread::spawn(move || finish(answer, None));
    let mut offer = finish(offer, Some(out));
    offer.stdout = first + &offer.stdout;
    (offer, answer.join().unwrap())
}

fn finish(mut child: Child, out: Option<BufReader<std::process::ChildStdout>>) -> Exit {
    let (tx, rx) = mpsc::channel::<()>();
    let pid = child.id();
    // Kills the process if it has not exited within the limit (a hang, not a wait).
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(40)).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout = String::new();
    match out {
        Some(mut o) => o.read_to_string(&mut stdout).unwrap(),
        None => child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap(),
    };
    let stderr = stderr.join().unwrap();
    let status = child.wait().unwrap();
    let _ = tx.send(());
    guard.join().unwrap();
    Exit {
        status,
        stdout,
        stderr,
    }
}

fn selected(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("selected pair: "))
        .unwrap_or_else(|| panic!("no selected pair in {out:?}"))
}

#[test]
fn two_processes_connect_on_loopback_and_exchange_data() {
    let r = run(&["--bind", "127.0.0.1", "--loopback"]);
    let (o, a) = (selected(&r.offer), selected(&r.answer));
    assert!(
        o.starts_with("host 127.0.0.1:") && o.contains(" -> host 127.0.0.1:"),
        "{o}"
    );
    // Each side's local candidate is the other's remote one.
    let (ol, or) = o.split_once(" -> ").unwrap();
    let (al, ar) = a.split_once(" -> ").unwrap();
    assert_eq!((ol, or), (ar, al));
    assert!(
        r.offer.contains("pong 3\nexchanged 3 messages"),
        "{}",
        r.offer
    );
    assert!(r.answer.contains("echoed 3 messages"), "{}", r.answer);
}

#[test]
fn two_processes_connect_through_our_turn_server_over_tls() {
    let turn = common::turn_server();
    let ca = std::env::temp_dir().join(format!("ice-peer-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &turn.cert_pem).unwrap();
    let url = format!("turns:localhost:{}", turn.tls().port());
    let r = run(&[
        "--bind",
        "127.0.0.1",
        "--relay-only",
        "--turn",
        &url,
        "--user",
        "alice",
        "--pass",
        "secret",
        "--ca",
        ca.to_str().unwrap(),
    ]);
    std::fs::remove_file(&ca).unwrap();
    for out in [&r.offer, &r.answer] {
        let s = selected(out);
        assert!(
            s.starts_with("relay 127.0.0.1:") && s.contains(" -> relay 127.0.0.1:"),
            "{s}"
        );
    }
    assert!(r.offer.contains("exchanged 3 messages"), "{}", r.offer);
}

/// A `turns:` server whose certificate is not trusted: the user sees why at the default log
/// level (the certificate error), not only that ICE failed.
#[test]
fn a_refused_turns_server_says_why() {
    let turn = common::turn_server();
    // Another certificate than the server's: trusting it does not make the server's trusted.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = std::env::temp_dir().join(format!("ice-peer-other-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let url = format!("turns:localhost:{}", turn.tls().port());
    let (offer, answer) = run_both(&[
        "--bind",
        "127.0.0.1",
        "--relay-only",
        "--turn",
        &url,
        "--user",
        "alice",
        "--pass",
        "secret",
        "--ca",
        ca.to_str().unwrap(),
    ]);
    std::fs::remove_file(&ca).unwrap();
    for e in [&offer, &answer] {
        assert!(!e.status.success(), "no relay, so no connection");
        assert!(
            e.stderr
                .contains("TURN server refused: TLS handshake failed")
                && e.stderr.contains("certificate"),
            "the reason is missing from:\n{}",
            e.stderr
        );
    }
}
