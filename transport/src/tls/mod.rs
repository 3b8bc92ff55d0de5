//! TLS for aos links: rustls server and client configurations built from token-held keys, peer identity
//! from the `urn:aos:<unit>:<node>:<role>` SAN, role-based authorization, swappable credentials, handshake
//! helpers with a timeout and an acceptance confirmation, and the provisioning-mode server certificate.
//!
//! Every configuration uses the aws-lc-rs provider explicitly ([`crypto_provider`]); nothing here relies on a
//! process-default provider. Keys are any `Arc<dyn rustls::sign::SigningKey>`: an `aos_pkcs11::TokenKey` on a
//! device, a software key in benchmarks and tools.
//!
//! A server:
//! ```no_run
//! # use std::sync::Arc;
//! # use aos_transport::tls::*;
//! # async fn run(roots: Arc<rustls::RootCertStore>, creds: Credentials, tcp: tokio::net::TcpStream)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let options = TlsOptions::default();
//! let config = server_config(
//!     &creds,
//!     ClientAuth::Required { roots, policy: Policy::roles([Role::Sm]) },
//!     &options,
//! )?;
//! let acceptor = tokio_rustls::TlsAcceptor::from(config);
//! let (stream, peer) = accept(&acceptor, tcp, options.handshake_timeout).await?;
//! # Ok(()) }
//! ```
//! See `docs/tls.md` for the decisions behind it.

mod client;
mod credentials;
mod error;
mod handshake;
mod identity;
mod options;
mod pinned;
mod policy;
mod provisioning;
mod refusal;
mod server;
mod stats;
mod verifier;

#[cfg(any(test, feature = "testkit"))]
pub mod testutil;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

pub use client::{client_config, ServerAuth};
pub use credentials::{CredentialResolver, Credentials};
pub use error::{CredentialsError, HandshakeError, TlsError};
pub use handshake::{accept, connect, ACCEPTED_MARKER};
pub use identity::{identity_uri, IdentityError, PeerIdentity, Role, URN_PREFIX};
pub use options::TlsOptions;
pub use pinned::{Fingerprint, FingerprintError, PinnedServerVerifier};
pub use policy::Policy;
pub use provisioning::ProvisioningCert;
pub use refusal::{Refusal, RefusalReason};
pub use server::{server_config, ClientAuth};
pub use stats::{handshake_stats, HandshakeStats};
pub use verifier::{IdentityClientVerifier, IdentityServerVerifier};

/// The crypto provider of every aos TLS configuration: rustls' aws-lc-rs provider, built once.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// A root store holding `roots` (the unit's CA certificates). Fails if `roots` is empty or one of them is
/// not a usable trust anchor.
pub fn root_store(roots: &[CertificateDer<'_>]) -> Result<Arc<RootCertStore>, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for (index, root) in roots.iter().enumerate() {
        store
            .add(root.clone().into_owned())
            .map_err(|source| TlsError::BadRoot { index, source })?;
    }
    Ok(Arc::new(store))
}
