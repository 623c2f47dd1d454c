//! TURN attributes (RFC 8656 §18, RFC 6156, RFC 6062 §6.2).

use super::{fixed, flag_attribute, int_attribute};
use crate::{AttributeError, AttributeType, TransactionId};

/// An address family as TURN encodes it (RFC 8656 §18.6): 0x01 IPv4, 0x02 IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum AddressFamily {
    /// IPv4 (0x01).
    V4,
    /// IPv6 (0x02).
    V6,
}

impl AddressFamily {
    pub(crate) fn from_byte(attr_type: AttributeType, b: u8) -> Result<Self, AttributeError> {
        match b {
            0x01 => Ok(AddressFamily::V4),
            0x02 => Ok(AddressFamily::V6),
            family => Err(AttributeError::UnknownFamily { attr_type, family }),
        }
    }

    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }
}

macro_rules! family_attribute {
    ($(#[$doc:meta])* $name:ident, $const:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub AddressFamily);

        impl<'a> crate::Attribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$const;
            fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
                let v = fixed::<4>(Self::TYPE, value, "4")?;
                AddressFamily::from_byte(Self::TYPE, v[0]).map($name)
            }
            fn value_len(&self) -> usize {
                4
            }
            fn encode(&self, out: &mut [u8], _: &TransactionId) {
                out.copy_from_slice(&[self.0.to_byte(), 0, 0, 0]);
            }
        }
    };
}

family_attribute!(
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): the family of the relayed address wanted.
    RequestedAddressFamily, REQUESTED_ADDRESS_FAMILY
);
family_attribute!(
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): ask for a second, IPv6, relayed address.
    AdditionalAddressFamily, ADDITIONAL_ADDRESS_FAMILY
);

/// CHANNEL-NUMBER (RFC 8656 §18.1): a 16-bit channel number and 16 reserved bits.
///
/// Any number decodes; [`ChannelNumber::is_valid`] tells whether it is in the range
/// 0x4000–0x4FFF a ChannelBind may use (RFC 8656 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelNumber(pub u16);

impl ChannelNumber {
    /// The lowest channel number (RFC 8656 §12).
    pub const MIN: u16 = 0x4000;
    /// The highest channel number (RFC 8656 §12).
    pub const MAX: u16 = 0x4FFF;

    /// Whether the number is in 0x4000–0x4FFF.
    pub const fn is_valid(self) -> bool {
        self.0 >= Self::MIN && self.0 <= Self::MAX
    }
}

impl<'a> crate::Attribute<'a> for ChannelNumber {
    const TYPE: AttributeType = AttributeType::CHANNEL_NUMBER;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let v = fixed::<4>(Self::TYPE, value, "4")?;
        Ok(ChannelNumber(u16::from_be_bytes([v[0], v[1]])))
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..].fill(0);
    }
}

int_attribute!(
    /// LIFETIME (RFC 8656 §18.2): seconds until the allocation expires.
    Lifetime, u32, LIFETIME, 4
);
int_attribute!(
    /// RESERVATION-TOKEN (RFC 8656 §18.10): names a relayed port reserved by EVEN-PORT.
    ReservationToken, u64, RESERVATION_TOKEN, 8
);
int_attribute!(
    /// CONNECTION-ID (RFC 6062 §6.2.1): identifies a TCP peer connection.
    ConnectionId, u32, CONNECTION_ID, 4
);
flag_attribute!(
    /// DONT-FRAGMENT (RFC 8656 §18.9): set the DF bit on packets to the peer.
    DontFragment, DONT_FRAGMENT
);

/// DATA (RFC 8656 §18.4): the application data of a Send or Data indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Data<'a>(pub &'a [u8]);

impl<'a> crate::Attribute<'a> for Data<'a> {
    const TYPE: AttributeType = AttributeType::DATA;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        Ok(Data(value))
    }
    fn value_len(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}

/// EVEN-PORT (RFC 8656 §18.7): ask for an even relayed port, and with `reserve` also reserve
/// the next higher port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EvenPort {
    /// The R bit: reserve port + 1 for a later allocation.
    pub reserve: bool,
}

impl<'a> crate::Attribute<'a> for EvenPort {
    const TYPE: AttributeType = AttributeType::EVEN_PORT;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let [b] = fixed::<1>(Self::TYPE, value, "1")?;
        Ok(EvenPort {
            reserve: b & 0x80 != 0,
        })
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = if self.reserve { 0x80 } else { 0 };
    }
}

/// REQUESTED-TRANSPORT (RFC 8656 §18.8): the IP protocol number of the relay transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedTransport(pub u8);

impl RequestedTransport {
    /// UDP (17), the transport RFC 8656 defines.
    pub const UDP: RequestedTransport = RequestedTransport(17);
    /// TCP (6), for RFC 6062 allocations.
    pub const TCP: RequestedTransport = RequestedTransport(6);
}

impl<'a> crate::Attribute<'a> for RequestedTransport {
    const TYPE: AttributeType = AttributeType::REQUESTED_TRANSPORT;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let v = fixed::<4>(Self::TYPE, value, "4")?;
        Ok(RequestedTransport(v[0]))
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&[self.0, 0, 0, 0]);
    }
}

/// ICMP (RFC 8656 §18.13): an ICMP error the relay received for a Data indication.
///
/// ```text
/// reserved (16 bits) | ICMP type (8) | ICMP code (8) | error data (32)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmp {
    /// The ICMP (or ICMPv6) type.
    pub icmp_type: u8,
    /// The ICMP code.
    pub code: u8,
    /// Type-specific data, e.g. the MTU for "packet too big".
    pub error_data: u32,
}

impl<'a> crate::Attribute<'a> for Icmp {
    const TYPE: AttributeType = AttributeType::ICMP;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let v = fixed::<8>(Self::TYPE, value, "8")?;
        Ok(Icmp {
            icmp_type: v[2],
            code: v[3],
            error_data: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        })
    }
    fn value_len(&self) -> usize {
        8
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].fill(0);
        out[2] = self.icmp_type;
        out[3] = self.code;
        out[4..].copy_from_slice(&self.error_data.to_be_bytes());
    }
}
