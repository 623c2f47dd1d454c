//! The STUN Binding server (RFC 8489 §6.3) with RFC 5780 NAT behaviour discovery.
//!
//! With an alternate address configured the server answers on four transport addresses —
//! (A1, P1), (A1, P2), (A2, P1), (A2, P2) for primary (A1, P1) and alternate (A2, P2) — and
//! honours CHANGE-REQUEST, RESPONSE-PORT and PADDING, adding OTHER-ADDRESS and RESPONSE-ORIGIN
//! to its answers (RFC 5780 §6).
//!
//! Its face is that of every core (`sans-io`): [`StunServer::handle_receive`] and
//! [`StunServer::poll_output`]. Being stateless, it also answers straight into the caller's
//! buffer ([`StunServer::answer`]), the fast path its driver and the TURN core use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use sans_io::{Output, Outputs, Receive, Transmit, Transport};
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
    out: Outputs<Infallible>,
    buf: Vec<u8>,
}

/// Where an answer goes, and to which request: what every answer path needs.
#[derive(Debug, Clone, Copy)]
struct Answering {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    method: Method,
    tid: TransactionId,
    fingerprint: bool,
}

impl StunServer {
    /// A server with the given configuration.
    pub fn new(config: StunServerConfig) -> StunServer {
        StunServer {
            config,
            stats: StunStats::default(),
            out: Outputs::new(),
            buf: vec![0; 1500],
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

    /// A datagram (or a frame on a TCP connection) for the server: its answer is queued for
    /// [`poll_output`](Self::poll_output).
    pub fn handle_receive(&mut self, _now: Instant, r: Receive<'_>) {
        let mut buf = std::mem::take(&mut self.buf);
        if let Some(t) = self.answer(r, &mut buf) {
            self.out.transmit(t.to_owned());
        }
        self.buf = buf;
    }

    /// The next answer to send. The server keeps no timer: the first drain ends with
    /// `Timeout(None)`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<Infallible>> {
        self.out
            .pop()
            .or_else(|| self.out.take_timer_moved().then_some(Output::Timeout(None)))
    }

    /// The fast path: answers `r` into `out` and returns the transmit, borrowing `out`, or
    /// `None` when the datagram is to be dropped (RFC 8489 §6.3: not a request, bad
    /// FINGERPRINT) or `out` is too small. Over UDP an RFC 5780 answer may leave from another
    /// of [`local_addresses`](Self::local_addresses) or go to another port; over a stream it
    /// goes back on the connection.
    #[must_use = "the answer is returned, not queued"]
    pub fn answer<'o>(&mut self, r: Receive<'_>, out: &'o mut [u8]) -> Option<Transmit<&'o [u8]>> {
        let Ok(msg) = Message::parse(r.data) else {
            self.stats.dropped += 1;
            return None;
        };
        self.answer_message(r.transport, r.local, r.remote, &msg, out)
    }

    /// [`answer`](Self::answer) for a message its caller already parsed (the TURN server,
    /// which demultiplexes Binding requests on its own port).
    #[must_use = "the answer is returned, not queued"]
    pub fn answer_message<'o>(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
        out: &'o mut [u8],
    ) -> Option<Transmit<&'o [u8]>> {
        let mt = msg.message_type();
        let at = Answering {
            transport,
            local,
            remote,
            method: mt.method,
            tid: msg.transaction_id(),
            fingerprint: msg.has_fingerprint(),
        };
        let Some((from, to, len)) = self.build_answer(&at, msg, out) else {
            self.stats.dropped += 1;
            return None;
        };
        Some(Transmit {
            transport,
            local: from,
            remote: to,
            data: &out[..len],
        })
    }

    /// Writes the answer into `out`: where it leaves from, where it goes, its length.
    fn build_answer(
        &mut self,
        at: &Answering,
        msg: &Message<'_>,
        out: &mut [u8],
    ) -> Option<(SocketAddr, SocketAddr, usize)> {
        let mt = msg.message_type();
        if mt.class != Class::Request {
            return None; // indications and responses get no answer
        }
        if at.fingerprint && msg.verify_fingerprint().is_err() {
            return None; // RFC 8489 §7.3: discard
        }
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
            return self
                .reject(out, at, 420, Some(&unknown[..n]))
                .map(|n| (at.local, at.remote, n));
        }
        if mt.method != Method::BINDING {
            return self
                .reject(out, at, 400, None)
                .map(|n| (at.local, at.remote, n));
        }

        let (change, response_port, padding) = match (
            msg.get::<ChangeRequest>(),
            msg.get::<ResponsePort>(),
            msg.get::<Padding>(),
        ) {
            // RFC 5780 §7.5: a request with both RESPONSE-PORT and PADDING is not processed.
            (Ok(_), Ok(Some(_)), Ok(Some(_))) => {
                return self
                    .reject(out, at, 400, None)
                    .map(|n| (at.local, at.remote, n));
            }
            (Ok(c), Ok(r), Ok(p)) => (c.unwrap_or_default(), r, p),
            _ => {
                return self
                    .reject(out, at, 400, None)
                    .map(|n| (at.local, at.remote, n));
            }
        };
        // RFC 5780 §3: the server cannot answer over TCP or TLS from another address or to
        // another port, so CHANGE-REQUEST and RESPONSE-PORT are UDP only; over a stream they
        // are refused (400, as coturn answers) rather than answered with a RESPONSE-ORIGIN the
        // answer does not come from. An all-zero CHANGE-REQUEST asks for nothing and is fine.
        if at.transport.is_stream()
            && (change.change_ip || change.change_port || response_port.is_some())
        {
            return self
                .reject(out, at, 400, None)
                .map(|n| (at.local, at.remote, n));
        }
        let (remote, tid) = (at.remote, at.tid);
        let mut from = at.local;
        let mut to = at.remote;
        let other = self.other(at.local);
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
            fingerprint: at.fingerprint,
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
            return self
                .reject(out, at, 400, None)
                .map(|n| (at.local, at.remote, n));
        };
        self.stats.success += 1;
        // Over a stream the answer can only go back on the connection.
        if at.transport.is_stream() {
            Some((at.local, at.remote, len))
        } else {
            Some((from, to, len))
        }
    }
}

impl StunServer {
    /// Writes an error response with `code` (and UNKNOWN-ATTRIBUTES for 420) to go back to
    /// the sender; its length.
    fn reject(
        &mut self,
        out: &mut [u8],
        at: &Answering,
        code: u16,
        unknown: Option<&[AttributeType]>,
    ) -> Option<usize> {
        let finish = Finish {
            software: self.config.software.as_deref(),
            integrity: None,
            fingerprint: at.fingerprint,
        };
        let len = response::error(out, at.method, at.tid, code, finish, |b| {
            if let Some(list) = unknown {
                b.add(&UnknownAttributes::new(list))?;
            }
            Ok(())
        })
        .ok()?;
        self.stats.errors += 1;
        Some(len)
    }
}

impl sans_io::Core for StunServer {
    type Event = Infallible;
    type Request = Infallible;

    fn poll_output(&mut self) -> Option<Output<Infallible>> {
        StunServer::poll_output(self)
    }

    /// The STUN server keeps no timer: nothing to do.
    fn handle_timeout(&mut self, _now: Instant) {}
}
