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
///
/// Built with [`IdentityClientVerifier::optional`], it also lets clients without a certificate through
/// (anonymous); a certificate that *is* presented is checked exactly as above, and refused if it fails.
#[derive(Debug)]
pub struct IdentityClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    policy: Policy,
    mandatory: bool,
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
        Ok(IdentityClientVerifier {
            webpki,
            policy,
            mandatory: true,
        })
    }

    /// A verifier that accepts clients without a certificate too (anonymous), and checks a presented
    /// certificate as [`IdentityClientVerifier::new`] does: chain to `roots`, then `policy`.
    pub fn optional(
        roots: Arc<RootCertStore>,
        policy: Policy,
        provider: Arc<CryptoProvider>,
    ) -> Result<IdentityClientVerifier, TlsError> {
        let mut verifier = IdentityClientVerifier::new(roots, policy, provider)?;
        verifier.mandatory = false;
        Ok(verifier)
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
        self.mandatory
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

#[cfg(test)]
mod tests {
    use aos_pkcs11::KeyAlgorithm;
    use rcgen::ExtendedKeyUsagePurpose as Eku;
    use rustls::AlertDescription;

    use crate::tls::testutil::{dial, echo, id, Harness, Pki};
    use crate::tls::{HandshakeError, Policy, RefusalReason, Role, TlsOptions};

    async fn good_mtls(server: KeyAlgorithm, client: KeyAlgorithm) {
        let mut h =
            Harness::start_with(server, Policy::roles([Role::Sm]), TlsOptions::default()).await;
        let key = h.hsm.key("sm", client);
        let chain = h.pki.leaf(&key).identity(id("node1", Role::Sm)).issue();
        let creds = crate::tls::Credentials::with(chain, std::sync::Arc::new(key.clone())).unwrap();

        let (mut stream, server_id) = dial(h.server.addr, h.client_config(Some(&creds)))
            .await
            .unwrap();
        assert_eq!(server_id, Some(id("main", Role::Iam)));
        assert_eq!(h.server.next().await.unwrap(), Some(id("node1", Role::Sm)));
        assert_eq!(echo(&mut stream, b"ping").await, b"ping");
        assert_eq!(h.server_key.sign_count(), 1, "server signed in the token");
        assert_eq!(key.sign_count(), 1, "client signed in the token");
    }

    #[tokio::test]
    async fn mutual_tls_with_p384_token_keys() {
        good_mtls(KeyAlgorithm::EccP384, KeyAlgorithm::EccP384).await;
    }

    #[tokio::test]
    async fn mutual_tls_with_p256_token_keys() {
        good_mtls(KeyAlgorithm::EccP256, KeyAlgorithm::EccP256).await;
    }

    #[tokio::test]
    async fn mutual_tls_with_an_rsa2048_server_key() {
        good_mtls(KeyAlgorithm::Rsa2048, KeyAlgorithm::EccP384).await;
    }

    #[tokio::test]
    async fn a_client_without_certificate_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (reason, client) = h.refused(None).await;
        assert_eq!(reason, RefusalReason::NoCertificate);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::CertificateRequired)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn a_client_certificate_from_a_foreign_ca_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let foreign = Pki::new("foreign");
        let (_, creds) =
            h.client_creds(|_, key| foreign.leaf(key).identity(id("n1", Role::Sm)).issue());
        let (reason, client) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::UnknownIssuer);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::UnknownCA)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_client_certificate_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) = h.client_creds(|pki, key| {
            pki.leaf(key)
                .identity(id("n1", Role::Sm))
                .years(2000, 2001)
                .issue()
        });
        let (reason, client) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::Expired);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::CertificateExpired)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn a_not_yet_valid_client_certificate_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) = h.client_creds(|pki, key| {
            pki.leaf(key)
                .identity(id("n1", Role::Sm))
                .years(2090, 2091)
                .issue()
        });
        let (reason, client) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::NotYetValid);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::CertificateExpired)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn a_server_auth_only_certificate_used_as_client_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) = h.client_creds(|pki, key| {
            pki.leaf(key)
                .identity(id("n1", Role::Sm))
                .eku(vec![Eku::ServerAuth])
                .issue()
        });
        let (reason, client) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::WrongPurpose);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::UnsupportedCertificate)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn the_right_ca_with_a_role_the_endpoint_does_not_accept_is_refused() {
        let mut h = Harness::start(Policy::roles([Role::Sm])).await;
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Cm)).issue());
        let (reason, client) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::RoleNotAccepted);
        assert!(
            matches!(
                client,
                HandshakeError::RefusedByPeer(AlertDescription::CertificateUnknown)
            ),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn unit_node_and_missing_identity_are_refused_with_their_reasons() {
        let mut h =
            Harness::start(Policy::roles([Role::Mp]).with_unit("unit1").with_node("n1")).await;
        let other_unit = crate::tls::PeerIdentity::new("unit2", "n1", Role::Mp).unwrap();
        let cases = [
            (Some(other_unit), RefusalReason::UnitNotAccepted),
            (Some(id("n2", Role::Mp)), RefusalReason::NodeNotAccepted),
            (None, RefusalReason::NoIdentity),
        ];
        for (identity, expected) in cases {
            let (_, creds) = h.client_creds(|pki, key| match identity {
                Some(identity) => pki.leaf(key).identity(identity).issue(),
                None => pki.leaf(key).issue(),
            });
            let (reason, _) = h.refused(Some(&creds)).await;
            assert_eq!(reason, expected);
        }
        // The accepted identity passes.
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Mp)).issue());
        dial(h.server.addr, h.client_config(Some(&creds)))
            .await
            .unwrap();
        assert_eq!(h.server.next().await.unwrap(), Some(id("n1", Role::Mp)));
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_with_the_wrong_identity_or_purpose() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Sm)).issue());
        let server_key = h.server_key.clone();
        let cases = [
            (
                h.pki
                    .leaf(&server_key)
                    .identity(id("main", Role::Cm))
                    .issue(),
                RefusalReason::RoleNotAccepted,
            ),
            (
                h.pki
                    .leaf(&server_key)
                    .identity(id("other", Role::Iam))
                    .issue(),
                RefusalReason::NodeNotAccepted,
            ),
            (
                h.pki
                    .leaf(&server_key)
                    .identity(id("main", Role::Iam))
                    .eku(vec![Eku::ClientAuth])
                    .issue(),
                RefusalReason::WrongPurpose,
            ),
            (
                Pki::new("foreign")
                    .leaf(&server_key)
                    .identity(id("main", Role::Iam))
                    .issue(),
                RefusalReason::UnknownIssuer,
            ),
        ];
        for (chain, expected) in cases {
            h.server_creds
                .set(chain, std::sync::Arc::new(server_key.clone()))
                .unwrap();
            let err = dial(h.server.addr, h.client_config(Some(&creds)))
                .await
                .unwrap_err();
            assert_eq!(err.refusal(), Some(expected), "{err:?}");
            let server_side = h.server.next().await.unwrap_err();
            assert!(
                matches!(server_side, HandshakeError::RefusedByPeer(_)),
                "{server_side:?}"
            );
        }
    }
}
