//! Errors of the cloud CA: why a CSR is refused ([`Refusal`]), why the CA cannot be built or cannot sign
//! ([`CloudError`]), and why a CA directory cannot be read or written ([`StoreError`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aos_transport::tls::IdentityError;

/// Why the CA refused to sign a CSR. Each reason has a stable label ([`Refusal::label`]) for counters.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a PEM `CERTIFICATE REQUEST`, not DER PKCS#10, or an algorithm or name rcgen cannot read.
    #[error(
        "CSR is malformed: {0}; send one PEM `CERTIFICATE REQUEST` as IAM's CreateKey returns it"
    )]
    Malformed(String),
    /// The CSR's signature does not verify with the public key it carries (tampered or corrupted).
    #[error(
        "CSR signature does not verify with its own public key: the CSR was altered after signing"
    )]
    BadSignature,
    /// The CSR requests an extension other than subject alternative names, key usage, extended key usage
    /// or basic constraints, or an extended key usage rcgen does not know.
    #[error(
        "CSR requests an extension this CA does not issue; request only SANs, key usage and EKUs"
    )]
    UnsupportedExtension,
    /// The requested cert type is not a role this CA issues for.
    #[error("cert type `{cert_type}` is not issued by this CA (allowed: {allowed})")]
    CertTypeNotAllowed {
        /// The cert type of the request.
        cert_type: String,
        /// The allowed cert types, comma separated.
        allowed: String,
    },
    /// The CSR has no `urn:aos:` URI SAN.
    #[error(
        "CSR has no `urn:aos:<unit>:<node>:<role>` URI SAN; IAM puts one in every CSR it builds"
    )]
    NoIdentity,
    /// The CSR has more than one `urn:aos:` URI SAN.
    #[error("CSR has {0} `urn:aos:` URI SANs; exactly one is allowed")]
    AmbiguousIdentity(usize),
    /// The CSR's `urn:aos:` URI SAN does not parse.
    #[error("CSR identity `{uri}` is malformed: {reason}")]
    MalformedIdentity {
        /// The URI as found in the CSR.
        uri: String,
        /// Why it does not parse.
        reason: IdentityError,
    },
    /// The CSR names another unit.
    #[error("CSR is for unit `{found}`, but this CA signs for unit `{expected}`")]
    WrongUnit {
        /// This CA's unit.
        expected: String,
        /// The unit named in the CSR.
        found: String,
    },
    /// The CSR names another node than the request.
    #[error("CSR is for node `{found}`, but the request came for node `{expected}`")]
    WrongNode {
        /// The node id of the request.
        expected: String,
        /// The node named in the CSR.
        found: String,
    },
    /// The CSR names another role than the request's cert type.
    #[error("CSR is for role `{found}`, but the request is for cert type `{expected}`")]
    WrongRole {
        /// The cert type of the request.
        expected: String,
        /// The role named in the CSR.
        found: String,
    },
    /// A SAN other than DNS names and the one identity URI (IP address, e-mail, other URI, other name).
    #[error("CSR carries SAN {0}; only DNS names and the one `urn:aos:` URI are issued")]
    UnexpectedSan(String),
    /// The CSR asks for a CA certificate.
    #[error("CSR asks for a CA certificate (basic constraints CA:TRUE); node certificates are never CAs")]
    CaRequested,
    /// An extended key usage outside the CA's allowed set.
    #[error("CSR asks for extended key usage {0}, which this CA does not issue")]
    EkuNotAllowed(String),
    /// A key that is not RSA ≥ 2048 bits, ECDSA P-256 or ECDSA P-384, or whose CSR signature algorithm does
    /// not match it.
    #[error("unsupported key: {0}; use RSA-2048 or larger, ECDSA P-384 or ECDSA P-256")]
    UnsupportedKey(String),
    /// A requested lifetime of zero.
    #[error("requested lifetime is zero; ask for at least one second")]
    ZeroLifetime,
    /// A requested lifetime beyond the CA's maximum.
    #[error("requested lifetime {requested:?} exceeds this CA's maximum {max:?}")]
    LifetimeTooLong {
        /// The requested lifetime.
        requested: Duration,
        /// The CA's maximum.
        max: Duration,
    },
    /// The certificate would outlive the certificate of the CA that signs it.
    #[error("certificate would expire at {not_after:?}, after the issuing CA certificate ({ca_not_after:?}); ask for a shorter lifetime or renew the CA")]
    BeyondCaValidity {
        /// The requested end of validity.
        not_after: SystemTime,
        /// The end of validity of the issuing CA certificate.
        ca_not_after: SystemTime,
    },
}

impl Refusal {
    /// Every label [`Refusal::label`] can return.
    pub const LABELS: [&'static str; 17] = [
        "malformed_csr",
        "bad_signature",
        "unsupported_extension",
        "cert_type_not_allowed",
        "no_identity",
        "ambiguous_identity",
        "malformed_identity",
        "wrong_unit",
        "wrong_node",
        "wrong_role",
        "unexpected_san",
        "ca_requested",
        "eku_not_allowed",
        "unsupported_key",
        "zero_lifetime",
        "lifetime_too_long",
        "beyond_ca_validity",
    ];

    /// A stable, lower-case label for counters and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed_csr",
            Refusal::BadSignature => "bad_signature",
            Refusal::UnsupportedExtension => "unsupported_extension",
            Refusal::CertTypeNotAllowed { .. } => "cert_type_not_allowed",
            Refusal::NoIdentity => "no_identity",
            Refusal::AmbiguousIdentity(_) => "ambiguous_identity",
            Refusal::MalformedIdentity { .. } => "malformed_identity",
            Refusal::WrongUnit { .. } => "wrong_unit",
            Refusal::WrongNode { .. } => "wrong_node",
            Refusal::WrongRole { .. } => "wrong_role",
            Refusal::UnexpectedSan(_) => "unexpected_san",
            Refusal::CaRequested => "ca_requested",
            Refusal::EkuNotAllowed(_) => "eku_not_allowed",
            Refusal::UnsupportedKey(_) => "unsupported_key",
            Refusal::ZeroLifetime => "zero_lifetime",
            Refusal::LifetimeTooLong { .. } => "lifetime_too_long",
            Refusal::BeyondCaValidity { .. } => "beyond_ca_validity",
        }
    }
}

/// Why the CA could not be built, reconfigured, or could not sign.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The CSR was refused by the signing policy; the request will never succeed as it is.
    #[error("CSR refused: {0}")]
    Refused(#[from] Refusal),
    /// The unit id is not usable in identity URIs.
    #[error("unit id cannot be used in identity URIs: {0}")]
    InvalidUnitId(IdentityError),
    /// The policy contradicts itself (for example a default lifetime above the maximum).
    #[error("invalid CA policy: {0}")]
    InvalidPolicy(String),
    /// Key generation, random numbers or certificate encoding failed (a bug or a broken crypto library,
    /// not the request's fault).
    #[error("CA crypto operation failed: {0}")]
    Crypto(String),
    /// The CA's clock reads a time before 1970, which no certificate can start at.
    #[error("the CA clock reads a time before 1970; set the clock")]
    ClockBeforeEpoch,
}

/// Why a CA directory could not be written or read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read, created or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `save` never overwrites a CA: the directory already holds one.
    #[error("{} already exists; remove the old dev CA first or save to another directory", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file does not hold what it should (PEM, certificate, key, unit id).
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key file is readable by group or others.
    #[error("{} has mode {mode:o}; a CA key must be readable by its owner only (chmod 600)", path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key does not belong to its certificate, or the intermediate is not signed by the root.
    #[error("{}: {reason}", path.display())]
    Mismatch {
        /// The file that does not fit.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> StoreError {
        StoreError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_listed() {
        let mut labels = Refusal::LABELS.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::LABELS.len());
        assert!(Refusal::LABELS.contains(&Refusal::BadSignature.label()));
        assert!(Refusal::LABELS.contains(&Refusal::ZeroLifetime.label()));
    }
}
