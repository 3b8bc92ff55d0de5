//! A secondary node's components: the MP bridge and the registration with the main node.

use std::sync::Arc;

use aos_config::mp::BRIDGE_CERT_TYPE;
use aos_transport::frame::Channel;
use aos_transport::tls::TlsOptions;
use rustls::RootCertStore;

use super::{follow, Node, NodeError};
use crate::iam::client::{dialer_for, Registration, RegistrationConfig};
use crate::mp::{BridgeSettings, BridgeTls, MpBridge};
use crate::net::Dialer;

impl Node {
    /// The bridge (with `mp.main_addr`) and the registration client.
    pub(super) async fn start_secondary(
        &mut self,
        roots: &Arc<RootCertStore>,
    ) -> Result<(), NodeError> {
        let config = self.config.clone();
        if let Some(settings) = BridgeSettings::from_config(&config)? {
            let tls = BridgeTls::new(
                follow(&self.core.certs, BRIDGE_CERT_TYPE),
                roots.clone(),
                &config.node.unit_id,
                &TlsOptions::from(&config.transport),
            )?;
            self.bridge = Some(MpBridge::start(&self.pool, settings, tls).await?);
        }
        let public = self.main_dialer(config.iam.main_public_addr.as_deref(), Channel::IamOpen)?;
        let protected = self.main_dialer(
            config.iam.main_protected_addr.as_deref(),
            Channel::IamSecure,
        )?;
        let registration = RegistrationConfig::with_dialers(
            &config.iam,
            &config.transport,
            roots.clone(),
            public,
            protected,
        )?;
        self.registration = Some(Registration::start(
            self.local.clone(),
            registration,
            self.pool.clone(),
        ));
        Ok(())
    }

    /// How to reach the main node's endpoint of `channel`: `addr` when configured, else a tunnel of the
    /// bridge.
    pub(super) fn main_dialer(
        &self,
        addr: Option<&str>,
        channel: Channel,
    ) -> Result<Arc<dyn Dialer>, NodeError> {
        match (addr, &self.bridge) {
            (Some(addr), _) => Ok(dialer_for(addr)?),
            (None, Some(bridge)) => Ok(Arc::new(bridge.dialer(channel))),
            (None, None) => Err(NodeError::Unreachable(
                "a secondary node needs iam.main_public_addr and iam.main_protected_addr, or an MP \
                 bridge (mp.main_addr)",
            )),
        }
    }
}
