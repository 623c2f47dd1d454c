//! STUN codec throughput: ours against webrtc-rs `stun`, `stun_codec` and `stun-types`, in the
//! same run. See docs/benchmarks.md for the table and how to reproduce it.
//!
//! ```text
//! cd benches && cargo bench --bench codec
//! ```

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stack_benches::competitors::{stun_codec_crate, stun_types_crate, webrtc};
use stack_benches::ours;

const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const USERNAME: &str = "abcd:efgh";
const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const PRIORITY: u32 = 0x6e7f1eff;
const TIEBREAKER: u64 = 0x0123456789abcdef;

type BuildIce = fn(&mut Vec<u8>, [u8; 12], &str, u32, u64, &str) -> usize;
type BuildSend = fn(&mut Vec<u8>, [u8; 12], SocketAddr, &[u8], &str) -> usize;
type ReadAll = fn(&[u8]) -> u64;
type Verify = fn(&[u8], &str) -> bool;

struct Impl {
    name: &'static str,
    build_ice: BuildIce,
    build_send: BuildSend,
    read_ice: ReadAll,
    read_send: ReadAll,
    verify_ice: Verify,
    verify_send: Verify,
}

macro_rules! imp {
    ($name:literal, $m:ident) => {
        Impl {
            name: $name,
            build_ice: $m::build_ice,
            build_send: $m::build_send,
            read_ice: $m::parse_read_all_ice,
            read_send: $m::parse_read_all_send,
            verify_ice: $m::parse_verify_ice,
            verify_send: $m::parse_verify_send,
        }
    };
}

fn impls() -> [Impl; 4] {
    [
        imp!("ours", ours),
        imp!("stun-types", stun_types_crate),
        imp!("webrtc-stun", webrtc),
        imp!("stun_codec", stun_codec_crate),
    ]
}

fn messages() -> (Vec<u8>, Vec<u8>, SocketAddr, Vec<u8>) {
    let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let data: Vec<u8> = (0..160u8).collect();
    let mut ice = Vec::new();
    ours::build_ice(&mut ice, TID, USERNAME, PRIORITY, TIEBREAKER, PASSWORD);
    let mut send = Vec::new();
    ours::build_send(&mut send, TID, peer, &data, PASSWORD);
    (ice, send, peer, data)
}

fn codec(c: &mut Criterion) {
    let (ice, send, peer, data) = messages();
    let impls = impls();

    for (msg, bytes) in [("ice-check", &ice), ("send-indication", &send)] {
        let mut g = c.benchmark_group(format!("{msg}/parse+read-all"));
        g.throughput(Throughput::Elements(1));
        for i in &impls {
            let f = if msg == "ice-check" {
                i.read_ice
            } else {
                i.read_send
            };
            assert_ne!(f(bytes), 0, "{} reads {msg}", i.name);
            g.bench_function(BenchmarkId::from_parameter(i.name), |b| {
                b.iter(|| f(black_box(bytes)))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("{msg}/parse+verify"));
        g.throughput(Throughput::Elements(1));
        for i in &impls {
            let f = if msg == "ice-check" {
                i.verify_ice
            } else {
                i.verify_send
            };
            assert!(f(bytes, PASSWORD), "{} verifies {msg}", i.name);
            g.bench_function(BenchmarkId::from_parameter(i.name), |b| {
                b.iter(|| f(black_box(bytes), black_box(PASSWORD)))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("{msg}/build+MI+FP"));
        g.throughput(Throughput::Elements(1));
        for i in &impls {
            let mut out = Vec::with_capacity(512);
            g.bench_function(BenchmarkId::from_parameter(i.name), |b| {
                if msg == "ice-check" {
                    b.iter(|| {
                        (i.build_ice)(
                            &mut out,
                            black_box(TID),
                            black_box(USERNAME),
                            PRIORITY,
                            TIEBREAKER,
                            PASSWORD,
                        )
                    })
                } else {
                    b.iter(|| {
                        (i.build_send)(&mut out, black_box(TID), peer, black_box(&data), PASSWORD)
                    })
                }
            });
            assert_eq!(&out[..], &bytes[..], "{} builds the same bytes", i.name);
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3));
    targets = codec
}
criterion_main!(benches);
