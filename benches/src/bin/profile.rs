//! Runs one benchmark operation in a loop, for profilers that count instructions
//! (`valgrind --tool=callgrind`), which stay exact on a busy machine.
//!
//! ```text
//! cargo build --release --bin profile
//! valgrind --tool=callgrind target/release/profile ours ice 100000
//! ```

use std::hint::black_box;

use stack_benches::{ours, IMPLS};

const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (imp, op) = (args[1].as_str(), args[2].as_str());
    let n: u64 = args.get(3).map_or(100_000, |s| s.parse().unwrap());
    let peer = "192.0.2.1:5000".parse().unwrap();
    let data: Vec<u8> = (0..160u8).collect();
    let mut ice = Vec::new();
    ours::build_ice(
        &mut ice,
        TID,
        "abcd:efgh",
        0x6e7f1eff,
        0x0123456789abcdef,
        PASSWORD,
    );
    let mut send = Vec::new();
    ours::build_send(&mut send, TID, peer, &data, PASSWORD);
    let Some(i) = IMPLS.iter().find(|i| i.name == imp) else {
        panic!(
            "usage: profile <ours|stun-types|webrtc-stun|stun_codec> <ice|send> [n] [read|verify]"
        );
    };
    let (read, verify) = match op {
        "ice" => (i.read_ice, i.verify_ice),
        _ => (i.read_send, i.verify_send),
    };
    let bytes = if op == "ice" { &ice } else { &send };
    let mut acc = 0u64;
    for _ in 0..n {
        if args.get(4).map(String::as_str) == Some("verify") {
            acc += u64::from(verify(black_box(bytes), PASSWORD));
        } else {
            acc ^= read(black_box(bytes));
        }
    }
    println!("{acc}");
}
