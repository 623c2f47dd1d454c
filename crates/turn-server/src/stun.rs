//! The STUN Binding server (RFC 8489 §6.3) with RFC 5780 NAT behaviour discovery.
//!
//! With an alternate address configured the server answers on four transport addresses —
//! (A1, P1), (A1, P2), (A2, P1), (A2, P2) for primary (A1, P1) and alternate (A2, P2) — and
//! honours CHANGE-REQUEST, RESPONSE-PORT and PADDING, adding OTHER-ADDRESS and RESPONSE-ORIGIN
//! to its answers (RFC 5780 §6).

use std::net::SocketAddr;

use stun_codec::attr::{
    AttributeType, ChangeRequest, MappedAddress, OtherAddress, Padding, ResponseOrigin,
    ResponsePort, UnknownAttributes, XorMappedAddress,
};
use stun_codec::{Class, Message, Method, TransactionId};

use crate::response::{self, Finish};

/// Configuration of a [`StunServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunServerConfig {
    /// The primary transport address (A1, P1).
    pub primary: SocketAddr,
    /// The alternate transport address (A2, P2) for RFC 5780: a different IP and a different
    /// port. Without it, CHANGE-REQUEST is answered with 420 (RFC 5780 §6.1).
    pub alternate: Option<SocketAddr>,
    /// SOFTWARE to put in responses, if any.
    pub software: Option<String>,
}

impl StunServerConfig {
    /// A plain STUN server on `primary`.
    pub fn new(primary: SocketAddr) -> StunServerConfig {
        StunServerConfig {
            primary,
            alternate: None,
            software: None,
        }
    }

    /// An RFC 5780 server on `primary` and `alternate`.
    pub fn with_alternate(primary: SocketAddr, alternate: SocketAddr) -> StunServerConfig {
        StunServerConfig {
            alternate: Some(alternate),
            ..StunServerConfig::new(primary)
        }
    }
}

/// Where and how long an answer is: send `out[..len]` from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The local transport address to send from (one of [`StunServer::local_addresses`]).
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The message length in the caller's buffer.
    pub len: usize,
}

/// Counters of what the server did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StunStats {
    /// Binding success responses sent.
    pub success: u64,
    /// Error responses sent.
    pub errors: u64,
    /// Datagrams dropped: not STUN, not a request, bad FINGERPRINT, or unanswerable.
    pub dropped: u64,
}

/// A sans-IO STUN Binding server. Feed it datagrams, send what it returns.
#[derive(Debug)]
pub struct StunServer {
    config: StunServerConfig,
    stats: StunStats,
}

impl StunServer {
    /// A server with the given configuration.
    pub fn new(config: StunServerConfig) -> StunServer {
        StunServer {
            config,
            stats: StunStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StunServerConfig {
        &self.config
    }

    /// What the server has done so far.
    pub fn stats(&self) -> StunStats {
        self.stats
    }

    /// The transport addresses the driver must listen on: the primary, and with an alternate
    /// the four combinations of the two IPs and two ports.
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        let p = self.config.primary;
        match self.config.alternate {
            None => vec![p],
            Some(a) => vec![
                p,
                SocketAddr::new(p.ip(), a.port()),
                SocketAddr::new(a.ip(), p.port()),
                a,
            ],
        }
    }

    /// The IP and the port "other" than those of `local` (RFC 5780 §6): the alternate's for
    /// the primary's and the reverse, component by component. `None` without an alternate.
    fn other(&self, local: SocketAddr) -> Option<SocketAddr> {
        let a = self.config.alternate?;
        let p = self.config.primary;
        let ip = if local.ip() == p.ip() { a.ip() } else { p.ip() };
        let port = if local.port() == p.port() {
            a.port()
        } else {
            p.port()
        };
        Some(SocketAddr::new(ip, port))
    }

    /// Handles one datagram that arrived on `local` from `remote`. Returns the answer written
    /// into `out`, or `None` when the datagram is to be dropped (RFC 8489 §6.3: not a request,
    /// bad FINGERPRINT) or `out` is too small.
    pub fn handle_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<Reply> {
        let Ok(msg) = Message::parse(data) else {
            self.stats.dropped += 1;
            return None;
        };
        self.handle_message(local, remote, &msg, out)
    }

    /// [`handle_datagram`](Self::handle_datagram) for a message its caller already parsed
    /// (the TURN server, which demultiplexes Binding requests on its own port).
    pub fn handle_message(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let reply = self.answer(local, remote, msg, out);
        if reply.is_none() {
            self.stats.dropped += 1;
        }
        reply
    }

    fn answer(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
        out: &mut [u8],
    ) -> Option<Reply> {
        let mt = msg.message_type();
        if mt.class != Class::Request {
            return None; // indications and responses get no answer
        }
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            return None; // RFC 8489 §7.3: discard
        }
        let tid = msg.transaction_id();
        let with_fp = msg.has_fingerprint();
        let rfc5780 = self.config.alternate.is_some();

        // 420 for comprehension-required attributes we do not process (RFC 8489 §6.3.1).
        let mut unknown = [AttributeType(0); 16];
        let mut n = 0;
        // RFC 5780 §6.1: without an alternate address, CHANGE-REQUEST (and the other RFC 5780
        // request attributes) are not understood.
        let nat_discovery = [
            AttributeType::CHANGE_REQUEST,
            AttributeType::RESPONSE_PORT,
            AttributeType::PADDING,
        ];
        for t in msg.unknown_comprehension_required(move |t| {
            t.is_known() && (rfc5780 || !nat_discovery.contains(&t))
        }) {
            if n < unknown.len() {
                unknown[n] = t;
                n += 1;
            }
        }
        if n > 0 {
            return self.reject(
                out,
                mt.method,
                tid,
                420,
                Some(&unknown[..n]),
                with_fp,
                (local, remote),
            );
        }
        if mt.method != Method::BINDING {
            return self.reject(out, mt.method, tid, 400, None, with_fp, (local, remote));
        }

        let (change, response_port, padding) = match (
            msg.get::<ChangeRequest>(),
            msg.get::<ResponsePort>(),
            msg.get::<Padding>(),
        ) {
            // RFC 5780 §7.5: a request with both RESPONSE-PORT and PADDING is not processed.
            (Ok(_), Ok(Some(_)), Ok(Some(_))) => {
                return self.reject(out, mt.method, tid, 400, None, with_fp, (local, remote));
            }
            (Ok(c), Ok(r), Ok(p)) => (c.unwrap_or_default(), r, p),
            _ => {
                return self.reject(out, mt.method, tid, 400, None, with_fp, (local, remote));
            }
        };
        let mut from = local;
        let mut to = remote;
        let other = self.other(local);
        if let Some(other) = other {
            if change.change_ip {
                from.set_ip(other.ip());
            }
            if change.change_port {
                from.set_port(other.port());
            }
            if let Some(ResponsePort(p)) = response_port {
                to = SocketAddr::new(to.ip(), p);
            }
        }
        let finish = Finish {
            software: self.config.software.as_deref(),
            integrity: None,
            fingerprint: with_fp,
        };
        let built = response::build(
            out,
            Method::BINDING,
            Class::SuccessResponse,
            tid,
            finish,
            |b| {
                b.add(&XorMappedAddress(remote))?;
                b.add(&MappedAddress(remote))?;
                if let Some(other) = other {
                    b.add(&OtherAddress(other))?;
                    b.add(&ResponseOrigin(from))?;
                    if let Some(p) = padding {
                        b.add(&p)?;
                    }
                }
                Ok(())
            },
        );
        // The answer does not fit (a PADDING larger than the buffer): say so rather than drop.
        let Ok(len) = built else {
            return self.reject(out, mt.method, tid, 400, None, with_fp, (local, remote));
        };
        self.stats.success += 1;
        Some(Reply { from, to, len })
    }
}

impl StunServer {
    /// Writes an error response with `code` (and UNKNOWN-ATTRIBUTES for 420) back to the
    /// sender.
    #[allow(clippy::too_many_arguments)]
    fn reject(
        &mut self,
        out: &mut [u8],
        method: Method,
        tid: TransactionId,
        code: u16,
        unknown: Option<&[AttributeType]>,
        with_fp: bool,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Option<Reply> {
        let finish = Finish {
            software: self.config.software.as_deref(),
            integrity: None,
            fingerprint: with_fp,
        };
        let len = response::error(out, method, tid, code, finish, |b| {
            if let Some(list) = unknown {
                b.add(&UnknownAttributes::new(list))?;
            }
            Ok(())
        })
        .ok()?;
        self.stats.errors += 1;
        Some(Reply {
            from: local,
            to: remote,
            len,
        })
    }
}
