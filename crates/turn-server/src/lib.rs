//! The server side of the stack: the sans-IO TURN core ([`turn::TurnServer`], RFC 8656) with
//! the STUN Binding server beside it ([`stun::StunServer`], RFC 8489 and RFC 5780), the
//! credentials and nonces they check ([`auth`]), the peer policy ([`peer_policy`]), and
//! coturn's configuration keys ([`config`]). With the `driver` feature (on by default): the
//! tokio [`driver`] that runs the core on real sockets, one worker per thread, and the
//! `turnserver` and `stunserver` programs (the latter is the driver's STUN-only mode).
//!
//! The cores show the face of every core of the stack (the `sans-io` crate): inputs with
//! `now`, outputs from one `poll_output` that ends in the timer, and a borrowed fast path
//! for what must not queue (relayed packets; a Binding answer into the caller's buffer).
//!
//! ```
//! use sans_io::{Output, Receive};
//! use turn_server::stun::{StunServer, StunServerConfig};
//! use stun_codec::{attr::XorMappedAddress, Class, Message, MessageBuilder, MessageType, Method, TransactionId};
//!
//! let server_addr = "192.0.2.10:3478".parse()?;
//! let mut server = StunServer::new(StunServerConfig::new(server_addr));
//!
//! // A client's Binding request, as it arrives from 198.51.100.7:40000.
//! let mut req = [0u8; 64];
//! let req = MessageBuilder::new(&mut req, MessageType::new(Method::BINDING, Class::Request), TransactionId([3; 12]))?
//!     .finish()
//!     .to_vec();
//! let client = "198.51.100.7:40000".parse()?;
//!
//! server.handle_receive(std::time::Instant::now(), Receive::udp(server_addr, client, &req));
//! let Some(Output::Transmit(answer)) = server.poll_output() else { panic!("answered") };
//! assert_eq!((answer.local, answer.remote), (server_addr, client));
//! let resp = Message::parse(&answer.data)?;
//! assert_eq!(resp.get::<XorMappedAddress>()?, Some(XorMappedAddress(client)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod peer_policy;
pub mod proxy_protocol;
mod response;
pub mod stun;
pub mod turn;

#[cfg(feature = "driver")]
pub mod cli;
#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "driver")]
pub mod userdb;
