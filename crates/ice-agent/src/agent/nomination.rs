//! Nomination by the controlling agent (RFC 8445 §8.1.1) and selection: which pair carries
//! a component's data.

use std::time::Instant;

use super::checklist::{Nomination, PairState, Path};
use super::consent::Selected;
use super::ids::PairId;
use super::relay::RelayState;
use super::{Agent, Stream};
use crate::event::{Event, Request};
use crate::{Role, StreamId};

impl Agent {
    /// When the controlling agent should nominate in a stream (§8.1.1): once the best
    /// succeeded pair of a component can no longer be beaten by a pair still in play, and
    /// at the latest `nomination_grace` after it succeeded.
    pub(super) fn nomination_due(&self, s: &Stream) -> Option<Instant> {
        if self.role != Role::Controlling || self.config.lite || self.keys.remote.is_none() {
            return None;
        }
        (1..=s.components)
            .filter_map(|c| self.nomination_candidate(s, c).map(|(_, t)| t))
            .min()
    }

    /// The pair to nominate for a component and from when.
    ///
    /// A pair of higher priority than the best succeeded one can still beat it while it
    /// waits for its first check, or while its check is younger than twice the round trip
    /// the best pair took: an answer slower than that is unlikely, since the paths of
    /// higher-priority pairs are the shorter ones (host before reflexive before relayed).
    /// No fixed per-type waits; the grace bounds the wait when pairs are never tried.
    ///
    /// One nomination at a time. Once one succeeded, that is final, unless renominating:
    /// then the best succeeded pair among those that relay less than the nominated one (a
    /// direct pair, where a relayed one was nominated) is nominated too, by the same rule,
    /// and takes over (draft-thatcher-ice-renomination §3). A pair that only swaps which
    /// side relays gains nothing, so it does not take over.
    fn nomination_candidate(&self, s: &Stream, component: u16) -> Option<(PairId, Instant)> {
        let list = &s.checklist;
        let pairs = &list.pairs;
        let of_component = || pairs.iter().filter(move |(_, p)| p.component == component);
        if of_component().any(|(_, p)| matches!(p.nomination, Nomination::Wanted(_))) {
            return None;
        }
        let nominated = of_component()
            .filter(|(_, p)| matches!(p.nomination, Nomination::Nominated(_)))
            .map(|(_, p)| list.relays(p))
            .min();
        if nominated.is_some() && !self.renominating() {
            return None;
        }
        let (bi, best) = of_component()
            .filter(|(_, p)| p.state == PairState::Succeeded)
            .filter(|(_, p)| nominated.is_none_or(|n| list.relays(p) < n))
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

    /// The controlling agent puts the pairs due for nomination at the head of the triggered
    /// queue: their next check carries USE-CANDIDATE.
    pub(super) fn maybe_nominate(&mut self, now: Instant) {
        if self.role != Role::Controlling || self.config.lite {
            return;
        }
        for si in self.streams.ids() {
            for c in 1..=self.streams[si].components {
                let Some((pi, at)) = self.nomination_candidate(&self.streams[si], c) else {
                    continue;
                };
                if at > now {
                    continue;
                }
                // Renominating, every nomination carries a higher value; otherwise none.
                let value = if self.renominating() {
                    self.nominations += 1;
                    self.nominations
                } else {
                    0
                };
                tracing::debug!(stream = si.0, component = c, value, "nominating");
                let list = &mut self.streams[si].checklist;
                list.pairs[pi].nomination = Nomination::Wanted(value);
                list.trigger(pi, true);
            }
        }
    }

    /// Makes a succeeded pair the component's selected pair.
    pub(super) fn select(&mut self, now: Instant, stream: StreamId, pi: PairId) {
        let s = &self.streams[stream];
        let list = &s.checklist;
        let p = &list.pairs[pi];
        if let Some(cur) = s.selected(p.component) {
            if cur.pair == Some(pi) {
                return;
            }
            if let Some(cp) = cur.pair.map(|cp| &list.pairs[cp]) {
                let by_value = match (cp.nomination, p.nomination) {
                    (Nomination::ByPeer(old), Nomination::ByPeer(new)) => {
                        (self.renominating() || new > 1 || old > 1).then_some(new > old)
                    }
                    _ => None,
                };
                // Renomination: the highest nomination value wins, whatever the priority
                // (draft-thatcher-ice-renomination §3). Otherwise an aggressive peer may
                // nominate several pairs, and the highest priority wins (RFC 8445 §8.1.1).
                if !by_value.unwrap_or(cp.priority <= p.priority) {
                    return;
                }
            }
        }
        // Cloned only once the pair is really taken (not for every repeated nomination).
        let local = list.local[p.valid_local.unwrap_or(p.local)].cand.clone();
        let remote = list.remote[p.remote].clone();
        let path = list.local[p.local].path;
        let component = p.component;
        tracing::info!(stream = stream.0, component, local = %local.addr, local_type = %local.kind,
            remote = %remote.addr, remote_type = %remote.kind, "selected pair");
        if let Path::Relay(t) = path {
            self.with_client(now, t, |c| c.bind_channel(now, remote.addr));
        }
        let next_consent = now + self.jitter(self.config.consent_interval);
        let sel = Selected::new(pi, local.clone(), remote.clone(), path, now, next_consent);
        *self.streams[stream]
            .selected
            .get_mut(usize::from(component - 1))
            .expect("the pair's component") = Some(sel);
        // A component that lost consent may come back after a restart.
        self.consent_lost = false;
        self.out.event(Event::SelectedPair {
            stream,
            component,
            local,
            remote,
        });
        self.release_orphans(now);
    }

    /// After a restart, once every component has its new pair, an allocation that is in
    /// neither generation goes: kept over the restart but not confirmed in time, it has no
    /// candidate and no selected pair runs through it.
    fn release_orphans(&mut self, now: Instant) {
        let all_new = self.streams.values().all(|s| {
            s.selected
                .iter()
                .all(|x| x.as_ref().is_some_and(|sel| sel.pair.is_some()))
        });
        if !all_new {
            return;
        }
        for t in self.gathering.relays.ids() {
            let relay = &self.gathering.relays[t];
            let orphan = relay.state == (RelayState::Allocated { candidate: None })
                && relay.client.as_ref().is_some_and(|c| !c.is_done())
                && !self
                    .streams
                    .values()
                    .flat_map(|s| s.selected.iter().flatten())
                    .any(|sel| sel.path == Path::Relay(t));
            if orphan {
                let id = relay.connection();
                self.gathering.relays[t].state = RelayState::Done;
                self.with_client(now, t, |c| c.close(now));
                if let Some(id) = id {
                    self.out.request(Request::Close { id });
                }
            }
        }
    }
}
