//! Building a topology: networks, hosts, NAT boxes and links, validated once by
//! [`Topology::build`].

use std::collections::HashMap;
use std::net::IpAddr;

use crate::link::{Link, LinkConfig};
use crate::nat::{Nat, NatConfig};
use crate::prefix::Prefix;
use crate::sim::{Iface, Network, Node, NodeKind, Sim};

/// Names a network of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub(crate) usize);

/// Names a host or NAT box of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

/// A topology that cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// A prefix that does not parse.
    #[error("network {network}: invalid prefix {prefix:?}")]
    InvalidPrefix {
        /// The network.
        network: String,
        /// The text given.
        prefix: String,
    },
    /// A network without any prefix.
    #[error("network {network} has no prefix")]
    NetworkWithoutPrefix {
        /// The network.
        network: String,
    },
    /// An address that does not parse.
    #[error("{node}: invalid address {addr:?}")]
    InvalidAddress {
        /// The host or NAT.
        node: String,
        /// The text given.
        addr: String,
    },
    /// An address outside every prefix of the network it is put on.
    #[error("{node}: address {addr} is not inside network {network}")]
    AddressOutsideNetwork {
        /// The host or NAT.
        node: String,
        /// The address.
        addr: IpAddr,
        /// The network.
        network: String,
    },
    /// Two interfaces with the same address on one network.
    #[error("address {addr} is used twice on network {network}")]
    DuplicateAddress {
        /// The address.
        addr: IpAddr,
        /// The network.
        network: String,
    },
    /// A host with no address on any network.
    #[error("host {host} is on no network")]
    HostWithoutNetwork {
        /// The host.
        host: String,
    },
    /// A NAT with no external address.
    #[error("NAT {nat} has no external address")]
    NatWithoutExternalAddress {
        /// The NAT.
        nat: String,
    },
    /// A NAT configuration that cannot work (see [`NatConfig::validate`]).
    #[error("NAT {nat}: {reason}")]
    InvalidNatConfig {
        /// The NAT.
        nat: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A NAT whose inside and outside are the same network.
    #[error("NAT {nat} has the same network inside and outside")]
    NatInsideIsOutside {
        /// The NAT.
        nat: String,
    },
    /// Two NATs serve as gateway of one network: which one a packet leaves by is ambiguous.
    #[error("network {network} has two gateways: {first} and {second}")]
    TwoGateways {
        /// The network.
        network: String,
        /// One NAT.
        first: String,
        /// The other.
        second: String,
    },
    /// A network overlaps a network on its way out (which it could then never reach).
    #[error("network {inner} overlaps {outer}, which it reaches through NAT")]
    OverlappingNetworks {
        /// The inner network.
        inner: String,
        /// The outer network.
        outer: String,
    },
    /// Following the gateways out of a network comes back to it.
    #[error("route loop through networks {0:?}")]
    RouteLoop(Vec<String>),
    /// A network id from another topology.
    #[error("unknown network id {0}")]
    UnknownNetwork(usize),
}

#[derive(Debug)]
struct NetSpec {
    name: String,
    prefixes: Vec<String>,
}

#[derive(Debug)]
enum NodeSpec {
    Host {
        name: String,
        addrs: Vec<(NetworkId, String)>,
    },
    Nat {
        name: String,
        config: NatConfig,
        inside: (NetworkId, String),
        outside: (NetworkId, Vec<String>),
    },
}

/// A topology under construction. Methods record; [`build`](Self::build) validates and
/// returns the simulator or the first problem found.
#[derive(Debug, Default)]
pub struct Topology {
    networks: Vec<NetSpec>,
    nodes: Vec<NodeSpec>,
    links: Vec<(NodeId, NetworkId, LinkConfig)>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Topology {
        Topology::default()
    }

    /// Adds a network (a LAN segment, or the internet) covering the given prefixes, e.g.
    /// `["192.168.1.0/24"]` or `["0.0.0.0/0", "::/0"]`.
    pub fn network(&mut self, name: &str, prefixes: &[&str]) -> NetworkId {
        self.networks.push(NetSpec {
            name: name.to_owned(),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        });
        NetworkId(self.networks.len() - 1)
    }

    /// Adds a host with the given addresses; addresses on the same network share one
    /// interface.
    pub fn host(&mut self, name: &str, addrs: &[(NetworkId, &str)]) -> NodeId {
        self.nodes.push(NodeSpec::Host {
            name: name.to_owned(),
            addrs: addrs.iter().map(|(n, a)| (*n, (*a).to_owned())).collect(),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Adds a NAT box with its inside address and its external address pool.
    pub fn nat(
        &mut self,
        name: &str,
        config: NatConfig,
        inside: (NetworkId, &str),
        outside: (NetworkId, &[&str]),
    ) -> NodeId {
        self.nodes.push(NodeSpec::Nat {
            name: name.to_owned(),
            config,
            inside: (inside.0, inside.1.to_owned()),
            outside: (
                outside.0,
                outside.1.iter().map(|a| (*a).to_owned()).collect(),
            ),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Sets the egress link of `node`'s interface on `network` (default: ideal).
    pub fn link(&mut self, node: NodeId, network: NetworkId, config: LinkConfig) -> &mut Self {
        self.links.push((node, network, config));
        self
    }

    /// Sets the same egress link on every interface of every node.
    pub fn link_all(&mut self, config: LinkConfig) -> &mut Self {
        for (i, spec) in self.nodes.iter().enumerate() {
            let nets: Vec<NetworkId> = match spec {
                NodeSpec::Host { addrs, .. } => addrs.iter().map(|(n, _)| *n).collect(),
                NodeSpec::Nat {
                    inside, outside, ..
                } => vec![inside.0, outside.0],
            };
            for n in nets {
                self.links.push((NodeId(i), n, config.clone()));
            }
        }
        self
    }

    /// Validates the topology and makes a simulator seeded with `seed`.
    pub fn build(self, seed: u64) -> Result<Sim, TopologyError> {
        let mut networks = Vec::new();
        for spec in &self.networks {
            let mut prefixes = Vec::new();
            for p in &spec.prefixes {
                prefixes.push(
                    p.parse::<Prefix>()
                        .map_err(|_| TopologyError::InvalidPrefix {
                            network: spec.name.clone(),
                            prefix: p.clone(),
                        })?,
                );
            }
            if prefixes.is_empty() {
                return Err(TopologyError::NetworkWithoutPrefix {
                    network: spec.name.clone(),
                });
            }
            networks.push(Network {
                name: spec.name.clone(),
                prefixes,
                members: HashMap::new(),
                gateway: None,
            });
        }
        let network_count = networks.len();
        let net = |id: NetworkId| -> Result<usize, TopologyError> {
            if id.0 < network_count {
                Ok(id.0)
            } else {
                Err(TopologyError::UnknownNetwork(id.0))
            }
        };
        let parse = |node: &str, a: &str| -> Result<IpAddr, TopologyError> {
            a.parse().map_err(|_| TopologyError::InvalidAddress {
                node: node.to_owned(),
                addr: a.to_owned(),
            })
        };

        let mut nodes = Vec::new();
        for (idx, spec) in self.nodes.iter().enumerate() {
            let node = match spec {
                NodeSpec::Host { name, addrs } => {
                    if addrs.is_empty() {
                        return Err(TopologyError::HostWithoutNetwork { host: name.clone() });
                    }
                    let mut ifaces: Vec<Iface> = Vec::new();
                    for (n, a) in addrs {
                        let n = net(*n)?;
                        let ip = parse(name, a)?;
                        match ifaces.iter_mut().find(|i| i.network == n) {
                            Some(i) => i.addrs.push(ip),
                            None => ifaces.push(Iface::new(n, vec![ip])),
                        }
                    }
                    Node::new(name.clone(), ifaces, NodeKind::host())
                }
                NodeSpec::Nat {
                    name,
                    config,
                    inside,
                    outside,
                } => {
                    let (inn, out) = (net(inside.0)?, net(outside.0)?);
                    if inn == out {
                        return Err(TopologyError::NatInsideIsOutside { nat: name.clone() });
                    }
                    if outside.1.is_empty() {
                        return Err(TopologyError::NatWithoutExternalAddress { nat: name.clone() });
                    }
                    config
                        .validate()
                        .map_err(|reason| TopologyError::InvalidNatConfig {
                            nat: name.clone(),
                            reason,
                        })?;
                    let inside_ip = parse(name, &inside.1)?;
                    let external = outside
                        .1
                        .iter()
                        .map(|a| parse(name, a))
                        .collect::<Result<Vec<_>, _>>()?;
                    if let Some((first, _)) = networks[inn].gateway {
                        let first: &Node = &nodes[first];
                        return Err(TopologyError::TwoGateways {
                            network: networks[inn].name.clone(),
                            first: first.name.clone(),
                            second: name.clone(),
                        });
                    }
                    networks[inn].gateway = Some((idx, 0));
                    let ifaces = vec![
                        Iface::new(inn, vec![inside_ip]),
                        Iface::new(out, external.clone()),
                    ];
                    Node::new(
                        name.clone(),
                        ifaces,
                        NodeKind::Nat(Box::new(Nat::new(config.clone(), external))),
                    )
                }
            };
            for (i, iface) in node.ifaces.iter().enumerate() {
                let network = &mut networks[iface.network];
                for ip in &iface.addrs {
                    if !network.prefixes.iter().any(|p| p.contains(*ip)) {
                        return Err(TopologyError::AddressOutsideNetwork {
                            node: node.name.clone(),
                            addr: *ip,
                            network: network.name.clone(),
                        });
                    }
                    if network.members.insert(*ip, (idx, i)).is_some() {
                        return Err(TopologyError::DuplicateAddress {
                            addr: *ip,
                            network: network.name.clone(),
                        });
                    }
                }
            }
            nodes.push(node);
        }

        // Follow the gateways out of every network: no loops, no overlap with what lies
        // outside (a /0 network stands for "everything else" and overlaps nothing).
        let outside_of = |n: usize| -> Option<usize> {
            networks[n]
                .gateway
                .map(|(node, _)| nodes[node].ifaces[1].network)
        };
        for start in 0..networks.len() {
            let mut seen = vec![start];
            let mut cur = start;
            while let Some(next) = outside_of(cur) {
                if seen.contains(&next) {
                    seen.push(next);
                    return Err(TopologyError::RouteLoop(
                        seen.iter().map(|&n| networks[n].name.clone()).collect(),
                    ));
                }
                let overlap = networks[start].prefixes.iter().any(|a| {
                    networks[next]
                        .prefixes
                        .iter()
                        .any(|b| !a.is_empty() && !b.is_empty() && a.overlaps(b))
                });
                if overlap {
                    return Err(TopologyError::OverlappingNetworks {
                        inner: networks[start].name.clone(),
                        outer: networks[next].name.clone(),
                    });
                }
                seen.push(next);
                cur = next;
            }
        }

        for (node, network, config) in self.links {
            let n = net(network)?;
            if let Some(iface) = nodes
                .get_mut(node.0)
                .and_then(|nd| nd.ifaces.iter_mut().find(|i| i.network == n))
            {
                iface.link = Link::new(config);
            }
        }
        Ok(Sim::new(networks, nodes, seed))
    }
}
