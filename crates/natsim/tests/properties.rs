//! Properties of the NAT model and the links, over random traffic.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::*;
use natsim::scripted::{Received, Scripted};
use natsim::{FilteringBehavior, LinkConfig, MappingBehavior, NatConfig, Preset};
use proptest::prelude::*;

fn server_addr() -> impl Strategy<Value = (usize, u16)> {
    (0usize..3, 1u16..2000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Under endpoint-independent mapping every flow of one internal endpoint leaves through one
    /// external endpoint, whatever the filtering and port policy.
    #[test]
    fn eim_shares_one_external_endpoint(
        dsts in proptest::collection::vec(server_addr(), 1..30),
        filtering in prop_oneof![
            Just(FilteringBehavior::EndpointIndependent),
            Just(FilteringBehavior::AddressDependent),
            Just(FilteringBehavior::AddressAndPortDependent)
        ],
        preserve in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut config = NatConfig::preset(Preset::FullCone);
        config.mapping = MappingBehavior::EndpointIndependent;
        config.filtering = filtering;
        config.preserve_port = preserve;
        let mut w = world_with(config, &["203.0.113.1", "203.0.113.2"], LinkConfig::with_latency(ms(3)), seed);
        let from = addr(&format!("{CLIENT_A}:5000"));
        let mut client = Scripted::new();
        for (i, (s, port)) in dsts.iter().enumerate() {
            client = client.send_at(ms(i as u64), from, SocketAddr::new(SERVERS[*s].parse().unwrap(), *port), b"x");
        }
        w.sim.set_endpoint(w.clients[0], client);
        for s in w.servers {
            w.sim.set_endpoint(s, Scripted::new());
        }
        w.sim.run_for(secs(2));
        let mut seen = HashSet::new();
        for s in w.servers {
            for (_, remote, _) in w.sim.endpoint::<Scripted>(s).unwrap().datagrams() {
                seen.insert(remote);
            }
        }
        prop_assert_eq!(seen.len(), 1, "{:?}", seen);
    }

    /// Under address-and-port-dependent filtering nothing unsolicited gets in: strangers send to
    /// every external port the client uses; the client hears only from whom it talked to (and
    /// does hear their answers, so a NAT that drops everything fails).
    #[test]
    fn apdf_delivers_nothing_unsolicited(
        contacted in proptest::collection::vec(server_addr(), 1..6),
        strangers in proptest::collection::vec((server_addr(), 0usize..6), 1..40),
        mapping in prop_oneof![
            Just(MappingBehavior::EndpointIndependent),
            Just(MappingBehavior::AddressDependent),
            Just(MappingBehavior::AddressAndPortDependent)
        ],
        seed in any::<u64>(),
    ) {
        let mut config = NatConfig::preset(Preset::PortRestrictedCone);
        config.mapping = mapping;
        config.filtering = FilteringBehavior::AddressAndPortDependent;
        let mut w = world_with(config, &["203.0.113.1"], LinkConfig::with_latency(ms(2)), seed);
        let from = addr(&format!("{CLIENT_A}:5000"));
        let contacted: Vec<SocketAddr> = contacted
            .iter()
            .map(|(s, p)| SocketAddr::new(SERVERS[*s].parse().unwrap(), *p))
            .collect();
        let mut client = Scripted::new();
        for c in &contacted {
            client = client.send_at(ms(0), from, *c, b"hello");
        }
        w.sim.set_endpoint(w.clients[0], client);
        for &s in &w.servers {
            let echo = Scripted::echoing();
            w.sim.set_endpoint(s, echo);
        }
        w.sim.run_for(ms(100));
        let external: Vec<SocketAddr> = w.sim.nat_table(w.nat).iter().map(|m| m.external).collect();
        // Strangers: any server address and port not contacted, aiming at any external port.
        let mut scripts: Vec<Scripted> = (0..3).map(|_| Scripted::new()).collect();
        for ((s, port), target) in &strangers {
            let src = SocketAddr::new(SERVERS[*s].parse().unwrap(), *port);
            if contacted.contains(&src) {
                continue;
            }
            let dst = external[target % external.len()];
            scripts[*s] = std::mem::take(&mut scripts[*s]).send_at(ms(200), src, dst, b"unsolicited");
        }
        for (i, s) in scripts.into_iter().enumerate() {
            w.sim.set_endpoint(w.servers[i], s);
        }
        w.sim.run_for(secs(1));
        let got = w.sim.endpoint::<Scripted>(w.clients[0]).unwrap().datagrams();
        prop_assert_eq!(got.len(), contacted.len(), "{:?}", got);
        prop_assert!(got.iter().all(|(_, from, data)| contacted.contains(from) && data == b"hello"), "{:?}", got);
    }

    /// Nothing arrives twice unless duplication is on, whatever the loss, jitter and reordering.
    #[test]
    fn no_duplicates_without_duplication(
        loss in 0.0f64..0.3,
        jitter in 0u64..40,
        reorder in 0.0f64..0.3,
        n in 1u16..300,
        seed in any::<u64>(),
    ) {
        let link = LinkConfig { latency: ms(5), jitter: ms(jitter), loss, reorder, ..LinkConfig::default() };
        let mut w = world_with(NatConfig::preset(Preset::FullCone), &["203.0.113.1"], link, seed);
        let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
        let mut client = Scripted::new();
        for i in 0..n {
            client = client.send_at(ms(u64::from(i)), from, to, &i.to_be_bytes());
        }
        w.sim.set_endpoint(w.clients[0], client);
        w.sim.set_endpoint(w.servers[0], Scripted::new());
        w.sim.run_for(secs(2));
        let got = w.sim.endpoint::<Scripted>(w.servers[0]).unwrap().datagrams();
        let unique: HashSet<Vec<u8>> = got.iter().map(|g| g.2.clone()).collect();
        prop_assert_eq!(unique.len(), got.len());
        // And every datagram not lost on the way (the client's link, then the NAT's) arrived.
        let lost: u64 = [(w.clients[0], 0), (w.nat, 0), (w.nat, 1)]
            .iter()
            .filter_map(|&(node, iface)| w.sim.link_stats(node, iface))
            .map(|s| s.lost)
            .sum();
        prop_assert_eq!(got.len() as u64 + lost, u64::from(n));
    }

    /// With no loss, no jitter, no reordering and no filtering, everything arrives, in the order
    /// it was sent, each after the same delay.
    #[test]
    fn ideal_paths_deliver_everything_in_order(
        gaps in proptest::collection::vec(0u64..50, 1..200),
        latency in 0u64..30,
        seed in any::<u64>(),
    ) {
        let mut w = world_with(NatConfig::preset(Preset::FullCone), &["203.0.113.1"], LinkConfig::with_latency(ms(latency)), seed);
        let (from, to) = (addr(&format!("{CLIENT_A}:5000")), addr("198.51.100.1:7"));
        let mut client = Scripted::new();
        let mut t = 0;
        let mut sent = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            sent.push(ms(t));
            client = client.send_at(ms(t), from, to, &(i as u32).to_be_bytes());
        }
        w.sim.set_endpoint(w.clients[0], client);
        w.sim.set_endpoint(w.servers[0], Scripted::new());
        w.sim.run_for(secs(20));
        let got: Vec<_> = w.sim.endpoint::<Scripted>(w.servers[0]).unwrap().received.iter().filter_map(|r| match r {
            Received::Udp { at, data, .. } => Some((*at, u32::from_be_bytes(data[..4].try_into().unwrap()))),
            Received::Tcp { .. } => None,
        }).collect();
        prop_assert_eq!(got.len(), sent.len());
        for (i, (at, id)) in got.iter().enumerate() {
            prop_assert_eq!(*id as usize, i);
            prop_assert_eq!(*at, sent[i] + ms(2 * latency));
        }
    }
}
