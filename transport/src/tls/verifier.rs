//! Certificate verifiers that check the chain with webpki and then the peer's identity against a policy.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::error::TlsError;
use crate::tls::identity::{IdentityError, PeerIdentity};
use crate::tls::policy::Policy;
use crate::tls::refusal::{describe, log_refusal, Refusal, RefusalReason, Side};

/// Server side: requires a client certificate that chains to the roots, is valid now, allows clientAuth
/// (webpki: if the certificate has an EKU extension it must list clientAuth), and carries an identity the
/// policy accepts.
#[derive(Debug)]
pub struct IdentityClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    policy: Policy,
}

/// Client side: requires a server certificate that chains to the roots, is valid now, allows serverAuth,
/// and carries an identity the policy accepts. The server name given to `connect` is only sent as SNI: node
/// certificates are identified by their `urn:aos:` URI SAN, not by a DNS name.
#[derive(Debug)]
pub struct IdentityServerVerifier {
    roots: Arc<RootCertStore>,
    policy: Policy,
    algorithms: WebPkiSupportedAlgorithms,
}

// === impl IdentityClientVerifier ===

impl IdentityClientVerifier {
    /// A verifier accepting clients that chain to `roots` and pass `policy`.
    pub fn new(
        roots: Arc<RootCertStore>,
        policy: Policy,
        provider: Arc<CryptoProvider>,
    ) -> Result<IdentityClientVerifier, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(IdentityClientVerifier { webpki, policy })
    }

    /// The policy enforced.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl ClientCertVerifier for IdentityClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|err| refuse_chain(Side::Server, end_entity, err))?;
        check_identity(Side::Server, end_entity, &self.policy)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

// === impl IdentityServerVerifier ===

impl IdentityServerVerifier {
    /// A verifier accepting servers that chain to `roots` and pass `policy`.
    pub fn new(
        roots: Arc<RootCertStore>,
        policy: Policy,
        provider: Arc<CryptoProvider>,
    ) -> Result<IdentityServerVerifier, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        Ok(IdentityServerVerifier {
            roots,
            policy,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// The policy enforced.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl ServerCertVerifier for IdentityServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)
            .map_err(|err| refuse_chain(Side::Client, end_entity, err))?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .map_err(|err| refuse_chain(Side::Client, end_entity, err))?;
        check_identity(Side::Client, end_entity, &self.policy)?;
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

// === shared checks ===

/// Log a chain validation failure with its reason and hand the rustls error back unchanged.
pub(crate) fn refuse_chain(
    side: Side,
    cert: &CertificateDer<'_>,
    err: rustls::Error,
) -> rustls::Error {
    let reason = RefusalReason::of(&err).unwrap_or(RefusalReason::InvalidCertificate);
    log_refusal(side, reason, &format_args!("{}: {err}", describe(cert)));
    err
}

/// The identity of `cert`, accepted by `policy`, or a logged refusal.
pub(crate) fn check_identity(
    side: Side,
    cert: &CertificateDer<'_>,
    policy: &Policy,
) -> Result<PeerIdentity, rustls::Error> {
    let refusal = match PeerIdentity::from_certificate(cert) {
        Ok(identity) => match policy.check(&identity) {
            Ok(()) => return Ok(identity),
            Err(refusal) => refusal,
        },
        Err(err) => {
            let reason = match err {
                IdentityError::Missing => RefusalReason::NoIdentity,
                IdentityError::BadCertificate(_) => RefusalReason::BadEncoding,
                _ => RefusalReason::MalformedIdentity,
            };
            Refusal::new(reason, format!("{}: {err}", describe(cert)))
        }
    };
    log_refusal(side, refusal.reason, &refusal.detail);
    Err(refusal.into_rustls())
}
