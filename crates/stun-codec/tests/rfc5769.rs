//! RFC 5769 test vectors, byte-exact: parse, verify, read every attribute; rebuild from values.
//!
//! The vectors pad with 0x20 where RFC 8489 §14 now requires zero. We check the rebuild two
//! ways: (1) with the builder's padding byte set to 0x20 the output equals the vector byte for
//! byte, MESSAGE-INTEGRITY and FINGERPRINT included; (2) with the default zero padding the output
//! equals the vector with its padding bytes set to zero, up to MESSAGE-INTEGRITY (whose HMAC
//! covers the padding and so differs), and our MESSAGE-INTEGRITY and FINGERPRINT verify.

mod common;

use common::*;
use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};

fn tid(bytes: &[u8]) -> TransactionId {
    TransactionId(bytes[8..20].try_into().unwrap())
}

/// Zeroes the padding bytes of every attribute of a (valid) message.
fn zero_padding(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let msg = Message::parse(bytes).unwrap();
    for a in msg.attributes() {
        let end = a.offset + 4 + a.value.len();
        let padded = a.offset + 4 + a.value.len().div_ceil(4) * 4;
        out[end..padded].fill(0);
    }
    out
}

/// Builds with `build`, once with 0x20 padding (must equal `vector`), once with zero padding
/// (must equal the zero-padded vector before MESSAGE-INTEGRITY, and verify).
fn check_rebuild(
    vector: &[u8],
    key: &IntegrityKey,
    pad20: bool,
    build: impl Fn(&mut MessageBuilder<'_>),
) {
    let msg = Message::parse(vector).unwrap();
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, msg.message_type(), msg.transaction_id()).unwrap();
    if pad20 {
        b.set_padding_byte(0x20);
    }
    build(&mut b);
    assert_eq!(b.finish(), vector, "byte-exact rebuild");

    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, msg.message_type(), msg.transaction_id()).unwrap();
    build(&mut b);
    let ours = b.finish();
    let mi = msg
        .get_raw(AttributeType::MESSAGE_INTEGRITY)
        .unwrap()
        .offset;
    assert_eq!(ours.len(), vector.len());
    assert_eq!(&ours[..mi], &zero_padding(vector)[..mi]);
    let parsed = Message::parse(ours).unwrap();
    parsed.verify_integrity(key).unwrap();
    if parsed.has_fingerprint() {
        parsed.verify_fingerprint().unwrap();
    }
}

#[test]
fn sample_request_short_term() {
    let bytes = hex(REQUEST);
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(msg.transaction_id(), tid(&bytes));
    let key = IntegrityKey::short_term(PASSWORD).unwrap();
    msg.verify_integrity(&key).unwrap();
    msg.verify_fingerprint().unwrap();
    assert_eq!(
        msg.get::<Software>().unwrap(),
        Some(Software("STUN test client"))
    );
    assert_eq!(msg.get::<Priority>().unwrap(), Some(Priority(0x6e0001ff)));
    assert_eq!(
        msg.get::<IceControlled>().unwrap(),
        Some(IceControlled(0x932ff9b151263b36))
    );
    assert_eq!(msg.get::<Username>().unwrap(), Some(Username("evtj:h6vY")));
    assert_eq!(
        msg.get::<Fingerprint>().unwrap(),
        Some(Fingerprint(0xe57a3bcf))
    );
    let types: Vec<_> = msg.attributes().map(|a| a.attr_type).collect();
    assert_eq!(
        types,
        [
            AttributeType::SOFTWARE,
            AttributeType::PRIORITY,
            AttributeType::ICE_CONTROLLED,
            AttributeType::USERNAME,
            AttributeType::MESSAGE_INTEGRITY,
            AttributeType::FINGERPRINT
        ]
    );

    check_rebuild(&bytes, &key, true, |b| {
        b.add(&Software("STUN test client")).unwrap();
        b.add(&Priority(0x6e0001ff)).unwrap();
        b.add(&IceControlled(0x932ff9b151263b36)).unwrap();
        b.add(&Username("evtj:h6vY")).unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_fingerprint().unwrap();
    });
}

fn check_response(vector: &str, mapped: &str) {
    let bytes = hex(vector);
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::SuccessResponse)
    );
    let key = IntegrityKey::short_term(PASSWORD).unwrap();
    msg.verify_integrity(&key).unwrap();
    msg.verify_fingerprint().unwrap();
    assert_eq!(
        msg.get::<Software>().unwrap(),
        Some(Software("test vector"))
    );
    let addr = mapped.parse().unwrap();
    assert_eq!(
        msg.get::<XorMappedAddress>().unwrap(),
        Some(XorMappedAddress(addr))
    );
    check_rebuild(&bytes, &key, true, |b| {
        b.add(&Software("test vector")).unwrap();
        b.add(&XorMappedAddress(addr)).unwrap();
        b.add_message_integrity(&key).unwrap();
        b.add_fingerprint().unwrap();
    });
}

#[test]
fn sample_ipv4_response() {
    check_response(RESPONSE_V4, "192.0.2.1:32853");
}

#[test]
fn sample_ipv6_response() {
    check_response(RESPONSE_V6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

#[test]
fn sample_request_long_term() {
    let bytes = hex(REQUEST_LONG_TERM);
    let msg = Message::parse(&bytes).unwrap();
    let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    let password = "The\u{00AD}M\u{00AA}tr\u{2168}";
    assert_eq!(msg.get::<Username>().unwrap(), Some(Username(username)));
    assert_eq!(
        msg.get::<Nonce>().unwrap(),
        Some(Nonce("f//499k954d6OL34oL9FSTvy64sA"))
    );
    assert_eq!(msg.get::<Realm>().unwrap(), Some(Realm("example.org")));
    assert!(!msg.has_fingerprint());
    let key =
        IntegrityKey::long_term(username, "example.org", password, PasswordAlgorithm::MD5).unwrap();
    msg.verify_integrity(&key).unwrap();
    // The wrong password must not verify.
    let wrong =
        IntegrityKey::long_term(username, "example.org", "TheMatrix", PasswordAlgorithm::MD5)
            .unwrap();
    assert!(msg.verify_integrity(&wrong).is_err());
    // This vector pads with zeros, so the default builder reproduces it exactly.
    check_rebuild(&bytes, &key, false, |b| {
        b.add(&Username(username)).unwrap();
        b.add(&Nonce("f//499k954d6OL34oL9FSTvy64sA")).unwrap();
        b.add(&Realm("example.org")).unwrap();
        b.add_message_integrity(&key).unwrap();
    });
}
