//! Links and determinism: latency, MTU, bandwidth and queue, loss rate, duplication,
//! reordering, seeds.

mod common;

use common::*;
use natsim::scripted::{Received, Scripted};
use natsim::{LinkConfig, NatConfig, Preset};

fn arrivals(w: &World, node: natsim::NodeId) -> Vec<(std::time::Duration, Vec<u8>)> {
    w.sim
        .endpoint::<Scripted>(node)
        .unwrap()
        .received
        .iter()
        .filter_map(|r| match r {
            Received::Udp { at, data, .. } => Some((*at, data.clone())),
            Received::Tcp { .. } => None,
        })
        .collect()
}

#[test]
fn latency_adds_up_hop_by_hop() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(
            ms(5),
            addr(&format!("{CLIENT_A}:5000")),
            addr("198.51.100.1:7"),
            b"x",
        ),
    );
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(1));
    // Client link 10 ms, then the NAT's outside link 10 ms.
    assert_eq!(arrivals(&w, w.servers[0]), vec![(ms(25), b"x".to_vec())]);
}

#[test]
fn oversize_packets_are_dropped() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(ms(0), from, to, &[1; 1472]) // 20 + 8 + 1472 = 1500: fits
            .send_at(ms(1), from, to, &[2; 1473]),
    );
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(1));
    let got = arrivals(&w, w.servers[0]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), 1472);
    assert_eq!(w.sim.link_stats(w.clients[0], 0).unwrap().dropped_mtu, 1);
}

#[test]
fn bandwidth_spaces_packets_and_the_queue_is_bounded() {
    let link = LinkConfig {
        bandwidth: Some(1_000_000),
        queue_bytes: 4000,
        ..LinkConfig::default()
    };
    let mut w = world_with(
        NatConfig::preset(Preset::FullCone),
        &["203.0.113.1"],
        LinkConfig::default(),
        1,
    );
    w.sim.set_link(w.clients[0], 0, link);
    let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
    let mut client = Scripted::new();
    for i in 0..10u8 {
        client = client.send_at(ms(0), from, to, &[i; 972]); // 1000 bytes on the wire
    }
    w.sim.set_endpoint(w.clients[0], client);
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(1));
    let got = arrivals(&w, w.servers[0]);
    // 1000 bytes at 1 Mbit/s take 8 ms; a 4000-byte queue holds the first 4, then drops until
    // the transmitter frees room — all ten were offered at once, so the rest are dropped.
    assert_eq!(
        got.len(),
        4,
        "{:?}",
        got.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    let times: Vec<_> = got.iter().map(|g| g.0).collect();
    assert_eq!(times, vec![ms(8), ms(16), ms(24), ms(32)]);
    assert_eq!(w.sim.link_stats(w.clients[0], 0).unwrap().dropped_queue, 6);
}

#[test]
fn loss_rate_matches_the_configuration() {
    let link = LinkConfig {
        loss: 0.05,
        ..LinkConfig::default()
    };
    let mut w = world_with(
        NatConfig::preset(Preset::FullCone),
        &["203.0.113.1"],
        LinkConfig::default(),
        11,
    );
    w.sim.set_link(w.clients[0], 0, link);
    let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
    let mut client = Scripted::new();
    for i in 0..10_000u64 {
        client = client.send_at(ms(i), from, to, b"x");
    }
    w.sim.set_endpoint(w.clients[0], client);
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(11));
    let lost = w.sim.link_stats(w.clients[0], 0).unwrap().lost;
    assert!((400..=600).contains(&lost), "lost {lost} of 10000 at 5 %");
    assert_eq!(arrivals(&w, w.servers[0]).len() as u64, 10_000 - lost);
}

fn harsh(seed: u64) -> (u64, Vec<(std::time::Duration, Vec<u8>)>) {
    let link = LinkConfig {
        latency: ms(10),
        jitter: ms(30),
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.05,
        ..LinkConfig::default()
    };
    let mut w = world_with(
        NatConfig::preset(Preset::PortRestrictedCone),
        &["203.0.113.1"],
        link,
        seed,
    );
    let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
    let mut client = Scripted::new();
    for i in 0..500u16 {
        client = client.send_at(ms(u64::from(i) * 5), from, to, &i.to_be_bytes());
    }
    w.sim.set_endpoint(w.clients[0], client);
    let server = Scripted::echoing();
    w.sim.set_endpoint(w.servers[0], server);
    w.sim.run_for(secs(5));
    (w.sim.trace_hash(), arrivals(&w, w.clients[0]))
}

#[test]
fn same_seed_same_trace_other_seed_other_losses() {
    let (h1, a1) = harsh(1);
    let (h2, a2) = harsh(1);
    assert_eq!(h1, h2);
    assert_eq!(a1, a2);
    let (h3, a3) = harsh(2);
    assert_ne!(h1, h3);
    assert_ne!(
        a1.iter().map(|a| a.1.clone()).collect::<Vec<_>>(),
        a3.iter().map(|a| a.1.clone()).collect::<Vec<_>>(),
        "another seed loses other packets"
    );
}

#[test]
fn the_trace_records_each_hop() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    w.sim.enable_trace();
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(
            ms(0),
            addr(&format!("{CLIENT_A}:5000")),
            addr("198.51.100.1:7"),
            b"x",
        ),
    );
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(1));
    let lines: Vec<String> = w.sim.trace().iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("nat") && lines[0].contains("192.168.1.10:5000 -> 198.51.100.1:7"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("server-0") && lines[1].contains("203.0.113.1:5000 -> 198.51.100.1:7"),
        "{}",
        lines[1]
    );
}

#[test]
fn packets_to_nowhere_are_counted() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(
            ms(0),
            addr(&format!("{CLIENT_A}:5000")),
            addr("203.0.113.99:7"),
            b"x",
        ),
    );
    w.sim.run_for(secs(1));
    assert_eq!(w.sim.stats().no_route, 1);
}

#[test]
fn ipv6_hosts_and_nat66() {
    let mut t = natsim::Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0", "::/0"]);
    let home = t.network("home", &["192.168.1.0/24", "fd00::/64"]);
    t.nat(
        "nat",
        NatConfig::preset(Preset::PortRestrictedCone),
        (home, "192.168.1.1"),
        (internet, &["203.0.113.1", "2001:db8::1"]),
    );
    let client = t.host("client", &[(home, "192.168.1.10"), (home, "fd00::10")]);
    let server = t.host("server", &[(internet, "2001:db8:1::1")]);
    let mut sim = t.build(5).unwrap();
    sim.set_endpoint(
        client,
        Scripted::new().send_at(
            ms(0),
            addr("[fd00::10]:5000"),
            addr("[2001:db8:1::1]:7"),
            b"v6",
        ),
    );
    let srv = Scripted::echoing();
    sim.set_endpoint(server, srv);
    sim.run_for(secs(1));
    let seen = sim.endpoint::<Scripted>(server).unwrap().datagrams();
    assert_eq!(seen[0].1, addr("[2001:db8::1]:5000"));
    let back = sim.endpoint::<Scripted>(client).unwrap().datagrams();
    assert_eq!(
        back,
        vec![(
            addr("[fd00::10]:5000"),
            addr("[2001:db8:1::1]:7"),
            b"v6".to_vec()
        )]
    );
}

/// `duplicate` and `reorder` do what docs/natsim.md says: on the client's link, every datagram
/// arrives twice with `duplicate: 1.0`; with `reorder` some are held back `reorder_delay` and
/// overtaken, and none is lost.
#[test]
fn duplication_and_reordering() {
    let run = |link: LinkConfig| {
        let mut w = world_with(
            NatConfig::preset(Preset::FullCone),
            &["203.0.113.1"],
            LinkConfig::with_latency(ms(5)),
            3,
        );
        w.sim.set_link(w.clients[0], 0, link);
        let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
        let mut client = Scripted::new();
        for i in 0..100u8 {
            client = client.send_at(ms(u64::from(i)), from, to, &[i]);
        }
        w.sim.set_endpoint(w.clients[0], client);
        w.sim.set_endpoint(w.servers[0], Scripted::new());
        w.sim.run_for(secs(1));
        let got: Vec<u8> = arrivals(&w, w.servers[0])
            .into_iter()
            .map(|(_, d)| d[0])
            .collect();
        (got, w.sim.link_stats(w.clients[0], 0).unwrap())
    };
    let (got, stats) = run(LinkConfig {
        latency: ms(5),
        duplicate: 1.0,
        ..LinkConfig::default()
    });
    assert_eq!(got.len(), 200);
    assert_eq!(stats.duplicated, 100);
    for i in 0..100u8 {
        assert_eq!(got.iter().filter(|&&b| b == i).count(), 2);
    }
    let (got, stats) = run(LinkConfig {
        latency: ms(5),
        reorder: 0.3,
        ..LinkConfig::default()
    });
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..100).collect::<Vec<u8>>(),
        "none lost or repeated"
    );
    assert!(stats.reordered > 0);
    assert_ne!(got, sorted, "held-back datagrams are overtaken");
}
