//! The selected pair of a component and its consent freshness (RFC 7675): consent checks
//! while a full agent, keepalives while a lite one (RFC 8445 §11).

use std::net::SocketAddr;
use std::time::Instant;

use sans_io::{Retransmit, RetransmitAction};
use stun_codec::{Class, MessageBuilder, MessageType, Method};

use super::checklist::{Check, Path};
use super::ids::PairId;
use super::Agent;
use crate::candidate::Candidate;
use crate::config::AgentConfig;
use crate::event::ConnectionState;

/// The selected pair of a component, kept apart from the check list so an ICE restart can
/// clear the list while data still flows (RFC 8445 §9).
#[derive(Debug)]
pub(super) struct Selected {
    /// Its pair in the check list; `None` after a restart, until a new pair is selected.
    pub pair: Option<PairId>,
    pub local: Candidate,
    pub remote: Candidate,
    pub path: Path,
    /// The last answered consent check (a lite agent: the peer's last check on the pair).
    pub last_response: Instant,
    pub next_consent: Instant,
    pub consent: Option<Check>,
    pub last_sent: Instant,
}

impl Selected {
    pub(super) fn new(
        pair: PairId,
        local: Candidate,
        remote: Candidate,
        path: Path,
        now: Instant,
        next_consent: Instant,
    ) -> Selected {
        Selected {
            pair: Some(pair),
            local,
            remote,
            path,
            last_response: now,
            next_consent,
            consent: None,
            last_sent: now,
        }
    }

    /// The answer to the consent check in flight came.
    pub(super) fn consent_answered(&mut self, now: Instant, success: bool) {
        self.consent = None;
        if success {
            self.last_response = now;
        }
    }

    /// Its timers: the next consent check (or keepalive) and its retransmission, the loss
    /// of consent, and the moment the state shows `Disconnected`.
    pub(super) fn timers(
        &self,
        config: &AgentConfig,
        state: ConnectionState,
        at: &mut impl FnMut(Instant),
    ) {
        if config.lite {
            // No consent checks of its own: keepalives instead.
            at(self.last_sent + config.keepalive_interval);
        } else {
            at(self.next_consent);
            if let Some(c) = &self.consent {
                at(c.timer.next());
            }
        }
        at(self.last_response + config.consent_timeout);
        if matches!(
            state,
            ConnectionState::Connected | ConnectionState::Completed
        ) {
            at(self.last_response + config.disconnected_after);
        }
    }
}

impl Agent {
    /// Consent freshness (RFC 7675 §5.1) and keepalives (RFC 8445 §11).
    pub(super) fn consent_timeout(&mut self, now: Instant) {
        for si in self.streams.ids() {
            for c in 0..self.streams[si].selected.len() {
                let Some(sel) = self.streams[si].selected[c].as_mut() else {
                    continue;
                };
                // For a lite agent `last_response` is the peer's last authenticated check
                // on the pair (it sends none of its own).
                if now >= sel.last_response + self.config.consent_timeout {
                    tracing::warn!(stream = si.0, component = c + 1, "consent lost");
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
                let Some(pi) = sel.pair.filter(|_| self.keys.remote.is_some()) else {
                    // Restarting: no credentials to check with yet. Try again later, so the
                    // timer does not stay in the past.
                    sel.next_consent = now + self.config.consent_interval;
                    continue;
                };
                let local = self.streams[si].checklist.pairs[pi].local;
                let Some((id, bytes)) = self.check_request(si, local, None) else {
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
                    nominating: None,
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
