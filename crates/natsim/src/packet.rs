//! Packets as the simulated network carries them.

use std::net::SocketAddr;

/// TCP at the connection level: what a segment does, not its bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TcpSegment {
    /// Connection request.
    Syn,
    /// Connection accepted.
    SynAck,
    /// Connection refused or aborted.
    Rst,
    /// In-order bytes.
    Data(Vec<u8>),
    /// Orderly close.
    Fin,
}

/// The transport of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// A UDP datagram.
    Udp(Vec<u8>),
    /// A TCP segment.
    Tcp(TcpSegment),
}

/// The transport protocol, for NAT tables and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// A packet in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Source transport address (rewritten by NATs on the way).
    pub src: SocketAddr,
    /// Destination transport address (rewritten by NATs on the way in).
    pub dst: SocketAddr,
    /// What it carries.
    pub payload: Payload,
    /// Hops left before the packet is dropped (guards against routing loops).
    pub ttl: u8,
}

impl Packet {
    /// The transport protocol.
    pub fn protocol(&self) -> Protocol {
        match self.payload {
            Payload::Udp(_) => Protocol::Udp,
            Payload::Tcp(_) => Protocol::Tcp,
        }
    }

    /// Size on the wire: IP and transport headers (20 + 8 for UDP, 20 + 20 for TCP; 40 for an
    /// IPv6 header) plus the payload. Used for MTU and bandwidth.
    pub fn wire_len(&self) -> usize {
        let ip = if self.src.is_ipv4() { 20 } else { 40 };
        match &self.payload {
            Payload::Udp(d) => ip + 8 + d.len(),
            Payload::Tcp(TcpSegment::Data(d)) => ip + 20 + d.len(),
            Payload::Tcp(_) => ip + 20,
        }
    }
}
