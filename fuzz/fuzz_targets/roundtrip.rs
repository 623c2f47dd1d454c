//! Structured round trip: any list of attribute values, built into a message (with
//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT as asked), parses back to the same
//! values, and the integrity attributes verify: parse(build(x)) == x.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stun_codec::attr::AttributeType;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, OwnedAttribute,
    TransactionId,
};

#[derive(Debug, Arbitrary)]
struct Input {
    method: u16,
    class: u8,
    tid: [u8; 12],
    attrs: Vec<OwnedAttribute>,
    integrity: bool,
    integrity_sha256: Option<u8>,
    fingerprint: bool,
    password: String,
}

/// Cuts a string to at most `max` bytes on a character boundary.
fn cut(s: &mut String, max: usize) {
    while s.len() > max {
        s.pop();
    }
}

/// Maps a value into the domain the decoders accept (the builder writes whatever it is given;
/// values outside the RFC's domain are rejected on decode by design).
fn normalise(a: OwnedAttribute) -> OwnedAttribute {
    use OwnedAttribute as O;
    match a {
        O::Username(mut s) => {
            cut(&mut s, 512);
            O::Username(s)
        }
        O::Realm(mut s) => {
            cut(&mut s, 763);
            O::Realm(s)
        }
        O::Nonce(mut s) => {
            cut(&mut s, 763);
            O::Nonce(s)
        }
        O::Software(mut s) => {
            cut(&mut s, 763);
            O::Software(s)
        }
        O::AlternateDomain(mut s) => {
            cut(&mut s, 255);
            O::AlternateDomain(s)
        }
        O::ErrorCode { code, mut reason } => {
            cut(&mut reason, 763);
            O::ErrorCode {
                code: 300 + code % 400,
                reason,
            }
        }
        O::AddressErrorCode {
            family,
            code,
            mut reason,
        } => {
            cut(&mut reason, 763);
            O::AddressErrorCode {
                family,
                code: 300 + code % 400,
                reason,
            }
        }
        O::PasswordAlgorithm {
            algorithm,
            mut params,
        } => {
            params.truncate(64);
            O::PasswordAlgorithm { algorithm, params }
        }
        O::PasswordAlgorithms(mut list) => {
            list.truncate(16);
            for (_, p) in &mut list {
                p.truncate(64);
            }
            O::PasswordAlgorithms(list)
        }
        // The integrity attributes are added by the builder below, not as values.
        O::MessageIntegrity(_) | O::MessageIntegritySha256(_) | O::Fingerprint(_) => O::Priority(0),
        O::Other { attr_type, value } if attr_type.is_known() => O::Other {
            attr_type: AttributeType(0xC100 | (attr_type.0 & 0xFF)),
            value,
        },
        // Only IP and port are on the wire: drop IPv6 flow info and scope id.
        O::MappedAddress(a) => O::MappedAddress(plain(a)),
        O::XorMappedAddress(a) => O::XorMappedAddress(plain(a)),
        O::AlternateServer(a) => O::AlternateServer(plain(a)),
        O::XorPeerAddress(a) => O::XorPeerAddress(plain(a)),
        O::XorRelayedAddress(a) => O::XorRelayedAddress(plain(a)),
        O::ResponseOrigin(a) => O::ResponseOrigin(plain(a)),
        O::OtherAddress(a) => O::OtherAddress(plain(a)),
        other => other,
    }
}

fn plain(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port())
}

fuzz_target!(|input: Input| {
    let attrs: Vec<OwnedAttribute> = input.attrs.into_iter().map(normalise).collect();
    let Ok(key) = IntegrityKey::short_term(&input.password) else {
        return;
    };
    let msg_type = MessageType::new(
        Method::new(input.method & 0x0FFF).unwrap(),
        [
            Class::Request,
            Class::Indication,
            Class::SuccessResponse,
            Class::ErrorResponse,
        ][usize::from(input.class % 4)],
    );
    let mut buf = vec![0u8; 70_000];
    let mut b = MessageBuilder::new(&mut buf, msg_type, TransactionId(input.tid)).unwrap();
    for a in &attrs {
        if a.add_to(&mut b).is_err() {
            return; // too long for one message: a clean error, nothing to compare
        }
    }
    if input.integrity && b.add_message_integrity(&key).is_err() {
        return;
    }
    if let Some(n) = input.integrity_sha256 {
        // One of the lengths RFC 8489 §14.6 allows: 16, 20, 24, 28 or 32 bytes.
        let len = 16 + 4 * usize::from(n % 5);
        if b.add_message_integrity_sha256_truncated(&key, len).is_err() {
            return;
        }
    }
    if input.fingerprint && b.add_fingerprint().is_err() {
        return;
    }
    let bytes = b.finish();

    let msg = Message::parse(bytes).expect("the builder's output parses");
    assert_eq!(msg.message_type(), msg_type);
    assert_eq!(msg.transaction_id(), TransactionId(input.tid));
    let tid = msg.transaction_id();
    let back: Vec<OwnedAttribute> = msg
        .attributes()
        .filter(|r| {
            ![
                AttributeType::MESSAGE_INTEGRITY,
                AttributeType::MESSAGE_INTEGRITY_SHA256,
                AttributeType::FINGERPRINT,
            ]
            .contains(&r.attr_type)
        })
        .map(|r| OwnedAttribute::decode(&r, &tid).expect("a built attribute decodes"))
        .collect();
    assert_eq!(back, attrs);
    assert_eq!(msg.verify_integrity(&key).is_ok(), input.integrity);
    assert_eq!(
        msg.verify_integrity_sha256_truncated(&key, 16).is_ok(),
        input.integrity_sha256.is_some()
    );
    assert_eq!(msg.verify_fingerprint().is_ok(), input.fingerprint);
});
