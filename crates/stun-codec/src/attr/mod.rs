//! Attributes: the type registry, the open [`Attribute`] trait, and the typed attributes of
//! STUN (RFC 8489), TURN (RFC 8656, 6156, 6062), ICE (RFC 8445) and NAT discovery (RFC 5780).
//!
//! Every typed attribute borrows from the message where it can. Other crates add attributes by
//! implementing [`Attribute`] for their own types; [`Message::get`](crate::Message::get) then
//! finds them like the built-in ones.

use core::fmt;

use crate::{AttributeError, TransactionId};

mod address;
mod error_code;
mod ice;
mod integrity;
mod nat;
mod text;
mod turn;

pub use address::{
    AlternateServer, MappedAddress, OtherAddress, ResponseOrigin, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
pub use error_code::{reason_phrase, AddressErrorCode, ErrorCode, UnknownAttributes};
pub use ice::{IceControlled, IceControlling, Nomination, Priority, UseCandidate};
pub use integrity::{
    Fingerprint, MessageIntegrity, MessageIntegritySha256, PasswordAlgorithm, PasswordAlgorithms,
    UserHash,
};
pub use nat::{ChangeRequest, Padding, ResponsePort};
pub use text::{AlternateDomain, Nonce, Realm, SecurityFeatures, Software, Username};
pub use turn::{
    AdditionalAddressFamily, AddressFamily, ChannelNumber, ConnectionId, Data, DontFragment,
    EvenPort, Icmp, Lifetime, RequestedAddressFamily, RequestedTransport, ReservationToken,
};

/// A STUN attribute type (RFC 8489 §14, §18.3).
///
/// Types below 0x8000 are comprehension-required: a receiver that does not understand one must
/// reject the request with 420 (Unknown Attribute) listing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AttributeType(pub u16);

macro_rules! attribute_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl AttributeType {
            $($(#[$doc])* pub const $name: AttributeType = AttributeType($value);)*

            /// The registered name (e.g. `"XOR-MAPPED-ADDRESS"`), if known to this crate.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }

            /// Every attribute type this crate decodes, in registry order.
            pub const KNOWN: &'static [AttributeType] = &[$(AttributeType::$name),*];
        }
    };
}

attribute_types! {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    CHANGE_REQUEST = 0x0003, "CHANGE-REQUEST";
    /// USERNAME (RFC 8489 §14.3).
    USERNAME = 0x0006, "USERNAME";
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    /// ERROR-CODE (RFC 8489 §14.8).
    ERROR_CODE = 0x0009, "ERROR-CODE";
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    /// LIFETIME (RFC 8656 §18.2).
    LIFETIME = 0x000D, "LIFETIME";
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    /// DATA (RFC 8656 §18.4).
    DATA = 0x0013, "DATA";
    /// REALM (RFC 8489 §14.9).
    REALM = 0x0014, "REALM";
    /// NONCE (RFC 8489 §14.10).
    NONCE = 0x0015, "NONCE";
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    /// EVEN-PORT (RFC 8656 §18.7).
    EVEN_PORT = 0x0018, "EVEN-PORT";
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    /// USERHASH (RFC 8489 §14.4).
    USERHASH = 0x001E, "USERHASH";
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    /// PRIORITY (RFC 8445 §16.1).
    PRIORITY = 0x0024, "PRIORITY";
    /// USE-CANDIDATE (RFC 8445 §16.1).
    USE_CANDIDATE = 0x0025, "USE-CANDIDATE";
    /// PADDING (RFC 5780 §7.6).
    PADDING = 0x0026, "PADDING";
    /// RESPONSE-PORT (RFC 5780 §7.5).
    RESPONSE_PORT = 0x0027, "RESPONSE-PORT";
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    CONNECTION_ID = 0x002A, "CONNECTION-ID";
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    /// ICMP (RFC 8656 §18.13).
    ICMP = 0x8004, "ICMP";
    /// SOFTWARE (RFC 8489 §14.14).
    SOFTWARE = 0x8022, "SOFTWARE";
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    /// FINGERPRINT (RFC 8489 §14.7).
    FINGERPRINT = 0x8028, "FINGERPRINT";
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    ICE_CONTROLLED = 0x8029, "ICE-CONTROLLED";
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    ICE_CONTROLLING = 0x802A, "ICE-CONTROLLING";
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    RESPONSE_ORIGIN = 0x802B, "RESPONSE-ORIGIN";
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    OTHER_ADDRESS = 0x802C, "OTHER-ADDRESS";
    /// NOMINATION (draft-thatcher-ice-renomination; libwebrtc's and pion's code point).
    NOMINATION = 0xC001, "NOMINATION";
}

impl AttributeType {
    /// Whether a receiver must understand this attribute (types 0x0000–0x7FFF, RFC 8489 §14).
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// Whether this crate decodes this attribute type.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "attribute {:#06x}", self.0),
        }
    }
}

/// A typed attribute: decodes from and encodes to the value bytes of one TLV.
///
/// The lifetime `'a` is that of the message the value borrows from. Implement it for your own
/// types to add attributes; the crate's built-in attributes use nothing more than this.
///
/// ```
/// use stun_codec::{Attribute, AttributeError, AttributeType, TransactionId};
///
/// /// A made-up comprehension-optional attribute carrying one byte.
/// #[derive(Debug, PartialEq)]
/// struct Colour(u8);
///
/// impl<'a> Attribute<'a> for Colour {
///     const TYPE: AttributeType = AttributeType(0xC001);
///     fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
///         match value {
///             [c] => Ok(Colour(*c)),
///             _ => Err(AttributeError::InvalidLength { attr_type: Self::TYPE, expected: "1", actual: value.len() }),
///         }
///     }
///     fn value_len(&self) -> usize { 1 }
///     fn encode(&self, out: &mut [u8], _: &TransactionId) { out[0] = self.0; }
/// }
/// ```
pub trait Attribute<'a>: Sized {
    /// The attribute type this implementation handles.
    const TYPE: AttributeType;

    /// Decodes the value (without padding). `tid` is the message's transaction id, which the
    /// XOR-ed address attributes need.
    fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, AttributeError>;

    /// The length of the encoded value, without padding.
    fn value_len(&self) -> usize;

    /// Writes the value into `out`, which is exactly [`value_len`](Self::value_len) bytes.
    fn encode(&self, out: &mut [u8], tid: &TransactionId);
}

/// One attribute as it appears in a message: type and value, not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub attr_type: AttributeType,
    /// The value, without padding.
    pub value: &'a [u8],
    /// Offset of the attribute header from the start of the message.
    pub offset: usize,
}

impl<'a> RawAttribute<'a> {
    /// Decodes this attribute as `T`; fails if the type differs or the value is invalid.
    pub fn decode<T: Attribute<'a>>(&self, tid: &TransactionId) -> Result<T, AttributeError> {
        if self.attr_type != T::TYPE {
            return Err(AttributeError::InvalidValue {
                attr_type: self.attr_type,
                reason: "attribute type does not match the requested type",
            });
        }
        T::decode(self.value, tid)
    }
}

/// Checks that a fixed-size value has exactly `N` bytes and returns it as an array.
pub(crate) fn fixed<const N: usize>(
    attr_type: AttributeType,
    value: &[u8],
    expected: &'static str,
) -> Result<[u8; N], AttributeError> {
    value.try_into().map_err(|_| AttributeError::InvalidLength {
        attr_type,
        expected,
        actual: value.len(),
    })
}

/// Defines an attribute whose value is a big-endian integer of fixed size.
macro_rules! int_attribute {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $const:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub $ty);

        impl<'a> $crate::Attribute<'a> for $name {
            const TYPE: $crate::AttributeType = $crate::AttributeType::$const;
            fn decode(
                value: &'a [u8],
                _: &$crate::TransactionId,
            ) -> Result<Self, $crate::AttributeError> {
                let b = $crate::attr::fixed::<$len>(Self::TYPE, value, stringify!($len))?;
                Ok($name(<$ty>::from_be_bytes(b)))
            }
            fn value_len(&self) -> usize {
                $len
            }
            fn encode(&self, out: &mut [u8], _: &$crate::TransactionId) {
                out.copy_from_slice(&self.0.to_be_bytes());
            }
        }
    };
}
pub(crate) use int_attribute;

/// Defines an attribute with an empty value (a flag).
macro_rules! flag_attribute {
    ($(#[$doc:meta])* $name:ident, $const:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name;

        impl<'a> $crate::Attribute<'a> for $name {
            const TYPE: $crate::AttributeType = $crate::AttributeType::$const;
            fn decode(
                value: &'a [u8],
                _: &$crate::TransactionId,
            ) -> Result<Self, $crate::AttributeError> {
                if value.is_empty() {
                    Ok($name)
                } else {
                    Err($crate::AttributeError::InvalidLength {
                        attr_type: Self::TYPE,
                        expected: "0",
                        actual: value.len(),
                    })
                }
            }
            fn value_len(&self) -> usize {
                0
            }
            fn encode(&self, _: &mut [u8], _: &$crate::TransactionId) {}
        }
    };
}
pub(crate) use flag_attribute;
