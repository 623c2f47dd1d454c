//! Comparison benchmarks for the STUN codec: the same operations written against other Rust STUN
//! crates live in [`competitors`].

pub mod competitors;
pub fn x(){}
