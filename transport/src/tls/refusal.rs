//! Why a peer was refused: one stable reason per refusal, carried inside rustls' error and logged once.

use std::fmt;
use std::sync::Arc;

use rustls::{CertificateError, OtherError};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Why a peer was refused. [`RefusalReason::as_str`] is a stable label to count refusals by.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalReason {
    /// The client sent no certificate to an endpoint that requires one.
    NoCertificate,
    /// The chain does not lead to a configured root (a foreign CA).
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    NotYetValid,
    /// The extended key usage does not allow this side (a serverAuth-only cert used as a client, or the
    /// reverse).
    WrongPurpose,
    /// A signature in the chain does not verify, or uses an unsupported algorithm.
    BadSignature,
    /// The certificate does not parse.
    BadEncoding,
    /// Another chain validation failure.
    InvalidCertificate,
    /// The certificate has no `urn:aos:` identity SAN.
    NoIdentity,
    /// The identity SAN is malformed, ambiguous or names an unknown role.
    MalformedIdentity,
    /// The identity's role is not accepted by this endpoint.
    RoleNotAccepted,
    /// The identity's unit is not the one this endpoint accepts.
    UnitNotAccepted,
    /// The identity's node is not one this endpoint accepts.
    NodeNotAccepted,
    /// The server certificate's fingerprint differs from the pinned one.
    PinMismatch,
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// The peer does not speak TLS (e.g. plaintext HTTP on a TLS port).
    NotTls,
    /// Another TLS protocol failure (no common version or cipher suite, a misbehaving peer).
    Protocol,
}

/// A refusal by one of our verifiers: the reason and a human-readable detail. It travels inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`, so the handshake error says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// What exactly, for the log and the operator.
    pub detail: String,
}

// === impl RefusalReason ===

impl RefusalReason {
    /// Every reason, in declaration order.
    pub const ALL: [RefusalReason; 17] = [
        RefusalReason::NoCertificate,
        RefusalReason::UnknownIssuer,
        RefusalReason::Expired,
        RefusalReason::NotYetValid,
        RefusalReason::WrongPurpose,
        RefusalReason::BadSignature,
        RefusalReason::BadEncoding,
        RefusalReason::InvalidCertificate,
        RefusalReason::NoIdentity,
        RefusalReason::MalformedIdentity,
        RefusalReason::RoleNotAccepted,
        RefusalReason::UnitNotAccepted,
        RefusalReason::NodeNotAccepted,
        RefusalReason::PinMismatch,
        RefusalReason::HandshakeTimeout,
        RefusalReason::NotTls,
        RefusalReason::Protocol,
    ];

    /// A stable snake_case label, e.g. `role_not_accepted`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NoCertificate => "no_certificate",
            RefusalReason::UnknownIssuer => "unknown_issuer",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::WrongPurpose => "wrong_purpose",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::BadEncoding => "bad_encoding",
            RefusalReason::InvalidCertificate => "invalid_certificate",
            RefusalReason::NoIdentity => "no_identity",
            RefusalReason::MalformedIdentity => "malformed_identity",
            RefusalReason::RoleNotAccepted => "role_not_accepted",
            RefusalReason::UnitNotAccepted => "unit_not_accepted",
            RefusalReason::NodeNotAccepted => "node_not_accepted",
            RefusalReason::PinMismatch => "pin_mismatch",
            RefusalReason::HandshakeTimeout => "handshake_timeout",
            RefusalReason::NotTls => "not_tls",
            RefusalReason::Protocol => "protocol",
        }
    }

    /// The reason behind a rustls error raised while verifying or talking to the peer, if it is one we
    /// refuse peers for. Errors of our own side (no credentials, signing failures) give `None`.
    pub fn of(err: &rustls::Error) -> Option<RefusalReason> {
        use rustls::Error;
        Some(match err {
            Error::NoCertificatesPresented => RefusalReason::NoCertificate,
            Error::InvalidCertificate(cert) => certificate_reason(cert),
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => RefusalReason::NotTls,
            Error::InappropriateHandshakeMessage { .. }
            | Error::PeerIncompatible(_)
            | Error::PeerMisbehaved(_)
            | Error::DecryptError => RefusalReason::Protocol,
            _ => return None,
        })
    }
}

fn certificate_reason(err: &CertificateError) -> RefusalReason {
    match err {
        CertificateError::Other(other) => match other.0.downcast_ref::<Refusal>() {
            Some(refusal) => refusal.reason,
            None => RefusalReason::InvalidCertificate,
        },
        CertificateError::UnknownIssuer => RefusalReason::UnknownIssuer,
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            RefusalReason::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            RefusalReason::NotYetValid
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            RefusalReason::WrongPurpose
        }
        #[allow(deprecated)]
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            RefusalReason::BadSignature
        }
        CertificateError::BadEncoding => RefusalReason::BadEncoding,
        _ => RefusalReason::InvalidCertificate,
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Refusal ===

impl Refusal {
    /// A refusal for `reason`.
    pub fn new(reason: RefusalReason, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }

    /// The rustls error carrying this refusal (the peer receives a `certificate_unknown` alert).
    pub fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

/// The side of the connection that refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// We are the server, refusing a client.
    Server,
    /// We are the client, refusing a server.
    Client,
}

impl Side {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// The one log line of a refusal. Run handshakes inside a span carrying the peer address to get it here.
pub(crate) fn log_refusal(side: Side, reason: RefusalReason, detail: &dyn fmt::Display) {
    super::stats::count_refused(reason);
    tracing::warn!(
        side = side.as_str(),
        reason = reason.as_str(),
        "refused TLS peer: {detail}"
    );
}

/// Subject and serial of a certificate for log lines ("unparsable" when it does not parse).
pub(crate) fn describe(cert: &CertificateDer<'_>) -> String {
    match X509Certificate::from_der(cert.as_ref()) {
        Ok((_, parsed)) => format!(
            "subject `{}` serial {}",
            parsed.subject(),
            parsed.raw_serial_as_string()
        ),
        Err(_) => "unparsable certificate".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_and_counted() {
        let labels: std::collections::BTreeSet<_> =
            RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RefusalReason::ALL.len());
        let count = |reason| {
            crate::tls::handshake_stats()
                .refused
                .into_iter()
                .find(|(r, _)| *r == reason)
                .map(|(_, n)| n)
                .unwrap()
        };
        let before = count(RefusalReason::PinMismatch);
        log_refusal(Side::Client, RefusalReason::PinMismatch, &"test");
        assert!(count(RefusalReason::PinMismatch) > before);
    }

    #[test]
    fn typed_refusals_survive_the_trip_through_rustls() {
        let err = Refusal::new(RefusalReason::RoleNotAccepted, "role sm").into_rustls();
        assert_eq!(
            RefusalReason::of(&err),
            Some(RefusalReason::RoleNotAccepted)
        );
        let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(other.to_string(), "role_not_accepted: role sm");
    }

    #[test]
    fn rustls_certificate_errors_map_to_reasons() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                RefusalReason::NoCertificate,
            ),
            (
                CertificateError::UnknownIssuer.into(),
                RefusalReason::UnknownIssuer,
            ),
            (CertificateError::Expired.into(), RefusalReason::Expired),
            (
                CertificateError::NotValidYet.into(),
                RefusalReason::NotYetValid,
            ),
            (
                CertificateError::InvalidPurpose.into(),
                RefusalReason::WrongPurpose,
            ),
            (
                CertificateError::BadEncoding.into(),
                RefusalReason::BadEncoding,
            ),
            (
                CertificateError::Revoked.into(),
                RefusalReason::InvalidCertificate,
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(RefusalReason::of(&err), Some(reason), "{err}");
        }
        assert_eq!(
            RefusalReason::of(&rustls::Error::General("signing failed".into())),
            None
        );
    }
}
