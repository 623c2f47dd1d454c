//! Candidate gathering (RFC 8445 §5.1.1): host candidates from the driver's sockets,
//! server-reflexive ones through STUN Binding, relayed ones through the TURN client; and the
//! pairing of every new local or remote candidate (§6.1.2).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use stun_codec::attr::{Software, XorMappedAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method};

use super::*;
use crate::candidate::{dual_stack_preferences, is_loopback_or_link_local, priority};
use crate::turn_client::{TurnClientConfig, TurnEvent, TurnTransport};
use sans_io::RetransmitAction;

impl Agent {
    /// Tells the agent about a bound UDP socket of a stream's component. Its address becomes
    /// a host candidate (unless it is loopback or link-local and the configuration leaves
    /// those out), and gathering from the STUN and TURN servers starts from it.
    pub fn add_local_socket(
        &mut self,
        now: Instant,
        stream: StreamId,
        component: u16,
        addr: SocketAddr,
    ) -> Result<(), AddCandidateError> {
        let s = self
            .streams
            .get(stream.0)
            .ok_or(AddCandidateError::UnknownStream)?;
        if component == 0 || component > s.components {
            return Err(AddCandidateError::UnknownComponent(component));
        }
        if self.sockets.iter().any(|x| x.addr == addr) || self.state == ConnectionState::Closed {
            return Ok(());
        }
        self.sockets.push(HostSocket {
            addr,
            stream: stream.0,
            component,
            candidate: None,
        });
        self.gather_from_socket(now, self.sockets.len() - 1);
        self.update_state(now);
        Ok(())
    }

    fn host_preference(&mut self, ip: IpAddr) -> u16 {
        if !self.host_ips.contains(&ip) {
            self.host_ips.push(ip);
        }
        let prefs = dual_stack_preferences(&self.host_ips);
        let i = self.host_ips.iter().position(|x| *x == ip).unwrap_or(0);
        prefs[i]
    }

    pub(super) fn gather_from_socket(&mut self, now: Instant, si: usize) {
        let HostSocket { addr, stream, .. } = self.sockets[si];
        let ip = addr.ip();
        let relay_only = self.config.relay_only && !self.config.lite;
        if ip.is_unspecified()
            || (!relay_only
                && is_loopback_or_link_local(ip)
                && !(if ip.is_loopback() {
                    self.config.allow_loopback
                } else {
                    self.config.allow_link_local
                }))
        {
            tracing::debug!(%addr, "socket address not used as a candidate");
            self.check_gathering_complete(stream);
            return;
        }
        if !relay_only {
            self.gather_host_and_srflx(now, si);
        }
        if !self.config.lite {
            self.gather_relayed(now, si);
        }
        self.check_gathering_complete(stream);
    }

    fn gather_host_and_srflx(&mut self, now: Instant, si: usize) {
        let HostSocket {
            addr,
            stream,
            component,
            ..
        } = self.sockets[si];
        let ip = addr.ip();
        let pref = self.host_preference(ip);
        let foundation = self.foundation(CandidateKind::Host, ip, None);
        let host = LocalCandidate {
            cand: Candidate {
                foundation,
                component,
                transport: CandidateTransport::Udp,
                priority: priority(CandidateKind::Host, pref, component),
                addr,
                kind: CandidateKind::Host,
                related: None,
            },
            base: addr,
            path: Path::Socket(si),
            local_pref: pref,
        };
        let li = self.add_local(now, stream, host, true);
        self.sockets[si].candidate = li;
        if self.config.lite {
            return;
        }
        for server in self.config.stun_servers.clone() {
            if server.is_ipv4() != addr.is_ipv4() {
                continue;
            }
            let id = self.new_transaction_id();
            let mut buf = [0u8; 128];
            let Ok(mut b) = MessageBuilder::new(
                &mut buf,
                MessageType::new(Method::BINDING, Class::Request),
                id,
            ) else {
                continue;
            };
            if let Some(sw) = &self.config.software {
                let _ = b.add(&Software(sw));
            }
            let _ = b.add_fingerprint();
            let bytes = b.finish().to_vec();
            self.send_from(Path::Socket(si), server, bytes.clone());
            self.srflx.push(SrflxRequest {
                stream,
                socket: si,
                server,
                id,
                bytes,
                timer: Retransmit::udp(now, self.config.rto, 7, 16)
                    .with_deadline(now + self.config.gather_timeout),
            });
        }
    }

    fn gather_relayed(&mut self, now: Instant, si: usize) {
        let HostSocket {
            addr,
            stream,
            component,
            ..
        } = self.sockets[si];
        let ip = addr.ip();
        for server in self.config.turn_servers.clone() {
            if server.addr.is_ipv4() != addr.is_ipv4() {
                continue;
            }
            // One allocation per server and component.
            let have = self.turns.iter().any(|t| {
                !t.retired
                    && t.stream == stream
                    && t.component == component
                    && t.client.server() == server.addr
                    && t.client.config().transport == server.transport
            });
            if have {
                continue;
            }
            let mut cfg = TurnClientConfig::new(
                server.addr,
                server.transport,
                &server.username,
                &server.password,
            );
            cfg.rto = self.config.rto;
            cfg.software = self.config.software.clone();
            let client = TurnClient::new(cfg, self.rng.gen());
            let path = if server.transport == TurnTransport::Udp {
                TurnPath::Udp(si)
            } else {
                let id = ConnectionId(self.next_connection);
                self.next_connection += 1;
                self.requests.push_back(DriverRequest::Connect {
                    id,
                    server: server.addr,
                    local: SocketAddr::new(ip, 0),
                    tls_name: if server.transport == TurnTransport::Tls {
                        Some(
                            server
                                .tls_name
                                .clone()
                                .unwrap_or_else(|| server.addr.ip().to_string()),
                        )
                    } else {
                        None
                    },
                });
                TurnPath::Connection(id, false)
            };
            self.turns.push(Turn {
                client,
                stream,
                component,
                base_socket: si,
                path,
                candidate: None,
                gathered: false,
                deadline: now + self.config.gather_timeout,
                retired: false,
                revalidating: false,
            });
            let t = self.turns.len() - 1;
            if matches!(path, TurnPath::Udp(_)) {
                self.turns[t].client.allocate(now);
                self.drain_turn(now, t);
            }
        }
    }

    /// A driver-opened connection to a TURN server is up.
    pub fn connection_established(&mut self, now: Instant, id: ConnectionId) {
        let Some(t) = self.turn_on_connection(id) else {
            return;
        };
        self.turns[t].path = TurnPath::Connection(id, true);
        self.turns[t].client.allocate(now);
        self.drain_turn(now, t);
    }

    /// A connection to a TURN server failed to open or ended.
    pub fn connection_closed(&mut self, now: Instant, id: ConnectionId) {
        let Some(t) = self.turn_on_connection(id) else {
            return;
        };
        self.turns[t].client.stream_closed();
        self.drain_turn(now, t);
        self.update_state(now);
    }

    /// Bytes from a connection to a TURN server (after TLS decryption).
    pub fn handle_connection_data(&mut self, now: Instant, id: ConnectionId, data: &[u8]) {
        let Some(t) = self
            .turn_on_connection(id)
            .filter(|&t| self.turns[t].path == TurnPath::Connection(id, true))
        else {
            return;
        };
        if !self.turns[t].client.handle_stream_bytes(now, data) {
            self.requests.push_back(DriverRequest::Close { id });
        }
        self.drain_turn(now, t);
        self.update_state(now);
    }

    /// The TURN client that uses connection `id`.
    fn turn_on_connection(&self, id: ConnectionId) -> Option<usize> {
        self.turns
            .iter()
            .position(|t| matches!(t.path, TurnPath::Connection(c, _) if c == id))
    }

    /// Moves a TURN client's output into the agent's queues and acts on its events.
    pub(super) fn drain_turn(&mut self, now: Instant, t: usize) {
        while let Some(data) = self.turns[t].client.poll_transmit() {
            let via = self.turn_via(t);
            self.transmits.push_back(Transmit { via, data });
        }
        while let Some(ev) = self.turns[t].client.poll_event() {
            self.turn_event(now, t, ev);
        }
    }

    /// The relayed candidate of an allocation, and over UDP its mapped address as a
    /// server-reflexive one; permissions for the remote candidates known so far.
    fn add_relay_candidates(&mut self, now: Instant, t: usize) {
        let stream = self.turns[t].stream;
        let (Some(relayed), Some(mapped)) = (
            self.turns[t].client.relayed(),
            self.turns[t].client.mapped(),
        ) else {
            return;
        };
        let si = self.turns[t].base_socket;
        let base = self.sockets[si].addr;
        let component = self.turns[t].component;
        let server_ip = self.turns[t].client.server().ip();
        let transport = self.turns[t].client.config().transport;
        let host_pref = self.host_preference(base.ip());
        // Over UDP the mapped address is a server-reflexive candidate too
        // (§5.1.1.2); over TCP it names a TCP mapping, useless for UDP.
        if transport == TurnTransport::Udp && !self.config.relay_only {
            self.add_srflx(now, stream, si, mapped, server_ip);
        }
        // RFC 8445 §5.1.2.1 leaves the relay local preference to us: UDP over TCP
        // over TLS (RFC 8445 §5.1.2.2 recommends preferring UDP relays).
        let rank = match transport {
            TurnTransport::Udp => 0,
            TurnTransport::Tcp => 1,
            TurnTransport::Tls => 2,
        };
        let pref = host_pref.saturating_sub(32 * rank);
        let foundation = self.foundation(
            CandidateKind::Relayed,
            base.ip(),
            Some((server_ip, transport)),
        );
        let relay = LocalCandidate {
            cand: Candidate {
                foundation,
                component,
                transport: CandidateTransport::Udp,
                priority: priority(CandidateKind::Relayed, pref, component),
                addr: relayed,
                kind: CandidateKind::Relayed,
                related: Some(mapped),
            },
            base: relayed,
            path: Path::Relay(t),
            local_pref: pref,
        };
        self.turns[t].candidate = self.add_local(now, stream, relay, true);
        // Permissions for every remote candidate known so far, of the relay's family (the
        // server would answer 443 for the other).
        let ips: Vec<IpAddr> = self.streams[stream]
            .remote
            .iter()
            .filter(|r| r.component == component && r.addr.is_ipv4() == relayed.is_ipv4())
            .map(|r| r.addr.ip())
            .collect();
        for ip in ips {
            self.turns[t].client.create_permission(now, ip);
        }
        self.drain_turn(now, t);
        self.check_gathering_complete(stream);
    }

    fn turn_event(&mut self, now: Instant, t: usize, ev: TurnEvent) {
        let stream = self.turns[t].stream;
        match ev {
            TurnEvent::Allocated { .. } => {
                self.turns[t].gathered = true;
                if !self.turns[t].retired {
                    self.add_relay_candidates(now, t);
                }
            }
            TurnEvent::Refreshed => {
                if std::mem::take(&mut self.turns[t].revalidating) {
                    tracing::debug!(server = %self.turns[t].client.server(), "relay kept over the restart");
                    self.turns[t].gathered = true;
                    self.add_relay_candidates(now, t);
                }
            }
            TurnEvent::AllocationFailed(e) => {
                tracing::info!(server = %self.turns[t].client.server(), error = %e, "relay gathering failed");
                self.turns[t].gathered = true;
                self.check_gathering_complete(stream);
            }
            TurnEvent::AllocationLost(e) => {
                tracing::info!(server = %self.turns[t].client.server(), error = %e, "relay lost");
                if let Some(li) = self.turns[t].candidate {
                    self.fail_pairs(stream, |p, _| p.local == li);
                }
                self.turns[t].gathered = true;
                if std::mem::take(&mut self.turns[t].revalidating)
                    && !self.streams[stream].gathering_complete_sent
                {
                    // Lost over a restart (the NAT rebound): allocate again from the socket.
                    self.turns[t].retired = true;
                    let si = self.turns[t].base_socket;
                    self.gather_relayed(now, si);
                }
                self.check_gathering_complete(stream);
            }
            TurnEvent::PermissionCreated(_) => self.wake_checks(now),
            TurnEvent::PermissionFailed(ip, _) => {
                if let Some(li) = self.turns[t].candidate {
                    self.fail_pairs(stream, |p, s| {
                        p.local == li && s.remote[p.remote].addr.ip() == ip
                    });
                }
            }
            TurnEvent::ChannelBound { .. } => {}
            TurnEvent::Data { peer, data } => {
                let to_app = self
                    .on_relay_packet(now, t, peer, &data)
                    .map(|r| (r.stream, r.component));
                // Application data is the whole payload: hand over the client's copy.
                if let Some((stream, component)) = to_app {
                    self.events.push_back(Event::Data {
                        stream,
                        component,
                        data,
                    });
                }
            }
        }
    }

    fn fail_pairs(&mut self, stream: usize, f: impl Fn(&Pair, &Stream) -> bool) {
        let s = &self.streams[stream];
        let hit: Vec<usize> = (0..s.pairs.len()).filter(|&i| f(&s.pairs[i], s)).collect();
        for i in hit {
            let p = &mut self.streams[stream].pairs[i];
            p.state = PairState::Failed;
            p.check = None;
        }
    }

    fn add_srflx(
        &mut self,
        now: Instant,
        stream: usize,
        si: usize,
        mapped: SocketAddr,
        server: IpAddr,
    ) {
        let base = self.sockets[si].addr;
        let component = self.sockets[si].component;
        let pref = self.host_preference(base.ip());
        let foundation = self.foundation(
            CandidateKind::ServerReflexive,
            base.ip(),
            Some((server, TurnTransport::Udp)),
        );
        let c = LocalCandidate {
            cand: Candidate {
                foundation,
                component,
                transport: CandidateTransport::Udp,
                priority: priority(CandidateKind::ServerReflexive, pref, component),
                addr: mapped,
                kind: CandidateKind::ServerReflexive,
                related: Some(base),
            },
            base,
            path: Path::Socket(si),
            local_pref: pref,
        };
        self.add_local(now, stream, c, true);
    }

    /// Adds a local candidate unless it is redundant (§5.1.3: same address and base as one
    /// already there). Signals it if `signal`, pairs it if it is a host or relayed one
    /// (server-reflexive candidates are checked from their base, §6.1.2.4).
    pub(super) fn add_local(
        &mut self,
        now: Instant,
        stream: usize,
        c: LocalCandidate,
        signal: bool,
    ) -> Option<usize> {
        let s = &mut self.streams[stream];
        if s.local.iter().any(|l| {
            l.cand.addr == c.cand.addr && l.base == c.base && l.cand.component == c.cand.component
        }) {
            return None;
        }
        let pairable = matches!(c.cand.kind, CandidateKind::Host | CandidateKind::Relayed);
        if signal {
            self.events.push_back(Event::LocalCandidate {
                stream: StreamId(stream),
                candidate: c.cand.clone(),
            });
        }
        tracing::debug!(candidate = %c.cand, "local candidate");
        s.local.push(c);
        let li = s.local.len() - 1;
        if pairable {
            for ri in 0..self.streams[stream].remote.len() {
                self.add_pair(now, stream, li, ri);
            }
        }
        Some(li)
    }

    pub(super) fn insert_remote(&mut self, now: Instant, stream: usize, c: Candidate) -> usize {
        let s = &mut self.streams[stream];
        tracing::debug!(candidate = %c, "remote candidate");
        let (component, addr) = (c.component, c.addr);
        s.remote.push(c);
        let ri = s.remote.len() - 1;
        s.remote_index.insert((component, addr), ri);
        for li in 0..self.streams[stream].local.len() {
            let l = &self.streams[stream].local[li];
            if matches!(l.cand.kind, CandidateKind::Host | CandidateKind::Relayed) {
                self.add_pair(now, stream, li, ri);
            }
        }
        for t in 0..self.turns.len() {
            let turn = &self.turns[t];
            if turn.stream == stream
                && turn.component == component
                && !turn.retired
                && turn
                    .client
                    .relayed()
                    .is_some_and(|r| r.is_ipv4() == addr.is_ipv4())
            {
                self.turns[t].client.create_permission(now, addr.ip());
                self.drain_turn(now, t);
            }
        }
        ri
    }

    /// Forms the pair (local, remote) if it makes sense and fits (§6.1.2.2, §6.1.2.5).
    pub(super) fn add_pair(
        &mut self,
        now: Instant,
        stream: usize,
        li: usize,
        ri: usize,
    ) -> Option<usize> {
        let s = &self.streams[stream];
        let (l, r) = (&s.local[li], &s.remote[ri]);
        if l.cand.component != r.component || l.cand.addr.is_ipv4() != r.addr.is_ipv4() {
            return None;
        }
        if let Some(i) = s.pairs.iter().position(|p| p.local == li && p.remote == ri) {
            return Some(i);
        }
        let prio = self.pair_priority(stream, li, ri);
        let s = &self.streams[stream];
        let foundation_busy = s.foundation_busy(li, ri);
        let pair = Pair {
            local: li,
            remote: ri,
            component: s.local[li].cand.component,
            priority: prio,
            state: if foundation_busy {
                PairState::Frozen
            } else {
                PairState::Waiting
            },
            check: None,
            valid_local: None,
            succeeded_at: None,
            first_sent: None,
            rtt: None,
            remote_nominated: false,
            nominated: false,
            nominate: false,
            queued: false,
        };
        let s = &mut self.streams[stream];
        let i = if s.pairs.len() < self.config.max_pairs {
            s.pairs.push(pair);
            s.pairs.len() - 1
        } else {
            // Full: the new pair takes the place of the lowest-priority failed pair, or else
            // of the lowest-priority untried pair it beats (§6.1.2.5). Pairs queued, in
            // flight or selected stay.
            let selected: Vec<usize> = s.selected.iter().flatten().filter_map(|x| x.pair).collect();
            let free =
                |(i, p): &(usize, &Pair)| !p.queued && p.check.is_none() && !selected.contains(i);
            let failed = s
                .pairs
                .iter()
                .enumerate()
                .filter(|x| x.1.state == PairState::Failed && free(x))
                .min_by_key(|(_, p)| p.priority)
                .map(|(i, _)| i);
            let untried = || {
                s.pairs
                    .iter()
                    .enumerate()
                    .filter(|x| {
                        matches!(x.1.state, PairState::Frozen | PairState::Waiting) && free(x)
                    })
                    .min_by_key(|(_, p)| p.priority)
                    .filter(|(_, p)| p.priority < prio)
                    .map(|(i, _)| i)
            };
            let victim = failed.or_else(untried)?;
            s.pairs[victim] = pair;
            victim
        };
        self.wake_checks(now);
        Some(i)
    }

    pub(super) fn gather_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.srflx.len() {
            match self.srflx[i].timer.poll(now) {
                Some(RetransmitAction::Resend) => {
                    let r = &self.srflx[i];
                    let (si, server, bytes) = (r.socket, r.server, r.bytes.clone());
                    self.send_from(Path::Socket(si), server, bytes);
                    i += 1;
                }
                Some(RetransmitAction::TimedOut) => {
                    let r = self.srflx.swap_remove(i);
                    tracing::info!(server = %r.server, "STUN server did not answer in time");
                    self.check_gathering_complete(r.stream);
                }
                None => i += 1,
            }
        }
        for t in 0..self.turns.len() {
            if self.turns[t]
                .client
                .poll_timeout()
                .is_some_and(|x| x <= now)
            {
                self.turns[t].client.handle_timeout(now);
                self.drain_turn(now, t);
            }
            if !self.turns[t].gathered && now >= self.turns[t].deadline {
                tracing::info!(server = %self.turns[t].client.server(), "TURN server did not allocate in time");
                let turn = &mut self.turns[t];
                turn.gathered = true;
                if turn.revalidating {
                    // Kept over a restart: the old pair may still use it, but its candidates
                    // stay out of the new generation.
                    turn.revalidating = false;
                } else {
                    // Given up: an allocation that came now would be a candidate after
                    // end-of-candidates (RFC 8838 §4.4).
                    turn.retired = true;
                    turn.client.close(now);
                    if let TurnPath::Connection(id, _) = turn.path {
                        self.requests.push_back(DriverRequest::Close { id });
                    }
                }
                let stream = self.turns[t].stream;
                self.check_gathering_complete(stream);
            }
        }
    }

    /// A STUN Binding response on a socket, if it answers one of the gathering requests.
    /// Returns whether it did.
    pub(super) fn srflx_response(
        &mut self,
        now: Instant,
        si: usize,
        from: SocketAddr,
        msg: &Message<'_>,
    ) -> bool {
        let Some(i) = self
            .srflx
            .iter()
            .position(|r| r.id == msg.transaction_id() && r.socket == si && r.server == from)
        else {
            return false;
        };
        let r = self.srflx.swap_remove(i);
        if msg.message_type().class == Class::SuccessResponse {
            match msg.get::<XorMappedAddress>() {
                Ok(Some(m)) => self.add_srflx(now, r.stream, si, m.0, from.ip()),
                _ => tracing::info!(server = %from, "STUN answer without XOR-MAPPED-ADDRESS"),
            }
        }
        self.check_gathering_complete(r.stream);
        true
    }

    fn check_gathering_complete(&mut self, stream: usize) {
        let s = &self.streams[stream];
        if s.gathering_complete_sent
            || self.srflx.iter().any(|r| r.stream == stream)
            || self.turns.iter().any(|t| t.stream == stream && !t.gathered)
            || !self.sockets.iter().any(|x| x.stream == stream)
        {
            return;
        }
        self.streams[stream].gathering_complete_sent = true;
        self.events.push_back(Event::GatheringComplete {
            stream: StreamId(stream),
        });
    }
}
