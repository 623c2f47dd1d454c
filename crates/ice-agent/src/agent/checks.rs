//! Sending connectivity checks (RFC 8445 §6.1.4, §7.2.4) paced by Ta, and their
//! retransmission (§14.3).

use std::net::SocketAddr;
use std::time::Instant;

use sans_io::{Retransmit, RetransmitAction, Transmit, Transport};
use stun_codec::attr::{
    IceControlled, IceControlling, Nomination, Priority, UseCandidate, Username,
};
use stun_codec::{Class, MessageBuilder, MessageType, Method, TransactionId};

use super::checklist::{Check, Nomination as PairNomination, Pair, PairState, Path};
use super::ids::{LocalId, PairId};
use super::Agent;
use crate::candidate::{priority, CandidateKind};
use crate::{Role, StreamId};

impl Agent {
    /// Arms the pacing timer if a check can go (one new check per Ta, §6.1.4.2).
    pub(super) fn wake_checks(&mut self, now: Instant) {
        if self.next_check.is_some() || self.pick_pair().is_none() {
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
                self.out.transmit(Transmit {
                    transport: Transport::Udp,
                    local: self.gathering.sockets[i].addr,
                    remote: to,
                    data: bytes,
                });
                true
            }
            Path::Relay(r) => {
                let Some(client) = self.gathering.relays[r].client.as_mut() else {
                    return false;
                };
                match client.send_to(to, &bytes, &mut self.buf) {
                    Ok(t) => {
                        let t = t.to_owned();
                        self.out.transmit(t);
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// Whether a check can leave from this local candidate to this remote one now: a relayed
    /// candidate needs the TURN permission first.
    fn path_ready(&self, stream: StreamId, p: &Pair) -> bool {
        let list = &self.streams[stream].checklist;
        match list.local[p.local].path {
            Path::Socket(_) => true,
            Path::Relay(r) => self.gathering.relays[r]
                .client
                .as_ref()
                .is_some_and(|c| c.has_permission(list.remote[p.remote].addr.ip())),
        }
    }

    /// Retransmissions and give-ups of checks in flight, nomination, then the next new check
    /// if the pacing timer says so.
    pub(super) fn checks_timeout(&mut self, now: Instant) {
        for si in self.streams.ids() {
            for pi in self.streams[si].checklist.pairs.ids() {
                let Some(check) = self.streams[si].checklist.pairs[pi].check.as_mut() else {
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
                        let list = &self.streams[si].checklist;
                        let p = &list.pairs[pi];
                        let (path, to) = (list.local[p.local].path, list.remote[p.remote].addr);
                        self.stats.checks_sent += 1;
                        self.send_from(path, to, bytes);
                    }
                    Some(RetransmitAction::TimedOut) => {
                        let p = &mut self.streams[si].checklist.pairs[pi];
                        p.check = None;
                        if matches!(p.nomination, PairNomination::Wanted(_)) {
                            p.nomination = PairNomination::No;
                        }
                        p.state = PairState::Failed;
                    }
                    None => {}
                }
            }
        }
        self.maybe_nominate(now);
        // Its foundation may be idle now: a frozen pair can go.
        self.pace(now);
    }

    /// One new check per Ta (§6.1.4.2): the pacing timer is armed if a check can go, and
    /// when it is due, the next pair is checked. Run by every timeout after whatever may have
    /// made a pair checkable, so the pacing timer is never left due.
    pub(super) fn pace(&mut self, now: Instant) {
        self.wake_checks(now);
        if self.next_check.is_some_and(|t| t <= now) {
            self.next_check = None;
            if let Some((si, pi)) = self.next_pair() {
                self.send_check(now, si, pi);
                self.last_check = Some(now);
                self.next_check = Some(now + self.config.ta);
            }
        }
    }

    /// The pair to check next, without taking it: the triggered queue first, then the
    /// highest-priority Waiting pair, then the highest-priority Frozen one whose foundation
    /// is idle (§6.1.4.2).
    fn pick_pair(&self) -> Option<(StreamId, PairId)> {
        if self.remote_keys().is_none() || self.config.lite {
            return None;
        }
        for (si, s) in self.streams.iter() {
            let list = &s.checklist;
            let found = list.triggered.iter().copied().find(|&pi| {
                let p = &list.pairs[pi];
                !dropped(p) && self.path_ready(si, p)
            });
            if let Some(pi) = found {
                return Some((si, pi));
            }
        }
        let renominating = self.renominating();
        let mut best: Option<(StreamId, PairId, u64)> = None;
        for (si, s) in self.streams.iter() {
            for (pi, p) in s.checklist.pairs.iter() {
                if p.state == PairState::Waiting
                    && s.worth_checking(p, renominating)
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
        for (si, s) in self.streams.iter() {
            let list = &s.checklist;
            let frozen = list
                .pairs
                .iter()
                .filter(|(_, p)| {
                    p.state == PairState::Frozen
                        && s.worth_checking(p, renominating)
                        && !list.foundation_busy(p.local, p.remote)
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

    /// [`pick_pair`](Self::pick_pair), taking the pair off the triggered queue (with the
    /// pairs ahead of it that failed meanwhile).
    fn next_pair(&mut self) -> Option<(StreamId, PairId)> {
        let (si, pi) = self.pick_pair()?;
        let list = &mut self.streams[si].checklist;
        if let Some(at) = list.triggered.iter().position(|&x| x == pi) {
            let mut ahead: Vec<PairId> = list.triggered.drain(..=at).collect();
            ahead.pop();
            for x in ahead.into_iter().rev() {
                if !dropped(&list.pairs[x]) {
                    list.triggered.push_front(x);
                }
            }
        }
        Some((si, pi))
    }

    /// Builds a Binding request from `local`: USERNAME, PRIORITY, the role attribute,
    /// USE-CANDIDATE when nominating (and NOMINATION, renominating), MESSAGE-INTEGRITY with
    /// the peer's password, FINGERPRINT (§7.2.2).
    pub(super) fn check_request(
        &mut self,
        stream: StreamId,
        local: LocalId,
        nominating: Option<u32>,
    ) -> Option<(TransactionId, Vec<u8>)> {
        let id = self.new_transaction_id();
        let (remote, key) = self.keys.remote.as_ref()?;
        let l = &self.streams[stream].checklist.local[local];
        let prio = priority(CandidateKind::PeerReflexive, l.local_pref, l.cand.component);
        let username = format!("{}:{}", remote.ufrag, self.keys.local.ufrag);
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
            if let Some(value) = nominating {
                b.add(&UseCandidate)?;
                if value > 0 {
                    b.add(&Nomination(value))?;
                }
            }
            b.add_message_integrity(key)?.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        Some((id, buf[..built.ok()?].to_vec()))
    }

    fn send_check(&mut self, now: Instant, si: StreamId, pi: PairId) {
        let p = &self.streams[si].checklist.pairs[pi];
        let nominating = match p.nomination {
            PairNomination::Wanted(v) | PairNomination::Nominated(v)
                if self.role == Role::Controlling =>
            {
                Some(v)
            }
            _ => None,
        };
        let (local, remote) = (p.local, p.remote);
        let Some((id, bytes)) = self.check_request(si, local, nominating) else {
            return;
        };
        let list = &self.streams[si].checklist;
        let (path, to) = (list.local[local].path, list.remote[remote].addr);
        tracing::trace!(local = %list.local[local].cand.addr, remote = %to, ?nominating, "check");
        self.stats.checks_sent += 1;
        self.send_from(path, to, bytes.clone());
        let role = self.role;
        let p = &mut self.streams[si].checklist.pairs[pi];
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
}

/// A triggered pair that failed meanwhile, and is not to be nominated: it leaves the queue.
fn dropped(p: &Pair) -> bool {
    p.state == PairState::Failed && !matches!(p.nomination, PairNomination::Wanted(_))
}
