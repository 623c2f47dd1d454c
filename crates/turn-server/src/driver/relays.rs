//! A worker's UDP relay sockets, read through one epoll set of their own.
//!
//! Each allocation holds a relay socket, and a worker may hold a hundred thousand. Registered
//! with the reactor one by one, every socket would cost a task, its waker and a reactor
//! registration, and a task wake-up per readiness. Here the sockets sit in one epoll set
//! (level-triggered), the set itself is registered with the reactor, and one task reads every
//! socket the set reports ready: per socket, only a slot of this table and the kernel's epoll
//! entry. With the worker's smaller relay table, the server's resident memory per allocation
//! went from 1,891 to 1,082 bytes (turn-bench's scale load, docs/benchmarks.md).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::unix::AsyncFd;

use super::batch::Sender;

/// Ready sockets taken from the set per `epoll_wait`.
const EVENTS: usize = 256;

/// The epoll set, as the reactor sees it: one file descriptor, readable when a socket in
/// the set is.
pub(super) struct EpollSet(Epoll);

impl AsRawFd for EpollSet {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

/// A relay socket in the set, as [`RelaySet::ready`] reports it.
#[derive(Clone)]
pub(super) struct Slot {
    pub socket: Sender,
    /// The relayed address it serves (what the core knows it by).
    pub relay: SocketAddr,
    pub v6: bool,
}

pub(super) struct RelaySet {
    epoll: Rc<AsyncFd<EpollSet>>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    events: Vec<EpollEvent>,
}

impl RelaySet {
    pub(super) fn new() -> io::Result<RelaySet> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let epoll = AsyncFd::with_interest(EpollSet(epoll), tokio::io::Interest::READABLE)?;
        Ok(RelaySet {
            epoll: Rc::new(epoll),
            slots: Vec::new(),
            free: Vec::new(),
            events: vec![EpollEvent::empty(); EVENTS],
        })
    }

    /// The set's reactor registration, for the task that waits on it.
    pub(super) fn registration(&self) -> Rc<AsyncFd<EpollSet>> {
        self.epoll.clone()
    }

    /// Adds `socket` (non-blocking) for relayed address `relay`: its slot, for
    /// [`RelaySet::socket`] and [`RelaySet::remove`].
    pub(super) fn add(&mut self, socket: UdpSocket, relay: SocketAddr) -> io::Result<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len())
                    .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
                self.slots.push(None);
                s
            }
        };
        // Level-triggered: a socket left with datagrams (its turn ended) is reported again.
        let added = self.epoll.get_ref().0.add(
            &socket,
            EpollEvent::new(EpollFlags::EPOLLIN, u64::from(slot)),
        );
        if let Err(e) = added {
            self.free.push(slot);
            return Err(e.into());
        }
        let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        self.slots[slot as usize] = Some(Slot {
            socket: Rc::new(socket),
            relay,
            v6,
        });
        Ok(slot)
    }

    /// Takes `slot`'s socket out of the set. Datagrams still queued for it in the outbox keep
    /// it open until they are sent; the set no longer reports it, so its slot can be reused.
    pub(super) fn remove(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let _ = self.epoll.get_ref().0.delete(s.socket.as_fd());
        self.free.push(slot);
    }

    /// `slot`'s socket, to send from.
    pub(super) fn socket(&self, slot: u32) -> Option<&Sender> {
        self.slots.get(slot as usize)?.as_ref().map(|s| &s.socket)
    }

    /// The sockets ready now (without waiting), in `out`; true if the set may hold more
    /// than it reported (the event buffer filled).
    pub(super) fn ready(&mut self, out: &mut Vec<Slot>) -> bool {
        out.clear();
        let n = match self
            .epoll
            .get_ref()
            .0
            .wait(&mut self.events, EpollTimeout::ZERO)
        {
            Ok(n) => n,
            // EINTR: nothing taken; the next turn asks again.
            Err(_) => return true,
        };
        for e in &self.events[..n] {
            if let Some(Some(s)) = self.slots.get(e.data() as usize) {
                out.push(s.clone());
            }
        }
        n == self.events.len()
    }

    /// Relay sockets in the set.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    #[tokio::test]
    async fn the_set_reports_the_ready_sockets_and_never_a_removed_one() {
        let mut set = RelaySet::new().unwrap();
        let (a, a_addr) = bound();
        let (b, b_addr) = bound();
        let sa = set.add(a, a_addr).unwrap();
        let sb = set.add(b, b_addr).unwrap();
        assert_eq!(set.len(), 2);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Vec::new();
        assert!(!set.ready(&mut out));
        assert!(out.is_empty(), "nothing sent yet");

        tx.send_to(b"x", b_addr).unwrap();
        // Loopback delivers within the send: the set reports b, and only b.
        assert!(!set.ready(&mut out));
        let relays: Vec<SocketAddr> = out.iter().map(|r| r.relay).collect();
        assert_eq!(relays, [b_addr]);
        // Level-triggered: not read, so reported again.
        set.ready(&mut out);
        assert_eq!(out.len(), 1);

        // Removed, its datagram unread: never reported again, and its slot is reused.
        set.remove(sb);
        set.ready(&mut out);
        assert!(out.is_empty());
        assert!(set.socket(sb).is_none());
        let (c, c_addr) = bound();
        assert_eq!(set.add(c, c_addr).unwrap(), sb);
        assert_eq!(set.len(), 2);
        tx.send_to(b"y", a_addr).unwrap();
        set.ready(&mut out);
        let relays: Vec<SocketAddr> = out.iter().map(|r| r.relay).collect();
        assert_eq!(relays, [a_addr]);
        assert!(set.socket(sa).is_some());
    }
}
