//! Standard clients from coturn (Debian package `coturn`, which `.ci/run` installs) against our
//! binaries: `turnutils_uclient` relays through `turnserver` over UDP and TCP, with long-term
//! credentials and with the TURN REST secret, losing nothing; `turnutils_stunclient` gets its
//! reflexive address from both binaries; `turnutils_natdiscovery` finds no NAT behind
//! loopback through `stunserver` in RFC 5780 mode (127.0.0.1 and 127.0.0.2).
//!
//! Without the tools these tests fail under `CI=true` and are skipped (with a message)
//! elsewhere, so `cargo test` works on a machine with only the Rust toolchain.

mod common;

use std::net::UdpSocket;
use std::process::Command;

use common::*;

/// Whether the coturn tools are here; under CI their absence is a failure.
fn tools() -> bool {
    let here = [
        "turnutils_uclient",
        "turnutils_peer",
        "turnutils_stunclient",
        "turnutils_natdiscovery",
    ]
    .iter()
    .all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !here {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "coturn's turnutils_* are missing: .ci/run must `apt-get install -y coturn`"
        );
        eprintln!("skipped: coturn's turnutils_* are not installed (apt-get install coturn)");
    }
    here
}

/// Runs a coturn tool; its standard output and error together, and whether it succeeded.
fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `stunserver` in RFC 5780 mode on 127.0.0.1 and 127.0.0.2; its process, primary and alternate.
fn stunserver_5780() -> (Running, String, String) {
    let primary = format!("127.0.0.1:{}", free_port());
    let alternate = format!("127.0.0.2:{}", free_port());
    let running = spawn(
        env!("CARGO_BIN_EXE_stunserver"),
        &["--primary", &primary, "--alternate", &alternate],
        "stunserver running",
    );
    (running, primary, alternate)
}

/// `turnutils_peer` (a UDP echo server), ready once it has echoed a probe.
fn echo_peer() -> (Running, u16) {
    let port = free_port();
    let p = port.to_string();
    let mut child = std::process::Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &p])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    let start = std::time::Instant::now();
    loop {
        probe.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        if probe.recv_from(&mut buf).is_ok() {
            break;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("turnutils_peer did not answer");
        }
    }
    let running = Running::from_child(child);
    (running, port)
}

fn turnserver(extra: &[&str]) -> (Running, u16) {
    let port = free_port();
    let p = port.to_string();
    let (lo, hi) = free_ports(200);
    let (lo, hi) = (lo.to_string(), hi.to_string());
    let mut args = vec![
        "-L",
        "127.0.0.1",
        "-p",
        &p,
        "-r",
        "example.org",
        "--allow-loopback-peers",
        "--min-port",
        &lo,
        "--max-port",
        &hi,
    ];
    args.extend_from_slice(extra);
    (
        spawn(
            env!("CARGO_BIN_EXE_turnserver"),
            &args,
            "turnserver running",
        ),
        port,
    )
}

/// How uclient relays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relaying {
    /// Send indications (`-s`) to the echo peer.
    Send,
    /// The channels uclient binds, to the echo peer.
    Channels,
    /// RFC 6062 TCP allocations (`-T`): uclient's clients Connect to each other's relayed
    /// addresses, no outside peer.
    Tcp,
}

/// Runs uclient and checks that every message came back.
fn uclient_with(server_port: u16, peer_port: u16, relaying: Relaying, args: &[&str]) {
    let (sp, pp) = (server_port.to_string(), peer_port.to_string());
    let mut all = match relaying {
        Relaying::Send => vec!["-s"],
        Relaying::Channels => vec![],
        Relaying::Tcp => vec!["-T"],
    };
    all.extend(["-n", "30", "-m", "4", "-l", "170"]);
    if relaying != Relaying::Tcp {
        all.extend(["-e", "127.0.0.1", "-r", &pp]);
    }
    all.extend(["-p", &sp]);
    all.extend_from_slice(args);
    all.push("127.0.0.1");
    let (_, text) = run("turnutils_uclient", &all);
    let totals = text
        .lines()
        .find(|l| l.contains("start_mclient: tot_send_msgs="))
        .unwrap_or_else(|| panic!("uclient {all:?} did not finish:\n{text}"));
    let nums: Vec<u64> = totals
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    let (sent, received) = (nums[nums.len() - 2], nums[nums.len() - 1]);
    assert_eq!(sent, 4 * 30, "{totals}");
    assert_eq!(received, sent, "{totals}");
    assert!(
        text.contains("Total lost packets 0 ("),
        "uclient {all:?} lost packets:\n{text}"
    );
}

fn uclient(server_port: u16, peer_port: u16, args: &[&str]) {
    uclient_with(server_port, peer_port, Relaying::Send, args)
}

#[test]
fn uclient_tcp_relaying_rfc6062() {
    if !tools() {
        return;
    }
    // uclient -T: TCP allocations over TCP, Connect to the other client's relayed address,
    // ConnectionAttempt, ConnectionBind on new connections, data both ways. (-P, uclient's
    // "passive" variant, counts half its messages lost against coturn 4.6.1 itself too.)
    let (_server, port) = turnserver(&["-u", "alice:secret"]);
    uclient_with(port, 0, Relaying::Tcp, &["-u", "alice", "-w", "secret"]);
}

#[test]
fn uclient_over_channels_with_the_rfc5766_switch() {
    if !tools() {
        return;
    }
    // uclient binds channels from RFC 5766's range (0x5000-0x7FFF among them): with
    // rfc5766-channels the server takes them, over UDP and TCP.
    let (_peer, peer_port) = echo_peer();
    let (_server, port) = turnserver(&["-u", "alice:secret", "--rfc5766-channels"]);
    uclient_with(
        port,
        peer_port,
        Relaying::Channels,
        &["-u", "alice", "-w", "secret"],
    );
    uclient_with(
        port,
        peer_port,
        Relaying::Channels,
        &["-t", "-u", "alice", "-w", "secret"],
    );
}

#[test]
fn uclient_follows_alternate_server() {
    if !tools() {
        return;
    }
    // The front server redirects every Allocate (300, ALTERNATE-SERVER) to the other: uclient
    // would fail on the front (its sessions do not follow a 300), so a full run means it was
    // sent on and relayed through the target.
    let (_peer, peer_port) = echo_peer();
    let (_target, target_port) = turnserver(&["-u", "alice:secret"]);
    let alternate = format!("127.0.0.1:{target_port}");
    let (_front, front_port) =
        turnserver(&["-u", "alice:secret", "--alternate-server", &alternate]);
    uclient(front_port, peer_port, &["-u", "alice", "-w", "secret"]);
}

#[test]
fn uclient_long_term_credentials_udp_and_tcp() {
    if !tools() {
        return;
    }
    let (_peer, peer_port) = echo_peer();
    let (_server, port) = turnserver(&["-u", "alice:secret"]);
    uclient(port, peer_port, &["-u", "alice", "-w", "secret"]);
    uclient(port, peer_port, &["-t", "-u", "alice", "-w", "secret"]);
}

#[test]
fn uclient_rest_secret_udp_and_tcp() {
    if !tools() {
        return;
    }
    let (_peer, peer_port) = echo_peer();
    let (_server, port) = turnserver(&["--use-auth-secret", "--static-auth-secret", "north"]);
    uclient(port, peer_port, &["-W", "north", "-u", "restuser"]);
    uclient(port, peer_port, &["-t", "-W", "north", "-u", "restuser"]);
}

fn stunclient(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["-p", &p];
    all.extend_from_slice(args);
    all.push("127.0.0.1");
    let (ok, text) = run("turnutils_stunclient", &all);
    assert!(ok, "{text}");
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "{text}");
    text
}

/// The port of an `IP:PORT`.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn stunclient_against_both_binaries() {
    if !tools() {
        return;
    }
    let (_server, port) = turnserver(&["-u", "alice:secret"]);
    stunclient(port, &[]);
    let (_stun, primary, alternate) = stunserver_5780();
    let plain = stunclient(port_of(&primary), &[]);
    assert!(plain.contains("127.0.0.1"), "{plain}");
    // RFC 5780 mode: OTHER-ADDRESS and RESPONSE-ORIGIN.
    let rfc5780 = stunclient(port_of(&primary), &["-f"]);
    assert!(
        rfc5780.contains(&format!("Other addr: : {alternate}")),
        "{rfc5780}"
    );
    assert!(
        rfc5780.contains(&format!("Response origin: : {primary}")),
        "{rfc5780}"
    );
}

#[test]
fn natdiscovery_finds_no_nat_on_loopback() {
    if !tools() {
        return;
    }
    let (_stun, primary, _) = stunserver_5780();
    let p = port_of(&primary).to_string();
    let (_, text) = run(
        "turnutils_natdiscovery",
        &["-m", "-f", "-p", &p, "127.0.0.1"],
    );
    // Loopback has no NAT: both behaviours are endpoint-independent.
    assert!(
        text.contains("NAT with Endpoint Independent Mapping!"),
        "{text}"
    );
    assert!(
        text.contains("NAT with Endpoint Independent Filtering!"),
        "{text}"
    );
}
