//! Parse any bytes and verify MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT with a
//! fixed key; MESSAGE-INTEGRITY and FINGERPRINT are checked against independent computations.
#![no_main]

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha1::Sha1;
use stun_codec::{AttributeType, IntegrityKey, Message};

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

fn key() -> &'static IntegrityKey {
    static KEY: OnceLock<IntegrityKey> = OnceLock::new();
    KEY.get_or_init(|| IntegrityKey::short_term(PASSWORD).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let mi = msg.verify_integrity(key());
    let _ = msg.verify_integrity_sha256(key());
    let _ = msg.verify_integrity_sha256_truncated(key(), 16);
    // MESSAGE-INTEGRITY against an independent computation (RFC 8489 §14.5): HMAC-SHA1 over
    // the message up to the attribute, with the length field covering the attribute itself.
    match msg.get_raw(AttributeType::MESSAGE_INTEGRITY) {
        Some(raw) => {
            let start = raw.value.as_ptr() as usize - data.as_ptr() as usize - 4;
            let mut prefix = data[..start].to_vec();
            let len = u16::try_from(start - 20 + 24).unwrap();
            prefix[2..4].copy_from_slice(&len.to_be_bytes());
            let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(PASSWORD.as_bytes()).unwrap();
            mac.update(&prefix);
            let expected = raw.value.len() == 20 && mac.verify_slice(raw.value).is_ok();
            assert_eq!(mi.is_ok(), expected);
        }
        None => assert!(mi.is_err()),
    }
    let fp = msg.verify_fingerprint();
    // FINGERPRINT against an independent computation: the last attribute, CRC-32 of all that
    // precedes it XOR 0x5354554E (RFC 8489 §14.7).
    if msg.has_fingerprint() {
        let n = data.len();
        let stored = u32::from_be_bytes(data[n - 4..].try_into().unwrap());
        let expected = crc32fast::hash(&data[..n - 8]) ^ 0x5354_554E;
        let four_bytes = data[n - 6..n - 4] == [0, 4];
        assert_eq!(fp.is_ok(), four_bytes && stored == expected);
    }
    if !msg.has_fingerprint() {
        assert!(fp.is_err());
    }
});
