//! The 20-byte STUN header: message type (method and class), length, magic cookie,
//! transaction id (RFC 8489 §5, §6).

use core::fmt;

/// The magic cookie, bytes 4..8 of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header in bytes.
pub const HEADER_LEN: usize = 20;

/// A STUN method: the 12-bit part of the message type (RFC 8489 §5).
///
/// Open: any 12-bit value is representable, the registered ones have constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656 §7).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656 §8).
    pub const REFRESH: Method = Method(0x004);
    /// Send (RFC 8656 §11, indication only).
    pub const SEND: Method = Method(0x006);
    /// Data (RFC 8656 §11, indication only).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656 §10).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656 §12).
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// Connect (RFC 6062 §4.3).
    pub const CONNECT: Method = Method(0x00A);
    /// ConnectionBind (RFC 6062 §4.4).
    pub const CONNECTION_BIND: Method = Method(0x00B);
    /// ConnectionAttempt (RFC 6062 §4.5).
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);

    /// A method from its 12-bit number; `None` if it does not fit in 12 bits.
    pub const fn new(value: u16) -> Option<Method> {
        if value <= 0x0FFF {
            Some(Method(value))
        } else {
            None
        }
    }

    /// The 12-bit method number.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// The registered name, if this is a registered method.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x001 => "Binding",
            0x003 => "Allocate",
            0x004 => "Refresh",
            0x006 => "Send",
            0x007 => "Data",
            0x008 => "CreatePermission",
            0x009 => "ChannelBind",
            0x00A => "Connect",
            0x00B => "ConnectionBind",
            0x00C => "ConnectionAttempt",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

/// The class of a message (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request (C1C0 = 0b00).
    Request,
    /// An indication (0b01).
    Indication,
    /// A success response (0b10).
    SuccessResponse,
    /// An error response (0b11).
    ErrorResponse,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }
}

/// A message type: method and class, interleaved as in RFC 8489 §5 figure 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// A message type from its parts.
    pub const fn new(method: Method, class: Class) -> MessageType {
        MessageType { method, class }
    }

    /// Decodes the 14-bit type field (the two top bits are ignored).
    pub const fn from_bits(bits: u16) -> MessageType {
        let m = bits & 0x000F | (bits & 0x00E0) >> 1 | (bits & 0x3E00) >> 2;
        let c = (bits & 0x0010) >> 4 | (bits & 0x0100) >> 7;
        let class = match c {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        };
        MessageType {
            method: Method(m),
            class,
        }
    }

    /// Encodes into the 14-bit type field.
    pub const fn to_bits(self) -> u16 {
        let m = self.method.0;
        let c = self.class.bits();
        (m & 0x000F) | (m & 0x0070) << 1 | (m & 0x0F80) << 2 | (c & 1) << 4 | (c & 2) << 7
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            Class::Request => "request",
            Class::Indication => "indication",
            Class::SuccessResponse => "success response",
            Class::ErrorResponse => "error response",
        };
        write!(f, "{} {}", self.method, class)
    }
}

/// The 96-bit transaction id (RFC 8489 §6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// The 12 bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl From<[u8; 12]> for TransactionId {
    fn from(b: [u8; 12]) -> Self {
        TransactionId(b)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_bits_round_trip() {
        for m in 0..=0x0FFF {
            for class in [
                Class::Request,
                Class::Indication,
                Class::SuccessResponse,
                Class::ErrorResponse,
            ] {
                let t = MessageType::new(Method(m), class);
                assert_eq!(MessageType::from_bits(t.to_bits()), t);
                assert_eq!(t.to_bits() & 0xC000, 0);
            }
        }
    }

    #[test]
    fn well_known_type_values() {
        // RFC 8489 §5: Binding request 0x0001, success 0x0101, error 0x0111; indication 0x0011.
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Request).to_bits(),
            0x0001
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::SuccessResponse).to_bits(),
            0x0101
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::ErrorResponse).to_bits(),
            0x0111
        );
        assert_eq!(
            MessageType::new(Method::SEND, Class::Indication).to_bits(),
            0x0016
        );
        assert_eq!(
            MessageType::new(Method::DATA, Class::Indication).to_bits(),
            0x0017
        );
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::ErrorResponse).to_bits(),
            0x0113
        );
    }
}
