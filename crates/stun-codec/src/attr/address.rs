//! Address attributes (RFC 8489 §14.1, §14.2): plain and XOR-ed, IPv4 and IPv6.
//!
//! ```text
//! 0x00            reserved
//! 0x01 | 0x02     family: IPv4 | IPv6
//! port            16 bits (XOR-ed with the top 16 bits of the magic cookie)
//! address         32 or 128 bits (XOR-ed with the cookie, or cookie ‖ transaction id)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{AttributeError, AttributeType, TransactionId, MAGIC_COOKIE};

const FAMILY_V4: u8 = 0x01;
const FAMILY_V6: u8 = 0x02;

fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(tid.as_bytes());
    mask
}

pub(crate) fn decode_address(
    attr_type: AttributeType,
    value: &[u8],
    tid: Option<&TransactionId>,
) -> Result<SocketAddr, AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::InvalidLength {
            attr_type,
            expected: "8 (IPv4) or 20 (IPv6)",
            actual: value.len(),
        });
    }
    let mut port = u16::from_be_bytes([value[2], value[3]]);
    if tid.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match value[1] {
        FAMILY_V4 => {
            let v = super::fixed::<8>(attr_type, value, "8 for IPv4")?;
            let mut b = [v[4], v[5], v[6], v[7]];
            if tid.is_some() {
                for (x, m) in b.iter_mut().zip(MAGIC_COOKIE.to_be_bytes()) {
                    *x ^= m;
                }
            }
            IpAddr::V4(Ipv4Addr::from(b))
        }
        FAMILY_V6 => {
            let v = super::fixed::<20>(attr_type, value, "20 for IPv6")?;
            let mut b = [0u8; 16];
            b.copy_from_slice(&v[4..]);
            if let Some(tid) = tid {
                for (x, m) in b.iter_mut().zip(xor_mask(tid)) {
                    *x ^= m;
                }
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        family => return Err(AttributeError::UnknownFamily { attr_type, family }),
    };
    Ok(SocketAddr::new(ip, port))
}

pub(crate) fn address_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

pub(crate) fn encode_address(addr: &SocketAddr, out: &mut [u8], tid: Option<&TransactionId>) {
    out[0] = 0;
    let mut port = addr.port();
    if tid.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_V4;
            let mut b = ip.octets();
            if tid.is_some() {
                for (x, m) in b.iter_mut().zip(MAGIC_COOKIE.to_be_bytes()) {
                    *x ^= m;
                }
            }
            out[4..8].copy_from_slice(&b);
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_V6;
            let mut b = ip.octets();
            if let Some(tid) = tid {
                for (x, m) in b.iter_mut().zip(xor_mask(tid)) {
                    *x ^= m;
                }
            }
            out[4..20].copy_from_slice(&b);
        }
    }
}

macro_rules! address_attribute {
    ($(#[$doc:meta])* $name:ident, $const:ident, xor = $xor:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);

        impl<'a> crate::Attribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$const;
            fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, AttributeError> {
                decode_address(Self::TYPE, value, $xor.then_some(tid)).map($name)
            }
            fn value_len(&self) -> usize {
                address_len(&self.0)
            }
            fn encode(&self, out: &mut [u8], tid: &TransactionId) {
                encode_address(&self.0, out, $xor.then_some(tid))
            }
        }
    };
}

address_attribute!(
    /// MAPPED-ADDRESS (RFC 8489 §14.1): the reflexive address, not XOR-ed; sent for RFC 3489 clients.
    MappedAddress, MAPPED_ADDRESS, xor = false
);
address_attribute!(
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the reflexive transport address, XOR-ed.
    XorMappedAddress, XOR_MAPPED_ADDRESS, xor = true
);
address_attribute!(
    /// ALTERNATE-SERVER (RFC 8489 §14.15): the server to try instead (with 300 Try Alternate).
    AlternateServer, ALTERNATE_SERVER, xor = false
);
address_attribute!(
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3): a peer's address; may be repeated in CreatePermission.
    XorPeerAddress, XOR_PEER_ADDRESS, xor = true
);
address_attribute!(
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5): the relayed transport address; one per family.
    XorRelayedAddress, XOR_RELAYED_ADDRESS, xor = true
);
address_attribute!(
    /// RESPONSE-ORIGIN (RFC 5780 §7.3): the address the response was sent from.
    ResponseOrigin, RESPONSE_ORIGIN, xor = false
);
address_attribute!(
    /// OTHER-ADDRESS (RFC 5780 §7.4): the server's alternate address (different IP and port).
    OtherAddress, OTHER_ADDRESS, xor = false
);
