//! STUN and TURN server URLs: `stun:host[:port]` (RFC 7064) and
//! `turn[s]:host[:port][?transport=udp|tcp]` (RFC 7065), as WebRTC's `iceServers` take them.

use std::fmt;

use crate::Transport;

/// The URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlScheme {
    /// `stun:` (default port 3478).
    Stun,
    /// `turn:` (default port 3478; UDP unless `?transport=tcp`).
    Turn,
    /// `turns:` (default port 5349; TLS over TCP).
    Turns,
}

/// A parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The scheme.
    pub scheme: UrlScheme,
    /// The host name or IP literal (without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// How to reach a TURN server (UDP for `stun:`).
    pub transport: Transport,
}

/// Why a server URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `stun:`, `turn:` or `turns:`.
    #[error("{0:?}: the scheme must be stun:, turn: or turns:")]
    Scheme(String),
    /// No host, or an unclosed `[`.
    #[error("{0:?}: no host")]
    Host(String),
    /// The port is not a number from 1 to 65535.
    #[error("{0:?}: bad port")]
    Port(String),
    /// A query other than `transport=udp` or `transport=tcp` (RFC 7065 §3.1), or one on a
    /// `stun:` URL, or `turns:` with `transport=udp` (DTLS is not supported).
    #[error("{0:?}: unsupported query")]
    Query(String),
}

impl std::str::FromStr for ServerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<ServerUrl, UrlError> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| UrlError::Scheme(s.into()))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => UrlScheme::Stun,
            "turn" => UrlScheme::Turn,
            "turns" => UrlScheme::Turns,
            _ => return Err(UrlError::Scheme(s.into())),
        };
        let (hostport, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| UrlError::Host(s.into()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UrlError::Port(s.into()))?,
                ),
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(UrlError::Host(s.into()));
        }
        let port = match port {
            None if scheme == UrlScheme::Turns => 5349,
            None => 3478,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(UrlError::Port(s.into())),
            },
        };
        let transport = match (scheme, query.map(str::to_ascii_lowercase).as_deref()) {
            (UrlScheme::Stun, None) | (UrlScheme::Turn, None | Some("transport=udp")) => {
                Transport::Udp
            }
            (UrlScheme::Turn, Some("transport=tcp")) => Transport::Tcp,
            (UrlScheme::Turns, None | Some("transport=tcp")) => Transport::Tls,
            _ => return Err(UrlError::Query(s.into())),
        };
        Ok(ServerUrl {
            scheme,
            host: host.into(),
            port,
            transport,
        })
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            UrlScheme::Stun => "stun",
            UrlScheme::Turn => "turn",
            UrlScheme::Turns => "turns",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}:[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}:{}:{}", self.host, self.port)?;
        }
        if self.transport == Transport::Tcp {
            f.write_str("?transport=tcp")?;
        }
        Ok(())
    }
}

/// A STUN or TURN server as WebRTC's `RTCIceServer` gives one: a URL and, for TURN, the
/// long-term credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// Where.
    pub url: ServerUrl,
    /// The TURN user name (unused for STUN).
    pub username: String,
    /// The TURN password (unused for STUN).
    pub password: String,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("url", &self.url.to_string())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl IceServer {
    /// A STUN server: `stun:host[:port]`.
    pub fn stun(url: &str) -> Result<IceServer, UrlError> {
        let url: ServerUrl = url.parse()?;
        if url.scheme != UrlScheme::Stun {
            return Err(UrlError::Scheme(url.to_string()));
        }
        Ok(IceServer {
            url,
            username: String::new(),
            password: String::new(),
        })
    }

    /// A TURN server: `turn:host[:port][?transport=udp|tcp]` or `turns:host[:port]`.
    pub fn turn(url: &str, username: &str, password: &str) -> Result<IceServer, UrlError> {
        let url: ServerUrl = url.parse()?;
        if url.scheme == UrlScheme::Stun {
            return Err(UrlError::Scheme(url.to_string()));
        }
        Ok(IceServer {
            url,
            username: username.into(),
            password: password.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ServerUrl, UrlError> {
        s.parse()
    }

    #[test]
    fn urls_of_rfc_7064_and_7065() {
        let u = p("stun:stun.example.org").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (UrlScheme::Stun, "stun.example.org", 3478)
        );
        let u = p("turn:192.0.2.1:3479?transport=tcp").unwrap();
        assert_eq!((u.port, u.transport), (3479, Transport::Tcp));
        let u = p("turns:[2001:db8::1]").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.transport),
            ("2001:db8::1", 5349, Transport::Tls)
        );
        let u = p("TURN:h?Transport=UDP").unwrap();
        assert_eq!(u.transport, Transport::Udp);
        assert_eq!(
            p("turn:[::1]:9?transport=tcp").unwrap().to_string(),
            "turn:[::1]:9?transport=tcp"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        assert!(matches!(p("http://x"), Err(UrlError::Scheme(_))));
        assert!(matches!(p("stun"), Err(UrlError::Scheme(_))));
        assert!(matches!(p("stun:"), Err(UrlError::Host(_))));
        assert!(matches!(p("stun:[::1"), Err(UrlError::Host(_))));
        assert!(matches!(p("stun:h:0"), Err(UrlError::Port(_))));
        assert!(matches!(p("stun:h:99999"), Err(UrlError::Port(_))));
        assert!(matches!(p("stun:[::1]x"), Err(UrlError::Port(_))));
        assert!(matches!(p("stun:h?transport=tcp"), Err(UrlError::Query(_))));
        assert!(matches!(
            p("turns:h?transport=udp"),
            Err(UrlError::Query(_))
        ));
        assert!(matches!(p("turn:h?foo=bar"), Err(UrlError::Query(_))));
        assert!(IceServer::stun("turn:h").is_err());
        assert!(IceServer::turn("stun:h", "u", "p").is_err());
    }
}
