//! rustls server configurations for aos endpoints.

use std::sync::Arc;

use rustls::server::NoServerSessionStorage;
use rustls::{RootCertStore, ServerConfig};

use crate::tls::credentials::Credentials;
use crate::tls::error::TlsError;
use crate::tls::options::TlsOptions;
use crate::tls::policy::Policy;
use crate::tls::verifier::IdentityClientVerifier;
use crate::tls::crypto_provider;

/// Whether an endpoint requires client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Protected endpoint (mTLS): a client certificate chaining to `roots` whose identity `policy` accepts.
    Required {
        /// CA roots client certificates must chain to.
        roots: Arc<RootCertStore>,
        /// Which identities are accepted.
        policy: Policy,
    },
    /// Public endpoint: only the server authenticates.
    None,
}

/// A server configuration presenting `credentials` (resolved at each handshake, so renewals apply to new
/// connections) and authenticating clients as `client_auth` says.
///
/// With `options.session_resumption` off, the server keeps no session cache and sends no tickets, so every
/// handshake is a full one. With it on, it keeps an in-memory cache of 256 sessions and sends stateless
/// tickets (aws-lc-rs ticketer); a resumed session carries the client's original, verified certificate.
pub fn server_config(
    credentials: &Credentials,
    client_auth: ClientAuth,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.versions())
        .map_err(TlsError::Versions)?;
    let builder = match client_auth {
        ClientAuth::Required { roots, policy } => builder.with_client_cert_verifier(Arc::new(
            IdentityClientVerifier::new(roots, policy, provider)?,
        )),
        ClientAuth::None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(credentials.resolver());
    if options.session_resumption {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Versions)?;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
