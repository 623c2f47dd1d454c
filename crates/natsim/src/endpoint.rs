//! The interface between the simulator and the sans-IO cores it hosts.
//!
//! A host runs one [`Endpoint`]. The simulator hands it inputs with the virtual `now`, then
//! drains [`Endpoint::poll_output`] and asks [`Endpoint::poll_timeout`] when to wake it — the
//! same loop a tokio driver runs around the same core (architecture conventions 1–3).
//!
//! This is the simulated host's system-call layer: UDP datagrams by address, TCP by
//! connection. A TCP connection is named by a [`ConnectionId`] (the stack's one connection-id
//! type): the endpoint's own for connections it opens, one the simulator picks, with the top
//! bit set, for connections it accepts.

use std::any::Any;
use std::net::SocketAddr;
use std::time::Instant;

use sans_io::ConnectionId;

/// Something that happened to the endpoint's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A UDP datagram arrived at `local` from `remote`.
    Udp {
        /// The host's address and port it was sent to.
        local: SocketAddr,
        /// Where it came from (as seen after any NAT on the way).
        remote: SocketAddr,
        /// The payload.
        data: &'a [u8],
    },
    /// A connection to a listening port was accepted.
    TcpAccepted {
        /// The new connection.
        conn: ConnectionId,
        /// The host's address and port.
        local: SocketAddr,
        /// The peer's address and port, as seen here.
        remote: SocketAddr,
    },
    /// A connection the endpoint opened is established.
    TcpConnected {
        /// The connection.
        conn: ConnectionId,
        /// The local address and port the connection uses.
        local: SocketAddr,
    },
    /// Bytes arrived on a connection, in order.
    TcpData {
        /// The connection.
        conn: ConnectionId,
        /// The bytes.
        data: &'a [u8],
    },
    /// A connection ended: closed by the peer, reset, refused, or never answered.
    TcpClosed {
        /// The connection.
        conn: ConnectionId,
        /// True for a reset or a refused connection, false for an orderly close.
        reset: bool,
    },
}

/// Something the endpoint wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a UDP datagram from `local` (one of the host's addresses) to `remote`.
    Udp {
        /// Source address and port.
        local: SocketAddr,
        /// Destination.
        remote: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Accept TCP connections on this local port (on all the host's addresses).
    TcpListen {
        /// The port.
        port: u16,
    },
    /// Open a TCP connection from `local` to `remote`, named `conn` (top bit clear).
    TcpConnect {
        /// The endpoint's name for the connection.
        conn: ConnectionId,
        /// Source address and port.
        local: SocketAddr,
        /// Destination.
        remote: SocketAddr,
    },
    /// Send bytes on an established connection (ignored on any other).
    TcpSend {
        /// The connection.
        conn: ConnectionId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close a connection (orderly).
    TcpClose {
        /// The connection.
        conn: ConnectionId,
    },
}

/// A sans-IO core hosted on a simulated host.
pub trait Endpoint: Any {
    /// Called once when the simulation starts (virtual time zero), before any input.
    fn start(&mut self, now: Instant) {
        let _ = now;
    }

    /// An input at virtual time `now`.
    fn handle_input(&mut self, now: Instant, input: Input<'_>);

    /// The timer returned by [`poll_timeout`](Self::poll_timeout) fired.
    fn handle_timeout(&mut self, now: Instant);

    /// The next thing to send; the simulator calls it until `None` after every call above.
    fn poll_output(&mut self) -> Option<Output>;

    /// When the endpoint next wants [`handle_timeout`](Self::handle_timeout); `None` for never.
    fn poll_timeout(&self) -> Option<Instant>;
}
