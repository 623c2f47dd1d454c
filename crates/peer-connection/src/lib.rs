//! WebRTC sessions on the stack's ICE agent: JSEP offer/answer (RFC 9429), DTLS 1.2 with
//! fingerprints (RFC 8827 §6.5), SCTP DataChannels (RFC 8831, RFC 8832), audio and video
//! tracks over DTLS-SRTP (RFC 5764), over the pair the ICE agent selects.
//!
//! [`PeerConnection`] is a sans-IO core with the face every core of the stack shows (see the
//! `sans-io` crate): inputs take `now`, and everything it has to say comes out of one
//! [`PeerConnection::poll_output`]. webrtc-rs's sans-IO crates do the DTLS, SCTP, DCEP and
//! SDP syntax; the session, the demultiplexing (RFC 7983) and the negotiation are ours.
//!
//! ```text
//!  sockets ──Receive──> PeerConnection::handle_receive
//!                         └─ ice_agent::Agent (STUN consumed; data on the selected pair)
//!                              └─ first byte (RFC 7983): 20–63 ──> DTLS ──> SCTP ──> DataChannels
//!                                                      128–191 ──> SRTP ──> tracks (RTP, RTCP)
//!  PeerConnection::poll_output ──> Transmit (ICE checks, DTLS records) · Event · Request · Timeout
//! ```
//!
//! # Offer and answer
//!
//! ```
//! use std::time::Instant;
//! use peer_connection::{Config, DataChannelInit, Event, PeerConnection, SdpType};
//!
//! // Sans-IO: these addresses are only written into candidates here.
//! let now = Instant::now();
//! let mut alice = PeerConnection::new(Config::default())?;
//! let mut bob = PeerConnection::new(Config::default())?;
//! alice.add_local_sockets(now, &["192.0.2.1:40000".parse()?]);
//! bob.add_local_sockets(now, &["192.0.2.2:40001".parse()?]);
//!
//! // Like the browser's createDataChannel: the first channel asks for negotiation.
//! let chat = alice.create_data_channel(now, "chat", DataChannelInit::default());
//! let offer = alice.create_offer(now, false)?;
//! assert!(offer.sdp.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"));
//! alice.set_local_description(now, &offer)?;
//!
//! bob.set_remote_description(now, &offer)?;
//! let answer = bob.create_answer(now)?;
//! assert_eq!(answer.kind, SdpType::Answer);
//! assert!(answer.sdp.contains("a=setup:active"));
//! bob.set_local_description(now, &answer)?;
//! alice.set_remote_description(now, &answer)?;
//!
//! // Trickled candidates come out as events, in the browser's JSON form if wanted.
//! let mut candidates = Vec::new();
//! while let Some(o) = alice.poll_output() {
//!     if let peer_connection::Output::Event(Event::IceCandidate(c)) = o {
//!         candidates.push(c.to_json());
//!     }
//! }
//! assert!(candidates[0].contains("192.0.2.1 40000 typ host"));
//! // A driver now carries datagrams and timers both ways until the channel opens:
//! // `Event::DataChannel(DataChannelEvent::Open { channel })`, then `send_text(now, chat, …)`.
//! # let _ = chat;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod certificate;
mod connection;
mod datachannel;
#[cfg(feature = "driver")]
pub mod driver;
mod dtls;
mod media;
mod sctp;
pub mod sdp;
mod srtp;

pub use certificate::{Certificate, Fingerprint, FingerprintError};
pub use connection::{
    Config, Event, Output, PeerConnection, PeerConnectionState, Request, SignalingState, Stats,
};
pub use datachannel::{
    ChannelId, DataChannelEvent, DataChannelInfo, DataChannelInit, DataChannelState,
};
pub use dtls::{DtlsError, DtlsRole};
pub use ice_agent::{AgentConfig, ConnectionState as IceConnectionState, Receive, Transmit};
pub use media::{MediaError, RemoteTrackInfo, RtpPacket, TrackId, TrackInfo};
pub use sctp::SendError;
pub use sdp::{Codec, Direction, MediaKind};
pub use sdp::{IceCandidate, SdpError, SdpType, SessionDescription};

/// Why a call into the session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate could not be made or loaded.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A description was refused.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// Not possible in the current state.
    #[error("{0}")]
    InvalidState(&'static str),
    /// A remote candidate was not understood.
    #[error("candidate: {0}")]
    Candidate(String),
    /// The driver could not start, or the session is closed.
    #[error("driver: {0}")]
    Driver(String),
}
