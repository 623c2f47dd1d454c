//! NAT boxes as RFC 4787 describes them: mapping and filtering behaviour, port assignment,
//! pooling, mapping lifetime and refresh, hairpinning, and a cap on mappings.
//!
//! A mapping is keyed by the internal endpoint and, depending on the mapping behaviour (§4.1),
//! nothing else (endpoint-independent), the remote IP (address-dependent) or the remote IP and
//! port (address-and-port-dependent). Inbound packets to a mapping's external endpoint pass the
//! filter (§5) if the internal endpoint has sent to anyone (endpoint-independent), to the
//! source's IP (address-dependent) or to the source's IP and port (address-and-port-dependent).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;

use crate::packet::{Packet, Protocol};

/// RFC 4787's mapping (§4.1) and filtering (§5) behaviours: one vocabulary with the stack's
/// RFC 5780 client, which measures what a NAT configured with them does.
pub use stun_client::discovery::{FilteringBehavior, MappingBehavior};

/// How an external port is picked when a port cannot be (or is not to be) preserved
/// (RFC 4787 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSelection {
    /// The next free port after the last one given out.
    Sequential,
    /// A random free port.
    Random,
}

/// How external addresses are chosen from a pool of several (RFC 4787 §4.1 "pooling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// All mappings of one internal IP use the same external IP.
    Paired,
    /// Each mapping may get any external IP.
    Arbitrary,
}

/// What the box lets out at all (firewall presets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Everything.
    AllowAll,
    /// No UDP in either direction.
    UdpBlocked,
    /// Only TCP to port 443 may go out (and its answers come back).
    OnlyTcp443Outbound,
}

/// Whether two mappings may share an external port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortReuse {
    /// An external port belongs to one mapping (textbook NATs).
    Global,
    /// An external port may serve several mappings as long as their remote endpoints differ,
    /// as Linux conntrack does: the 5-tuple must be unique, not the port.
    PerRemote,
}

/// The configuration of a NAT box. [`NatConfig::preset`] gives the classic types.
#[derive(Debug, Clone, PartialEq)]
pub struct NatConfig {
    /// Mapping behaviour.
    pub mapping: MappingBehavior,
    /// Filtering behaviour.
    pub filtering: FilteringBehavior,
    /// Keep the internal port as the external port when it is free.
    pub preserve_port: bool,
    /// How to pick a port otherwise.
    pub port_selection: PortSelection,
    /// Keep the parity (odd/even) of the internal port (RFC 4787 REQ-4).
    pub preserve_parity: bool,
    /// External ports to use.
    pub port_range: RangeInclusive<u16>,
    /// How to choose among several external IPs.
    pub pooling: Pooling,
    /// Whether external ports are unique per box or per remote endpoint.
    pub port_reuse: PortReuse,
    /// How long a UDP mapping lives without traffic (RFC 4787 REQ-5: at least 2 minutes).
    pub udp_lifetime: Duration,
    /// How long a TCP mapping lives without traffic (RFC 5382: at least 2 h 4 min).
    pub tcp_lifetime: Duration,
    /// Whether inbound packets refresh a mapping too (outbound ones always do; RFC 4787 REQ-6).
    pub inbound_refresh: bool,
    /// Whether packets from inside to the box's own external endpoints are looped back in.
    pub hairpinning: bool,
    /// At most this many live mappings; new flows past it are dropped.
    pub max_mappings: Option<usize>,
    /// What may pass at all.
    pub policy: Policy,
}

/// The classic NAT types and firewalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Full cone: endpoint-independent mapping and filtering.
    FullCone,
    /// Restricted cone: endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Port-restricted cone: endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestrictedCone,
    /// Symmetric: address-and-port-dependent mapping and filtering, sequential ports.
    Symmetric,
    /// Linux `MASQUERADE`: keeps the source port while the 5-tuple stays unique, picks another
    /// port on collision; address-and-port-dependent filtering.
    LinuxMasquerade,
    /// A port-restricted cone NAT that drops all UDP.
    UdpBlocked,
    /// A port-restricted cone NAT that lets out only TCP to port 443.
    OnlyTcp443Outbound,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 7] = [
        Preset::FullCone,
        Preset::RestrictedCone,
        Preset::PortRestrictedCone,
        Preset::Symmetric,
        Preset::LinuxMasquerade,
        Preset::UdpBlocked,
        Preset::OnlyTcp443Outbound,
    ];
}

impl NatConfig {
    /// The configuration of a preset.
    pub fn preset(preset: Preset) -> NatConfig {
        use FilteringBehavior as F;
        use MappingBehavior as M;
        let base = NatConfig {
            mapping: M::EndpointIndependent,
            filtering: F::AddressAndPortDependent,
            preserve_port: true,
            port_selection: PortSelection::Sequential,
            preserve_parity: false,
            port_range: 1024..=65535,
            pooling: Pooling::Paired,
            port_reuse: PortReuse::Global,
            udp_lifetime: Duration::from_secs(120),
            tcp_lifetime: Duration::from_secs(7440),
            inbound_refresh: false,
            hairpinning: true,
            max_mappings: None,
            policy: Policy::AllowAll,
        };
        match preset {
            Preset::FullCone => NatConfig {
                filtering: F::EndpointIndependent,
                ..base
            },
            Preset::RestrictedCone => NatConfig {
                filtering: F::AddressDependent,
                ..base
            },
            Preset::PortRestrictedCone => base,
            Preset::Symmetric => NatConfig {
                mapping: M::AddressAndPortDependent,
                preserve_port: false,
                ..base
            },
            Preset::LinuxMasquerade => NatConfig {
                mapping: M::AddressAndPortDependent,
                port_selection: PortSelection::Random,
                port_reuse: PortReuse::PerRemote,
                ..base
            },
            Preset::UdpBlocked => NatConfig {
                policy: Policy::UdpBlocked,
                ..base
            },
            Preset::OnlyTcp443Outbound => NatConfig {
                policy: Policy::OnlyTcp443Outbound,
                ..base
            },
        }
    }

    /// Checks the configuration for values that cannot work; the reason if not.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.port_range.is_empty() || *self.port_range.start() == 0 {
            return Err("port_range must be a non-empty range of ports from 1");
        }
        if self.udp_lifetime.is_zero() || self.tcp_lifetime.is_zero() {
            return Err("mapping lifetimes must be positive");
        }
        if self.port_reuse == PortReuse::PerRemote
            && self.mapping != MappingBehavior::AddressAndPortDependent
        {
            // A shared external port is only unambiguous when each mapping has exactly one
            // remote endpoint.
            return Err("PortReuse::PerRemote needs address-and-port-dependent mapping");
        }
        if self.max_mappings == Some(0) {
            return Err("max_mappings of 0 lets nothing through");
        }
        Ok(())
    }

    fn lifetime(&self, proto: Protocol) -> u64 {
        let d = match proto {
            Protocol::Udp => self.udp_lifetime,
            Protocol::Tcp => self.tcp_lifetime,
        };
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counters of one NAT box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Packets translated from inside to outside.
    pub forwarded_out: u64,
    /// Packets translated from outside to inside.
    pub forwarded_in: u64,
    /// Inbound packets with no mapping or stopped by the filter.
    pub filtered: u64,
    /// Packets the policy refused (firewall presets).
    pub blocked: u64,
    /// Packets looped back in by hairpinning (and let through by the filter).
    pub hairpinned: u64,
    /// Packets to the box's own external endpoints dropped because hairpinning is off.
    pub hairpin_dropped: u64,
    /// New flows dropped for lack of a free port or because of `max_mappings`.
    pub dropped_no_mapping: u64,
    /// Mappings created.
    pub mappings_created: u64,
    /// Mappings that expired.
    pub mappings_expired: u64,
}

/// Mapping key: protocol, internal endpoint, and the part of the destination that matters.
type MapKey = (Protocol, SocketAddr, Option<SocketAddr>);

#[derive(Debug, Clone)]
struct Mapping {
    external: SocketAddr,
    expires: u64,
    /// Remote endpoints the internal endpoint sent to through this mapping.
    peers: Vec<SocketAddr>,
}

/// One line of a NAT table dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingInfo {
    /// Protocol.
    pub protocol: Protocol,
    /// Internal endpoint.
    pub internal: SocketAddr,
    /// External endpoint.
    pub external: SocketAddr,
    /// The destination part of the key (`None` for endpoint-independent mapping).
    pub destination: Option<SocketAddr>,
    /// Remote endpoints contacted through it.
    pub peers: Vec<SocketAddr>,
    /// Time left before it expires.
    pub expires_in: Duration,
}

/// The outcome of handing a packet to the box.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Send it on the outside interface.
    Out(Packet),
    /// Send it on the inside interface.
    In(Packet),
    /// Dropped (counted in [`NatStats`]).
    Drop,
}

/// A NAT box's state.
#[derive(Debug)]
pub(crate) struct Nat {
    pub(crate) config: NatConfig,
    pub(crate) external_ips: Vec<IpAddr>,
    pub(crate) stats: NatStats,
    mappings: HashMap<MapKey, Mapping>,
    /// Mappings by external endpoint, in creation order (several under `PortReuse::PerRemote`).
    by_external: HashMap<(Protocol, SocketAddr), Vec<MapKey>>,
    /// External IP of each internal IP under `Pooling::Paired`.
    paired: HashMap<IpAddr, IpAddr>,
    next_port: u16,
    next_ip: usize,
}

impl Nat {
    pub(crate) fn new(config: NatConfig, external_ips: Vec<IpAddr>) -> Nat {
        let next_port = *config.port_range.start();
        Nat {
            config,
            external_ips,
            stats: NatStats::default(),
            mappings: HashMap::new(),
            by_external: HashMap::new(),
            paired: HashMap::new(),
            next_port,
            next_ip: 0,
        }
    }

    fn destination_key(&self, dst: SocketAddr) -> Option<SocketAddr> {
        match self.config.mapping {
            MappingBehavior::EndpointIndependent => None,
            MappingBehavior::AddressDependent => Some(SocketAddr::new(dst.ip(), 0)),
            MappingBehavior::AddressAndPortDependent => Some(dst),
        }
    }

    fn allowed_out(&self, p: &Packet) -> bool {
        match self.config.policy {
            Policy::AllowAll => true,
            Policy::UdpBlocked => p.protocol() != Protocol::Udp,
            Policy::OnlyTcp443Outbound => p.protocol() == Protocol::Tcp && p.dst.port() == 443,
        }
    }

    /// Drops every mapping; returns how many there were.
    pub(crate) fn flush(&mut self) -> usize {
        let n = self.mappings.len();
        self.mappings.clear();
        self.by_external.clear();
        n
    }

    fn remove(&mut self, key: &MapKey) {
        if let Some(m) = self.mappings.remove(key) {
            let ext = (key.0, m.external);
            if let Some(keys) = self.by_external.get_mut(&ext) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.by_external.remove(&ext);
                }
            }
        }
    }

    /// The live mapping for `key`, removing it first if it has expired.
    fn live(&mut self, key: &MapKey, now: u64) -> bool {
        match self.mappings.get(key) {
            Some(m) if m.expires <= now => {
                self.remove(key);
                self.stats.mappings_expired += 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Removes every expired mapping (the outcome does not depend on the order).
    fn sweep(&mut self, now: u64) {
        let expired: Vec<MapKey> = self
            .mappings
            .iter()
            .filter(|(_, m)| m.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove(&key);
            self.stats.mappings_expired += 1;
        }
    }

    /// Whether `port` on `ip` can take a new mapping towards `dst`.
    fn port_free(
        &mut self,
        proto: Protocol,
        ip: IpAddr,
        port: u16,
        dst: SocketAddr,
        now: u64,
    ) -> bool {
        let ext = (proto, SocketAddr::new(ip, port));
        let Some(keys) = self.by_external.get(&ext).cloned() else {
            return true;
        };
        let live: Vec<MapKey> = keys.into_iter().filter(|k| self.live(k, now)).collect();
        match self.config.port_reuse {
            PortReuse::Global => live.is_empty(),
            PortReuse::PerRemote => live.iter().all(|k| !self.mappings[k].peers.contains(&dst)),
        }
    }

    fn pick_ip(&mut self, internal: IpAddr, want_v4: bool, rng: &mut impl Rng) -> Option<IpAddr> {
        let family: Vec<IpAddr> = self
            .external_ips
            .iter()
            .copied()
            .filter(|ip| ip.is_ipv4() == want_v4)
            .collect();
        if family.is_empty() {
            return None;
        }
        match self.config.pooling {
            Pooling::Paired => {
                if let Some(ip) = self.paired.get(&internal) {
                    return Some(*ip);
                }
                let ip = family[self.next_ip % family.len()];
                self.next_ip += 1;
                self.paired.insert(internal, ip);
                Some(ip)
            }
            Pooling::Arbitrary => Some(family[rng.gen_range(0..family.len())]),
        }
    }

    fn pick_port(
        &mut self,
        proto: Protocol,
        ip: IpAddr,
        internal_port: u16,
        dst: SocketAddr,
        now: u64,
        rng: &mut impl Rng,
    ) -> Option<u16> {
        let range = self.config.port_range.clone();
        if self.config.preserve_port
            && range.contains(&internal_port)
            && self.port_free(proto, ip, internal_port, dst, now)
        {
            return Some(internal_port);
        }
        let parity = self.config.preserve_parity;
        let parity_ok = move |p: u16| !parity || p % 2 == internal_port % 2;
        let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
        let span = hi - lo + 1;
        let start = match self.config.port_selection {
            PortSelection::Sequential => u32::from(self.next_port),
            PortSelection::Random => lo + rng.gen_range(0..span),
        };
        for i in 0..span {
            let port = (lo + (start - lo + i) % span) as u16;
            if parity_ok(port) && self.port_free(proto, ip, port, dst, now) {
                if self.config.port_selection == PortSelection::Sequential {
                    self.next_port = (lo + (u32::from(port) - lo + 1) % span) as u16;
                }
                return Some(port);
            }
        }
        None
    }

    /// Handles a packet leaving the inside network.
    pub(crate) fn outbound(&mut self, mut p: Packet, now: u64, rng: &mut impl Rng) -> Verdict {
        if !self.allowed_out(&p) {
            self.stats.blocked += 1;
            return Verdict::Drop;
        }
        let proto = p.protocol();
        let key = (proto, p.src, self.destination_key(p.dst));
        if !self.live(&key, now) {
            if let Some(max) = self.config.max_mappings {
                if self.mappings.len() >= max {
                    self.sweep(now);
                }
                if self.mappings.len() >= max {
                    self.stats.dropped_no_mapping += 1;
                    return Verdict::Drop;
                }
            }
            let Some(ip) = self.pick_ip(p.src.ip(), p.src.is_ipv4(), rng) else {
                self.stats.dropped_no_mapping += 1;
                return Verdict::Drop;
            };
            let Some(port) = self.pick_port(proto, ip, p.src.port(), p.dst, now, rng) else {
                self.stats.dropped_no_mapping += 1;
                return Verdict::Drop;
            };
            let external = SocketAddr::new(ip, port);
            self.mappings.insert(
                key,
                Mapping {
                    external,
                    expires: 0,
                    peers: Vec::new(),
                },
            );
            self.by_external
                .entry((proto, external))
                .or_default()
                .push(key);
            self.stats.mappings_created += 1;
        }
        let lifetime = self.config.lifetime(proto);
        let m = self.mappings.get_mut(&key).expect("live or just created");
        m.expires = now.saturating_add(lifetime);
        if !m.peers.contains(&p.dst) {
            m.peers.push(p.dst);
        }
        p.src = m.external;
        // A packet to one of our own external endpoints loops back in (hairpinning, §6).
        if self.external_ips.contains(&p.dst.ip()) {
            if !self.config.hairpinning {
                self.stats.hairpin_dropped += 1;
                return Verdict::Drop;
            }
            let verdict = self.inbound(p, now);
            if matches!(verdict, Verdict::In(_)) {
                self.stats.hairpinned += 1;
            }
            return verdict;
        }
        self.stats.forwarded_out += 1;
        Verdict::Out(p)
    }

    /// Handles a packet arriving from outside for one of the external addresses.
    pub(crate) fn inbound(&mut self, mut p: Packet, now: u64) -> Verdict {
        let proto = p.protocol();
        if self.config.policy == Policy::UdpBlocked && proto == Protocol::Udp {
            self.stats.blocked += 1;
            return Verdict::Drop;
        }
        let filtering = self.config.filtering;
        let passes = |m: &Mapping| match filtering {
            FilteringBehavior::EndpointIndependent => true,
            FilteringBehavior::AddressDependent => m.peers.iter().any(|a| a.ip() == p.src.ip()),
            FilteringBehavior::AddressAndPortDependent => m.peers.contains(&p.src),
        };
        // The live mapping behind this external endpoint that lets the sender in, found
        // without copying the list of mappings that share the endpoint.
        let keys = self.by_external.get(&(proto, p.dst));
        let found = keys.and_then(|keys| {
            keys.iter().copied().find(|k| {
                self.mappings
                    .get(k)
                    .is_some_and(|m| m.expires > now && passes(m))
            })
        });
        if let Some(key) = found {
            let m = self.mappings.get_mut(&key).expect("found above");
            if self.config.inbound_refresh {
                m.expires = now.saturating_add(self.config.lifetime(proto));
            }
            p.dst = key.1;
            self.stats.forwarded_in += 1;
            return Verdict::In(p);
        }
        // Dropped: the expired mappings behind the endpoint go now (as `live` does elsewhere).
        let expired: Vec<MapKey> = keys
            .into_iter()
            .flatten()
            .copied()
            .filter(|k| self.mappings.get(k).is_some_and(|m| m.expires <= now))
            .collect();
        for key in expired {
            self.live(&key, now);
        }
        self.stats.filtered += 1;
        Verdict::Drop
    }

    /// The live mappings, sorted for stable output.
    pub(crate) fn table(&self, now: u64) -> Vec<MappingInfo> {
        let mut rows: Vec<MappingInfo> = self
            .mappings
            .iter()
            .filter(|(_, m)| m.expires > now)
            .map(|(k, m)| MappingInfo {
                protocol: k.0,
                internal: k.1,
                external: m.external,
                destination: k.2,
                peers: m.peers.clone(),
                expires_in: Duration::from_nanos(m.expires - now),
            })
            .collect();
        rows.sort_by_key(|r| (r.protocol, r.internal, r.destination, r.external));
        rows
    }

    /// A readable dump of the table.
    pub(crate) fn dump(&self, now: u64) -> String {
        let mut out = String::new();
        for r in self.table(now) {
            let dst = r.destination.map_or("*".to_owned(), |d| d.to_string());
            let _ = writeln!(
                out,
                "{:?} {} -> {} (dst {}) expires in {:.1}s, peers {:?}",
                r.protocol,
                r.internal,
                r.external,
                dst,
                r.expires_in.as_secs_f64(),
                r.peers
            );
        }
        out
    }
}
