//! The ICE agent's receive path with a fixed set of remote candidates and credentials:
//! raw datagrams from anywhere; connectivity checks the harness signs with the agent's
//! password (so the fuzzer gets past MESSAGE-INTEGRITY); answers to the agent's own
//! transactions, from where they went or from elsewhere: Binding answers signed with the
//! peer's password, TURN answers (Allocate with a relayed address, permissions, channels)
//! that take the TURN client to a relayed candidate; TCP connection bytes and state; trickled
//! candidate lines; time passing.
//!
//! Invariants:
//! - every datagram goes to the server, a remote candidate the agent kept, or the source of
//!   an authenticated check (whole transport addresses), and the peers named in Send
//!   indications, CreatePermission and ChannelBind are among those too;
//! - bytes on a connection go only on one the agent asked for and the driver has not closed;
//! - application data is delivered only from those addresses;
//! - after `handle_timeout(now)` the next timer is later than `now` (no busy loop);
//! - remote candidates and pairs stay within their caps; nothing panics.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ice_agent::{
    Agent, AgentConfig, CandidateTransport, ConnectionId, Credentials, LocalSocket, Output,
    Receive, Request, Role, Transport, TurnServerConfig,
};
use libfuzzer_sys::fuzz_target;
use stun_codec::attr::{
    ErrorCode, IceControlled, IceControlling, Lifetime, Priority, UseCandidate, Username,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, OwnedAttribute,
    StreamFramer, TransactionId,
};

const LOCAL: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [198, 51, 100, 1];
const SIGNALLED: [&str; 2] = [
    "candidate:1 1 UDP 2130706431 203.0.113.2 6000 typ host",
    "candidate:2 1 UDP 1694498815 203.0.113.3 6001 typ srflx raddr 10.1.1.1 rport 6001",
];

#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes to one of the agent's sockets.
    Raw {
        socket: bool,
        from: u8,
        data: Vec<u8>,
    },
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
    /// An answer to a transaction the agent sent (by index), from where it went unless
    /// `spoof` names another source.
    Answer {
        pick: u8,
        spoof: Option<u8>,
        error: Option<u16>,
        mapped: Option<SocketAddr>,
        relayed: Option<SocketAddr>,
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

fn source(n: u8) -> SocketAddr {
    match n % 4 {
        0 => SocketAddr::from(([203, 0, 113, 2], 6000)),
        1 => SocketAddr::from(([203, 0, 113, 3], 6001)),
        2 => SocketAddr::from((SERVER, 3478)),
        _ => SocketAddr::from(([192, 0, 2, n], 7000 + u16::from(n))),
    }
}

/// One request the agent sent: over what, from, to, method, transaction.
struct Sent {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    method: Method,
    id: TransactionId,
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
    config.turn_servers = [Transport::Udp, Transport::Tcp]
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
    let sockets = [
        SocketAddr::from((LOCAL, 5000)),
        SocketAddr::from((LOCAL, 5001)),
    ];
    let all = sockets.map(|addr| LocalSocket {
        stream,
        component: 1,
        addr,
    });
    agent.add_local_sockets(now, &all).unwrap();
    // The local end of the TURN connection, once the driver has opened it.
    let conn_local = SocketAddr::from((LOCAL, 40001));
    let remote = Credentials {
        ufrag: "peer".into(),
        pwd: "peerpasswordpeerpassword".into(),
    };
    agent.set_remote_credentials(now, remote.clone(), false);
    let mut allowed: HashSet<SocketAddr> = HashSet::from([server]);
    for line in SIGNALLED {
        agent.add_remote_candidate_line(now, stream, line).unwrap();
    }
    allowed.extend(agent.remote_candidates(stream).iter().map(|c| c.addr));
    let local_key = IntegrityKey::new(agent.local_credentials().pwd.as_bytes());
    let local_ufrag = agent.local_credentials().ufrag.clone();
    let remote_key = IntegrityKey::new(remote.pwd.as_bytes());
    let mut sent: Vec<Sent> = Vec::new();
    // Asked for and not closed; and of those, the one up (as the driver reported it).
    let mut connections: HashSet<ConnectionId> = HashSet::new();
    let mut up = false;
    let mut framer = StreamFramer::new();
    let mut timer: Option<Instant> = None;
    // `handle_timeout` ran this step: the timer the drain reports must be later than now.
    let mut timed_out = false;

    for step in steps.into_iter().take(64) {
        match step {
            Step::Raw { socket, from, data } => {
                let local = sockets[usize::from(socket)];
                let from = source(from);
                if agent
                    .handle_receive(now, Receive::udp(local, from, &data))
                    .is_some()
                {
                    assert!(allowed.contains(&from), "data delivered from {from}");
                }
            }
            Step::Check {
                from,
                tid,
                controlling,
                controlled,
                use_candidate,
                priority,
                username_ok,
                extra,
            } => {
                let mut buf = [0u8; 1024];
                let Ok(mut b) = MessageBuilder::new(
                    &mut buf,
                    MessageType::new(Method::BINDING, Class::Request),
                    TransactionId(tid),
                ) else {
                    continue;
                };
                let user = if username_ok {
                    format!("{local_ufrag}:peer")
                } else {
                    "x:peer".into()
                };
                let _ = b.add(&Username(&user));
                let _ = b.add(&Priority(priority));
                if let Some(x) = controlling {
                    let _ = b.add(&IceControlling(x));
                }
                if let Some(x) = controlled {
                    let _ = b.add(&IceControlled(x));
                }
                if use_candidate {
                    let _ = b.add(&UseCandidate);
                }
                for a in extra.iter().take(4) {
                    let _ = a.add_to(&mut b);
                }
                if b.add_message_integrity(&local_key)
                    .and_then(|b| b.add_fingerprint())
                    .is_err()
                {
                    continue;
                }
                let bytes = b.finish().to_vec();
                let from = source(from);
                if username_ok {
                    // An authenticated check may teach a peer-reflexive candidate.
                    allowed.insert(from);
                }
                let _ = agent.handle_receive(now, Receive::udp(sockets[0], from, &bytes));
            }
            Step::Answer {
                pick,
                spoof,
                error,
                mapped,
                relayed,
            } => {
                let Some(req) = sent.get(usize::from(pick) % sent.len().max(1)) else {
                    continue;
                };
                let class = if error.is_some() {
                    Class::ErrorResponse
                } else {
                    Class::SuccessResponse
                };
                let mut buf = [0u8; 256];
                let Ok(mut b) =
                    MessageBuilder::new(&mut buf, MessageType::new(req.method, class), req.id)
                else {
                    continue;
                };
                if let Some(code) = error {
                    let _ = b.add(&ErrorCode::new(300 + code % 400));
                }
                if let Some(m) = mapped {
                    let _ = b.add(&XorMappedAddress(m));
                }
                if let Some(r) = relayed {
                    let _ = b.add(&XorRelayedAddress(r));
                    let _ = b.add(&Lifetime(600));
                }
                // Checks are answered with the peer's password; the TURN client's first
                // requests carry no credentials, so unsigned answers are what it expects.
                if req.method == Method::BINDING
                    && req.remote != server
                    && b.add_message_integrity(&remote_key).is_err()
                {
                    continue;
                }
                if b.add_fingerprint().is_err() {
                    continue;
                }
                let bytes = b.finish().to_vec();
                let from = spoof.map_or(req.remote, source);
                let r = Receive {
                    transport: req.transport,
                    local: req.local,
                    remote: from,
                    data: &bytes,
                };
                let _ = agent.handle_receive(now, r);
            }
            Step::Stream { data } => {
                // The driver cuts the stream into frames; one out of step closes it.
                let fed = framer.feed(&data, |frame| {
                    let r = Receive {
                        transport: Transport::Tcp,
                        local: conn_local,
                        remote: server,
                        data: frame,
                    };
                    let _ = agent.handle_receive(now, r);
                });
                if fed.is_err() {
                    framer = StreamFramer::new();
                    agent.connection_closed(now, ConnectionId(1));
                    connections.remove(&ConnectionId(1));
                    up = false;
                }
            }
            Step::Connection { up: open } => {
                if open && connections.contains(&ConnectionId(1)) {
                    up = true;
                    agent.connection_established(now, ConnectionId(1), conn_local)
                } else if !open {
                    // The driver reports it closed: nothing may be written to it any more.
                    agent.connection_closed(now, ConnectionId(1));
                    connections.remove(&ConnectionId(1));
                    up = false;
                }
            }
            Step::Candidate { line } => {
                if let Ok(c) = ice_agent::Candidate::parse(&line) {
                    let kept = c.transport == CandidateTransport::Udp
                        && agent.add_remote_candidate(now, stream, c.clone()).is_ok()
                        && agent
                            .remote_candidates(stream)
                            .iter()
                            .any(|r| r.addr == c.addr);
                    if kept {
                        allowed.insert(c.addr);
                    }
                }
            }
            Step::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                if timer.is_some_and(|t| t <= now) {
                    agent.handle_timeout(now);
                    timed_out = true;
                }
            }
        }
        while let Some(o) = agent.poll_output() {
            let tx = match o {
                Output::Request(Request::Connect { id, .. }) => {
                    connections.insert(id);
                    continue;
                }
                Output::Request(Request::Close { id }) => {
                    connections.remove(&id);
                    if id == ConnectionId(1) {
                        up = false;
                    }
                    continue;
                }
                Output::Request(_) | Output::Event(_) => continue,
                Output::Timeout(t) => {
                    timer = t;
                    if timed_out {
                        timed_out = false;
                        assert!(t.is_none_or(|t| t > now), "a timer stays in the past");
                    }
                    continue;
                }
                Output::Transmit(tx) => tx,
            };
            let (local, remote) = (tx.local, tx.remote);
            match tx.transport {
                Transport::Udp => {
                    assert!(sockets.contains(&local), "sent from {local}");
                    assert!(
                        allowed.contains(&remote),
                        "sent to {remote}, which nobody signalled or authenticated"
                    );
                    let Ok(m) = Message::parse(&tx.data) else {
                        continue;
                    };
                    if remote == server {
                        // What the TURN client asks the server to reach.
                        if let Ok(Some(XorPeerAddress(peer))) = m.get::<XorPeerAddress>() {
                            let ok = match m.message_type().method {
                                Method::SEND | Method::CHANNEL_BIND => allowed.contains(&peer),
                                _ => allowed.iter().any(|a| a.ip() == peer.ip()),
                            };
                            assert!(ok, "the relay is asked to reach {peer}");
                        }
                    }
                    if m.message_type().class == Class::Request {
                        sent.push(Sent {
                            transport: Transport::Udp,
                            local,
                            remote,
                            method: m.message_type().method,
                            id: m.transaction_id(),
                        });
                    }
                }
                transport => {
                    assert!(
                        up && connections.contains(&ConnectionId(1))
                            && (local, remote) == (conn_local, server),
                        "bytes on a connection that is not open: {local} -> {remote}"
                    );
                    if let Ok(m) = Message::parse(&tx.data) {
                        if m.message_type().class == Class::Request {
                            sent.push(Sent {
                                transport,
                                local,
                                remote,
                                method: m.message_type().method,
                                id: m.transaction_id(),
                            });
                        }
                    }
                }
            }
        }
        assert!(agent.remote_candidates(stream).len() <= 16);
        assert!(agent.pair_count(stream) <= 8);
    }
});
