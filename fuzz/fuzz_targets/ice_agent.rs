//! The ICE agent's receive path with a fixed set of remote candidates and credentials:
//! raw datagrams from anywhere, connectivity checks and answers the harness signs correctly
//! (so the fuzzer gets past MESSAGE-INTEGRITY), TURN server traffic, TCP connection bytes,
//! trickled candidate lines, and time passing.
//! Invariants: nothing panics; the agent sends only to servers, signalled remote candidates
//! and the sources of authenticated checks; remote candidates and pairs stay within their
//! caps.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ice_agent::{
    Agent, AgentConfig, ConnectionId, Credentials, Role, TurnServerConfig, TurnTransport, Via,
};
use libfuzzer_sys::fuzz_target;
use stun_codec::attr::{
    ErrorCode, IceControlled, IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
};
use stun_codec::{Class, IntegrityKey, MessageBuilder, MessageType, Method, OwnedAttribute, TransactionId};

const LOCAL: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [198, 51, 100, 1];

#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes to one of the agent's sockets.
    Raw { socket: bool, from: u8, data: Vec<u8> },
    /// A check signed with the agent's password.
    Check {
        from: u8,
        tid: [u8; 12],
        controlling: Option<u64>,
        controlled: Option<u64>,
        use_candidate: bool,
        priority: u32,
        username_ok: bool,
        extra: Vec<OwnedAttribute>,
    },
    /// An answer signed with the peer's password to a transaction the agent sent (by index)
    /// or any other.
    Answer {
        from: u8,
        pick: u8,
        error: Option<u16>,
        mapped: Option<SocketAddr>,
    },
    /// Bytes on the TURN TCP connection.
    Stream { data: Vec<u8> },
    /// The TCP connection opens or closes.
    Connection { up: bool },
    /// A trickled candidate line.
    Candidate { line: String },
    /// Time passes.
    Wait { ms: u16 },
}

fn peer(n: u8) -> SocketAddr {
    match n % 4 {
        0 => SocketAddr::from(([203, 0, 113, 2], 6000)),
        1 => SocketAddr::from(([203, 0, 113, 3], 6001)),
        2 => SocketAddr::from((SERVER, 3478)),
        _ => SocketAddr::from(([192, 0, 2, n], 7000 + u16::from(n))),
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let t0 = Instant::now();
    let mut now = t0;
    let server = SocketAddr::from((SERVER, 3478));
    let mut config = AgentConfig::new(Role::Controlling);
    config.seed = Some(1);
    config.max_remote_candidates = 16;
    config.max_pairs = 8;
    config.stun_servers = vec![server];
    config.turn_servers = [TurnTransport::Udp, TurnTransport::Tcp]
        .into_iter()
        .map(|transport| TurnServerConfig {
            addr: server,
            transport,
            tls_name: None,
            username: "u".into(),
            password: "p".into(),
        })
        .collect();
    let mut agent = Agent::new(config);
    let stream = agent.add_stream(1);
    let sockets = [SocketAddr::from((LOCAL, 5000)), SocketAddr::from((LOCAL, 5001))];
    for s in sockets {
        agent.add_local_socket(now, stream, 1, s).unwrap();
    }
    let remote = Credentials { ufrag: "peer".into(), pwd: "peerpasswordpeerpassword".into() };
    agent.set_remote_credentials(now, remote.clone(), false);
    for line in [
        "candidate:1 1 UDP 2130706431 203.0.113.2 6000 typ host",
        "candidate:2 1 UDP 1694498815 203.0.113.3 6001 typ srflx raddr 10.1.1.1 rport 6001",
    ] {
        agent.add_remote_candidate_line(now, stream, line).unwrap();
    }
    let local_key = IntegrityKey::new(agent.local_credentials().pwd.as_bytes());
    let local_ufrag = agent.local_credentials().ufrag.clone();
    let remote_key = IntegrityKey::new(remote.pwd.as_bytes());
    let mut sent: Vec<(SocketAddr, TransactionId)> = Vec::new();
    let mut allowed: Vec<IpAddr> = vec![SERVER.into(), [203, 0, 113, 2].into(), [203, 0, 113, 3].into()];

    for step in steps.into_iter().take(64) {
        match step {
            Step::Raw { socket, from, data } => {
                let local = sockets[usize::from(socket)];
                let _ = agent.handle_receive(now, local, peer(from), &data);
            }
            Step::Check { from, tid, controlling, controlled, use_candidate, priority, username_ok, extra } => {
                let mut buf = [0u8; 1024];
                let Ok(mut b) = MessageBuilder::new(&mut buf, MessageType::new(Method::BINDING, Class::Request), TransactionId(tid)) else { continue };
                let user = if username_ok { format!("{local_ufrag}:peer") } else { "x:peer".into() };
                let _ = b.add(&Username(&user));
                let _ = b.add(&Priority(priority));
                if let Some(x) = controlling { let _ = b.add(&IceControlling(x)); }
                if let Some(x) = controlled { let _ = b.add(&IceControlled(x)); }
                if use_candidate { let _ = b.add(&UseCandidate); }
                for a in extra.iter().take(4) { let _ = a.add_to(&mut b); }
                if b.add_message_integrity(&local_key).and_then(|b| b.add_fingerprint()).is_err() { continue }
                let bytes = b.finish().to_vec();
                let source = peer(from);
                if username_ok {
                    // An authenticated check may teach a peer-reflexive candidate.
                    allowed.push(source.ip());
                }
                let _ = agent.handle_receive(now, sockets[0], source, &bytes);
            }
            Step::Answer { from, pick, error, mapped } => {
                let id = sent.get(usize::from(pick)).map(|x| x.1).unwrap_or(TransactionId([pick; 12]));
                let class = if error.is_some() { Class::ErrorResponse } else { Class::SuccessResponse };
                let mut buf = [0u8; 256];
                let Ok(mut b) = MessageBuilder::new(&mut buf, MessageType::new(Method::BINDING, class), id) else { continue };
                if let Some(code) = error { let _ = b.add(&ErrorCode::new(300 + code % 400)); }
                if let Some(m) = mapped { let _ = b.add(&XorMappedAddress(m)); }
                if b.add_message_integrity(&remote_key).and_then(|b| b.add_fingerprint()).is_err() { continue }
                let bytes = b.finish().to_vec();
                let _ = agent.handle_receive(now, sockets[0], peer(from), &bytes);
            }
            Step::Stream { data } => agent.handle_connection_data(now, ConnectionId(1), &data),
            Step::Connection { up } => {
                if up { agent.connection_established(now, ConnectionId(1)) } else { agent.connection_closed(now, ConnectionId(1)) }
            }
            Step::Candidate { line } => {
                if let Ok(c) = ice_agent::Candidate::parse(&line) {
                    if agent.add_remote_candidate(now, stream, c.clone()).is_ok() {
                        allowed.push(c.addr.ip());
                    }
                }
            }
            Step::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                agent.handle_timeout(now);
            }
        }
        if let Some(t) = agent.poll_timeout() {
            if t <= now {
                agent.handle_timeout(now);
            }
        }
        while let Some(tx) = agent.poll_transmit() {
            if let Via::Udp { local, remote } = tx.via {
                assert!(sockets.contains(&local), "sent from {local}");
                assert!(
                    allowed.contains(&remote.ip()),
                    "sent to {remote}, which nobody signalled or authenticated"
                );
                if tx.data.len() >= 20 {
                    let mut id = [0u8; 12];
                    id.copy_from_slice(&tx.data[8..20]);
                    sent.push((remote, TransactionId(id)));
                }
            }
        }
        while agent.poll_event().is_some() {}
        while agent.poll_request().is_some() {}
        assert!(agent.remote_candidates(stream).len() <= 16);
        assert!(agent.pair_count(stream) <= 8);
    }
});
