//! Long-term credentials for TURN (RFC 8656 §9, RFC 8489 §9.2): static users, TURN REST API
//! ephemeral credentials, stateless nonces, PASSWORD-ALGORITHMS and USERHASH.
//!
//! Nonces carry no server state: a nonce is the RFC 8489 §9.2 security-feature cookie, the time
//! it was issued (seconds since the server's epoch) and an HMAC-SHA256 over that time and the
//! client's IP address under a key drawn from the operating system's CSPRNG at start-up. Any
//! server sharing the key could check it; a restart makes old nonces stale (438), which clients
//! recover from by retrying with the new one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use stun_codec::attr::{PasswordAlgorithm, SecurityFeatures};
use stun_codec::integrity::{long_term_key_md5, long_term_key_sha256, userhash};
use stun_codec::{IntegrityKey, KeyError};

/// The keys of one user: both password algorithms' for a user whose password is known, one
/// for a user from a database, which stores a key and not the password.
#[derive(Debug, Clone)]
pub struct UserKeys {
    /// The username as the client sends it.
    pub username: String,
    /// MD5 long-term key (MESSAGE-INTEGRITY, RFC 5389 clients).
    pub md5: Option<IntegrityKey>,
    /// SHA-256 long-term key (PASSWORD-ALGORITHM SHA-256, RFC 8489).
    pub sha256: Option<IntegrityKey>,
}

/// A stored key that is not one: coturn's `hmackey` column holds the long-term key in hex,
/// 32 digits for MD5, 64 for SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored key must be 32 (MD5) or 64 (SHA-256) hex digits, not {len} characters")]
pub struct StoredKeyError {
    /// Its length.
    pub len: usize,
}

impl UserKeys {
    /// Derives both keys from a password.
    pub fn new(username: &str, realm: &str, password: &str) -> Result<UserKeys, KeyError> {
        Ok(UserKeys {
            username: username.to_owned(),
            md5: Some(IntegrityKey::new(&long_term_key_md5(
                username, realm, password,
            )?)),
            sha256: Some(IntegrityKey::new(&long_term_key_sha256(
                username, realm, password,
            )?)),
        })
    }

    /// The key as coturn's `turnadmin` stores it (`hmackey`): MD5 (32 hex digits) or SHA-256
    /// (64), whichever it is.
    pub fn from_stored(username: &str, hmackey: &str) -> Result<UserKeys, StoredKeyError> {
        let hmackey = hmackey.trim();
        let err = StoredKeyError { len: hmackey.len() };
        if !hmackey.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err);
        }
        let bytes: Vec<u8> = (0..hmackey.len() / 2)
            .map(|i| u8::from_str_radix(&hmackey[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let key = Some(IntegrityKey::new(&bytes));
        match hmackey.len() {
            32 => Ok(UserKeys {
                username: username.to_owned(),
                md5: key,
                sha256: None,
            }),
            64 => Ok(UserKeys {
                username: username.to_owned(),
                md5: None,
                sha256: key,
            }),
            _ => Err(err),
        }
    }

    /// The key as `turnadmin` stores it: the MD5 long-term key in lower-case hex (coturn's
    /// default), or the SHA-256 one with `sha256`.
    pub fn stored_key(
        username: &str,
        realm: &str,
        password: &str,
        sha256: bool,
    ) -> Result<String, KeyError> {
        let key = if sha256 {
            long_term_key_sha256(username, realm, password)?.to_vec()
        } else {
            long_term_key_md5(username, realm, password)?.to_vec()
        };
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key for a PASSWORD-ALGORITHM (MD5 when the client named none).
    pub fn key(&self, algorithm: Option<u16>) -> Option<&IntegrityKey> {
        match algorithm {
            None | Some(0x0001) => self.md5.as_ref(),
            Some(0x0002) => self.sha256.as_ref(),
            Some(_) => None,
        }
    }
}

/// Why a nonce is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Not one of ours, or for another client address: answered like a stale one (438 with a
    /// fresh nonce, RFC 8489 §9.2.4 "no longer valid").
    Invalid,
    /// Ours but too old: answer 438 (Stale Nonce) with a fresh one.
    Stale,
}

/// Issues and checks stateless nonces.
#[derive(Clone)]
pub struct Nonces {
    key: Hmac<Sha256>,
    epoch: Instant,
    lifetime: Duration,
    features: SecurityFeatures,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces valid for `lifetime`, keyed by `key` (32 random bytes from a CSPRNG), with times
    /// counted from `epoch`.
    pub fn new(key: [u8; 32], epoch: Instant, lifetime: Duration) -> Nonces {
        Nonces {
            key: <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length"),
            epoch,
            lifetime,
            features: SecurityFeatures::PASSWORD_ALGORITHMS
                .union(SecurityFeatures::USERNAME_ANONYMITY),
        }
    }

    /// A new lifetime for nonces issued and checked from now on (a reload).
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    fn tag(&self, issued: u64, client: IpAddr) -> [u8; 8] {
        let mut mac = self.key.clone();
        mac.update(&issued.to_be_bytes());
        match client {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&full[..8]);
        tag
    }

    /// A fresh nonce for `client`: `obMatJos2` + features + issue time + tag, 45 characters.
    pub fn issue(&self, now: Instant, client: IpAddr) -> String {
        let issued = now.saturating_duration_since(self.epoch).as_secs();
        let mut s = String::with_capacity(45);
        s.push_str(std::str::from_utf8(&self.features.nonce_prefix()).expect("ASCII"));
        s.push_str(&format!("{issued:016x}"));
        for b in self.tag(issued, client) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Checks a nonce a client sent back. Works on bytes: a hostile nonce may hold any UTF-8.
    pub fn check(&self, nonce: &str, now: Instant, client: IpAddr) -> Result<(), NonceError> {
        let body = nonce
            .as_bytes()
            .strip_prefix(SecurityFeatures::NONCE_COOKIE.as_bytes())
            .and_then(|r| r.get(4..))
            .filter(|b| b.len() == 32 && b.iter().all(u8::is_ascii_hexdigit))
            .ok_or(NonceError::Invalid)?;
        let hex = |b: &[u8]| -> u64 {
            b.iter().fold(0, |acc, c| {
                acc << 4 | u64::from((*c as char).to_digit(16).unwrap_or(0))
            })
        };
        let issued = hex(&body[..16]);
        let mut tag = [0u8; 8];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = hex(&body[16 + 2 * i..18 + 2 * i]) as u8;
        }
        // Constant-time comparison of the tag.
        let expected = self.tag(issued, client);
        if tag
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        {
            return Err(NonceError::Invalid);
        }
        let age = now
            .saturating_duration_since(self.epoch)
            .as_secs()
            .saturating_sub(issued);
        if Duration::from_secs(age) >= self.lifetime {
            return Err(NonceError::Stale);
        }
        Ok(())
    }
}

/// The TURN REST API's ephemeral credentials (coturn's `use-auth-secret`): the username is an
/// expiry time in Unix seconds, optionally followed by `:` and a user name; the password is
/// base64(HMAC-SHA1(secret, username)).
#[derive(Clone, Default)]
pub struct RestSecrets {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for RestSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RestSecrets({} secrets)", self.secrets.len())
    }
}

impl RestSecrets {
    /// Accepts credentials made with any of `secrets` (several at once, for rotation).
    pub fn new(secrets: impl IntoIterator<Item = impl AsRef<[u8]>>) -> RestSecrets {
        RestSecrets {
            secrets: secrets.into_iter().map(|s| s.as_ref().to_vec()).collect(),
        }
    }

    /// Whether any secret is configured.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The password for `username` under `secret`, as an application server computes it.
    pub fn password(secret: &[u8], username: &str) -> String {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("any key length");
        mac.update(username.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }

    /// The expiry a REST username carries (Unix seconds), if it is one.
    pub fn expiry(username: &str) -> Option<u64> {
        username.split(':').next()?.parse().ok()
    }

    /// The candidate keys for `username` at Unix time `unix_now`: one per secret, none if the
    /// username has expired or is not a REST username.
    pub fn keys(&self, username: &str, realm: &str, unix_now: u64) -> Vec<UserKeys> {
        match Self::expiry(username) {
            Some(expiry) if expiry > unix_now => self
                .secrets
                .iter()
                .filter_map(|s| UserKeys::new(username, realm, &Self::password(s, username)).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Static users from the configuration, found by USERNAME or by USERHASH.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, UserKeys>,
    by_hash: HashMap<[u8; 32], String>,
}

impl Users {
    /// Adds a user.
    pub fn add(&mut self, username: &str, realm: &str, password: &str) -> Result<(), KeyError> {
        let keys = UserKeys::new(username, realm, password)?;
        self.by_hash
            .insert(userhash(username, realm), username.to_owned());
        self.by_name.insert(username.to_owned(), keys);
        Ok(())
    }

    /// The keys of a user named in USERNAME.
    pub fn by_name(&self, username: &str) -> Option<&UserKeys> {
        self.by_name.get(username)
    }

    /// The keys of a user named by USERHASH (RFC 8489 §14.4).
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<&UserKeys> {
        self.by_name.get(self.by_hash.get(hash)?)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The PASSWORD-ALGORITHMS a server offers, in preference order (RFC 8489 §14.11).
pub const PASSWORD_ALGORITHMS: [PasswordAlgorithm<'static>; 2] =
    [PasswordAlgorithm::SHA256, PasswordAlgorithm::MD5];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_round_trip_go_stale_and_bind_the_client() {
        let epoch = Instant::now();
        let n = Nonces::new([7; 32], epoch, Duration::from_secs(600));
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let nonce = n.issue(epoch + Duration::from_secs(100), ip);
        assert_eq!(nonce.len(), 45);
        assert!(nonce.starts_with("obMatJos2wAAA"));
        assert_eq!(
            n.check(&nonce, epoch + Duration::from_secs(200), ip),
            Ok(())
        );
        assert_eq!(
            n.check(&nonce, epoch + Duration::from_secs(700), ip),
            Err(NonceError::Stale)
        );
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(
            n.check(&nonce, epoch + Duration::from_secs(200), other),
            Err(NonceError::Invalid)
        );
        let other_key = Nonces::new([8; 32], epoch, Duration::from_secs(600));
        assert_eq!(
            other_key.check(&nonce, epoch + Duration::from_secs(200), ip),
            Err(NonceError::Invalid)
        );
        for garbage in [
            "",
            "obMatJos2",
            "obMatJos2wAAAzz",
            &nonce[..44],
            "f//499k954d6OL34oL9FSTvy64sA",
        ] {
            assert_eq!(
                n.check(garbage, epoch, ip),
                Err(NonceError::Invalid),
                "{garbage:?}"
            );
        }
        // Tampering with the time breaks the tag.
        let mut forged = nonce.clone().into_bytes();
        forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(n.check(&forged, epoch, ip), Err(NonceError::Invalid));
    }

    #[test]
    fn rest_credentials() {
        // Known answer: RFC 2202 test case 2 (HMAC-SHA1 "Jefe" / "what do ya want for
        // nothing?" = effcdf6a...259a7c79), base64-encoded.
        assert_eq!(
            RestSecrets::password(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let secrets = RestSecrets::new(["old", "new"]);
        assert_eq!(
            secrets.keys("1433895918:gorst", "r", 1_433_895_917).len(),
            2
        );
        assert!(
            secrets
                .keys("1433895918:gorst", "r", 1_433_895_918)
                .is_empty(),
            "expired"
        );
        assert!(
            secrets.keys("gorst", "r", 0).is_empty(),
            "not a REST username"
        );
        assert_eq!(RestSecrets::expiry("1700000000"), Some(1_700_000_000));
    }

    #[test]
    fn users_by_name_and_hash() {
        let mut u = Users::default();
        u.add("alice", "example.org", "secret").unwrap();
        assert!(u.by_name("alice").is_some());
        assert!(u.by_name("bob").is_none());
        let h = userhash("alice", "example.org");
        assert_eq!(u.by_hash(&h).unwrap().username, "alice");
        let keys = u.by_name("alice").unwrap();
        assert!(
            keys.key(None).is_some() && keys.key(Some(2)).is_some() && keys.key(Some(9)).is_none()
        );
    }

    #[test]
    fn stored_keys_as_coturn_keeps_them() {
        // `turnadmin -a -u alice -r example.org -p secret` (coturn 4.6.1) stores this.
        let stored = UserKeys::stored_key("alice", "example.org", "secret", false).unwrap();
        assert_eq!(stored, "543e1aec5d3614f03141652d6ada51b2");
        let k = UserKeys::from_stored("alice", &stored).unwrap();
        assert!(
            k.key(None).is_some() && k.key(Some(2)).is_none(),
            "an MD5 key only"
        );
        let sha = UserKeys::stored_key("alice", "example.org", "secret", true).unwrap();
        assert_eq!(sha.len(), 64);
        let k = UserKeys::from_stored("alice", &sha).unwrap();
        assert!(k.key(Some(2)).is_some() && k.key(None).is_none());
        for bad in ["", "abc", &stored[..31], "zz3e1aec5d3614f03141652d6ada51b2"] {
            assert!(UserKeys::from_stored("alice", bad).is_err(), "{bad:?}");
        }
    }
}
