//! What the runtime needs to know about a stored certificate, read with x509-parser.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::ChainError;

/// A certificate of a module as reported to clients (AosCore's CertInfo plus validity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Cert type (module id).
    pub cert_type: String,
    /// `pkcs11:` URL of the certificate.
    pub cert_url: String,
    /// `pkcs11:` URL of the private key (same object path as the certificate).
    pub key_url: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Issuer distinguished name, DER.
    #[serde(with = "serde_bytes")]
    pub issuer: Vec<u8>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// Fields parsed from one leaf certificate.
#[derive(Debug, Clone)]
pub(crate) struct LeafFields {
    pub serial: String,
    pub issuer: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Bit-string content of the subject public key.
    pub public_key: Vec<u8>,
}

fn to_system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

pub(crate) fn leaf_fields(der: &CertificateDer<'_>) -> Result<LeafFields, ChainError> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| ChainError::Malformed(format!("not an X.509 certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    Ok(LeafFields {
        serial: hex::encode(tbs.raw_serial()),
        issuer: tbs.issuer.as_raw().to_vec(),
        not_before: to_system_time(tbs.validity.not_before),
        not_after: to_system_time(tbs.validity.not_after),
        public_key: tbs.subject_pki.subject_public_key.data.to_vec(),
    })
}

/// Whether the certificate carries an extended key usage extension at all.
pub(crate) fn has_eku_extension(der: &CertificateDer<'_>) -> Result<bool, ChainError> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| ChainError::Malformed(format!("not an X.509 certificate: {e}")))?;
    Ok(matches!(
        cert.tbs_certificate.extended_key_usage(),
        Ok(Some(_))
    ))
}
