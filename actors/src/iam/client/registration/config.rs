//! How a secondary reaches the main node's IAM: addresses, trust, link and retry settings.

use std::sync::Arc;
use std::time::Duration;

use aos_config::{IamConfig, TransportConfig};
use aos_transport::tls::{Fingerprint, TlsOptions};
use rustls::RootCertStore;

use crate::iam::client::{dialer_for, ClientError};
use crate::net::{Dialer, LinkConfig};

/// How a secondary reaches the main node's IAM.
#[derive(Clone)]
pub struct RegistrationConfig {
    /// The main node's public endpoint.
    pub main_public: Arc<dyn Dialer>,
    /// The main node's protected endpoint.
    pub main_protected: Arc<dyn Dialer>,
    /// The unit's CA certificates (the main node's certificate must chain to them).
    pub roots: Arc<RootCertStore>,
    /// The main node's id, when known: its certificate must then name it.
    pub main_node: Option<String>,
    /// The fingerprint of the main node's provisioning certificate, to reach it while it is unprovisioned
    /// too. Without it the main node must present its CA-issued certificate.
    pub main_fingerprint: Option<Fingerprint>,
    /// Link settings; the reconnect backoff is capped at `node_reconnect_interval`.
    pub link: LinkConfig,
    /// TLS versions and resumption.
    pub tls: TlsOptions,
    /// Pause before registering again after a refused registration.
    pub retry: Duration,
    /// How long the old link stays open after a switch of endpoint.
    pub switch_grace: Duration,
}

// === impl RegistrationConfig ===

impl RegistrationConfig {
    /// From the secondary's `[iam]` and `[transport]` tables: `main_public_addr` and `main_protected_addr`
    /// must be set (see [`RegistrationConfig::with_dialers`] for a node that reaches the main node through
    /// its MP bridge).
    pub fn new(
        iam: &IamConfig,
        transport: &TransportConfig,
        roots: Arc<RootCertStore>,
    ) -> Result<Self, ClientError> {
        let public = iam
            .main_public_addr
            .as_deref()
            .ok_or(ClientError::Missing("iam.main_public_addr is not set"))?;
        let protected = iam
            .main_protected_addr
            .as_deref()
            .ok_or(ClientError::Missing("iam.main_protected_addr is not set"))?;
        Self::with_dialers(
            iam,
            transport,
            roots,
            dialer_for(public)?,
            dialer_for(protected)?,
        )
    }

    /// From the secondary's `[iam]` and `[transport]` tables, reaching the main node's endpoints with the
    /// given dialers (e.g. tunnels of the MP bridge) instead of `main_*_addr`.
    pub fn with_dialers(
        iam: &IamConfig,
        transport: &TransportConfig,
        roots: Arc<RootCertStore>,
        main_public: Arc<dyn Dialer>,
        main_protected: Arc<dyn Dialer>,
    ) -> Result<Self, ClientError> {
        let main_fingerprint = match iam.main_fingerprint.as_deref() {
            Some(text) => Some(text.parse().map_err(
                |e: aos_transport::tls::FingerprintError| ClientError::Address {
                    addr: text.to_owned(),
                    reason: e.to_string(),
                },
            )?),
            None => None,
        };
        let interval = iam.node_reconnect_interval;
        let mut link = LinkConfig::from(transport);
        link.reconnect_backoff_max = interval;
        link.reconnect_backoff_initial = link.reconnect_backoff_initial.min(interval);
        Ok(RegistrationConfig {
            main_public,
            main_protected,
            roots,
            main_node: None,
            main_fingerprint,
            link,
            tls: TlsOptions::from(transport),
            retry: interval,
            switch_grace: Duration::from_secs(1),
        })
    }
}

impl std::fmt::Debug for RegistrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationConfig")
            .field("main_public", &self.main_public.describe())
            .field("main_protected", &self.main_protected.describe())
            .field("main_node", &self.main_node)
            .field("main_fingerprint", &self.main_fingerprint)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Arc<RootCertStore> {
        let ca = aos_pkcs11::testkit::TestCa::new("u");
        aos_transport::tls::root_store(&[ca.root_der()]).unwrap()
    }

    #[test]
    fn settings_come_from_the_iam_and_transport_tables() {
        let mut iam = IamConfig {
            main_public_addr: Some("main.local:8090".into()),
            main_protected_addr: Some("10.0.0.1:8089".into()),
            main_fingerprint: Some(vec!["AB"; 32].join(":")),
            node_reconnect_interval: Duration::from_millis(500),
            ..IamConfig::default()
        };
        let transport = TransportConfig::default();
        let config = RegistrationConfig::new(&iam, &transport, roots()).unwrap();
        assert_eq!(config.main_public.describe(), "tcp://main.local:8090");
        assert_eq!(config.main_protected.describe(), "tcp://10.0.0.1:8089");
        assert_eq!(
            config.main_fingerprint.map(|f| f.to_string()),
            Some("ab".repeat(32))
        );
        // The reconnect backoff never waits longer than the node reconnect interval.
        assert_eq!(
            config.link.reconnect_backoff_max,
            Duration::from_millis(500)
        );
        assert_eq!(
            config.link.reconnect_backoff_initial,
            Duration::from_millis(500)
        );
        assert_eq!(config.retry, Duration::from_millis(500));

        iam.main_fingerprint = Some("abcd".into());
        assert!(matches!(
            RegistrationConfig::new(&iam, &transport, roots()),
            Err(ClientError::Address { .. })
        ));
        iam.main_public_addr = None;
        assert!(matches!(
            RegistrationConfig::new(&iam, &transport, roots()),
            Err(ClientError::Missing(_))
        ));
    }
}
