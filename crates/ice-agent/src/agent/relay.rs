//! Relayed candidates: one slot per TURN server and component, holding the TURN client of
//! `stun-client` and where gathering from it stands (RFC 8445 §5.1.1.2, RFC 8656).

use std::net::SocketAddr;
use std::time::Instant;

use sans_io::{ConnectionId, Receive};
use stun_client::TurnClient;

use super::ids::{LocalId, SocketId};
use crate::{StreamId, TurnServerConfig};

/// How a slot reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayPath {
    /// From a host socket.
    Udp(SocketId),
    /// Over a TCP or TLS connection the driver opens; `local` is its local address once it
    /// is up.
    Stream {
        id: ConnectionId,
        local: Option<SocketAddr>,
    },
}

/// Where gathering from a TURN server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayState {
    /// Waiting for the driver's connection (TCP, TLS), then allocating. Gathering waits for
    /// it until the slot's deadline.
    Allocating,
    /// Kept over an ICE restart: a Refresh checks the allocation is still ours (a NAT
    /// rebinding loses it) before its candidates join the new generation. Gathering waits.
    Revalidating,
    /// Allocated. `candidate` is its relayed candidate in this generation; `None` when it
    /// was kept from the previous one without being confirmed in time (it may still carry
    /// the old selected pair, and goes once a new pair is selected).
    Allocated { candidate: Option<LocalId> },
    /// Failed, lost, closed or given up: it gathers nothing and carries nothing.
    Done,
}

#[derive(Debug)]
pub(crate) struct Relay {
    pub stream: StreamId,
    pub component: u16,
    /// The host socket it gathers from (over UDP, the one it sends from).
    pub base: SocketId,
    pub server: TurnServerConfig,
    pub path: RelayPath,
    /// The client, once it can send: at once over UDP, once connected over a stream.
    pub client: Option<TurnClient>,
    /// The seed of its transaction ids, drawn when the slot was made.
    pub seed: u64,
    pub state: RelayState,
    /// While gathering: when it is given up.
    pub deadline: Instant,
    /// The client's timer, as its last drain reported it.
    pub timer: Option<Instant>,
}

impl Relay {
    /// Whether gathering from it is still under way.
    pub(super) fn gathering(&self) -> bool {
        matches!(
            self.state,
            RelayState::Allocating | RelayState::Revalidating
        )
    }

    /// Its relayed candidate in this generation.
    pub(super) fn candidate(&self) -> Option<LocalId> {
        match self.state {
            RelayState::Allocated { candidate } => candidate,
            _ => None,
        }
    }

    /// Whether a packet came from this slot's server on its path: `socket` is the host
    /// socket a datagram arrived on.
    pub(super) fn receives(&self, r: &Receive<'_>, socket: Option<SocketId>) -> bool {
        // The client's server: the configured one, or where a 300 sent it.
        let server = self
            .client
            .as_ref()
            .map_or(self.server.addr, |c| c.server());
        if r.remote != server || r.transport != self.server.transport {
            return false;
        }
        match self.path {
            RelayPath::Udp(s) => socket == Some(s),
            RelayPath::Stream { local, .. } => local == Some(r.local),
        }
    }

    /// The connection it uses, if any.
    pub(super) fn connection(&self) -> Option<ConnectionId> {
        match self.path {
            RelayPath::Stream { id, .. } => Some(id),
            RelayPath::Udp(_) => None,
        }
    }
}
