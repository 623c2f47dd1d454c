//! Keys and the integrity computations of RFC 8489 §9 and §14.5–14.7.
//!
//! An [`IntegrityKey`] holds the HMAC-SHA1 and HMAC-SHA256 states already keyed (the inner and
//! outer pads hashed once), so each message costs only the hashing of its own bytes. Make one per
//! credential and keep it: a server caches it per user, an ICE agent per remote password.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::attr::PasswordAlgorithm;
use crate::KeyError;

/// FINGERPRINT is the CRC-32 of the message XOR-ed with this value (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// A MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256 key, pre-keyed for both HMACs.
#[derive(Clone)]
pub struct IntegrityKey {
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl core::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.write_str("IntegrityKey(..)")
    }
}

impl IntegrityKey {
    /// A key from its raw bytes (the short-term password after SASLprep, or a long-term key).
    pub fn new(key: &[u8]) -> IntegrityKey {
        IntegrityKey {
            sha1: <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts any key length"),
            sha256: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts any key length"),
        }
    }

    /// The short-term credential key (RFC 8489 §9.1.2): the password after SASLprep, as
    /// RFC 5389 §15.4 specifies (RFC 8489's OpaqueString agrees for the ASCII passwords ICE
    /// generates).
    pub fn short_term(password: &str) -> Result<IntegrityKey, KeyError> {
        Ok(IntegrityKey::new(saslprep(password)?.as_bytes()))
    }

    /// The long-term credential key (RFC 8489 §9.2.2) for the given PASSWORD-ALGORITHM:
    /// MD5 or SHA-256 of `username ":" realm ":" SASLprep(password)`.
    pub fn long_term(
        username: &str,
        realm: &str,
        password: &str,
        algorithm: PasswordAlgorithm<'_>,
    ) -> Result<IntegrityKey, KeyError> {
        match algorithm.algorithm {
            0x0001 => Ok(IntegrityKey::new(&long_term_key_md5(
                username, realm, password,
            )?)),
            0x0002 => Ok(IntegrityKey::new(&long_term_key_sha256(
                username, realm, password,
            )?)),
            algorithm => Err(KeyError::UnsupportedAlgorithm { algorithm }),
        }
    }

    pub(crate) fn hmac_sha1(&self, parts: &[&[u8]]) -> [u8; 20] {
        fed(&self.sha1, parts).finalize().into_bytes().into()
    }

    pub(crate) fn hmac_sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        fed(&self.sha256, parts).finalize().into_bytes().into()
    }

    /// Constant-time check of an HMAC-SHA1 over `parts` against `expected` (20 bytes).
    pub(crate) fn verify_sha1(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        fed(&self.sha1, parts).verify_slice(expected).is_ok()
    }

    /// Constant-time check of an HMAC-SHA256 over `parts` against the leftmost
    /// `expected.len()` bytes (RFC 8489 §14.6 allows truncation to 16..=32 bytes).
    pub(crate) fn verify_sha256(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        fed(&self.sha256, parts)
            .verify_truncated_left(expected)
            .is_ok()
    }
}

/// A copy of the pre-keyed `state` that has hashed `parts`.
fn fed<M: Mac + Clone>(state: &M, parts: &[&[u8]]) -> M {
    let mut mac = state.clone();
    for p in parts {
        mac.update(p);
    }
    mac
}

/// SASLprep (RFC 4013) of a password, through the `stringprep` crate.
pub fn saslprep(password: &str) -> Result<std::borrow::Cow<'_, str>, KeyError> {
    stringprep::saslprep(password).map_err(|_| KeyError::SaslPrep)
}

/// MD5(username ":" realm ":" SASLprep(password)): the RFC 5389 long-term key.
pub fn long_term_key_md5(
    username: &str,
    realm: &str,
    password: &str,
) -> Result<[u8; 16], KeyError> {
    let password = saslprep(password)?;
    let mut h = Md5::new();
    for part in [username, ":", realm, ":", &password] {
        h.update(part.as_bytes());
    }
    Ok(h.finalize().into())
}

/// SHA-256(username ":" realm ":" SASLprep(password)): the RFC 8489 §9.2.2 SHA-256 key.
pub fn long_term_key_sha256(
    username: &str,
    realm: &str,
    password: &str,
) -> Result<[u8; 32], KeyError> {
    let password = saslprep(password)?;
    let mut h = Sha256::new();
    for part in [username, ":", realm, ":", &password] {
        h.update(part.as_bytes());
    }
    Ok(h.finalize().into())
}

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// CRC-32 of `bytes` XOR 0x5354554E (RFC 8489 §14.7).
pub fn fingerprint(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5769_long_term_key() {
        // RFC 5769 §2.4: SASLprep maps "The<U+00AD>M<U+00AA>tr<U+2168>" to "TheMatrIX".
        let password = "The\u{00AD}M\u{00AA}tr\u{2168}";
        assert_eq!(saslprep(password).unwrap(), "TheMatrIX");
        let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let direct = Md5::digest(format!("{user}:example.org:TheMatrIX").as_bytes());
        assert_eq!(
            long_term_key_md5(user, "example.org", password).unwrap(),
            <[u8; 16]>::from(direct)
        );
    }

    #[test]
    fn saslprep_rejects_prohibited() {
        // U+0007 (a control character) is prohibited by RFC 4013 §2.3.
        assert_eq!(saslprep("a\u{0007}b").unwrap_err(), KeyError::SaslPrep);
        assert!(IntegrityKey::short_term("a\u{0007}b").is_err());
    }

    #[test]
    fn unsupported_algorithm() {
        let alg = PasswordAlgorithm {
            algorithm: 7,
            params: &[],
        };
        assert_eq!(
            IntegrityKey::long_term("u", "r", "p", alg).unwrap_err(),
            KeyError::UnsupportedAlgorithm { algorithm: 7 }
        );
    }

    #[test]
    fn userhash_is_sha256_of_user_colon_realm() {
        assert_eq!(
            userhash("user", "realm"),
            <[u8; 32]>::from(Sha256::digest(b"user:realm"))
        );
    }

    #[test]
    fn fingerprint_is_crc32_xor() {
        // CRC-32 of "123456789" is 0xCBF43926.
        assert_eq!(fingerprint(b"123456789"), 0xCBF4_3926 ^ FINGERPRINT_XOR);
    }
}
