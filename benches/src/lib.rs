//! Comparison benchmarks for the STUN codec: the same operations written against other Rust STUN
//! crates live in [`competitors`], and against ours in [`ours`].

pub mod competitors;
pub mod ours;

use std::net::SocketAddr;

/// Builds the ICE check: `(out, tid, username, priority, tiebreaker, password) -> len`.
pub type BuildIce = fn(&mut Vec<u8>, [u8; 12], &str, u32, u64, &str) -> usize;
/// Builds the Send indication: `(out, tid, peer, data, password) -> len`.
pub type BuildSend = fn(&mut Vec<u8>, [u8; 12], SocketAddr, &[u8], &str) -> usize;
/// Parses and reads every attribute; returns a value mixing them.
pub type ReadAll = fn(&[u8]) -> u64;
/// Parses and verifies MESSAGE-INTEGRITY and FINGERPRINT with the password.
pub type Verify = fn(&[u8], &str) -> bool;

/// One implementation of the six operations.
pub struct Impl {
    /// Its name in reports.
    pub name: &'static str,
    /// Builds the ICE check.
    pub build_ice: BuildIce,
    /// Builds the Send indication.
    pub build_send: BuildSend,
    /// Parses and reads the ICE check.
    pub read_ice: ReadAll,
    /// Parses and reads the Send indication.
    pub read_send: ReadAll,
    /// Parses and verifies the ICE check.
    pub verify_ice: Verify,
    /// Parses and verifies the Send indication.
    pub verify_send: Verify,
}

macro_rules! implementation {
    ($name:literal, $m:path) => {{
        use $m as m;
        Impl {
            name: $name,
            build_ice: m::build_ice,
            build_send: m::build_send,
            read_ice: m::parse_read_all_ice,
            read_send: m::parse_read_all_send,
            verify_ice: m::parse_verify_ice,
            verify_send: m::parse_verify_send,
        }
    }};
}

/// Every implementation compared: ours first.
pub const IMPLS: [Impl; 4] = [
    implementation!("ours", crate::ours),
    implementation!("stun-types", crate::competitors::stun_types_crate),
    implementation!("webrtc-stun", crate::competitors::webrtc),
    implementation!("stun_codec", crate::competitors::stun_codec_crate),
];
