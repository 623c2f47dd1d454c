//! Structured errors for parsing, attribute decoding and building.

use crate::AttributeType;

/// Why a byte buffer is not a valid STUN message (RFC 8489 §5, §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The buffer ends before the header or before the length the header announces.
    #[error("truncated: need {expected} bytes, have {actual}")]
    Truncated {
        /// Bytes the header (or the 20-byte header itself) requires.
        expected: usize,
        /// Bytes available.
        actual: usize,
    },
    /// The buffer is longer than the header says; a datagram carries exactly one message.
    #[error("trailing bytes: message is {expected} bytes, buffer has {actual}")]
    TrailingBytes {
        /// Bytes the header announces (20 + length).
        expected: usize,
        /// Bytes in the buffer.
        actual: usize,
    },
    /// The two most significant bits of the message are not zero: not STUN (RFC 8489 §5).
    #[error("not a STUN message: first byte {first_byte:#04x}")]
    NotStun {
        /// The first byte seen.
        first_byte: u8,
    },
    /// A classic RFC 3489 message: no magic cookie in bytes 4..8. It is reported, not parsed,
    /// because its transaction id and attributes (no XOR addresses) follow other rules.
    #[error("classic RFC 3489 message (no magic cookie), type {message_type:#06x}")]
    ClassicStun {
        /// The 14-bit message type field.
        message_type: u16,
    },
    /// The message length is not a multiple of 4 (RFC 8489 §5).
    #[error("message length {length} is not a multiple of 4")]
    UnalignedLength {
        /// The length field.
        length: u16,
    },
    /// An attribute's value (plus its padding) runs past the end of the message.
    #[error("attribute {attr_type} at offset {offset} has length {length} but only {available} bytes remain")]
    AttributeOverrun {
        /// The attribute type.
        attr_type: AttributeType,
        /// Offset of the attribute header from the start of the message.
        offset: usize,
        /// The attribute's length field.
        length: u16,
        /// Bytes remaining in the message after the attribute header.
        available: usize,
    },
    /// Fewer than 4 bytes remain for an attribute header.
    #[error("{remaining} stray bytes at offset {offset} where an attribute header should be")]
    AttributeHeaderTruncated {
        /// Offset from the start of the message.
        offset: usize,
        /// Bytes remaining.
        remaining: usize,
    },
    /// FINGERPRINT is present but not the last attribute (RFC 8489 §14.7).
    #[error("FINGERPRINT at offset {offset} is not the last attribute")]
    FingerprintNotLast {
        /// Offset of the FINGERPRINT attribute header.
        offset: usize,
    },
}

/// Why an attribute's value could not be decoded into its typed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The value has a length the attribute's definition does not allow.
    #[error("{attr_type}: invalid length {actual} (expected {expected})")]
    InvalidLength {
        /// The attribute type.
        attr_type: AttributeType,
        /// What the RFC allows, e.g. "8 or 20".
        expected: &'static str,
        /// The value length found.
        actual: usize,
    },
    /// A text attribute longer than its RFC limit.
    #[error("{attr_type}: {actual} bytes exceeds the limit of {max}")]
    TooLong {
        /// The attribute type.
        attr_type: AttributeType,
        /// The maximum length in bytes.
        max: usize,
        /// The value length found.
        actual: usize,
    },
    /// An address family other than 0x01 (IPv4) or 0x02 (IPv6).
    #[error("{attr_type}: unknown address family {family:#04x}")]
    UnknownFamily {
        /// The attribute type.
        attr_type: AttributeType,
        /// The family byte found.
        family: u8,
    },
    /// A text attribute that is not UTF-8.
    #[error("{attr_type}: value is not UTF-8")]
    InvalidUtf8 {
        /// The attribute type.
        attr_type: AttributeType,
    },
    /// A field holds a value the RFC does not allow (e.g. an ERROR-CODE class outside 3..=6).
    #[error("{attr_type}: invalid value: {reason}")]
    InvalidValue {
        /// The attribute type.
        attr_type: AttributeType,
        /// Which rule was broken.
        reason: &'static str,
    },
}

/// Why a message could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The caller's buffer is too small for what is being added.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Total bytes the message would need.
        needed: usize,
        /// Size of the caller's buffer.
        available: usize,
    },
    /// The message would exceed the 16-bit length field.
    #[error("message too long: {length} bytes of attributes")]
    MessageTooLong {
        /// The attribute bytes the message would hold.
        length: usize,
    },
    /// An attribute value longer than 65535 bytes.
    #[error("attribute {attr_type} value of {length} bytes does not fit a 16-bit length")]
    AttributeTooLong {
        /// The attribute type.
        attr_type: AttributeType,
        /// The value length.
        length: usize,
    },
    /// Attributes must be added in the order RFC 8489 §14.5–14.7 requires:
    /// ordinary attributes, then MESSAGE-INTEGRITY, then MESSAGE-INTEGRITY-SHA256, then FINGERPRINT.
    #[error("{attr_type} cannot follow {after}")]
    OutOfOrder {
        /// The attribute being added.
        attr_type: AttributeType,
        /// The attribute already present that it may not follow.
        after: AttributeType,
    },
}

/// Why MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 or FINGERPRINT did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The message has no such attribute (or it is in a position where it must be ignored).
    #[error("{attr_type} is missing")]
    Missing {
        /// The attribute looked for.
        attr_type: AttributeType,
    },
    /// The attribute has a length the RFC does not allow.
    #[error("{attr_type} has invalid length {length}")]
    InvalidLength {
        /// The attribute.
        attr_type: AttributeType,
        /// Its value length.
        length: usize,
    },
    /// The HMAC or CRC does not match.
    #[error("{attr_type} does not match")]
    Mismatch {
        /// The attribute that failed.
        attr_type: AttributeType,
    },
}

/// Why a key could not be derived from a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// SASLprep (RFC 4013) rejected the password: it holds prohibited or unassigned characters
    /// or mixes bidirectional text wrongly.
    #[error("password rejected by SASLprep (RFC 4013)")]
    SaslPrep,
    /// A PASSWORD-ALGORITHM other than MD5 (0x0001) or SHA-256 (0x0002).
    #[error("unsupported password algorithm {algorithm:#06x}")]
    UnsupportedAlgorithm {
        /// The algorithm number.
        algorithm: u16,
    },
}
