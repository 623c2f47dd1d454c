//! Agents talking to each other over an in-memory network in virtual time: ICE-lite both
//! ways (with keepalives and consent), several streams and components, and failure without
//! end-of-candidates. After every `handle_timeout(t)` the harness checks that the agent's
//! next timer is later than `t`, so a timer that stays in the past (a driver busy loop) fails
//! any test here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::*;
use stun_codec::{Class, Message};

struct Net {
    agents: Vec<Agent>,
    /// The socket addresses of each agent.
    sockets: Vec<Vec<SocketAddr>>,
    t: Instant,
    /// Every packet is dropped.
    cut: bool,
    /// The connectivity checks (Binding requests) this agent sends are dropped.
    mute_checks_of: Option<usize>,
    /// Application data received: (agent, stream, component, bytes).
    received: Vec<(usize, StreamId, u16, Vec<u8>)>,
    /// Binding indications (keepalives) sent by each agent.
    keepalives: Vec<u32>,
    /// Selected pairs announced: (agent, stream, component).
    selected: Vec<(usize, StreamId, u16)>,
    /// The state changes each agent announced, in order.
    states: Vec<Vec<ConnectionState>>,
    /// Each agent's timer, as its last drain reported it.
    timers: Vec<Option<Instant>>,
}

impl Net {
    fn new(agents: Vec<Agent>, t: Instant) -> Net {
        let n = agents.len();
        Net {
            agents,
            sockets: vec![Vec::new(); n],
            t,
            cut: false,
            mute_checks_of: None,
            received: Vec::new(),
            keepalives: vec![0; n],
            selected: Vec::new(),
            states: vec![Vec::new(); n],
            timers: vec![None; n],
        }
    }

    fn socket(&mut self, agent: usize, stream: StreamId, component: u16, addr: &str) {
        let addr: SocketAddr = addr.parse().unwrap();
        let socket = LocalSocket {
            stream,
            component,
            addr,
        };
        self.agents[agent]
            .add_local_sockets(self.t, &[socket])
            .unwrap();
        self.sockets[agent].push(addr);
    }

    /// Instant signalling of credentials, every local candidate and end-of-candidates.
    fn signal(&mut self, streams: &[StreamId], lite: [bool; 2]) {
        for (from, to) in [(0, 1), (1, 0)] {
            let creds = self.agents[from].local_credentials().clone();
            self.agents[to].set_remote_credentials(self.t, creds, lite[from]);
            for &s in streams {
                for c in self.agents[from].local_candidates(s) {
                    self.agents[to].add_remote_candidate(self.t, s, c).unwrap();
                }
                self.agents[to].end_of_remote_candidates(self.t, s);
            }
        }
    }

    /// Delivers everything queued, instantly, until nothing is left.
    fn deliver(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.agents.len() {
                any |= self.drain(i);
            }
            if !any {
                return;
            }
        }
    }

    /// Carries out what agent `i` has to say: delivers its datagrams, notes its events and
    /// its timer. Whether it sent anything.
    fn drain(&mut self, i: usize) -> bool {
        let mut any = false;
        while let Some(o) = self.agents[i].poll_output() {
            match o {
                Output::Transmit(tx) => {
                    any = true;
                    assert_eq!(tx.transport, Transport::Udp, "no TURN in these tests");
                    if Message::parse(&tx.data)
                        .is_ok_and(|m| m.message_type().class == Class::Indication)
                    {
                        self.keepalives[i] += 1;
                    }
                    let request = Message::parse(&tx.data)
                        .is_ok_and(|m| m.message_type().class == Class::Request);
                    if self.cut || (request && self.mute_checks_of == Some(i)) {
                        continue;
                    }
                    let Some(j) = self.sockets.iter().position(|s| s.contains(&tx.remote)) else {
                        continue;
                    };
                    let r = Receive::udp(tx.remote, tx.local, &tx.data);
                    if let Some(r) = self.agents[j].handle_receive(self.t, r) {
                        self.received
                            .push((j, r.stream, r.component, r.data.to_vec()));
                    }
                }
                Output::Event(Event::SelectedPair {
                    stream, component, ..
                }) => self.selected.push((i, stream, component)),
                Output::Event(Event::StateChanged(s)) => self.states[i].push(s),
                Output::Event(_) => {}
                Output::Request(r) => panic!("no TURN in these tests: {r:?}"),
                Output::Timeout(t) => self.timers[i] = t,
            }
        }
        any
    }

    /// Runs until `done` or `limit` of virtual time; returns whether `done` held.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let end = self.t + limit;
        loop {
            self.deliver();
            if done(self) {
                return true;
            }
            let Some(next) = self.timers.iter().flatten().min().copied() else {
                return false;
            };
            if next > end {
                self.t = end;
                return done(self);
            }
            self.t = self.t.max(next);
            for i in 0..self.agents.len() {
                if self.timers[i].is_some_and(|x| x <= self.t) {
                    self.agents[i].handle_timeout(self.t);
                    self.drain(i);
                    assert!(
                        self.timers[i].is_none_or(|x| x > self.t),
                        "a timer stays in the past at {:?} ({:?})",
                        self.t,
                        self.agents[i].state()
                    );
                }
            }
        }
    }

    fn connected(&self, agent: usize) -> bool {
        matches!(
            self.agents[agent].state(),
            ConnectionState::Connected | ConnectionState::Completed
        )
    }
}

fn agent(role: Role, lite: bool, seed: u64) -> Agent {
    let mut c = AgentConfig::new(role);
    c.lite = lite;
    c.seed = Some(seed);
    Agent::new(c)
}

#[test]
fn ice_lite_both_ways() {
    let t = Instant::now();
    // The full agent is configured controlled; facing a lite peer it must control.
    let mut net = Net::new(
        vec![
            agent(Role::Controlled, false, 1),
            agent(Role::Controlling, true, 2),
        ],
        t,
    );
    let (s0, s1) = (net.agents[0].add_stream(1), net.agents[1].add_stream(1));
    assert_eq!((s0, s1), (StreamId(0), StreamId(0)));
    net.socket(0, s0, 1, "192.0.2.1:5000");
    net.socket(1, s1, 1, "192.0.2.2:6000");
    assert_eq!(
        net.agents[1].role(),
        Role::Controlled,
        "a lite agent is always controlled"
    );
    net.signal(&[s0], [false, true]);
    assert_eq!(net.agents[0].role(), Role::Controlling);
    assert!(net.run_until(Duration::from_secs(2), |n| n.connected(0) && n.connected(1)));
    for i in 0..2 {
        let (l, r) = net.agents[i].selected_pair(s0, 1).expect("selected");
        assert_eq!(l.kind, CandidateKind::Host);
        assert_eq!(r.kind, CandidateKind::Host);
    }
    // Data both ways on the pair.
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let mut out = [0u8; 64];
        let tx = net.agents[from]
            .send(net.t, s0, 1, b"hi", &mut out)
            .unwrap();
        assert_eq!(tx.transport, Transport::Udp);
        let got = net.agents[to].handle_receive(net.t, Receive::udp(tx.remote, tx.local, tx.data));
        assert_eq!(got.map(|r| r.data), Some(&b"hi"[..]));
    }
    // A minute later both are still connected: the full agent's consent checks are
    // answered, the lite agent counts them as consent and sends keepalives (it sends no
    // checks, so nothing else leaves it unprompted).
    let start = net.t;
    assert!(!net.run_until(Duration::from_secs(60), |n| !n.connected(0)
        || !n.connected(1)));
    assert!(net.agents[0].stats().consent_checks_sent >= 10);
    assert_eq!(net.agents[1].stats().checks_sent, 0);
    assert!(
        net.keepalives[1] >= 3,
        "lite keepalives: {}",
        net.keepalives[1]
    );
    assert!(net.t >= start + Duration::from_secs(60));
    // The path breaks: both sides fail within the consent timeout, the lite one included.
    net.cut = true;
    let cut = net.t;
    assert!(net.run_until(Duration::from_secs(40), |n| {
        n.agents
            .iter()
            .all(|a| a.state() == ConnectionState::Failed)
    }));
    assert!(net.t - cut <= Duration::from_secs(30));
}

#[test]
fn several_streams_and_components() {
    let t = Instant::now();
    let mut net = Net::new(
        vec![
            agent(Role::Controlling, false, 3),
            agent(Role::Controlled, false, 4),
        ],
        t,
    );
    // Stream 0: audio with rtcp-mux (one component); stream 1: video with RTP and RTCP.
    let mut streams = Vec::new();
    for i in 0..2 {
        let a = net.agents[i].add_stream(1);
        let b = net.agents[i].add_stream(2);
        streams = vec![a, b];
        let ip = ["192.0.2.1", "192.0.2.2"][i];
        net.socket(i, a, 1, &format!("{ip}:5000"));
        net.socket(i, b, 1, &format!("{ip}:5002"));
        net.socket(i, b, 2, &format!("{ip}:5003"));
    }
    net.signal(&streams, [false, false]);
    assert!(net.run_until(Duration::from_secs(2), |n| n.connected(0) && n.connected(1)));
    for i in 0..2 {
        for (s, c) in [(streams[0], 1), (streams[1], 1), (streams[1], 2)] {
            assert!(net.selected.contains(&(i, s, c)), "agent {i} {s:?}/{c}");
            let (l, r) = net.agents[i].selected_pair(s, c).unwrap();
            assert_eq!((l.component, r.component), (c, c));
        }
    }
    // RTCP of the video stream arrives as such.
    let mut out = [0u8; 64];
    let tx = net.agents[0]
        .send(net.t, streams[1], 2, b"rtcp", &mut out)
        .unwrap();
    assert_eq!(tx.remote.port(), 5003);
    let got = net.agents[1]
        .handle_receive(net.t, Receive::udp(tx.remote, tx.local, tx.data))
        .unwrap();
    assert_eq!(
        (got.stream, got.component, got.data),
        (streams[1], 2, &b"rtcp"[..])
    );
    // Unknown stream or component.
    assert_eq!(
        net.agents[0].send(net.t, StreamId(9), 1, b"x", &mut out),
        Err(SendError::UnknownComponent)
    );
    assert_eq!(
        net.agents[0].send(net.t, streams[0], 2, b"x", &mut out),
        Err(SendError::UnknownComponent)
    );
}

#[test]
fn without_end_of_candidates_checking_fails_after_the_trickle_wait() {
    let t = Instant::now();
    let mut c = AgentConfig::new(Role::Controlling);
    c.seed = Some(5);
    // Longer than `check_timeout` (10 s), so the failure can only come from this wait.
    c.trickle_wait = Duration::from_secs(15);
    let mut a = Agent::new(c);
    let s = a.add_stream(1);
    let socket = LocalSocket {
        stream: s,
        component: 1,
        addr: "192.0.2.1:5000".parse().unwrap(),
    };
    a.add_local_sockets(t, &[socket]).unwrap();
    a.set_remote_credentials(
        t,
        Credentials {
            ufrag: "peer".into(),
            pwd: "peerpasswordpeerpassword".into(),
        },
        false,
    );
    // A candidate nobody answers at, and never end-of-candidates.
    a.add_remote_candidate_line(t, s, "candidate:1 1 UDP 2130706431 192.0.2.99 9 typ host")
        .unwrap();
    let mut net = Net::new(vec![a], t);
    assert!(net.run_until(Duration::from_secs(30), |n| {
        n.agents[0].state() == ConnectionState::Failed
    }));
    // The pair failed after `check_timeout` (10 s); the agent still waited for candidates
    // until 15 s after the last one.
    assert_eq!(net.t - t, Duration::from_secs(15));
}

#[test]
fn checking_then_connected_then_completed() {
    let t = Instant::now();
    let mut net = Net::new(
        vec![
            agent(Role::Controlling, false, 5),
            agent(Role::Controlled, false, 6),
        ],
        t,
    );
    let s = [net.agents[0].add_stream(1), net.agents[1].add_stream(1)];
    net.socket(0, s[0], 1, "192.0.2.1:5000");
    net.socket(1, s[1], 1, "192.0.2.2:6000");
    net.signal(&[s[0]], [false, false]);
    let completed = |n: &Net| {
        n.agents
            .iter()
            .all(|a| a.state() == ConnectionState::Completed)
    };
    assert!(net.run_until(Duration::from_secs(2), completed));
    use ConnectionState::*;
    for i in 0..2 {
        assert_eq!(net.states[i], [Checking, Connected, Completed], "agent {i}");
    }
    net.agents[0].close(net.t);
    net.deliver();
    assert_eq!(net.states[0].last(), Some(&Closed));
}

#[test]
fn a_role_conflict_between_two_agents_is_resolved_and_they_connect() {
    for (seed, roles) in [
        (7, [Role::Controlling, Role::Controlling]),
        (9, [Role::Controlled, Role::Controlled]),
    ] {
        let t = Instant::now();
        let mut net = Net::new(
            vec![
                agent(roles[0], false, seed),
                agent(roles[1], false, seed + 1),
            ],
            t,
        );
        let s = [net.agents[0].add_stream(1), net.agents[1].add_stream(1)];
        net.socket(0, s[0], 1, "192.0.2.1:5000");
        net.socket(1, s[1], 1, "192.0.2.2:6000");
        net.signal(&[s[0]], [false, false]);
        assert!(
            net.run_until(Duration::from_secs(2), |n| n.connected(0) && n.connected(1)),
            "{roles:?}"
        );
        // RFC 8445 §7.3.1.1: exactly one side ends up controlling, and they agree on the pair.
        assert_ne!(net.agents[0].role(), net.agents[1].role(), "{roles:?}");
        let total: u64 = net.agents.iter().map(|a| a.stats().role_conflicts).sum();
        assert!(total >= 1, "{roles:?}: no conflict was seen");
        let (l0, r0) = net.agents[0].selected_pair(s[0], 1).unwrap();
        let (l1, r1) = net.agents[1].selected_pair(s[1], 1).unwrap();
        assert_eq!((l0.addr, r0.addr), (r1.addr, l1.addr));
    }
}

/// RFC 8445 §12.2: once the controlled agent has answered the peer's check on a pair, data
/// the peer sends on it is accepted, though the controlled agent's own check of the pair has
/// not succeeded (here: every check it sends is lost). In practice: a browser nominating
/// through a relay sends its first DTLS flight at once.
#[test]
fn data_on_a_pair_whose_check_we_answered_is_accepted_before_our_own_check_succeeds() {
    let t = Instant::now();
    let mut net = Net::new(
        vec![
            agent(Role::Controlling, false, 11),
            agent(Role::Controlled, false, 12),
        ],
        t,
    );
    let s = [net.agents[0].add_stream(1), net.agents[1].add_stream(1)];
    net.socket(0, s[0], 1, "192.0.2.1:5000");
    net.socket(1, s[1], 1, "192.0.2.2:6000");
    net.mute_checks_of = Some(1);
    net.signal(&[s[0]], [false, false]);
    assert!(net.run_until(Duration::from_secs(2), |n| n.connected(0)));
    assert!(!net.connected(1), "B's own checks never got through");
    let mut out = [0u8; 64];
    let tx = net.agents[0]
        .send(net.t, s[0], 1, b"first flight", &mut out)
        .unwrap();
    let got = net.agents[1].handle_receive(net.t, Receive::udp(tx.remote, tx.local, tx.data));
    assert_eq!(got.map(|r| r.data), Some(&b"first flight"[..]));
    assert_eq!(net.agents[1].stats().dropped_unvalidated, 0);
    // From an address no check came from, it is still dropped.
    let stranger = Receive::udp(tx.remote, "192.0.2.9:7000".parse().unwrap(), tx.data);
    assert!(net.agents[1].handle_receive(net.t, stranger).is_none());
    assert_eq!(net.agents[1].stats().dropped_unvalidated, 1);
}
