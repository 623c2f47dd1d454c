//! The session's DTLS certificate and its fingerprint (RFC 8122, RFC 8827 §6.5).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rtc_dtls::crypto::Certificate as DtlsCertificate;
use rtc_dtls::crypto_provider::{RTCCryptoProvider, SignatureScheme};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::Error;

/// A DTLS certificate with its private key: ECDSA P-256, self-signed, as browsers make them.
/// A long-lived peer loads one from PEM so that its fingerprint stays the same.
#[derive(Clone)]
pub struct Certificate {
    pub(crate) dtls: DtlsCertificate,
    fingerprint: Fingerprint,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Certificate")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// A new self-signed ECDSA P-256 certificate.
    pub fn generate() -> Result<Certificate, Error> {
        let provider = crypto_provider()?;
        let dtls = DtlsCertificate::generate_self_signed(vec!["webrtc".into()], provider.crypto())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        Ok(Certificate::from_dtls(dtls))
    }

    /// Loads a certificate and its PKCS#8 ECDSA P-256 private key from PEM text (the blocks
    /// `-----BEGIN CERTIFICATE-----` and `-----BEGIN PRIVATE KEY-----`, in any order, as
    /// [`to_pem`](Self::to_pem) writes them or `openssl req -x509 -newkey ec
    /// -pkeyopt ec_paramgen_curve:P-256` makes them).
    pub fn from_pem(pem: &str) -> Result<Certificate, Error> {
        let bad = |what: &str| Error::Certificate(what.to_owned());
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| bad("no CERTIFICATE block in the PEM text"))?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| bad("no PRIVATE KEY block in the PEM text"))?;
        let PrivateKeyDer::Pkcs8(key) = key else {
            return Err(bad("the private key is not PKCS#8 (BEGIN PRIVATE KEY)"));
        };
        let provider = crypto_provider()?;
        let signing = provider
            .crypto()
            .import_signing_key(SignatureScheme::EcdsaP256Sha256, key.secret_pkcs8_der())
            .map_err(|_| bad("the private key is not an ECDSA P-256 key"))?;
        Ok(Certificate::from_dtls(DtlsCertificate::from_signing_key(
            vec![cert],
            signing,
        )))
    }

    /// The certificate and its private key as PEM text, for [`from_pem`](Self::from_pem).
    pub fn to_pem(&self) -> Result<String, Error> {
        let key = self
            .dtls
            .private_key
            .signing_key
            .to_pkcs8_der()
            .ok()
            .flatten()
            .ok_or_else(|| Error::Certificate("the private key cannot be exported".into()))?;
        Ok(pem::encode_many(&[
            pem::Pem::new("CERTIFICATE", self.dtls.certificate[0].as_ref()),
            pem::Pem::new("PRIVATE KEY", key.as_ref()),
        ]))
    }

    /// The SHA-256 fingerprint of the certificate, as `a=fingerprint` carries it.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    fn from_dtls(dtls: DtlsCertificate) -> Certificate {
        let fingerprint = Fingerprint::of(dtls.certificate[0].as_ref());
        Certificate { dtls, fingerprint }
    }
}

pub(crate) fn crypto_provider() -> Result<Arc<dyn RTCCryptoProvider>, Error> {
    rtc_dtls::crypto_provider::default_provider().map_err(|e| Error::Certificate(e.to_string()))
}

/// A certificate fingerprint (RFC 8122 §5): the hash function and the digest. Only
/// `sha-256` is made; others are parsed so that a description carrying them is understood,
/// and refused where used.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The hash function's name in lower case, e.g. `sha-256`.
    pub algorithm: String,
    /// The digest.
    pub digest: Vec<u8>,
}

impl Fingerprint {
    /// The SHA-256 fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint {
            algorithm: "sha-256".into(),
            digest: Sha256::digest(der).to_vec(),
        }
    }

    /// Whether `der` is the certificate this fingerprint names.
    pub fn matches(&self, der: &[u8]) -> bool {
        self.algorithm == "sha-256" && Sha256::digest(der).as_slice() == self.digest
    }
}

impl fmt::Display for Fingerprint {
    /// `sha-256 AB:CD:…`, the value of `a=fingerprint`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.algorithm)?;
        for (i, b) in self.digest.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why an `a=fingerprint` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// Not `hash-func SP fingerprint`.
    #[error("expected \"<hash function> <hex:hex:…>\"")]
    Syntax,
    /// A byte of the digest is not two hex digits.
    #[error("{0:?} is not a hex byte")]
    Hex(String),
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, FingerprintError> {
        let (algorithm, hex) = s.trim().split_once(' ').ok_or(FingerprintError::Syntax)?;
        if algorithm.is_empty() || hex.is_empty() {
            return Err(FingerprintError::Syntax);
        }
        let digest = hex
            .trim()
            .split(':')
            .map(|b| {
                if b.len() == 2 {
                    u8::from_str_radix(b, 16).map_err(|_| FingerprintError::Hex(b.into()))
                } else {
                    Err(FingerprintError::Hex(b.into()))
                }
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Fingerprint {
            algorithm: algorithm.to_ascii_lowercase(),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_and_matches() {
        let c = Certificate::generate().unwrap();
        let text = c.fingerprint().to_string();
        assert!(text.starts_with("sha-256 "));
        assert_eq!(text.len(), "sha-256 ".len() + 32 * 3 - 1);
        let f: Fingerprint = text.parse().unwrap();
        assert_eq!(&f, c.fingerprint());
        assert!(f.matches(c.dtls.certificate[0].as_ref()));
        assert!(!f.matches(b"another certificate"));
        // Lower-case hex and upper-case hash names are accepted (RFC 8122 §5 is
        // case-insensitive).
        let lower: Fingerprint = text
            .replace("sha-256", "SHA-256")
            .to_lowercase()
            .parse()
            .unwrap();
        assert_eq!(&lower, c.fingerprint());
        assert_eq!(
            "sha-256".parse::<Fingerprint>(),
            Err(FingerprintError::Syntax)
        );
        assert_eq!(
            "sha-256 AB:C".parse::<Fingerprint>(),
            Err(FingerprintError::Hex("C".into()))
        );
    }

    #[test]
    fn pem_keeps_the_fingerprint() {
        let c = Certificate::generate().unwrap();
        let pem = c.to_pem().unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"));
        let back = Certificate::from_pem(&pem).unwrap();
        assert_eq!(back.fingerprint(), c.fingerprint());
        assert!(matches!(
            Certificate::from_pem("nothing here"),
            Err(Error::Certificate(_))
        ));
    }
}
