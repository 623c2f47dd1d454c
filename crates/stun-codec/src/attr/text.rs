//! Text attributes (RFC 8489 §14.3, §14.9, §14.10, §14.14, §14.16): UTF-8, length-limited.

use crate::{AttributeError, AttributeType, TransactionId};

fn decode_text(attr_type: AttributeType, value: &[u8], max: usize) -> Result<&str, AttributeError> {
    if value.len() > max {
        return Err(AttributeError::TooLong {
            attr_type,
            max,
            actual: value.len(),
        });
    }
    core::str::from_utf8(value).map_err(|_| AttributeError::InvalidUtf8 { attr_type })
}

macro_rules! text_attribute {
    ($(#[$doc:meta])* $name:ident, $const:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name<'a>(pub &'a str);

        impl<'a> $name<'a> {
            /// The longest value accepted on decode, in bytes.
            pub const MAX_LEN: usize = $max;

            /// The text.
            pub const fn as_str(&self) -> &'a str {
                self.0
            }
        }

        impl<'a> crate::Attribute<'a> for $name<'a> {
            const TYPE: AttributeType = AttributeType::$const;
            fn decode(value: &'a [u8], _: &TransactionId) -> Result<Self, AttributeError> {
                decode_text(Self::TYPE, value, Self::MAX_LEN).map($name)
            }
            fn value_len(&self) -> usize {
                self.0.len()
            }
            fn encode(&self, out: &mut [u8], _: &TransactionId) {
                out.copy_from_slice(self.0.as_bytes());
            }
        }
    };
}

text_attribute!(
    /// USERNAME (RFC 8489 §14.3): fewer than 509 bytes by RFC 8489; RFC 5389 allowed up to 512,
    /// which is what decoding accepts.
    Username, USERNAME, max = 512
);
text_attribute!(
    /// REALM (RFC 8489 §14.9): fewer than 128 characters, at most 763 bytes on decode.
    Realm, REALM, max = 763
);
text_attribute!(
    /// NONCE (RFC 8489 §14.10): fewer than 128 characters, at most 763 bytes on decode.
    ///
    /// A nonce that starts with the cookie `"obMatJos2"` carries the server's security
    /// features (RFC 8489 §9.2): see [`Nonce::security_features`].
    Nonce, NONCE, max = 763
);
text_attribute!(
    /// SOFTWARE (RFC 8489 §14.14): fewer than 128 characters, at most 763 bytes on decode.
    Software, SOFTWARE, max = 763
);
text_attribute!(
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16): the TLS domain of the ALTERNATE-SERVER, under 256 bytes.
    AlternateDomain, ALTERNATE_DOMAIN, max = 255
);

/// The security feature set a server announces in its NONCE (RFC 8489 §9.2, §18.1).
///
/// The 24 bits are numbered from the most significant: bit 0 is "Password algorithms",
/// bit 1 "Username anonymity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SecurityFeatures(pub u32);

impl SecurityFeatures {
    /// The nonce cookie that announces a feature set (RFC 8489 §9.2).
    pub const NONCE_COOKIE: &'static str = "obMatJos2";
    /// Bit 0: the server supports PASSWORD-ALGORITHMS.
    pub const PASSWORD_ALGORITHMS: SecurityFeatures = SecurityFeatures(1 << 23);
    /// Bit 1: the server supports USERHASH (username anonymity).
    pub const USERNAME_ANONYMITY: SecurityFeatures = SecurityFeatures(1 << 22);

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: SecurityFeatures) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two feature sets.
    pub const fn union(self, other: SecurityFeatures) -> SecurityFeatures {
        SecurityFeatures(self.0 | other.0)
    }

    /// The 13-byte nonce prefix: the cookie and the 24 bits as 4 base64 characters.
    /// A server appends its own nonce text to it.
    pub fn nonce_prefix(self) -> [u8; 13] {
        let mut out = [0u8; 13];
        out[..9].copy_from_slice(Self::NONCE_COOKIE.as_bytes());
        for i in 0..4 {
            let sextet = (self.0 >> (18 - 6 * i)) & 0x3F;
            out[9 + i] = BASE64[sextet as usize];
        }
        out
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_value(c: u8) -> Option<u32> {
    BASE64.iter().position(|&b| b == c).map(|p| p as u32)
}

impl Nonce<'_> {
    /// The security features announced by a nonce that starts with `"obMatJos2"` followed by
    /// four base64 characters (RFC 8489 §9.2); `None` for any other nonce.
    pub fn security_features(&self) -> Option<SecurityFeatures> {
        let rest = self.0.strip_prefix(SecurityFeatures::NONCE_COOKIE)?;
        let chars = rest.as_bytes().get(..4)?;
        let mut bits = 0u32;
        for &c in chars {
            bits = bits << 6 | base64_value(c)?;
        }
        Some(SecurityFeatures(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_features_round_trip() {
        let f = SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY);
        let prefix = f.nonce_prefix();
        let text = format!("{}abcdef", core::str::from_utf8(&prefix).unwrap());
        assert_eq!(&text[..13], "obMatJos2wAAA");
        let got = Nonce(&text).security_features().unwrap();
        assert!(got.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
        assert!(got.contains(SecurityFeatures::USERNAME_ANONYMITY));
        assert_eq!(
            Nonce("f//499k954d6OL34oL9FSTvy64sA").security_features(),
            None
        );
        assert_eq!(Nonce("obMatJos2A*AA").security_features(), None);
        assert_eq!(Nonce("obMatJos2AA").security_features(), None);
    }
}
