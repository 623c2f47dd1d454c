//! ICE agents: CPU time per connection, with 1,000 agent pairs connecting in natsim.
//!
//! ```text
//! cd benches && cargo bench --bench ice
//! ```
//!
//! Each agent has four host addresses, so four local and four remote candidates and sixteen
//! pairs; signalling has 50 ms delay and links 10 ms. One iteration connects all 1,000 pairs
//! (both sides selected a pair and received data over it) in virtual time, so no time is
//! spent waiting: the time measured is the agents' work plus natsim's deliveries, on one
//! core. Building the simulation is setup and is not measured. Time per connection is the
//! iteration time divided by 1,000.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use scenarios::scale::Scale;

const PAIRS: usize = 1000;

fn ice(c: &mut Criterion) {
    let mut check = Scale::new(PAIRS, 1);
    let took = check
        .run(Duration::from_secs(5))
        .expect("every pair connects");
    println!(
        "{PAIRS} pairs connect in {took:?} of virtual time, {} deliveries",
        check.sim.stats().delivered
    );
    let mut g = c.benchmark_group("ice");
    g.throughput(Throughput::Elements(PAIRS as u64));
    g.sample_size(10);
    g.bench_function("connect_1000_pairs", |b| {
        b.iter_batched(
            || Scale::new(PAIRS, 1),
            |mut s| black_box(s.run(Duration::from_secs(5)).expect("connected")),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, ice);
criterion_main!(benches);
