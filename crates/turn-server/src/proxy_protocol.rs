//! The PROXY protocol (HAProxy's, versions 1 and 2), which a load balancer in front of the TCP
//! and TLS listeners puts before the client's bytes to say whom the connection is really from.
//! Only the header is parsed here, from bytes the driver has read; the driver accepts it only
//! from configured front-end addresses (a header from anyone else would let them claim any
//! address).
//!
//! Version 2, binary (`PROXY` command, TCP over IPv4):
//!
//! ```text
//! 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a   signature "\r\n\r\n\0\r\nQUIT\n"
//! 21                                    version 2, command PROXY (0x20: LOCAL)
//! 11                                    AF_INET, STREAM (0x21: AF_INET6)
//! 00 0c                                 12 bytes of addresses follow (plus any TLVs)
//! c6 33 64 07  cb 00 71 05              source 198.51.100.7, destination 203.0.113.5
//! 9c 40  0d 96                          source port 40000, destination port 3478
//! ```
//!
//! Version 1, text: `PROXY TCP4 198.51.100.7 203.0.113.5 40000 3478\r\n` (at most 107 bytes).
//!
//! ```
//! use turn_server::proxy_protocol::{parse, Parsed};
//! let v1 = b"PROXY TCP4 198.51.100.7 203.0.113.5 40000 3478\r\nrest";
//! let Parsed::Header { len, addresses } = parse(v1)? else { panic!() };
//! assert_eq!(&v1[len..], b"rest");
//! assert_eq!(addresses, Some(("198.51.100.7:40000".parse()?, "203.0.113.5:3478".parse()?)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// The longest version 2 header accepted (16 bytes and the announced length, TLVs included):
/// more than any front-end sends with its usual TLVs, and a bound on what is read.
pub const V2_MAX: usize = 16 + 512;

/// What the bytes so far are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes; `addresses` is (source, destination), or `None` for a
    /// LOCAL command or an UNKNOWN/unspecified family (a health check of the front-end: the
    /// connection's own addresses stand).
    Header {
        /// Bytes of the header.
        len: usize,
        /// The client's and the address it connected to.
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
    /// Not enough bytes yet: at least this many in all are needed.
    Incomplete {
        /// Bytes needed in all (for version 2, the whole header once its length is known).
        need: usize,
    },
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Neither signature.
    #[error("no PROXY protocol header")]
    NotProxy,
    /// A version 2 header with a version, command, family or protocol not allowed here
    /// (UDP, Unix sockets), or too short for its addresses.
    #[error("unsupported PROXY v2 header (version/command {ver_cmd:#04x}, family {family:#04x})")]
    Unsupported {
        /// The version and command byte.
        ver_cmd: u8,
        /// The family and protocol byte.
        family: u8,
    },
    /// Longer than this server accepts.
    #[error("PROXY header longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A malformed version 1 line.
    #[error("malformed PROXY v1 line")]
    BadV1,
}

/// Parses a PROXY header at the start of `bytes` (version 1 or 2).
pub fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    // One byte tells the versions apart ('\r' or 'P'); asking for more before it could read
    // past a short version 1 line (`PROXY UNKNOWN\r\n` is 15 bytes).
    if bytes.is_empty() {
        return Ok(Parsed::Incomplete { need: 1 });
    }
    let n = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..n] == V2_SIGNATURE[..n] {
        return parse_v2(bytes);
    }
    let n = bytes.len().min(6);
    if bytes[..n] == b"PROXY "[..n] {
        return parse_v1(bytes);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v2(b: &[u8]) -> Result<Parsed, ProxyError> {
    if b.len() < 16 {
        return Ok(Parsed::Incomplete { need: 16 });
    }
    let (ver_cmd, family) = (b[12], b[13]);
    let len = 16 + usize::from(u16::from_be_bytes([b[14], b[15]]));
    if len > V2_MAX {
        return Err(ProxyError::TooLong { max: V2_MAX });
    }
    let unsupported = ProxyError::Unsupported { ver_cmd, family };
    if ver_cmd >> 4 != 2 {
        return Err(unsupported);
    }
    if b.len() < len {
        return Ok(Parsed::Incomplete { need: len });
    }
    let body = &b[16..len];
    let addresses = match (ver_cmd & 0x0F, family) {
        // LOCAL: the front-end's own connection (health checks); the addresses stand.
        (0, _) | (1, 0x00) => None,
        (1, 0x11) if body.len() >= 12 => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        (1, 0x21) if body.len() >= 36 => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        _ => return Err(unsupported),
    };
    Ok(Parsed::Header { len, addresses })
}

fn parse_v1(b: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(end) = b.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        if b.len() >= V1_MAX {
            return Err(ProxyError::TooLong { max: V1_MAX });
        }
        return Ok(Parsed::Incomplete { need: b.len() + 1 });
    };
    let line = std::str::from_utf8(&b[..end]).map_err(|_| ProxyError::BadV1)?;
    let mut parts = line.split(' ');
    let (Some("PROXY"), Some(proto)) = (parts.next(), parts.next()) else {
        return Err(ProxyError::BadV1);
    };
    let addresses = match proto {
        "UNKNOWN" => None,
        "TCP4" | "TCP6" => {
            let fields: Vec<&str> = parts.collect();
            let [src, dst, sport, dport] = fields[..] else {
                return Err(ProxyError::BadV1);
            };
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = s.parse().map_err(|_| ProxyError::BadV1)?;
                if ip.is_ipv4() != (proto == "TCP4") {
                    return Err(ProxyError::BadV1);
                }
                Ok(ip)
            };
            // Ports in decimal without a sign or leading zeros (the specification's form).
            let port = |s: &str| -> Result<u16, ProxyError> {
                if s.is_empty()
                    || !s.bytes().all(|c| c.is_ascii_digit())
                    || (s.len() > 1 && s.starts_with('0'))
                {
                    return Err(ProxyError::BadV1);
                }
                s.parse().map_err(|_| ProxyError::BadV1)
            };
            Some((
                SocketAddr::new(ip(src)?, port(sport)?),
                SocketAddr::new(ip(dst)?, port(dport)?),
            ))
        }
        _ => return Err(ProxyError::BadV1),
    };
    Ok(Parsed::Header {
        len: end + 2,
        addresses,
    })
}

/// A version 2 header for TCP from `src` to `dst` (both of one family), as a front-end writes
/// it: for tests and tools.
pub fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x21);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.extend_from_slice(&[0x11, 0, 12]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            h.extend_from_slice(&[0x21, 0, 36]);
            h.extend_from_slice(&v6(s));
            h.extend_from_slice(&v6(d));
        }
    }
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v2_both_families_local_and_byte_by_byte() {
        for (src, dst) in [
            (a("198.51.100.7:40000"), a("203.0.113.5:3478")),
            (a("[2001:db8::7]:40000"), a("[2001:db8::5]:3478")),
        ] {
            let mut h = v2_header(src, dst);
            let len = h.len();
            h.extend_from_slice(b"\x00\x01stun");
            assert_eq!(
                parse(&h),
                Ok(Parsed::Header {
                    len,
                    addresses: Some((src, dst))
                })
            );
            for cut in 0..len {
                assert!(
                    matches!(parse(&h[..cut]), Ok(Parsed::Incomplete { need }) if need > cut),
                    "{cut}"
                );
            }
        }
        // The header of the doc comment, byte for byte.
        let doc = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
            0x00, 0x0c, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x05, 0x9c, 0x40, 0x0d, 0x96,
        ];
        assert_eq!(
            doc.to_vec(),
            v2_header(a("198.51.100.7:40000"), a("203.0.113.5:3478"))
        );
        // LOCAL (a health check), with TLVs after the addresses.
        let mut local = v2_header(a("10.0.0.1:1"), a("10.0.0.2:2"));
        local[12] = 0x20;
        assert_eq!(
            parse(&local),
            Ok(Parsed::Header {
                len: 28,
                addresses: None
            })
        );
        let mut tlv = v2_header(a("10.0.0.1:1"), a("10.0.0.2:2"));
        tlv[15] = 12 + 5;
        tlv.extend_from_slice(&[0x04, 0x00, 0x02, 0xAA, 0xBB]);
        assert!(matches!(
            parse(&tlv),
            Ok(Parsed::Header {
                len: 33,
                addresses: Some(_)
            })
        ));
    }

    #[test]
    fn v2_refusals() {
        let good = v2_header(a("10.0.0.1:1"), a("10.0.0.2:2"));
        let with = |i: usize, v: u8| {
            let mut h = good.clone();
            h[i] = v;
            h
        };
        // UDP (0x12), Unix (0x31), version 1 in the binary form, an unknown command.
        for h in [
            with(13, 0x12),
            with(13, 0x31),
            with(12, 0x11),
            with(12, 0x22),
        ] {
            assert!(
                matches!(parse(&h), Err(ProxyError::Unsupported { .. })),
                "{h:?}"
            );
        }
        // Addresses shorter than the family needs.
        let mut short = good.clone();
        short[15] = 4;
        short.truncate(20);
        assert!(matches!(parse(&short), Err(ProxyError::Unsupported { .. })));
        let mut long = good.clone();
        long[14] = 0xFF;
        assert_eq!(parse(&long), Err(ProxyError::TooLong { max: V2_MAX }));
        assert_eq!(parse(b"\x00\x01\x00\x00"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn read_as_asked_never_past_a_short_v1_line() {
        // The driver reads exactly what parse asks for: byte by byte for v1.
        let line = b"PROXY UNKNOWN\r\n";
        let mut have = 0;
        loop {
            match parse(&line[..have]).unwrap() {
                Parsed::Incomplete { need } => {
                    assert!(need <= line.len(), "would read past the header: {need}");
                    have = need;
                }
                Parsed::Header { len, .. } => {
                    assert_eq!(len, line.len());
                    break;
                }
            }
        }
    }

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::5 40000 3478\r\n";
        assert_eq!(
            parse(line),
            Ok(Parsed::Header {
                len: line.len(),
                addresses: Some((a("[2001:db8::7]:40000"), a("[2001:db8::5]:3478")))
            })
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Parsed::Header {
                len: 15,
                addresses: None
            })
        );
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4"),
            Ok(Parsed::Incomplete { .. })
        ));
        for bad in [
            &b"PROXY TCP4 2001:db8::7 1.2.3.4 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyError::BadV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = b"PROXY TCP4 ".to_vec();
        huge.resize(200, b'1');
        assert_eq!(parse(&huge), Err(ProxyError::TooLong { max: V1_MAX }));
    }
}
