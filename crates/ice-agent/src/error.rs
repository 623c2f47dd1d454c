//! Why an input was refused.

/// Why [`Agent::send`](crate::Agent::send) could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No such stream or component.
    #[error("no such stream or component")]
    UnknownComponent,
    /// The component has no selected pair yet (or lost consent).
    #[error("no selected pair")]
    NotConnected,
    /// The data begins with a byte from 0 to 3, which the peer would take for STUN and drop
    /// (RFC 7983 §7). DTLS, RTP, RTCP, QUIC and ZRTP never do.
    #[error("data that begins with 0-3 would be taken for STUN")]
    LooksLikeStun,
    /// The buffer is too small for the data and its TURN framing.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Why a remote candidate was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddCandidateError {
    /// No such stream.
    #[error("no such stream")]
    UnknownStream,
    /// The candidate's component is not one of the stream's.
    #[error("component {0} is not in the stream")]
    UnknownComponent(u16),
    /// The stream already holds [`AgentConfig::max_remote_candidates`](crate::AgentConfig::max_remote_candidates) remote candidates.
    #[error("too many remote candidates")]
    TooMany,
    /// The candidate line did not parse.
    #[error(transparent)]
    Parse(#[from] crate::candidate::CandidateParseError),
}
