//! Signed join tokens: an application's server decides who may enter which room, until when,
//! and gives the browser a token; the signalling server checks it with the shared secret.
//!
//! A token is `v1.<expiry>.<room>.<signature>`: the expiry in Unix seconds, the room's name
//! (or `*` for any room), and the unpadded base64url HMAC-SHA256 of `v1.<expiry>.<room>` under
//! the secret. Room names never contain a `.`, so the token splits one way only.
//!
//! ```
//! use rooms::token;
//!
//! let secret = b"shared with the application server";
//! let t = token::mint(secret, "standup", 1_900_000_000);
//! assert!(t.starts_with("v1.1900000000.standup."));
//! assert_eq!(token::verify(secret, &t, "standup", 1_800_000_000), Ok(()));
//! assert_eq!(token::verify(secret, &t, "other", 1_800_000_000), Err(token::TokenError::WrongRoom));
//! assert_eq!(token::verify(secret, &t, "standup", 1_900_000_001), Err(token::TokenError::Expired));
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token does not let its bearer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The server requires a token and the join had none.
    #[error("this server requires a join token")]
    Missing,
    /// Not `v1.<expiry>.<room>.<signature>`.
    #[error("the token is malformed")]
    Malformed,
    /// Its expiry has passed.
    #[error("the token has expired")]
    Expired,
    /// It is for another room.
    #[error("the token is for another room")]
    WrongRoom,
    /// Not signed with this server's secret (or altered).
    #[error("the token's signature does not match")]
    BadSignature,
}

fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(signed.as_bytes());
    mac
}

/// A token for `room` (`*`: any room) valid until `expiry` (Unix seconds).
pub fn mint(secret: &[u8], room: &str, expiry: u64) -> String {
    let signed = format!("v1.{expiry}.{room}");
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &signed).finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Checks that `token` lets its bearer into `room` at Unix time `unix_now`. The signature is
/// compared in constant time.
pub fn verify(secret: &[u8], token: &str, room: &str, unix_now: u64) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some("v1"), Some(expiry), Some(for_room), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    // What was signed: everything before the last `.`.
    let signed = &token[..token.len() - sig.len() - 1];
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    mac(secret, signed)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if unix_now > expiry {
        return Err(TokenError::Expired);
    }
    if for_room != "*" && for_room != room {
        return Err(TokenError::WrongRoom);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_is_caught() {
        let t = mint(b"k", "r1", 100);
        assert_eq!(verify(b"k", &t, "r1", 100), Ok(()));
        assert_eq!(
            verify(b"other", &t, "r1", 50),
            Err(TokenError::BadSignature)
        );
        let longer = t.replacen("v1.100.", "v1.999.", 1);
        assert_eq!(
            verify(b"k", &longer, "r1", 50),
            Err(TokenError::BadSignature)
        );
        let moved = t.replacen(".r1.", ".r2.", 1);
        assert_eq!(
            verify(b"k", &moved, "r2", 50),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "v1",
            "v2.1.r.x",
            "v1.x.r1.AAAA",
            "v1.1.r1.!!",
            "v1.1.r1.a.b",
        ] {
            assert_eq!(
                verify(b"k", bad, "r1", 0),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        let any = mint(b"k", "*", 100);
        assert_eq!(verify(b"k", &any, "whatever", 1), Ok(()));
    }
}
