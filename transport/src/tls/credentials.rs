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
            tracing::debug!("TLS handshake refused: no server certificate set yet");
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
            tracing::debug!("server asked for a client certificate but none is set yet");
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

#[cfg(test)]
mod swap_tests {
    use std::sync::Arc;

    use aos_pkcs11::KeyAlgorithm;

    use crate::tls::testutil::{dial, echo, id, peer_serial, Harness};
    use crate::tls::{Policy, Role};

    #[tokio::test]
    async fn a_swap_applies_to_new_handshakes_while_live_connections_go_on() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (client_key, client_creds) = h.client_creds(|pki, key| {
            pki.leaf(key)
                .identity(id("n1", Role::Sm))
                .serial(0x11)
                .issue()
        });
        let server_key = h.server_key.clone();
        h.server_creds
            .set(
                h.pki
                    .leaf(&server_key)
                    .identity(id("main", Role::Iam))
                    .serial(0x01)
                    .issue(),
                Arc::new(server_key),
            )
            .unwrap();

        let (mut old, _) = dial(h.server.addr, h.client_config(Some(&client_creds)))
            .await
            .unwrap();
        assert_eq!(h.server.next().await.unwrap(), Some(id("n1", Role::Sm)));
        assert_eq!(peer_serial(&old), "01");
        assert_eq!(echo(&mut old, b"before").await, b"before");

        // Renewal: both sides get a new key and certificate.
        let new_server_key = h.hsm.key("iam-new", KeyAlgorithm::EccP384);
        h.server_creds
            .set(
                h.pki
                    .leaf(&new_server_key)
                    .identity(id("main", Role::Iam))
                    .serial(0x02)
                    .issue(),
                Arc::new(new_server_key.clone()),
            )
            .unwrap();
        let new_client_key = h.hsm.key("sm-new", KeyAlgorithm::EccP256);
        client_creds
            .set(
                h.pki
                    .leaf(&new_client_key)
                    .identity(id("n1-renewed", Role::Sm))
                    .serial(0x12)
                    .issue(),
                Arc::new(new_client_key.clone()),
            )
            .unwrap();

        // The live connection keeps exchanging data on the old session.
        for round in 0..3 {
            let msg = format!("after swap {round}");
            assert_eq!(echo(&mut old, msg.as_bytes()).await, msg.as_bytes());
        }
        assert_eq!(peer_serial(&old), "01");

        // A new connection sees the new certificates on both sides, signed by the new keys.
        let (mut new, peer) = dial(h.server.addr, h.client_config(Some(&client_creds)))
            .await
            .unwrap();
        assert_eq!(peer, Some(id("main", Role::Iam)));
        assert_eq!(peer_serial(&new), "02");
        assert_eq!(
            h.server.next().await.unwrap(),
            Some(id("n1-renewed", Role::Sm))
        );
        assert_eq!(echo(&mut new, b"new").await, b"new");
        assert_eq!(new_server_key.sign_count(), 1);
        assert_eq!(new_client_key.sign_count(), 1);
        assert_eq!(
            client_key.sign_count(),
            1,
            "the old client key signed once, before the swap"
        );
        assert_eq!(echo(&mut old, b"still alive").await, b"still alive");
    }
}
