//! Adapters that host the stack's real sans-IO cores on natsim, shared by the scenario tests.

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::time::Instant;

use natsim::{Endpoint, Input, Output};
use turn_server::stun::{StunServer, StunServerConfig};

/// The STUN server core on a simulated host: every datagram to one of its addresses goes to
/// [`StunServer::handle_datagram`], every reply goes out as the core says.
#[derive(Debug)]
pub struct StunServerEndpoint {
    core: StunServer,
    locals: Vec<SocketAddr>,
    out: Vec<Output>,
    buf: Vec<u8>,
}

impl StunServerEndpoint {
    /// A server with the given configuration.
    pub fn new(config: StunServerConfig) -> StunServerEndpoint {
        let core = StunServer::new(config);
        StunServerEndpoint {
            locals: core.local_addresses(),
            core,
            out: Vec::new(),
            buf: vec![0; 1500],
        }
    }

    /// An RFC 5780 server on `primary` and `alternate`.
    pub fn rfc5780(primary: SocketAddr, alternate: SocketAddr) -> StunServerEndpoint {
        StunServerEndpoint::new(StunServerConfig::with_alternate(primary, alternate))
    }

    /// The core, to read its counters.
    pub fn core(&self) -> &StunServer {
        &self.core
    }
}

impl Endpoint for StunServerEndpoint {
    fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        let Input::Udp {
            local,
            remote,
            data,
        } = input
        else {
            return;
        };
        // The core listens only on its own transport addresses, as its driver would bind them.
        if !self.locals.contains(&local) {
            return;
        }
        if let Some(reply) = self
            .core
            .handle_datagram(local, remote, data, &mut self.buf)
        {
            self.out.push(Output::Udp {
                local: reply.from,
                remote: reply.to,
                data: self.buf[..reply.len].to_vec(),
            });
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
