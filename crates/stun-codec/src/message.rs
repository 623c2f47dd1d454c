//! The borrowed, validated message view (RFC 8489 §5, §14).

use crate::attr::{Attribute, AttributeType, RawAttribute};
use crate::integrity::{fingerprint, IntegrityKey};
use crate::{IntegrityError, MessageType, ParseError, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// Marks "no such attribute" in the offsets below; no attribute starts at offset 0.
const NONE: u32 = 0;

/// A STUN message borrowed from a buffer, validated once by [`Message::parse`].
///
/// Validation checks the header (two zero bits, magic cookie, length a multiple of 4 and equal
/// to the bytes after the header) and that every attribute lies within the message, and it
/// notes where MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are. After that no
/// accessor can fail on framing, and none panics.
///
/// Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and
/// attributes after MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT, are ignored as RFC 8489
/// §14.5–14.6 requires: iteration and look-up do not see them.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    msg_type: MessageType,
    tid: TransactionId,
    /// Offsets (from the start of the message) of the attribute headers that count.
    integrity: u32,
    integrity_sha256: u32,
    fingerprint: u32,
    /// Ordinary attributes are those that start before this offset.
    ordinary_end: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) const fn padded(n: usize) -> usize {
    (n + 3) & !3
}

/// Whether `bytes` starts like an RFC 5389/8489 STUN message: two zero bits and the magic
/// cookie. A cheap first test before [`Message::parse`].
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[0] & 0xC0 == 0 && bytes[4..8] == MAGIC_COOKIE.to_be_bytes()
}

impl<'a> Message<'a> {
    /// Validates `bytes` as exactly one STUN message.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::Truncated {
                expected: HEADER_LEN,
                actual: bytes.len(),
            });
        }
        if bytes[0] & 0xC0 != 0 {
            return Err(ParseError::NotStun {
                first_byte: bytes[0],
            });
        }
        let length = be16(bytes, 2);
        if !length.is_multiple_of(4) {
            return Err(ParseError::UnalignedLength { length });
        }
        let total = HEADER_LEN + usize::from(length);
        if total > bytes.len() {
            return Err(ParseError::Truncated {
                expected: total,
                actual: bytes.len(),
            });
        }
        if total < bytes.len() {
            return Err(ParseError::TrailingBytes {
                expected: total,
                actual: bytes.len(),
            });
        }
        if bytes[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(ParseError::ClassicStun {
                message_type: be16(bytes, 0),
            });
        }

        let mut integrity = NONE;
        let mut integrity_sha256 = NONE;
        let mut fingerprint = NONE;
        let mut ordinary_end = u32::MAX;
        let mut last = NONE;
        let mut off = HEADER_LEN;
        let mut rest = &bytes[HEADER_LEN..];
        while let Some((header, after)) = rest.split_first_chunk::<4>() {
            let (attr_type, len) = attr_header(header);
            let padded_len = padded(usize::from(len));
            let Some(after) = after.get(padded_len..) else {
                return Err(ParseError::AttributeOverrun {
                    attr_type,
                    offset: off,
                    length: len,
                    available: after.len(),
                });
            };
            // RFC 8489 §14.5: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and
            // FINGERPRINT count; §14.6: after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
            match attr_type {
                AttributeType::MESSAGE_INTEGRITY
                    if integrity == NONE && integrity_sha256 == NONE =>
                {
                    integrity = off as u32;
                    ordinary_end = ordinary_end.min(off as u32);
                }
                AttributeType::MESSAGE_INTEGRITY_SHA256 if integrity_sha256 == NONE => {
                    integrity_sha256 = off as u32;
                    ordinary_end = ordinary_end.min(off as u32);
                }
                AttributeType::FINGERPRINT if fingerprint == NONE => fingerprint = off as u32,
                _ => {}
            }
            last = off as u32;
            off += 4 + padded_len;
            rest = after;
        }
        // RFC 8489 §14.7: FINGERPRINT, when present, is the last attribute: the first one seen
        // must be the last attribute of all.
        if fingerprint != NONE && fingerprint != last {
            return Err(ParseError::FingerprintNotLast {
                offset: fingerprint as usize,
            });
        }
        if !rest.is_empty() {
            // Unreachable for a length that is a multiple of 4, kept so that a change to the
            // checks above can never turn into a silent acceptance.
            return Err(ParseError::AttributeHeaderTruncated {
                offset: off,
                remaining: rest.len(),
            });
        }

        let mut tid = [0u8; 12];
        tid.copy_from_slice(&bytes[8..20]);
        Ok(Message {
            bytes,
            msg_type: MessageType::from_bits(be16(bytes, 0)),
            tid: TransactionId(tid),
            integrity,
            integrity_sha256,
            fingerprint,
            ordinary_end,
        })
    }

    /// The whole message.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Method and class.
    #[inline]
    pub fn message_type(&self) -> MessageType {
        self.msg_type
    }

    /// The transaction id.
    #[inline]
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The attributes that count, in order (see the type's docs for which are ignored).
    #[inline]
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: &self.bytes[HEADER_LEN..],
            off: HEADER_LEN,
            ordinary_end: self.ordinary_end,
            specials: [self.integrity, self.integrity_sha256, self.fingerprint],
        }
    }

    #[inline]
    fn raw_at(&self, off: u32) -> Option<RawAttribute<'a>> {
        if off == NONE {
            return None;
        }
        raw_attribute(self.bytes, off as usize)
    }

    /// The first attribute of type `t` that counts, undecoded.
    #[inline]
    pub fn get_raw(&self, t: AttributeType) -> Option<RawAttribute<'a>> {
        match t {
            AttributeType::MESSAGE_INTEGRITY => self.raw_at(self.integrity),
            AttributeType::MESSAGE_INTEGRITY_SHA256 => self.raw_at(self.integrity_sha256),
            AttributeType::FINGERPRINT => self.raw_at(self.fingerprint),
            _ => self
                .attributes()
                .take_while(|a| (a.offset as u32) < self.ordinary_end)
                .find(|a| a.attr_type == t),
        }
    }

    /// The first attribute of type `T`, decoded; `Ok(None)` if absent. When an attribute
    /// appears more than once, the first counts (RFC 8489 §14: later duplicates are ignored).
    #[inline]
    pub fn get<T: Attribute<'a>>(&self) -> Result<Option<T>, crate::AttributeError> {
        match self.get_raw(T::TYPE) {
            Some(raw) => T::decode(raw.value, &self.tid).map(Some),
            None => Ok(None),
        }
    }

    /// Every attribute of type `T` that counts, decoded, in order: for the attributes that may
    /// repeat (XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS).
    pub fn get_all<T: Attribute<'a> + 'a>(
        &self,
    ) -> impl Iterator<Item = Result<T, crate::AttributeError>> + 'a {
        let tid = self.tid;
        self.attributes()
            .filter(|a| a.attr_type == T::TYPE)
            .map(move |a| T::decode(a.value, &tid))
    }

    /// The comprehension-required attribute types (below 0x8000) that `known` does not accept,
    /// in order of appearance: the UNKNOWN-ATTRIBUTES of a 420 response (RFC 8489 §6.3.1).
    pub fn unknown_comprehension_required<F>(
        &self,
        known: F,
    ) -> impl Iterator<Item = AttributeType> + 'a
    where
        F: Fn(AttributeType) -> bool + 'a,
    {
        self.attributes()
            .map(|a| a.attr_type)
            .filter(move |&t| t.is_comprehension_required() && !known(t))
    }

    /// Whether the message carries a FINGERPRINT.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint != NONE
    }

    /// Whether the message carries a MESSAGE-INTEGRITY that counts.
    pub fn has_integrity(&self) -> bool {
        self.integrity != NONE
    }

    /// Whether the message carries a MESSAGE-INTEGRITY-SHA256 that counts.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256 != NONE
    }

    /// The 20-byte header with the length field set as if the message ended at `end`, and the
    /// attribute bytes before `off`: what an HMAC or CRC at `off` covers (RFC 8489 §14.5).
    fn covered(&self, off: usize, end: usize) -> ([u8; HEADER_LEN], &'a [u8]) {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.bytes[..HEADER_LEN]);
        header[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
        (header, &self.bytes[HEADER_LEN..off])
    }

    /// Verifies MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) in constant time.
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let t = AttributeType::MESSAGE_INTEGRITY;
        let raw = self
            .raw_at(self.integrity)
            .ok_or(IntegrityError::Missing { attr_type: t })?;
        if raw.value.len() != 20 {
            return Err(IntegrityError::InvalidLength {
                attr_type: t,
                length: raw.value.len(),
            });
        }
        let (header, body) = self.covered(raw.offset, raw.offset + 24);
        if key.verify_sha1(&[&header, body], raw.value) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch { attr_type: t })
        }
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, RFC 8489 §14.6) in constant time. The
    /// value must be the full 32 bytes: §14.6 allows truncation only where a STUN usage says
    /// so, and accepting it by default would let an attacker shorten the tag
    /// (see [`verify_integrity_sha256_truncated`](Self::verify_integrity_sha256_truncated)).
    pub fn verify_integrity_sha256(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        self.verify_integrity_sha256_truncated(key, 32)
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 accepting a value truncated to `min_len` bytes or
    /// more, for STUN usages that allow truncation (RFC 8489 §14.6: 16 to 32 bytes, a multiple
    /// of 4). `min_len` below 16 is treated as 16.
    pub fn verify_integrity_sha256_truncated(
        &self,
        key: &IntegrityKey,
        min_len: usize,
    ) -> Result<(), IntegrityError> {
        let t = AttributeType::MESSAGE_INTEGRITY_SHA256;
        let raw = self
            .raw_at(self.integrity_sha256)
            .ok_or(IntegrityError::Missing { attr_type: t })?;
        let len = raw.value.len();
        if !crate::attr::MessageIntegritySha256::valid_len(len) || len < min_len.max(16) {
            return Err(IntegrityError::InvalidLength {
                attr_type: t,
                length: len,
            });
        }
        let (header, body) = self.covered(raw.offset, raw.offset + 4 + len);
        if key.verify_sha256(&[&header, body], raw.value) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch { attr_type: t })
        }
    }

    /// Verifies FINGERPRINT (RFC 8489 §14.7).
    pub fn verify_fingerprint(&self) -> Result<(), IntegrityError> {
        let t = AttributeType::FINGERPRINT;
        let raw = self
            .raw_at(self.fingerprint)
            .ok_or(IntegrityError::Missing { attr_type: t })?;
        let Ok(value) = <[u8; 4]>::try_from(raw.value) else {
            return Err(IntegrityError::InvalidLength {
                attr_type: t,
                length: raw.value.len(),
            });
        };
        // FINGERPRINT is last (checked by `parse`), so the header's length already ends with it.
        if fingerprint(&self.bytes[..raw.offset]) == u32::from_be_bytes(value) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch { attr_type: t })
        }
    }
}

impl core::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("type", &self.msg_type)
            .field("transaction_id", &self.tid)
            .field(
                "attributes",
                &self.attributes().map(|a| a.attr_type).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// An attribute header: its type and value length (RFC 8489 §14).
#[inline]
fn attr_header(h: &[u8; 4]) -> (AttributeType, u16) {
    (
        AttributeType(u16::from_be_bytes([h[0], h[1]])),
        u16::from_be_bytes([h[2], h[3]]),
    )
}

/// The attribute whose header is at `off`; `None` if it does not fit (never for a validated
/// message at a validated offset).
fn raw_attribute(bytes: &[u8], off: usize) -> Option<RawAttribute<'_>> {
    let (attr_type, len) = attr_header(bytes.get(off..off + 4)?.try_into().ok()?);
    let len = usize::from(len);
    let value = bytes.get(off + 4..off + 4 + len)?;
    Some(RawAttribute {
        attr_type,
        value,
        offset: off,
    })
}

/// Iterator over the attributes of a [`Message`] that count.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
    off: usize,
    ordinary_end: u32,
    specials: [u32; 3],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawAttribute<'a>> {
        loop {
            let (header, after) = self.rest.split_first_chunk::<4>()?;
            let (attr_type, len) = attr_header(header);
            let len = usize::from(len);
            // `parse` checked that every value and its padding fit; `get` keeps that a
            // non-panicking fact here too.
            let value = after.get(..len)?;
            let off = self.off;
            self.rest = after.get(padded(len)..).unwrap_or_default();
            self.off += 4 + padded(len);
            if (off as u32) < self.ordinary_end || self.specials.contains(&(off as u32)) {
                return Some(RawAttribute {
                    attr_type,
                    value,
                    offset: off,
                });
            }
        }
    }
}
