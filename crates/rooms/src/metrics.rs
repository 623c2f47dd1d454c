//! The hub's counters and gauges, and their Prometheus text form. Labels are bounded: the
//! message kinds and the error codes, never a room, peer or address.

use std::fmt::Write;

use crate::protocol::ErrorCode;

/// Counters since start, and gauges as of [`Hub::metrics`](crate::hub::Hub::metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubMetrics {
    /// Open connections.
    pub connections: u64,
    /// Rooms with at least one peer, in the whole fleet.
    pub rooms: u64,
    /// Peers in rooms, in the whole fleet.
    pub peers: u64,
    /// Peers in rooms on this instance.
    pub local_peers: u64,
    /// Instances of the fleet, this one included.
    pub instances: u64,
    /// Whether joins are taken.
    pub ready: bool,
    /// Joins of this instance's peers.
    pub joins: u64,
    /// Leaves of this instance's peers (closing counts).
    pub leaves: u64,
    /// Client messages taken (not dropped by the rate limit).
    pub messages_received: u64,
    /// Messages sent to clients.
    pub messages_sent: u64,
    /// Offers, answers and candidates relayed.
    pub relayed: [u64; 3],
    /// Errors sent, by code (in the order of [`ErrorCode::ALL`]).
    pub errors: [u64; ErrorCode::ALL.len()],
    /// Client messages dropped by the rate limit.
    pub dropped_rate_limited: u64,
    /// Connections closed for staying in no room.
    pub idle_closed: u64,
    /// Bus messages published and received.
    pub bus_published: u64,
    /// Bus messages received.
    pub bus_received: u64,
    /// Instances declared dead.
    pub instances_lost: u64,
}

impl HubMetrics {
    /// The Prometheus text exposition format; `extra` is appended (the driver's own lines).
    pub fn render(&self, extra: &str) -> String {
        let mut s = String::new();
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "rooms_connections",
            "Open WebSocket connections.",
            self.connections,
        );
        gauge("rooms_rooms", "Rooms with peers, fleet-wide.", self.rooms);
        gauge("rooms_peers", "Peers in rooms, fleet-wide.", self.peers);
        gauge(
            "rooms_local_peers",
            "Peers in rooms on this instance.",
            self.local_peers,
        );
        gauge(
            "rooms_instances",
            "Instances of the fleet seen alive, this one included.",
            self.instances,
        );
        gauge(
            "rooms_ready",
            "1 when joins are taken.",
            u64::from(self.ready),
        );
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "rooms_joins_total",
            "Joins of this instance's peers.",
            self.joins,
        );
        counter(
            "rooms_leaves_total",
            "Leaves of this instance's peers.",
            self.leaves,
        );
        counter(
            "rooms_messages_received_total",
            "Client messages taken.",
            self.messages_received,
        );
        counter(
            "rooms_messages_sent_total",
            "Messages sent to clients.",
            self.messages_sent,
        );
        counter(
            "rooms_rate_limited_total",
            "Client messages dropped by the rate limit.",
            self.dropped_rate_limited,
        );
        counter(
            "rooms_idle_closed_total",
            "Connections closed for staying in no room.",
            self.idle_closed,
        );
        counter(
            "rooms_bus_published_total",
            "Bus messages published.",
            self.bus_published,
        );
        counter(
            "rooms_bus_received_total",
            "Bus messages received.",
            self.bus_received,
        );
        counter(
            "rooms_instances_lost_total",
            "Instances declared dead.",
            self.instances_lost,
        );
        let _ = writeln!(
            s,
            "# HELP rooms_relayed_total Signalling messages relayed, by type.\n# TYPE rooms_relayed_total counter"
        );
        for (kind, v) in ["offer", "answer", "candidate"].iter().zip(self.relayed) {
            let _ = writeln!(s, "rooms_relayed_total{{type=\"{kind}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP rooms_errors_total Errors sent to clients, by code.\n# TYPE rooms_errors_total counter"
        );
        for (code, v) in ErrorCode::ALL.iter().zip(self.errors) {
            let _ = writeln!(s, "rooms_errors_total{{code=\"{}\"}} {v}", code.as_str());
        }
        s.push_str(extra);
        s
    }
}
