//! The server side of the stack, sans-IO: a core that takes `(local address, remote address,
//! bytes)` and answers with transmits, and that any driver — a tokio loop, or the natsim
//! network emulator — can host unchanged.
//!
//! Today: the STUN Binding server of RFC 8489 with the NAT behaviour discovery support of
//! RFC 5780 ([`stun::StunServer`]). The TURN allocation core (RFC 8656) joins it.
//!
//! ```
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
//! let mut out = [0u8; 1500];
//! let reply = server.handle_datagram(server_addr, client, &req, &mut out).expect("answered");
//! assert_eq!((reply.from, reply.to), (server_addr, client));
//! let resp = Message::parse(&out[..reply.len])?;
//! assert_eq!(resp.get::<XorMappedAddress>()?, Some(XorMappedAddress(client)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod peer_policy;
mod response;
pub mod stun;
pub mod turn;

#[cfg(feature = "driver")]
pub mod cli;
#[cfg(feature = "driver")]
pub mod driver;
