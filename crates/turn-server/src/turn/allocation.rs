//! Allocations, permissions and channel bindings (RFC 8656 §2.2, §9, §12).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use stun_codec::TransactionId;

use super::bucket::TokenBucket;

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Whether messages travel in a byte stream (ChannelData is then padded, RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

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
    /// Who owns it.
    pub five_tuple: FiveTuple,
    /// The relayed transport address.
    pub relay: SocketAddr,
    /// The authenticated user (counted against the per-user quota).
    pub username: String,
    /// When it expires.
    pub expires: Instant,
    /// The transaction that created it, to answer a retransmitted Allocate the same way.
    pub created_by: TransactionId,
    /// The success response sent for it (RFC 8656 §7.2: a retransmission gets the same answer).
    pub response: Vec<u8>,
    /// The installed permissions.
    pub permissions: Vec<Permission>,
    /// The bound channels.
    pub channels: Vec<ChannelBinding>,
    /// Bandwidth budget in bytes (`max-bps`), shared by both directions; `None`: unlimited.
    pub budget: Option<TokenBucket>,
}

/// Pushes without the doubling growth: most allocations hold one or two permissions and
/// channels, and a first push would reserve room for four (the lists are capped at 64, so the
/// extra copies are bounded).
pub(super) fn push_exact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(item);
}

impl Allocation {
    /// Whether `peer` has an unexpired permission.
    pub fn permits(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.peer == peer && p.expires > now)
    }

    /// Whether a permission for `peer` exists or fits under `max` live permissions.
    pub fn can_permit(&self, peer: IpAddr, now: Instant, max: usize) -> bool {
        self.permits(peer, now) || self.permissions.iter().filter(|p| p.expires > now).count() < max
    }

    /// Installs or refreshes a permission; false if `max` live permissions exist already.
    pub fn permit(&mut self, peer: IpAddr, until: Instant, now: Instant, max: usize) -> bool {
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

    /// The earliest instant something in the allocation needs cleaning up (see
    /// [`expire`](Self::expire) for `reserve`).
    pub fn next_expiry(&self, reserve: std::time::Duration) -> Instant {
        self.permissions
            .iter()
            .map(|p| p.expires)
            .chain(self.channels.iter().map(|c| c.expires + reserve))
            .fold(self.expires, Instant::min)
    }

    /// Drops expired permissions and channels. RFC 8656 §12: an expired channel stays
    /// reserved for 5 more minutes so it is not rebound to another peer; `reserve` is that
    /// grace.
    pub fn expire(&mut self, now: Instant, reserve: std::time::Duration) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires + reserve > now);
    }
}

/// The live allocations, reachable by 5-tuple (client side) and by relayed address (peer
/// side) with one hash look-up each: both maps name a slot of one slab.
#[derive(Debug, Default)]
pub(super) struct Allocations {
    slots: Vec<Option<Allocation>>,
    free: Vec<u32>,
    by_tuple: std::collections::HashMap<FiveTuple, u32>,
    by_relay: std::collections::HashMap<SocketAddr, u32>,
}

impl Allocations {
    pub(super) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    pub(super) fn get(&self, ft: &FiveTuple) -> Option<&Allocation> {
        let &i = self.by_tuple.get(ft)?;
        self.slots[i as usize].as_ref()
    }

    pub(super) fn get_mut(&mut self, ft: &FiveTuple) -> Option<&mut Allocation> {
        let &i = self.by_tuple.get(ft)?;
        self.slots[i as usize].as_mut()
    }

    pub(super) fn by_relay_mut(&mut self, relay: &SocketAddr) -> Option<&mut Allocation> {
        let &i = self.by_relay.get(relay)?;
        self.slots[i as usize].as_mut()
    }

    /// Stores `a`; the caller has checked its 5-tuple and relay are free.
    pub(super) fn insert(&mut self, a: Allocation) {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_tuple.insert(a.five_tuple, i);
        self.by_relay.insert(a.relay, i);
        self.slots[i as usize] = Some(a);
    }

    pub(super) fn remove(&mut self, ft: &FiveTuple) -> Option<Allocation> {
        let i = self.by_tuple.remove(ft)?;
        let a = self.slots[i as usize].take()?;
        self.by_relay.remove(&a.relay);
        self.free.push(i);
        Some(a)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Allocation> {
        self.slots.iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Allocation> {
        self.slots.iter_mut().flatten()
    }
}
