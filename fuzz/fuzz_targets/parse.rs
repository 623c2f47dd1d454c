//! Parse any bytes as a STUN message and read every attribute, typed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stun_codec::attr::*;
use stun_codec::{Message, OwnedAttribute};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let tid = msg.transaction_id();
    for raw in msg.attributes() {
        // Every known type through its typed decoder; unknown ones stay raw.
        let _ = OwnedAttribute::decode(&raw, &tid);
        assert!(raw.offset + 4 + raw.value.len() <= data.len());
    }
    // Typed look-ups, including those that borrow.
    let _ = msg.get::<XorMappedAddress>();
    let _ = msg.get::<Username>();
    let _ = msg.get::<ErrorCode>();
    let _ = msg
        .get::<UnknownAttributes>()
        .map(|u| u.map(|u| u.iter().count()));
    let _ = msg
        .get::<PasswordAlgorithms>()
        .map(|p| p.map(|p| p.iter().count()));
    let _ = msg.get::<Nonce>().map(|n| n.map(|n| n.security_features()));
    let _ = msg.get_all::<XorPeerAddress>().count();
    let _ = msg
        .unknown_comprehension_required(AttributeType::is_known)
        .count();
    let _ = msg.to_string();
});
