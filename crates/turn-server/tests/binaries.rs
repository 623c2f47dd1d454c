//! The binaries as an operator runs them: `turnserver` with no configuration (port 3478, a
//! generated REST secret and an example credential that works), and a graceful stop on
//! SIGTERM.
//!
//! Port 3478 is fixed by the default run, and another program on the machine may hold it
//! (a system coturn, another test). So the test runs in a network namespace of its own,
//! where the port is certainly free: as root it re-runs itself under `unshare --net` with
//! the namespace's loopback up. Without root it runs only if 3478 is free on this machine,
//! and otherwise says why it skips (under `CI=true`, where it runs as root, a missing
//! `unshare` fails it).

mod common;

use std::process::Command;

use common::*;
use stun_codec::attr::{RequestedTransport, XorMappedAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

fn binding(conn: &mut Conn) -> std::net::SocketAddr {
    let mut buf = [0u8; 64];
    let req = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([1; 12]),
    )
    .unwrap()
    .finish()
    .to_vec();
    conn.send(&req);
    let r = conn.recv();
    Message::parse(&r)
        .unwrap()
        .get::<XorMappedAddress>()
        .unwrap()
        .unwrap()
        .0
}

/// Set in the copy of this test that runs inside its own network namespace.
const IN_NAMESPACE: &str = "TURN_BINARIES_TEST_IN_NETNS";

/// Whether UDP and TCP port 3478 on loopback are free here.
fn port_3478_free() -> bool {
    std::net::UdpSocket::bind("127.0.0.1:3478").is_ok()
        && std::net::TcpListener::bind("127.0.0.1:3478").is_ok()
}

#[test]
fn default_run_and_sigterm() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        // A new namespace starts with loopback down.
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip (iproute2) in the namespace");
        assert!(up.success(), "ip link set lo up: {up}");
        assert!(port_3478_free(), "3478 is taken even in a fresh namespace");
        return default_run();
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("unshare")
            .arg("--net")
            .arg(&exe)
            .args(["--exact", "default_run_and_sigterm", "--nocapture"])
            .env(IN_NAMESPACE, "1")
            .output()
            .expect("unshare (util-linux) to give the test its own network namespace");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "in its own namespace:\n{text}");
        assert!(text.contains("1 passed"), "the test ran there:\n{text}");
        return;
    }
    if port_3478_free() {
        return default_run();
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root, so this test gets a namespace of its own"
    );
    eprintln!(
        "default_run_and_sigterm skipped: port 3478 is in use on this machine, and without \
         root the test cannot take a network namespace where it is free"
    );
}

fn default_run() {
    let mut server = spawn(env!("CARGO_BIN_EXE_turnserver"), &[], "turnserver running");
    // The example credential is printed (to standard output) once.
    let start = std::time::Instant::now();
    let (user, credential) = loop {
        let log = server.log.lock().unwrap().clone();
        let field = |name: &str| {
            log.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("\"{name}\": \"")))
                .map(|v| v.trim_end_matches([',', '"']).to_owned())
        };
        if let (Some(u), Some(c)) = (field("username"), field("credential")) {
            break (u, c);
        }
        assert!(
            start.elapsed() < LIMIT,
            "no example credential printed:\n{log}"
        );
        std::thread::yield_now();
    };
    let server_addr = "127.0.0.1:3478".parse().unwrap();
    // STUN over UDP and TCP on 3478.
    let mut udp = Conn::udp(server_addr);
    assert!(binding(&mut udp).ip().is_loopback());
    let mut tcp = Conn::tcp(server_addr);
    assert!(binding(&mut tcp).ip().is_loopback());
    // TURN with the printed credential (the default realm is "turn").
    let mut c = Client::new(Conn::udp(server_addr), &user, &credential);
    c.key = stun_codec::IntegrityKey::long_term(
        &user,
        "turn",
        &credential,
        stun_codec::attr::PasswordAlgorithm::MD5,
    )
    .unwrap();
    let r = c.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(error_code(&r), None, "the printed credential must work");

    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("SIGTERM: shutting down") && log.contains("stopped"),
        "{log}"
    );
    // Credentials never reach the log lines (only the one-time banner on standard output).
    assert_eq!(log.matches(&credential).count(), 1, "{log}");
}
