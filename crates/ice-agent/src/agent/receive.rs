//! What arrives: STUN server answers, TURN traffic, connectivity checks (RFC 8445 §7.3) and
//! their answers (§7.2.5), and application data, delivered only from a validated pair.

use std::net::SocketAddr;
use std::time::Instant;

use stun_codec::attr::{
    ErrorCode, IceControlled, IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
};
use stun_codec::{demux, Class, Message, MessageBuilder, MessageType, Method, PacketKind};

use super::*;
use crate::candidate::priority;

impl Agent {
    /// A datagram arrived on the local socket `local` from `from`. Returns application data
    /// if it came on a validated pair (directly or through a TURN relay); STUN is consumed.
    /// Anything malformed, unauthenticated or unexpected is dropped without creating state.
    pub fn handle_receive<'a>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<Received<'a>> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        let si = self.sockets.iter().position(|s| s.addr == local)?;
        let is_stun = demux(data) == PacketKind::Stun;
        if is_stun
            && self
                .srflx
                .iter()
                .any(|r| r.socket == si && r.server == from)
        {
            if let Ok(msg) = Message::parse(data) {
                if self.srflx_response(now, si, from, &msg) {
                    self.update_state(now);
                    return None;
                }
            }
        }
        // A lost allocation may share socket and server with its replacement: the live one
        // takes the answers.
        // One walk: the first live match, else the first match (`min_by_key` keeps the
        // first of equal keys).
        if let Some(t) = self
            .turns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.path == TurnPath::Udp(si) && t.client.server() == from)
            .min_by_key(|(_, t)| t.client.is_done())
            .map(|(i, _)| i)
        {
            let got = self.turns[t].client.handle_datagram(now, data);
            self.drain_turn(now, t);
            let r = got.and_then(|(peer, payload)| self.on_relay_packet(now, t, peer, payload));
            if r.is_none() {
                self.update_state(now);
            }
            return r;
        }
        let stream = self.sockets[si].stream;
        let r = self.on_packet(
            now,
            stream,
            self.sockets[si].candidate,
            Path::Socket(si),
            from,
            data,
        );
        // Application data changes no state: keep the per-packet path free of the walk
        // over every pair.
        if r.is_none() {
            self.update_state(now);
        }
        r
    }

    pub(super) fn on_relay_packet<'a>(
        &mut self,
        now: Instant,
        t: usize,
        peer: SocketAddr,
        data: &'a [u8],
    ) -> Option<Received<'a>> {
        let stream = self.turns[t].stream;
        let local = self.turns[t].candidate;
        self.on_packet(now, stream, local, Path::Relay(t), peer, data)
    }

    /// A packet from `from` that reached the local candidate `local` (its base) over `path`.
    fn on_packet<'a>(
        &mut self,
        now: Instant,
        stream: usize,
        local: Option<usize>,
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
        let component = s
            .selected
            .iter()
            .flatten()
            .find(|sel| sel.path == path && sel.remote.addr == from)
            .map(|sel| sel.local.component)
            .or_else(|| {
                s.pairs
                    .iter()
                    .find(|p| {
                        p.state == PairState::Succeeded
                            && s.local[p.local].path == path
                            && s.remote[p.remote].addr == from
                    })
                    .map(|p| p.component)
            });
        match component {
            Some(component) => Some(Received {
                stream: StreamId(stream),
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
        stream: usize,
        li: usize,
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
                if u.0.split_once(':').is_some_and(|(ours, _)| ours == self.local_credentials.ufrag))
            && msg.verify_integrity(&self.local_key).is_ok();
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

        let component = self.streams[stream].local[li].cand.component;
        // §7.3.1.3: an unknown source is a peer-reflexive remote candidate.
        let ri = match self.streams[stream].remote_index.get(&(component, from)) {
            Some(&ri) => ri,
            None => {
                if self.streams[stream].remote.len() >= self.config.max_remote_candidates {
                    return;
                }
                let n = self.streams[stream].remote.len();
                let c = Candidate {
                    // Any value unique among remote candidates will do.
                    foundation: format!("prflx{n}"),
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
        let use_candidate = msg.get::<UseCandidate>().ok().flatten().is_some();
        let Some(pi) = self.add_pair(now, stream, li, ri) else {
            return;
        };
        if self.config.lite {
            // A lite agent does no checks: the peer's check validates the pair, and its
            // USE-CANDIDATE selects it (RFC 8445 §7.3.2 … as the full agent nominates).
            let p = &mut self.streams[stream].pairs[pi];
            p.state = PairState::Succeeded;
            p.valid_local = Some(li);
            p.succeeded_at.get_or_insert(now);
            if use_candidate {
                p.remote_nominated = true;
                self.select(now, stream, pi);
            }
            // The full peer's checks on the selected pair (its consent checks) are what
            // shows a lite agent that the path still works.
            if let Some(sel) = self.streams[stream].selected[usize::from(component - 1)].as_mut() {
                if sel.path == path && sel.remote.addr == from {
                    sel.last_response = now;
                }
            }
            return;
        }
        let controlled = self.role == Role::Controlled;
        let p = &mut self.streams[stream].pairs[pi];
        if use_candidate && controlled {
            p.remote_nominated = true;
        }
        // §7.3.1.4: triggered checks.
        match p.state {
            PairState::Succeeded => {
                if use_candidate && controlled {
                    self.select(now, stream, pi);
                }
            }
            _ => {
                if p.state != PairState::InProgress {
                    p.state = PairState::Waiting;
                }
                if !p.queued {
                    p.queued = true;
                    self.streams[stream].triggered.push_back(pi);
                }
                self.wake_checks(now);
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
            b.add_message_integrity(&self.local_key)?;
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
        stream: usize,
        path: Path,
        from: SocketAddr,
        msg: &Message<'_>,
    ) {
        let id = msg.transaction_id();
        let Some(key) = &self.remote_key else {
            return;
        };
        // Only for a transaction we are waiting for: strays cost no HMAC.
        let authentic = || msg.verify_fingerprint().is_ok() && msg.verify_integrity(key).is_ok();
        // A consent check?
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
            sel.consent = None;
            if msg.message_type().class == Class::SuccessResponse {
                sel.last_response = now;
            }
            return;
        }
        let Some(pi) = s.pairs.iter().position(|p| {
            p.check
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
        let p = &s.pairs[pi];
        if s.remote[p.remote].addr != from || s.local[p.local].path != path {
            return;
        }
        // The answer to a transaction that a triggered check replaced (§7.3.1.4) validates
        // the pair, but it carries no nomination and no RTT, and the newer check stays in
        // flight: only that one's answer can complete a nomination.
        let current = s.pairs[pi].check.as_ref().is_some_and(|c| c.id == id);
        let is_error = msg.message_type().class == Class::ErrorResponse;
        if !current && is_error {
            return;
        }
        let check = if current {
            s.pairs[pi].check.take()
        } else {
            None
        };
        if let Some(check) = check.as_ref().filter(|_| is_error) {
            let code = msg.get::<ErrorCode>().ok().flatten().map(|e| e.code);
            if code == Some(487) {
                // §7.2.5.1: switch to the role opposite to the one the request claimed,
                // and check the pair again.
                self.stats.role_conflicts += 1;
                let new = match check.role {
                    Role::Controlling => Role::Controlled,
                    Role::Controlled => Role::Controlling,
                };
                self.set_role(new);
                let p = &mut self.streams[stream].pairs[pi];
                p.state = PairState::Waiting;
                p.nominate = false;
                if !p.queued {
                    p.queued = true;
                    self.streams[stream].triggered.push_back(pi);
                }
                self.wake_checks(now);
            } else {
                let p = &mut self.streams[stream].pairs[pi];
                p.state = PairState::Failed;
                p.nominate = false;
            }
            return;
        }
        let Ok(Some(XorMappedAddress(mapped))) = msg.get::<XorMappedAddress>() else {
            self.streams[stream].pairs[pi].state = PairState::Failed;
            return;
        };
        // §7.2.5.3.1: the valid pair's local candidate is the one the mapped address names;
        // an unknown one is a new peer-reflexive local candidate.
        let p_local = self.streams[stream].pairs[pi].local;
        let component = self.streams[stream].pairs[pi].component;
        let found = self.streams[stream]
            .local
            .iter()
            .position(|l| l.cand.addr == mapped && l.cand.component == component);
        let valid_local = match found {
            Some(v) => v,
            None => {
                let l = &self.streams[stream].local[p_local];
                let (pref, base, lpath) = (l.local_pref, l.base, l.path);
                let foundation = self.foundation(CandidateKind::PeerReflexive, base.ip(), None);
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
                    path: lpath,
                    local_pref: pref,
                };
                // Not signalled (§7.2.5.3.1) and not paired: checks go from the base.
                self.add_local(now, stream, c, false).unwrap_or(p_local)
            }
        };
        let s = &mut self.streams[stream];
        let p = &mut s.pairs[pi];
        p.state = PairState::Succeeded;
        p.valid_local = Some(valid_local);
        p.succeeded_at.get_or_insert(now);
        if let Some(check) = &check {
            p.rtt = Some(now.saturating_duration_since(check.sent_at));
        }
        if check.as_ref().is_some_and(|c| c.nominating) {
            p.nominated = true;
        }
        let select = p.nominated || (self.role == Role::Controlled && p.remote_nominated);
        tracing::debug!(
            local = %s.local[p.local].cand.addr,
            remote = %s.remote[p.remote].addr,
            nominated = p.nominated,
            "pair succeeded"
        );
        // §7.2.5.3.3: unfreeze the pairs of the same foundation, in every stream.
        let (lf, rf) = s.pair_foundation(s.pairs[pi].local, s.pairs[pi].remote);
        let f = (lf.to_owned(), rf.to_owned());
        for s in &mut self.streams {
            for i in 0..s.pairs.len() {
                if s.pairs[i].state == PairState::Frozen
                    && s.pair_foundation(s.pairs[i].local, s.pairs[i].remote) == (&f.0, &f.1)
                {
                    s.pairs[i].state = PairState::Waiting;
                }
            }
        }
        self.wake_checks(now);
        // A successful check on the selected pair is consent too.
        if let Some(sel) = self.streams[stream].selected[usize::from(component - 1)].as_mut() {
            if sel.pair == Some(pi) {
                sel.last_response = now;
            }
        }
        if select {
            self.select(now, stream, pi);
        }
        self.maybe_nominate(now);
    }
}
