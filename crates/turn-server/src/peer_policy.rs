//! Which peer addresses a relay may talk to (RFC 8656 §21.1, §17; coturn's
//! `allowed-peer-ip` / `denied-peer-ip`).
//!
//! Secure by default: loopback, unspecified, private, shared (CGN), link-local (including the
//! 169.254.169.254 cloud metadata address), multicast, documentation, benchmarking and the other
//! IANA special-purpose ranges are denied, and so are the server's own addresses. IPv4 addresses
//! embedded in IPv6 (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4
//! `2002:aabb:ccdd::/48`, NAT64 `64:ff9b::a.b.c.d`) are judged as the IPv4 address they carry,
//! so `::ffff:127.0.0.1` is loopback. Operators widen or narrow this with ranges compared
//! numerically; an allowed range wins over everything else, as in coturn.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An inclusive range of addresses of one family, e.g. `10.0.0.0-10.255.255.255`,
/// `192.168.1.0/24` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

/// A range that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address range {0:?}: expected ADDRESS, ADDRESS-ADDRESS or ADDRESS/PREFIX")]
pub struct IpRangeError(pub String);

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl IpRange {
    /// The range `start..=end`; `None` if the families differ or `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<IpRange> {
        (start.is_ipv4() == end.is_ipv4() && to_u128(start) <= to_u128(end))
            .then_some(IpRange { start, end })
    }

    /// The range of a CIDR prefix.
    pub fn cidr(addr: IpAddr, len: u8) -> Option<IpRange> {
        let (bits, width) = match addr {
            IpAddr::V4(_) => (to_u128(addr), 32u32),
            IpAddr::V6(_) => (to_u128(addr), 128u32),
        };
        let len = u32::from(len);
        if len > width {
            return None;
        }
        let host = if len == width {
            0
        } else {
            (1u128 << (width - len)) - 1
        };
        let (lo, hi) = (bits & !host, bits | host);
        let mk = |v: u128| match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
        };
        IpRange::new(mk(lo), mk(hi))
    }

    /// Whether `ip` is in the range (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }
}

impl FromStr for IpRange {
    type Err = IpRangeError;
    fn from_str(s: &str) -> Result<IpRange, IpRangeError> {
        let err = || IpRangeError(s.to_owned());
        let s = s.trim();
        if let Some((a, len)) = s.split_once('/') {
            let a: IpAddr = a.trim().parse().map_err(|_| err())?;
            let len: u8 = len.trim().parse().map_err(|_| err())?;
            return IpRange::cidr(a, len).ok_or_else(err);
        }
        if let Some((a, b)) = s.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| err())?;
            let b: IpAddr = b.trim().parse().map_err(|_| err())?;
            return IpRange::new(a, b).ok_or_else(err);
        }
        let a: IpAddr = s.parse().map_err(|_| err())?;
        Ok(IpRange { start: a, end: a })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Why a peer address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// In a `denied-peer-ip` range.
    Configured,
    /// One of the server's own addresses.
    ServerAddress,
    /// Loopback (127/8, ::1), unless `allow-loopback-peers`.
    Loopback,
    /// Unspecified or "this network" (0/8, ::).
    Unspecified,
    /// Private or unique-local (10/8, 172.16/12, 192.168/16, fc00::/7).
    Private,
    /// Shared address space of carrier-grade NAT (100.64/10).
    SharedAddressSpace,
    /// Link-local (169.254/16 — cloud metadata lives there — and fe80::/10).
    LinkLocal,
    /// Multicast or broadcast.
    Multicast,
    /// Another IANA special-purpose range (documentation, benchmarking, reserved, ...).
    SpecialPurpose,
}

/// The IPv4 address an IPv6 address carries, if it is IPv4-mapped, IPv4-compatible, 6to4 or
/// NAT64 (well-known prefix).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(u32::from(hi) << 16 | u32::from(lo));
    match s {
        // ::ffff:a.b.c.d (IPv4-mapped)
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(v4(hi, lo)),
        // ::a.b.c.d (IPv4-compatible, deprecated); :: and ::1 are IPv6's own
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(v4(hi, lo)),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix, RFC 6052)
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // 2002:aabb:ccdd::/48 (6to4, RFC 3056)
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fn classify_v4(a: Ipv4Addr) -> Option<Denial> {
    let o = a.octets();
    Some(match o {
        [127, ..] => Denial::Loopback,
        [0, ..] => Denial::Unspecified,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Denial::Private,
        [100, 64..=127, ..] => Denial::SharedAddressSpace,
        [169, 254, ..] => Denial::LinkLocal,
        [224..=239, ..] | [255, 255, 255, 255] => Denial::Multicast,
        // 192.0.0/24 protocol assignments, 192.0.2/24, 198.51.100/24, 203.0.113/24
        // documentation, 192.88.99/24 6to4 relay, 198.18/15 benchmarking, 240/4 reserved.
        [192, 0, 0, _] | [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => {
            Denial::SpecialPurpose
        }
        [192, 88, 99, _] | [198, 18..=19, ..] | [240..=255, ..] => Denial::SpecialPurpose,
        _ => return None,
    })
}

fn classify_v6(a: Ipv6Addr) -> Option<Denial> {
    if let Some(v4) = embedded_ipv4(a) {
        return classify_v4(v4);
    }
    let s = a.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 1] => Denial::Loopback,
        [0, 0, 0, 0, 0, 0, 0, 0] => Denial::Unspecified,
        [x, ..] if x & 0xfe00 == 0xfc00 => Denial::Private,
        [x, ..] if x & 0xffc0 == 0xfe80 || x & 0xffc0 == 0xfec0 => Denial::LinkLocal,
        [x, ..] if x & 0xff00 == 0xff00 => Denial::Multicast,
        // 64:ff9b:1::/48 local NAT64, 100::/64 discard, 2001::/23 protocol assignments
        // (Teredo included), 2001:db8::/32 documentation, anything else under ::/8.
        [0x64, 0xff9b, 1, ..] | [0x100, 0, 0, 0, ..] => Denial::SpecialPurpose,
        [0x2001, x, ..] if x < 0x200 => Denial::SpecialPurpose,
        [0x2001, 0xdb8, ..] => Denial::SpecialPurpose,
        [x, ..] if x < 0x100 => Denial::SpecialPurpose,
        _ => return None,
    })
}

/// The peer policy of a relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Ranges always allowed (`allowed-peer-ip`); they win over everything else.
    pub allowed: Vec<IpRange>,
    /// Ranges denied on top of the defaults (`denied-peer-ip`).
    pub denied: Vec<IpRange>,
    /// Allow loopback peers (`allow-loopback-peers`), for local testing.
    pub allow_loopback: bool,
    /// The server's own addresses (listening and relay), denied as peers.
    pub server_addresses: Vec<IpAddr>,
}

impl PeerPolicy {
    /// Whether the relay may exchange packets with `peer`; the reason if not.
    pub fn check(&self, peer: IpAddr) -> Result<(), Denial> {
        // Judge the embedded IPv4 address too, so ranges written in IPv4 apply to
        // `::ffff:a.b.c.d` and friends.
        let embedded = match peer {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let forms = [Some(peer), embedded];
        let any = |ranges: &[IpRange]| {
            forms
                .iter()
                .flatten()
                .any(|ip| ranges.iter().any(|r| r.contains(*ip)))
        };
        if any(&self.allowed) {
            return Ok(());
        }
        if any(&self.denied) {
            return Err(Denial::Configured);
        }
        if forms
            .iter()
            .flatten()
            .any(|ip| self.server_addresses.contains(ip))
        {
            return Err(Denial::ServerAddress);
        }
        let class = match peer {
            IpAddr::V4(a) => classify_v4(a),
            IpAddr::V6(a) => classify_v6(a),
        };
        match class {
            Some(Denial::Loopback) if self.allow_loopback => Ok(()),
            Some(d) => Err(d),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_attack_list_is_denied() {
        let p = PeerPolicy::default();
        for (addr, why) in [
            ("127.0.0.1", Denial::Loopback),
            ("0.0.0.0", Denial::Unspecified),
            ("::1", Denial::Loopback),
            ("::", Denial::Unspecified),
            ("::ffff:127.0.0.1", Denial::Loopback),
            ("::127.0.0.1", Denial::Loopback),
            ("2002:7f00:1::", Denial::Loopback),
            ("64:ff9b::7f00:1", Denial::Loopback),
            ("169.254.169.254", Denial::LinkLocal),
            ("10.0.0.5", Denial::Private),
            ("172.31.255.255", Denial::Private),
            ("192.168.1.1", Denial::Private),
            ("100.64.0.1", Denial::SharedAddressSpace),
            ("fd00::1", Denial::Private),
            ("fe80::1", Denial::LinkLocal),
            ("224.0.0.1", Denial::Multicast),
            ("255.255.255.255", Denial::Multicast),
            ("ff02::1", Denial::Multicast),
            ("192.0.2.1", Denial::SpecialPurpose),
            ("198.18.0.1", Denial::SpecialPurpose),
            ("240.0.0.1", Denial::SpecialPurpose),
            ("2001:db8::1", Denial::SpecialPurpose),
            ("2001::1", Denial::SpecialPurpose),
            ("::ffff:10.1.2.3", Denial::Private),
            ("2002:a9fe:a9fe::", Denial::LinkLocal),
        ] {
            assert_eq!(p.check(ip(addr)), Err(why), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = PeerPolicy::default();
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert_eq!(p.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn configuration_overrides() {
        let p = PeerPolicy {
            allowed: vec![
                "10.0.0.0-10.0.0.255".parse().unwrap(),
                "203.0.113.0/24".parse().unwrap(),
            ],
            denied: vec!["8.8.0.0/16".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            allow_loopback: true,
            server_addresses: vec![ip("1.2.3.4")],
        };
        assert_eq!(p.check(ip("10.0.0.7")), Ok(()), "allowed wins over denied");
        assert_eq!(p.check(ip("::ffff:10.0.0.7")), Ok(()), "also embedded");
        assert_eq!(p.check(ip("10.0.1.7")), Err(Denial::Configured));
        assert_eq!(p.check(ip("8.8.8.8")), Err(Denial::Configured));
        assert_eq!(p.check(ip("203.0.113.5")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()), "allow-loopback-peers");
        assert_eq!(p.check(ip("1.2.3.4")), Err(Denial::ServerAddress));
        assert_eq!(p.check(ip("::ffff:1.2.3.4")), Err(Denial::ServerAddress));
    }

    #[test]
    fn ranges_parse_and_compare_numerically() {
        let r: IpRange = "10.0.0.250-10.0.1.5".parse().unwrap();
        assert!(r.contains(ip("10.0.0.255")) && r.contains(ip("10.0.1.0")));
        assert!(!r.contains(ip("10.0.1.6")) && !r.contains(ip("::ffff:10.0.1.0")));
        assert_eq!(r.to_string(), "10.0.0.250-10.0.1.5");
        assert!("10.0.0.5-10.0.0.1".parse::<IpRange>().is_err());
        assert!("10.0.0.1-::1".parse::<IpRange>().is_err());
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        let v6: IpRange = "2001:db8::/126".parse().unwrap();
        assert!(v6.contains(ip("2001:db8::3")) && !v6.contains(ip("2001:db8::4")));
        assert_eq!("1.2.3.4".parse::<IpRange>().unwrap().to_string(), "1.2.3.4");
    }
}
