//! The cloud's TLS endpoint: a server certificate issued by the unit CA for the cloud's DNS names (a
//! software key, made at start), and **optional** client authentication: a CM that presents a `cm`
//! certificate of the unit is authenticated; a CM without a certificate (before provisioning) is served
//! too, without an identity; any other certificate (another role, another unit, a foreign CA, expired)
//! fails the handshake.

use std::sync::Arc;
use std::time::Duration;

use aos_transport::tls::{
    crypto_provider, root_store, ClientAuth, Credentials, Policy, Role, TlsOptions,
};
use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;

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

/// The cloud's rustls configuration: `credentials` as server certificate; clients optionally authenticated
/// as role `cm` of `ca`'s unit (`ClientAuth::Optional` of the transport).
pub fn server_config(
    ca: &CloudCa,
    credentials: &Credentials,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, ServerError> {
    let client_auth = ClientAuth::Optional {
        roots: root_store(std::slice::from_ref(ca.root_der()))?,
        policy: Policy::roles([Role::Cm]).with_unit(ca.unit_id()),
    };
    Ok(aos_transport::tls::server_config(
        credentials,
        client_auth,
        options,
    )?)
}
