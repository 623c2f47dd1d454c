//! Sans-IO clients of STUN and TURN servers, with the face every core of the stack shows
//! (`sans-io`: inputs with `now`, one `poll_output` ending in the timer):
//!
//! - [`turn::TurnClient`]: one TURN allocation (RFC 8656) over UDP, TCP or TLS, with
//!   permissions, channels and refreshes. The ICE agent gathers relayed candidates with it;
//!   load tools and tests use it alone.
//! - [`discovery::NatDiscovery`]: RFC 5780 NAT behaviour discovery against a server with an
//!   alternate address: mapping, filtering, hairpinning.
//!
//! See each module for an example.

#![deny(missing_docs)]

pub mod discovery;
pub mod turn;

pub use turn::{
    BindEvent, ConnectionBinder, TurnClient, TurnClientConfig, TurnError, TurnEvent, TurnSendError,
    SEND_OVERHEAD,
};
