//! Links: what happens to a packet between a node's interface and the network it is on.
//!
//! Every interface has an egress link with its own configuration and state: one-way latency,
//! jitter, loss, duplication, reordering, MTU and a bandwidth with a bounded queue. All
//! randomness comes from the simulator's seeded generator, so a run is reproducible.

use std::time::Duration;

use rand::Rng;

/// How a link treats packets. The default is an ideal link: no delay, no loss, MTU 1500.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// One-way latency added to every packet.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet (datagrams may then reorder).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by [`reorder_delay`](Self::reorder_delay), so
    /// later ones overtake it.
    pub reorder: f64,
    /// The hold-back of a reordered datagram.
    pub reorder_delay: Duration,
    /// Largest packet (IP header included) the link carries; larger ones are dropped.
    pub mtu: usize,
    /// Bandwidth in bits per second; `None` for unlimited.
    pub bandwidth: Option<u64>,
    /// Bytes that may wait for the bandwidth; packets beyond are dropped (tail drop).
    pub queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            mtu: 1500,
            bandwidth: None,
            queue_bytes: 64 * 1024,
        }
    }
}

impl LinkConfig {
    /// An ideal link with the given one-way latency.
    pub fn with_latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered to the link.
    pub sent: u64,
    /// Packets that left the link (duplicates counted once more each).
    pub forwarded: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub reordered: u64,
    /// Packets dropped for exceeding the MTU.
    pub dropped_mtu: u64,
    /// Packets dropped because the queue was full.
    pub dropped_queue: u64,
}

/// A link's state: its configuration, when its transmitter is next free, counters.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) config: LinkConfig,
    pub(crate) stats: LinkStats,
    /// Virtual time (ns) when the last queued packet has been serialised.
    busy_until: u64,
    /// Arrival time (ns) of the last TCP segment, which must not be overtaken.
    last_tcp_arrival: u64,
}

/// Up to two arrival times (a duplicated datagram arrives twice).
pub(crate) type Arrivals = ([u64; 2], usize);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Link {
    pub(crate) fn new(config: LinkConfig) -> Link {
        Link {
            config,
            stats: LinkStats::default(),
            busy_until: 0,
            last_tcp_arrival: 0,
        }
    }

    /// Sends a packet of `wire_len` bytes at `now` (ns); returns when it arrives, if at all.
    ///
    /// TCP segments (`reliable`) are never lost, duplicated or reordered: TCP itself would
    /// retransmit and reorder them, and natsim models TCP at the connection level. They do see
    /// latency, jitter, MTU-free bandwidth and queueing, and never overtake each other.
    pub(crate) fn transmit(
        &mut self,
        now: u64,
        wire_len: usize,
        reliable: bool,
        rng: &mut impl Rng,
    ) -> Arrivals {
        let c = &self.config;
        self.stats.sent += 1;
        if !reliable && wire_len > c.mtu {
            self.stats.dropped_mtu += 1;
            return ([0; 2], 0);
        }
        let mut depart = now;
        if let Some(bps) = c.bandwidth.filter(|b| *b > 0) {
            let start = self.busy_until.max(now);
            let backlog_ns = start - now;
            let backlog_bytes = u128::from(backlog_ns) * u128::from(bps) / 8 / 1_000_000_000;
            if !reliable && backlog_bytes + wire_len as u128 > c.queue_bytes as u128 {
                self.stats.dropped_queue += 1;
                return ([0; 2], 0);
            }
            let serialise = (wire_len as u128 * 8 * 1_000_000_000 / u128::from(bps)) as u64;
            self.busy_until = start + serialise;
            depart = self.busy_until;
        }
        let jitter = |rng: &mut dyn rand::RngCore| match nanos(c.jitter) {
            0 => 0,
            j => rng.gen_range(0..=j),
        };
        let mut arrival = depart + nanos(c.latency) + jitter(rng);
        if reliable {
            arrival = arrival.max(self.last_tcp_arrival);
            self.last_tcp_arrival = arrival;
            self.stats.forwarded += 1;
            return ([arrival, 0], 1);
        }
        if c.loss > 0.0 && rng.gen_bool(c.loss.min(1.0)) {
            self.stats.lost += 1;
            return ([0; 2], 0);
        }
        if c.reorder > 0.0 && rng.gen_bool(c.reorder.min(1.0)) {
            self.stats.reordered += 1;
            arrival += nanos(c.reorder_delay);
        }
        self.stats.forwarded += 1;
        if c.duplicate > 0.0 && rng.gen_bool(c.duplicate.min(1.0)) {
            self.stats.duplicated += 1;
            self.stats.forwarded += 1;
            let second = depart + nanos(c.latency) + jitter(rng);
            return ([arrival, second], 2);
        }
        ([arrival, 0], 1)
    }
}
