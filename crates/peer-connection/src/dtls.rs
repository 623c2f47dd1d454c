//! The session's one DTLS 1.2 association (RFC 8827 §6.5, RFC 8842), over whatever pair ICE
//! selected.
//!
//! rtc-dtls keys its associations by remote address; the session has exactly one, so it lives
//! under a fixed placeholder address ([`PEER`]) that is only a map key and never a
//! destination: every record leaves through the ICE agent's selected pair, and a new pair or
//! an ICE restart changes nothing here.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::cipher_suite::CipherSuiteId;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;

use crate::certificate::{crypto_provider, Certificate, Fingerprint};

/// The key the association is filed under in rtc-dtls (loopback discard port; never sent to).
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8);

/// Which side of the DTLS handshake we are, from `a=setup` (RFC 8842 §5): `active` is the
/// client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello (`a=setup:active`).
    Client,
    /// We wait for it (`a=setup:passive`).
    Server,
}

/// What the association reports.
#[derive(Debug)]
pub(crate) enum DtlsEvent {
    /// The handshake finished and the peer's certificate matched its fingerprint.
    Connected,
    /// Decrypted application data (SCTP packets).
    Data(BytesMut),
    /// The peer sent close_notify.
    Closed,
}

/// Why the DTLS association failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The peer's certificate is not the one its description's `a=fingerprint` names.
    #[error("the peer's DTLS certificate does not match its a=fingerprint")]
    FingerprintMismatch,
    /// The handshake failed (the message is rtc-dtls's).
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
}

/// The session's DTLS association.
pub(crate) struct Dtls {
    endpoint: Endpoint,
    role: DtlsRole,
    connected: bool,
    /// Set by the certificate check when it refused the peer.
    mismatch: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Dtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dtls")
            .field("role", &self.role)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

/// The SRTP protection profiles we offer, preferred first (RFC 5764 §4.1.2, RFC 7714 §14.2).
const SRTP_PROFILES: [SrtpProtectionProfile; 2] = [
    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
];

impl Dtls {
    /// Starts the association: a client sends its ClientHello now; a server waits for one.
    /// The peer's certificate must match one of `remote` (the fingerprints of its
    /// description).
    pub(crate) fn new(
        now: Instant,
        certificate: &Certificate,
        role: DtlsRole,
        remote: Vec<Fingerprint>,
    ) -> Result<Dtls, DtlsError> {
        let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = mismatch.clone();
        let verify: rtc_dtls::config::VerifyPeerCertificateFn = Arc::new(move |certs, _| {
            let ok = certs
                .first()
                .is_some_and(|der| remote.iter().any(|f| f.matches(der)));
            if ok {
                Ok(())
            } else {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(rtc_shared::error::Error::ErrInvalidCertificate)
            }
        });
        let provider = crypto_provider().map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let is_client = role == DtlsRole::Client;
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![certificate.dtls.clone()])
            // ECDSA suites only: the certificate is ECDSA, and an ECDHE_RSA suite chosen by the
            // peer would stall the handshake.
            .with_cipher_suites(vec![
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
            ])
            .with_srtp_protection_profiles(SRTP_PROFILES.to_vec())
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            // Both sides present a certificate and both check it against the fingerprint
            // (RFC 8827 §6.5); without client auth a server would never see the client's.
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            // Self-signed: no chain to verify; the fingerprint is the check.
            .with_insecure_skip_verify(true)
            // No HelloVerifyRequest round trip: ICE has verified the peer's address already
            // (RFC 6347 §4.2.1 makes the cookie exchange optional; browsers skip it too).
            .with_skip_hello_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .build(is_client, Some(PEER))
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let config = Arc::new(config);
        let mut endpoint = if is_client {
            Endpoint::new(LOCAL, TransportProtocol::UDP, None)
        } else {
            Endpoint::new(LOCAL, TransportProtocol::UDP, Some(config.clone()))
        };
        if is_client {
            endpoint
                .connect(now, PEER, config, None)
                .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        }
        Ok(Dtls {
            endpoint,
            role,
            connected: false,
            mismatch,
        })
    }

    /// Whether the handshake is done.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// A datagram whose first byte says DTLS (20–63). A record that fails to authenticate
    /// or parse after the handshake is dropped (RFC 6347 §4.1.2.7); one that makes the
    /// handshake fail is an error.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
        events: &mut Vec<DtlsEvent>,
    ) -> Result<(), DtlsError> {
        let result = self.endpoint.read(now, PEER, None, BytesMut::from(data));
        match result {
            Ok(evs) => {
                for e in evs {
                    match e {
                        EndpointEvent::HandshakeComplete => {
                            self.connected = true;
                            events.push(DtlsEvent::Connected);
                        }
                        EndpointEvent::ApplicationData(d) => events.push(DtlsEvent::Data(d)),
                        EndpointEvent::PeerClosed => events.push(DtlsEvent::Closed),
                        _ => {}
                    }
                }
                Ok(())
            }
            Err(e) => self.failure(e),
        }
    }

    fn failure(&self, e: rtc_shared::error::Error) -> Result<(), DtlsError> {
        if self.mismatch.load(std::sync::atomic::Ordering::Relaxed) {
            Err(DtlsError::FingerprintMismatch)
        } else if self.connected {
            // Garbage or a forged record after the handshake: dropped, the association stays.
            tracing::debug!(error = %e, "DTLS record dropped");
            Ok(())
        } else {
            Err(DtlsError::Handshake(e.to_string()))
        }
    }

    /// Encrypts application data (one SCTP packet) into a record for [`poll_transmit`].
    pub(crate) fn write(&mut self, now: Instant, data: &[u8]) -> Result<(), DtlsError> {
        self.endpoint
            .write(now, PEER, data)
            .map_err(|e| DtlsError::Handshake(e.to_string()))
    }

    /// The next datagram to send on the selected pair.
    pub(crate) fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    /// When the handshake retransmission timer is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout(&PEER)
    }

    /// Runs the retransmission timer; an error when the handshake ran out of retries.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        match self.endpoint.handle_timeout(PEER, now) {
            Ok(()) => Ok(()),
            // The association is gone (closed): nothing to time.
            Err(_) if self.endpoint.get_connection_state(PEER).is_none() => Ok(()),
            Err(e) => Err(DtlsError::Handshake(e.to_string())),
        }
    }

    /// The SRTP profile, the keying material (RFC 5764 §4.2) and our role, once connected.
    pub(crate) fn srtp_keying(
        &self,
        len: impl FnOnce(SrtpProtectionProfile) -> Option<usize>,
    ) -> Option<(SrtpProtectionProfile, Vec<u8>, bool)> {
        let state = self.endpoint.get_connection_state(PEER)?;
        let profile = state.srtp_protection_profile();
        let km = state
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], len(profile)?)
            .ok()?;
        Some((profile, km.as_ref().to_vec(), self.role == DtlsRole::Client))
    }

    /// Sends close_notify.
    pub(crate) fn close(&mut self, now: Instant) {
        let _ = self.endpoint.stop(now, PEER);
        self.connected = false;
    }
}
