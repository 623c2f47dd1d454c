//! SRTP and SRTCP (RFC 3711) with keys from the DTLS handshake (RFC 5764 §4.2): one context
//! to protect what we send, one with replay protection to check what arrives.

use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_srtp::config::Config;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::dtls::Dtls;

/// Packets a stream may reorder by and still be taken (libsrtp's default is 128; video
/// bursts on a fast link reorder more).
const REPLAY_WINDOW: usize = 512;

/// The session's SRTP contexts.
pub(crate) struct Srtp {
    local: Context,
    remote: Context,
    /// The negotiated profile's name, for logs and stats.
    pub(crate) profile: &'static str,
}

impl std::fmt::Debug for Srtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srtp")
            .field("profile", &self.profile)
            .finish()
    }
}

fn profile(p: SrtpProtectionProfile) -> Option<(ProtectionProfile, &'static str)> {
    Some(match p {
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => (
            ProtectionProfile::Aes128CmHmacSha1_80,
            "SRTP_AES128_CM_HMAC_SHA1_80",
        ),
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => {
            (ProtectionProfile::AeadAes128Gcm, "SRTP_AEAD_AES_128_GCM")
        }
        _ => return None,
    })
}

impl Srtp {
    /// The contexts for a connected DTLS association; `None` if it negotiated no profile we
    /// know.
    pub(crate) fn new(dtls: &Dtls) -> Option<Srtp> {
        let length = |p| {
            let (pp, _) = profile(p)?;
            Some(
                Config {
                    profile: pp,
                    ..Config::default()
                }
                .keying_material_len(),
            )
        };
        let (p, km, client) = dtls.srtp_keying(length)?;
        let (pp, name) = profile(p)?;
        let mut config = Config {
            profile: pp,
            ..Config::default()
        };
        config
            .set_session_keys_from_keying_material(&km, client)
            .ok()?;
        let provider = crate::certificate::crypto_provider().ok()?;
        let k = &config.keys;
        let local = Context::new(
            &k.local_master_key,
            &k.local_master_salt,
            pp,
            None,
            None,
            provider.crypto(),
        )
        .ok()?;
        let remote = Context::new(
            &k.remote_master_key,
            &k.remote_master_salt,
            pp,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
            provider.crypto(),
        )
        .ok()?;
        Some(Srtp {
            local,
            remote,
            profile: name,
        })
    }

    pub(crate) fn protect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.local.encrypt_rtp(packet).ok().map(Vec::from)
    }

    pub(crate) fn protect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.local.encrypt_rtcp(packet).ok().map(Vec::from)
    }

    /// The plain packet, or `None` when it fails authentication or is a replay.
    pub(crate) fn unprotect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.remote.decrypt_rtp(packet).ok().map(Vec::from)
    }

    pub(crate) fn unprotect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.remote.decrypt_rtcp(packet).ok().map(Vec::from)
    }
}
