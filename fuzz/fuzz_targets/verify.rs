//! Parse any bytes and verify MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT with a
//! fixed key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stun_codec::{IntegrityKey, Message};

fn key() -> &'static IntegrityKey {
    static KEY: OnceLock<IntegrityKey> = OnceLock::new();
    KEY.get_or_init(|| IntegrityKey::short_term("VOkJxbRl1RmTxUk/WvJxBt").unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let mi = msg.verify_integrity(key());
    let mi256 = msg.verify_integrity_sha256_truncated(key(), 16);
    // The full-length check can only pass where the truncated one does.
    assert!(msg.verify_integrity_sha256(key()).is_err() || mi256.is_ok());
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
    // Verification can only succeed on an attribute the message has.
    assert!(mi.is_err() || msg.has_integrity());
    assert!(mi256.is_err() || msg.has_integrity_sha256());
    assert!(fp.is_err() || msg.has_fingerprint());
});
