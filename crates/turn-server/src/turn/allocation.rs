//! Allocations, permissions and channel bindings (RFC 8656 §2.2, §9, §12), and the store that
//! holds them: one slab reachable by 5-tuple and by relayed address, with one timer heap for
//! every expiry in it, so neither a timeout nor the metrics walk the allocations.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sans_io::Transport;
use stun_codec::TransactionId;

use super::bucket::TokenBucket;

/// The 5-tuple that names an allocation (RFC 8656 §2.2): client and server transport
/// addresses and the transport between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// The transport protocol.
    pub transport: Transport,
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server's address the client talks to.
    pub server: SocketAddr,
}

/// A permission for one peer IP (RFC 8656 §9): lasts 300 s unless refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The peer IP (ports are not part of a permission).
    pub peer: IpAddr,
    /// When it expires.
    pub expires: Instant,
}

/// A channel bound to a peer transport address (RFC 8656 §12): lasts 600 s unless refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The channel number, 0x4000–0x4FFF.
    pub channel: u16,
    /// The peer.
    pub peer: SocketAddr,
    /// When it expires.
    pub expires: Instant,
}

/// One allocation: a relayed transport address and what the client may do with it.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub(super) five_tuple: FiveTuple,
    pub(super) relay: SocketAddr,
    /// The IPv6 relayed address of a dual allocation (RFC 8656 §7.2, ADDITIONAL-ADDRESS-FAMILY);
    /// `relay` is then the IPv4 one.
    pub(super) relay6: Option<SocketAddr>,
    /// The authenticated user (counted against the per-user quota).
    pub(super) username: Box<str>,
    pub(super) expires: Instant,
    /// The transaction that created it, to answer a retransmitted Allocate the same way.
    pub(super) created_by: TransactionId,
    /// The success response sent for it (RFC 8656 §7.2: a retransmission gets the same answer).
    pub(super) response: Box<[u8]>,
    pub(super) permissions: Vec<Permission>,
    pub(super) channels: Vec<ChannelBinding>,
    /// Bandwidth budget in bytes (`max-bps`), shared by both directions; `None`: unlimited
    /// (boxed: most servers set no limit, and an empty box is one word).
    pub(super) budget: Option<Box<TokenBucket>>,
    /// Its live permissions and channels as last counted into the store's totals.
    counted: (u32, u32),
    /// It holds one of the fleet's quota (given back when it ends).
    pub(super) fleet_quota: bool,
    /// Its relayed address is a TCP one (RFC 6062).
    pub(super) tcp: bool,
}

/// Of an allocation's relayed addresses (the second a dual allocation's IPv6 one), the one of
/// `peer`'s family.
pub(super) fn relay_for(
    (relay, relay6): (SocketAddr, Option<SocketAddr>),
    peer: SocketAddr,
) -> Option<SocketAddr> {
    std::iter::once(relay)
        .chain(relay6)
        .find(|r| r.is_ipv4() == peer.is_ipv4())
}

/// Pushes without the doubling growth: most allocations hold one or two permissions and
/// channels, and a first push would reserve room for four (the lists are capped at 64, so the
/// extra copies are bounded).
fn push_exact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(item);
}

impl Allocation {
    /// An allocation with no permission or channel yet.
    pub(super) fn new(
        five_tuple: FiveTuple,
        (relay, relay6): (SocketAddr, Option<SocketAddr>),
        username: String,
        expires: Instant,
        created_by: TransactionId,
        response: Vec<u8>,
        budget: Option<TokenBucket>,
    ) -> Allocation {
        Allocation {
            five_tuple,
            relay,
            relay6,
            username: username.into_boxed_str(),
            expires,
            created_by,
            response: response.into_boxed_slice(),
            permissions: Vec::new(),
            channels: Vec::new(),
            budget: budget.map(Box::new),
            counted: (0, 0),
            fleet_quota: false,
            tcp: false,
        }
    }

    /// Who owns it.
    pub fn five_tuple(&self) -> FiveTuple {
        self.five_tuple
    }

    /// The relayed transport address (the IPv4 one of a dual allocation).
    pub fn relay(&self) -> SocketAddr {
        self.relay
    }

    /// Its relayed transport addresses: one, or two for a dual allocation.
    pub fn relays(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.relay).chain(self.relay6)
    }

    /// The relayed address that talks to `peer`: the one of its family, if the allocation
    /// has it.
    pub fn relay_for(&self, peer: SocketAddr) -> Option<SocketAddr> {
        relay_for((self.relay, self.relay6), peer)
    }

    /// The authenticated user.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// When it expires.
    pub fn expires(&self) -> Instant {
        self.expires
    }

    /// The success response its Allocate got (sent again to a retransmission).
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// The installed permissions (expired ones until the next timeout removes them).
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// The bound channels, expired ones included while their numbers stay reserved.
    pub fn channels(&self) -> &[ChannelBinding] {
        &self.channels
    }

    /// Whether `peer` has an unexpired permission.
    pub fn permits(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.peer == peer && p.expires > now)
    }

    /// Whether a permission for `peer` exists or fits under `max` live permissions.
    pub(super) fn can_permit(&self, peer: IpAddr, now: Instant, max: usize) -> bool {
        self.permits(peer, now) || self.permissions.iter().filter(|p| p.expires > now).count() < max
    }

    /// Installs or refreshes a permission; false if `max` live permissions exist already.
    pub(super) fn permit(
        &mut self,
        peer: IpAddr,
        until: Instant,
        now: Instant,
        max: usize,
    ) -> bool {
        if !self.can_permit(peer, now, max) {
            return false;
        }
        self.permissions.retain(|p| p.expires > now);
        if let Some(p) = self.permissions.iter_mut().find(|p| p.peer == peer) {
            p.expires = until;
            return true;
        }
        push_exact(
            &mut self.permissions,
            Permission {
                peer,
                expires: until,
            },
        );
        true
    }

    /// Binds `channel` to `peer` until `until`, or refreshes the binding.
    pub(super) fn bind(&mut self, channel: u16, peer: SocketAddr, until: Instant) {
        match self.channels.iter_mut().find(|c| c.channel == channel) {
            Some(c) => c.expires = until,
            None => push_exact(
                &mut self.channels,
                ChannelBinding {
                    channel,
                    peer,
                    expires: until,
                },
            ),
        }
    }

    /// The live binding of `channel`.
    pub fn channel(&self, channel: u16, now: Instant) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.channel == channel && c.expires > now)
    }

    /// The live binding for `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
    }

    /// The first instant after `now` at which something in the allocation changes: it
    /// expires, a permission expires, a channel expires (and is then held in reserve), or a
    /// reserved channel number is freed.
    fn next_change(&self, now: Instant, reserve: Duration) -> Instant {
        let channel = |c: &ChannelBinding| {
            if c.expires > now {
                c.expires
            } else {
                c.expires + reserve
            }
        };
        self.permissions
            .iter()
            .map(|p| p.expires)
            .chain(self.channels.iter().map(channel))
            .fold(self.expires, Instant::min)
    }

    /// Drops expired permissions and channels. RFC 8656 §12: an expired channel stays
    /// reserved for 5 more minutes so it is not rebound to another peer; `reserve` is that
    /// grace.
    fn expire(&mut self, now: Instant, reserve: Duration) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires + reserve > now);
    }

    fn live_counts(&self, now: Instant) -> (u32, u32) {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (
            count(self.permissions.iter().filter(|p| p.expires > now).count()),
            count(self.channels.iter().filter(|c| c.expires > now).count()),
        )
    }
}

#[derive(Debug, Default)]
struct Slot {
    allocation: Option<Allocation>,
    /// Where the allocation's entry is in the timer heap.
    heap_pos: u32,
}

/// The live allocations, reachable by 5-tuple (client side) and by relayed address (peer
/// side) with one hash look-up each: both maps name a slot of one slab.
///
/// Every expiry is in one indexed min-heap: exactly one entry per allocation, the instant of
/// its next change (as nanoseconds since the store's epoch) and its slot, whose position the
/// slot records so that a change moves the entry either way in `O(log n)`. A timeout costs
/// `O(log n)` per due entry, never a walk; the live permission and channel totals are kept as
/// allocations change.
#[derive(Debug)]
pub(super) struct Allocations {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tuple: HashMap<FiveTuple, u32>,
    by_relay: HashMap<SocketAddr, u32>,
    heap: Vec<(u64, u32)>,
    epoch: Instant,
    /// How long an expired channel number stays reserved for its peer.
    reserve: Duration,
    permissions: usize,
    channels: usize,
}

impl Allocations {
    pub(super) fn new(epoch: Instant, reserve: Duration) -> Allocations {
        Allocations {
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::new(),
            by_relay: HashMap::new(),
            heap: Vec::new(),
            epoch,
            reserve,
            permissions: 0,
            channels: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// Live permissions and channels over all allocations, as of the last change or timeout.
    pub(super) fn live_counts(&self) -> (usize, usize) {
        (self.permissions, self.channels)
    }

    pub(super) fn get(&self, ft: &FiveTuple) -> Option<&Allocation> {
        let &i = self.by_tuple.get(ft)?;
        self.slots[i as usize].allocation.as_ref()
    }

    /// For the relay path, which changes only the bandwidth budget: no expiry moves.
    pub(super) fn get_mut(&mut self, ft: &FiveTuple) -> Option<&mut Allocation> {
        let &i = self.by_tuple.get(ft)?;
        self.slots[i as usize].allocation.as_mut()
    }

    /// For the relay path, like [`get_mut`](Self::get_mut).
    pub(super) fn by_relay_mut(&mut self, relay: &SocketAddr) -> Option<&mut Allocation> {
        let &i = self.by_relay.get(relay)?;
        self.slots[i as usize].allocation.as_mut()
    }

    /// Changes the allocation of `ft` with `f` (permissions, channels, lifetime), then
    /// moves its timer entry and recounts it. `None` if there is no such allocation.
    pub(super) fn update<T>(
        &mut self,
        ft: &FiveTuple,
        now: Instant,
        f: impl FnOnce(&mut Allocation) -> T,
    ) -> Option<T> {
        let &i = self.by_tuple.get(ft)?;
        let a = self.slots[i as usize].allocation.as_mut()?;
        let r = f(a);
        self.settle(i, now);
        Some(r)
    }

    /// After a change to slot `i`: its timer entry at its next change, its counts recounted.
    fn settle(&mut self, i: u32, now: Instant) {
        let Some(a) = self.slots[i as usize].allocation.as_mut() else {
            return;
        };
        let next = a.next_change(now, self.reserve);
        let counts = a.live_counts(now);
        let old = std::mem::replace(&mut a.counted, counts);
        self.permissions = self.permissions - old.0 as usize + counts.0 as usize;
        self.channels = self.channels - old.1 as usize + counts.1 as usize;
        let at = self.nanos(next);
        let pos = self.slots[i as usize].heap_pos as usize;
        let before = self.heap[pos].0;
        self.heap[pos].0 = at;
        if at < before {
            self.sift_up(pos);
        } else {
            self.sift_down(pos);
        }
    }

    /// Stores `a`; the caller has checked its 5-tuple and relay are free.
    pub(super) fn insert(&mut self, a: Allocation, now: Instant) {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        self.by_tuple.insert(a.five_tuple, i);
        for r in a.relays() {
            self.by_relay.insert(r, i);
        }
        let pos = self.heap.len();
        // Placed last with the latest deadline; `settle` sifts it up to its place.
        self.heap.push((u64::MAX, i));
        let slot = &mut self.slots[i as usize];
        slot.allocation = Some(a);
        slot.heap_pos = pos as u32;
        self.settle(i, now);
    }

    pub(super) fn remove(&mut self, ft: &FiveTuple) -> Option<Allocation> {
        let i = self.by_tuple.remove(ft)?;
        let a = self.slots[i as usize].allocation.take()?;
        for r in a.relays() {
            self.by_relay.remove(&r);
        }
        self.free.push(i);
        self.permissions -= a.counted.0 as usize;
        self.channels -= a.counted.1 as usize;
        // Its heap entry goes: the last entry takes its place and is sifted to its own.
        let pos = self.slots[i as usize].heap_pos as usize;
        self.heap.swap_remove(pos);
        if pos < self.heap.len() {
            self.slots[self.heap[pos].1 as usize].heap_pos = pos as u32;
            self.sift_down(pos);
            self.sift_up(pos);
        }
        Some(a)
    }

    /// When the next change in any allocation is due.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.heap
            .first()
            .map(|&(at, _)| self.epoch + Duration::from_nanos(at))
    }

    /// Runs the timer entries due by `now`: expired permissions and channels are dropped
    /// here; an allocation past its lifetime is returned, for the caller to delete. Call it
    /// until `None`.
    pub(super) fn next_expired(&mut self, now: Instant) -> Option<FiveTuple> {
        let now_ns = self.nanos(now);
        while let Some(&(at, i)) = self.heap.first() {
            if at > now_ns {
                return None;
            }
            let a = self.slots[i as usize].allocation.as_mut()?;
            if a.expires <= now {
                return Some(a.five_tuple);
            }
            a.expire(now, self.reserve);
            self.settle(i, now);
        }
        None
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Allocation> {
        self.slots.iter().filter_map(|s| s.allocation.as_ref())
    }

    fn nanos(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots[self.heap[a].1 as usize].heap_pos = a as u32;
        self.slots[self.heap[b].1 as usize].heap_pos = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.heap[parent].0 <= self.heap[pos].0 {
                return;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < self.heap.len() && self.heap[l].0 < self.heap[least].0 {
                least = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[least].0 {
                least = r;
            }
            if least == pos {
                return;
            }
            self.swap(pos, least);
            pos = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ft(port: u16) -> FiveTuple {
        FiveTuple {
            transport: Transport::Udp,
            client: SocketAddr::from(([198, 51, 100, 1], port)),
            server: SocketAddr::from(([192, 0, 2, 1], 3478)),
        }
    }

    fn allocation(port: u16, expires: Instant) -> Allocation {
        Allocation::new(
            ft(port),
            (SocketAddr::from(([192, 0, 2, 1], port)), None),
            "u".into(),
            expires,
            TransactionId([0; 12]),
            Vec::new(),
            None,
        )
    }

    /// The heap against a sorted list, through inserts, changes both ways and removals.
    #[test]
    fn the_heap_yields_every_expiry_in_order() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut store = Allocations::new(t0, Duration::from_secs(300));
        // Lifetimes 1000 + 37k mod 101 seconds: out of order.
        let mut expected: Vec<(Instant, u16)> = Vec::new();
        for k in 0..200u16 {
            let at = s(1000 + u64::from(k) * 37 % 101 * 10 + u64::from(k));
            store.insert(allocation(k, at), t0);
            expected.push((at, k));
        }
        // Every third moves later, every fifth earlier; every seventh goes.
        for k in 0..200u16 {
            let e = expected.iter_mut().find(|e| e.1 == k).unwrap();
            if k % 7 == 0 {
                store.remove(&ft(k)).unwrap();
                e.1 = u16::MAX;
            } else if k % 3 == 0 {
                e.0 += Duration::from_secs(500);
                let at = e.0;
                store.update(&ft(k), t0, |a| a.expires = at);
            } else if k % 5 == 0 {
                e.0 -= Duration::from_secs(900);
                let at = e.0;
                store.update(&ft(k), t0, |a| a.expires = at);
            }
        }
        expected.retain(|e| e.1 != u16::MAX);
        expected.sort();
        let mut got = Vec::new();
        while let Some(at) = store.next_timeout() {
            let f = store.next_expired(at).expect("due");
            got.push((at, f.client.port()));
            store.remove(&f);
        }
        assert_eq!(got, expected);
        assert_eq!(store.len(), 0);
    }
}
