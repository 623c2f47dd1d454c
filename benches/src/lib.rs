//! Comparison benchmarks for the STUN codec: the same operations written against other Rust STUN
//! crates live in [`competitors`], and against ours in [`ours`].

pub mod competitors;
pub mod ours;
