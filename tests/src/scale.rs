//! Many agent pairs in one simulation, for the benchmark of CPU per connection and the
//! measurement of memory per agent (`docs/benchmarks.md`).
//!
//! Every agent is a host with four addresses on one network, so it has four host candidates
//! and gets four remote ones: sixteen pairs per check list. Signalling has 50 ms delay and
//! links 10 ms, as in the NAT matrix. Each pair is connected once both sides have a selected
//! pair and have received application data over it.

use std::time::Duration;

use ice_agent::AgentConfig;
use natsim::{LinkConfig, NodeId, Sim, Topology};

use crate::ice::{AgentEndpoint, Board, Mailbox};

/// A simulation of `pairs` agent pairs, not yet started.
pub struct Scale {
    /// The simulator.
    pub sim: Sim,
    /// The hosts of each pair: offerer, answerer.
    pub pairs: Vec<[NodeId; 2]>,
    board: Board,
}

/// Local addresses per agent.
pub const ADDRESSES: usize = 4;

impl Scale {
    /// Builds `pairs` pairs (at most 32,000: host `h` has addresses `10.k.(h / 250).(h % 250
    /// + 1)`, and the third octet must stay below 256).
    pub fn new(pairs: usize, seed: u64) -> Scale {
        assert!(2 * pairs <= 250 * 256);
        let mut t = Topology::new();
        let net = t.network("lan", &["10.0.0.0/8"]);
        let addr =
            |host: usize, k: usize| format!("10.{}.{}.{}", k + 1, host / 250, host % 250 + 1);
        let mut ids = Vec::with_capacity(pairs);
        let mut sockets = Vec::with_capacity(pairs);
        for p in 0..pairs {
            let mut pair = Vec::with_capacity(2);
            let mut socks: Vec<Vec<std::net::SocketAddr>> = Vec::with_capacity(2);
            for side in 0..2 {
                let h = 2 * p + side;
                let ips: Vec<String> = (0..ADDRESSES).map(|k| addr(h, k)).collect();
                let addrs: Vec<(natsim::NetworkId, &str)> =
                    ips.iter().map(|a| (net, a.as_str())).collect();
                pair.push(t.host(&format!("h{h}"), &addrs));
                socks.push(
                    ips.iter()
                        .map(|a| format!("{a}:5000").parse().expect("an address"))
                        .collect(),
                );
            }
            ids.push([pair[0], pair[1]]);
            sockets.push(socks);
        }
        t.link_all(LinkConfig::with_latency(Duration::from_millis(10)));
        let mut sim = t.build(seed).expect("a valid topology");
        let board = Board::default();
        for (p, (pair, socks)) in ids.iter().zip(sockets).enumerate() {
            let mailbox = Mailbox::on_board(Duration::from_millis(50), board.clone(), p);
            for (side, socks) in socks.into_iter().enumerate() {
                let mut c = AgentConfig::new(ice_agent::Role::Controlling);
                c.seed = Some(seed ^ (p as u64) << 1 ^ side as u64);
                let e = AgentEndpoint::new(c, side, mailbox.clone(), socks);
                sim.set_endpoint(pair[side], e);
            }
        }
        Scale {
            sim,
            pairs: ids,
            board,
        }
    }

    /// Runs until every pair is connected and has exchanged data, or `limit` of virtual
    /// time; returns the virtual time taken, or `None`.
    pub fn run(&mut self, limit: Duration) -> Option<Duration> {
        let step = Duration::from_millis(10);
        let mut until = step;
        loop {
            let board = self.board.clone();
            // Stops early only when a mailbox was posted to.
            let _ = self.sim.run_until(until, |_| !board.borrow().is_empty());
            let posted: Vec<usize> = std::mem::take(&mut *self.board.borrow_mut());
            if !posted.is_empty() {
                // The receivers' timers must now include the deliveries.
                for p in posted {
                    self.sim.wake(self.pairs[p][0]);
                    self.sim.wake(self.pairs[p][1]);
                }
                continue;
            }
            if self.all_connected() {
                return Some(self.sim.elapsed());
            }
            if until >= limit {
                return None;
            }
            until += step;
        }
    }

    /// Whether every pair is connected and has exchanged data.
    pub fn all_connected(&self) -> bool {
        self.pairs.iter().flatten().all(|&h| {
            let a = self.sim.endpoint::<AgentEndpoint>(h).expect("an agent");
            a.is_connected() && !a.received.is_empty()
        })
    }

    /// The agent on `host`.
    pub fn agent(&self, host: NodeId) -> &AgentEndpoint {
        self.sim.endpoint::<AgentEndpoint>(host).expect("an agent")
    }
}
