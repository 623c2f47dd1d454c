//! Memory per agent: 1,000 pairs of agents, each with four local and four remote candidates,
//! connected in natsim. The heap that the whole simulation holds once every pair is connected
//! (agents, their signalling mailboxes and natsim's own state) is divided by the number of
//! agents: an upper bound of what one agent holds. `docs/benchmarks.md` reports the figure;
//! print it with `cargo test -p scenarios --test agent_scale -- --nocapture`.
//! CPU time per connection is a benchmark: `cd benches && cargo bench --bench ice`.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system
// allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use scenarios::scale::{Scale, ADDRESSES};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_thousand_pairs_connect_and_each_agent_holds_under_64_kib() {
    const PAIRS: usize = 1000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut scale = Scale::new(PAIRS, 1);
    let took = scale
        .run(Duration::from_secs(5))
        .expect("every pair connects within 5 s of virtual time");
    // The run is deterministic; docs/benchmarks.md reports this figure.
    assert!(took <= Duration::from_millis(300), "{took:?}");
    let held = LIVE.load(Ordering::Relaxed) - before;
    let per_agent = held / (2 * PAIRS) as isize;
    let a = scale.agent(scale.pairs[0][0]);
    assert_eq!(
        a.agent.local_candidates(ice_agent::StreamId(0)).len(),
        ADDRESSES
    );
    assert_eq!(
        a.agent.remote_candidates(ice_agent::StreamId(0)).len(),
        ADDRESSES
    );
    assert_eq!(
        a.agent.pair_count(ice_agent::StreamId(0)),
        ADDRESSES * ADDRESSES
    );
    println!(
        "{PAIRS} pairs connected in {took:?} of virtual time, {} deliveries; heap held: {held} bytes, {per_agent} bytes per agent (simulation included)",
        scale.sim.stats().delivered
    );
    assert!(per_agent < 64 * 1024, "{per_agent} bytes per agent");
}
