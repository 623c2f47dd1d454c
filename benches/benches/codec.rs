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
use stack_benches::{ours, IMPLS};

const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const USERNAME: &str = "abcd:efgh";
const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const PRIORITY: u32 = 0x6e7f1eff;
const TIEBREAKER: u64 = 0x0123456789abcdef;

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
    let impls = &IMPLS;

    for (msg, bytes) in [("ice-check", &ice), ("send-indication", &send)] {
        let mut g = c.benchmark_group(format!("{msg}/parse+read-all"));
        g.throughput(Throughput::Elements(1));
        for i in impls {
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
        for i in impls {
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
        for i in impls {
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
