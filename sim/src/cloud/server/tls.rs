//! The cloud's TLS endpoint: a server certificate issued by the unit CA for the cloud's DNS names (a
//! software key, made at start), and **optional** client authentication: a CM that presents a `cm`
//! certificate of the unit is authenticated; a CM without a certificate (before provisioning) is served
//! too, without an identity; any other certificate (another role, another unit, a foreign CA, expired)
//! fails the handshake.

use std::sync::Arc;
use std::time::Duration;

use aos_transport::tls::{
    crypto_provider, root_store, Credentials, IdentityClientVerifier, Policy, Role, TlsOptions,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::error::ServerError;
use crate::cloud::CloudCa;

/// Lifetime of the cloud's own server certificate.
pub const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The cloud's server credentials: a fresh P-256 software key and a certificate for `names` from `ca`.
pub fn server_credentials(ca: &CloudCa, names: &[String]) -> Result<Credentials, ServerError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| ServerError::Key(e.to_string()))?;
    let chain = ca.sign_server_cert(&key, names, SERVER_CERT_LIFETIME)?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = crypto_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| ServerError::Key(e.to_string()))?;
    Credentials::with(chain, signing).map_err(|e| ServerError::Key(e.to_string()))
}

/// Client authentication that is offered but not required: a certificate, when sent, must pass `inner`.
#[derive(Debug)]
pub struct OptionalClientAuth {
    inner: IdentityClientVerifier,
}

impl OptionalClientAuth {
    /// Accept clients without a certificate, and clients whose certificate `inner` accepts.
    pub fn new(inner: IdentityClientVerifier) -> OptionalClientAuth {
        OptionalClientAuth { inner }
    }
}

impl ClientCertVerifier for OptionalClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The cloud's rustls configuration: `credentials` as server certificate; clients optionally authenticated
/// as role `cm` of `ca`'s unit. Resumption and 0-RTT follow `options` as `aos_transport::tls::server_config`
/// does.
pub fn server_config(
    ca: &CloudCa,
    credentials: &Credentials,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, ServerError> {
    let provider = crypto_provider();
    let roots = root_store(std::slice::from_ref(ca.root_der()))?;
    let policy = Policy::roles([Role::Cm]).with_unit(ca.unit_id());
    let verifier = IdentityClientVerifier::new(roots, policy, provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(options.versions())
        .map_err(|e| ServerError::Tls(aos_transport::tls::TlsError::Versions(e)))?
        .with_client_cert_verifier(Arc::new(OptionalClientAuth::new(verifier)))
        .with_cert_resolver(credentials.resolver());
    if options.session_resumption {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| ServerError::Tls(aos_transport::tls::TlsError::Ticketer(e)))?;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
