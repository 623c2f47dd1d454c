//! The same six STUN operations written against three other Rust STUN crates.
//!
//! Each of the submodules [`webrtc`] (`stun` 0.17.2, webrtc-rs), [`stun_codec_crate`]
//! (`stun_codec` 0.4.0, bytecodec-based) and [`stun_types_crate`] (`stun-types` 2.0.4, rice)
//! exposes the same functions:
//!
//! - `parse_read_all_ice` / `parse_read_all_send`: parse, then read every attribute's typed value
//!   and mix the values into a `u64` so the optimiser cannot drop the work;
//! - `parse_verify_ice` / `parse_verify_send`: parse, then verify MESSAGE-INTEGRITY (HMAC-SHA1,
//!   short-term key = the password bytes) and FINGERPRINT;
//! - `build_ice` / `build_send`: build the message, with MESSAGE-INTEGRITY and FINGERPRINT, into a
//!   caller-owned `Vec<u8>` and return its length.
//!
//! The messages are an ICE connectivity check (Binding request with USERNAME, PRIORITY,
//! ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT) and a TURN Send indication
//! (XOR-PEER-ADDRESS, DATA, MESSAGE-INTEGRITY, FINGERPRINT).
//!
//! Every implementation uses the crate's public API as a performance-aware user would: per-thread
//! decoders, encoders, message objects and integrity keys are kept and reused between calls (we
//! measure steady-state throughput), and attributes are read in one pass where the API allows.
//! Attributes a crate does not define are written and read through that crate's raw-attribute
//! API; each place says so in a comment. The values mixed by `parse_read_all_*` are computed by
//! the shared [`mix_ice`] / [`mix_send`] helpers so that all crates return the same number for
//! the same message.

use std::net::SocketAddr;

/// Mixes the values read from an ICE connectivity check into one `u64`.
///
/// `hmac` is the MESSAGE-INTEGRITY value (20 bytes) and `fingerprint` the FINGERPRINT value as
/// carried in the message (CRC-32 XOR 0x5354554e).
pub fn mix_ice(
    username: &str,
    priority: u32,
    tiebreaker: u64,
    use_candidate: bool,
    hmac: &[u8],
    fingerprint: u32,
) -> u64 {
    let first = username.as_bytes().first().copied().unwrap_or(0);
    u64::from(priority)
        ^ tiebreaker.rotate_left(7)
        ^ (username.len() as u64) << 48
        ^ u64::from(first) << 40
        ^ u64::from(use_candidate) << 63
        ^ hmac_prefix(hmac).rotate_left(17)
        ^ u64::from(fingerprint) << 16
}

/// Mixes the values read from a TURN Send indication into one `u64`.
pub fn mix_send(peer: SocketAddr, data: &[u8], hmac: &[u8], fingerprint: u32) -> u64 {
    let ip = match peer {
        SocketAddr::V4(a) => u64::from(u32::from(*a.ip())),
        SocketAddr::V6(a) => {
            let v = u128::from(*a.ip());
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    let first = data.first().copied().unwrap_or(0);
    let last = data.last().copied().unwrap_or(0);
    u64::from(peer.port()) << 48
        ^ ip.rotate_left(11)
        ^ (data.len() as u64) << 32
        ^ u64::from(first) << 24
        ^ u64::from(last) << 56
        ^ hmac_prefix(hmac).rotate_left(29)
        ^ u64::from(fingerprint)
}

fn hmac_prefix(hmac: &[u8]) -> u64 {
    match hmac.get(..8) {
        Some(b) => u64::from_be_bytes(b.try_into().expect("8 bytes")),
        None => 0,
    }
}

/// `stun` 0.17.2 (webrtc-rs).
///
/// Model: a `Message` owns its encoded bytes (`raw: Vec<u8>`) plus a decoded
/// `Vec<RawAttribute>` whose values are owned `Vec<u8>` copies. Setters (`add_to`) append to
/// `raw`; MESSAGE-INTEGRITY and FINGERPRINT are computed over `raw` as they are appended, and
/// checked with `MessageIntegrity::check(&mut Message)` / `FINGERPRINT.check(&Message)`.
///
/// Caveats (fairness):
/// - The crate has no typed PRIORITY, ICE-CONTROLLING or USE-CANDIDATE attributes (those live in
///   webrtc-rs's `ice` crate), nor XOR-PEER-ADDRESS or DATA (in its `turn` crate); neither crate
///   is a dependency here. They are written with the raw `Message::add(AttrType, &[u8])`, exactly
///   what the `ice`/`turn` setters do. XOR-PEER-ADDRESS uses `XorMappedAddress::add_to_as` /
///   `get_from_as` with `ATTR_XOR_PEER_ADDRESS`, which is how webrtc-rs's `turn` crate implements
///   its `PeerAddress`.
/// - Reading raw attributes (PRIORITY, ICE-CONTROLLING, DATA, MESSAGE-INTEGRITY, FINGERPRINT) goes
///   through the public `message.attributes.0` slice, without the copy that `Message::get`
///   makes; the typed getters the crate has (`TextAttribute::get_from_as`,
///   `XorMappedAddress::get_from_as`) are used for USERNAME and XOR-PEER-ADDRESS and allocate.
/// - Forced allocations: decoding copies the input into `raw` (buffer reused) and allocates one
///   `Vec` per attribute value; `Message::add` allocates a zero-filled temporary and a value copy
///   per attribute; every HMAC builds a fresh `ring::hmac::Key` and returns a `Vec`; XOR address
///   encode/decode allocate small temporaries; `TextAttribute` owns a `String`.
/// - `parse_read_all_*` does not verify the FINGERPRINT (the crate's decode does not); the
///   other two crates always verify it while decoding.
pub mod webrtc {
    use std::cell::RefCell;
    use std::net::{IpAddr, SocketAddr};

    use webrtc_stun::agent::TransactionId;
    use webrtc_stun::attributes::{
        AttrType, ATTR_DATA, ATTR_FINGERPRINT, ATTR_ICE_CONTROLLING, ATTR_MESSAGE_INTEGRITY,
        ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE, ATTR_XOR_PEER_ADDRESS,
    };
    use webrtc_stun::fingerprint::FINGERPRINT;
    use webrtc_stun::integrity::MessageIntegrity;
    use webrtc_stun::message::{
        Message, MessageType, Setter, BINDING_REQUEST, CLASS_INDICATION, METHOD_SEND,
    };
    use webrtc_stun::textattrs::TextAttribute;
    use webrtc_stun::xoraddr::XorMappedAddress;

    struct State {
        /// Reused for decoding (its `raw` buffer and attribute list are reused).
        parse: Message,
        /// Reused for encoding (its attribute list is reused; `raw` is the caller's buffer).
        build: Message,
        /// Short-term MESSAGE-INTEGRITY key for the last password seen.
        key: Option<(String, MessageIntegrity)>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State {
            parse: Message::new(),
            build: Message::new(),
            key: None,
        });
    }

    fn integrity<'a>(
        key: &'a mut Option<(String, MessageIntegrity)>,
        password: &str,
    ) -> &'a MessageIntegrity {
        if key.as_ref().is_none_or(|(p, _)| p != password) {
            *key = Some((
                password.to_owned(),
                MessageIntegrity::new_short_term_integrity(password.to_owned()),
            ));
        }
        &key.as_ref().expect("just set").1
    }

    /// The value of the first `t` attribute, without the copy `Message::get` makes.
    fn raw(m: &Message, t: AttrType) -> Option<&[u8]> {
        m.attributes
            .0
            .iter()
            .find(|a| a.typ == t)
            .map(|a| a.value.as_slice())
    }

    fn be_u32(v: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    fn be_u64(v: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(v.try_into().ok()?))
    }

    fn read_ice(m: &Message) -> Option<u64> {
        let username = TextAttribute::get_from_as(m, ATTR_USERNAME).ok()?;
        // PRIORITY / ICE-CONTROLLING / USE-CANDIDATE: not typed in `stun` (see module docs).
        let priority = be_u32(raw(m, ATTR_PRIORITY)?)?;
        let tiebreaker = be_u64(raw(m, ATTR_ICE_CONTROLLING)?)?;
        let use_candidate = m.contains(ATTR_USE_CANDIDATE);
        // MESSAGE-INTEGRITY and FINGERPRINT have setters/checkers but no getters.
        let hmac = raw(m, ATTR_MESSAGE_INTEGRITY)?;
        let fingerprint = be_u32(raw(m, ATTR_FINGERPRINT)?)?;
        Some(super::mix_ice(
            &username.text,
            priority,
            tiebreaker,
            use_candidate,
            hmac,
            fingerprint,
        ))
    }

    fn read_send(m: &Message) -> Option<u64> {
        // XOR-PEER-ADDRESS: `XorMappedAddress` machinery with the TURN attribute type.
        let mut peer = XorMappedAddress::default();
        peer.get_from_as(m, ATTR_XOR_PEER_ADDRESS).ok()?;
        // DATA: not typed in `stun`, raw value.
        let data = raw(m, ATTR_DATA)?;
        let hmac = raw(m, ATTR_MESSAGE_INTEGRITY)?;
        let fingerprint = be_u32(raw(m, ATTR_FINGERPRINT)?)?;
        Some(super::mix_send(
            SocketAddr::new(peer.ip, peer.port),
            data,
            hmac,
            fingerprint,
        ))
    }

    fn verify(state: &mut State, bytes: &[u8], password: &str) -> bool {
        let State { parse, key, .. } = state;
        if parse.unmarshal_binary(bytes).is_err() {
            return false;
        }
        integrity(key, password).check(parse).is_ok() && FINGERPRINT.check(parse).is_ok()
    }

    /// Parse and read every attribute of an ICE connectivity check.
    pub fn parse_read_all_ice(bytes: &[u8]) -> u64 {
        STATE.with_borrow_mut(|s| {
            if s.parse.unmarshal_binary(bytes).is_err() {
                return 0;
            }
            read_ice(&s.parse).unwrap_or(0)
        })
    }

    /// Parse an ICE connectivity check and verify MESSAGE-INTEGRITY and FINGERPRINT.
    pub fn parse_verify_ice(bytes: &[u8], password: &str) -> bool {
        STATE.with_borrow_mut(|s| verify(s, bytes, password))
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
        STATE.with_borrow_mut(|s| {
            let State { build: m, key, .. } = s;
            // Encode straight into the caller's buffer: `Message::raw` is a public `Vec<u8>`.
            out.clear();
            m.reset();
            m.raw = std::mem::take(out);
            m.typ = BINDING_REQUEST;
            m.transaction_id = TransactionId(tid);
            m.write_header();
            TextAttribute::new(ATTR_USERNAME, username.to_owned())
                .add_to(m)
                .expect("USERNAME");
            // PRIORITY / ICE-CONTROLLING / USE-CANDIDATE: not typed in `stun` (see module docs).
            m.add(ATTR_PRIORITY, &priority.to_be_bytes());
            m.add(ATTR_ICE_CONTROLLING, &tiebreaker.to_be_bytes());
            m.add(ATTR_USE_CANDIDATE, &[]);
            integrity(key, password)
                .add_to(m)
                .expect("MESSAGE-INTEGRITY");
            FINGERPRINT.add_to(m).expect("FINGERPRINT");
            *out = std::mem::take(&mut m.raw);
            out.len()
        })
    }

    /// Parse a TURN Send indication and read every attribute.
    pub fn parse_read_all_send(bytes: &[u8]) -> u64 {
        STATE.with_borrow_mut(|s| {
            if s.parse.unmarshal_binary(bytes).is_err() {
                return 0;
            }
            read_send(&s.parse).unwrap_or(0)
        })
    }

    /// Parse a TURN Send indication and verify MESSAGE-INTEGRITY and FINGERPRINT.
    pub fn parse_verify_send(bytes: &[u8], password: &str) -> bool {
        STATE.with_borrow_mut(|s| verify(s, bytes, password))
    }

    /// Build a TURN Send indication into `out`.
    pub fn build_send(
        out: &mut Vec<u8>,
        tid: [u8; 12],
        peer: SocketAddr,
        data: &[u8],
        password: &str,
    ) -> usize {
        STATE.with_borrow_mut(|s| {
            let State { build: m, key, .. } = s;
            out.clear();
            m.reset();
            m.raw = std::mem::take(out);
            m.typ = MessageType::new(METHOD_SEND, CLASS_INDICATION);
            m.transaction_id = TransactionId(tid);
            m.write_header();
            // XOR-PEER-ADDRESS: `XorMappedAddress` machinery with the TURN attribute type.
            let ip: IpAddr = peer.ip();
            XorMappedAddress {
                ip,
                port: peer.port(),
            }
            .add_to_as(m, ATTR_XOR_PEER_ADDRESS)
            .expect("XOR-PEER-ADDRESS");
            // DATA: not typed in `stun`, raw value.
            m.add(ATTR_DATA, data);
            integrity(key, password)
                .add_to(m)
                .expect("MESSAGE-INTEGRITY");
            FINGERPRINT.add_to(m).expect("FINGERPRINT");
            *out = std::mem::take(&mut m.raw);
            out.len()
        })
    }
}

/// `stun_codec` 0.4.0 (bytecodec-based).
///
/// Model: a `MessageDecoder<A>` / `MessageEncoder<A>` over an attribute enum `A`; decoding yields
/// a `Message<A>` of owned, typed attributes. `MessageIntegrity::new_short_term_credential` and
/// `Fingerprint::new` take the message built so far; on decode, MESSAGE-INTEGRITY keeps a copy
/// of the preceding bytes so that `check_short_term_credential(password)` can verify it later,
/// and FINGERPRINT is verified during decoding (a mismatch yields a `BrokenMessage`).
///
/// The attribute enum is defined with the crate's `define_attribute_enums!` macro and covers
/// every RFC 5389, RFC 5245 (ICE) and RFC 5766 (TURN) attribute the crate implements, as a
/// TURN/ICE user would define it. All attributes used here are typed in the crate.
///
/// Caveats (fairness):
/// - The decoder and encoder are reused (thread-local); there is no way to decode into or reuse a
///   `Message`, so every decode allocates the attribute `Vec`, the USERNAME `String` and the DATA
///   `Vec`. On decode, MESSAGE-INTEGRITY and FINGERPRINT each clone the preceding message and
///   re-encode it into a fresh `Vec` (the crate's design), on every parse, including
///   `parse_read_all_*`.
/// - Building: `Username::new` takes a `String` and `Data::new` a `Vec<u8>` (copies forced by the
///   API); `MessageIntegrity::new_short_term_credential` and `Fingerprint::new` each clone and
///   re-encode the message built so far. The final encode writes into the caller's `out`
///   (resized to the exact length), not into a fresh `Vec`.
/// - The HMAC key is taken as `&str` on every call (no key object to cache).
pub mod stun_codec_crate {
    use std::cell::RefCell;
    use std::net::SocketAddr;

    use bytecodec::{DecodeExt, Encode, Eos, SizedEncode};
    use other_stun_codec::rfc5245::attributes::IceControlling;
    use other_stun_codec::rfc5389::methods::BINDING;
    use other_stun_codec::rfc5766::methods::SEND;
    use other_stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

    use self::attrs::*;

    /// The attribute set: RFC 5389 + RFC 5245 (ICE) + RFC 5766 (TURN).
    #[allow(missing_docs)]
    mod attrs {
        pub use other_stun_codec::rfc5245::attributes::{
            IceControlled, IceControlling, Priority, UseCandidate,
        };
        pub use other_stun_codec::rfc5389::attributes::{
            AlternateServer, ErrorCode, Fingerprint, MappedAddress, MessageIntegrity, Nonce, Realm,
            Software, UnknownAttributes, Username, XorMappedAddress, XorMappedAddress2,
        };
        pub use other_stun_codec::rfc5766::attributes::{
            ChannelNumber, Data, DontFragment, EvenPort, Lifetime, RequestedTransport,
            ReservationToken, XorPeerAddress, XorRelayAddress,
        };

        other_stun_codec::define_attribute_enums!(
            Attribute,
            AttributeDecoder,
            AttributeEncoder,
            [
                // RFC 5389
                MappedAddress,
                Username,
                MessageIntegrity,
                ErrorCode,
                UnknownAttributes,
                Realm,
                Nonce,
                XorMappedAddress,
                XorMappedAddress2,
                Software,
                AlternateServer,
                Fingerprint,
                // RFC 5245
                Priority,
                UseCandidate,
                IceControlled,
                IceControlling,
                // RFC 5766
                ChannelNumber,
                Lifetime,
                XorPeerAddress,
                Data,
                XorRelayAddress,
                EvenPort,
                RequestedTransport,
                DontFragment,
                ReservationToken
            ]
        );
    }

    struct State {
        decoder: MessageDecoder<Attribute>,
        encoder: MessageEncoder<Attribute>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State {
            decoder: MessageDecoder::new(),
            encoder: MessageEncoder::new(),
        });
    }

    /// Decodes `bytes` with the reused decoder. `None` if malformed (including a FINGERPRINT
    /// mismatch, which the crate checks while decoding).
    fn decode(bytes: &[u8]) -> Option<Message<Attribute>> {
        STATE.with_borrow_mut(|s| match s.decoder.decode_from_bytes(bytes) {
            Ok(Ok(message)) => Some(message),
            Ok(Err(_broken)) => None,
            Err(_) => {
                // Leave a clean decoder behind after a framing error.
                s.decoder = MessageDecoder::new();
                None
            }
        })
    }

    /// Encodes `message` with the reused encoder into `out` (cleared first).
    fn encode(out: &mut Vec<u8>, message: Message<Attribute>) -> usize {
        STATE.with_borrow_mut(|s| {
            s.encoder.start_encoding(message).expect("start_encoding");
            let len = s.encoder.exact_requiring_bytes() as usize;
            out.clear();
            out.resize(len, 0);
            let written = s
                .encoder
                .encode(&mut out[..], Eos::new(true))
                .expect("encode");
            debug_assert_eq!(written, len);
            len
        })
    }

    fn read_ice(message: &Message<Attribute>) -> Option<u64> {
        let mut username = None;
        let mut priority = None;
        let mut tiebreaker = None;
        let mut use_candidate = false;
        let mut hmac = None;
        let mut fingerprint = None;
        for attribute in message.attributes() {
            match attribute {
                Attribute::Username(a) => username = Some(a.name()),
                Attribute::Priority(a) => priority = Some(a.prio()),
                Attribute::IceControlling(a) => tiebreaker = Some(a.prio()),
                Attribute::UseCandidate(_) => use_candidate = true,
                Attribute::MessageIntegrity(a) => hmac = Some(a.hmac_sha1()),
                Attribute::Fingerprint(a) => fingerprint = Some(a.crc32()),
                _ => {}
            }
        }
        Some(super::mix_ice(
            username?,
            priority?,
            tiebreaker?,
            use_candidate,
            &hmac?,
            fingerprint?,
        ))
    }

    fn read_send(message: &Message<Attribute>) -> Option<u64> {
        let mut peer = None;
        let mut data = None;
        let mut hmac = None;
        let mut fingerprint = None;
        for attribute in message.attributes() {
            match attribute {
                Attribute::XorPeerAddress(a) => peer = Some(a.address()),
                Attribute::Data(a) => data = Some(a.data()),
                Attribute::MessageIntegrity(a) => hmac = Some(a.hmac_sha1()),
                Attribute::Fingerprint(a) => fingerprint = Some(a.crc32()),
                _ => {}
            }
        }
        Some(super::mix_send(peer?, data?, &hmac?, fingerprint?))
    }

    fn verify(bytes: &[u8], password: &str) -> bool {
        let Some(message) = decode(bytes) else {
            return false;
        };
        // FINGERPRINT was verified by the decoder (`Fingerprint::after_decode`); only its
        // presence is left to check.
        message.get_attribute::<Fingerprint>().is_some()
            && message
                .get_attribute::<MessageIntegrity>()
                .is_some_and(|mi| mi.check_short_term_credential(password).is_ok())
    }

    /// Parse and read every attribute of an ICE connectivity check.
    pub fn parse_read_all_ice(bytes: &[u8]) -> u64 {
        decode(bytes).and_then(|m| read_ice(&m)).unwrap_or(0)
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
        let mut message =
            Message::<Attribute>::new(MessageClass::Request, BINDING, TransactionId::new(tid));
        message.add_attribute(Username::new(username.to_owned()).expect("USERNAME"));
        message.add_attribute(Priority::new(priority));
        message.add_attribute(IceControlling::new(tiebreaker));
        message.add_attribute(UseCandidate::new());
        let integrity = MessageIntegrity::new_short_term_credential(&message, password)
            .expect("MESSAGE-INTEGRITY");
        message.add_attribute(integrity);
        let fingerprint = Fingerprint::new(&message).expect("FINGERPRINT");
        message.add_attribute(fingerprint);
        encode(out, message)
    }

    /// Parse a TURN Send indication and read every attribute.
    pub fn parse_read_all_send(bytes: &[u8]) -> u64 {
        decode(bytes).and_then(|m| read_send(&m)).unwrap_or(0)
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
        let mut message =
            Message::<Attribute>::new(MessageClass::Indication, SEND, TransactionId::new(tid));
        message.add_attribute(XorPeerAddress::new(peer));
        message.add_attribute(Data::new(data.to_vec()).expect("DATA"));
        let integrity = MessageIntegrity::new_short_term_credential(&message, password)
            .expect("MESSAGE-INTEGRITY");
        message.add_attribute(integrity);
        let fingerprint = Fingerprint::new(&message).expect("FINGERPRINT");
        message.add_attribute(fingerprint);
        encode(out, message)
    }
}

/// `stun-types` 2.0.4 (the rice project).
///
/// Model: `Message::from_bytes` is a zero-copy view that validates the attribute framing and
/// verifies a FINGERPRINT if present; attributes are read as borrowed `RawAttribute`s and
/// converted to typed ones on demand. Building goes through a `MessageWrite` (here
/// `MessageWriteVec`) with `add_attribute`, `add_message_integrity_with_key` and
/// `add_fingerprint`; integrity is checked with `Message::validate_integrity_with_key`.
///
/// Caveats (fairness):
/// - The crate defines neither the ICE attributes (PRIORITY, ICE-CONTROLLING, USE-CANDIDATE; in
///   rice they live in `rice-proto`) nor the TURN ones (XOR-PEER-ADDRESS, DATA; in `turn-types`).
///   They are written as borrowed `RawAttribute`s (no allocation) and read from the raw value;
///   XOR-PEER-ADDRESS uses the crate's public `XorSocketAddr` helper (the machinery behind its
///   XOR-MAPPED-ADDRESS) encoded into a stack buffer.
/// - The short-term `IntegrityKey` is created once per password and cached (thread-local), as
///   the crate intends ("a cached key"); it caches the HMAC key schedule internally behind a
///   `Mutex`.
/// - The one forced allocation is USERNAME: `Username::new(&str)` and `Username::from_raw_ref`
///   both copy into a `String`. Attributes are read in one pass over `iter_attributes()`, rather
///   than one `Message::attribute::<T>()` scan per attribute.
/// - The builder writes into the caller's `Vec` (moved into the `MessageWriteVec` and back).
pub mod stun_types_crate {
    use std::cell::RefCell;
    use std::net::SocketAddr;

    use stun_types::attribute::{
        AttributeType, Fingerprint, MessageIntegrity, RawAttribute, Username, XorSocketAddr,
    };
    use stun_types::message::{
        IntegrityAlgorithm, IntegrityKey, Message, MessageClass, MessageIntegrityCredentials,
        MessageType, MessageWriteVec, Method, ShortTermCredentials, TransactionId, BINDING,
    };
    use stun_types::prelude::*;

    // Attribute types the crate does not define (see module docs).
    const PRIORITY: AttributeType = AttributeType::new(0x0024);
    const USE_CANDIDATE: AttributeType = AttributeType::new(0x0025);
    const ICE_CONTROLLING: AttributeType = AttributeType::new(0x802A);
    const XOR_PEER_ADDRESS: AttributeType = AttributeType::new(0x0012);
    const DATA: AttributeType = AttributeType::new(0x0013);
    // The TURN Send method is not defined by the crate either.
    const SEND: Method = Method::new(0x0006);

    thread_local! {
        /// Short-term integrity key for the last password seen.
        static KEY: RefCell<Option<(String, IntegrityKey)>> = const { RefCell::new(None) };
    }

    fn with_key<R>(password: &str, f: impl FnOnce(&IntegrityKey) -> R) -> R {
        KEY.with_borrow_mut(|slot| {
            if slot.as_ref().is_none_or(|(p, _)| p != password) {
                let credentials: MessageIntegrityCredentials =
                    ShortTermCredentials::new(password.to_owned()).into();
                *slot = Some((
                    password.to_owned(),
                    credentials.make_key(IntegrityAlgorithm::Sha1),
                ));
            }
            f(&slot.as_ref().expect("just set").1)
        })
    }

    fn transaction_id(tid: [u8; 12]) -> TransactionId {
        let mut b = [0u8; 16];
        b[4..].copy_from_slice(&tid);
        u128::from_be_bytes(b).into()
    }

    /// The FINGERPRINT value as carried on the wire. `Fingerprint::fingerprint()` returns the
    /// CRC-32 before the XOR with 0x5354554e (the other crates return the wire value), so undo
    /// that here to mix the same number.
    fn fingerprint_value(raw: &RawAttribute<'_>) -> Option<u32> {
        let crc = u32::from_be_bytes(*Fingerprint::from_raw_ref(raw).ok()?.fingerprint());
        Some(crc ^ 0x5354_554e)
    }

    fn read_ice(message: &Message<'_>) -> Option<u64> {
        let mut username = None;
        let mut priority = None;
        let mut tiebreaker = None;
        let mut use_candidate = false;
        let mut hmac = None;
        let mut fingerprint = None;
        for (_offset, raw) in message.iter_attributes() {
            match raw.get_type() {
                Username::TYPE => username = Some(Username::from_raw_ref(&raw).ok()?),
                // PRIORITY / ICE-CONTROLLING / USE-CANDIDATE: raw (see module docs).
                PRIORITY => priority = Some(u32::from_be_bytes((&*raw.value).try_into().ok()?)),
                ICE_CONTROLLING => {
                    tiebreaker = Some(u64::from_be_bytes((&*raw.value).try_into().ok()?))
                }
                USE_CANDIDATE => use_candidate = true,
                MessageIntegrity::TYPE => {
                    hmac = Some(*MessageIntegrity::from_raw_ref(&raw).ok()?.hmac())
                }
                Fingerprint::TYPE => fingerprint = Some(fingerprint_value(&raw)?),
                _ => {}
            }
        }
        Some(super::mix_ice(
            username?.username(),
            priority?,
            tiebreaker?,
            use_candidate,
            &hmac?,
            fingerprint?,
        ))
    }

    fn read_send(message: &Message<'_>) -> Option<u64> {
        let tid = message.transaction_id();
        let mut peer = None;
        let mut data = None;
        let mut hmac = None;
        let mut fingerprint = None;
        for (_offset, raw) in message.iter_attributes() {
            match raw.get_type() {
                // XOR-PEER-ADDRESS / DATA: raw (see module docs).
                XOR_PEER_ADDRESS => peer = Some(XorSocketAddr::from_raw(&raw).ok()?.addr(tid)),
                DATA => data = Some(raw.value),
                MessageIntegrity::TYPE => {
                    hmac = Some(*MessageIntegrity::from_raw_ref(&raw).ok()?.hmac())
                }
                Fingerprint::TYPE => fingerprint = Some(fingerprint_value(&raw)?),
                _ => {}
            }
        }
        Some(super::mix_send(peer?, &data?, &hmac?, fingerprint?))
    }

    fn verify(bytes: &[u8], password: &str) -> bool {
        // `from_bytes` verifies the FINGERPRINT if there is one; require that there is.
        let Ok(message) = Message::from_bytes(bytes) else {
            return false;
        };
        message.has_attribute(Fingerprint::TYPE)
            && with_key(password, |key| {
                message.validate_integrity_with_key(key).is_ok()
            })
    }

    /// Builds with a `MessageWriteVec` that writes into the caller's buffer.
    fn build(
        out: &mut Vec<u8>,
        mtype: MessageType,
        tid: [u8; 12],
        password: &str,
        attributes: impl FnOnce(&mut MessageWriteVec),
    ) -> usize {
        out.clear();
        let mut writer = MessageWriteVec::new();
        std::mem::swap(&mut *writer, out);
        let mut writer = Message::builder(mtype, transaction_id(tid), writer);
        attributes(&mut writer);
        with_key(password, |key| {
            writer
                .add_message_integrity_with_key(key, IntegrityAlgorithm::Sha1)
                .expect("MESSAGE-INTEGRITY")
        });
        writer.add_fingerprint().expect("FINGERPRINT");
        *out = writer.finish();
        out.len()
    }

    /// Parse and read every attribute of an ICE connectivity check.
    pub fn parse_read_all_ice(bytes: &[u8]) -> u64 {
        Message::from_bytes(bytes)
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
        let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
        build(out, mtype, tid, password, |w| {
            w.add_attribute(&Username::new(username).expect("USERNAME"))
                .expect("USERNAME");
            // PRIORITY / ICE-CONTROLLING / USE-CANDIDATE: raw (see module docs).
            w.add_attribute(&RawAttribute::new(PRIORITY, &priority.to_be_bytes()))
                .expect("PRIORITY");
            w.add_attribute(&RawAttribute::new(
                ICE_CONTROLLING,
                &tiebreaker.to_be_bytes(),
            ))
            .expect("ICE-CONTROLLING");
            w.add_attribute(&RawAttribute::new(USE_CANDIDATE, &[]))
                .expect("USE-CANDIDATE");
        })
    }

    /// Parse a TURN Send indication and read every attribute.
    pub fn parse_read_all_send(bytes: &[u8]) -> u64 {
        Message::from_bytes(bytes)
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
        let mtype = MessageType::from_class_method(MessageClass::Indication, SEND);
        build(out, mtype, tid, password, |w| {
            // XOR-PEER-ADDRESS: the crate's `XorSocketAddr` into a stack buffer, written raw.
            let xor = XorSocketAddr::new(peer, transaction_id(tid));
            let mut value = [0u8; 20];
            let len = usize::from(xor.length());
            xor.write_into_unchecked(&mut value[..len]);
            w.add_attribute(&RawAttribute::new(XOR_PEER_ADDRESS, &value[..len]))
                .expect("XOR-PEER-ADDRESS");
            // DATA: raw, borrowed.
            w.add_attribute(&RawAttribute::new(DATA, data))
                .expect("DATA");
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const USERNAME: &str = "abcd:efgh";
    const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
    const PRIORITY: u32 = 0x6e7f1eff;
    const TIEBREAKER: u64 = 0x0123456789abcdef;

    fn peer() -> SocketAddr {
        "192.0.2.1:5000".parse().unwrap()
    }

    fn data() -> Vec<u8> {
        (0..160u8).collect()
    }

    use crate::{Impl as Crate, IMPLS as CRATES};

    fn build_ice(c: &Crate, out: &mut Vec<u8>) -> usize {
        (c.build_ice)(out, TID, USERNAME, PRIORITY, TIEBREAKER, PASSWORD)
    }

    fn build_send(c: &Crate, out: &mut Vec<u8>) -> usize {
        (c.build_send)(out, TID, peer(), &data(), PASSWORD)
    }

    /// Header (20) + USERNAME (4 + 12) + PRIORITY (4 + 4) + ICE-CONTROLLING (4 + 8)
    /// + USE-CANDIDATE (4) + MESSAGE-INTEGRITY (4 + 20) + FINGERPRINT (4 + 4).
    const ICE_LEN: usize = 20 + 16 + 8 + 12 + 4 + 24 + 8;
    /// Header (20) + XOR-PEER-ADDRESS (4 + 8) + DATA (4 + 160) + MESSAGE-INTEGRITY (4 + 20)
    /// + FINGERPRINT (4 + 4).
    const SEND_LEN: usize = 20 + 12 + 164 + 24 + 8;

    #[test]
    fn builders_agree_byte_for_byte() {
        let mut reference_ice = Vec::new();
        let mut reference_send = Vec::new();
        assert_eq!(build_ice(&CRATES[0], &mut reference_ice), ICE_LEN);
        assert_eq!(build_send(&CRATES[0], &mut reference_send), SEND_LEN);
        assert_eq!(
            &reference_ice[..4],
            &[0x00, 0x01, 0x00, (ICE_LEN - 20) as u8]
        );
        assert_eq!(&reference_send[..2], &[0x00, 0x16]);
        for c in &CRATES {
            // Start from a dirty buffer to check the builders clear it.
            let mut out = vec![0xAA; 7];
            assert_eq!(build_ice(c, &mut out), out.len(), "{}", c.name);
            assert_eq!(out, reference_ice, "{} ICE bytes", c.name);
            let mut out = vec![0xAA; 7];
            assert_eq!(build_send(c, &mut out), out.len(), "{}", c.name);
            assert_eq!(out, reference_send, "{} Send bytes", c.name);
        }
    }

    #[test]
    fn every_parser_reads_and_verifies_every_builder() {
        let mut ice_values = Vec::new();
        let mut send_values = Vec::new();
        for builder in &CRATES {
            let mut ice = Vec::new();
            let mut send = Vec::new();
            // Build twice into the same buffer: reused state must not leak between calls.
            for _ in 0..2 {
                build_ice(builder, &mut ice);
                build_send(builder, &mut send);
            }
            for parser in &CRATES {
                let ctx = format!("built by {}, parsed by {}", builder.name, parser.name);
                for _ in 0..2 {
                    assert!((parser.verify_ice)(&ice, PASSWORD), "ICE verify, {ctx}");
                    assert!((parser.verify_send)(&send, PASSWORD), "Send verify, {ctx}");
                    ice_values.push(((parser.read_ice)(&ice), ctx.clone()));
                    send_values.push(((parser.read_send)(&send), ctx.clone()));
                }
            }
        }
        for (values, what) in [(&ice_values, "ICE"), (&send_values, "Send")] {
            let first = values[0].0;
            assert_ne!(first, 0, "{what}");
            for (v, ctx) in values {
                assert_eq!(*v, first, "{what} read_all value, {ctx}");
            }
        }
    }

    #[test]
    fn read_all_values_contain_the_inputs() {
        let mut ice = Vec::new();
        let mut send = Vec::new();
        build_ice(&CRATES[2], &mut ice);
        build_send(&CRATES[2], &mut send);
        // Recompute the mix from the inputs plus the HMAC / CRC fields taken from the bytes.
        let hmac_ice = &ice[ICE_LEN - 8 - 20..ICE_LEN - 8];
        let crc_ice = u32::from_be_bytes(ice[ICE_LEN - 4..].try_into().unwrap());
        let expected = super::mix_ice(USERNAME, PRIORITY, TIEBREAKER, true, hmac_ice, crc_ice);
        let hmac_send = &send[SEND_LEN - 8 - 20..SEND_LEN - 8];
        let crc_send = u32::from_be_bytes(send[SEND_LEN - 4..].try_into().unwrap());
        let expected_send = super::mix_send(peer(), &data(), hmac_send, crc_send);
        for c in &CRATES {
            assert_eq!((c.read_ice)(&ice), expected, "{}", c.name);
            assert_eq!((c.read_send)(&send), expected_send, "{}", c.name);
        }
    }

    #[test]
    fn tampering_is_detected() {
        for builder in &CRATES {
            let mut ice = Vec::new();
            let mut send = Vec::new();
            build_ice(builder, &mut ice);
            build_send(builder, &mut send);
            for parser in &CRATES {
                let ctx = format!("built by {}, parsed by {}", builder.name, parser.name);
                // Wrong password: integrity fails.
                assert!(
                    !(parser.verify_ice)(&ice, "wrong"),
                    "ICE wrong password, {ctx}"
                );
                assert!(
                    !(parser.verify_send)(&send, "wrong"),
                    "Send wrong password, {ctx}"
                );
                // A flipped payload byte: FINGERPRINT (and integrity) fail.
                let mut bad = send.clone();
                bad[40] ^= 1;
                assert!(
                    !(parser.verify_send)(&bad, PASSWORD),
                    "Send tampered, {ctx}"
                );
                // A flipped FINGERPRINT byte alone.
                let mut bad = ice.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert!(!(parser.verify_ice)(&bad, PASSWORD), "ICE bad CRC, {ctx}");
            }
            // The right password still verifies after the wrong one was cached.
            for parser in &CRATES {
                assert!((parser.verify_ice)(&ice, PASSWORD), "{}", parser.name);
            }
        }
    }
}
