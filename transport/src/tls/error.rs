//! Errors of the TLS layer: building configurations, publishing credentials, and handshakes.

use std::io;
use std::time::Duration;

use rustls::AlertDescription;

use crate::tls::refusal::{Refusal, RefusalReason};

/// Building a TLS configuration or the provisioning certificate failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No CA root was given where peers must chain to one.
    #[error("no CA root certificate configured; set the node's `ca_cert`")]
    NoRoots,
    /// A configured root is not a usable trust anchor.
    #[error("CA root certificate #{index} is not a usable trust anchor: {source}")]
    BadRoot {
        /// Position of the root in the list given.
        index: usize,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The webpki verifier could not be built from the roots.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The protocol versions are not supported by the provider.
    #[error("TLS versions not supported by the aws-lc-rs provider: {0}")]
    Versions(rustls::Error),
    /// The session ticket encrypter could not be made (resumption on).
    #[error("cannot create the session ticket encrypter: {0}")]
    Ticketer(rustls::Error),
    /// Generating the provisioning certificate failed.
    #[error("cannot generate the provisioning certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The provisioning key could not be loaded into rustls.
    #[error("cannot load the provisioning key: {0}")]
    Key(rustls::Error),
    /// The provisioning credential could not be published.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// A certificate chain and key were not published because they do not fit together.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The chain holds no certificate.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// The leaf certificate does not parse.
    #[error("the leaf certificate does not parse: {0}")]
    BadCertificate(rustls::Error),
    /// The key's public key differs from the leaf certificate's.
    #[error("the leaf certificate is not for this key (public keys differ)")]
    KeyMismatch,
    /// The key cannot tell its public key, so consistency cannot be checked.
    #[error(
        "the signing key does not expose its public key; cannot check it matches the certificate"
    )]
    KeyWithoutPublicKey,
}

/// A TLS handshake (with its acceptance confirmation) failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The handshake did not finish within the timeout; the connection was dropped.
    #[error("TLS handshake did not finish within {0:?}; connection dropped")]
    Timeout(Duration),
    /// We refused the peer (its certificate, identity, or protocol).
    #[error("peer refused ({reason}): {}", refusal_detail(source))]
    Refused {
        /// Why.
        reason: RefusalReason,
        /// The rustls error behind it.
        source: rustls::Error,
    },
    /// The peer refused us with a TLS alert (e.g. `certificate_required`, `unknown_ca`, `access_denied`).
    #[error(
        "the peer refused the connection with TLS alert {0:?}; check our certificate and its role"
    )]
    RefusedByPeer(AlertDescription),
    /// TLS failed for a reason of our own side (e.g. no credentials set yet, the token failed to sign).
    #[error("TLS failed: {0}")]
    Tls(rustls::Error),
    /// The server closed the connection before confirming acceptance.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// The server sent something other than the acceptance marker.
    #[error("the server sent {0:#04x} instead of the acceptance marker; it does not speak the aos link protocol")]
    UnexpectedMarker(u8),
    /// The socket failed.
    #[error("I/O error during the TLS handshake: {0}")]
    Io(io::Error),
}

// === impl HandshakeError ===

impl HandshakeError {
    /// Why the peer was refused by us, if it was. Label for counting refusals.
    pub fn refusal(&self) -> Option<RefusalReason> {
        match self {
            HandshakeError::Timeout(_) => Some(RefusalReason::HandshakeTimeout),
            HandshakeError::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Classify an error from tokio-rustls or from the marker exchange.
    pub(crate) fn from_io(err: io::Error) -> HandshakeError {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            return HandshakeError::Closed;
        }
        let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return HandshakeError::Io(err);
        };
        if let rustls::Error::AlertReceived(alert) = tls {
            return HandshakeError::RefusedByPeer(*alert);
        }
        match RefusalReason::of(tls) {
            Some(reason) => HandshakeError::Refused {
                reason,
                source: tls.clone(),
            },
            None => HandshakeError::Tls(tls.clone()),
        }
    }
}

/// The detail of one of our refusals, or rustls' own message.
fn refusal_detail(err: &rustls::Error) -> String {
    if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = err {
        if let Some(refusal) = other.0.downcast_ref::<Refusal>() {
            return refusal.detail.clone();
        }
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_display_their_detail_and_classify_from_io_errors() {
        let tls =
            Refusal::new(RefusalReason::RoleNotAccepted, "urn:aos:u:n:cm: role `cm`").into_rustls();
        let err = HandshakeError::from_io(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert_eq!(err.refusal(), Some(RefusalReason::RoleNotAccepted));
        assert_eq!(
            err.to_string(),
            "peer refused (role_not_accepted): urn:aos:u:n:cm: role `cm`"
        );

        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let err = HandshakeError::from_io(io::Error::new(io::ErrorKind::InvalidData, alert));
        assert!(matches!(
            err,
            HandshakeError::RefusedByPeer(AlertDescription::CertificateRequired)
        ));
        assert_eq!(err.refusal(), None);

        let eof = HandshakeError::from_io(io::ErrorKind::UnexpectedEof.into());
        assert!(matches!(eof, HandshakeError::Closed));
        assert_eq!(
            HandshakeError::Timeout(Duration::from_millis(300)).refusal(),
            Some(RefusalReason::HandshakeTimeout)
        );
    }
}
