//! ERROR-CODE (RFC 8489 §14.8), ADDRESS-ERROR-CODE (RFC 8656 §18.12) and
//! UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
//!
//! ```text
//! ERROR-CODE:          0 (21 bits) | class (3 bits, 3..=6) | number (8 bits, 0..=99) | reason phrase
//! ADDRESS-ERROR-CODE:  family (8)  | 0 (13 bits) | class (3) | number (8) | reason phrase
//! ```

use crate::{AttributeError, AttributeType, TransactionId};

use super::turn::AddressFamily;

/// The reason phrase RFC 8489 §14.8 and RFC 8656 §18 recommend for an error code, or
/// `"Unknown Error"`.
pub const fn reason_phrase(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthenticated",
        403 => "Forbidden",
        405 => "Mobility Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        446 => "Connection Already Exists",
        447 => "Connection Timeout or Failure",
        486 => "Allocation Quota Reached",
        487 => "Role Conflict",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "Unknown Error",
    }
}

/// Longest reason phrase accepted on decode (RFC 8489 §14.8: under 128 characters, 763 bytes).
const MAX_REASON: usize = 763;

fn decode_code(attr_type: AttributeType, b2: u8, b3: u8) -> Result<u16, AttributeError> {
    let class = u16::from(b2 & 0x07);
    let number = u16::from(b3);
    if !(3..=6).contains(&class) {
        return Err(AttributeError::InvalidValue {
            attr_type,
            reason: "error class outside 3..=6",
        });
    }
    if number > 99 {
        return Err(AttributeError::InvalidValue {
            attr_type,
            reason: "error number above 99",
        });
    }
    Ok(class * 100 + number)
}

fn decode_reason(attr_type: AttributeType, value: &[u8]) -> Result<&str, AttributeError> {
    if value.len() > MAX_REASON {
        return Err(AttributeError::TooLong {
            attr_type,
            max: MAX_REASON,
            actual: value.len(),
        });
    }
    core::str::from_utf8(value).map_err(|_| AttributeError::InvalidUtf8 { attr_type })
}

fn short(attr_type: AttributeType, actual: usize) -> AttributeError {
    AttributeError::InvalidLength {
        attr_type,
        expected: "at least 4",
        actual,
    }
}

/// ERROR-CODE (RFC 8489 §14.8): a code 300–699 and a reason phrase. Decoding enforces the
/// range; encoding trusts the caller to stay in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode<'a> {
    /// The code, e.g. 401.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'a str,
}

impl ErrorCode<'static> {
    /// An error code with its standard reason phrase ([`reason_phrase`]).
    pub const fn new(code: u16) -> ErrorCode<'static> {
        ErrorCode {
            code,
            reason: reason_phrase(code),
        }
    }
}

impl<'a> crate::Attribute<'a> for ErrorCode<'a> {
    const TYPE: AttributeType = AttributeType::ERROR_CODE;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if value.len() < 4 {
            return Err(short(Self::TYPE, value.len()));
        }
        Ok(ErrorCode {
            code: decode_code(Self::TYPE, value[2], value[3])?,
            reason: decode_reason(Self::TYPE, &value[4..])?,
        })
    }
    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].fill(0);
        out[2] = (self.code / 100 % 8) as u8;
        out[3] = (self.code % 100) as u8;
        out[4..].copy_from_slice(self.reason.as_bytes());
    }
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): why the allocation of one address family failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressErrorCode<'a> {
    /// The family the error is about.
    pub family: AddressFamily,
    /// The code, e.g. 440.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'a str,
}

impl<'a> crate::Attribute<'a> for AddressErrorCode<'a> {
    const TYPE: AttributeType = AttributeType::ADDRESS_ERROR_CODE;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if value.len() < 4 {
            return Err(short(Self::TYPE, value.len()));
        }
        Ok(AddressErrorCode {
            family: AddressFamily::from_byte(Self::TYPE, value[0])?,
            code: decode_code(Self::TYPE, value[2], value[3])?,
            reason: decode_reason(Self::TYPE, &value[4..])?,
        })
    }
    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[0] = self.family.to_byte();
        out[1] = 0;
        out[2] = (self.code / 100 % 8) as u8;
        out[3] = (self.code % 100) as u8;
        out[4..].copy_from_slice(self.reason.as_bytes());
    }
}

/// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): the comprehension-required attribute types a
/// request carried that the server did not understand (sent with 420).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(List<'a>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List<'a> {
    Wire(&'a [u8]),
    Types(&'a [AttributeType]),
}

impl<'a> UnknownAttributes<'a> {
    /// For building: the given types.
    pub const fn new(types: &'a [AttributeType]) -> UnknownAttributes<'a> {
        UnknownAttributes(List::Types(types))
    }

    /// The listed attribute types, in order.
    pub fn iter(&self) -> impl Iterator<Item = AttributeType> + 'a {
        let (wire, types): (&'a [u8], &'a [AttributeType]) = match self.0 {
            List::Wire(w) => (w, &[]),
            List::Types(t) => (&[], t),
        };
        wire.chunks_exact(2)
            .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
            .chain(types.iter().copied())
    }

    /// How many types are listed.
    pub fn len(&self) -> usize {
        match self.0 {
            List::Wire(w) => w.len() / 2,
            List::Types(t) => t.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> crate::Attribute<'a> for UnknownAttributes<'a> {
    const TYPE: AttributeType = AttributeType::UNKNOWN_ATTRIBUTES;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if !value.len().is_multiple_of(2) {
            return Err(AttributeError::InvalidLength {
                attr_type: Self::TYPE,
                expected: "a multiple of 2",
                actual: value.len(),
            });
        }
        Ok(UnknownAttributes(List::Wire(value)))
    }
    fn value_len(&self) -> usize {
        self.len() * 2
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        for (chunk, t) in out.chunks_exact_mut(2).zip(self.iter()) {
            chunk.copy_from_slice(&t.0.to_be_bytes());
        }
    }
}
