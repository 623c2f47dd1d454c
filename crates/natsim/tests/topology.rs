//! Bad configurations fail when the topology is built, with a clear error.

use natsim::{NatConfig, Preset, Topology, TopologyError};

fn nat() -> NatConfig {
    NatConfig::preset(Preset::FullCone)
}

#[test]
fn nat_without_external_address() {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    t.nat("nat", nat(), (home, "192.168.1.1"), (internet, &[]));
    let err = t.build(1).unwrap_err();
    assert_eq!(
        err,
        TopologyError::NatWithoutExternalAddress { nat: "nat".into() }
    );
    assert_eq!(err.to_string(), "NAT nat has no external address");
}

#[test]
fn overlapping_networks() {
    let mut t = Topology::new();
    let carrier = t.network("carrier", &["10.0.0.0/8"]);
    let home = t.network("home", &["10.1.0.0/16"]);
    t.nat(
        "home-nat",
        nat(),
        (home, "10.1.0.1"),
        (carrier, &["10.64.0.2"]),
    );
    assert_eq!(
        t.build(1).unwrap_err(),
        TopologyError::OverlappingNetworks {
            inner: "home".into(),
            outer: "carrier".into()
        }
    );
}

#[test]
fn route_loop() {
    let mut t = Topology::new();
    let a = t.network("a", &["10.0.0.0/24"]);
    let b = t.network("b", &["10.0.1.0/24"]);
    t.nat("ab", nat(), (a, "10.0.0.1"), (b, &["10.0.1.1"]));
    t.nat("ba", nat(), (b, "10.0.1.2"), (a, &["10.0.0.2"]));
    assert_eq!(
        t.build(1).unwrap_err(),
        TopologyError::RouteLoop(vec!["a".into(), "b".into(), "a".into()])
    );
}

#[test]
fn host_on_no_network() {
    let mut t = Topology::new();
    t.network("internet", &["0.0.0.0/0"]);
    t.host("lonely", &[]);
    assert_eq!(
        t.build(1).unwrap_err(),
        TopologyError::HostWithoutNetwork {
            host: "lonely".into()
        }
    );
}

#[test]
fn other_mistakes() {
    let mut t = Topology::new();
    let lan = t.network("lan", &["192.168.1.0/24"]);
    t.host("h", &[(lan, "10.0.0.1")]);
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::AddressOutsideNetwork { .. }
    ));

    let mut t = Topology::new();
    let lan = t.network("lan", &["192.168.1.0/24"]);
    t.host("a", &[(lan, "192.168.1.5")]);
    t.host("b", &[(lan, "192.168.1.5")]);
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::DuplicateAddress { .. }
    ));

    let mut t = Topology::new();
    t.network("bad", &["192.168.1.0/40"]);
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::InvalidPrefix { .. }
    ));

    let mut t = Topology::new();
    let lan = t.network("lan", &["192.168.1.0/24"]);
    t.host("h", &[(lan, "not-an-ip")]);
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::InvalidAddress { .. }
    ));

    let mut t = Topology::new();
    let inet = t.network("internet", &["0.0.0.0/0"]);
    let lan = t.network("lan", &["192.168.1.0/24"]);
    t.nat("one", nat(), (lan, "192.168.1.1"), (inet, &["203.0.113.1"]));
    t.nat("two", nat(), (lan, "192.168.1.2"), (inet, &["203.0.113.2"]));
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::TwoGateways { .. }
    ));

    let mut t = Topology::new();
    let lan = t.network("lan", &["192.168.1.0/24"]);
    t.nat("self", nat(), (lan, "192.168.1.1"), (lan, &["192.168.1.2"]));
    assert!(matches!(
        t.build(1).unwrap_err(),
        TopologyError::NatInsideIsOutside { .. }
    ));
}

#[test]
fn nested_nat_builds() {
    // A home NAT behind a carrier-grade NAT: fine, and the home may reuse any private range
    // that does not overlap the carrier's.
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let carrier = t.network("carrier", &["100.64.0.0/10"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    t.nat(
        "cgn",
        NatConfig::preset(Preset::FullCone),
        (carrier, "100.64.0.1"),
        (internet, &["203.0.113.9"]),
    );
    t.nat(
        "home-nat",
        NatConfig::preset(Preset::PortRestrictedCone),
        (home, "192.168.1.1"),
        (carrier, &["100.64.0.2"]),
    );
    t.host("h", &[(home, "192.168.1.10")]);
    assert!(t.build(1).is_ok());
}

#[test]
fn invalid_nat_configurations() {
    use natsim::{MappingBehavior, PortReuse};
    type Case = (fn(&mut NatConfig), &'static str);
    let cases: Vec<Case> = vec![
        (
            |c| c.port_range = 0..=100,
            "port_range must be a non-empty range of ports from 1",
        ),
        (
            |c| c.udp_lifetime = std::time::Duration::ZERO,
            "mapping lifetimes must be positive",
        ),
        (
            |c| {
                c.port_reuse = PortReuse::PerRemote;
                c.mapping = MappingBehavior::EndpointIndependent;
            },
            "PortReuse::PerRemote needs address-and-port-dependent mapping",
        ),
        (
            |c| c.max_mappings = Some(0),
            "max_mappings of 0 lets nothing through",
        ),
    ];
    for (change, reason) in cases {
        let mut config = nat();
        change(&mut config);
        let mut t = Topology::new();
        let internet = t.network("internet", &["0.0.0.0/0"]);
        let home = t.network("home", &["192.168.1.0/24"]);
        t.nat(
            "nat",
            config,
            (home, "192.168.1.1"),
            (internet, &["203.0.113.1"]),
        );
        assert_eq!(
            t.build(1).unwrap_err(),
            TopologyError::InvalidNatConfig {
                nat: "nat".into(),
                reason
            }
        );
    }
}
