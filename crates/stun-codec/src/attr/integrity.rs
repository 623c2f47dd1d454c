//! Integrity-related attributes: MESSAGE-INTEGRITY (RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256
//! (§14.6), FINGERPRINT (§14.7), USERHASH (§14.4), PASSWORD-ALGORITHM(S) (§14.11, §14.12).
//!
//! These are the values only; computing and verifying them is in [`crate::integrity`] and on
//! [`Message`](crate::Message) and [`MessageBuilder`](crate::MessageBuilder).

use super::{fixed, int_attribute};
use crate::{AttributeError, AttributeType, TransactionId};

/// MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageIntegrity(pub [u8; 20]);

impl<'a> crate::Attribute<'a> for MessageIntegrity {
    const TYPE: AttributeType = AttributeType::MESSAGE_INTEGRITY;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        fixed::<20>(Self::TYPE, value, "20").map(MessageIntegrity)
    }
    fn value_len(&self) -> usize {
        20
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&self.0);
    }
}

/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): HMAC-SHA256, possibly truncated to 16–32 bytes
/// in steps of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageIntegritySha256<'a>(pub &'a [u8]);

impl MessageIntegritySha256<'_> {
    /// Whether `len` is a value length RFC 8489 §14.6 allows: 16 to 32, a multiple of 4.
    pub const fn valid_len(len: usize) -> bool {
        len >= 16 && len <= 32 && len.is_multiple_of(4)
    }
}

impl<'a> crate::Attribute<'a> for MessageIntegritySha256<'a> {
    const TYPE: AttributeType = AttributeType::MESSAGE_INTEGRITY_SHA256;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        if Self::valid_len(value.len()) {
            Ok(MessageIntegritySha256(value))
        } else {
            Err(AttributeError::InvalidLength {
                attr_type: Self::TYPE,
                expected: "16 to 32, a multiple of 4",
                actual: value.len(),
            })
        }
    }
    fn value_len(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(self.0);
    }
}

int_attribute!(
    /// FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message up to it, XOR 0x5354554E.
    Fingerprint, u32, FINGERPRINT, 4
);

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm), sent instead of USERNAME.
/// Compute it with [`crate::integrity::userhash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserHash(pub [u8; 32]);

impl<'a> crate::Attribute<'a> for UserHash {
    const TYPE: AttributeType = AttributeType::USERHASH;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        fixed::<32>(Self::TYPE, value, "32").map(UserHash)
    }
    fn value_len(&self) -> usize {
        32
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.copy_from_slice(&self.0);
    }
}

/// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm the client chose for the long-term key.
///
/// ```text
/// algorithm (16 bits) | parameters length (16 bits) | parameters, padded to 4 bytes
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithm<'a> {
    /// The algorithm number: 0x0001 MD5, 0x0002 SHA-256 (RFC 8489 §18.5).
    pub algorithm: u16,
    /// The algorithm parameters (empty for MD5 and SHA-256).
    pub params: &'a [u8],
}

impl PasswordAlgorithm<'static> {
    /// MD5, the RFC 5389 long-term key.
    pub const MD5: PasswordAlgorithm<'static> = PasswordAlgorithm {
        algorithm: 0x0001,
        params: &[],
    };
    /// SHA-256 (RFC 8489 §18.5).
    pub const SHA256: PasswordAlgorithm<'static> = PasswordAlgorithm {
        algorithm: 0x0002,
        params: &[],
    };
}

fn padded(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> PasswordAlgorithm<'a> {
    /// Splits one entry off the front of `value`; returns it and the bytes after its padding.
    fn split(
        attr_type: AttributeType,
        value: &'a [u8],
    ) -> Result<(PasswordAlgorithm<'a>, &'a [u8]), AttributeError> {
        if value.len() < 4 {
            return Err(AttributeError::InvalidLength {
                attr_type,
                expected: "at least 4",
                actual: value.len(),
            });
        }
        let algorithm = u16::from_be_bytes([value[0], value[1]]);
        let plen = usize::from(u16::from_be_bytes([value[2], value[3]]));
        let rest = &value[4..];
        if plen > rest.len() {
            return Err(AttributeError::InvalidValue {
                attr_type,
                reason: "algorithm parameters run past the value",
            });
        }
        let params = &rest[..plen];
        let after = &rest[padded(plen).min(rest.len())..];
        Ok((PasswordAlgorithm { algorithm, params }, after))
    }

    fn encoded_len(&self) -> usize {
        4 + padded(self.params.len())
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.algorithm.to_be_bytes());
        out[2..4].copy_from_slice(&(self.params.len() as u16).to_be_bytes());
        out[4..4 + self.params.len()].copy_from_slice(self.params);
        out[4 + self.params.len()..].fill(0);
    }
}

impl<'a> crate::Attribute<'a> for PasswordAlgorithm<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHM;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let (alg, rest) = Self::split(Self::TYPE, value)?;
        if !rest.is_empty() {
            return Err(AttributeError::InvalidLength {
                attr_type: Self::TYPE,
                expected: "4 + the padded parameters",
                actual: value.len(),
            });
        }
        Ok(alg)
    }
    fn value_len(&self) -> usize {
        self.encoded_len()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        self.write(out)
    }
}

/// PASSWORD-ALGORITHMS (RFC 8489 §14.11): the algorithms a server supports, in its order of
/// preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithms<'a>(Algorithms<'a>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithms<'a> {
    Wire(&'a [u8]),
    List(&'a [PasswordAlgorithm<'a>]),
}

impl<'a> PasswordAlgorithms<'a> {
    /// For building: the given algorithms.
    pub const fn new(list: &'a [PasswordAlgorithm<'a>]) -> PasswordAlgorithms<'a> {
        PasswordAlgorithms(Algorithms::List(list))
    }

    /// The algorithms, in order.
    pub fn iter(&self) -> impl Iterator<Item = PasswordAlgorithm<'a>> + 'a {
        let (mut wire, list): (&'a [u8], &'a [PasswordAlgorithm<'a>]) = match self.0 {
            Algorithms::Wire(w) => (w, &[]),
            Algorithms::List(l) => (&[], l),
        };
        core::iter::from_fn(move || {
            // The wire form was validated entirely by `decode`, so `split` cannot fail here.
            let (alg, rest) =
                PasswordAlgorithm::split(AttributeType::PASSWORD_ALGORITHMS, wire).ok()?;
            wire = rest;
            Some(alg)
        })
        .chain(list.iter().copied())
    }
}

impl<'a> crate::Attribute<'a> for PasswordAlgorithms<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHMS;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let mut rest = value;
        while !rest.is_empty() {
            rest = PasswordAlgorithm::split(Self::TYPE, rest)?.1;
        }
        Ok(PasswordAlgorithms(Algorithms::Wire(value)))
    }
    fn value_len(&self) -> usize {
        self.iter().map(|a| a.encoded_len()).sum()
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        let mut at = 0;
        for alg in self.iter() {
            let n = alg.encoded_len();
            alg.write(&mut out[at..at + n]);
            at += n;
        }
    }
}
