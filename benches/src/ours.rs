//! The six operations with this project's `stun-codec`, shaped like the functions in
//! [`crate::competitors`] so the benchmark and the agreement tests treat all crates alike.

use std::cell::RefCell;
use std::net::SocketAddr;

use stun_codec::attr::{
    Data, Fingerprint, IceControlling, MessageIntegrity, Priority, UseCandidate, Username,
    XorPeerAddress,
};
use stun_codec::{
    AttributeType, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};

thread_local! {
    /// Short-term key for the last password seen: made once, as a server or agent would.
    static KEY: RefCell<Option<(String, IntegrityKey)>> = const { RefCell::new(None) };
}

fn with_key<R>(password: &str, f: impl FnOnce(&IntegrityKey) -> R) -> R {
    KEY.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(p, _)| p != password) {
            *slot = Some((
                password.to_owned(),
                IntegrityKey::short_term(password).expect("valid password"),
            ));
        }
        f(&slot.as_ref().expect("just set").1)
    })
}

fn read_ice(m: &Message<'_>) -> Option<u64> {
    let tid = m.transaction_id();
    let mut username = None;
    let mut priority = None;
    let mut tiebreaker = None;
    let mut use_candidate = false;
    let mut hmac = None;
    let mut fingerprint = None;
    // One pass over the attributes, each decoded by its typed decoder.
    for raw in m.attributes() {
        match raw.attr_type {
            AttributeType::USERNAME => username = Some(raw.decode::<Username>(&tid).ok()?.0),
            AttributeType::PRIORITY => priority = Some(raw.decode::<Priority>(&tid).ok()?.0),
            AttributeType::ICE_CONTROLLING => {
                tiebreaker = Some(raw.decode::<IceControlling>(&tid).ok()?.0)
            }
            AttributeType::USE_CANDIDATE => {
                raw.decode::<UseCandidate>(&tid).ok()?;
                use_candidate = true
            }
            AttributeType::MESSAGE_INTEGRITY => {
                hmac = Some(raw.decode::<MessageIntegrity>(&tid).ok()?.0)
            }
            AttributeType::FINGERPRINT => {
                fingerprint = Some(raw.decode::<Fingerprint>(&tid).ok()?.0)
            }
            _ => {}
        }
    }
    Some(super::competitors::mix_ice(
        username?,
        priority?,
        tiebreaker?,
        use_candidate,
        &hmac?,
        fingerprint?,
    ))
}

fn read_send(m: &Message<'_>) -> Option<u64> {
    let tid = m.transaction_id();
    let mut peer = None;
    let mut data = None;
    let mut hmac = None;
    let mut fingerprint = None;
    for raw in m.attributes() {
        match raw.attr_type {
            AttributeType::XOR_PEER_ADDRESS => {
                peer = Some(raw.decode::<XorPeerAddress>(&tid).ok()?.0)
            }
            AttributeType::DATA => data = Some(raw.decode::<Data>(&tid).ok()?.0),
            AttributeType::MESSAGE_INTEGRITY => {
                hmac = Some(raw.decode::<MessageIntegrity>(&tid).ok()?.0)
            }
            AttributeType::FINGERPRINT => {
                fingerprint = Some(raw.decode::<Fingerprint>(&tid).ok()?.0)
            }
            _ => {}
        }
    }
    Some(super::competitors::mix_send(
        peer?,
        data?,
        &hmac?,
        fingerprint?,
    ))
}

fn verify(bytes: &[u8], password: &str) -> bool {
    let Ok(m) = Message::parse(bytes) else {
        return false;
    };
    m.verify_fingerprint().is_ok() && with_key(password, |k| m.verify_integrity(k).is_ok())
}

fn build(
    out: &mut Vec<u8>,
    msg_type: MessageType,
    tid: [u8; 12],
    password: &str,
    attributes: impl FnOnce(&mut MessageBuilder<'_>),
) -> usize {
    // The builder writes into a slice; keep the Vec's capacity and expose it as that slice.
    out.clear();
    out.resize(out.capacity().max(512), 0);
    let mut b = MessageBuilder::new(out, msg_type, TransactionId(tid)).expect("header");
    attributes(&mut b);
    with_key(password, |k| b.add_message_integrity(k).map(|_| ())).expect("MESSAGE-INTEGRITY");
    b.add_fingerprint().expect("FINGERPRINT");
    let n = b.finish().len();
    out.truncate(n);
    n
}

/// Parse and read every attribute of an ICE connectivity check.
pub fn parse_read_all_ice(bytes: &[u8]) -> u64 {
    Message::parse(bytes)
        .ok()
        .and_then(|m| read_ice(&m))
        .unwrap_or(0)
}

/// Parse an ICE connectivity check and verify MESSAGE-INTEGRITY and FINGERPRINT.
pub fn parse_verify_ice(bytes: &[u8], password: &str) -> bool {
    verify(bytes, password)
}

/// Build an ICE connectivity check into `out`.
pub fn build_ice(
    out: &mut Vec<u8>,
    tid: [u8; 12],
    username: &str,
    priority: u32,
    tiebreaker: u64,
    password: &str,
) -> usize {
    let t = MessageType::new(Method::BINDING, Class::Request);
    build(out, t, tid, password, |b| {
        b.add(&Username(username))
            .and_then(|b| b.add(&Priority(priority)))
            .and_then(|b| b.add(&IceControlling(tiebreaker)))
            .and_then(|b| b.add(&UseCandidate))
            .expect("attributes");
    })
}

/// Parse a TURN Send indication and read every attribute.
pub fn parse_read_all_send(bytes: &[u8]) -> u64 {
    Message::parse(bytes)
        .ok()
        .and_then(|m| read_send(&m))
        .unwrap_or(0)
}

/// Parse a TURN Send indication and verify MESSAGE-INTEGRITY and FINGERPRINT.
pub fn parse_verify_send(bytes: &[u8], password: &str) -> bool {
    verify(bytes, password)
}

/// Build a TURN Send indication into `out`.
pub fn build_send(
    out: &mut Vec<u8>,
    tid: [u8; 12],
    peer: SocketAddr,
    data: &[u8],
    password: &str,
) -> usize {
    let t = MessageType::new(Method::SEND, Class::Indication);
    build(out, t, tid, password, |b| {
        b.add(&XorPeerAddress(peer))
            .and_then(|b| b.add(&Data(data)))
            .expect("attributes");
    })
}
