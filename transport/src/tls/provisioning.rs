//! The provisioning-mode server certificate: self-signed, generated at start, pinned by clients through its
//! SHA-256 fingerprint.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};
use rustls::sign::SigningKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::credentials::Credentials;
use crate::tls::error::TlsError;
use crate::tls::identity::PeerIdentity;
use crate::tls::pinned::Fingerprint;

/// A self-signed server certificate for an unprovisioned node, whose SAN carries the node identity.
///
/// The key is a software ECDSA P-256 key that lives only in memory ([`ProvisioningCert::generate`]), or a
/// token key ([`ProvisioningCert::generate_with_key`]). Clients pin [`ProvisioningCert::fingerprint`]
/// (printed by the daemon, shown by `aosctl`), so the certificate's dates and issuer do not matter.
pub struct ProvisioningCert {
    cert: CertificateDer<'static>,
    pem: String,
    key: Arc<dyn SigningKey>,
    fingerprint: Fingerprint,
}

// === impl ProvisioningCert ===

impl ProvisioningCert {
    /// Generate a software key and a self-signed certificate for `identity` (plus optional DNS names).
    pub fn generate(
        identity: &PeerIdentity,
        dns_names: &[String],
    ) -> Result<ProvisioningCert, TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialized_der()));
        // Borrowed: no extra copy of the private key is made.
        let signing =
            rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&der).map_err(TlsError::Key)?;
        ProvisioningCert::build(identity, dns_names, &key_pair, signing)
    }

    /// A self-signed certificate for `identity` (plus optional DNS names), signed by `key` (e.g. a
    /// `TokenKey`), which also signs the handshakes.
    pub fn generate_with_key<K>(
        identity: &PeerIdentity,
        dns_names: &[String],
        key: K,
    ) -> Result<ProvisioningCert, TlsError>
    where
        K: rcgen::SigningKey + SigningKey + Clone + 'static,
    {
        ProvisioningCert::build(identity, dns_names, &key.clone(), Arc::new(key))
    }

    fn build(
        identity: &PeerIdentity,
        dns_names: &[String],
        cert_key: &impl rcgen::SigningKey,
        signing: Arc<dyn SigningKey>,
    ) -> Result<ProvisioningCert, TlsError> {
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params
            .subject_alt_names
            .push(SanType::URI(identity.uri().try_into()?));
        params.distinguished_name.push(
            DnType::CommonName,
            format!("aos provisioning {}", identity.node),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(cert_key)?;
        let der = cert.der().clone();
        let fingerprint = Fingerprint::of(&der);
        tracing::info!(%identity, %fingerprint, "generated the provisioning certificate");
        Ok(ProvisioningCert {
            pem: cert.pem(),
            cert: der,
            key: signing,
            fingerprint,
        })
    }

    /// The SHA-256 fingerprint clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The DER certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Credentials presenting this certificate.
    pub fn credentials(&self) -> Result<Credentials, TlsError> {
        Ok(Credentials::with(
            vec![self.cert.clone()],
            self.key.clone(),
        )?)
    }
}

impl std::fmt::Debug for ProvisioningCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningCert")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aos_pkcs11::KeyAlgorithm;
    use rustls::AlertDescription;

    use super::*;
    use crate::tls::testutil::{dial, echo, id, EchoServer, Hsm};
    use crate::tls::{
        client_config, server_config, ClientAuth, HandshakeError, RefusalReason, Role, ServerAuth,
        TlsOptions,
    };

    async fn provisioning_server(cert: &ProvisioningCert) -> EchoServer {
        let config = server_config(
            &cert.credentials().unwrap(),
            ClientAuth::None,
            &TlsOptions::default(),
        )
        .unwrap();
        EchoServer::start(config, Duration::from_secs(10)).await
    }

    fn pinned(pin: Fingerprint) -> Arc<rustls::ClientConfig> {
        client_config(ServerAuth::Pinned(pin), None, &TlsOptions::default()).unwrap()
    }

    #[tokio::test]
    async fn the_right_pin_is_accepted_and_a_wrong_one_refused() {
        let cert =
            ProvisioningCert::generate(&id("main", Role::Iam), &["main.local".into()]).unwrap();
        assert_eq!(cert.fingerprint(), Fingerprint::of(cert.certificate()));
        assert!(cert.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            PeerIdentity::from_certificate(cert.certificate()).unwrap(),
            id("main", Role::Iam)
        );
        let mut server = provisioning_server(&cert).await;

        let pin: Fingerprint = cert.fingerprint().to_string().parse().unwrap();
        let (mut stream, peer) = dial(server.addr, pinned(pin)).await.unwrap();
        assert_eq!(peer, Some(id("main", Role::Iam)));
        assert_eq!(server.next().await.unwrap(), None);
        assert_eq!(
            echo(&mut stream, b"password over TLS").await,
            b"password over TLS"
        );

        let other = ProvisioningCert::generate(&id("main", Role::Iam), &[]).unwrap();
        assert_ne!(other.fingerprint(), cert.fingerprint());
        let err = dial(server.addr, pinned(other.fingerprint()))
            .await
            .unwrap_err();
        assert_eq!(err.refusal(), Some(RefusalReason::PinMismatch), "{err:?}");
        let server_side = server.next().await.unwrap_err();
        assert!(
            matches!(
                server_side,
                HandshakeError::RefusedByPeer(AlertDescription::CertificateUnknown)
            ),
            "{server_side:?}"
        );
    }

    #[tokio::test]
    async fn a_token_key_can_sign_the_provisioning_cert_and_its_handshakes() {
        let hsm = Hsm::new();
        let key = hsm.key("provisioning", KeyAlgorithm::EccP384);
        let cert =
            ProvisioningCert::generate_with_key(&id("main", Role::Iam), &[], key.clone()).unwrap();
        assert_eq!(key.sign_count(), 1, "the token signed the certificate");
        let mut server = provisioning_server(&cert).await;
        let (_, peer) = dial(server.addr, pinned(cert.fingerprint())).await.unwrap();
        assert_eq!(peer, Some(id("main", Role::Iam)));
        assert!(server.next().await.is_ok());
        assert_eq!(key.sign_count(), 2, "the token signed the handshake");
    }
}
