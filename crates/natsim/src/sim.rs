//! The simulator: virtual clock, event queue, routing, hosts and NAT boxes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::endpoint::{Endpoint, Input, Output};
use crate::link::{Link, LinkConfig, LinkStats};
use crate::nat::{MappingInfo, Nat, NatStats, Verdict};
use crate::packet::{Packet, Payload, Protocol, TcpSegment};
use crate::prefix::Prefix;
use crate::topology::NodeId;
use sans_io::ConnectionId;

/// Hops a packet may take before it is dropped.
const TTL: u8 = 32;
/// How long an unanswered TCP connection attempt waits before it is reported closed.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub(crate) struct Network {
    pub(crate) name: String,
    pub(crate) prefixes: Vec<Prefix>,
    /// Which node interface owns each address.
    pub(crate) members: HashMap<IpAddr, (usize, usize)>,
    /// The NAT whose inside interface is on this network: the way out.
    pub(crate) gateway: Option<(usize, usize)>,
}

#[derive(Debug)]
pub(crate) struct Iface {
    pub(crate) network: usize,
    pub(crate) addrs: Vec<IpAddr>,
    pub(crate) link: Link,
}

impl Iface {
    pub(crate) fn new(network: usize, addrs: Vec<IpAddr>) -> Iface {
        Iface {
            network,
            addrs,
            link: Link::new(LinkConfig::default()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpState {
    SynSent,
    Established,
}

#[derive(Debug)]
struct TcpConn {
    local: SocketAddr,
    remote: SocketAddr,
    state: TcpState,
}

#[derive(Default)]
pub(crate) struct HostState {
    endpoint: Option<Box<dyn Endpoint>>,
    timer: Option<u64>,
    listening: HashSet<u16>,
    conns: HashMap<ConnectionId, TcpConn>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), ConnectionId>,
    next_accepted: u64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("endpoint", &self.endpoint.is_some())
            .field("timer", &self.timer)
            .field("connections", &self.conns.len())
            .finish()
    }
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Host(HostState),
    Nat(Box<Nat>),
}

impl NodeKind {
    pub(crate) fn host() -> NodeKind {
        NodeKind::Host(HostState::default())
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) ifaces: Vec<Iface>,
    pub(crate) kind: NodeKind,
}

impl Node {
    pub(crate) fn new(name: String, ifaces: Vec<Iface>, kind: NodeKind) -> Node {
        Node { name, ifaces, kind }
    }
}

#[derive(Debug)]
enum Event {
    Arrive {
        node: usize,
        iface: usize,
        packet: Packet,
    },
    Timer {
        node: usize,
    },
    ConnectTimeout {
        node: usize,
        conn: ConnectionId,
        tuple: (SocketAddr, SocketAddr),
    },
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Simulator-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Packets handed to a host (to its endpoint or its TCP layer).
    pub delivered: u64,
    /// Packets to an address no network knows.
    pub no_route: u64,
    /// Packets dropped when their hop limit ran out.
    pub ttl_exceeded: u64,
    /// Packets an endpoint sent from an address its host does not have.
    pub bad_source: u64,
    /// Datagrams that reached a host with no endpoint.
    pub no_endpoint: u64,
    /// Events processed.
    pub events: u64,
}

/// One line of the optional packet trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceEntry {
    /// Virtual time since the start.
    pub at: Duration,
    /// The node the packet arrived at.
    pub node: String,
    /// Source as it arrived.
    pub src: SocketAddr,
    /// Destination as it arrived.
    pub dst: SocketAddr,
    /// Protocol.
    pub protocol: Protocol,
    /// Size on the wire.
    pub len: usize,
}

impl std::fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>12.6}s {:<12} {:?} {} -> {} ({} bytes)",
            self.at.as_secs_f64(),
            self.node,
            self.protocol,
            self.src,
            self.dst,
            self.len
        )
    }
}

/// A virtual-time simulation of a [`Topology`](crate::Topology).
///
/// Virtual time starts at zero; the `Instant`s handed to endpoints are one origin `Instant`
/// taken when the simulator is built plus the virtual time, so endpoints written for real
/// clocks run unchanged. Nothing reads the wall clock after that.
pub struct Sim {
    origin: Instant,
    now: u64,
    networks: Vec<Network>,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    rng: StdRng,
    stats: SimStats,
    started: bool,
    trace: Option<Vec<TraceEntry>>,
    trace_hash: DefaultHasher,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.elapsed())
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// The simulation reached its deadline before the condition held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("condition not met within {deadline:?} of virtual time ({events} events)")]
pub struct Timeout {
    /// The virtual deadline.
    pub deadline: Duration,
    /// Events processed in the run.
    pub events: u64,
}

impl Sim {
    pub(crate) fn new(networks: Vec<Network>, nodes: Vec<Node>, seed: u64) -> Sim {
        Sim {
            origin: Instant::now(),
            now: 0,
            networks,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            stats: SimStats::default(),
            started: false,
            trace: None,
            trace_hash: DefaultHasher::new(),
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The current virtual time as the `Instant` endpoints see.
    pub fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }

    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Installs the endpoint a host runs. Panics if `host` is a NAT box (a programming error
    /// in the test, not an input).
    pub fn set_endpoint(&mut self, host: NodeId, endpoint: impl Endpoint) {
        match &mut self.nodes[host.0].kind {
            NodeKind::Host(h) => h.endpoint = Some(Box::new(endpoint)),
            NodeKind::Nat(_) => panic!("{} is a NAT box, not a host", self.nodes[host.0].name),
        }
        if self.started {
            self.start_endpoint(host.0);
        }
    }

    /// The endpoint of `host`, if it is a `T`.
    pub fn endpoint<T: Endpoint>(&self, host: NodeId) -> Option<&T> {
        match &self.nodes.get(host.0)?.kind {
            NodeKind::Host(h) => {
                let ep: &dyn std::any::Any = h.endpoint.as_deref()?;
                ep.downcast_ref()
            }
            NodeKind::Nat(_) => None,
        }
    }

    /// The endpoint of `host`, mutably, if it is a `T`. Call [`Sim::wake`] after changing it
    /// so its new output and timer are taken into account.
    pub fn endpoint_mut<T: Endpoint>(&mut self, host: NodeId) -> Option<&mut T> {
        match &mut self.nodes.get_mut(host.0)?.kind {
            NodeKind::Host(h) => {
                let ep: &mut dyn std::any::Any = h.endpoint.as_deref_mut()?;
                ep.downcast_mut()
            }
            NodeKind::Nat(_) => None,
        }
    }

    /// Drains `host`'s endpoint output and re-arms its timer (after [`Sim::endpoint_mut`]).
    pub fn wake(&mut self, host: NodeId) {
        self.drain(host.0);
    }

    /// Turns the per-packet trace on (it is off by default; the trace hash is always kept).
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The packet trace, if enabled.
    pub fn trace(&self) -> &[TraceEntry] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// A hash of every packet arrival so far (time, node, addresses, protocol, bytes): equal
    /// for equal runs.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash.finish()
    }

    /// Simulator-wide counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// A node's name.
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    /// The counters of `node`'s egress link on its `iface`-th interface (in the order the
    /// topology gave addresses; a NAT's inside is 0, its outside 1).
    pub fn link_stats(&self, node: NodeId, iface: usize) -> Option<LinkStats> {
        Some(self.nodes.get(node.0)?.ifaces.get(iface)?.link.stats)
    }

    /// Changes a link while the simulation runs (e.g. to cut a path).
    pub fn set_link(&mut self, node: NodeId, iface: usize, config: LinkConfig) {
        if let Some(i) = self
            .nodes
            .get_mut(node.0)
            .and_then(|n| n.ifaces.get_mut(iface))
        {
            i.link.config = config;
        }
    }

    fn nat(&self, node: NodeId) -> Option<&Nat> {
        match &self.nodes.get(node.0)?.kind {
            NodeKind::Nat(n) => Some(n),
            NodeKind::Host(_) => None,
        }
    }

    /// A NAT box's counters.
    pub fn nat_stats(&self, nat: NodeId) -> Option<NatStats> {
        self.nat(nat).map(|n| n.stats)
    }

    /// A NAT box's live mappings.
    pub fn nat_table(&self, nat: NodeId) -> Vec<MappingInfo> {
        self.nat(nat).map(|n| n.table(self.now)).unwrap_or_default()
    }

    /// Drops every mapping of a NAT box at once, as when it reboots or its mappings all
    /// expire: flows start over with new mappings (on a new port unless the box preserves
    /// ports; sequential port selection goes on from where it was). Returns how many
    /// mappings there were.
    pub fn flush_nat(&mut self, nat: NodeId) -> usize {
        match self.nodes.get_mut(nat.0).map(|n| &mut n.kind) {
            Some(NodeKind::Nat(n)) => n.flush(),
            _ => 0,
        }
    }

    /// A readable dump of a NAT box's table.
    pub fn nat_dump(&self, nat: NodeId) -> String {
        self.nat(nat).map(|n| n.dump(self.now)).unwrap_or_default()
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn start_endpoint(&mut self, node: usize) {
        let now = self.now();
        if let NodeKind::Host(h) = &mut self.nodes[node].kind {
            if let Some(ep) = h.endpoint.as_mut() {
                ep.start(now);
            }
        }
        self.drain(node);
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            for node in 0..self.nodes.len() {
                self.start_endpoint(node);
            }
        }
    }

    /// Runs until `done` holds (checked after every event) or `deadline` of virtual time has
    /// passed since the start; returns the virtual time at which `done` held.
    pub fn run_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<Duration, Timeout> {
        self.start();
        let end = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
        let first = self.stats.events;
        loop {
            if done(self) {
                return Ok(self.elapsed());
            }
            match self.queue.peek() {
                Some(Reverse(s)) if s.at <= end => {
                    let Reverse(s) = self.queue.pop().expect("peeked");
                    self.now = self.now.max(s.at);
                    self.stats.events += 1;
                    self.process(s.event);
                }
                _ => {
                    self.now = self.now.max(end);
                    return if done(self) {
                        Ok(self.elapsed())
                    } else {
                        Err(Timeout {
                            deadline,
                            events: self.stats.events - first,
                        })
                    };
                }
            }
        }
    }

    /// Runs for `d` more of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.elapsed() + d;
        let _ = self.run_until(deadline, |_| false);
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Arrive {
                node,
                iface,
                packet,
            } => self.arrive(node, iface, packet),
            Event::Timer { node } => {
                let now_i = self.now();
                let now = self.now;
                if let NodeKind::Host(h) = &mut self.nodes[node].kind {
                    if h.timer.is_some_and(|t| t <= now) {
                        h.timer = None;
                        if let Some(ep) = h.endpoint.as_mut() {
                            ep.handle_timeout(now_i);
                        }
                        self.drain(node);
                    }
                }
            }
            Event::ConnectTimeout { node, conn, tuple } => {
                let expired = match &mut self.nodes[node].kind {
                    NodeKind::Host(h) => match h.conns.get(&conn) {
                        Some(c) if c.state == TcpState::SynSent && (c.local, c.remote) == tuple => {
                            let c = h.conns.remove(&conn).expect("present");
                            h.by_tuple.remove(&(c.local, c.remote));
                            true
                        }
                        _ => false,
                    },
                    NodeKind::Nat(_) => false,
                };
                if expired {
                    self.input(node, Input::TcpClosed { conn, reset: false });
                }
            }
        }
    }

    fn record(&mut self, node: usize, p: &Packet) {
        (self.now, node, p.src, p.dst, &p.payload).hash(&mut self.trace_hash);
        if let Some(trace) = self.trace.as_mut() {
            trace.push(TraceEntry {
                at: Duration::from_nanos(self.now),
                node: self.nodes[node].name.clone(),
                src: p.src,
                dst: p.dst,
                protocol: p.protocol(),
                len: p.wire_len(),
            });
        }
    }

    fn arrive(&mut self, node: usize, iface: usize, packet: Packet) {
        self.record(node, &packet);
        let now = self.now;
        if let NodeKind::Nat(nat) = &mut self.nodes[node].kind {
            if packet.ttl == 0 {
                self.stats.ttl_exceeded += 1;
                return;
            }
            let mut packet = packet;
            packet.ttl -= 1;
            let verdict = if iface == 0 {
                nat.outbound(packet, now, &mut self.rng)
            } else {
                nat.inbound(packet, now)
            };
            match verdict {
                Verdict::Out(p) => self.transmit(node, 1, p),
                Verdict::In(p) => self.transmit(node, 0, p),
                Verdict::Drop => {}
            }
            return;
        }
        self.stats.delivered += 1;
        match packet.payload {
            Payload::Udp(data) => {
                let has_endpoint =
                    matches!(&self.nodes[node].kind, NodeKind::Host(h) if h.endpoint.is_some());
                if !has_endpoint {
                    self.stats.no_endpoint += 1;
                    return;
                }
                self.input(
                    node,
                    Input::Udp {
                        local: packet.dst,
                        remote: packet.src,
                        data: &data,
                    },
                );
            }
            Payload::Tcp(seg) => self.tcp_arrive(node, packet.dst, packet.src, seg),
        }
    }

    fn host(&mut self, node: usize) -> Option<&mut HostState> {
        match &mut self.nodes[node].kind {
            NodeKind::Host(h) => Some(h),
            NodeKind::Nat(_) => None,
        }
    }

    fn tcp_arrive(&mut self, node: usize, local: SocketAddr, remote: SocketAddr, seg: TcpSegment) {
        let Some(h) = self.host(node) else { return };
        let conn = h.by_tuple.get(&(local, remote)).copied();
        match (seg, conn) {
            (TcpSegment::Syn, None) => {
                if h.listening.contains(&local.port()) {
                    h.next_accepted += 1;
                    let conn = ConnectionId(1 << 63 | h.next_accepted);
                    h.conns.insert(
                        conn,
                        TcpConn {
                            local,
                            remote,
                            state: TcpState::Established,
                        },
                    );
                    h.by_tuple.insert((local, remote), conn);
                    self.send_tcp(node, local, remote, TcpSegment::SynAck);
                    self.input(
                        node,
                        Input::TcpAccepted {
                            conn,
                            local,
                            remote,
                        },
                    );
                } else {
                    self.send_tcp(node, local, remote, TcpSegment::Rst);
                }
            }
            // Simultaneous open (crossing SYNs, as TCP hole punching makes): both sides
            // answer the other's SYN and consider the connection established.
            (TcpSegment::Syn, Some(conn)) => {
                if h.conns
                    .get(&conn)
                    .is_some_and(|c| c.state == TcpState::SynSent)
                {
                    h.conns.get_mut(&conn).expect("present").state = TcpState::Established;
                    self.send_tcp(node, local, remote, TcpSegment::SynAck);
                    self.input(node, Input::TcpConnected { conn, local });
                }
            }
            (TcpSegment::SynAck, Some(conn)) => {
                if let Some(c) = h.conns.get_mut(&conn) {
                    if c.state == TcpState::SynSent {
                        c.state = TcpState::Established;
                        self.input(node, Input::TcpConnected { conn, local });
                    }
                    // Already established (the other half of a simultaneous open): nothing.
                }
            }
            (TcpSegment::Data(data), Some(conn)) => {
                self.input(node, Input::TcpData { conn, data: &data });
            }
            (seg @ (TcpSegment::Fin | TcpSegment::Rst), Some(conn)) => {
                h.conns.remove(&conn);
                h.by_tuple.remove(&(local, remote));
                let reset = seg == TcpSegment::Rst;
                self.input(node, Input::TcpClosed { conn, reset });
            }
            (TcpSegment::Rst, None) => {}
            // Anything else for a connection we do not know: reset it.
            (_, _) => self.send_tcp(node, local, remote, TcpSegment::Rst),
        }
    }

    fn input(&mut self, node: usize, input: Input<'_>) {
        let now = self.now();
        if let Some(h) = self.host(node) {
            if let Some(ep) = h.endpoint.as_mut() {
                ep.handle_input(now, input);
            }
        }
        self.drain(node);
    }

    /// Takes every output of `node`'s endpoint and re-arms its timer.
    fn drain(&mut self, node: usize) {
        loop {
            let out = match self.host(node) {
                Some(h) => match h.endpoint.as_mut() {
                    Some(ep) => ep.poll_output(),
                    None => None,
                },
                None => None,
            };
            let Some(out) = out else { break };
            self.output(node, out);
        }
        let next = self
            .host(node)
            .and_then(|h| h.endpoint.as_ref())
            .and_then(|ep| ep.poll_timeout());
        if let Some(t) = next {
            let at = self.ns(t).max(self.now);
            let h = self.host(node).expect("has an endpoint");
            if h.timer != Some(at) {
                h.timer = Some(at);
                self.schedule(at, Event::Timer { node });
            }
        } else if let Some(h) = self.host(node) {
            h.timer = None;
        }
    }

    fn output(&mut self, node: usize, out: Output) {
        match out {
            Output::Udp {
                local,
                remote,
                data,
            } => self.send(node, local, remote, Payload::Udp(data)),
            Output::TcpListen { port } => {
                if let Some(h) = self.host(node) {
                    h.listening.insert(port);
                }
            }
            Output::TcpConnect {
                conn,
                local,
                remote,
            } => {
                let Some(h) = self.host(node) else { return };
                let old = h.conns.insert(
                    conn,
                    TcpConn {
                        local,
                        remote,
                        state: TcpState::SynSent,
                    },
                );
                if let Some(old) = old {
                    h.by_tuple.remove(&(old.local, old.remote));
                }
                h.by_tuple.insert((local, remote), conn);
                let at = self.now + TCP_CONNECT_TIMEOUT.as_nanos() as u64;
                let tuple = (local, remote);
                self.schedule(at, Event::ConnectTimeout { node, conn, tuple });
                self.send_tcp(node, local, remote, TcpSegment::Syn);
            }
            Output::TcpSend { conn, data } => {
                let tuple = self
                    .host(node)
                    .and_then(|h| h.conns.get(&conn))
                    .filter(|c| c.state == TcpState::Established)
                    .map(|c| (c.local, c.remote));
                if let Some((local, remote)) = tuple {
                    self.send_tcp(node, local, remote, TcpSegment::Data(data));
                }
            }
            Output::TcpClose { conn } => {
                let Some(h) = self.host(node) else { return };
                if let Some(c) = h.conns.remove(&conn) {
                    h.by_tuple.remove(&(c.local, c.remote));
                    self.send_tcp(node, c.local, c.remote, TcpSegment::Fin);
                }
            }
        }
    }

    fn send_tcp(&mut self, node: usize, local: SocketAddr, remote: SocketAddr, seg: TcpSegment) {
        self.send(node, local, remote, Payload::Tcp(seg));
    }

    /// Sends a packet from a host, out of the interface that owns `local`.
    fn send(&mut self, node: usize, local: SocketAddr, remote: SocketAddr, payload: Payload) {
        let Some(iface) = self.nodes[node]
            .ifaces
            .iter()
            .position(|i| i.addrs.contains(&local.ip()))
        else {
            self.stats.bad_source += 1;
            return;
        };
        let packet = Packet {
            src: local,
            dst: remote,
            payload,
            ttl: TTL,
        };
        self.transmit(node, iface, packet);
    }

    /// Puts a packet on `node`'s interface `iface`: through its link, to the node that owns
    /// the destination on that network, or to the network's gateway.
    fn transmit(&mut self, node: usize, iface: usize, packet: Packet) {
        let network = &self.networks[self.nodes[node].ifaces[iface].network];
        let dst = packet.dst.ip();
        let target = match network.members.get(&dst) {
            Some(&t) => Some(t),
            // An unassigned address of this network's own prefixes has no owner here, and a
            // router never sends it out (nor gives it a NAT mapping).
            None if network.prefixes.iter().any(|p| p.contains(dst)) => None,
            None => network.gateway.filter(|&(g, _)| g != node),
        };
        let Some((to_node, to_iface)) = target else {
            self.stats.no_route += 1;
            return;
        };
        let reliable = packet.protocol() == Protocol::Tcp;
        let (arrivals, n) = self.nodes[node].ifaces[iface].link.transmit(
            self.now,
            packet.wire_len(),
            reliable,
            &mut self.rng,
        );
        if n == 2 {
            self.schedule(
                arrivals[1],
                Event::Arrive {
                    node: to_node,
                    iface: to_iface,
                    packet: packet.clone(),
                },
            );
        }
        if n >= 1 {
            self.schedule(
                arrivals[0],
                Event::Arrive {
                    node: to_node,
                    iface: to_iface,
                    packet,
                },
            );
        }
    }

    /// The addresses of a node's interfaces, in order.
    pub fn addresses(&self, node: NodeId) -> Vec<IpAddr> {
        self.nodes[node.0]
            .ifaces
            .iter()
            .flat_map(|i| i.addrs.iter().copied())
            .collect()
    }
}
