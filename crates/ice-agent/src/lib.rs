//! A sans-IO ICE agent (RFC 8445) with trickle ICE (RFC 8838), consent freshness
//! (RFC 7675), ICE-lite both ways, and relayed candidates through the TURN client of
//! `stun-client` (RFC 8656) over UDP, TCP and TLS.
//!
//! The agent never touches a socket or a clock, and shows the face of every core of the
//! stack (the `sans-io` crate). Its driver tells it which UDP sockets exist
//! ([`Agent::add_local_sockets`]), hands it what arrives ([`Agent::handle_receive`]: datagrams,
//! and frames of TURN connections) with the current time, and carries out what
//! [`Agent::poll_output`] gives until it returns `None`: [`Transmit`]s to send,
//! [`Event`]s for the application (local candidates to signal, state changes, the selected
//! pair), [`Request`]s (open or close a connection to a TURN server), and last the
//! `Timeout` at which to call [`Agent::handle_timeout`]. Application data comes back from
//! `handle_receive` itself, borrowed from the input, and [`Agent::send`] frames it into the
//! caller's buffer.
//!
//! # Two agents on one (ideal) network
//!
//! ```
//! use std::time::Instant;
//! use ice_agent::{Agent, AgentConfig, ConnectionState, LocalSocket, Output, Receive, Role};
//!
//! let mut t = Instant::now();
//! let mut a = Agent::new(AgentConfig::new(Role::Controlling));
//! let mut b = Agent::new(AgentConfig::new(Role::Controlled));
//! let (sa, sb) = (a.add_stream(1), b.add_stream(1));
//! let socket = |stream, addr: &str| LocalSocket { stream, component: 1, addr: addr.parse().unwrap() };
//! a.add_local_sockets(t, &[socket(sa, "192.0.2.1:5000")])?;
//! b.add_local_sockets(t, &[socket(sb, "192.0.2.2:6000")])?;
//! // Signalling: credentials and candidates, both ways.
//! a.set_remote_credentials(t, b.local_credentials().clone(), false);
//! b.set_remote_credentials(t, a.local_credentials().clone(), false);
//! for c in a.local_candidates(sa) {
//!     b.add_remote_candidate(t, sb, c)?;
//! }
//! for c in b.local_candidates(sb) {
//!     a.add_remote_candidate(t, sa, c)?;
//! }
//! // The network: every datagram arrives at once. Each agent's drain ends with its timer.
//! let mut agents = [a, b];
//! let mut timers = [None, None];
//! for _ in 0..100 {
//!     for i in 0..2 {
//!         while let Some(o) = agents[i].poll_output() {
//!             match o {
//!                 Output::Transmit(tx) => {
//!                     let r = Receive::udp(tx.remote, tx.local, &tx.data);
//!                     let _ = agents[1 - i].handle_receive(t, r);
//!                 }
//!                 Output::Timeout(at) => timers[i] = at,
//!                 _ => {}
//!             }
//!         }
//!     }
//!     if agents.iter().all(|x| x.state() == ConnectionState::Connected) {
//!         break;
//!     }
//!     t = timers.iter().flatten().min().copied().unwrap_or(t);
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
mod error;
mod event;

pub use agent::{Agent, LocalSocket};
pub use candidate::{Candidate, CandidateKind, CandidateParseError, CandidateTransport};
pub use config::{AgentConfig, Credentials, Role, TurnServerConfig};
pub use error::{AddCandidateError, SendError};
pub use event::{AgentStats, ConnectionState, Event, Output, Received, Request, StreamId};
/// The words every core of the stack shares (the `sans-io` crate).
pub use sans_io::{ConnectionId, Receive, Transmit, Transport};
