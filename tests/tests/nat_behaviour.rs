//! RFC 5780 behaviour discovery through every natsim preset, against the real STUN server
//! core of `turn-server` hosted on natsim: the probe must classify each NAT as RFC 4787 says
//! the preset behaves.

use std::time::Duration;

use natsim::{
    FilteringBehavior as F, LinkConfig, MappingBehavior as M, NatConfig, Preset, Topology,
};
use scenarios::{DiscoveryEndpoint, StunServerEndpoint};
use stun_client::discovery::Discovery;

/// A client behind one NAT with `config`, a RFC 5780 server with two public IPs; returns what
/// the probe found.
fn discover(config: NatConfig) -> Discovery {
    let mut t = Topology::new();
    let internet = t.network("internet", &["0.0.0.0/0"]);
    let home = t.network("home", &["192.168.1.0/24"]);
    t.nat(
        "nat",
        config,
        (home, "192.168.1.1"),
        (internet, &["203.0.113.1"]),
    );
    let client = t.host("client", &[(home, "192.168.1.10")]);
    let server = t.host(
        "server",
        &[(internet, "198.51.100.1"), (internet, "198.51.100.2")],
    );
    t.link_all(LinkConfig::with_latency(Duration::from_millis(10)));
    let mut sim = t.build(7).unwrap();
    sim.set_endpoint(
        server,
        StunServerEndpoint::rfc5780(
            "198.51.100.1:3478".parse().unwrap(),
            "198.51.100.2:3479".parse().unwrap(),
        ),
    );
    sim.set_endpoint(
        client,
        DiscoveryEndpoint::new(
            "192.168.1.10:5000".parse().unwrap(),
            "198.51.100.1:3478".parse().unwrap(),
        ),
    );
    sim.run_until(Duration::from_secs(60), |s| {
        s.endpoint::<DiscoveryEndpoint>(client)
            .unwrap()
            .result()
            .is_some()
    })
    .expect("the probe finishes");
    let result = sim
        .endpoint::<DiscoveryEndpoint>(client)
        .unwrap()
        .result()
        .cloned()
        .expect("finished");
    assert!(result.done);
    result
}

fn classify(preset: Preset) -> (Option<M>, Option<F>, Option<bool>) {
    let d = discover(NatConfig::preset(preset));
    assert!(!d.udp_blocked, "{preset:?}: UDP got through");
    assert_eq!(
        d.mapped.map(|m| m.ip().to_string()),
        Some("203.0.113.1".to_owned()),
        "{preset:?}: mapped to the NAT's external address"
    );
    (d.mapping, d.filtering, d.hairpinning)
}

#[test]
fn full_cone() {
    assert_eq!(
        classify(Preset::FullCone),
        (
            Some(M::EndpointIndependent),
            Some(F::EndpointIndependent),
            Some(true)
        )
    );
}

#[test]
fn restricted_cone() {
    assert_eq!(
        classify(Preset::RestrictedCone),
        (
            Some(M::EndpointIndependent),
            Some(F::AddressDependent),
            Some(true)
        )
    );
}

#[test]
fn port_restricted_cone() {
    assert_eq!(
        classify(Preset::PortRestrictedCone),
        (
            Some(M::EndpointIndependent),
            Some(F::AddressAndPortDependent),
            Some(true)
        )
    );
}

#[test]
fn symmetric() {
    // The hairpin probe cannot succeed through a symmetric NAT even though it hairpins: the probe
    // leaves by a new mapping, whose address the filter of the first mapping has never seen.
    assert_eq!(
        classify(Preset::Symmetric),
        (
            Some(M::AddressAndPortDependent),
            Some(F::AddressAndPortDependent),
            Some(false)
        )
    );
}

#[test]
fn linux_masquerade_looks_endpoint_independent() {
    // MASQUERADE keeps the source port while the 5-tuple is unique, so one client alone sees the
    // same external port towards every destination.
    assert_eq!(
        classify(Preset::LinuxMasquerade),
        (
            Some(M::EndpointIndependent),
            Some(F::AddressAndPortDependent),
            Some(true)
        )
    );
}

#[test]
fn firewalls_block_udp() {
    for preset in [Preset::UdpBlocked, Preset::OnlyTcp443Outbound] {
        let d = discover(NatConfig::preset(preset));
        assert!(d.udp_blocked, "{preset:?}");
        assert_eq!((d.mapping, d.filtering), (None, None));
    }
}

#[test]
fn hairpinning_off_is_detected() {
    let mut config = NatConfig::preset(Preset::FullCone);
    config.hairpinning = false;
    assert_eq!(discover(config).hairpinning, Some(false));
    let mut config = NatConfig::preset(Preset::FullCone);
    config.hairpinning = true;
    assert_eq!(discover(config).hairpinning, Some(true));
}

#[test]
fn address_dependent_mapping() {
    let mut config = NatConfig::preset(Preset::PortRestrictedCone);
    config.mapping = M::AddressDependent;
    config.preserve_port = false;
    let d = discover(config);
    assert_eq!(d.mapping, Some(M::AddressDependent));
}
