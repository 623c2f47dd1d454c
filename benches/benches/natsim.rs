//! natsim speed: simulated packet deliveries per second of real time, on one core.
//!
//! ```text
//! cd benches && cargo bench --bench natsim
//! ```
//!
//! 64 flows ping-pong between a client behind a port-restricted cone NAT and a public server,
//! over 10 ms links. Each packet crosses two links (client → NAT → server and back), so every
//! hop is one delivery: an arrival at a node, with its link model, routing and NAT translation.

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natsim::{Endpoint, Input, LinkConfig, NatConfig, Output, Preset, Topology};

/// Opens `flows` flows at start and answers every datagram, `limit` times in all.
struct PingPong {
    local: Vec<SocketAddr>,
    peer: Option<SocketAddr>,
    out: VecDeque<Output>,
    answers_left: u64,
}

impl Endpoint for PingPong {
    fn start(&mut self, _now: Instant) {
        if let Some(peer) = self.peer {
            for l in &self.local {
                self.out.push_back(Output::Udp {
                    local: *l,
                    remote: peer,
                    data: vec![0; 100],
                });
            }
        }
    }
    fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
        if let Input::Udp {
            local,
            remote,
            data,
        } = input
        {
            if self.answers_left > 0 {
                self.answers_left -= 1;
                self.out.push_back(Output::Udp {
                    local,
                    remote,
                    data: data.to_vec(),
                });
            }
        }
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

const FLOWS: u16 = 64;
const ANSWERS: u64 = 25_000; // per side: ~50,000 datagrams of two hops each, ~100,000 deliveries

fn run() -> u64 {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    t.nat(
        "nat",
        NatConfig::preset(Preset::PortRestrictedCone),
        (home, "192.168.1.1"),
        (internet, &["203.0.113.1"]),
    );
    let client = t.host("client", &[(home, "192.168.1.10")]);
    let server = t.host("server", &[(internet, "198.51.100.1")]);
    t.link_all(LinkConfig::with_latency(Duration::from_millis(10)));
    let mut sim = t.build(1).unwrap();
    sim.set_endpoint(
        client,
        PingPong {
            local: (0..FLOWS)
                .map(|i| format!("192.168.1.10:{}", 10_000 + i).parse().unwrap())
                .collect(),
            peer: Some("198.51.100.1:7".parse().unwrap()),
            out: VecDeque::new(),
            answers_left: ANSWERS,
        },
    );
    sim.set_endpoint(
        server,
        PingPong {
            local: Vec::new(),
            peer: None,
            out: VecDeque::new(),
            answers_left: ANSWERS,
        },
    );
    sim.run_for(Duration::from_secs(3600));
    sim.stats().events
}

fn natsim(c: &mut Criterion) {
    let deliveries = run();
    assert!(deliveries >= 2 * 2 * ANSWERS, "{deliveries}");
    let mut g = c.benchmark_group("natsim");
    g.throughput(Throughput::Elements(deliveries));
    g.sample_size(20);
    g.bench_function("deliveries", |b| b.iter(|| black_box(run())));
    g.finish();
}

criterion_group!(benches, natsim);
criterion_main!(benches);
