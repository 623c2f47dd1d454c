//! NAT behaviour discovery attributes (RFC 5780 §7). RESPONSE-ORIGIN and OTHER-ADDRESS are
//! address attributes and live with the others.

use super::fixed;
use crate::{AttributeError, AttributeType, TransactionId};

/// CHANGE-REQUEST (RFC 5780 §7.2): ask the server to answer from another IP and/or port.
///
/// ```text
/// 0 (29 bits) | A: change IP (0x4) | B: change port (0x2) | 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// Answer from the alternate IP address.
    pub change_ip: bool,
    /// Answer from the alternate port.
    pub change_port: bool,
}

impl<'a> crate::Attribute<'a> for ChangeRequest {
    const TYPE: AttributeType = AttributeType::CHANGE_REQUEST;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let flags = u32::from_be_bytes(fixed::<4>(Self::TYPE, value, "4")?);
        Ok(ChangeRequest {
            change_ip: flags & 0x4 != 0,
            change_port: flags & 0x2 != 0,
        })
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        let flags = u32::from(self.change_ip) << 2 | u32::from(self.change_port) << 1;
        out.copy_from_slice(&flags.to_be_bytes());
    }
}

/// RESPONSE-PORT (RFC 5780 §7.5): the port the response should go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl<'a> crate::Attribute<'a> for ResponsePort {
    const TYPE: AttributeType = AttributeType::RESPONSE_PORT;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let v = fixed::<4>(Self::TYPE, value, "4")?;
        Ok(ResponsePort(u16::from_be_bytes([v[0], v[1]])))
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out[..2].copy_from_slice(&self.0.to_be_bytes());
        out[2..].fill(0);
    }
}

/// PADDING (RFC 5780 §7.6): filler that makes a response as large as the request (or a given
/// size) to test fragmentation. Its content is meaningless; it is encoded as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Length of the value in bytes.
    pub len: u16,
}

impl<'a> crate::Attribute<'a> for Padding {
    const TYPE: AttributeType = AttributeType::PADDING;
    fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
        let len = u16::try_from(value.len()).map_err(|_| AttributeError::InvalidLength {
            attr_type: Self::TYPE,
            expected: "at most 65535",
            actual: value.len(),
        })?;
        Ok(Padding { len })
    }
    fn value_len(&self) -> usize {
        usize::from(self.len)
    }
    fn encode(&self, out: &mut [u8], _: &TransactionId) {
        out.fill(0);
    }
}
