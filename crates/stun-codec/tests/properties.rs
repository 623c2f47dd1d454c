//! Property tests: builder output parses back to the same attributes; arbitrary bytes never
//! panic; parse → rebuild → parse is stable.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use stun_codec::attr::{AddressFamily, AttributeType};
use stun_codec::{
    demux, frame_len, ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType,
    Method, OwnedAttribute, StreamFramer, TransactionId,
};

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9:@./+ \u{e9}\u{30DE}]{{0,{max}}}"))
        .unwrap()
        .prop_filter("byte limit", move |s| s.len() <= max)
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
}

fn code() -> impl Strategy<Value = u16> {
    (3u16..=6, 0u16..=99).prop_map(|(c, n)| c * 100 + n)
}

/// Any ordinary (non-integrity) attribute the crate knows, or an unknown one.
fn ordinary() -> impl Strategy<Value = OwnedAttribute> {
    use OwnedAttribute as O;
    prop_oneof![
        addr().prop_map(O::MappedAddress),
        addr().prop_map(O::XorMappedAddress),
        addr().prop_map(O::AlternateServer),
        addr().prop_map(O::XorPeerAddress),
        addr().prop_map(O::XorRelayedAddress),
        addr().prop_map(O::ResponseOrigin),
        addr().prop_map(O::OtherAddress),
        text(100).prop_map(O::Username),
        text(100).prop_map(O::Realm),
        text(100).prop_map(O::Nonce),
        text(100).prop_map(O::Software),
        text(100).prop_map(O::AlternateDomain),
        any::<[u8; 32]>().prop_map(O::UserHash),
        (code(), text(60)).prop_map(|(code, reason)| O::ErrorCode { code, reason }),
        (family(), code(), text(60)).prop_map(|(family, code, reason)| O::AddressErrorCode {
            family,
            code,
            reason
        }),
        proptest::collection::vec(any::<u16>().prop_map(AttributeType), 0..8)
            .prop_map(O::UnknownAttributes),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..9))
            .prop_map(|(algorithm, params)| O::PasswordAlgorithm { algorithm, params }),
        proptest::collection::vec(
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..9)),
            0..4
        )
        .prop_map(O::PasswordAlgorithms),
        any::<u16>().prop_map(O::ChannelNumber),
        any::<u32>().prop_map(O::Lifetime),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(O::Data),
        family().prop_map(O::RequestedAddressFamily),
        family().prop_map(O::AdditionalAddressFamily),
        any::<bool>().prop_map(|reserve| O::EvenPort { reserve }),
        any::<u8>().prop_map(O::RequestedTransport),
        Just(O::DontFragment),
        any::<u64>().prop_map(O::ReservationToken),
        (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(icmp_type, code, error_data)| {
            O::Icmp {
                icmp_type,
                code,
                error_data,
            }
        }),
        any::<u32>().prop_map(O::ConnectionId),
        any::<u32>().prop_map(O::Priority),
        Just(O::UseCandidate),
        any::<u64>().prop_map(O::IceControlled),
        any::<u64>().prop_map(O::IceControlling),
        (any::<bool>(), any::<bool>()).prop_map(|(change_ip, change_port)| O::ChangeRequest {
            change_ip,
            change_port
        }),
        any::<u16>().prop_map(O::ResponsePort),
        (0u16..200).prop_map(O::Padding),
        // Unknown types: pick from a range no registered attribute uses.
        (
            0xC100u16..0xC200,
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(t, value)| O::Other {
                attr_type: AttributeType(t),
                value
            }),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    msg_type: MessageType,
    tid: [u8; 12],
    attrs: Vec<OwnedAttribute>,
    integrity: bool,
    integrity_sha256: Option<usize>,
    fingerprint: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u16..0x1000,
        0u8..4,
        any::<[u8; 12]>(),
        proptest::collection::vec(ordinary(), 0..12),
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just(16usize),
            Just(20),
            Just(24),
            Just(28),
            Just(32)
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(m, c, tid, attrs, integrity, integrity_sha256, fingerprint)| Spec {
                msg_type: MessageType::new(
                    Method::new(m).unwrap(),
                    [
                        Class::Request,
                        Class::Indication,
                        Class::SuccessResponse,
                        Class::ErrorResponse,
                    ][usize::from(c)],
                ),
                tid,
                attrs,
                integrity,
                integrity_sha256,
                fingerprint,
            },
        )
}

fn key() -> IntegrityKey {
    IntegrityKey::short_term("proptest-password").unwrap()
}

fn build(spec: &Spec, buf: &mut [u8], padding_byte: u8) -> usize {
    let key = key();
    let mut b = MessageBuilder::new(buf, spec.msg_type, TransactionId(spec.tid)).unwrap();
    b.set_padding_byte(padding_byte);
    for a in &spec.attrs {
        a.add_to(&mut b).unwrap();
    }
    if spec.integrity {
        b.add_message_integrity(&key).unwrap();
    }
    if let Some(len) = spec.integrity_sha256 {
        b.add_message_integrity_sha256_truncated(&key, len).unwrap();
    }
    if spec.fingerprint {
        b.add_fingerprint().unwrap();
    }
    b.finish().len()
}

fn decoded(msg: &Message<'_>) -> Vec<OwnedAttribute> {
    let tid = msg.transaction_id();
    msg.attributes()
        .map(|raw| OwnedAttribute::decode(&raw, &tid).unwrap())
        .filter(|a| {
            !matches!(
                a,
                OwnedAttribute::MessageIntegrity(_)
                    | OwnedAttribute::MessageIntegritySha256(_)
                    | OwnedAttribute::Fingerprint(_)
            )
        })
        .collect()
}

/// Touches everything a receiver could: every accessor, every decoder, every verifier.
fn exercise(bytes: &[u8]) {
    let _ = demux(bytes);
    let _ = frame_len(bytes);
    let _ = ChannelData::parse(bytes);
    if let Ok(msg) = Message::parse(bytes) {
        let tid = msg.transaction_id();
        for raw in msg.attributes() {
            let _ = OwnedAttribute::decode(&raw, &tid);
        }
        let _ = msg.to_string();
        let _ = msg.verify_integrity(&key());
        let _ = msg.verify_integrity_sha256(&key());
        let _ = msg.verify_integrity_sha256_truncated(&key(), 16);
        let _ = msg.verify_fingerprint();
        let _ = msg
            .unknown_comprehension_required(AttributeType::is_known)
            .count();
        for t in AttributeType::KNOWN {
            let _ = msg.get_raw(*t);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn built_messages_parse_back(spec in spec(), pad in any::<u8>()) {
        let mut buf = vec![0u8; 8192];
        let n = build(&spec, &mut buf, pad);
        let msg = Message::parse(&buf[..n]).unwrap();
        prop_assert_eq!(msg.message_type(), spec.msg_type);
        prop_assert_eq!(msg.transaction_id(), TransactionId(spec.tid));
        prop_assert_eq!(decoded(&msg), spec.attrs.clone());
        prop_assert_eq!(msg.has_integrity(), spec.integrity);
        prop_assert_eq!(msg.has_fingerprint(), spec.fingerprint);
        if spec.integrity {
            prop_assert!(msg.verify_integrity(&key()).is_ok());
        }
        if spec.integrity_sha256.is_some() {
            prop_assert!(msg.verify_integrity_sha256_truncated(&key(), 16).is_ok());
            prop_assert_eq!(msg.verify_integrity_sha256(&key()).is_ok(), spec.integrity_sha256 == Some(32));
        }
        if spec.fingerprint {
            prop_assert!(msg.verify_fingerprint().is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
        let mut f = StreamFramer::new();
        f.push(&bytes);
        while let Ok(Some((_, frame))) = f.next_frame() {
            exercise(frame);
        }
    }

    #[test]
    fn mutated_messages_never_panic(spec in spec(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut buf = vec![0u8; 8192];
        let n = build(&spec, &mut buf, 0);
        let bytes = &mut buf[..n];
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        exercise(bytes);
    }

    /// Parse → rebuild from the raw attributes → parse gives the same message, byte for byte
    /// once padding is normalised (the rebuild pads with zeros).
    #[test]
    fn parse_rebuild_parse_is_stable(spec in spec(), pad in any::<u8>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3)) {
        let mut buf = vec![0u8; 8192];
        let n = build(&spec, &mut buf, pad);
        let bytes = &mut buf[..n];
        for (at, x) in flips {
            let i = 20 + at % (bytes.len() - 20).max(1);
            if i < bytes.len() { bytes[i] ^= x; }
        }
        let Ok(first) = Message::parse(bytes) else { return Ok(()); };
        let mut out = vec![0u8; 8192];
        let mut b = MessageBuilder::new(&mut out, first.message_type(), first.transaction_id()).unwrap();
        for raw in first.attributes() {
            b.add_raw(raw.attr_type, raw.value).unwrap();
        }
        let rebuilt = b.finish();
        let second = Message::parse(rebuilt).unwrap();
        prop_assert_eq!(second.message_type(), first.message_type());
        let a: Vec<_> = first.attributes().map(|r| (r.attr_type, r.value)).collect();
        let b: Vec<_> = second.attributes().map(|r| (r.attr_type, r.value)).collect();
        prop_assert_eq!(a, b);
        // Rebuilding the rebuilt message is the identity.
        let mut again = vec![0u8; 8192];
        let mut b = MessageBuilder::new(&mut again, second.message_type(), second.transaction_id()).unwrap();
        for raw in second.attributes() {
            b.add_raw(raw.attr_type, raw.value).unwrap();
        }
        prop_assert_eq!(b.finish(), rebuilt);
    }
}
