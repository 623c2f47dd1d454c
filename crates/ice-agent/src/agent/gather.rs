//! Candidate gathering (RFC 8445 §5.1.1): host candidates from the driver's sockets,
//! server-reflexive ones through STUN Binding, relayed ones through TURN; and the pairing of
//! every new local or remote candidate (§6.1.2).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand::Rng;
use sans_io::{ConnectionId, Output, Retransmit, RetransmitAction, Transport};
use stun_client::{TurnClient, TurnClientConfig, TurnEvent};
use stun_codec::attr::{Software, XorMappedAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

use super::checklist::{LocalCandidate, Path};
use super::ids::{IdVec, LocalId, PairId, RelayId, RemoteId, SocketId};
use super::relay::{Relay, RelayPath, RelayState};
use super::{Agent, LocalSocket};
use crate::candidate::{
    dual_stack_preferences, is_loopback_or_link_local, priority, Candidate, CandidateKind,
    CandidateTransport,
};
use crate::event::{Event, Request};
use crate::StreamId;

/// A UDP socket the driver bound.
#[derive(Debug)]
pub(super) struct HostSocket {
    pub addr: SocketAddr,
    pub stream: StreamId,
    pub component: u16,
    /// The host candidate of this socket, if the address is used as one.
    pub candidate: Option<LocalId>,
}

/// A Binding request to a STUN server for a server-reflexive candidate.
#[derive(Debug)]
pub(super) struct SrflxRequest {
    pub stream: StreamId,
    pub socket: SocketId,
    pub server: SocketAddr,
    pub id: TransactionId,
    pub bytes: Vec<u8>,
    pub timer: Retransmit,
}

/// What makes a foundation (RFC 8445 §5.1.1.3): type, base IP, and the STUN or TURN server
/// with its transport.
type FoundationKey = (CandidateKind, IpAddr, Option<(IpAddr, Transport)>);

/// Everything gathering holds: the sockets, the requests to STUN servers, the TURN slots.
#[derive(Debug, Default)]
pub(super) struct Gathering {
    pub sockets: IdVec<SocketId, HostSocket>,
    /// The host IPs in the order they came (for the RFC 8421 local preferences).
    host_ips: Vec<IpAddr>,
    foundations: Vec<FoundationKey>,
    pub srflx: Vec<SrflxRequest>,
    pub relays: IdVec<RelayId, Relay>,
    next_connection: u64,
}

impl Gathering {
    pub(super) fn socket_at(&self, addr: SocketAddr) -> Option<SocketId> {
        self.sockets
            .iter()
            .find(|(_, s)| s.addr == addr)
            .map(|(i, _)| i)
    }

    /// The slot that uses connection `id`.
    pub(super) fn relay_on(&self, id: ConnectionId) -> Option<RelayId> {
        self.relays
            .iter()
            .find(|(_, r)| r.connection() == Some(id))
            .map(|(i, _)| i)
    }

    /// The local preference of a host IP (RFC 8421 interleaving over the IPs seen so far).
    fn host_preference(&mut self, ip: IpAddr) -> u16 {
        if !self.host_ips.contains(&ip) {
            self.host_ips.push(ip);
        }
        let prefs = dual_stack_preferences(&self.host_ips);
        let i = self.host_ips.iter().position(|x| *x == ip).unwrap_or(0);
        prefs[i]
    }

    /// RFC 8445 §5.1.1.3: the same type, base IP, server and transport share a foundation.
    fn foundation(
        &mut self,
        kind: CandidateKind,
        base: IpAddr,
        server: Option<(IpAddr, Transport)>,
    ) -> String {
        let key = (kind, base, server);
        let i = match self.foundations.iter().position(|f| *f == key) {
            Some(i) => i,
            None => {
                self.foundations.push(key);
                self.foundations.len() - 1
            }
        };
        (i + 1).to_string()
    }

    /// Whether gathering for `stream` is still waiting for a server.
    fn pending(&self, stream: StreamId) -> bool {
        self.srflx.iter().any(|r| r.stream == stream)
            || self
                .relays
                .values()
                .any(|r| r.stream == stream && r.gathering())
    }

    /// Every gathering timer: STUN retransmissions, TURN clients, gathering deadlines.
    pub(super) fn timers(&self, at: &mut impl FnMut(Instant)) {
        for r in &self.srflx {
            at(r.timer.next());
        }
        for relay in self.relays.values() {
            if let Some(t) = relay.timer {
                at(t);
            }
            if relay.gathering() {
                at(relay.deadline);
            }
        }
    }
}

impl Agent {
    pub(super) fn add_socket(&mut self, now: Instant, s: LocalSocket) {
        if self.gathering.socket_at(s.addr).is_some() {
            return;
        }
        let id = self.gathering.sockets.push(HostSocket {
            addr: s.addr,
            stream: s.stream,
            component: s.component,
            candidate: None,
        });
        self.gather_from_socket(now, id);
    }

    /// After a restart: every socket's candidates again, the live allocations revalidated.
    pub(super) fn regather(&mut self, now: Instant) {
        // Live allocations are kept: the old selected pair may run through one, and a new
        // Allocate from the same 5-tuple would get 437 (RFC 8656 §7.2). A Refresh checks each
        // is still ours (a NAT rebinding loses it) before its candidates join the new
        // generation; a lost one is allocated again. Done ones are gathered anew.
        let deadline = now + self.config.gather_timeout;
        for r in self.gathering.relays.ids() {
            let relay = &mut self.gathering.relays[r];
            match relay.state {
                RelayState::Done => {}
                RelayState::Allocated { .. } | RelayState::Revalidating => {
                    relay.state = RelayState::Revalidating;
                    relay.deadline = deadline;
                    self.with_client(now, r, |c| c.refresh(now));
                }
                // Still allocating: its candidate will be of the new generation.
                RelayState::Allocating => relay.deadline = deadline,
            }
        }
        self.gathering.srflx.clear();
        for s in self.gathering.sockets.values_mut() {
            s.candidate = None;
        }
        for s in self.gathering.sockets.ids() {
            self.gather_from_socket(now, s);
        }
    }

    fn gather_from_socket(&mut self, now: Instant, si: SocketId) {
        let addr = self.gathering.sockets[si].addr;
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
            return;
        }
        if !relay_only {
            self.gather_host_and_srflx(now, si);
        }
        if !self.config.lite {
            self.gather_relayed(now, si);
        }
    }

    fn gather_host_and_srflx(&mut self, now: Instant, si: SocketId) {
        let HostSocket {
            addr,
            stream,
            component,
            ..
        } = self.gathering.sockets[si];
        let ip = addr.ip();
        let pref = self.gathering.host_preference(ip);
        let foundation = self.gathering.foundation(CandidateKind::Host, ip, None);
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
        self.gathering.sockets[si].candidate = li;
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
            self.gathering.srflx.push(SrflxRequest {
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

    fn gather_relayed(&mut self, now: Instant, si: SocketId) {
        let HostSocket {
            addr,
            stream,
            component,
            ..
        } = self.gathering.sockets[si];
        for server in self.config.turn_servers.clone() {
            if server.addr.is_ipv4() != addr.is_ipv4() {
                continue;
            }
            // One allocation per server and component.
            let have = self.gathering.relays.values().any(|r| {
                r.state != RelayState::Done
                    && r.stream == stream
                    && r.component == component
                    && r.server.addr == server.addr
                    && r.server.transport == server.transport
            });
            if have {
                continue;
            }
            let seed = self.rng.gen();
            let path = if server.transport == Transport::Udp {
                RelayPath::Udp(si)
            } else {
                let id = ConnectionId(self.gathering.next_connection + 1);
                self.gathering.next_connection += 1;
                let tls_name = (server.transport == Transport::Tls).then(|| {
                    server
                        .tls_name
                        .clone()
                        .unwrap_or_else(|| server.addr.ip().to_string())
                });
                self.out.request(Request::Connect {
                    id,
                    transport: server.transport,
                    server: server.addr,
                    local: SocketAddr::new(addr.ip(), 0),
                    tls_name,
                });
                RelayPath::Stream { id, local: None }
            };
            let r = self.gathering.relays.push(Relay {
                stream,
                component,
                base: si,
                server,
                path,
                client: None,
                seed,
                state: RelayState::Allocating,
                deadline: now + self.config.gather_timeout,
                timer: None,
            });
            if let RelayPath::Udp(_) = path {
                self.start_client(now, r, addr);
            }
        }
    }

    /// The client of slot `r`, sending from `local`, starts allocating.
    fn start_client(&mut self, now: Instant, r: RelayId, local: SocketAddr) {
        let relay = &mut self.gathering.relays[r];
        let mut cfg = TurnClientConfig::new(
            relay.server.addr,
            relay.server.transport,
            &relay.server.username,
            &relay.server.password,
        );
        cfg.rto = self.config.rto;
        cfg.software = self.config.software.clone();
        relay.client = Some(TurnClient::new(cfg, local, relay.seed));
        self.with_client(now, r, |c| c.allocate(now));
    }

    /// The connection of slot `r` is up.
    pub(super) fn connected(&mut self, now: Instant, r: RelayId, local: SocketAddr) {
        let relay = &mut self.gathering.relays[r];
        let RelayPath::Stream { id, local: None } = relay.path else {
            return;
        };
        relay.path = RelayPath::Stream {
            id,
            local: Some(local),
        };
        if relay.state == RelayState::Allocating {
            self.start_client(now, r, local);
        }
    }

    /// Calls into the client of slot `r`, then takes in what it has to say. Every use of a
    /// client goes through here, so none is left undrained.
    pub(super) fn with_client<T>(
        &mut self,
        now: Instant,
        r: RelayId,
        f: impl FnOnce(&mut TurnClient) -> T,
    ) -> Option<T> {
        let t = self.gathering.relays[r].client.as_mut().map(f);
        self.drain_relay(now, r);
        t
    }

    /// Moves the client's transmits into the agent's queue, notes its timer, and acts on its
    /// events.
    pub(super) fn drain_relay(&mut self, now: Instant, r: RelayId) {
        loop {
            let Some(client) = self
                .gathering
                .relays
                .get_mut(r)
                .and_then(|x| x.client.as_mut())
            else {
                return;
            };
            let Some(o) = client.poll_output() else {
                return;
            };
            match o {
                Output::Transmit(t) => self.out.transmit(t),
                Output::Timeout(t) => self.gathering.relays[r].timer = t,
                Output::Event(e) => self.relay_event(now, r, e),
            }
        }
    }

    /// The relayed candidate of an allocation, and over UDP its mapped address as a
    /// server-reflexive one; permissions for the remote candidates known so far.
    fn add_relay_candidates(&mut self, now: Instant, r: RelayId) {
        let relay = &self.gathering.relays[r];
        let Some((relayed, mapped)) = relay
            .client
            .as_ref()
            .and_then(|c| Some((c.relayed()?, c.mapped()?)))
        else {
            return;
        };
        let (stream, component, si) = (relay.stream, relay.component, relay.base);
        let server_ip = relay.server.addr.ip();
        let transport = relay.server.transport;
        let base = self.gathering.sockets[si].addr;
        let host_pref = self.gathering.host_preference(base.ip());
        // Over UDP the mapped address is a server-reflexive candidate too (§5.1.1.2); over
        // TCP it names a TCP mapping, useless for UDP.
        if transport == Transport::Udp && !self.config.relay_only {
            self.add_srflx(now, stream, si, mapped, server_ip);
        }
        // RFC 8445 §5.1.2.1 leaves the relay local preference to us: UDP over TCP over TLS
        // (RFC 8445 §5.1.2.2 recommends preferring UDP relays).
        let rank = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        };
        let pref = host_pref.saturating_sub(32 * rank);
        let foundation = self.gathering.foundation(
            CandidateKind::Relayed,
            base.ip(),
            Some((server_ip, transport)),
        );
        let candidate = LocalCandidate {
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
            path: Path::Relay(r),
            local_pref: pref,
        };
        let candidate = self.add_local(now, stream, candidate, true);
        self.gathering.relays[r].state = RelayState::Allocated { candidate };
        // Permissions for every remote candidate known so far, of the relay's family (the
        // server would answer 443 for the other).
        let ips: Vec<IpAddr> = self.streams[stream]
            .checklist
            .remote
            .values()
            .filter(|c| c.component == component && c.addr.is_ipv4() == relayed.is_ipv4())
            .map(|c| c.addr.ip())
            .collect();
        self.with_client(now, r, |c| {
            for ip in ips {
                c.create_permission(now, ip);
            }
        });
    }

    fn relay_event(&mut self, now: Instant, r: RelayId, ev: TurnEvent) {
        let relay = &self.gathering.relays[r];
        let (stream, server) = (relay.stream, relay.server.addr);
        match ev {
            TurnEvent::Allocated { .. } => {
                if relay.state == RelayState::Allocating {
                    self.gathering.relays[r].state = RelayState::Allocated { candidate: None };
                    self.add_relay_candidates(now, r);
                }
            }
            TurnEvent::Refreshed => {
                if relay.state == RelayState::Revalidating {
                    tracing::debug!(%server, "relay kept over the restart");
                    self.gathering.relays[r].state = RelayState::Allocated { candidate: None };
                    self.add_relay_candidates(now, r);
                }
            }
            TurnEvent::AllocationFailed(e) => {
                tracing::info!(%server, error = %e, "relay gathering failed");
                self.gathering.relays[r].state = RelayState::Done;
            }
            TurnEvent::AllocationLost(e) => {
                tracing::info!(%server, error = %e, "relay lost");
                if let Some(li) = relay.candidate() {
                    self.streams[stream]
                        .checklist
                        .fail_pairs(|p, _| p.local == li);
                }
                let revalidating = relay.state == RelayState::Revalidating;
                self.gathering.relays[r].state = RelayState::Done;
                if revalidating && !self.streams[stream].gathering_complete_sent {
                    // Lost over a restart (the NAT rebound): allocate again from the socket.
                    let si = self.gathering.relays[r].base;
                    self.gather_relayed(now, si);
                }
            }
            TurnEvent::PermissionCreated(_) => {}
            TurnEvent::PermissionFailed(ip, _) => {
                if let Some(li) = relay.candidate() {
                    self.streams[stream]
                        .checklist
                        .fail_pairs(|p, s| p.local == li && s.remote[p.remote].addr.ip() == ip);
                }
            }
            TurnEvent::ChannelBound { .. } => {}
            // ICE allocates UDP relays: RFC 6062's events never come.
            TurnEvent::PeerConnected { .. }
            | TurnEvent::ConnectFailed(..)
            | TurnEvent::ConnectionAttempt { .. } => {}
            TurnEvent::Redirected { server: to } => {
                tracing::info!(%server, %to, "TURN server redirected the allocation");
            }
        }
    }

    fn add_srflx(
        &mut self,
        now: Instant,
        stream: StreamId,
        si: SocketId,
        mapped: SocketAddr,
        server: IpAddr,
    ) {
        let base = self.gathering.sockets[si].addr;
        let component = self.gathering.sockets[si].component;
        let pref = self.gathering.host_preference(base.ip());
        let foundation = self.gathering.foundation(
            CandidateKind::ServerReflexive,
            base.ip(),
            Some((server, Transport::Udp)),
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

    /// A peer-reflexive local candidate learned from a check's mapped address (§7.2.5.3.1):
    /// not signalled and not paired (checks go from its base).
    pub(super) fn add_peer_reflexive(
        &mut self,
        now: Instant,
        stream: StreamId,
        from: LocalId,
        mapped: SocketAddr,
    ) -> Option<LocalId> {
        let l = &self.streams[stream].checklist.local[from];
        let (pref, base, path, component) = (l.local_pref, l.base, l.path, l.cand.component);
        let foundation = self
            .gathering
            .foundation(CandidateKind::PeerReflexive, base.ip(), None);
        let c = LocalCandidate {
            cand: Candidate {
                foundation,
                component,
                transport: CandidateTransport::Udp,
                priority: priority(CandidateKind::PeerReflexive, pref, component),
                addr: mapped,
                kind: CandidateKind::PeerReflexive,
                related: Some(base),
            },
            base,
            path,
            local_pref: pref,
        };
        self.add_local(now, stream, c, false)
    }

    /// Adds a local candidate unless it is redundant. Signals it if `signal`, pairs it if it
    /// is a host or relayed one (server-reflexive candidates are checked from their base,
    /// §6.1.2.4).
    fn add_local(
        &mut self,
        now: Instant,
        stream: StreamId,
        c: LocalCandidate,
        signal: bool,
    ) -> Option<LocalId> {
        let pairable = matches!(c.cand.kind, CandidateKind::Host | CandidateKind::Relayed);
        let event = signal.then(|| Event::LocalCandidate {
            stream,
            candidate: c.cand.clone(),
        });
        tracing::debug!(candidate = %c.cand, "local candidate");
        let li = self.streams[stream].checklist.push_local(c)?;
        if let Some(e) = event {
            self.out.event(e);
        }
        if pairable {
            for ri in self.streams[stream].checklist.remote.ids() {
                self.add_pair(now, stream, li, ri);
            }
        }
        Some(li)
    }

    /// Adds a remote candidate, pairs it with every host and relayed local candidate, and
    /// asks the relays of its component and family for a permission.
    pub(super) fn insert_remote(
        &mut self,
        now: Instant,
        stream: StreamId,
        c: Candidate,
    ) -> RemoteId {
        tracing::debug!(candidate = %c, "remote candidate");
        let (component, addr) = (c.component, c.addr);
        let ri = self.streams[stream].checklist.push_remote(c);
        for li in self.streams[stream].checklist.local.ids() {
            let l = &self.streams[stream].checklist.local[li];
            if matches!(l.cand.kind, CandidateKind::Host | CandidateKind::Relayed) {
                self.add_pair(now, stream, li, ri);
            }
        }
        for r in self.gathering.relays.ids() {
            let relay = &self.gathering.relays[r];
            let family_ok = relay
                .client
                .as_ref()
                .and_then(TurnClient::relayed)
                .is_some_and(|x| x.is_ipv4() == addr.is_ipv4());
            if relay.stream == stream
                && relay.component == component
                && relay.state != RelayState::Done
                && family_ok
            {
                self.with_client(now, r, |c| c.create_permission(now, addr.ip()));
            }
        }
        ri
    }

    /// Forms the pair (local, remote) if it makes sense and fits.
    pub(super) fn add_pair(
        &mut self,
        _now: Instant,
        stream: StreamId,
        li: LocalId,
        ri: RemoteId,
    ) -> Option<PairId> {
        let s = &mut self.streams[stream];
        let keep = s.selected_pairs();
        s.checklist
            .add_pair(li, ri, self.role, self.config.max_pairs, &keep)
    }

    /// STUN retransmissions and give-ups, TURN client timers, gathering deadlines.
    pub(super) fn gather_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.gathering.srflx.len() {
            match self.gathering.srflx[i].timer.poll(now) {
                Some(RetransmitAction::Resend) => {
                    let r = &self.gathering.srflx[i];
                    let (si, server, bytes) = (r.socket, r.server, r.bytes.clone());
                    self.send_from(Path::Socket(si), server, bytes);
                    i += 1;
                }
                Some(RetransmitAction::TimedOut) => {
                    let r = self.gathering.srflx.swap_remove(i);
                    tracing::info!(server = %r.server, "STUN server did not answer in time");
                }
                None => i += 1,
            }
        }
        for r in self.gathering.relays.ids() {
            if self.gathering.relays[r].timer.is_some_and(|x| x <= now) {
                self.with_client(now, r, |c| c.handle_timeout(now));
            }
            let relay = &mut self.gathering.relays[r];
            if relay.gathering() && now >= relay.deadline {
                tracing::info!(server = %relay.server.addr, "TURN server did not allocate in time");
                if relay.state == RelayState::Revalidating {
                    // Kept over a restart: the old pair may still use it, but its candidates
                    // stay out of the new generation.
                    relay.state = RelayState::Allocated { candidate: None };
                } else {
                    // Given up: an allocation that came now would be a candidate after
                    // end-of-candidates (RFC 8838 §4.4).
                    relay.state = RelayState::Done;
                    let id = relay.connection();
                    self.with_client(now, r, |c| c.close(now));
                    if let Some(id) = id {
                        self.out.request(Request::Close { id });
                    }
                }
            }
        }
    }

    /// A STUN Binding response on a socket, if it answers one of the gathering requests.
    /// Returns whether it did.
    pub(super) fn srflx_response(
        &mut self,
        now: Instant,
        si: SocketId,
        from: SocketAddr,
        msg: &Message<'_>,
    ) -> bool {
        let Some(i) = self
            .gathering
            .srflx
            .iter()
            .position(|r| r.id == msg.transaction_id() && r.socket == si && r.server == from)
        else {
            return false;
        };
        let r = self.gathering.srflx.swap_remove(i);
        if msg.message_type().class == Class::SuccessResponse {
            match msg.get::<XorMappedAddress>() {
                Ok(Some(m)) => self.add_srflx(now, r.stream, si, m.0, from.ip()),
                _ => tracing::info!(server = %from, "STUN answer without XOR-MAPPED-ADDRESS"),
            }
        }
        true
    }

    /// Announces the end of a stream's gathering once it has sockets and nothing is pending.
    pub(super) fn check_gathering_complete(&mut self, stream: StreamId) {
        let s = &self.streams[stream];
        if s.gathering_complete_sent
            || self.gathering.pending(stream)
            || !self.gathering.sockets.values().any(|x| x.stream == stream)
        {
            return;
        }
        self.streams[stream].gathering_complete_sent = true;
        self.out.event(Event::GatheringComplete { stream });
    }
}
