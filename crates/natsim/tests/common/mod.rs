//! A small world for the tests: a home network behind one NAT, and three public servers.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use natsim::{LinkConfig, NatConfig, NodeId, Sim, Topology};

pub struct World {
    pub sim: Sim,
    pub nat: NodeId,
    pub clients: [NodeId; 2],
    pub servers: [NodeId; 3],
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub const CLIENT_A: &str = "192.168.1.10";
pub const CLIENT_B: &str = "192.168.1.11";
pub const SERVERS: [&str; 3] = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Two clients behind a NAT with `config` and the external addresses `pool`; three servers on
/// the internet; every link `link`.
pub fn world_with(config: NatConfig, pool: &[&str], link: LinkConfig, seed: u64) -> World {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    let nat = t.nat("nat", config, (home, "192.168.1.1"), (internet, pool));
    let a = t.host("client-a", &[(home, CLIENT_A)]);
    let b = t.host("client-b", &[(home, CLIENT_B)]);
    let s: Vec<NodeId> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, ip)| t.host(&format!("server-{i}"), &[(internet, ip)]))
        .collect();
    t.link_all(link);
    World {
        sim: t.build(seed).unwrap(),
        nat,
        clients: [a, b],
        servers: [s[0], s[1], s[2]],
    }
}

pub fn world(config: NatConfig) -> World {
    world_with(
        config,
        &["203.0.113.1"],
        LinkConfig::with_latency(ms(10)),
        1,
    )
}
