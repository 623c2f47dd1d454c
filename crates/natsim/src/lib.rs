//! A deterministic network and NAT emulator in virtual time.
//!
//! Hosts, LAN segments, NAT boxes nested to any depth, links with latency, jitter, loss,
//! duplication, reordering, MTU and bandwidth, and TCP at the connection level — all driven by
//! one event queue and one seeded random generator, so the same topology and seed give the same
//! packet trace every time. Hosts run sans-IO cores through the [`Endpoint`] trait: the same
//! cores the real drivers run.
//!
//! NAT boxes follow RFC 4787: mapping and filtering behaviour, port preservation, sequential or
//! random ports, parity, address pooling, mapping lifetime and refresh, hairpinning, a mapping
//! cap; [`Preset`] gives the classic types and Linux `MASQUERADE`. See `docs/natsim.md`.
//!
//! # Two hosts behind different NATs exchanging UDP
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use natsim::{Endpoint, Input, LinkConfig, NatConfig, Output, Preset, Topology};
//!
//! /// Sends "hello" to `peer` every 50 ms until it hears from it.
//! struct Hello { local: SocketAddr, peer: SocketAddr, next: Option<Instant>, heard: bool, out: Vec<Output> }
//!
//! impl Endpoint for Hello {
//!     fn start(&mut self, now: Instant) { self.next = Some(now); }
//!     fn handle_input(&mut self, _now: Instant, input: Input<'_>) {
//!         if let Input::Udp { data: b"hello", .. } = input { self.heard = true; self.next = None; }
//!     }
//!     fn handle_timeout(&mut self, now: Instant) {
//!         self.out.push(Output::Udp { local: self.local, remote: self.peer, data: b"hello".to_vec() });
//!         self.next = Some(now + Duration::from_millis(50));
//!     }
//!     fn poll_output(&mut self) -> Option<Output> { self.out.pop() }
//!     fn poll_timeout(&self) -> Option<Instant> { self.next }
//! }
//!
//! let mut t = Topology::new();
//! let internet = t.network("internet", &["0.0.0.0/0"]);
//! let home_a = t.network("home-a", &["192.168.1.0/24"]);
//! let home_b = t.network("home-b", &["192.168.1.0/24"]); // the same private range: fine, behind NAT
//! let _nat_a = t.nat("nat-a", NatConfig::preset(Preset::PortRestrictedCone), (home_a, "192.168.1.1"), (internet, &["203.0.113.1"]));
//! let _nat_b = t.nat("nat-b", NatConfig::preset(Preset::FullCone), (home_b, "192.168.1.1"), (internet, &["203.0.113.2"]));
//! let alice = t.host("alice", &[(home_a, "192.168.1.10")]);
//! let bob = t.host("bob", &[(home_b, "192.168.1.20")]);
//! t.link_all(LinkConfig::with_latency(Duration::from_millis(10)));
//! let mut sim = t.build(42)?;
//!
//! // Both NATs preserve ports, so each side can guess the other's external address.
//! let hello = |local: &str, peer: &str| Hello {
//!     local: local.parse().unwrap(), peer: peer.parse().unwrap(), next: None, heard: false, out: vec![],
//! };
//! sim.set_endpoint(alice, hello("192.168.1.10:5000", "203.0.113.2:6000"));
//! sim.set_endpoint(bob, hello("192.168.1.20:6000", "203.0.113.1:5000"));
//!
//! let took = sim.run_until(Duration::from_secs(5), |sim| {
//!     sim.endpoint::<Hello>(alice).unwrap().heard && sim.endpoint::<Hello>(bob).unwrap().heard
//! })?;
//! assert!(took < Duration::from_millis(200));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod endpoint;
mod link;
mod nat;
mod packet;
mod prefix;
pub mod scripted;
mod sim;
mod topology;

pub use endpoint::{Endpoint, Input, Output};
pub use link::{LinkConfig, LinkStats};
pub use nat::{
    FilteringBehavior, MappingBehavior, MappingInfo, NatConfig, NatStats, Policy, Pooling,
    PortReuse, PortSelection, Preset,
};
pub use packet::{Packet, Payload, Protocol, TcpSegment};
pub use prefix::{Prefix, PrefixError};
pub use sans_io::ConnectionId;
pub use sim::{Sim, SimStats, Timeout, TraceEntry, TCP_CONNECT_TIMEOUT};
pub use topology::{NetworkId, NodeId, Topology, TopologyError};
