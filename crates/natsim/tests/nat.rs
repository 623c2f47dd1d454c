//! NAT boxes: lifetimes, refresh, port assignment, pooling, caps, hairpinning, TCP, firewalls.

mod common;

use common::*;
use natsim::scripted::Scripted;
use natsim::{
    ConnectionId, LinkConfig, MappingBehavior, NatConfig, Output, Pooling, PortSelection, Preset,
};

fn echo_servers(w: &mut World) {
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::echoing());
    }
}

fn sources_seen_by(w: &World, server: usize) -> Vec<std::net::SocketAddr> {
    w.sim
        .endpoint::<Scripted>(w.servers[server])
        .unwrap()
        .datagrams()
        .into_iter()
        .map(|(_, remote, _)| remote)
        .collect()
}

#[test]
fn mapping_expires_after_its_lifetime() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    let client = addr(&format!("{CLIENT_A}:5000"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(secs(0), client, addr("198.51.100.1:7"), b"hi"),
    );
    let server = Scripted::echoing().send_at(
        secs(125),
        addr("198.51.100.1:7"),
        addr("203.0.113.1:5000"),
        b"late",
    );
    w.sim.set_endpoint(w.servers[0], server);
    w.sim.run_for(secs(1));
    assert_eq!(w.sim.nat_table(w.nat).len(), 1);
    // The mapping was made at 10 ms (one link away); its 120 s lifetime ends at 120.01 s.
    w.sim.run_for(secs(119) + ms(500));
    assert!(
        w.sim.nat_table(w.nat).is_empty(),
        "{}",
        w.sim.nat_dump(w.nat)
    );
    w.sim.run_for(secs(10));
    let got = w
        .sim
        .endpoint::<Scripted>(w.clients[0])
        .unwrap()
        .datagrams();
    assert_eq!(
        got.len(),
        1,
        "only the echo, not the late datagram: {got:?}"
    );
    let stats = w.sim.nat_stats(w.nat).unwrap();
    assert_eq!(
        (
            stats.mappings_created,
            stats.mappings_expired,
            stats.filtered
        ),
        (1, 1, 1)
    );
}

#[test]
fn outbound_traffic_refreshes_the_mapping() {
    let mut w = world(NatConfig::preset(Preset::Symmetric));
    let mut client = Scripted::new();
    for i in 0..7 {
        client = client.send_at(
            secs(60 * i),
            addr(&format!("{CLIENT_A}:5000")),
            addr("198.51.100.1:7"),
            b"keepalive",
        );
    }
    w.sim.set_endpoint(w.clients[0], client);
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(361));
    let seen = sources_seen_by(&w, 0);
    assert_eq!(seen.len(), 7);
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "one external endpoint: {seen:?}"
    );
    let stats = w.sim.nat_stats(w.nat).unwrap();
    assert_eq!((stats.mappings_created, stats.mappings_expired), (1, 0));
    w.sim.run_for(secs(121));
    assert!(w.sim.nat_table(w.nat).is_empty());
}

#[test]
fn inbound_refresh_is_optional() {
    for inbound_refresh in [false, true] {
        let mut config = NatConfig::preset(Preset::PortRestrictedCone);
        config.inbound_refresh = inbound_refresh;
        let mut w = world(config);
        w.sim.set_endpoint(
            w.clients[0],
            Scripted::new().send_at(
                secs(0),
                addr(&format!("{CLIENT_A}:5000")),
                addr("198.51.100.1:7"),
                b"open",
            ),
        );
        let mut server = Scripted::new();
        for i in 1..=5 {
            server = server.send_at(
                secs(50 * i),
                addr("198.51.100.1:7"),
                addr("203.0.113.1:5000"),
                b"push",
            );
        }
        w.sim.set_endpoint(w.servers[0], server);
        w.sim.run_for(secs(301));
        let got = w
            .sim
            .endpoint::<Scripted>(w.clients[0])
            .unwrap()
            .datagrams()
            .len();
        // Without inbound refresh the mapping dies 120 s after the client's only datagram: the
        // pushes at 50 and 100 s arrive, those from 150 s on do not. With it, each push keeps
        // the mapping alive for the next.
        assert_eq!(
            got,
            if inbound_refresh { 5 } else { 2 },
            "inbound_refresh={inbound_refresh}"
        );
    }
}

#[test]
fn linux_masquerade_keeps_ports_until_a_5_tuple_collides() {
    let mut w = world(NatConfig::preset(Preset::LinuxMasquerade));
    let server = addr("198.51.100.1:7");
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(secs(0), addr(&format!("{CLIENT_A}:5000")), server, b"a")
            .send_at(
                secs(0),
                addr(&format!("{CLIENT_A}:5000")),
                addr("198.51.100.2:7"),
                b"a2",
            ),
    );
    w.sim.set_endpoint(
        w.clients[1],
        Scripted::new()
            .send_at(secs(1), addr(&format!("{CLIENT_B}:5000")), server, b"b")
            .send_at(
                secs(1),
                addr(&format!("{CLIENT_B}:5000")),
                addr("198.51.100.3:7"),
                b"b3",
            ),
    );
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::new());
    }
    w.sim.run_for(secs(2));
    let at_1 = sources_seen_by(&w, 0);
    assert_eq!(at_1[0], addr("203.0.113.1:5000"), "A keeps its port");
    assert_eq!(at_1[1].ip(), at_1[0].ip());
    assert_ne!(
        at_1[1].port(),
        5000,
        "B collides on the same 5-tuple and gets another port"
    );
    assert_eq!(
        sources_seen_by(&w, 1),
        vec![addr("203.0.113.1:5000")],
        "A keeps 5000 elsewhere"
    );
    assert_eq!(
        sources_seen_by(&w, 2),
        vec![addr("203.0.113.1:5000")],
        "B reuses 5000 where it does not collide"
    );
}

#[test]
fn symmetric_nat_assigns_sequential_ports() {
    let mut w = world(NatConfig::preset(Preset::Symmetric));
    let from = addr(&format!("{CLIENT_A}:5000"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(secs(0), from, addr("198.51.100.1:7"), b"1")
            .send_at(secs(0), from, addr("198.51.100.1:8"), b"2")
            .send_at(secs(0), from, addr("198.51.100.2:7"), b"3"),
    );
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::new());
    }
    w.sim.run_for(secs(1));
    let mut ports: Vec<u16> = sources_seen_by(&w, 0)
        .into_iter()
        .chain(sources_seen_by(&w, 1))
        .map(|a| a.port())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![1024, 1025, 1026]);
    assert_eq!(w.sim.nat_table(w.nat).len(), 3);
}

#[test]
fn random_ports_and_parity() {
    let mut config = NatConfig::preset(Preset::Symmetric);
    config.port_selection = PortSelection::Random;
    config.preserve_parity = true;
    let mut w = world(config);
    let from = addr(&format!("{CLIENT_A}:5001"));
    let mut client = Scripted::new();
    for port in 1..=20 {
        client = client.send_at(secs(0), from, addr(&format!("198.51.100.1:{port}")), b"x");
    }
    w.sim.set_endpoint(w.clients[0], client);
    w.sim.set_endpoint(w.servers[0], Scripted::new());
    w.sim.run_for(secs(1));
    let ports: Vec<u16> = sources_seen_by(&w, 0).iter().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 20);
    assert!(ports.iter().all(|p| p % 2 == 1), "odd like 5001: {ports:?}");
    let mut sorted = ports.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "distinct");
    assert_ne!(ports, sorted, "random, not sequential");
}

#[test]
fn paired_and_arbitrary_pooling() {
    for pooling in [Pooling::Paired, Pooling::Arbitrary] {
        let mut config = NatConfig::preset(Preset::Symmetric);
        config.pooling = pooling;
        let mut w = world_with(
            config,
            &["203.0.113.1", "203.0.113.2"],
            LinkConfig::default(),
            3,
        );
        let from = addr(&format!("{CLIENT_A}:5000"));
        let mut client = Scripted::new();
        for port in 1..=20 {
            client = client.send_at(secs(0), from, addr(&format!("198.51.100.1:{port}")), b"x");
        }
        w.sim.set_endpoint(w.clients[0], client);
        w.sim.set_endpoint(w.servers[0], Scripted::new());
        w.sim.run_for(secs(1));
        let mut ips: Vec<_> = sources_seen_by(&w, 0).iter().map(|a| a.ip()).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(
            ips.len(),
            if pooling == Pooling::Paired { 1 } else { 2 },
            "{pooling:?}"
        );
    }
}

#[test]
fn new_flows_past_the_mapping_cap_are_dropped() {
    let mut config = NatConfig::preset(Preset::Symmetric);
    config.max_mappings = Some(2);
    let mut w = world(config);
    let from = addr(&format!("{CLIENT_A}:5000"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(secs(0), from, addr("198.51.100.1:7"), b"1")
            .send_at(secs(0), from, addr("198.51.100.2:7"), b"2")
            .send_at(secs(0), from, addr("198.51.100.3:7"), b"3"),
    );
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::new());
    }
    w.sim.run_for(secs(1));
    assert_eq!(sources_seen_by(&w, 2).len(), 0);
    assert_eq!(w.sim.nat_stats(w.nat).unwrap().dropped_no_mapping, 1);
}

#[test]
fn hairpinning_between_two_clients_of_one_nat() {
    for hairpinning in [true, false] {
        let mut config = NatConfig::preset(Preset::FullCone);
        config.hairpinning = hairpinning;
        let mut w = world(config);
        // B opens 203.0.113.1:6000 by talking to a server; A then sends to that external address.
        w.sim.set_endpoint(
            w.clients[1],
            Scripted::new().send_at(
                secs(0),
                addr(&format!("{CLIENT_B}:6000")),
                addr("198.51.100.1:7"),
                b"open",
            ),
        );
        w.sim.set_endpoint(
            w.clients[0],
            Scripted::new().send_at(
                secs(1),
                addr(&format!("{CLIENT_A}:5000")),
                addr("203.0.113.1:6000"),
                b"hairpin",
            ),
        );
        echo_servers(&mut w);
        w.sim.run_for(secs(2));
        let got: Vec<_> = w
            .sim
            .endpoint::<Scripted>(w.clients[1])
            .unwrap()
            .datagrams()
            .into_iter()
            .filter(|(_, _, d)| d == b"hairpin")
            .collect();
        let stats = w.sim.nat_stats(w.nat).unwrap();
        if hairpinning {
            assert_eq!(got.len(), 1);
            // The source is A's external endpoint, as RFC 4787 REQ-9 requires.
            assert_eq!(got[0].1, addr("203.0.113.1:5000"));
            assert_eq!(stats.hairpinned, 1);
        } else {
            assert!(got.is_empty());
            assert_eq!(stats.hairpin_dropped, 1);
        }
    }
}

#[test]
fn tcp_through_nat() {
    let mut w = world(NatConfig::preset(Preset::PortRestrictedCone));
    let server = addr("198.51.100.1:443");
    let srv = Scripted::echoing().at(secs(0), Output::TcpListen { port: 443 });
    w.sim.set_endpoint(w.servers[0], srv);
    let local = addr(&format!("{CLIENT_A}:40000"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .at(
                secs(1),
                Output::TcpConnect {
                    conn: ConnectionId(1),
                    local,
                    remote: server,
                },
            )
            .at(
                secs(2),
                Output::TcpSend {
                    conn: ConnectionId(1),
                    data: b"hello".to_vec(),
                },
            )
            .at(
                secs(3),
                Output::TcpClose {
                    conn: ConnectionId(1),
                },
            )
            // Nobody listens on port 80: refused with a reset.
            .at(
                secs(4),
                Output::TcpConnect {
                    conn: ConnectionId(2),
                    local: addr(&format!("{CLIENT_A}:40001")),
                    remote: addr("198.51.100.1:80"),
                },
            ),
    );
    // The server tries to connect to the client's external address unsolicited: filtered, so
    // the attempt is never answered.
    w.sim.set_endpoint(
        w.servers[1],
        Scripted::new().at(
            secs(5),
            Output::TcpConnect {
                conn: ConnectionId(9),
                local: addr("198.51.100.2:50000"),
                remote: addr("203.0.113.1:40000"),
            },
        ),
    );
    w.sim.run_for(secs(30));
    let client = w
        .sim
        .endpoint::<Scripted>(w.clients[0])
        .unwrap()
        .tcp_events();
    assert_eq!(
        client,
        vec![
            (ConnectionId(1), "connected".to_owned()),
            (ConnectionId(1), "data 5 bytes".to_owned()),
            (ConnectionId(2), "reset".to_owned()),
        ]
    );
    let srv = w
        .sim
        .endpoint::<Scripted>(w.servers[0])
        .unwrap()
        .tcp_events();
    assert_eq!(srv.len(), 3, "{srv:?}");
    assert!(
        srv[0].1.starts_with("accepted from 203.0.113.1:40000"),
        "{srv:?}"
    );
    assert_eq!(srv[1].1, "data 5 bytes");
    assert_eq!(srv[2].1, "closed");
    let unsolicited = w
        .sim
        .endpoint::<Scripted>(w.servers[1])
        .unwrap()
        .tcp_events();
    assert_eq!(
        unsolicited,
        vec![(ConnectionId(9), "closed".to_owned())],
        "timed out"
    );
    assert!(w.sim.nat_stats(w.nat).unwrap().filtered >= 1);
}

#[test]
fn only_tcp_443_gets_out() {
    let mut w = world(NatConfig::preset(Preset::OnlyTcp443Outbound));
    w.sim.set_endpoint(
        w.servers[0],
        Scripted::new()
            .at(secs(0), Output::TcpListen { port: 443 })
            .at(secs(0), Output::TcpListen { port: 80 }),
    );
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .at(
                secs(1),
                Output::TcpConnect {
                    conn: ConnectionId(1),
                    local: addr(&format!("{CLIENT_A}:40000")),
                    remote: addr("198.51.100.1:443"),
                },
            )
            .at(
                secs(1),
                Output::TcpConnect {
                    conn: ConnectionId(2),
                    local: addr(&format!("{CLIENT_A}:40001")),
                    remote: addr("198.51.100.1:80"),
                },
            )
            .send_at(
                secs(1),
                addr(&format!("{CLIENT_A}:5000")),
                addr("198.51.100.1:443"),
                b"udp",
            ),
    );
    w.sim.run_for(secs(30));
    let client = w
        .sim
        .endpoint::<Scripted>(w.clients[0])
        .unwrap()
        .tcp_events();
    assert_eq!(
        client,
        vec![
            (ConnectionId(1), "connected".to_owned()),
            (ConnectionId(2), "closed".to_owned())
        ]
    );
    assert_eq!(
        w.sim.nat_stats(w.nat).unwrap().blocked,
        2,
        "the TCP SYN to 80 and the UDP datagram"
    );
}

#[test]
fn nat_table_dump_is_readable() {
    let mut config = NatConfig::preset(Preset::PortRestrictedCone);
    config.mapping = MappingBehavior::AddressDependent;
    let mut w = world(config);
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(
            secs(0),
            addr(&format!("{CLIENT_A}:5000")),
            addr("198.51.100.1:7"),
            b"x",
        ),
    );
    w.sim.run_for(secs(1));
    let dump = w.sim.nat_dump(w.nat);
    assert!(
        dump.starts_with(
            "Udp 192.168.1.10:5000 -> 203.0.113.1:5000 (dst 198.51.100.1:0) expires in 119."
        ),
        "{dump}"
    );
    assert!(dump.contains("peers [198.51.100.1:7]"), "{dump}");
}

#[test]
fn nested_nats_translate_twice_and_the_carrier_hairpins() {
    use natsim::Topology;
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let carrier = t.network("carrier", &["100.64.0.0/10"]);
    let home_a = t.network("home-a", &["192.168.1.0/24"]);
    let home_b = t.network("home-b", &["192.168.1.0/24"]);
    let cgn = t.nat(
        "cgn",
        NatConfig::preset(Preset::FullCone),
        (carrier, "100.64.0.1"),
        (internet, &["203.0.113.9"]),
    );
    let nat_a = t.nat(
        "nat-a",
        NatConfig::preset(Preset::FullCone),
        (home_a, "192.168.1.1"),
        (carrier, &["100.64.0.2"]),
    );
    t.nat(
        "nat-b",
        NatConfig::preset(Preset::FullCone),
        (home_b, "192.168.1.1"),
        (carrier, &["100.64.0.3"]),
    );
    let a = t.host("a", &[(home_a, "192.168.1.10")]);
    let b = t.host("b", &[(home_b, "192.168.1.10")]);
    let server = t.host("server", &[(internet, "198.51.100.1")]);
    t.link_all(LinkConfig::with_latency(ms(5)));
    let mut sim = t.build(1).unwrap();
    let srv = Scripted::echoing();
    sim.set_endpoint(server, srv);
    // Both open a mapping through both NATs; then A sends to B's public (CGN) address, which
    // the CGN hairpins back into the carrier network and nat-b lets in (full cone).
    sim.set_endpoint(
        a,
        Scripted::new()
            .send_at(
                ms(0),
                addr("192.168.1.10:5000"),
                addr("198.51.100.1:7"),
                b"a",
            )
            .send_at(
                ms(500),
                addr("192.168.1.10:5000"),
                addr("203.0.113.9:6000"),
                b"to b",
            ),
    );
    sim.set_endpoint(
        b,
        Scripted::new().send_at(
            ms(0),
            addr("192.168.1.10:6000"),
            addr("198.51.100.1:7"),
            b"b",
        ),
    );
    sim.run_for(secs(1));
    let seen: Vec<_> = sim
        .endpoint::<Scripted>(server)
        .unwrap()
        .datagrams()
        .into_iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(
        seen,
        vec![addr("203.0.113.9:5000"), addr("203.0.113.9:6000")]
    );
    let at_b = sim.endpoint::<Scripted>(b).unwrap().datagrams();
    assert_eq!(at_b.last().unwrap().2, b"to b");
    assert_eq!(
        at_b.last().unwrap().1,
        addr("203.0.113.9:5000"),
        "A's public address"
    );
    assert_eq!(sim.nat_stats(cgn).unwrap().hairpinned, 1);
    assert_eq!(sim.nat_table(nat_a)[0].external, addr("100.64.0.2:5000"));
}

#[test]
fn tcp_simultaneous_open_through_two_nats() {
    use natsim::Topology;
    // Two hosts behind port-restricted cone NATs connect to each other's external address at
    // the same moment: the crossing SYNs open both filters (TCP hole punching).
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let ha = t.network("home-a", &["192.168.1.0/24"]);
    let hb = t.network("home-b", &["192.168.2.0/24"]);
    t.nat(
        "nat-a",
        NatConfig::preset(Preset::PortRestrictedCone),
        (ha, "192.168.1.1"),
        (internet, &["203.0.113.1"]),
    );
    t.nat(
        "nat-b",
        NatConfig::preset(Preset::PortRestrictedCone),
        (hb, "192.168.2.1"),
        (internet, &["203.0.113.2"]),
    );
    let a = t.host("a", &[(ha, "192.168.1.10")]);
    let b = t.host("b", &[(hb, "192.168.2.10")]);
    t.link_all(LinkConfig::with_latency(ms(10)));
    let mut sim = t.build(1).unwrap();
    let connect = |local: &str, remote: &str| Output::TcpConnect {
        conn: ConnectionId(1),
        local: addr(local),
        remote: addr(remote),
    };
    sim.set_endpoint(
        a,
        Scripted::new()
            .at(ms(0), connect("192.168.1.10:7000", "203.0.113.2:7000"))
            .at(
                ms(500),
                Output::TcpSend {
                    conn: ConnectionId(1),
                    data: b"ping".to_vec(),
                },
            ),
    );
    sim.set_endpoint(
        b,
        Scripted::new().at(ms(0), connect("192.168.2.10:7000", "203.0.113.1:7000")),
    );
    sim.run_for(secs(1));
    assert_eq!(
        sim.endpoint::<Scripted>(a).unwrap().tcp_events(),
        vec![(ConnectionId(1), "connected".to_owned())]
    );
    assert_eq!(
        sim.endpoint::<Scripted>(b).unwrap().tcp_events(),
        vec![
            (ConnectionId(1), "connected".to_owned()),
            (ConnectionId(1), "data 4 bytes".to_owned())
        ]
    );
}

#[test]
fn the_mapping_cap_counts_live_mappings_only() {
    let mut config = NatConfig::preset(Preset::Symmetric);
    config.max_mappings = Some(1);
    let mut w = world(config);
    let from = addr(&format!("{CLIENT_A}:5000"));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(secs(0), from, addr("198.51.100.1:7"), b"1")
            .send_at(secs(1), from, addr("198.51.100.2:7"), b"2: over the cap")
            .send_at(
                secs(200),
                from,
                addr("198.51.100.3:7"),
                b"3: the first has expired",
            ),
    );
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::new());
    }
    w.sim.run_for(secs(201));
    assert_eq!(sources_seen_by(&w, 1).len(), 0);
    assert_eq!(sources_seen_by(&w, 2).len(), 1);
    let stats = w.sim.nat_stats(w.nat).unwrap();
    assert_eq!((stats.dropped_no_mapping, stats.mappings_expired), (1, 1));
}

#[test]
fn an_unassigned_lan_address_is_not_routed_out() {
    let mut w = world(NatConfig::preset(Preset::FullCone));
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new().send_at(
            secs(0),
            addr(&format!("{CLIENT_A}:5000")),
            addr("192.168.1.99:7"),
            b"nobody",
        ),
    );
    w.sim.run_for(secs(1));
    assert!(w.sim.nat_table(w.nat).is_empty(), "no mapping for it");
    assert_eq!(w.sim.stats().no_route, 1);
}

#[test]
fn a_flushed_nat_maps_the_same_flow_anew() {
    let mut w = world(NatConfig::preset(Preset::Symmetric));
    let from = addr(&format!("{CLIENT_A}:5000"));
    let to = addr("198.51.100.1:7");
    w.sim.set_endpoint(
        w.clients[0],
        Scripted::new()
            .send_at(secs(0), from, to, b"1")
            .send_at(secs(2), from, to, b"2"),
    );
    for s in w.servers {
        w.sim.set_endpoint(s, Scripted::new());
    }
    w.sim.run_for(secs(1));
    assert_eq!(w.sim.flush_nat(w.nat), 1);
    assert!(w.sim.nat_table(w.nat).is_empty());
    // Flushing a host is a no-op.
    assert_eq!(w.sim.flush_nat(w.clients[0]), 0);
    w.sim.run_for(secs(2));
    let ports: Vec<u16> = sources_seen_by(&w, 0).iter().map(|a| a.port()).collect();
    // The same flow, a new mapping on the next port: the server sees a new source.
    assert_eq!(ports, vec![1024, 1025]);
}
