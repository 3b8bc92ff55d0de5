//! rustls client configurations for aos links.

use std::sync::Arc;

use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{ClientConfig, RootCertStore};

use crate::tls::credentials::Credentials;
use crate::tls::crypto_provider;
use crate::tls::error::TlsError;
use crate::tls::options::TlsOptions;
use crate::tls::pinned::{Fingerprint, PinnedServerVerifier};
use crate::tls::policy::Policy;
use crate::tls::verifier::IdentityServerVerifier;

/// How a client authenticates the server.
#[derive(Debug, Clone)]
pub enum ServerAuth {
    /// An aos node: the chain leads to `roots`, the certificate allows serverAuth, and its `urn:aos:`
    /// identity is accepted by `policy`. The DNS server name is not checked (it is sent as SNI only).
    Identity {
        /// CA roots the server's chain must lead to.
        roots: Arc<RootCertStore>,
        /// Which server identities are accepted (e.g. role `iam`, node `main`).
        policy: Policy,
    },
    /// A server with an ordinary web certificate (e.g. the cloud): the chain leads to `roots` and the
    /// certificate is valid for the server name passed to `connect` (webpki's standard check).
    HostName {
        /// CA roots the server's chain must lead to.
        roots: Arc<RootCertStore>,
    },
    /// The provisioning channel: exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
}

/// A client configuration that authenticates the server as `server_auth` says and, when `credentials` is
/// given, presents them if the server asks (resolved at each handshake, so renewals apply to new
/// connections). With `options.session_resumption` off the client stores no sessions.
pub fn client_config(
    server_auth: ServerAuth,
    credentials: Option<&Credentials>,
    options: &TlsOptions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.versions())
        .map_err(TlsError::Versions)?;
    let builder = match server_auth {
        ServerAuth::Identity { roots, policy } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(IdentityServerVerifier::new(
                roots, policy, provider,
            )?)),
        ServerAuth::HostName { roots } => {
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            builder.with_webpki_verifier(
                WebPkiServerVerifier::builder_with_provider(roots, provider).build()?,
            )
        }
        ServerAuth::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(pin, provider))),
    };
    let mut config = match credentials {
        Some(credentials) => builder.with_client_cert_resolver(credentials.resolver()),
        None => builder.with_no_client_auth(),
    };
    config.resumption = if options.session_resumption {
        Resumption::default()
    } else {
        Resumption::disabled()
    };
    config.enable_early_data = false;
    Ok(Arc::new(config))
}
