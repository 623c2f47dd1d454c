//! Building messages into a buffer the caller owns (RFC 8489 §5, §14.5–14.7).

use crate::attr::{Attribute, AttributeType};
use crate::integrity::{fingerprint, IntegrityKey};
use crate::message::padded;
use crate::{BuildError, MessageType, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// Where the builder is in the order RFC 8489 §14.5–14.7 imposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Attributes,
    Integrity,
    IntegritySha256,
    Fingerprint,
}

impl Stage {
    fn of(t: AttributeType) -> Stage {
        match t {
            AttributeType::MESSAGE_INTEGRITY => Stage::Integrity,
            AttributeType::MESSAGE_INTEGRITY_SHA256 => Stage::IntegritySha256,
            AttributeType::FINGERPRINT => Stage::Fingerprint,
            _ => Stage::Attributes,
        }
    }

    fn attribute(self) -> AttributeType {
        match self {
            Stage::Attributes => AttributeType(0),
            Stage::Integrity => AttributeType::MESSAGE_INTEGRITY,
            Stage::IntegritySha256 => AttributeType::MESSAGE_INTEGRITY_SHA256,
            Stage::Fingerprint => AttributeType::FINGERPRINT,
        }
    }
}

/// Writes one message into a caller-owned buffer, attribute by attribute.
///
/// The header's length field is kept current, so the bytes written so far are always a valid
/// message. Ordinary attributes come first, then MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and
/// FINGERPRINT, each optional but in that order; anything else is a
/// [`BuildError::OutOfOrder`].
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    tid: TransactionId,
    stage: Stage,
    padding_byte: u8,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message of type `msg_type` with transaction id `tid` at the start of `buf`.
    pub fn new(
        buf: &'b mut [u8],
        msg_type: MessageType,
        tid: TransactionId,
    ) -> Result<MessageBuilder<'b>, BuildError> {
        if buf.len() < HEADER_LEN {
            return Err(BuildError::BufferTooSmall {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        buf[..2].copy_from_slice(&msg_type.to_bits().to_be_bytes());
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..20].copy_from_slice(tid.as_bytes());
        Ok(MessageBuilder {
            buf,
            len: HEADER_LEN,
            tid,
            stage: Stage::Attributes,
            padding_byte: 0,
        })
    }

    /// Sets the byte used to pad attribute values to 4 bytes. RFC 8489 §14 requires zero (the
    /// default); RFC 5389 allowed any value, and the RFC 5769 test vectors use 0x20. Only useful
    /// to reproduce such messages byte for byte.
    pub fn set_padding_byte(&mut self, byte: u8) {
        self.padding_byte = byte;
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a message has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Reserves room for an attribute of `value_len` bytes after checking order and sizes;
    /// writes its header, the padding and the new message length; returns the value's range.
    fn reserve(
        &mut self,
        attr_type: AttributeType,
        value_len: usize,
    ) -> Result<core::ops::Range<usize>, BuildError> {
        let stage = Stage::of(attr_type);
        if stage < self.stage || (stage == self.stage && stage != Stage::Attributes) {
            return Err(BuildError::OutOfOrder {
                attr_type,
                after: self.stage.attribute(),
            });
        }
        if value_len > usize::from(u16::MAX) {
            return Err(BuildError::AttributeTooLong {
                attr_type,
                length: value_len,
            });
        }
        let end = self.len + 4 + padded(value_len);
        if end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(BuildError::MessageTooLong {
                length: end - HEADER_LEN,
            });
        }
        if end > self.buf.len() {
            return Err(BuildError::BufferTooSmall {
                needed: end,
                available: self.buf.len(),
            });
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&attr_type.0.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&(value_len as u16).to_be_bytes());
        self.buf[at + 4 + value_len..end].fill(self.padding_byte);
        self.buf[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
        self.len = end;
        self.stage = stage;
        Ok(at + 4..at + 4 + value_len)
    }

    /// Appends a typed attribute.
    pub fn add<'a, A: Attribute<'a>>(&mut self, attr: &A) -> Result<&mut Self, BuildError> {
        let range = self.reserve(A::TYPE, attr.value_len())?;
        attr.encode(&mut self.buf[range], &self.tid);
        Ok(self)
    }

    /// Appends an attribute from its type and value bytes.
    pub fn add_raw(
        &mut self,
        attr_type: AttributeType,
        value: &[u8],
    ) -> Result<&mut Self, BuildError> {
        let range = self.reserve(attr_type, value.len())?;
        self.buf[range].copy_from_slice(value);
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, with the length field
    /// counting the attribute itself (RFC 8489 §14.5).
    pub fn add_message_integrity(&mut self, key: &IntegrityKey) -> Result<&mut Self, BuildError> {
        let range = self.reserve(AttributeType::MESSAGE_INTEGRITY, 20)?;
        let mac = key.hmac_sha1(&[&self.buf[..range.start - 4]]);
        self.buf[range].copy_from_slice(&mac);
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 with the full 32-byte HMAC (RFC 8489 §14.6).
    pub fn add_message_integrity_sha256(
        &mut self,
        key: &IntegrityKey,
    ) -> Result<&mut Self, BuildError> {
        self.add_message_integrity_sha256_truncated(key, 32)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 truncated to `len` bytes, which RFC 8489 §14.6 allows
    /// to be 16..=32 in steps of 4 (other values are rounded into that range).
    pub fn add_message_integrity_sha256_truncated(
        &mut self,
        key: &IntegrityKey,
        len: usize,
    ) -> Result<&mut Self, BuildError> {
        let len = (len.clamp(16, 32) + 3) & !3;
        let range = self.reserve(AttributeType::MESSAGE_INTEGRITY_SHA256, len)?;
        let mac = key.hmac_sha256(&[&self.buf[..range.start - 4]]);
        self.buf[range].copy_from_slice(&mac[..len]);
        Ok(self)
    }

    /// Appends FINGERPRINT, which must be last (RFC 8489 §14.7).
    pub fn add_fingerprint(&mut self) -> Result<&mut Self, BuildError> {
        let range = self.reserve(AttributeType::FINGERPRINT, 4)?;
        let crc = fingerprint(&self.buf[..range.start - 4]);
        self.buf[range].copy_from_slice(&crc.to_be_bytes());
        Ok(self)
    }

    /// Ends the message; returns its bytes.
    pub fn finish(self) -> &'b [u8] {
        &self.buf[..self.len]
    }
}
