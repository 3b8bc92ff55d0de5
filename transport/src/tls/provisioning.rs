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
        Ok(Credentials::with(vec![self.cert.clone()], self.key.clone())?)
    }
}

impl std::fmt::Debug for ProvisioningCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningCert")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}
