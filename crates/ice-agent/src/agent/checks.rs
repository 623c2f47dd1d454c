//! Sending connectivity checks (RFC 8445 §6.1.4, §7.2.4) paced by Ta, their retransmission
//! (§14.3), nomination by the controlling agent (§8.1.1), selection, and consent freshness
//! (RFC 7675) with keepalives (§11).

use std::net::SocketAddr;
use std::time::Instant;

use stun_codec::attr::{IceControlled, IceControlling, Priority, UseCandidate, Username};
use stun_codec::{Class, MessageBuilder, MessageType, Method};

use super::*;
use crate::candidate::priority;
use sans_io::RetransmitAction;

impl Agent {
    /// Makes sure the pacing timer runs if there may be something to check.
    pub(super) fn wake_checks(&mut self, now: Instant) {
        if self.next_check.is_some() || self.remote_credentials.is_none() || self.config.lite {
            return;
        }
        let earliest = self.last_check.map_or(now, |t| t + self.config.ta);
        self.next_check = Some(earliest.max(now));
    }

    /// Sends `bytes` to `to` from a local candidate's path: moved into the transmit from a
    /// socket, framed for the relay from a relayed candidate. False when it cannot go (no
    /// TURN permission for the peer yet).
    pub(super) fn send_from(&mut self, path: Path, to: SocketAddr, bytes: Vec<u8>) -> bool {
        match path {
            Path::Socket(i) => {
                self.transmits.push_back(Transmit {
                    via: Via::Udp {
                        local: self.sockets[i].addr,
                        remote: to,
                    },
                    data: bytes,
                });
                true
            }
            Path::Relay(t) => match self.turns[t].client.send_to(to, &bytes, &mut self.buf) {
                Ok(len) => {
                    let via = self.turn_via(t);
                    let data = self.buf[..len].to_vec();
                    self.transmits.push_back(Transmit { via, data });
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Whether a check can leave from this local candidate to this remote one now: a relayed
    /// candidate needs the TURN permission first.
    fn path_ready(&self, stream: usize, p: &Pair) -> bool {
        let s = &self.streams[stream];
        match s.local[p.local].path {
            Path::Socket(_) => true,
            Path::Relay(t) => self.turns[t]
                .client
                .has_permission(s.remote[p.remote].addr.ip()),
        }
    }

    pub(super) fn checks_timeout(&mut self, now: Instant) {
        // Retransmissions and give-ups of checks in flight.
        for si in 0..self.streams.len() {
            for pi in 0..self.streams[si].pairs.len() {
                let Some(check) = self.streams[si].pairs[pi].check.as_mut() else {
                    continue;
                };
                let action = if now >= check.deadline {
                    Some(RetransmitAction::TimedOut)
                } else {
                    check.timer.poll(now)
                };
                match action {
                    Some(RetransmitAction::Resend) => {
                        check.sent_at = now;
                        let bytes = check.bytes.clone();
                        let p = &self.streams[si].pairs[pi];
                        let path = self.streams[si].local[p.local].path;
                        let to = self.streams[si].remote[p.remote].addr;
                        self.stats.checks_sent += 1;
                        self.send_from(path, to, bytes);
                    }
                    Some(RetransmitAction::TimedOut) => {
                        let p = &mut self.streams[si].pairs[pi];
                        p.check = None;
                        p.nominate = false;
                        p.state = PairState::Failed;
                        // Its foundation may be idle now: a frozen pair can go.
                        self.wake_checks(now);
                    }
                    None => {}
                }
            }
        }
        self.maybe_nominate(now);
        // One new check per Ta (§6.1.4.2).
        if self.next_check.is_some_and(|t| t <= now) {
            self.next_check = None;
            if let Some((si, pi)) = self.next_pair() {
                self.send_check(now, si, pi);
                self.last_check = Some(now);
                self.next_check = Some(now + self.config.ta);
            }
        }
    }

    /// The pair to check next: the triggered queue first, then the highest-priority Waiting
    /// pair, then the highest-priority Frozen one whose foundation is idle (§6.1.4.2).
    fn next_pair(&mut self) -> Option<(usize, usize)> {
        if self.remote_credentials.is_none() || self.config.lite {
            return None;
        }
        for si in 0..self.streams.len() {
            let mut skipped = VecDeque::new();
            let mut found = None;
            while let Some(pi) = self.streams[si].triggered.pop_front() {
                let p = &self.streams[si].pairs[pi];
                if p.state == PairState::Failed && !p.nominate {
                    self.streams[si].pairs[pi].queued = false;
                    continue;
                }
                if self.path_ready(si, p) {
                    self.streams[si].pairs[pi].queued = false;
                    found = Some(pi);
                    break;
                }
                skipped.push_back(pi);
            }
            // Not ready yet (waiting for a TURN permission): keep their place.
            while let Some(pi) = skipped.pop_back() {
                self.streams[si].triggered.push_front(pi);
            }
            if let Some(pi) = found {
                return Some((si, pi));
            }
        }
        let mut best: Option<(usize, usize, u64)> = None;
        for si in 0..self.streams.len() {
            let s = &self.streams[si];
            for (pi, p) in s.pairs.iter().enumerate() {
                if p.state == PairState::Waiting
                    && !self.component_done(s, p.component)
                    && best.is_none_or(|b| p.priority > b.2)
                    && self.path_ready(si, p)
                {
                    best = Some((si, pi, p.priority));
                }
            }
        }
        if let Some((si, pi, _)) = best {
            return Some((si, pi));
        }
        for si in 0..self.streams.len() {
            let s = &self.streams[si];
            let frozen = s
                .pairs
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.state == PairState::Frozen
                        && !self.component_done(s, p.component)
                        && !s.foundation_busy(p.local, p.remote)
                        && self.path_ready(si, p)
                })
                .max_by_key(|(_, p)| p.priority)
                .map(|(i, _)| i);
            if let Some(pi) = frozen {
                return Some((si, pi));
            }
        }
        None
    }

    /// Builds a Binding request for a pair: USERNAME, PRIORITY, the role attribute,
    /// USE-CANDIDATE when nominating, MESSAGE-INTEGRITY with the peer's password,
    /// FINGERPRINT (§7.2.2).
    fn check_request(
        &mut self,
        stream: usize,
        local: usize,
        nominating: bool,
    ) -> Option<(TransactionId, Vec<u8>)> {
        let id = self.new_transaction_id();
        let remote = self.remote_credentials.as_ref()?;
        let key = self.remote_key.as_ref()?;
        let l = &self.streams[stream].local[local];
        let prio = priority(CandidateKind::PeerReflexive, l.local_pref, l.cand.component);
        let username = format!("{}:{}", remote.ufrag, self.local_credentials.ufrag);
        let mut buf = [0u8; 256];
        let built = (|| {
            let mut b = MessageBuilder::new(
                &mut buf,
                MessageType::new(Method::BINDING, Class::Request),
                id,
            )?;
            b.add(&Username(&username))?.add(&Priority(prio))?;
            match self.role {
                Role::Controlling => b.add(&IceControlling(self.tie_breaker))?,
                Role::Controlled => b.add(&IceControlled(self.tie_breaker))?,
            };
            if nominating {
                b.add(&UseCandidate)?;
            }
            b.add_message_integrity(key)?.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        Some((id, buf[..built.ok()?].to_vec()))
    }

    fn send_check(&mut self, now: Instant, si: usize, pi: usize) {
        let p = &self.streams[si].pairs[pi];
        let nominating = p.nominate && self.role == Role::Controlling;
        let (local, remote) = (p.local, p.remote);
        let Some((id, bytes)) = self.check_request(si, local, nominating) else {
            return;
        };
        let path = self.streams[si].local[local].path;
        let to = self.streams[si].remote[remote].addr;
        tracing::trace!(local = %self.streams[si].local[local].cand.addr, remote = %to, nominating, "check");
        self.stats.checks_sent += 1;
        self.send_from(path, to, bytes.clone());
        let role = self.role;
        let p = &mut self.streams[si].pairs[pi];
        let previous = p.check.as_ref().map(|c| c.id);
        p.first_sent.get_or_insert(now);
        p.check = Some(Check {
            id,
            sent_at: now,
            previous,
            role,
            timer: Retransmit::udp(now, self.config.rto, self.config.max_check_sends, 16),
            deadline: now + self.config.check_timeout,
            nominating,
            bytes,
        });
        if p.state != PairState::Succeeded {
            p.state = PairState::InProgress;
        }
    }

    /// When the controlling agent should nominate in a stream (§8.1.1): once the best
    /// succeeded pair of a component can no longer be beaten by a pair still in play, and
    /// at the latest `nomination_grace` after it succeeded.
    pub(super) fn nomination_due(&self, s: &Stream) -> Option<Instant> {
        if self.role != Role::Controlling || self.config.lite || self.remote_credentials.is_none() {
            return None;
        }
        let mut due: Option<Instant> = None;
        for c in 1..=s.components {
            if let Some((_, t)) = self.nomination_candidate(s, c) {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        }
        due
    }

    /// The pair to nominate for a component and from when.
    ///
    /// A pair of higher priority than the best succeeded one can still beat it while it
    /// waits for its first check, or while its check is younger than twice the round trip
    /// the best pair took: an answer slower than that is unlikely, since the paths of
    /// higher-priority pairs are the shorter ones (host before reflexive before relayed).
    /// No fixed per-type waits; the grace bounds the wait when pairs are never tried.
    fn nomination_candidate(&self, s: &Stream, component: u16) -> Option<(usize, Instant)> {
        let of_component = || {
            s.pairs
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.component == component)
        };
        if of_component().any(|(_, p)| p.nominated || p.nominate) {
            return None;
        }
        let (bi, best) = of_component()
            .filter(|(_, p)| p.state == PairState::Succeeded)
            .max_by_key(|(_, p)| p.priority)?;
        let succeeded = best.succeeded_at?;
        let rtt = best.rtt.unwrap_or(self.config.rto);
        let cap = succeeded + self.config.nomination_grace;
        let mut due = succeeded;
        for (_, p) in of_component().filter(|(_, p)| p.priority > best.priority) {
            let until = match (p.state, p.first_sent) {
                (PairState::Failed | PairState::Succeeded, _) => continue,
                (PairState::InProgress, Some(first)) => first + 2 * rtt,
                _ => cap,
            };
            due = due.max(until.min(cap));
        }
        Some((bi, due))
    }

    pub(super) fn maybe_nominate(&mut self, now: Instant) {
        if self.role != Role::Controlling || self.config.lite {
            return;
        }
        for si in 0..self.streams.len() {
            for c in 1..=self.streams[si].components {
                let Some((pi, at)) = self.nomination_candidate(&self.streams[si], c) else {
                    continue;
                };
                if at > now {
                    continue;
                }
                tracing::debug!(stream = si, component = c, "nominating");
                let p = &mut self.streams[si].pairs[pi];
                p.nominate = true;
                if !p.queued {
                    p.queued = true;
                    self.streams[si].triggered.push_front(pi);
                }
                self.wake_checks(now);
            }
        }
    }

    /// Makes a succeeded pair the component's selected pair.
    pub(super) fn select(&mut self, now: Instant, stream: usize, pi: usize) {
        let s = &self.streams[stream];
        let p = &s.pairs[pi];
        let c = usize::from(p.component - 1);
        if let Some(cur) = &s.selected[c] {
            if cur.pair == Some(pi) {
                return;
            }
            // An aggressive peer may nominate several pairs: the highest priority wins
            // (RFC 8445 §8.1.1 for the controlled agent).
            if let Some(cp) = cur.pair {
                if s.pairs[cp].priority > p.priority {
                    return;
                }
            }
        }
        // Cloned only once the pair is really taken (not for every repeated nomination).
        let local = s.local[p.valid_local.unwrap_or(p.local)].cand.clone();
        let remote = s.remote[p.remote].clone();
        let path = s.local[p.local].path;
        tracing::info!(stream, component = p.component, local = %local.addr, local_type = %local.kind,
            remote = %remote.addr, remote_type = %remote.kind, "selected pair");
        if let Path::Relay(t) = path {
            self.turns[t].client.bind_channel(now, remote.addr);
            self.drain_turn(now, t);
        }
        let next_consent = now + self.jitter(self.config.consent_interval);
        self.streams[stream].selected[c] = Some(Selected {
            pair: Some(pi),
            local: local.clone(),
            remote: remote.clone(),
            path,
            last_response: now,
            next_consent,
            consent: None,
            last_sent: now,
        });
        // A component that lost consent may come back after a restart.
        self.consent_lost = false;
        self.events.push_back(Event::SelectedPair {
            stream: StreamId(stream),
            component: c as u16 + 1,
            local,
            remote,
        });
        // After a restart, once every component has its new pair, an allocation that is in
        // neither generation goes: kept over the restart but not confirmed in time, it has no
        // candidate and no selected pair runs through it.
        if self.all_selected() == Some(true)
            && self
                .streams
                .iter()
                .all(|s| s.selected.iter().flatten().all(|x| x.pair.is_some()))
        {
            for t in 0..self.turns.len() {
                let turn = &self.turns[t];
                let orphan = turn.candidate.is_none()
                    && !turn.revalidating
                    && turn.client.relayed().is_some()
                    && !turn.client.is_done()
                    && !self
                        .streams
                        .iter()
                        .flat_map(|s| s.selected.iter().flatten())
                        .any(|sel| sel.path == Path::Relay(t));
                if orphan {
                    self.turns[t].client.close(now);
                    self.drain_turn(now, t);
                    if let TurnPath::Connection(id, _) = self.turns[t].path {
                        self.requests.push_back(DriverRequest::Close { id });
                    }
                }
            }
        }
    }

    /// Consent freshness (RFC 7675 §5.1) and keepalives (RFC 8445 §11).
    pub(super) fn consent_timeout(&mut self, now: Instant) {
        for si in 0..self.streams.len() {
            for c in 0..self.streams[si].selected.len() {
                let Some(sel) = self.streams[si].selected[c].as_mut() else {
                    continue;
                };
                // For a lite agent `last_response` is the peer's last authenticated check
                // on the pair (it sends none of its own).
                if now >= sel.last_response + self.config.consent_timeout {
                    tracing::warn!(stream = si, component = c + 1, "consent lost");
                    self.streams[si].selected[c] = None;
                    self.consent_lost = true;
                    continue;
                }
                if self.config.lite {
                    // A lite agent sends no checks: Binding indications keep the path.
                    if now >= sel.last_sent + self.config.keepalive_interval {
                        sel.last_sent = now;
                        let (path, to) = (sel.path, sel.remote.addr);
                        self.keepalive(path, to);
                    }
                    continue;
                }
                if let Some(check) = sel.consent.as_mut() {
                    match check.timer.poll(now) {
                        Some(RetransmitAction::Resend) => {
                            let bytes = check.bytes.clone();
                            let (path, to) = (sel.path, sel.remote.addr);
                            self.stats.consent_checks_sent += 1;
                            self.send_from(path, to, bytes);
                        }
                        Some(RetransmitAction::TimedOut) => sel.consent = None,
                        None => {}
                    }
                }
                let sel = self.streams[si].selected[c].as_mut().expect("still there");
                if now < sel.next_consent {
                    continue;
                }
                let Some(pi) = sel.pair.filter(|_| self.remote_credentials.is_some()) else {
                    // Restarting: no credentials to check with yet. Try again later, so the
                    // timer does not stay in the past.
                    sel.next_consent = now + self.config.consent_interval;
                    continue;
                };
                let local = self.streams[si].pairs[pi].local;
                let Some((id, bytes)) = self.check_request(si, local, false) else {
                    continue;
                };
                let interval = self.jitter(self.config.consent_interval);
                let role = self.role;
                let sel = self.streams[si].selected[c].as_mut().expect("still there");
                let (path, to) = (sel.path, sel.remote.addr);
                sel.next_consent = now + interval;
                // Retransmitted as a STUN transaction until the next consent check.
                sel.consent = Some(Check {
                    id,
                    sent_at: now,
                    previous: None,
                    role,
                    timer: Retransmit::udp(now, self.config.rto, u32::MAX, 1)
                        .with_deadline(now + interval),
                    deadline: now + interval,
                    nominating: false,
                    bytes: bytes.clone(),
                });
                sel.last_sent = now;
                self.stats.consent_checks_sent += 1;
                self.send_from(path, to, bytes);
            }
        }
    }

    fn keepalive(&mut self, path: Path, to: SocketAddr) {
        let id = self.new_transaction_id();
        let mut buf = [0u8; 64];
        let Ok(mut b) = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Indication),
            id,
        ) else {
            return;
        };
        if b.add_fingerprint().is_err() {
            return;
        }
        let bytes = b.finish().to_vec();
        self.send_from(path, to, bytes);
    }
}
