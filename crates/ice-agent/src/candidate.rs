//! ICE candidates: kinds, priorities (RFC 8445 §5.1.2, RFC 8421), and the `a=candidate`
//! attribute (RFC 8839 §5.1), written and parsed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The kind of a candidate (RFC 8445 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a NAT mapped a host candidate to, learned from a STUN server.
    ServerReflexive,
    /// The address a NAT mapped a host candidate to, learned from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server that relays for us.
    Relayed,
}

impl CandidateKind {
    /// The recommended type preference (RFC 8445 §5.1.2.2).
    pub const fn type_preference(self) -> u32 {
        match self {
            CandidateKind::Host => 126,
            CandidateKind::PeerReflexive => 110,
            CandidateKind::ServerReflexive => 100,
            CandidateKind::Relayed => 0,
        }
    }

    /// The `typ` token of RFC 8839 §5.1.
    pub const fn as_str(self) -> &'static str {
        match self {
            CandidateKind::Host => "host",
            CandidateKind::ServerReflexive => "srflx",
            CandidateKind::PeerReflexive => "prflx",
            CandidateKind::Relayed => "relay",
        }
    }

    /// Whether a path through this candidate is direct (not through a relay).
    pub const fn is_direct(self) -> bool {
        !matches!(self, CandidateKind::Relayed)
    }
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport of a candidate. The agent pairs UDP candidates; TCP candidates (RFC 6544)
/// are parsed so a description carrying them is read without error, and then set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateTransport {
    /// UDP.
    Udp,
    /// TCP (RFC 6544).
    Tcp,
}

/// The priority of a candidate (RFC 8445 §5.1.2.1):
/// `2^24 * type preference + 2^8 * local preference + (256 - component id)`.
pub const fn priority(kind: CandidateKind, local_preference: u16, component: u16) -> u32 {
    let component = if component > 256 { 256 } else { component };
    (kind.type_preference() << 24) + ((local_preference as u32) << 8) + (256 - component as u32)
}

/// Local preferences for a host's addresses per RFC 8421 §4: IPv6 and IPv4 interleaved so
/// that a broken family cannot starve the other, IPv6 first, and within a family the order
/// given (the driver lists interfaces in the order it prefers them). Returns one preference
/// per input address, highest first in the interleaving.
pub fn dual_stack_preferences(addrs: &[IpAddr]) -> Vec<u16> {
    let mut v6 = 0u32;
    let mut v4 = 0u32;
    addrs
        .iter()
        .map(|a| {
            // Rank 0, 2, 4, … for IPv6 and 1, 3, 5, … for IPv4; 128 apart leaves room for
            // the relay transports below.
            let rank = if a.is_ipv6() {
                v6 += 1;
                2 * (v6 - 1)
            } else {
                v4 += 1;
                2 * (v4 - 1) + 1
            };
            u16::try_from(65535u32.saturating_sub(rank * 128)).unwrap_or(0)
        })
        .collect()
}

/// The priority of a candidate pair (RFC 8445 §6.1.2.3), from the controlling agent's
/// candidate priority `g` and the controlled agent's `d`.
pub const fn pair_priority(g: u32, d: u32) -> u64 {
    let (min, max) = if g < d { (g, d) } else { (d, g) };
    ((min as u64) << 32) + 2 * (max as u64) + if g > d { 1 } else { 0 }
}

/// A candidate, as exchanged in signalling (RFC 8839 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Identifies candidates of the same kind from the same base and server (§5.1.1.3).
    pub foundation: String,
    /// The component (1 for RTP or the only component, 2 for RTCP without rtcp-mux).
    pub component: u16,
    /// The transport.
    pub transport: CandidateTransport,
    /// The priority.
    pub priority: u32,
    /// The transport address.
    pub addr: SocketAddr,
    /// The kind.
    pub kind: CandidateKind,
    /// The related address (`raddr`/`rport`): the base of a reflexive candidate, the mapped
    /// address of a relayed one.
    pub related: Option<SocketAddr>,
}

impl Candidate {
    /// Parses an `a=candidate` attribute (RFC 8839 §5.1). The `a=` and `candidate:` prefixes
    /// are optional; unknown extension attributes after the type are ignored.
    pub fn parse(line: &str) -> Result<Candidate, CandidateParseError> {
        line.parse()
    }
}

/// Why a candidate line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CandidateParseError {
    /// A required field is missing.
    #[error("candidate line ends before the {0} field")]
    Missing(&'static str),
    /// The foundation is empty, longer than 32 characters or has a character outside
    /// ALPHA / DIGIT / "+" / "/".
    #[error("invalid foundation {0:?}")]
    Foundation(String),
    /// A number did not parse or is out of range.
    #[error("invalid {field}: {value:?}")]
    Number {
        /// Which field.
        field: &'static str,
        /// The text.
        value: String,
    },
    /// The transport is neither UDP nor TCP.
    #[error("unsupported transport {0:?}")]
    Transport(String),
    /// The connection address is not an IP address (e.g. an mDNS name, RFC 8839 §5.1 allows
    /// FQDNs, which this agent does not resolve).
    #[error("connection address {0:?} is not an IP address")]
    Address(String),
    /// The literal `typ` is missing or the type is unknown.
    #[error("invalid candidate type {0:?}")]
    Type(String),
    /// `raddr` without `rport` or the reverse, or an invalid related address.
    #[error("invalid related address")]
    Related,
}

fn number<T: FromStr>(field: &'static str, s: Option<&str>) -> Result<T, CandidateParseError> {
    let s = s.ok_or(CandidateParseError::Missing(field))?;
    // Leading '+' and '-' are accepted by `parse` but not by the grammar (1*10DIGIT).
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CandidateParseError::Number {
            field,
            value: s.to_owned(),
        });
    }
    s.parse().map_err(|_| CandidateParseError::Number {
        field,
        value: s.to_owned(),
    })
}

impl FromStr for Candidate {
    type Err = CandidateParseError;

    fn from_str(line: &str) -> Result<Candidate, CandidateParseError> {
        let line = line.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        let line = line.strip_prefix("candidate:").unwrap_or(line);
        let mut f = line.split_ascii_whitespace();
        let foundation = f.next().ok_or(CandidateParseError::Missing("foundation"))?;
        if foundation.is_empty()
            || foundation.len() > 32
            || !foundation
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(CandidateParseError::Foundation(foundation.to_owned()));
        }
        let component: u16 = number("component-id", f.next())?;
        if component == 0 || component > 256 {
            return Err(CandidateParseError::Number {
                field: "component-id",
                value: component.to_string(),
            });
        }
        let transport = match f.next() {
            None => return Err(CandidateParseError::Missing("transport")),
            Some(t) if t.eq_ignore_ascii_case("udp") => CandidateTransport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => CandidateTransport::Tcp,
            Some(t) => return Err(CandidateParseError::Transport(t.to_owned())),
        };
        let priority: u32 = number("priority", f.next())?;
        let ip = f.next().ok_or(CandidateParseError::Missing("address"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| CandidateParseError::Address(ip.to_owned()))?;
        let port: u16 = number("port", f.next())?;
        match f.next() {
            Some("typ") => {}
            Some(other) => return Err(CandidateParseError::Type(other.to_owned())),
            None => return Err(CandidateParseError::Missing("typ")),
        }
        let kind = match f.next() {
            Some("host") => CandidateKind::Host,
            Some("srflx") => CandidateKind::ServerReflexive,
            Some("prflx") => CandidateKind::PeerReflexive,
            Some("relay") => CandidateKind::Relayed,
            Some(other) => return Err(CandidateParseError::Type(other.to_owned())),
            None => return Err(CandidateParseError::Missing("candidate type")),
        };
        // Then name/value pairs: raddr, rport, and extensions (tcptype, generation,
        // network-id, ufrag, …) which are ignored.
        let mut raddr = None;
        let mut rport = None;
        while let Some(name) = f.next() {
            let value = f.next();
            match name {
                "raddr" => {
                    let v = value.ok_or(CandidateParseError::Related)?;
                    raddr = Some(
                        v.parse::<IpAddr>()
                            .map_err(|_| CandidateParseError::Related)?,
                    );
                }
                "rport" => {
                    rport = Some(number::<u16>("rport", value)?);
                }
                _ => {}
            }
        }
        let related = match (raddr, rport) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            (None, None) => None,
            _ => return Err(CandidateParseError::Related),
        };
        Ok(Candidate {
            foundation: foundation.to_owned(),
            component,
            transport,
            priority,
            addr: SocketAddr::new(ip, port),
            kind,
            related,
        })
    }
}

impl fmt::Display for Candidate {
    /// The attribute value without the `a=` prefix: `candidate:1 1 UDP 2130706431 192.0.2.1
    /// 5000 typ host`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            CandidateTransport::Udp => "UDP",
            CandidateTransport::Tcp => "TCP",
        };
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            transport,
            self.priority,
            self.addr.ip(),
            self.addr.port(),
            self.kind
        )?;
        if let Some(r) = self.related {
            write!(f, " raddr {} rport {}", r.ip(), r.port())?;
        }
        Ok(())
    }
}

/// Whether a host address is loopback or link-local, which the agent leaves out unless
/// configured to keep them (they cannot reach another host, and link-local IPv6 needs a
/// scope the peer cannot know).
pub fn is_loopback_or_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8445_priority_formula() {
        // Host, local preference 65535, component 1: the classic 2130706431.
        assert_eq!(priority(CandidateKind::Host, 65535, 1), 2_130_706_431);
        assert_eq!(priority(CandidateKind::Relayed, 0, 2), 254);
        assert!(
            priority(CandidateKind::PeerReflexive, 1, 1)
                > priority(CandidateKind::ServerReflexive, 65535, 1)
        );
    }

    #[test]
    fn pair_priority_orders_by_min_then_max_then_role() {
        assert_eq!(pair_priority(2, 1), (1 << 32) + 4 + 1);
        assert_eq!(pair_priority(1, 2), (1 << 32) + 4);
        assert!(pair_priority(100, 100) > pair_priority(1000, 99));
    }

    #[test]
    fn dual_stack_interleaves_ipv6_first() {
        let a: Vec<IpAddr> = ["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let p = dual_stack_preferences(&a);
        // v6#1 > v4#1 > v6#2 > v4#2
        assert!(p[1] > p[0] && p[0] > p[3] && p[3] > p[2], "{p:?}");
    }

    #[test]
    fn parses_and_writes_rfc8839_lines() {
        let line = "candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host";
        let c: Candidate = line.parse().unwrap();
        assert_eq!(c.to_string(), line);
        let line = "a=candidate:2 1 udp 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998 generation 0 network-id 1";
        let c = Candidate::parse(line).unwrap();
        assert_eq!(c.kind, CandidateKind::ServerReflexive);
        assert_eq!(c.related, Some("10.0.1.1:8998".parse().unwrap()));
        assert_eq!(
            c.to_string(),
            "candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998"
        );
        let v6 = Candidate::parse("candidate:x 2 UDP 7 2001:db8::1 9 typ relay raddr :: rport 0")
            .unwrap();
        assert_eq!(v6.addr, "[2001:db8::1]:9".parse().unwrap());
        let tcp =
            Candidate::parse("candidate:3 1 TCP 1 192.0.2.1 9 typ host tcptype active").unwrap();
        assert_eq!(tcp.transport, CandidateTransport::Tcp);
    }

    #[test]
    fn malformed_lines_get_a_specific_error() {
        use CandidateParseError as E;
        type Expect = fn(&E) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, E::Missing("foundation"))),
            ("candidate:1", |e| matches!(e, E::Missing("component-id"))),
            ("candidate:1 0 UDP 1 1.2.3.4 5 typ host", |e| {
                matches!(e, E::Number { .. })
            }),
            ("candidate:1 1 SCTP 1 1.2.3.4 5 typ host", |e| {
                matches!(e, E::Transport(_))
            }),
            ("candidate:1 1 UDP -1 1.2.3.4 5 typ host", |e| {
                matches!(e, E::Number { .. })
            }),
            ("candidate:1 1 UDP 99999999999 1.2.3.4 5 typ host", |e| {
                matches!(e, E::Number { .. })
            }),
            ("candidate:1 1 UDP 1 abc.local 5 typ host", |e| {
                matches!(e, E::Address(_))
            }),
            ("candidate:1 1 UDP 1 1.2.3.4 70000 typ host", |e| {
                matches!(e, E::Number { .. })
            }),
            ("candidate:1 1 UDP 1 1.2.3.4 5 type host", |e| {
                matches!(e, E::Type(_))
            }),
            ("candidate:1 1 UDP 1 1.2.3.4 5 typ bogus", |e| {
                matches!(e, E::Type(_))
            }),
            (
                "candidate:1 1 UDP 1 1.2.3.4 5 typ srflx raddr 1.2.3.4",
                |e| matches!(e, E::Related),
            ),
            ("candidate:a*b 1 UDP 1 1.2.3.4 5 typ host", |e| {
                matches!(e, E::Foundation(_))
            }),
        ];
        for (line, ok) in cases {
            let e = Candidate::parse(line).expect_err(line);
            assert!(ok(&e), "{line}: {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}
