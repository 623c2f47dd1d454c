//! WebSocket signalling with rooms for WebRTC applications.
//!
//! A browser (or `webrtc-peer`) joins a room by name and gets a peer id, the ids of the peers
//! already there, and `iceServers` with a TURN credential made for it (the TURN REST scheme
//! our `turnserver` and coturn check, so no TURN password is ever in a page). It then relays
//! offers, answers and candidates to the peers of its room, and hears when peers come and go.
//! The protocol is in `docs/rooms.md` and [`protocol`].
//!
//! - [`hub`]: the sans-IO core (rooms, relay, limits, join tokens, the fleet's replica).
//! - [`token`]: signed join tokens, so an application decides who enters which room.
//! - [`bus`]: what the instances of a fleet tell each other (Redis pub/sub in the server).
//! - [`client`]: a client of the protocol, for programs that join rooms (`webrtc-peer`).
//! - With the `server` feature (on by default): [`server`], the axum driver with the demo page,
//!   the in-process TURN server and fleet mode over Redis, and the `rooms` program.

#![deny(missing_docs)]

pub mod bus;
pub mod client;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod token;

#[cfg(feature = "server")]
pub mod server;
