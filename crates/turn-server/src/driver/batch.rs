//! Batched UDP I/O: many datagrams per system call.
//!
//! A relayed datagram used to cost one `recvfrom` and one `sendto`, and those two calls were
//! nearly all of its cost. Here a socket is read with `recvmmsg` (up to [`BATCH`] datagrams a
//! call), and every datagram the worker sends is queued in an [`Outbox`] and sent with one
//! `sendmmsg` per socket once the ready sockets have had their turn: the listener's answers and
//! peer → client datagrams (many destinations, one socket) go out together, and so do a
//! relay's datagrams to its peers. Nothing is allocated per datagram: the buffers and the
//! kernel's message headers are made once per worker and reused.
//!
//! The system calls are nix's (safe wrappers); the workspace denies `unsafe` in our code.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::unix::AsyncFd;

/// A worker's UDP listener, registered with its reactor.
pub(super) type Udp = Rc<AsyncFd<std::net::UdpSocket>>;

/// A socket datagrams are sent from (a listener, or a relay socket of the worker's
/// [`RelaySet`](super::relays::RelaySet)); the outbox holds it open until they are sent.
pub(super) type Sender = Rc<dyn AsFd>;

/// Datagrams per system call, both ways (Linux's `UIO_MAXIOV` allows 1,024; 32 is where the
/// gain flattens, as in quinn-udp).
pub(super) const BATCH: usize = 32;

/// One receive slot: the largest UDP payload fits, so nothing is ever truncated.
const SLOT: usize = 65_536;

/// What one `recvmmsg` brought: `len()` datagrams, each read with [`RecvBatch::get`].
pub(super) struct RecvBatch {
    /// `BATCH` slots of `SLOT` bytes (pages the kernel never writes are never touched).
    buf: Vec<u8>,
    /// The kernel's message headers, one set per address family: nix leaves each header's
    /// address length at what the last call wrote, so a set that read IPv4 senders (16
    /// bytes) would cut an IPv6 sender's address short (28).
    headers: [MultiHeaders<SockaddrStorage>; 2],
    /// Slot, length and sender of each datagram of the last call.
    meta: [(usize, usize, SocketAddr); BATCH],
    len: usize,
}

impl RecvBatch {
    pub(super) fn new() -> RecvBatch {
        RecvBatch {
            buf: vec![0; BATCH * SLOT],
            headers: [
                MultiHeaders::preallocate(BATCH, None),
                MultiHeaders::preallocate(BATCH, None),
            ],
            meta: [(0, 0, SocketAddr::from(([0, 0, 0, 0], 0))); BATCH],
            len: 0,
        }
    }

    /// Reads what socket `fd` (an IPv6 one if `v6`) holds, up to `BATCH` datagrams, without
    /// waiting. `WouldBlock` when it held nothing.
    pub(super) fn recv(&mut self, fd: RawFd, v6: bool) -> io::Result<usize> {
        self.len = 0;
        let mut slots = self.buf.chunks_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
        let results = recvmmsg(
            fd,
            &mut self.headers[usize::from(v6)],
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for (slot, r) in results.enumerate() {
            // Senders are IP (the socket is AF_INET or AF_INET6); anything else is skipped.
            let Some(from) = r.address.as_ref().and_then(socket_addr) else {
                continue;
            };
            self.meta[self.len] = (slot, r.bytes, from);
            self.len += 1;
        }
        Ok(self.len)
    }

    /// Datagram `i` of the last call: its sender and bytes.
    pub(super) fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        let (slot, n, from) = self.meta[i];
        let start = slot * SLOT;
        (from, &self.buf[start..start + n.min(SLOT)])
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// A datagram waiting in the [`Outbox`].
struct Queued {
    socket: Sender,
    to: SocketAddr,
    /// Where its bytes are in the outbox's buffer.
    start: usize,
    len: usize,
}

/// Datagrams queued while a batch is handled, sent by [`Outbox::flush`]: a run of datagrams
/// of one size from one socket to one destination (a client's burst relayed to its peer, a
/// peer's burst to its client) leaves as one GSO send, which the kernel carries as one buffer
/// as far as it can; the rest leave `BATCH` to a `sendmmsg`, per socket. Datagrams to one
/// destination leave in the order they were queued.
pub(super) struct Outbox {
    bytes: Vec<u8>,
    queued: Vec<Queued>,
    headers: MultiHeaders<SockaddrStorage>,
    /// For GSO sends: one message, with room for its UDP_SEGMENT control message.
    gso_headers: MultiHeaders<SockaddrStorage>,
    /// Whether GSO works here (the first refusal turns it off, as in quinn-udp).
    gso: bool,
}

/// Segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 before Linux 6.9).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO send: it is one UDP datagram to the kernel, headers included.
const MAX_GSO_BYTES: usize = 65_000;

/// What a flush did: system calls made and datagrams the OS refused (dropped, as UDP may).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flushed {
    pub calls: u64,
    pub sent: u64,
    pub errors: u64,
    /// GSO sends among the calls.
    pub gso_calls: u64,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(BATCH * 2048),
            queued: Vec::with_capacity(2 * BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
            gso_headers: MultiHeaders::preallocate(1, Some(nix::cmsg_space!(u16))),
            gso: true,
        }
    }

    pub(super) fn push(&mut self, socket: &Sender, to: SocketAddr, data: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.queued.push(Queued {
            socket: socket.clone(),
            to,
            start,
            len: data.len(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Datagrams queued.
    pub(super) fn len(&self) -> usize {
        self.queued.len()
    }

    /// Sends everything queued. A datagram the OS refuses is dropped and counted; a full
    /// send buffer drops the rest of that call's datagrams (they would be refused too).
    pub(super) fn flush(&mut self) -> Flushed {
        let mut done = Flushed::default();
        // Grouped by socket, then destination, in queue order within each (`start` grows
        // with the queue, so the keys are distinct and an unstable sort keeps that order).
        self.queued
            .sort_unstable_by_key(|q| (q.socket.as_fd().as_raw_fd(), q.to, q.start));
        let Outbox {
            bytes,
            queued,
            headers,
            gso_headers,
            gso,
        } = self;
        let mut rest = &queued[..];
        while let Some(first) = rest.first() {
            let fd = first.socket.as_fd().as_raw_fd();
            let same = rest
                .iter()
                .take_while(|q| q.socket.as_fd().as_raw_fd() == fd)
                .count();
            let (group, tail) = rest.split_at(same);
            rest = tail;
            // This socket's datagrams that are not part of a GSO run, a call's worth at most.
            let mut singles: [Option<&Queued>; BATCH] = [None; BATCH];
            let mut n = 0;
            let mut runs = group;
            while let Some(head) = runs.first() {
                let mut k = runs
                    .iter()
                    .take(MAX_SEGMENTS.min(MAX_GSO_BYTES / head.len.max(1)))
                    .take_while(|q| q.to == head.to && q.len == head.len)
                    .count();
                if k >= 2 && *gso {
                    done.calls += 1;
                    match send_gso(fd, gso_headers, bytes, &runs[..k]) {
                        Ok(()) => {
                            done.gso_calls += 1;
                            done.sent += k as u64;
                            runs = &runs[k..];
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            done.errors += k as u64;
                            runs = &runs[k..];
                            continue;
                        }
                        Err(e) => {
                            // Not supported here (no UDP_SEGMENT, a device without checksum
                            // offload): off for good. Any other error was one datagram's
                            // (an ICMP error reported on the socket): the run is sent
                            // again as single datagrams either way.
                            if matches!(
                                e.raw_os_error(),
                                Some(
                                    nix::libc::EIO
                                        | nix::libc::EINVAL
                                        | nix::libc::ENOPROTOOPT
                                        | nix::libc::EOPNOTSUPP
                                )
                            ) {
                                tracing::debug!(error = %e, "UDP GSO refused: sending datagrams one by one");
                                *gso = false;
                            }
                        }
                    }
                } else {
                    k = 1;
                }
                for q in &runs[..k] {
                    singles[n] = Some(q);
                    n += 1;
                    if n == BATCH {
                        send_singles(fd, headers, bytes, &singles[..n], &mut done);
                        n = 0;
                    }
                }
                runs = &runs[k..];
            }
            if n > 0 {
                send_singles(fd, headers, bytes, &singles[..n], &mut done);
            }
        }
        self.queued.clear();
        self.bytes.clear();
        done
    }
}

/// `sendmmsg` of `items` (at most `BATCH`, all on `fd`), again from the first one not taken
/// until all are sent or dropped.
fn send_singles(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    bytes: &[u8],
    items: &[Option<&Queued>],
    done: &mut Flushed,
) {
    let mut pending = items;
    while !pending.is_empty() {
        done.calls += 1;
        match send_chunk(fd, headers, bytes, pending) {
            Ok(n) => {
                done.sent += n as u64;
                if n == 0 {
                    done.errors += 1;
                }
                pending = &pending[n.clamp(1, pending.len())..];
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                done.errors += pending.len() as u64;
                return;
            }
            // This datagram was refused (an ICMP error reported on the socket, a firewall):
            // drop it, go on with the next.
            Err(_) => {
                done.errors += 1;
                pending = &pending[1..];
            }
        }
    }
}

/// One `sendmmsg` of `chunk`: how many the kernel took.
fn send_chunk(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    bytes: &[u8],
    chunk: &[Option<&Queued>],
) -> io::Result<usize> {
    let mut iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| [IoSlice::new(&[])]);
    let mut addrs: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let mut n = 0;
    for ((q, iov), addr) in chunk.iter().flatten().zip(&mut iovs).zip(&mut addrs) {
        *iov = [IoSlice::new(&bytes[q.start..q.start + q.len])];
        *addr = Some(SockaddrStorage::from(q.to));
        n += 1;
    }
    let sent = sendmmsg(
        fd,
        headers,
        &iovs[..n],
        &addrs[..n],
        [],
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(sent.count())
}

/// One GSO send of `run` (datagrams of one size to one destination): the kernel cuts the
/// bytes into datagrams of that size (UDP_SEGMENT, Linux 4.18).
fn send_gso(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    bytes: &[u8],
    run: &[Queued],
) -> io::Result<()> {
    let mut iov: [IoSlice<'_>; MAX_SEGMENTS] = std::array::from_fn(|_| IoSlice::new(&[]));
    for (q, slot) in run.iter().zip(&mut iov) {
        *slot = IoSlice::new(&bytes[q.start..q.start + q.len]);
    }
    let segment =
        u16::try_from(run[0].len).map_err(|_| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
    let addr = [Some(SockaddrStorage::from(run[0].to))];
    let message = [&iov[..run.len()]];
    let sent = sendmmsg(
        fd,
        headers,
        message.iter(),
        addr,
        [nix::sys::socket::ControlMessage::UdpGsoSegments(&segment)],
        MsgFlags::MSG_DONTWAIT,
    )?;
    if sent.count() == 1 {
        Ok(())
    } else {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket to send from, and its address.
    fn sender() -> (Sender, SocketAddr) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let a = s.local_addr().unwrap();
        (Rc::new(s), a)
    }

    /// Reads `want` datagrams from `sink`, with their senders.
    fn read(sink: &std::net::UdpSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        while got.len() < want {
            let n = batch.recv(sink.as_raw_fd(), false).unwrap();
            assert!(n <= BATCH);
            for i in 0..n {
                let (from, data) = batch.get(i);
                got.push((from, data.to_vec()));
            }
        }
        assert_eq!(
            batch.recv(sink.as_raw_fd(), false).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "nothing more than sent"
        );
        got
    }

    fn sink() -> (std::net::UdpSocket, SocketAddr) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    #[test]
    fn runs_to_one_destination_leave_as_one_gso_send_each_and_arrive_whole() {
        let (a, a_addr) = sender();
        let (b, _) = sender();
        let (sink, to) = sink();
        let mut out = Outbox::new();
        // 48 datagrams of 3 bytes interleaved over two sockets: a run of 36 from `a`, of 12
        // from `b`.
        for i in 0..48u8 {
            let s = if i % 4 == 3 { &b } else { &a };
            out.push(s, to, &[i; 3]);
        }
        let done = out.flush();
        assert_eq!((done.sent, done.errors), (48, 0));
        assert_eq!(
            (done.calls, done.gso_calls),
            (2, 2),
            "one GSO send per socket"
        );
        assert!(out.is_empty());
        let got = read(&sink, 48);
        let from_a: Vec<u8> = got
            .iter()
            .filter(|(f, _)| *f == a_addr)
            .map(|(_, d)| d[0])
            .collect();
        let want: Vec<u8> = (0..48).filter(|i| i % 4 != 3).collect();
        assert_eq!(from_a, want, "a's datagrams, whole and in queue order");
        assert!(got.iter().all(|(_, d)| d.len() == 3));
    }

    #[test]
    fn datagrams_of_other_sizes_or_destinations_leave_by_sendmmsg_in_order() {
        let (a, _) = sender();
        let (sink1, to1) = sink();
        let (sink2, to2) = sink();
        let mut out = Outbox::new();
        // 80 datagrams to two destinations, sizes alternating: no two alike in a row.
        for i in 0..80u8 {
            let to = if i % 2 == 0 { to1 } else { to2 };
            let len = 3 + usize::from(i % 4 / 2);
            out.push(&a, to, &vec![i; len]);
        }
        let done = out.flush();
        assert_eq!((done.sent, done.errors, done.gso_calls), (80, 0, 0));
        // One socket's singles share calls whatever their destinations: 32 + 32 + 16.
        assert_eq!(done.calls, 3);
        for (sink, parity) in [(&sink1, 0), (&sink2, 1)] {
            let got: Vec<u8> = read(sink, 40).into_iter().map(|(_, d)| d[0]).collect();
            let want: Vec<u8> = (0..80).filter(|i| i % 2 == parity).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn ipv6_senders_are_read_whole_after_ipv4_ones() {
        let mut batch = RecvBatch::new();
        for (rx, tx) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let (Ok(rx), Ok(tx)) = (std::net::UdpSocket::bind(rx), std::net::UdpSocket::bind(tx))
            else {
                continue; // no IPv6 loopback here
            };
            rx.set_nonblocking(true).unwrap();
            tx.send_to(b"hi", rx.local_addr().unwrap()).unwrap();
            let v6 = rx.local_addr().unwrap().is_ipv6();
            assert_eq!(batch.recv(rx.as_raw_fd(), v6).unwrap(), 1);
            assert_eq!(batch.get(0), (tx.local_addr().unwrap(), &b"hi"[..]));
        }
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_leave() {
        let (a, _) = sender();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Outbox::new();
        out.push(&a, sink.local_addr().unwrap(), b"one");
        // An IPv6 destination on an IPv4 socket: EAFNOSUPPORT / EINVAL for that one only.
        out.push(&a, "[::1]:9".parse().unwrap(), b"bad");
        out.push(&a, sink.local_addr().unwrap(), b"two");
        let done = out.flush();
        assert_eq!((done.sent, done.errors), (2, 1));
        let mut buf = [0u8; 8];
        assert_eq!(sink.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        assert_eq!(sink.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
    }
}
