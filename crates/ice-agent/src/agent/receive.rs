//! What arrives: STUN server answers, TURN traffic, connectivity checks (RFC 8445 §7.3) and
//! their answers (§7.2.5), and application data, delivered only from a validated pair.

use std::net::SocketAddr;
use std::time::Instant;

use sans_io::Receive;
use stun_codec::attr::{
    ErrorCode, IceControlled, IceControlling, Nomination as NominationAttr, Priority, UseCandidate,
    Username, XorMappedAddress,
};
use stun_codec::{demux, Class, Message, MessageBuilder, MessageType, Method, PacketKind};

use super::checklist::{Nomination, PairState, Path};
use super::ids::{LocalId, PairId, RelayId, SocketId};
use super::Agent;
use crate::candidate::{Candidate, CandidateKind, CandidateTransport};
use crate::event::Received;
use crate::{Role, StreamId};

impl Agent {
    /// Routes what arrived: to a gathering request, to a TURN client (and what it relays,
    /// on), or to the checks and data of a host socket.
    pub(super) fn receive<'a>(&mut self, now: Instant, r: Receive<'a>) -> Option<Received<'a>> {
        let socket = if r.transport.is_stream() {
            None
        } else {
            Some(self.gathering.socket_at(r.local)?)
        };
        if let Some(si) = socket {
            if demux(r.data) == PacketKind::Stun
                && self
                    .gathering
                    .srflx
                    .iter()
                    .any(|q| q.socket == si && q.server == r.remote)
            {
                if let Ok(msg) = Message::parse(r.data) {
                    if self.srflx_response(now, si, r.remote, &msg) {
                        return None;
                    }
                }
            }
        }
        // A lost allocation may share socket and server with its replacement: the live one
        // takes the answers (the first live match, else the first match).
        let relay = self
            .gathering
            .relays
            .iter()
            .filter(|(_, x)| x.receives(&r, socket))
            .min_by_key(|(_, x)| x.client.as_ref().is_none_or(|c| c.is_done()))
            .map(|(i, _)| i);
        if let Some(t) = relay {
            let got = self
                .with_client(now, t, |c| c.handle_receive(now, r))
                .flatten();
            return got.and_then(|(peer, payload)| self.on_relay_packet(now, t, peer, payload));
        }
        let si: SocketId = socket?;
        let s = &self.gathering.sockets[si];
        let (stream, local) = (s.stream, s.candidate);
        self.on_packet(now, stream, local, Path::Socket(si), r.remote, r.data)
    }

    fn on_relay_packet<'a>(
        &mut self,
        now: Instant,
        t: RelayId,
        peer: SocketAddr,
        data: &'a [u8],
    ) -> Option<Received<'a>> {
        let relay = &self.gathering.relays[t];
        let (stream, local) = (relay.stream, relay.candidate());
        self.on_packet(now, stream, local, Path::Relay(t), peer, data)
    }

    /// A packet from `from` that reached the local candidate `local` (its base) over `path`.
    fn on_packet<'a>(
        &mut self,
        now: Instant,
        stream: StreamId,
        local: Option<LocalId>,
        path: Path,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<Received<'a>> {
        if demux(data) == PacketKind::Stun {
            let Ok(msg) = Message::parse(data) else {
                return None;
            };
            match msg.message_type().class {
                Class::Request => {
                    if let Some(li) = local {
                        self.handle_request(now, stream, li, path, from, &msg);
                    }
                }
                Class::SuccessResponse | Class::ErrorResponse => {
                    self.handle_response(now, stream, path, from, &msg)
                }
                // Binding indications are keepalives (RFC 8445 §11): nothing to do.
                Class::Indication => {}
            }
            return None;
        }
        let s = &self.streams[stream];
        let list = &s.checklist;
        // From the selected pair, or a pair that succeeded, or one whose incoming check we
        // answered (RFC 8445 §12.2: the peer may send as soon as its check is answered).
        let component = s
            .selected
            .iter()
            .flatten()
            .find(|sel| sel.path == path && sel.remote.addr == from)
            .map(|sel| sel.local.component)
            .or_else(|| {
                list.pairs
                    .values()
                    .find(|p| {
                        (p.state == PairState::Succeeded || p.answered)
                            && list.local[p.local].path == path
                            && list.remote[p.remote].addr == from
                    })
                    .map(|p| p.component)
            });
        match component {
            Some(component) => Some(Received {
                stream,
                component,
                data,
            }),
            None => {
                self.stats.dropped_unvalidated += 1;
                None
            }
        }
    }

    /// RFC 8445 §7.3: an incoming Binding request.
    fn handle_request(
        &mut self,
        now: Instant,
        stream: StreamId,
        li: LocalId,
        path: Path,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        if msg.message_type().method != Method::BINDING {
            return;
        }
        // FINGERPRINT, then USERNAME's first part, then MESSAGE-INTEGRITY with our password
        // (RFC 8445 §7.3, RFC 8489 §9.1.3). Failures are dropped: no answer, no state.
        // (`verify_fingerprint` fails on a missing FINGERPRINT too.)
        let authentic = msg.verify_fingerprint().is_ok()
            && matches!(msg.get::<Username>(), Ok(Some(u))
                if u.0.split_once(':').is_some_and(|(ours, _)| ours == self.keys.local.ufrag))
            && msg.verify_integrity(&self.keys.local_key).is_ok();
        if !authentic {
            self.stats.auth_failures += 1;
            return;
        }
        let Ok(Some(Priority(peer_priority))) = msg.get::<Priority>() else {
            self.stats.auth_failures += 1;
            return;
        };
        // Role conflicts (§7.3.1.1).
        let controlling = msg.get::<IceControlling>().ok().flatten();
        let controlled = msg.get::<IceControlled>().ok().flatten();
        match (self.role, controlling, controlled) {
            (Role::Controlling, Some(IceControlling(theirs)), _) => {
                self.stats.role_conflicts += 1;
                if self.tie_breaker >= theirs {
                    self.respond(path, from, msg, Some(487));
                    return;
                }
                self.set_role(Role::Controlled);
            }
            (Role::Controlled, _, Some(IceControlled(theirs))) if !self.config.lite => {
                self.stats.role_conflicts += 1;
                if self.tie_breaker >= theirs {
                    self.set_role(Role::Controlling);
                } else {
                    self.respond(path, from, msg, Some(487));
                    return;
                }
            }
            _ => {}
        }
        self.respond(path, from, msg, None);
        self.stats.checks_answered += 1;

        let component = self.streams[stream].checklist.local[li].cand.component;
        // §7.3.1.3: an unknown source is a peer-reflexive remote candidate.
        let ri = match self.streams[stream].checklist.remote_at(component, from) {
            Some(ri) => ri,
            None => {
                let list = &self.streams[stream].checklist;
                if list.remote.len() >= self.config.max_remote_candidates {
                    return;
                }
                let c = Candidate {
                    // Any value unique among remote candidates will do.
                    foundation: format!("prflx{}", list.remote.len()),
                    component,
                    transport: CandidateTransport::Udp,
                    priority: peer_priority,
                    addr: from,
                    kind: CandidateKind::PeerReflexive,
                    related: None,
                };
                self.insert_remote(now, stream, c)
            }
        };
        // USE-CANDIDATE nominates with the value 1; NOMINATION (renomination, which
        // libwebrtc sends without USE-CANDIDATE) with its own.
        let nomination = match msg.get::<NominationAttr>().ok().flatten() {
            Some(NominationAttr(v)) if v > 0 => Some(v),
            _ => msg.get::<UseCandidate>().ok().flatten().map(|_| 1),
        };
        let Some(pi) = self.add_pair(now, stream, li, ri) else {
            return;
        };
        self.streams[stream].checklist.pairs[pi].answered = true;
        if self.config.lite {
            self.lite_request(now, stream, pi, path, from, nomination);
            return;
        }
        let controlled = self.role == Role::Controlled;
        let list = &mut self.streams[stream].checklist;
        let p = &mut list.pairs[pi];
        let nominated = controlled && nominate(&mut p.nomination, nomination);
        // §7.3.1.4: triggered checks.
        match p.state {
            PairState::Succeeded => {
                if nominated {
                    self.select(now, stream, pi);
                }
            }
            state => {
                if state != PairState::InProgress {
                    p.state = PairState::Waiting;
                }
                list.trigger(pi, false);
            }
        }
    }

    /// A lite agent does no checks: the peer's check validates the pair, and its
    /// USE-CANDIDATE selects it (RFC 8445 §7.3.2, as the full agent nominates).
    fn lite_request(
        &mut self,
        now: Instant,
        stream: StreamId,
        pi: PairId,
        path: Path,
        from: SocketAddr,
        nomination: Option<u32>,
    ) {
        let p = &mut self.streams[stream].checklist.pairs[pi];
        let component = p.component;
        p.state = PairState::Succeeded;
        p.valid_local = Some(p.local);
        p.succeeded_at.get_or_insert(now);
        if nominate(&mut p.nomination, nomination) {
            self.select(now, stream, pi);
        }
        // The full peer's checks on the selected pair (its consent checks) are what shows a
        // lite agent that the path still works.
        if let Some(sel) = self.streams[stream].selected_mut(component) {
            if sel.path == path && sel.remote.addr == from {
                sel.last_response = now;
            }
        }
    }

    /// Answers a check: success with XOR-MAPPED-ADDRESS, or an error code; signed with our
    /// password, with FINGERPRINT (§7.3.1).
    fn respond(&mut self, path: Path, to: SocketAddr, request: &Message<'_>, error: Option<u16>) {
        let class = if error.is_some() {
            Class::ErrorResponse
        } else {
            Class::SuccessResponse
        };
        let mut buf = [0u8; 256];
        let built = (|| {
            let mut b = MessageBuilder::new(
                &mut buf,
                MessageType::new(Method::BINDING, class),
                request.transaction_id(),
            )?;
            match error {
                Some(code) => b.add(&ErrorCode::new(code))?,
                None => b.add(&XorMappedAddress(to))?,
            };
            b.add_message_integrity(&self.keys.local_key)?;
            b.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        if let Ok(len) = built {
            self.send_from(path, to, buf[..len].to_vec());
        }
    }

    /// RFC 8445 §7.2.5: an answer to one of our checks (or consent checks).
    fn handle_response(
        &mut self,
        now: Instant,
        stream: StreamId,
        path: Path,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let id = msg.transaction_id();
        let Some((_, key)) = &self.keys.remote else {
            return;
        };
        // Only for a transaction we are waiting for: strays cost no HMAC.
        let authentic = || msg.verify_fingerprint().is_ok() && msg.verify_integrity(key).is_ok();
        let s = &mut self.streams[stream];
        if let Some(sel) = s
            .selected
            .iter_mut()
            .flatten()
            .find(|sel| sel.consent.as_ref().is_some_and(|c| c.id == id))
        {
            if sel.path != path || sel.remote.addr != from {
                return;
            }
            if !authentic() {
                self.stats.auth_failures += 1;
                return;
            }
            sel.consent_answered(now, msg.message_type().class == Class::SuccessResponse);
            return;
        }
        let list = &mut s.checklist;
        let Some(pi) = list.pairs.ids().find(|&p| {
            list.pairs[p]
                .check
                .as_ref()
                .is_some_and(|c| c.id == id || c.previous == Some(id))
        }) else {
            return;
        };
        if !authentic() {
            self.stats.auth_failures += 1;
            return;
        }
        // §7.2.5.2.1: the answer must come from where the request went, to where it left.
        let p = &list.pairs[pi];
        if list.remote[p.remote].addr != from || list.local[p.local].path != path {
            return;
        }
        // The answer to a transaction that a triggered check replaced (§7.3.1.4) validates
        // the pair, but it carries no nomination and no RTT, and the newer check stays in
        // flight: only that one's answer can complete a nomination.
        let current = p.check.as_ref().is_some_and(|c| c.id == id);
        let is_error = msg.message_type().class == Class::ErrorResponse;
        if !current && is_error {
            return;
        }
        let check = if current {
            list.pairs[pi].check.take()
        } else {
            None
        };
        if let Some(check) = check.as_ref().filter(|_| is_error) {
            let code = msg.get::<ErrorCode>().ok().flatten().map(|e| e.code);
            let p = &mut list.pairs[pi];
            if matches!(p.nomination, Nomination::Wanted(_)) {
                p.nomination = Nomination::No;
            }
            if code == Some(487) {
                // §7.2.5.1: switch to the role opposite to the one the request claimed,
                // and check the pair again.
                p.state = PairState::Waiting;
                list.trigger(pi, false);
                self.stats.role_conflicts += 1;
                self.set_role(match check.role {
                    Role::Controlling => Role::Controlled,
                    Role::Controlled => Role::Controlling,
                });
            } else {
                p.state = PairState::Failed;
            }
            return;
        }
        let Ok(Some(XorMappedAddress(mapped))) = msg.get::<XorMappedAddress>() else {
            list.pairs[pi].state = PairState::Failed;
            return;
        };
        self.check_succeeded(
            now,
            stream,
            pi,
            mapped,
            check.as_ref().map(|c| (c.sent_at, c.nominating)),
        );
    }

    /// §7.2.5.3: a check of pair `pi` succeeded with `mapped` as our address; `check` is
    /// when the answered transmission left and whether it nominated (`None` for the answer
    /// to a replaced transaction).
    fn check_succeeded(
        &mut self,
        now: Instant,
        stream: StreamId,
        pi: PairId,
        mapped: SocketAddr,
        check: Option<(Instant, Option<u32>)>,
    ) {
        // §7.2.5.3.1: the valid pair's local candidate is the one the mapped address names;
        // an unknown one is a new peer-reflexive local candidate.
        let list = &self.streams[stream].checklist;
        let (p_local, component) = (list.pairs[pi].local, list.pairs[pi].component);
        let found = list
            .local
            .iter()
            .find(|(_, l)| l.cand.addr == mapped && l.cand.component == component)
            .map(|(i, _)| i);
        let valid_local = match found {
            Some(v) => v,
            None => self
                .add_peer_reflexive(now, stream, p_local, mapped)
                .unwrap_or(p_local),
        };
        let controlled = self.role == Role::Controlled;
        let s = &mut self.streams[stream];
        let p = &mut s.checklist.pairs[pi];
        p.state = PairState::Succeeded;
        p.valid_local = Some(valid_local);
        p.succeeded_at.get_or_insert(now);
        if let Some((sent_at, nominating)) = check {
            p.rtt = Some(now.saturating_duration_since(sent_at));
            if let Some(v) = nominating {
                p.nomination = Nomination::Nominated(v);
            }
        }
        let select = matches!(p.nomination, Nomination::Nominated(_))
            || (controlled && matches!(p.nomination, Nomination::ByPeer(_)));
        let list = &s.checklist;
        tracing::debug!(
            local = %list.local[list.pairs[pi].local].cand.addr,
            remote = %list.remote[list.pairs[pi].remote].addr,
            nomination = ?list.pairs[pi].nomination,
            "pair succeeded"
        );
        // §7.2.5.3.3: unfreeze the pairs of the same foundation, in every stream.
        let (lf, rf) = list.pair_foundation(list.pairs[pi].local, list.pairs[pi].remote);
        let f = (lf.to_owned(), rf.to_owned());
        for s in self.streams.values_mut() {
            s.checklist.unfreeze((&f.0, &f.1));
        }
        // A successful check on the selected pair is consent too.
        if let Some(sel) = self.streams[stream].selected_mut(component) {
            if sel.pair == Some(pi) {
                sel.last_response = now;
            }
        }
        if select {
            self.select(now, stream, pi);
        }
    }
}

/// The peer nominated a pair with `value` (`None`: it did not): a higher value than the
/// pair had replaces it. Whether the pair is now nominated by the peer with this value.
fn nominate(pair: &mut Nomination, value: Option<u32>) -> bool {
    let Some(v) = value else {
        return false;
    };
    match *pair {
        Nomination::ByPeer(old) if old >= v => false,
        _ => {
            *pair = Nomination::ByPeer(v);
            true
        }
    }
}
