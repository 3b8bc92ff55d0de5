//! Certificate pinning for the provisioning channel: a client accepts exactly one server certificate, named
//! by its SHA-256 fingerprint.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::refusal::{describe, log_refusal, Refusal, RefusalReason, Side};
use crate::tls::verifier::refuse_chain;

/// SHA-256 of a certificate's DER encoding. Displays as 64 lowercase hex digits without separators; parses
/// from hex in either case, with or without `:` separators (as `openssl x509 -fingerprint` prints it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// A fingerprint string that is not 32 bytes of hex.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Not 64 hex digits after removing `:` separators.
    #[error("a SHA-256 fingerprint is 64 hex digits (optionally separated by `:`), got `{0}`")]
    Malformed(String),
}

/// Client side of the provisioning channel: accepts exactly the server certificate with the pinned
/// fingerprint (compared in constant time), whatever its issuer, validity dates or names, and still checks
/// the server's handshake signature with that certificate's key.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

// === impl Fingerprint ===

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Fingerprint {
        let hash = digest::digest(&digest::SHA256, cert.as_ref());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(hash.as_ref());
        Fingerprint(bytes)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `cert` has this fingerprint, compared in constant time.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let other = Fingerprint::of(cert);
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, FingerprintError> {
        let digits: String = s.trim().chars().filter(|&c| c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes)
            .map_err(|_| FingerprintError::Malformed(s.to_owned()))?;
        Ok(Fingerprint(bytes))
    }
}

// === impl PinnedServerVerifier ===

impl PinnedServerVerifier {
    /// A verifier accepting only the certificate with fingerprint `pin`.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> PinnedServerVerifier {
        PinnedServerVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// The pinned fingerprint.
    pub fn pin(&self) -> Fingerprint {
        self.pin
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.pin.matches(end_entity) {
            let refusal = Refusal::new(
                RefusalReason::PinMismatch,
                format!(
                    "{}: fingerprint {} is not the pinned {}",
                    describe(end_entity),
                    Fingerprint::of(end_entity),
                    self.pin
                ),
            );
            log_refusal(Side::Client, refusal.reason, &refusal.detail);
            return Err(refusal.into_rustls());
        }
        // The handshake signature is checked against this certificate's key: it must parse.
        ParsedCertificate::try_from(end_entity)
            .map_err(|err| refuse_chain(Side::Client, end_entity, err))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_prints_lowercase_hex_and_parses_openssl_style() {
        let cert = CertificateDer::from(b"not really a certificate".to_vec());
        let fp = Fingerprint::of(&cert);
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert!(text
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let openssl: Vec<String> = fp.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(openssl.join(":").parse::<Fingerprint>().unwrap(), fp);
        assert!(fp.matches(&cert));
        assert!(!fp.matches(&CertificateDer::from(b"another".to_vec())));
        assert!(matches!(
            "abcd".parse::<Fingerprint>(),
            Err(FingerprintError::Malformed(_))
        ));
        assert!(text[..63].parse::<Fingerprint>().is_err());
        assert!(format!("{text}00").parse::<Fingerprint>().is_err());
    }
}
