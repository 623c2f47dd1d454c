//! The NAT matrix: two ICE agents, each behind one kind of NAT, a STUN/TURN server running
//! the real turn-server core on the public network, signalling with a fixed delay, all in
//! natsim virtual time.
//!
//! ```text
//!  agent A ── [NAT A] ──┐                      ┌── [NAT B] ── agent B
//!   10.0.1.10           │     internet         │            10.0.2.10
//!                  203.0.113.1 ── server ── 203.0.113.2
//!                           198.51.100.1:3478 (STUN, TURN over UDP and TCP)
//! ```
//!
//! Every interface's link has 10 ms one-way latency, so a hop through one NAT to the server
//! is 20 ms and agent to agent through two NATs is 30 ms.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::{AgentConfig, CandidateKind, Role, Transport, TurnServerConfig};
use natsim::{
    FilteringBehavior, LinkConfig, MappingBehavior, NatConfig, NodeId, PortSelection, Preset, Sim,
    Topology,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::peer_policy::PeerPolicy;
use turn_server::stun::StunServerConfig;
use turn_server::turn::{TurnConfig, TurnServer};

use crate::ice::{AgentEndpoint, Mailbox};
use crate::TurnServerEndpoint;

/// What an agent sits behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behind {
    /// A public address, no NAT.
    NoNat,
    /// Full cone: endpoint-independent mapping and filtering.
    FullCone,
    /// Restricted cone: EIM, address-dependent filtering.
    Restricted,
    /// Port-restricted cone: EIM, address-and-port-dependent filtering.
    PortRestricted,
    /// Symmetric: address-and-port-dependent mapping and filtering.
    Symmetric,
    /// Linux `MASQUERADE`.
    Masquerade,
    /// A port-restricted cone NAT behind a carrier-grade EIM/EIF NAT.
    DoubleNat,
    /// A firewall that drops all UDP: only TCP to the TURN server gets out.
    UdpBlocked,
}

impl Behind {
    /// Every kind, in the matrix's order.
    pub const ALL: [Behind; 8] = [
        Behind::NoNat,
        Behind::FullCone,
        Behind::Restricted,
        Behind::PortRestricted,
        Behind::Symmetric,
        Behind::Masquerade,
        Behind::DoubleNat,
        Behind::UdpBlocked,
    ];

    /// A short name for tables.
    pub const fn name(self) -> &'static str {
        match self {
            Behind::NoNat => "none",
            Behind::FullCone => "full cone",
            Behind::Restricted => "restricted",
            Behind::PortRestricted => "port-restr.",
            Behind::Symmetric => "symmetric",
            Behind::Masquerade => "masquerade",
            Behind::DoubleNat => "double NAT",
            Behind::UdpBlocked => "UDP blocked",
        }
    }
}

impl fmt::Display for Behind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Network conditions of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditions {
    /// 10 ms one-way on every link, nothing lost.
    Clean,
    /// 10 ms plus up to 30 ms jitter, 5 % loss, 2 % duplication, 2 % reordering.
    Harsh,
}

impl Conditions {
    /// The link configuration.
    pub fn link(self) -> LinkConfig {
        let clean = LinkConfig::with_latency(Duration::from_millis(10));
        match self {
            Conditions::Clean => clean,
            Conditions::Harsh => LinkConfig {
                jitter: Duration::from_millis(30),
                loss: 0.05,
                duplicate: 0.02,
                reorder: 0.02,
                reorder_delay: Duration::from_millis(20),
                ..clean
            },
        }
    }
}

/// The server's address (STUN and TURN, UDP and TCP).
pub const SERVER: &str = "198.51.100.1:3478";
/// The TURN user and password every agent uses.
pub const TURN_USER: (&str, &str) = ("alice", "secret");
/// The signalling delay, one way.
pub const SIGNALLING_DELAY: Duration = Duration::from_millis(50);

/// A built cell: the simulator and its nodes.
pub struct Cell {
    /// The simulator.
    pub sim: Sim,
    /// The two agents' hosts.
    pub agents: [NodeId; 2],
    /// The NAT boxes in front of each agent (outermost last), empty without NAT.
    pub nats: [Vec<NodeId>; 2],
    /// The server host.
    pub server: NodeId,
    /// The signalling channel.
    pub mailbox: Mailbox,
}

/// The agent configuration every cell uses: the server for STUN, TURN over UDP and TURN
/// over TCP; defaults otherwise.
pub fn agent_config(seed: u64) -> AgentConfig {
    let server: SocketAddr = SERVER.parse().expect("valid");
    let mut c = AgentConfig::new(Role::Controlling);
    c.stun_servers = vec![server];
    c.turn_servers = [Transport::Udp, Transport::Tcp]
        .into_iter()
        .map(|transport| TurnServerConfig {
            addr: server,
            transport,
            tls_name: None,
            username: TURN_USER.0.into(),
            password: TURN_USER.1.into(),
        })
        .collect();
    c.seed = Some(seed);
    c
}

/// The TURN/STUN server core as the matrix runs it.
pub fn turn_server(now: Instant) -> TurnServerEndpoint {
    let mut users = Users::default();
    users
        .add(TURN_USER.0, "natsim", TURN_USER.1)
        .expect("valid user");
    // natsim's public addresses are documentation ranges, which the secure default denies.
    let policy = PeerPolicy {
        allowed: vec![
            "198.51.100.0/24".parse().expect("valid"),
            "203.0.113.0/24".parse().expect("valid"),
        ],
        ..PeerPolicy::default()
    };
    let core = TurnServer::new(
        TurnConfig {
            realm: "natsim".into(),
            peer_policy: policy,
            ..TurnConfig::default()
        },
        StunServerConfig::new(SERVER.parse().expect("valid")),
        users,
        RestSecrets::default(),
        [7; 32],
        now,
        1_700_000_000,
    );
    TurnServerEndpoint::new(
        core,
        SERVER.parse().expect("valid"),
        "198.51.100.1".parse().expect("valid"),
    )
}

/// The carrier-grade NAT of the double-NAT cells: endpoint-independent mapping and
/// filtering (RFC 6888 REQ-1 and the RFC 4787 recommendation), random ports.
pub fn cgn_config() -> NatConfig {
    NatConfig {
        mapping: MappingBehavior::EndpointIndependent,
        filtering: FilteringBehavior::EndpointIndependent,
        preserve_port: false,
        port_selection: PortSelection::Random,
        ..NatConfig::preset(Preset::FullCone)
    }
}

/// Builds the topology of a cell and installs the server and both agents.
pub fn build(kinds: [Behind; 2], conditions: Conditions, seed: u64) -> Cell {
    build_with(kinds, conditions, seed, |_, _| {})
}

/// [`build`] with each side's agent configuration changed by `configure(side, config)`.
pub fn build_with(
    kinds: [Behind; 2],
    conditions: Conditions,
    seed: u64,
    configure: impl Fn(usize, &mut AgentConfig),
) -> Cell {
    let Network {
        mut sim,
        hosts: agents,
        nats,
        server,
        sockets,
    } = network(kinds, conditions, seed);
    let mailbox = Mailbox::new(SIGNALLING_DELAY);
    for side in 0..2 {
        let mut config = agent_config(seed * 2 + side as u64);
        configure(side, &mut config);
        let ep = AgentEndpoint::new(config, side, mailbox.clone(), vec![sockets[side]]);
        sim.set_endpoint(agents[side], ep);
    }
    Cell {
        sim,
        agents,
        nats,
        server,
        mailbox,
    }
}

/// A cell's network, before its two hosts have endpoints: the server runs the TURN core.
pub struct Network {
    /// The simulator.
    pub sim: Sim,
    /// The two peers' hosts.
    pub hosts: [NodeId; 2],
    /// The NAT boxes in front of each host (outermost last), empty without NAT.
    pub nats: [Vec<NodeId>; 2],
    /// The server host.
    pub server: NodeId,
    /// The UDP socket address of each host.
    pub sockets: [SocketAddr; 2],
}

/// Builds a cell's topology and installs the STUN/TURN server.
pub fn network(kinds: [Behind; 2], conditions: Conditions, seed: u64) -> Network {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let server = t.host("server", &[(internet, "198.51.100.1")]);
    let mut agents = Vec::new();
    let mut nats: [Vec<NodeId>; 2] = [Vec::new(), Vec::new()];
    let mut sockets = Vec::new();
    for (side, kind) in kinds.into_iter().enumerate() {
        let public = format!("203.0.113.{}", side + 1);
        let lan_prefix = format!("10.0.{}.0/24", side + 1);
        let lan_gw = format!("10.0.{}.1", side + 1);
        let host_ip = format!("10.0.{}.10", side + 1);
        let name = ["a", "b"][side];
        let preset = match kind {
            Behind::NoNat | Behind::DoubleNat => None,
            Behind::FullCone => Some(Preset::FullCone),
            Behind::Restricted => Some(Preset::RestrictedCone),
            Behind::PortRestricted => Some(Preset::PortRestrictedCone),
            Behind::Symmetric => Some(Preset::Symmetric),
            Behind::Masquerade => Some(Preset::LinuxMasquerade),
            Behind::UdpBlocked => Some(Preset::UdpBlocked),
        };
        let ip = match (kind, preset) {
            (Behind::NoNat, _) => {
                agents.push(t.host(&format!("agent-{name}"), &[(internet, public.as_str())]));
                public
            }
            (Behind::DoubleNat, _) => {
                let home = t.network(
                    &format!("home-{name}"),
                    &[&format!("192.168.{}.0/24", side + 1)],
                );
                let cgn_net = t.network(
                    &format!("cgn-{name}"),
                    &[&format!("100.64.{}.0/24", side + 1)],
                );
                let inner = t.nat(
                    &format!("home-nat-{name}"),
                    NatConfig::preset(Preset::PortRestrictedCone),
                    (home, &format!("192.168.{}.1", side + 1)),
                    (cgn_net, &[&format!("100.64.{}.2", side + 1)]),
                );
                let outer = t.nat(
                    &format!("cgn-{name}"),
                    cgn_config(),
                    (cgn_net, &format!("100.64.{}.1", side + 1)),
                    (internet, &[public.as_str()]),
                );
                nats[side] = vec![inner, outer];
                let ip = format!("192.168.{}.10", side + 1);
                agents.push(t.host(&format!("agent-{name}"), &[(home, ip.as_str())]));
                ip
            }
            (_, Some(p)) => {
                let lan = t.network(&format!("lan-{name}"), &[lan_prefix.as_str()]);
                let nat = t.nat(
                    &format!("nat-{name}"),
                    NatConfig::preset(p),
                    (lan, lan_gw.as_str()),
                    (internet, &[public.as_str()]),
                );
                nats[side] = vec![nat];
                agents.push(t.host(&format!("agent-{name}"), &[(lan, host_ip.as_str())]));
                host_ip
            }
            (_, None) => unreachable!("every other kind has a preset"),
        };
        sockets.push(SocketAddr::new(ip.parse().expect("valid"), 5000));
    }
    t.link_all(conditions.link());
    let mut sim = t.build(seed).expect("valid topology");
    sim.set_endpoint(server, turn_server(sim.now()));
    Network {
        sim,
        hosts: [agents[0], agents[1]],
        nats,
        server,
        sockets: [sockets[0], sockets[1]],
    }
}

impl Cell {
    /// An agent's endpoint.
    pub fn agent(&self, side: usize) -> &AgentEndpoint {
        self.sim
            .endpoint::<AgentEndpoint>(self.agents[side])
            .expect("an agent")
    }

    /// An agent's endpoint, mutably (call [`Sim::wake`] after changing it).
    pub fn agent_mut(&mut self, side: usize) -> &mut AgentEndpoint {
        self.sim
            .endpoint_mut::<AgentEndpoint>(self.agents[side])
            .expect("an agent")
    }

    /// Runs until `done` holds for the two agents or `limit` of virtual time since the
    /// start, waking the agents whenever signalling was posted. Returns whether `done` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&AgentEndpoint, &AgentEndpoint) -> bool,
    ) -> bool {
        loop {
            let mailbox = self.mailbox.clone();
            let agents = self.agents;
            let r = self.sim.run_until(limit, |sim| {
                mailbox.posted() || {
                    let a = sim.endpoint::<AgentEndpoint>(agents[0]).expect("agent");
                    let b = sim.endpoint::<AgentEndpoint>(agents[1]).expect("agent");
                    done(a, b)
                }
            });
            if self.mailbox.take_posted() {
                // The receiver's timer must now include the delivery time.
                self.sim.wake(self.agents[0]);
                self.sim.wake(self.agents[1]);
                continue;
            }
            return r.is_ok();
        }
    }
}

/// How long a cell runs on once connected, for a renomination to a better pair to happen:
/// well past the 500 ms check retransmission that finds it (docs/nat-matrix.md).
pub const SETTLE: Duration = Duration::from_secs(3);

/// What one run of a cell gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellResult {
    /// Behind what each side was.
    pub kinds: [Behind; 2],
    /// The selected pair as side A sees it (local, remote), if connected, [`SETTLE`] after
    /// connecting.
    pub pair: Option<(CandidateKind, CandidateKind)>,
    /// The first selected pair as side A saw it, when renomination replaced it.
    pub first_pair: Option<(CandidateKind, CandidateKind)>,
    /// From both sides having the peer's credentials to both sides connected.
    pub time_to_connected: Option<Duration>,
    /// From both sides having the peer's credentials to the last selection of either side,
    /// when a renomination replaced the first.
    pub time_to_final_pair: Option<Duration>,
    /// Both sides' final pairs are the same path seen from either end, and each side has
    /// received data since its last selection.
    pub agree: bool,
    /// Checks sent by each side.
    pub checks_sent: [u64; 2],
    /// Each side received the other's application data on the selected pair.
    pub data_exchanged: bool,
}

/// Runs a cell until both sides are connected and have exchanged data, for at most `limit`,
/// then [`SETTLE`] longer for a better pair to take over.
pub fn run_cell(
    kinds: [Behind; 2],
    conditions: Conditions,
    seed: u64,
    limit: Duration,
) -> CellResult {
    run_cell_with(kinds, conditions, seed, limit, |_, _| {})
}

/// [`run_cell`] with each side's agent configuration changed by `configure(side, config)`.
pub fn run_cell_with(
    kinds: [Behind; 2],
    conditions: Conditions,
    seed: u64,
    limit: Duration,
    configure: impl Fn(usize, &mut AgentConfig),
) -> CellResult {
    let mut cell = build_with(kinds, conditions, seed, configure);
    let ok = cell.run_until(limit, |a, b| {
        [a, b]
            .iter()
            .all(|x| x.is_connected() && !x.received.is_empty())
    });
    let checks_sent = [0, 1].map(|i| cell.agent(i).agent.stats().checks_sent);
    let first_pair = cell.agent(0).selected_kinds();
    if ok {
        let until = cell.sim.elapsed() + SETTLE;
        cell.run_until(until, |_, _| false);
    }
    let a = cell.agent(0);
    let b = cell.agent(1);
    let creds = a.remote_credentials_at.max(b.remote_credentials_at);
    let since = |t: Option<Instant>| t.zip(creds).map(|(t, k)| t.saturating_duration_since(k));
    let connected = match (a.connected_at, b.connected_at) {
        (Some(x), Some(y)) if ok => Some(x.max(y)),
        _ => None,
    };
    let switched = a.selections.len() > 1 || b.selections.len() > 1;
    let last = a.selections.last().max(b.selections.last()).copied();
    let same = match (&a.selected, &b.selected) {
        (Some((al, ar)), Some((bl, br))) => al.addr == br.addr && ar.addr == bl.addr,
        _ => false,
    };
    let flowing = [a, b]
        .iter()
        .all(|x| x.last_received > x.selections.last().copied());
    let agree = same && flowing;
    CellResult {
        kinds,
        pair: a.selected_kinds().filter(|_| ok),
        first_pair: first_pair.filter(|_| ok && switched),
        time_to_connected: since(connected),
        time_to_final_pair: since(last).filter(|_| ok && switched),
        agree: ok && agree,
        checks_sent,
        data_exchanged: ok,
    }
}
