//! Zero-copy STUN (RFC 8489, RFC 5389) messages with every STUN, TURN (RFC 8656, 6156, 6062),
//! ICE (RFC 8445) and NAT-discovery (RFC 5780) attribute, MESSAGE-INTEGRITY(-SHA256),
//! FINGERPRINT, TURN ChannelData, stream framing and RFC 7983 demultiplexing.
//!
//! No I/O, no clock, no allocation per message: [`Message`] is a view validated once over
//! the caller's bytes, and [`MessageBuilder`] writes into the caller's buffer.
//!
//! # Parse, verify, read
//!
//! ```
//! use stun_codec::{attr::*, IntegrityKey, Message, Method, Class};
//!
//! // RFC 5769 §2.2: a Binding success response (IPv4), short-term password below.
//! let bytes: &[u8] = &[
//!     0x01, 0x01, 0x00, 0x3c, // Binding success response, 60 bytes of attributes
//!     0x21, 0x12, 0xa4, 0x42, // magic cookie
//!     0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, // transaction id
//!     0x80, 0x22, 0x00, 0x0b, // SOFTWARE, 11 bytes
//!     0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, // "test vector" + pad
//!     0x00, 0x20, 0x00, 0x08, // XOR-MAPPED-ADDRESS, 8 bytes
//!     0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, // IPv4, port and address XOR-ed
//!     0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY, 20 bytes
//!     0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74,
//!     0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
//!     0x80, 0x28, 0x00, 0x04, // FINGERPRINT
//!     0xc0, 0x7d, 0x4c, 0x96,
//! ];
//! let msg = Message::parse(bytes)?;
//! assert_eq!(msg.message_type().method, Method::BINDING);
//! assert_eq!(msg.message_type().class, Class::SuccessResponse);
//!
//! let key = IntegrityKey::short_term("VOkJxbRl1RmTxUk/WvJxBt")?;
//! msg.verify_integrity(&key)?;
//! msg.verify_fingerprint()?;
//!
//! let mapped = msg.get::<XorMappedAddress>()?.expect("present");
//! assert_eq!(mapped.0, "192.0.2.1:32853".parse()?);
//! assert_eq!(msg.get::<Software>()?, Some(Software("test vector")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Build
//!
//! ```
//! use stun_codec::{attr::*, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId};
//!
//! let key = IntegrityKey::short_term("pass")?;
//! let mut buf = [0u8; 128];
//! let mut b = MessageBuilder::new(
//!     &mut buf,
//!     MessageType::new(Method::BINDING, Class::Request),
//!     TransactionId([1; 12]),
//! )?;
//! b.add(&Username("alice:bob"))?
//!     .add(&Priority(0x6e7f1eff))?
//!     .add(&IceControlling(42))?
//!     .add(&UseCandidate)?
//!     .add_message_integrity(&key)?
//!     .add_fingerprint()?;
//! let bytes = b.finish();
//!
//! let msg = Message::parse(bytes)?;
//! msg.verify_integrity(&key)?;
//! assert_eq!(msg.get::<IceControlling>()?, Some(IceControlling(42)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod attr;
mod builder;
mod channel_data;
mod demux;
mod display;
mod error;
mod framing;
mod header;
pub mod integrity;
mod message;
pub mod owned;

pub use attr::{Attribute, AttributeType, RawAttribute};
pub use builder::MessageBuilder;
pub use channel_data::{
    ChannelData, ChannelDataError, CHANNEL_DATA_HEADER_LEN, RFC5766_MAX_CHANNEL,
};
pub use demux::{classify, demux, PacketKind};
pub use error::{AttributeError, BuildError, IntegrityError, KeyError, ParseError};
pub use framing::{frame_len, FrameKind, FramingError, StreamFramer, MAX_FRAME_LEN};
pub use header::{Class, MessageType, Method, TransactionId, HEADER_LEN, MAGIC_COOKIE};
pub use integrity::IntegrityKey;
pub use message::{is_stun, Attributes, Message};
pub use owned::OwnedAttribute;
