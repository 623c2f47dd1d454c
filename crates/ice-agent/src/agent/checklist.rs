//! A stream's check list (RFC 8445 §6.1.2): its local and remote candidates, the candidate
//! pairs formed from them with their states and nomination, and the triggered-check queue.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sans_io::Retransmit;
use stun_codec::TransactionId;

use super::ids::{IdVec, LocalId, PairId, RelayId, RemoteId, SocketId};
use crate::candidate::{pair_priority, Candidate, CandidateKind};
use crate::Role;

/// How a local candidate sends: from one of the host sockets, or through a TURN allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    Socket(SocketId),
    Relay(RelayId),
}

#[derive(Debug)]
pub(crate) struct LocalCandidate {
    pub cand: Candidate,
    pub base: SocketAddr,
    pub path: Path,
    pub local_pref: u16,
}

/// Pair states (RFC 8445 §6.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairState {
    Frozen,
    Waiting,
    InProgress,
    Succeeded,
    Failed,
}

/// Where a pair stands in nomination (RFC 8445 §8.1.1, §7.3.1.5), with the nomination value
/// of ICE renomination (draft-thatcher-ice-renomination: the highest value wins; 0 for a
/// nomination without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nomination {
    /// Not nominated.
    No,
    /// The controlling agent chose it: its next check carries USE-CANDIDATE (and
    /// NOMINATION with this value, if not 0).
    Wanted(u32),
    /// The controlling agent's nominating check succeeded.
    Nominated(u32),
    /// The peer (controlling) nominated it: USE-CANDIDATE alone counts 1 (as in libwebrtc),
    /// NOMINATION its value.
    ByPeer(u32),
}

impl Nomination {
    /// The nomination value, if the pair is nominated (by either side).
    pub(super) fn value(self) -> Option<u32> {
        match self {
            Nomination::Nominated(v) | Nomination::ByPeer(v) => Some(v),
            Nomination::No | Nomination::Wanted(_) => None,
        }
    }
}

/// A connectivity or consent check in flight.
#[derive(Debug)]
pub(crate) struct Check {
    pub id: TransactionId,
    /// When it was last (re)transmitted.
    pub sent_at: Instant,
    /// The transaction a triggered check replaced: its answer still counts (§7.3.1.4).
    pub previous: Option<TransactionId>,
    /// The role the request claimed.
    pub role: Role,
    pub timer: Retransmit,
    pub deadline: Instant,
    /// A nominating check: USE-CANDIDATE, and NOMINATION with this value if not 0.
    pub nominating: Option<u32>,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Pair {
    pub local: LocalId,
    pub remote: RemoteId,
    pub component: u16,
    pub priority: u64,
    pub state: PairState,
    pub nomination: Nomination,
    pub check: Option<Check>,
    /// The candidate the mapped address of a successful check names (RFC 8445 §7.2.5.3.2):
    /// the local side of the valid pair.
    pub valid_local: Option<LocalId>,
    pub succeeded_at: Option<Instant>,
    /// When the first check of the pair left.
    pub first_sent: Option<Instant>,
    /// Round-trip time of the check that succeeded (from its last transmission).
    pub rtt: Option<Duration>,
    /// We answered an authenticated check of the peer's on this pair: the peer may send on
    /// it before our own check succeeds, and what it sends is accepted (RFC 8445 §12.2 — e.g.
    /// a browser's first DTLS flight right after it nominated the pair).
    pub answered: bool,
}

impl Pair {
    /// Whether nomination made it final: ours succeeded, or the peer's USE-CANDIDATE came.
    pub(super) fn is_nominated(&self) -> bool {
        self.nomination.value().is_some()
    }
}

/// A stream's candidates, pairs and triggered-check queue.
#[derive(Debug, Default)]
pub(crate) struct CheckList {
    pub local: IdVec<LocalId, LocalCandidate>,
    pub remote: IdVec<RemoteId, Candidate>,
    remote_index: HashMap<(u16, SocketAddr), RemoteId>,
    pub pairs: IdVec<PairId, Pair>,
    /// Pairs waiting for a triggered check (§7.3.1.4), oldest first.
    pub triggered: VecDeque<PairId>,
}

impl CheckList {
    pub(super) fn clear(&mut self) {
        self.local.clear();
        self.remote.clear();
        self.remote_index.clear();
        self.pairs.clear();
        self.triggered.clear();
    }

    /// The remote candidate at `addr` for `component`, signalled or peer-reflexive.
    pub(super) fn remote_at(&self, component: u16, addr: SocketAddr) -> Option<RemoteId> {
        self.remote_index.get(&(component, addr)).copied()
    }

    pub(super) fn push_remote(&mut self, c: Candidate) -> RemoteId {
        let key = (c.component, c.addr);
        let id = self.remote.push(c);
        self.remote_index.insert(key, id);
        id
    }

    /// Adds a local candidate unless it is redundant (§5.1.3: same address and base as one
    /// already there).
    pub(super) fn push_local(&mut self, c: LocalCandidate) -> Option<LocalId> {
        let redundant = self.local.values().any(|l| {
            l.cand.addr == c.cand.addr && l.base == c.base && l.cand.component == c.cand.component
        });
        (!redundant).then(|| self.local.push(c))
    }

    /// The foundation of the pair (local, remote): the two candidates' foundations
    /// (RFC 8445 §6.1.2.6).
    pub(super) fn pair_foundation(&self, local: LocalId, remote: RemoteId) -> (&str, &str) {
        (
            &self.local[local].cand.foundation,
            &self.remote[remote].foundation,
        )
    }

    /// Whether a pair of the same foundation as (local, remote) is Waiting or In-Progress:
    /// then a new or frozen pair of that foundation stays Frozen (§6.1.2.6, §6.1.4.2).
    pub(super) fn foundation_busy(&self, local: LocalId, remote: RemoteId) -> bool {
        let f = self.pair_foundation(local, remote);
        self.pairs.values().any(|q| {
            matches!(q.state, PairState::Waiting | PairState::InProgress)
                && self.pair_foundation(q.local, q.remote) == f
        })
    }

    /// The pair's priority for our `role` (RFC 8445 §6.1.2.3).
    pub(super) fn priority(&self, local: LocalId, remote: RemoteId, role: Role) -> u64 {
        let l = self.local[local].cand.priority;
        let r = self.remote[remote].priority;
        match role {
            Role::Controlling => pair_priority(l, r),
            Role::Controlled => pair_priority(r, l),
        }
    }

    /// Pair priorities depend on the role (RFC 8445 §6.1.2.3, §7.2.5.1).
    pub(super) fn set_role(&mut self, role: Role) {
        for p in self.pairs.ids() {
            let (l, r) = (self.pairs[p].local, self.pairs[p].remote);
            self.pairs[p].priority = self.priority(l, r, role);
        }
    }

    /// Forms the pair (local, remote) if it makes sense and fits (§6.1.2.2, §6.1.2.5); the
    /// pair, new or already there. `keep` are pairs a full list must not give up (selected).
    pub(super) fn add_pair(
        &mut self,
        local: LocalId,
        remote: RemoteId,
        role: Role,
        max_pairs: usize,
        keep: &[PairId],
    ) -> Option<PairId> {
        let (l, r) = (&self.local[local], &self.remote[remote]);
        if l.cand.component != r.component || l.cand.addr.is_ipv4() != r.addr.is_ipv4() {
            return None;
        }
        if let Some((i, _)) = self
            .pairs
            .iter()
            .find(|(_, p)| p.local == local && p.remote == remote)
        {
            return Some(i);
        }
        let priority = self.priority(local, remote, role);
        let pair = Pair {
            local,
            remote,
            component: l.cand.component,
            priority,
            state: if self.foundation_busy(local, remote) {
                PairState::Frozen
            } else {
                PairState::Waiting
            },
            nomination: Nomination::No,
            check: None,
            valid_local: None,
            succeeded_at: None,
            first_sent: None,
            rtt: None,
            answered: false,
        };
        if self.pairs.len() < max_pairs {
            return Some(self.pairs.push(pair));
        }
        // Full: the new pair takes the place of the lowest-priority failed pair, or else of
        // the lowest-priority untried pair it beats (§6.1.2.5). Pairs queued, in flight or
        // kept stay.
        let free = |(i, p): &(PairId, &Pair)| {
            !self.triggered.contains(i) && p.check.is_none() && !keep.contains(i)
        };
        let failed = self
            .pairs
            .iter()
            .filter(|x| x.1.state == PairState::Failed && free(x))
            .min_by_key(|(_, p)| p.priority)
            .map(|(i, _)| i);
        let untried = || {
            self.pairs
                .iter()
                .filter(|x| matches!(x.1.state, PairState::Frozen | PairState::Waiting) && free(x))
                .min_by_key(|(_, p)| p.priority)
                .filter(|(_, p)| p.priority < priority)
                .map(|(i, _)| i)
        };
        let victim = failed.or_else(untried)?;
        self.pairs[victim] = pair;
        Some(victim)
    }

    /// Queues a triggered check of `pair` unless it is queued already.
    pub(super) fn trigger(&mut self, pair: PairId, front: bool) {
        if self.triggered.contains(&pair) {
            return;
        }
        if front {
            self.triggered.push_front(pair);
        } else {
            self.triggered.push_back(pair);
        }
    }

    /// Fails every pair `f` picks, and drops its check.
    pub(super) fn fail_pairs(&mut self, f: impl Fn(&Pair, &CheckList) -> bool) {
        let hit: Vec<PairId> = self
            .pairs
            .iter()
            .filter(|(_, p)| f(p, self))
            .map(|(i, _)| i)
            .collect();
        for i in hit {
            let p = &mut self.pairs[i];
            p.state = PairState::Failed;
            p.check = None;
        }
    }

    /// §7.2.5.3.3: a pair succeeded, so the frozen pairs of its foundation may go.
    pub(super) fn unfreeze(&mut self, foundation: (&str, &str)) {
        for i in self.pairs.ids() {
            if self.pairs[i].state == PairState::Frozen
                && self.pair_foundation(self.pairs[i].local, self.pairs[i].remote) == foundation
            {
                self.pairs[i].state = PairState::Waiting;
            }
        }
    }

    /// How many ends of a pair are relayed (0, 1 or 2): what renomination improves.
    pub(super) fn relays(&self, p: &Pair) -> u8 {
        u8::from(self.local[p.local].cand.kind == CandidateKind::Relayed)
            + u8::from(self.remote[p.remote].kind == CandidateKind::Relayed)
    }

    /// The local candidates to signal (everything but peer-reflexive ones).
    pub(super) fn signalled(&self) -> impl Iterator<Item = &Candidate> {
        self.local
            .values()
            .filter(|l| l.cand.kind != CandidateKind::PeerReflexive)
            .map(|l| &l.cand)
    }
}
