//! A sans-IO ICE agent (RFC 8445) with trickle ICE (RFC 8838), consent freshness
//! (RFC 7675), ICE-lite both ways, and a TURN client (RFC 8656) over UDP, TCP and TLS.
//!
//! The agent never touches a socket or a clock. Its driver tells it which UDP sockets exist
//! ([`Agent::add_local_socket`]), hands it what arrives ([`Agent::handle_receive`]) with the
//! current time, and sends what [`Agent::poll_transmit`] gives; [`Agent::poll_timeout`] says
//! when to call [`Agent::handle_timeout`]. Connections to TURN servers over TCP or TLS are
//! asked for through [`Agent::poll_request`]. The application reads [`Agent::poll_event`]:
//! local candidates to signal, state changes, the selected pair.
//!
//! # Two agents on one (ideal) network
//!
//! ```
//! use std::collections::VecDeque;
//! use std::time::{Duration, Instant};
//! use ice_agent::{Agent, AgentConfig, ConnectionState, Event, Role, Via};
//!
//! let mut t = Instant::now();
//! let mut a = Agent::new(AgentConfig::new(Role::Controlling));
//! let mut b = Agent::new(AgentConfig::new(Role::Controlled));
//! let (sa, sb) = (a.add_stream(1), b.add_stream(1));
//! a.add_local_socket(t, sa, 1, "192.0.2.1:5000".parse()?)?;
//! b.add_local_socket(t, sb, 1, "192.0.2.2:6000".parse()?)?;
//! // Signalling: credentials and candidates, both ways.
//! a.set_remote_credentials(t, b.local_credentials().clone(), false);
//! b.set_remote_credentials(t, a.local_credentials().clone(), false);
//! for c in a.local_candidates(sa) {
//!     b.add_remote_candidate(t, sb, c)?;
//! }
//! for c in b.local_candidates(sb) {
//!     a.add_remote_candidate(t, sa, c)?;
//! }
//! // The network: every datagram arrives at once.
//! let mut agents = [a, b];
//! for _ in 0..100 {
//!     for i in 0..2 {
//!         while let Some(tx) = agents[i].poll_transmit() {
//!             let Via::Udp { local, remote } = tx.via else { unreachable!() };
//!             let _ = agents[1 - i].handle_receive(t, remote, local, &tx.data);
//!         }
//!     }
//!     if agents.iter().all(|x| x.state() == ConnectionState::Connected) {
//!         break;
//!     }
//!     t = agents.iter().filter_map(|x| x.poll_timeout()).min().unwrap_or(t);
//!     agents.iter_mut().for_each(|x| x.handle_timeout(t));
//! }
//! let (local, remote) = agents[0].selected_pair(sa, 1).expect("connected");
//! assert_eq!(local.addr, "192.0.2.1:5000".parse()?);
//! assert_eq!(remote.addr, "192.0.2.2:6000".parse()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod agent;
pub mod candidate;
mod config;
#[cfg(feature = "driver")]
pub mod driver;
pub mod turn_client;

pub use agent::Agent;
pub use candidate::{Candidate, CandidateKind, CandidateParseError, CandidateTransport};
pub use config::{
    AddCandidateError, AgentConfig, AgentStats, ConnectionId, ConnectionState, Credentials,
    DriverRequest, Event, Received, Role, SendError, StreamId, Transmit, TurnServerConfig, Via,
};
pub use turn_client::{TurnClient, TurnClientConfig, TurnEvent, TurnTransport};
