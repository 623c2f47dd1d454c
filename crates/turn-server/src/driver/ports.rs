//! Relay sockets: UDP ports bound in the configured range (RFC 8656 §7.2), even ports and
//! reservations of the next port for EVEN-PORT with R, and never one port for two allocations
//! (the pool holds every socket it hands out until it is released).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::Rng;
use stun_codec::attr::AddressFamily;

use crate::turn::{RelayError, RelayRequest};

/// How long a port reserved by EVEN-PORT with R stays reserved (RFC 8656 §7.2:
/// "approximately 30 seconds").
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// An address relays bind to, and the address clients are told (different behind a NAT:
/// coturn's `external-ip=public/private`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayIp {
    /// The local address sockets bind to.
    pub bind: IpAddr,
    /// The address put in XOR-RELAYED-ADDRESS.
    pub advertise: IpAddr,
}

/// A relay socket: UDP, or for an RFC 6062 allocation a TCP listener (whose address
/// outgoing connections to peers reuse).
#[derive(Debug)]
pub(crate) enum RelaySocket {
    Udp(UdpSocket),
    Tcp(std::net::TcpListener),
}

/// A bound relay socket.
#[derive(Debug)]
pub(crate) struct Bound {
    pub socket: RelaySocket,
    /// The address the socket is bound to.
    pub local: SocketAddr,
    /// The address clients see.
    pub advertised: SocketAddr,
    /// With `reserve_next`: the token for port + 1.
    pub token: Option<u64>,
}

#[derive(Debug)]
struct Reserved {
    socket: UdpSocket,
    ip: RelayIp,
    expires: Instant,
}

/// The ports of one worker.
#[derive(Debug)]
pub(crate) struct PortPool {
    ips: Vec<RelayIp>,
    min: u16,
    max: u16,
    /// Ports this pool holds (handed out or reserved), per bind address.
    held: HashSet<SocketAddr>,
    reserved: HashMap<u64, Reserved>,
    /// Round robin over the addresses of each family (IPv4, IPv6), as coturn's `relay-ip`s.
    turn: [usize; 2],
    /// Buffers of each relay socket, both ways (`sock-buf-size`; 0: the kernel's default).
    pub(super) sock_buf_size: usize,
}

impl PortPool {
    pub(super) fn new(ips: Vec<RelayIp>, min: u16, max: u16) -> PortPool {
        PortPool {
            ips,
            min,
            max,
            held: HashSet::new(),
            reserved: HashMap::new(),
            turn: [0, 0],
            sock_buf_size: 0,
        }
    }

    /// The families the pool can relay.
    pub(super) fn families(ips: &[RelayIp]) -> Vec<AddressFamily> {
        let mut f = Vec::new();
        if ips.iter().any(|i| i.bind.is_ipv4()) {
            f.push(AddressFamily::V4);
        }
        if ips.iter().any(|i| i.bind.is_ipv6()) {
            f.push(AddressFamily::V6);
        }
        f
    }

    /// Binds a socket for `req`.
    pub(super) fn bind(&mut self, req: &RelayRequest, now: Instant) -> Result<Bound, RelayError> {
        if let Some(token) = req.reservation {
            let r = self
                .reserved
                .remove(&token)
                .ok_or(RelayError::UnknownReservation)?;
            let local = r.socket.local_addr();
            let local = match local {
                Ok(local) if r.expires > now => local,
                _ => {
                    // Lapsed (the sweep had not come yet) or unusable: the port goes back.
                    if let Ok(a) = local {
                        self.held.remove(&a);
                    }
                    return Err(RelayError::UnknownReservation);
                }
            };
            return Ok(Bound {
                advertised: SocketAddr::new(r.ip.advertise, local.port()),
                socket: RelaySocket::Udp(r.socket),
                local,
                token: None,
            });
        }
        let want_v4 = req.family == AddressFamily::V4;
        let of_family: Vec<RelayIp> = self
            .ips
            .iter()
            .filter(|i| i.bind.is_ipv4() == want_v4)
            .copied()
            .collect();
        // Each allocation takes the next address of its family; one whose ports are all
        // taken passes to the next (coturn does the same with several relay-ip).
        let turn = &mut self.turn[usize::from(!want_v4)];
        let first = *turn;
        *turn = turn.wrapping_add(1);
        for k in 0..of_family.len() {
            let ip = of_family[(first + k) % of_family.len()];
            if let Some(b) = self.bind_on(ip, req, now) {
                return Ok(b);
            }
        }
        Err(RelayError::Exhausted)
    }

    /// A socket on `ip` for `req`, if a port is free there.
    fn bind_on(&mut self, ip: RelayIp, req: &RelayRequest, now: Instant) -> Option<Bound> {
        if req.tcp {
            return self.bind_tcp_on(ip);
        }
        let even = req.even_port || req.reserve_next;
        let span = u32::from(self.max - self.min) + 1;
        // A random start (RFC 8656 §7.2, RFC 6056): relayed ports are not predictable.
        let start = rand::thread_rng().gen_range(0..span);
        for i in 0..span {
            let port = (self.min as u32 + (start + i) % span) as u16;
            if even && !port.is_multiple_of(2) {
                continue;
            }
            if req.reserve_next && port == self.max {
                continue;
            }
            let addr = SocketAddr::new(ip.bind, port);
            if self.held.contains(&addr) {
                continue;
            }
            let Ok(socket) = UdpSocket::bind(addr) else {
                continue; // taken by another program
            };
            if socket.set_nonblocking(true).is_err()
                || super::buffers::set_buffers(&socket, self.sock_buf_size).is_err()
            {
                continue;
            }
            let mut token = None;
            if req.reserve_next {
                let next = SocketAddr::new(ip.bind, port + 1);
                if self.held.contains(&next) {
                    continue;
                }
                let Ok(reserved) = UdpSocket::bind(next) else {
                    continue;
                };
                if reserved.set_nonblocking(true).is_err() {
                    continue;
                }
                let t = loop {
                    let t: u64 = rand::random();
                    if !self.reserved.contains_key(&t) {
                        break t;
                    }
                };
                self.held.insert(next);
                self.reserved.insert(
                    t,
                    Reserved {
                        socket: reserved,
                        ip,
                        expires: now + RESERVATION_LIFETIME,
                    },
                );
                token = Some(t);
            }
            self.held.insert(addr);
            return Some(Bound {
                socket: RelaySocket::Udp(socket),
                local: addr,
                advertised: SocketAddr::new(ip.advertise, port),
                token,
            });
        }
        None
    }

    /// A TCP listener on `ip` in the range (the pool keeps UDP and TCP ports apart, as one
    /// set), with SO_REUSEADDR and SO_REUSEPORT so that Connects bind the same address.
    fn bind_tcp_on(&mut self, ip: RelayIp) -> Option<Bound> {
        let span = u32::from(self.max - self.min) + 1;
        let start = rand::thread_rng().gen_range(0..span);
        for i in 0..span {
            let port = (self.min as u32 + (start + i) % span) as u16;
            let addr = SocketAddr::new(ip.bind, port);
            if self.held.contains(&addr) {
                continue;
            }
            let Ok(listener) = tcp_relay_socket(addr).and_then(|s| {
                s.listen(128)?;
                Ok(std::net::TcpListener::from(s))
            }) else {
                continue;
            };
            self.held.insert(addr);
            return Some(Bound {
                socket: RelaySocket::Tcp(listener),
                local: addr,
                advertised: SocketAddr::new(ip.advertise, port),
                token: None,
            });
        }
        None
    }

    /// Gives a port back (its socket is closed by the caller).
    pub(super) fn release(&mut self, local: SocketAddr) {
        self.held.remove(&local);
    }

    /// Ends reservations that were not claimed in time.
    /// When the next reservation lapses (a walk of the reservations: one per EVEN-PORT with
    /// R still unclaimed, a handful).
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.reserved.values().map(|r| r.expires).min()
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        let held = &mut self.held;
        self.reserved.retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                if let Ok(a) = r.socket.local_addr() {
                    held.remove(&a);
                }
            }
            keep
        });
    }
}

/// A non-blocking TCP socket bound to `addr` with SO_REUSEADDR and SO_REUSEPORT: the relay
/// listener, and each connection to a peer from the same relayed address (RFC 6062 §5.2).
pub(crate) fn tcp_relay_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(even: bool, reserve: bool, token: Option<u64>) -> RelayRequest {
        RelayRequest {
            id: 0,
            five_tuple: crate::turn::FiveTuple {
                transport: crate::turn::Transport::Udp,
                client: "192.0.2.1:1".parse().unwrap(),
                server: "192.0.2.2:3478".parse().unwrap(),
            },
            family: AddressFamily::V4,
            even_port: even,
            reserve_next: reserve,
            reservation: token,
            tcp: false,
        }
    }

    /// A free range of `n` ports on loopback, found by binding. Each call starts its search
    /// elsewhere: the tests run side by side, and two that probed the same free range would
    /// then share its ports.
    fn pool(n: u16) -> PortPool {
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let lo = "127.0.0.1".parse().unwrap();
        let ip = RelayIp {
            bind: lo,
            advertise: "203.0.113.9".parse().unwrap(),
        };
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = 40_000 + (k % 32) * 640 + (std::process::id() % 10) as u16 * 64;
        'search: for base in (start..60_000).chain(40_000..start).step_by(64) {
            for p in base..base + n {
                if UdpSocket::bind((lo, p)).is_err() {
                    continue 'search;
                }
            }
            return PortPool::new(vec![ip], base, base + n - 1);
        }
        panic!("no free range")
    }

    #[test]
    fn several_relay_ips_of_a_family_are_used_in_turn() {
        // Two loopback addresses (Linux answers on all of 127.0.0.0/8), each advertised as
        // itself; one port each, found free on both.
        let pool1 = pool(1);
        let (port, now) = (pool1.min, Instant::now());
        drop(pool1);
        let ips: Vec<RelayIp> = ["127.0.0.1", "127.0.0.2"]
            .iter()
            .map(|s| RelayIp {
                bind: s.parse().unwrap(),
                advertise: s.parse().unwrap(),
            })
            .collect();
        if UdpSocket::bind(("127.0.0.2", port)).is_err() {
            return; // taken by another test just now: nothing to learn
        }
        let mut p = PortPool::new(ips, port, port);
        let a = p.bind(&req(false, false, None), now).unwrap();
        let b = p.bind(&req(false, false, None), now).unwrap();
        let mut got = [a.local.ip(), b.local.ip()];
        got.sort();
        assert_eq!(
            got,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        // Both full: exhausted; one freed: the next Allocate finds it whichever turn it is.
        assert_eq!(
            p.bind(&req(false, false, None), now).unwrap_err(),
            RelayError::Exhausted
        );
        p.release(a.local);
        drop(a);
        for _ in 0..2 {
            let c = p.bind(&req(false, false, None), now).unwrap();
            p.release(c.local);
        }
    }

    #[test]
    fn never_one_port_twice_and_exhaustion() {
        let mut p = pool(4);
        let now = Instant::now();
        let mut ports = HashSet::new();
        let mut keep = Vec::new();
        for _ in 0..4 {
            let b = p.bind(&req(false, false, None), now).unwrap();
            assert_eq!(b.advertised.ip(), "203.0.113.9".parse::<IpAddr>().unwrap());
            assert_eq!(b.advertised.port(), b.local.port());
            assert!(ports.insert(b.local.port()), "port handed out twice");
            keep.push(b);
        }
        assert_eq!(
            p.bind(&req(false, false, None), now).unwrap_err(),
            RelayError::Exhausted
        );
        let first = keep.remove(0);
        p.release(first.local);
        drop(first);
        assert!(p.bind(&req(false, false, None), now).is_ok());
    }

    #[test]
    fn even_ports_and_reservations() {
        let mut p = pool(8);
        let now = Instant::now();
        let a = p.bind(&req(true, true, None), now).unwrap();
        assert_eq!(a.local.port() % 2, 0);
        let token = a.token.expect("a reservation token");
        // The reserved port is not handed out to others.
        let mut others = Vec::new();
        while let Ok(b) = p.bind(&req(false, false, None), now) {
            assert_ne!(b.local.port(), a.local.port() + 1);
            others.push(b);
        }
        let b = p.bind(&req(false, false, Some(token)), now).unwrap();
        assert_eq!(b.local.port(), a.local.port() + 1);
        assert_eq!(
            p.bind(&req(false, false, Some(token)), now).unwrap_err(),
            RelayError::UnknownReservation
        );
        // An unclaimed reservation lapses.
        let mut p = pool(8);
        let a = p.bind(&req(true, true, None), now).unwrap();
        p.sweep(now + RESERVATION_LIFETIME);
        assert_eq!(
            p.bind(&req(false, false, a.token), now).unwrap_err(),
            RelayError::UnknownReservation
        );
    }
}
