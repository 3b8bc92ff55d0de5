//! Credentials that can be swapped at runtime: the current certificate chain and signing key, read by
//! rustls at every handshake.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use crate::tls::error::CredentialsError;
use crate::tls::identity::PeerIdentity;
use crate::tls::refusal::describe;

/// The certificate and key this endpoint presents, swappable while connections are live.
///
/// Clones share the same value. [`Credentials::set`] checks that key and certificate belong together, then
/// publishes them: handshakes that start afterwards present the new chain, established connections are not
/// touched. Until the first `set`, [`Credentials::is_ready`] is false and handshakes that need a certificate
/// fail (a server has nothing to present, a client sends an empty certificate and is refused).
#[derive(Clone)]
pub struct Credentials {
    current: Arc<watch::Sender<Option<Arc<CertifiedKey>>>>,
}

/// Reads [`Credentials`] at handshake time, for a rustls server or client configuration.
#[derive(Debug, Clone)]
pub struct CredentialResolver {
    credentials: Credentials,
}

// === impl Credentials ===

impl Credentials {
    /// Empty credentials: not ready until [`Credentials::set`].
    pub fn new() -> Credentials {
        Credentials {
            current: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Credentials holding `chain` (leaf first) and `key` from the start.
    pub fn with(
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn SigningKey>,
    ) -> Result<Credentials, CredentialsError> {
        let credentials = Credentials::new();
        credentials.set(chain, key)?;
        Ok(credentials)
    }

    /// Publish `chain` (leaf first) and `key` for new handshakes, after checking that the leaf certificate
    /// parses and is for `key`. On error the previous credentials stay in force.
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn SigningKey>,
    ) -> Result<(), CredentialsError> {
        let certified = CertifiedKey::new(chain, key);
        let leaf = certified
            .end_entity_cert()
            .map_err(|_| CredentialsError::EmptyChain)?;
        let described = describe(leaf);
        let identity = PeerIdentity::from_certificate(leaf).ok();
        certified.keys_match().map_err(|err| match err {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                CredentialsError::KeyMismatch
            }
            rustls::Error::InconsistentKeys(_) => CredentialsError::KeyWithoutPublicKey,
            other => CredentialsError::BadCertificate(other),
        })?;
        self.current.send_replace(Some(Arc::new(certified)));
        match identity {
            Some(identity) => tracing::info!(%identity, "TLS credentials set: {described}"),
            None => tracing::info!("TLS credentials set: {described}"),
        }
        Ok(())
    }

    /// Withdraw the credentials (e.g. on deprovisioning): new handshakes fail until the next `set`.
    pub fn clear(&self) {
        self.current.send_replace(None);
        tracing::info!("TLS credentials cleared");
    }

    /// The chain and key in force.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.borrow().clone()
    }

    /// Whether a certificate is set.
    pub fn is_ready(&self) -> bool {
        self.current.borrow().is_some()
    }

    /// A receiver told of every change (to wait for readiness or watch renewals).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<CertifiedKey>>> {
        self.current.subscribe()
    }

    /// The resolver to put into a rustls configuration.
    pub fn resolver(&self) -> Arc<CredentialResolver> {
        Arc::new(CredentialResolver {
            credentials: self.clone(),
        })
    }
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials::new()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leaf = self
            .current()
            .and_then(|ck| ck.end_entity_cert().ok().map(describe));
        f.debug_struct("Credentials").field("leaf", &leaf).finish()
    }
}

// === impl CredentialResolver ===

impl ResolvesServerCert for CredentialResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.credentials.current();
        if current.is_none() {
            tracing::warn!("TLS handshake refused: no server certificate set yet");
        }
        current
    }
}

impl ResolvesClientCert for CredentialResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let current = self.credentials.current();
        if current.is_none() {
            tracing::warn!("server asked for a client certificate but none is set yet");
        }
        current
    }

    fn has_certs(&self) -> bool {
        self.credentials.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testutil::{software_key, Pki};

    #[test]
    fn not_ready_until_set_and_mismatched_keys_are_refused() {
        let pki = Pki::new("creds");
        let (key, signing) = software_key();
        let (_, other) = software_key();
        let chain = pki.leaf(&key).issue();
        let creds = Credentials::new();
        assert!(!creds.is_ready());
        assert!(creds.current().is_none());
        assert!(!creds.resolver().has_certs());

        assert!(matches!(
            creds.set(chain.clone(), other),
            Err(CredentialsError::KeyMismatch)
        ));
        assert!(!creds.is_ready(), "a refused set must not publish");
        assert!(matches!(
            creds.set(Vec::new(), signing.clone()),
            Err(CredentialsError::EmptyChain)
        ));

        let changes = creds.subscribe();
        creds.set(chain.clone(), signing).unwrap();
        assert!(creds.is_ready());
        assert!(changes.has_changed().unwrap());
        assert_eq!(
            creds.current().unwrap().end_entity_cert().unwrap(),
            &chain[0]
        );
        assert!(creds.resolver().has_certs());

        creds.clear();
        assert!(!creds.is_ready());
    }
}
