//! Bad input: one test per case, each expecting a specific error and no panic.

mod common;

use common::*;
use stun_codec::attr::*;
use stun_codec::{
    AttributeError, BuildError, Class, IntegrityError, IntegrityKey, Message, MessageBuilder,
    MessageType, Method, ParseError, TransactionId,
};

const TID: TransactionId = TransactionId([9; 12]);

fn parse_err(bytes: &[u8]) -> ParseError {
    Message::parse(bytes).unwrap_err()
}

fn binding() -> MessageType {
    MessageType::new(Method::BINDING, Class::Request)
}

/// A header with the given length field, followed by `attrs`.
fn message(length: u16, attrs: &[u8]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01];
    m.extend(length.to_be_bytes());
    m.extend([0x21, 0x12, 0xa4, 0x42]);
    m.extend(TID.0);
    m.extend(attrs);
    m
}

/// A well-formed message with `attrs` and a correct length field.
fn with_attrs(attrs: &[u8]) -> Vec<u8> {
    message(attrs.len() as u16, attrs)
}

#[test]
fn truncated_header() {
    assert_eq!(
        parse_err(&[0x00, 0x01, 0x00]),
        (ParseError::Truncated {
            expected: 20,
            actual: 3
        })
    );
    assert_eq!(
        parse_err(&[]),
        (ParseError::Truncated {
            expected: 20,
            actual: 0
        })
    );
}

#[test]
fn truncated_to_19_bytes() {
    let v = hex(REQUEST);
    assert_eq!(
        parse_err(&v[..19]),
        (ParseError::Truncated {
            expected: 20,
            actual: 19
        })
    );
}

#[test]
fn length_field_past_the_buffer() {
    let v = hex(REQUEST);
    assert_eq!(
        parse_err(&v[..100]),
        (ParseError::Truncated {
            expected: 108,
            actual: 100
        })
    );
}

#[test]
fn length_65532_in_a_short_datagram() {
    let m = message(65532, &[0x80, 0x22, 0x00, 0x00]);
    assert_eq!(
        parse_err(&m),
        (ParseError::Truncated {
            expected: 65552,
            actual: 24
        })
    );
}

#[test]
fn length_not_a_multiple_of_4() {
    let m = message(5, &[0x80, 0x22, 0x00, 0x01, 0x41]);
    assert_eq!(parse_err(&m), ParseError::UnalignedLength { length: 5 });
}

#[test]
fn trailing_bytes_after_the_message() {
    let mut m = with_attrs(&[]);
    m.extend([0, 0, 0, 0]);
    assert_eq!(
        parse_err(&m),
        (ParseError::TrailingBytes {
            expected: 20,
            actual: 24
        })
    );
}

#[test]
fn attribute_length_past_the_end() {
    // SOFTWARE claims 16 bytes; 4 remain.
    let m = with_attrs(&[0x80, 0x22, 0x00, 0x10, b'a', b'b', b'c', b'd']);
    assert_eq!(
        parse_err(&m),
        (ParseError::AttributeOverrun {
            attr_type: AttributeType::SOFTWARE,
            offset: 20,
            length: 16,
            available: 4
        })
    );
}

#[test]
fn not_stun_and_classic_stun() {
    let mut m = with_attrs(&[]);
    m[0] = 0x80;
    assert_eq!(parse_err(&m), ParseError::NotStun { first_byte: 0x80 });
    // RFC 3489 Binding request: no magic cookie, 128-bit transaction id.
    let mut classic = vec![0x00, 0x01, 0x00, 0x00];
    classic.extend([0x5a; 16]);
    assert_eq!(
        parse_err(&classic),
        (ParseError::ClassicStun {
            message_type: 0x0001
        })
    );
}

#[test]
fn zero_length_xor_mapped_address() {
    let m = with_attrs(&[0x00, 0x20, 0x00, 0x00]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Err(AttributeError::InvalidLength {
            attr_type: AttributeType::XOR_MAPPED_ADDRESS,
            expected: "8 (IPv4) or 20 (IPv6)",
            actual: 0
        })
    );
}

#[test]
fn error_code_shorter_than_4_bytes() {
    let m = with_attrs(&[0x00, 0x09, 0x00, 0x03, 0x00, 0x00, 0x04, 0x00]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(
        msg.get::<ErrorCode>(),
        Err(AttributeError::InvalidLength {
            attr_type: AttributeType::ERROR_CODE,
            expected: "at least 4",
            actual: 3
        })
    );
    // And a class outside 3..=6.
    let m = with_attrs(&[0x00, 0x09, 0x00, 0x04, 0x00, 0x00, 0x07, 0x00]);
    assert_eq!(
        Message::parse(&m).unwrap().get::<ErrorCode>(),
        Err(AttributeError::InvalidValue {
            attr_type: AttributeType::ERROR_CODE,
            reason: "error class outside 3..=6"
        })
    );
}

#[test]
fn realm_of_13_bytes_is_padded_to_16() {
    let mut attrs = vec![0x00, 0x14, 0x00, 0x0d];
    attrs.extend(b"example.org.x");
    attrs.extend([0xff, 0xee, 0xdd]); // padding of any value is accepted
    attrs.extend([0x80, 0x22, 0x00, 0x02, b'o', b'k', 0, 0]);
    let m = with_attrs(&attrs);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.get::<Realm>().unwrap(), Some(Realm("example.org.x")));
    assert_eq!(msg.get::<Software>().unwrap(), Some(Software("ok")));
    // A REALM of 13 bytes needs 16 with its padding: with only 12 left it overruns.
    let m = with_attrs(&[&attrs[..4], b"example.org."].concat());
    assert_eq!(
        parse_err(&m),
        ParseError::AttributeOverrun {
            attr_type: AttributeType::REALM,
            offset: 20,
            length: 13,
            available: 12
        }
    );
}

#[test]
fn unknown_address_family() {
    let m = with_attrs(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0x12, 0x34, 1, 2, 3, 4]);
    assert_eq!(
        Message::parse(&m).unwrap().get::<XorMappedAddress>(),
        Err(AttributeError::UnknownFamily {
            attr_type: AttributeType::XOR_MAPPED_ADDRESS,
            family: 3
        })
    );
}

#[test]
fn ipv6_family_with_ipv4_sized_value() {
    let m = with_attrs(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x02, 0x12, 0x34, 1, 2, 3, 4]);
    assert_eq!(
        Message::parse(&m).unwrap().get::<XorMappedAddress>(),
        Err(AttributeError::InvalidLength {
            attr_type: AttributeType::XOR_MAPPED_ADDRESS,
            expected: "20 for IPv6",
            actual: 8
        })
    );
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    // RFC 8489 §14.5: everything after MESSAGE-INTEGRITY but MESSAGE-INTEGRITY-SHA256 and
    // FINGERPRINT is ignored, not an error.
    let key = IntegrityKey::short_term("pw").unwrap();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
    b.add(&Username("user")).unwrap();
    b.add_message_integrity(&key).unwrap();
    let mut m = b.finish().to_vec();
    // Append SOFTWARE and a second USERNAME after MESSAGE-INTEGRITY, then fix the length.
    m.extend([0x80, 0x22, 0x00, 0x04, b'e', b'v', b'i', b'l']);
    m.extend([0x00, 0x06, 0x00, 0x04, b'r', b'o', b'o', b't']);
    let len = (m.len() - 20) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.get::<Software>().unwrap(), None);
    assert_eq!(msg.get::<Username>().unwrap(), Some(Username("user")));
    let types: Vec<_> = msg.attributes().map(|a| a.attr_type).collect();
    assert_eq!(
        types,
        [AttributeType::USERNAME, AttributeType::MESSAGE_INTEGRITY]
    );
    // MESSAGE-INTEGRITY covers only what precedes it, so it still verifies.
    msg.verify_integrity(&key).unwrap();
    // The builder refuses to write such a message.
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
    b.add_message_integrity(&key).unwrap();
    assert_eq!(
        b.add(&Software("x")).unwrap_err(),
        BuildError::OutOfOrder {
            attr_type: AttributeType::SOFTWARE,
            after: AttributeType::MESSAGE_INTEGRITY
        }
    );
}

#[test]
fn fingerprint_not_last() {
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
    b.add_fingerprint().unwrap();
    let mut m = b.finish().to_vec();
    m.extend([0x80, 0x22, 0x00, 0x00]);
    let len = (m.len() - 20) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        parse_err(&m),
        (ParseError::FingerprintNotLast { offset: 20 })
    );
}

#[test]
fn duplicate_attributes_first_counts() {
    let mut buf = [0u8; 64];
    let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
    b.add(&Priority(1)).unwrap();
    b.add(&Priority(2)).unwrap();
    let m = b.finish();
    let msg = Message::parse(m).unwrap();
    assert_eq!(msg.get::<Priority>().unwrap(), Some(Priority(1)));
    let all: Vec<_> = msg.get_all::<Priority>().map(Result::unwrap).collect();
    assert_eq!(all, [Priority(1), Priority(2)]);
}

#[test]
fn wrong_crc() {
    let mut v = hex(REQUEST);
    let n = v.len();
    v[n - 1] ^= 0x01;
    let msg = Message::parse(&v).unwrap();
    assert_eq!(
        msg.verify_fingerprint(),
        Err(IntegrityError::Mismatch {
            attr_type: AttributeType::FINGERPRINT
        })
    );
    // Integrity does not cover FINGERPRINT, so it still verifies.
    msg.verify_integrity(&IntegrityKey::short_term(PASSWORD).unwrap())
        .unwrap();
}

#[test]
fn wrong_hmac() {
    let v = hex(REQUEST);
    let msg = Message::parse(&v).unwrap();
    assert_eq!(
        msg.verify_integrity(&IntegrityKey::short_term("wrong").unwrap()),
        Err(IntegrityError::Mismatch {
            attr_type: AttributeType::MESSAGE_INTEGRITY
        })
    );
    // A flipped bit in a covered attribute breaks it too (the last byte of USERNAME, offset 72).
    let mut v = hex(REQUEST);
    v[72] ^= 0x01;
    let msg = Message::parse(&v).unwrap();
    assert!(msg
        .verify_integrity(&IntegrityKey::short_term(PASSWORD).unwrap())
        .is_err());
    // No MESSAGE-INTEGRITY at all.
    let m = with_attrs(&[]);
    assert_eq!(
        Message::parse(&m)
            .unwrap()
            .verify_integrity(&IntegrityKey::new(b"k")),
        Err(IntegrityError::Missing {
            attr_type: AttributeType::MESSAGE_INTEGRITY
        })
    );
}

#[test]
fn message_integrity_sha256_truncated_and_wrong() {
    let key = IntegrityKey::short_term("pw").unwrap();
    for len in [16, 20, 24, 28, 32] {
        let mut buf = [0u8; 128];
        let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
        b.add(&Username("u")).unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_message_integrity_sha256_truncated(&key, len).unwrap();
        b.add_fingerprint().unwrap();
        let m = b.finish();
        let msg = Message::parse(m).unwrap();
        assert_eq!(
            msg.get::<MessageIntegritySha256>()
                .unwrap()
                .unwrap()
                .0
                .len(),
            len
        );
        msg.verify_integrity(&key).unwrap();
        msg.verify_integrity_sha256_truncated(&key, 16).unwrap();
        msg.verify_fingerprint().unwrap();
        // Truncation is refused unless the caller's usage allows it (RFC 8489 §14.6).
        assert_eq!(
            msg.verify_integrity_sha256(&key).is_ok(),
            len == 32,
            "full length required by default"
        );
        assert_eq!(
            msg.verify_integrity_sha256_truncated(&key, 24).is_ok(),
            len >= 24
        );
        assert_eq!(
            msg.verify_integrity_sha256_truncated(&IntegrityKey::new(b"other"), 16),
            Err(IntegrityError::Mismatch {
                attr_type: AttributeType::MESSAGE_INTEGRITY_SHA256
            })
        );
    }
    // A 12-byte MESSAGE-INTEGRITY-SHA256 is not allowed.
    let m = with_attrs(&[&[0x00, 0x1c, 0x00, 0x0c][..], &[0; 12]].concat());
    assert_eq!(
        Message::parse(&m)
            .unwrap()
            .verify_integrity_sha256_truncated(&key, 16),
        Err(IntegrityError::InvalidLength {
            attr_type: AttributeType::MESSAGE_INTEGRITY_SHA256,
            length: 12
        })
    );
}

#[test]
fn builder_limits() {
    let mut small = [0u8; 10];
    assert_eq!(
        MessageBuilder::new(&mut small, binding(), TID).unwrap_err(),
        BuildError::BufferTooSmall {
            needed: 20,
            available: 10
        }
    );
    let mut buf = [0u8; 30];
    let mut b = MessageBuilder::new(&mut buf, binding(), TID).unwrap();
    assert_eq!(
        b.add(&Software("more than ten bytes")).unwrap_err(),
        BuildError::BufferTooSmall {
            needed: 44,
            available: 30
        }
    );
    // The failed add left the message as it was.
    assert_eq!(Message::parse(b.finish()).unwrap().attributes().count(), 0);

    let mut big = vec![0u8; 70_000];
    let mut b = MessageBuilder::new(&mut big, binding(), TID).unwrap();
    let data = vec![0u8; 65_532];
    assert_eq!(
        b.add(&Data(&data)).unwrap_err(),
        BuildError::MessageTooLong { length: 65_536 }
    );
    b.add_fingerprint().unwrap();
    assert_eq!(
        b.add_fingerprint().unwrap_err(),
        BuildError::OutOfOrder {
            attr_type: AttributeType::FINGERPRINT,
            after: AttributeType::FINGERPRINT
        }
    );
}

#[test]
fn unknown_comprehension_required_attributes() {
    let m = with_attrs(&[
        0x7f, 0x01, 0x00, 0x00, // unknown, comprehension-required
        0xc0, 0x01, 0x00, 0x00, // unknown, comprehension-optional
        0x00, 0x24, 0x00, 0x04, 0, 0, 0, 1, // PRIORITY, known
        0x00, 0x31, 0x00, 0x00, // unknown, comprehension-required
    ]);
    let msg = Message::parse(&m).unwrap();
    let unknown: Vec<_> = msg
        .unknown_comprehension_required(AttributeType::is_known)
        .collect();
    assert_eq!(unknown, [AttributeType(0x7f01), AttributeType(0x0031)]);
    // Unknown attributes stay available raw.
    assert_eq!(msg.get_raw(AttributeType(0xc001)).unwrap().value, b"");
}
