//! The main node's components: CM (with the validator renewing through the cloud) and MP server.

use std::sync::Arc;

use actix::Actor;
use aos_transport::frame::Channel;
use aos_transport::link::LinkAddr;
use aos_transport::tls::{Role, TlsOptions};
use rustls::RootCertStore;

use super::{follow, loopback, Node, NodeError, NodeOptions};
use crate::cm::{Cm, CmOptions, CmParts, LocalIam};
use crate::iam::validator::CertValidator;
use crate::mp::{server_tls, MpServer, ServerSettings};

impl Node {
    /// CM, validator and MP server, as the configuration asks.
    pub(super) async fn start_main(
        &mut self,
        options: &NodeOptions,
        roots: &Arc<RootCertStore>,
    ) -> Result<(), NodeError> {
        let config = self.config.clone();
        let unit = &config.node.unit_id;
        if config.cm.enabled {
            let parts = CmParts {
                unit_id: unit.clone(),
                node_id: config.node.id.clone(),
                iam: Arc::new(LocalIam::new(self.core.service.clone(), unit, Role::Cm)?),
                credentials: follow(&self.core.certs, "cm"),
                roots: roots.clone(),
                pool: self.pool.clone(),
            };
            self.cm = Some(Cm::start(parts, CmOptions::from_config(&config)?).await?);
        }
        match self.cm.as_ref().and_then(Cm::renewer) {
            Some(renewer) => {
                let validator = CertValidator::new(
                    self.core.certs.clone(),
                    options.clock.clone(),
                    Arc::new(renewer),
                    config.renewal.clone(),
                    options.validator.clone(),
                )
                .start();
                self.core.validator = Some(validator);
            }
            None => tracing::info!(
                "no cloud link: certificates are renewed only when the cloud or an operator asks"
            ),
        }
        if let Some(mut settings) = ServerSettings::from_config(&config)? {
            let own = |addr| LinkAddr::Tcp(loopback(addr));
            let targets = &mut settings.targets;
            targets
                .entry(Channel::IamOpen)
                .or_insert_with(|| own(self.server.public_addr()));
            targets
                .entry(Channel::IamSecure)
                .or_insert_with(|| own(self.server.protected_addr()));
            if let Some(sm) = self.cm.as_ref().and_then(Cm::sm_controller) {
                targets
                    .entry(Channel::CmSecure)
                    .or_insert_with(|| own(sm.local_addr()));
            }
            // The MP link presents the node's `mp` certificate if it has that module, else its IAM one.
            let credentials = if config.enabled_cert_modules().any(|m| m.id == "mp") {
                follow(&self.core.certs, "mp")
            } else {
                self.local.iam_credentials()
            };
            let tls = server_tls(
                &credentials,
                roots.clone(),
                unit,
                &TlsOptions::from(&config.transport),
            )?;
            self.mp_server = Some(MpServer::start(&self.pool, settings, tls).await?);
        }
        Ok(())
    }
}
