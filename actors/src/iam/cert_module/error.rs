//! Errors of cert modules and the cert handler.

/// Why a certificate chain was refused by `ApplyCert`. The token is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The PEM text holds no parsable certificate.
    #[error("malformed chain: {0}")]
    Malformed(String),
    /// The chain does not verify to the configured CA (foreign CA, bad signature, missing intermediate).
    #[error("chain does not verify to the unit CA: {0}")]
    Untrusted(String),
    /// The leaf has expired.
    #[error("certificate has expired")]
    Expired,
    /// The leaf is not valid yet.
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// The leaf's public key matches none of the module's pending keys.
    #[error("certificate's public key matches no pending key of this module")]
    WrongKey,
    /// The leaf lacks an extended key usage the module requires.
    #[error("certificate lacks the extended key usage {0}")]
    WrongEku(&'static str),
}

/// What went wrong in a cert module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// No (enabled) module has this cert type.
    #[error("unknown certificate type {0:?}")]
    UnknownCertType(String),
    /// The chain was refused.
    #[error("{cert_type}: {reason}")]
    Chain {
        /// Cert type.
        cert_type: String,
        /// Why.
        reason: ChainError,
    },
    /// No certificate matches the request.
    #[error("{0}: no certificate found")]
    NotFound(String),
    /// The token could not be used (missing, wrong PIN, gone away).
    #[error("{cert_type}: token: {source}")]
    Token {
        /// Cert type.
        cert_type: String,
        /// The PKCS#11 error.
        source: aos_pkcs11::Error,
    },
    /// Building a CSR or a self-signed certificate failed.
    #[error("{cert_type}: {message}")]
    Build {
        /// Cert type.
        cert_type: String,
        /// What failed.
        message: String,
    },
    /// The configured CA certificate could not be read.
    #[error("CA certificate {path}: {message}")]
    CaCert {
        /// File.
        path: String,
        /// Why.
        message: String,
    },
    /// The module's actor is gone.
    #[error("{0}: cert module is not running")]
    Mailbox(String),
}

impl CertError {
    pub(crate) fn token(cert_type: &str, source: aos_pkcs11::Error) -> Self {
        CertError::Token {
            cert_type: cert_type.to_owned(),
            source,
        }
    }

    pub(crate) fn chain(cert_type: &str, reason: ChainError) -> Self {
        CertError::Chain {
            cert_type: cert_type.to_owned(),
            reason,
        }
    }

    pub(crate) fn build(cert_type: &str, message: impl std::fmt::Display) -> Self {
        CertError::Build {
            cert_type: cert_type.to_owned(),
            message: message.to_string(),
        }
    }
}
