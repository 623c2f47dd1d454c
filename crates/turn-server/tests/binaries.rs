//! The binaries as an operator runs them: `turnserver` with no configuration (port 3478, a
//! generated REST secret and an example credential that works), and a graceful stop on
//! SIGTERM.

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

#[test]
fn default_run_and_sigterm() {
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
