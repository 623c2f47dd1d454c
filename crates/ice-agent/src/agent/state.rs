//! The connection state of the whole agent, as WebRTC's `RTCIceConnectionState` shows it,
//! recomputed from the streams (RFC 8445 §8.1.2 for failure).

use std::time::Instant;

use super::checklist::PairState;
use super::Agent;
use crate::event::ConnectionState;

impl Agent {
    /// Recomputes the connection state.
    pub(super) fn update_state(&mut self, now: Instant) {
        if self.state == ConnectionState::Closed {
            return;
        }
        if self.consent_lost {
            self.set_state(ConnectionState::Failed);
            return;
        }
        if self.keys.remote.is_none() && self.all_selected() == Some(false) {
            if self.state != ConnectionState::New {
                self.set_state(ConnectionState::Checking);
            }
            return;
        }
        if self.streams.len() == 0 {
            return;
        }
        if self.all_selected() == Some(true) {
            let stale = self
                .streams
                .values()
                .flat_map(|s| s.selected.iter().flatten())
                .any(|sel| {
                    now.saturating_duration_since(sel.last_response)
                        >= self.config.disconnected_after
                });
            let renominating = self.renominating();
            let done = self.keys.remote.is_some()
                && self.streams.values().all(|s| {
                    s.remote_end_of_candidates
                        && s.gathering_complete_sent
                        && !s.checklist.pairs.values().any(|p| {
                            matches!(p.state, PairState::Waiting | PairState::InProgress)
                                && s.worth_checking(p, renominating)
                        })
                });
            if done && matches!(self.state, ConnectionState::New | ConnectionState::Checking) {
                // As in WebRTC: connected comes before completed, even in one step.
                self.set_state(ConnectionState::Connected);
            }
            self.set_state(if stale {
                ConnectionState::Disconnected
            } else if done {
                ConnectionState::Completed
            } else {
                ConnectionState::Connected
            });
            return;
        }
        // Failed when some component without a selected pair has nothing left to try.
        let failed = self.streams.values().any(|s| {
            (1..=s.components).any(|c| {
                s.selected(c).is_none()
                    && !s
                        .checklist
                        .pairs
                        .values()
                        .any(|p| p.component == c && p.state != PairState::Failed)
                    && (s.remote_end_of_candidates
                        || s.last_remote_candidate
                            .is_some_and(|t| now >= t + self.config.trickle_wait))
                    && s.gathering_complete_sent
            })
        });
        if failed {
            self.set_state(ConnectionState::Failed);
        } else if self.keys.remote.is_some() {
            self.set_state(ConnectionState::Checking);
        }
    }

    /// Whether every component of every stream has a selected pair (`None` without streams).
    fn all_selected(&self) -> Option<bool> {
        if self.streams.len() == 0 {
            return None;
        }
        Some(
            self.streams
                .values()
                .all(|s| s.selected.iter().all(|x| x.is_some())),
        )
    }
}
