//! Why the TURN core refuses a request, by the names RFC 8656 and RFC 8489 give the error
//! codes, so no handler returns a bare number.

use stun_codec::attr::AttributeType;

/// A refusal, answered as an error response with [`Reject::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reject {
    /// 300: try this server instead (ALTERNATE-SERVER, RFC 8489 §10).
    TryAlternate(std::net::SocketAddr),
    /// 400: malformed, or attributes that do not go together.
    BadRequest,
    /// 403: the peer address is not allowed (the peer policy).
    Forbidden,
    /// 420: comprehension-required attributes the server does not process, listed in
    /// UNKNOWN-ATTRIBUTES (at most 16).
    UnknownAttributes(Vec<AttributeType>),
    /// 437: no allocation on this 5-tuple, or an Allocate where one exists (RFC 8656 §7.2).
    AllocationMismatch,
    /// 440: a relay address family the server does not offer.
    AddressFamilyNotSupported,
    /// 441: a request on an allocation from another user than its owner (RFC 8656 §5).
    WrongCredentials,
    /// 442: REQUESTED-TRANSPORT other than UDP.
    UnsupportedTransportProtocol,
    /// 443: a peer of the other family than the relayed address.
    PeerAddressFamilyMismatch,
    /// 446: a Connect to a peer this allocation is connecting or connected to (RFC 6062 §5.2).
    ConnectionAlreadyExists,
    /// 447: the Connect to the peer failed or timed out (RFC 6062 §5.2).
    ConnectionTimeoutOrFailure,
    /// 486: the user's or the server's allocation quota is reached.
    AllocationQuotaReached,
    /// 500: the user database did not answer (RFC 8489 §14.8: try again).
    ServerError,
    /// 508: no relay port, no room for another permission or channel, or a relay socket that
    /// never came.
    InsufficientCapacity,
}

impl Reject {
    /// The ERROR-CODE value.
    pub(super) fn code(&self) -> u16 {
        match self {
            Reject::TryAlternate(_) => 300,
            Reject::BadRequest => 400,
            Reject::Forbidden => 403,
            Reject::UnknownAttributes(_) => 420,
            Reject::AllocationMismatch => 437,
            Reject::AddressFamilyNotSupported => 440,
            Reject::WrongCredentials => 441,
            Reject::UnsupportedTransportProtocol => 442,
            Reject::PeerAddressFamilyMismatch => 443,
            Reject::ConnectionAlreadyExists => 446,
            Reject::ConnectionTimeoutOrFailure => 447,
            Reject::AllocationQuotaReached => 486,
            Reject::ServerError => 500,
            Reject::InsufficientCapacity => 508,
        }
    }
}
