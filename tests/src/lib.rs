//! Adapters that host the stack's real sans-IO cores on natsim, shared by the scenario tests.

#![deny(missing_docs)]

pub mod ice;
pub mod matrix;
pub mod scale;
pub mod session;

/// The examples of `docs/architecture.md`, compiled and run as doc tests here, where every
/// core of the stack is a dependency.
#[doc = include_str!("../../docs/architecture.md")]
pub mod architecture {}

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use natsim::{ConnectionId, Endpoint, Input, Output};
use sans_io::{Receive, Transmit};
use stun_client::discovery::{Discovery, NatDiscovery};
use stun_codec::StreamFramer;
use turn_server::stun::{StunServer, StunServerConfig};
use turn_server::turn::{self, FiveTuple, Relay, Request, Transport, TurnServer};

/// The STUN server core on a simulated host: every datagram to one of its addresses goes to
/// [`StunServer::handle_receive`], every reply goes out as the core says.
#[derive(Debug)]
pub struct StunServerEndpoint {
    core: StunServer,
    locals: Vec<SocketAddr>,
    out: VecDeque<Output>,
}

impl StunServerEndpoint {
    /// A server with the given configuration.
    pub fn new(config: StunServerConfig) -> StunServerEndpoint {
        let core = StunServer::new(config);
        StunServerEndpoint {
            locals: core.local_addresses(),
            core,
            out: VecDeque::new(),
        }
    }

    /// An RFC 5780 server on `primary` and `alternate`.
    pub fn rfc5780(primary: SocketAddr, alternate: SocketAddr) -> StunServerEndpoint {
        StunServerEndpoint::new(StunServerConfig::with_alternate(primary, alternate))
    }

    /// The core, to read its counters.
    pub fn core(&self) -> &StunServer {
        &self.core
    }
}

impl Endpoint for StunServerEndpoint {
    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        let Input::Udp {
            local,
            remote,
            data,
        } = input
        else {
            return;
        };
        // The core listens only on its own transport addresses, as its driver would bind them.
        if !self.locals.contains(&local) {
            return;
        }
        self.core
            .handle_receive(now, Receive::udp(local, remote, data));
        while let Some(o) = self.core.poll_output() {
            if let sans_io::Output::Transmit(t) = o {
                self.out.push_back(udp_output(t));
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// A UDP transmit of a core as the simulated host's datagram.
pub fn udp_output(t: Transmit) -> Output {
    Output::Udp {
        local: t.local,
        remote: t.remote,
        data: t.data,
    }
}

/// The RFC 5780 discovery client on a simulated host.
#[derive(Debug)]
pub struct DiscoveryEndpoint {
    core: NatDiscovery,
    timer: Option<Instant>,
    out: VecDeque<Output>,
    result: Option<Discovery>,
}

impl DiscoveryEndpoint {
    /// A client on `local` probing the RFC 5780 server whose primary address is `server`.
    pub fn new(local: SocketAddr, server: SocketAddr) -> DiscoveryEndpoint {
        DiscoveryEndpoint {
            core: NatDiscovery::new(local, server),
            timer: None,
            out: VecDeque::new(),
            result: None,
        }
    }

    /// What the probe found, once every test has run.
    pub fn result(&self) -> Option<&Discovery> {
        self.result.as_ref()
    }

    fn drain(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                sans_io::Output::Transmit(t) => self.out.push_back(udp_output(t)),
                sans_io::Output::Event(d) => self.result = Some(d),
                sans_io::Output::Timeout(t) => self.timer = t,
            }
        }
    }
}

impl Endpoint for DiscoveryEndpoint {
    fn start(&mut self, now: Instant) {
        self.core.start(now);
        self.drain();
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if let Input::Udp {
            local,
            remote,
            data,
        } = input
        {
            self.core
                .handle_receive(now, Receive::udp(local, remote, data));
            self.drain();
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.drain();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
}

/// The TURN core on a simulated host, over UDP and TCP: datagrams and framed stream messages
/// to the listening address go to [`TurnServer::handle_client`], datagrams to a relayed
/// address to [`TurnServer::handle_peer`]; relay sockets are granted from a port counter on
/// `relay_ip`, as a driver would bind them.
#[derive(Debug)]
pub struct TurnServerEndpoint {
    core: TurnServer,
    listen: SocketAddr,
    relay_ip: std::net::IpAddr,
    next_port: u16,
    relays: Vec<SocketAddr>,
    conns: HashMap<ConnectionId, (FiveTuple, StreamFramer)>,
    by_tuple: HashMap<FiveTuple, ConnectionId>,
    out: VecDeque<Output>,
    timer: Option<Instant>,
}

impl TurnServerEndpoint {
    /// A TURN endpoint listening on `listen`, relaying from `relay_ip`.
    pub fn new(
        core: TurnServer,
        listen: SocketAddr,
        relay_ip: std::net::IpAddr,
    ) -> TurnServerEndpoint {
        TurnServerEndpoint {
            core,
            listen,
            relay_ip,
            next_port: 49152,
            relays: Vec::new(),
            conns: HashMap::new(),
            by_tuple: HashMap::new(),
            out: VecDeque::new(),
            timer: None,
        }
    }

    fn send_to_client(&mut self, t: Transmit) {
        match t.transport {
            Transport::Udp => self.out.push_back(udp_output(t)),
            _ => {
                let ft = FiveTuple {
                    transport: t.transport,
                    client: t.remote,
                    server: t.local,
                };
                if let Some(&conn) = self.by_tuple.get(&ft) {
                    self.out.push_back(Output::TcpSend { conn, data: t.data });
                }
            }
        }
    }

    fn client_message(&mut self, now: Instant, five_tuple: FiveTuple, data: &[u8]) {
        if let Some(t) = self.core.handle_client(now, five_tuple, data) {
            self.out.push_back(udp_output(t.to_owned()));
        }
    }

    /// The core, to read its counters.
    pub fn core(&self) -> &TurnServer {
        &self.core
    }

    fn drain(&mut self, now: Instant) {
        while let Some(o) = self.core.poll_output() {
            match o {
                turn::Output::Transmit(t) => self.send_to_client(t),
                turn::Output::Request(Request::AllocateRelay(req)) => {
                    let addr = SocketAddr::new(self.relay_ip, self.next_port);
                    self.next_port += 2;
                    self.relays.push(addr);
                    let relay = Relay {
                        addr,
                        reservation_token: None,
                    };
                    self.core.relay_allocated(now, req.id, Ok(relay));
                }
                turn::Output::Request(Request::ReleaseRelay { relay }) => {
                    self.relays.retain(|r| *r != relay)
                }
                // No user database here (TurnConfig::user_db is off): answer as one that is
                // down, should it ever be asked.
                turn::Output::Request(Request::LookupUser { id, .. }) => {
                    self.core
                        .user_looked_up(now, id, turn_server::turn::UserLookup::Unavailable)
                }
                // No fleet either (TurnConfig::fleet_quota is off).
                turn::Output::Request(Request::ReserveQuota { id, .. }) => self
                    .core
                    .quota_reserved(now, id, turn_server::turn::QuotaAnswer::Unavailable),
                turn::Output::Request(Request::ReleaseQuota { .. }) => {}
                // No TCP relaying in the virtual network: a Connect fails (447).
                turn::Output::Request(Request::ConnectPeer { id, .. }) => {
                    self.core.peer_connected(now, id, false)
                }
                turn::Output::Request(Request::BindPeer { .. } | Request::ClosePeer { .. }) => {}
                turn::Output::Timeout(t) => self.timer = t,
            }
        }
    }
}

impl Endpoint for TurnServerEndpoint {
    fn start(&mut self, _now: Instant) {
        self.out.push_back(Output::TcpListen {
            port: self.listen.port(),
        });
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Udp {
                local,
                remote,
                data,
            } => {
                if local == self.listen {
                    let five_tuple = FiveTuple {
                        transport: Transport::Udp,
                        client: remote,
                        server: local,
                    };
                    self.client_message(now, five_tuple, data);
                } else if self.relays.contains(&local) {
                    let mut buf = vec![0u8; data.len() + turn::RELAY_OVERHEAD];
                    if let Some(t) = self.core.handle_peer(now, local, remote, data, &mut buf) {
                        let t = t.to_owned();
                        self.send_to_client(t);
                    }
                }
            }
            Input::TcpAccepted {
                conn,
                local,
                remote,
            } if local == self.listen => {
                let five_tuple = FiveTuple {
                    transport: Transport::Tcp,
                    client: remote,
                    server: local,
                };
                self.conns.insert(conn, (five_tuple, StreamFramer::new()));
                self.by_tuple.insert(five_tuple, conn);
            }
            Input::TcpData { conn, data } => {
                let Some((five_tuple, mut framer)) = self.conns.remove(&conn) else {
                    return;
                };
                let ok = framer
                    .feed(data, |frame| self.client_message(now, five_tuple, frame))
                    .is_ok();
                if ok {
                    self.conns.insert(conn, (five_tuple, framer));
                } else {
                    self.by_tuple.remove(&five_tuple);
                    self.core.connection_closed(now, five_tuple);
                    self.out.push_back(Output::TcpClose { conn });
                }
            }
            Input::TcpClosed { conn, .. } => {
                if let Some((five_tuple, _)) = self.conns.remove(&conn) {
                    self.by_tuple.remove(&five_tuple);
                    self.core.connection_closed(now, five_tuple);
                }
            }
            _ => {}
        }
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.drain(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
}
