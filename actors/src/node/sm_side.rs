//! The node's SM: its IAM (in process on the main node, the main node's protected endpoint on a
//! secondary) and its CM (this node's own, or through the bridge).

use std::sync::Arc;

use aos_transport::frame::Channel;
use aos_transport::tls::{Policy, Role, TlsOptions};
use rustls::RootCertStore;

use super::{follow, loopback, Node, NodeError, NodeOptions};
use crate::cm::{Cm, HostDialer, IamAccess, LocalIam};
use crate::iam::client::{client_tls, IamClient, IamServerAuth};
use crate::iam::server::EndpointKind;
use crate::net::{CredentialGate, Dialer, LinkConfig, TcpDialer};
use crate::sm::{ProcessRunner, Sm, SmOptions, SmParts};

impl Node {
    /// The SM, when `sm.enabled`.
    pub(super) async fn start_sm(
        &mut self,
        options: &NodeOptions,
        roots: &Arc<RootCertStore>,
    ) -> Result<(), NodeError> {
        let config = self.config.clone();
        if !config.sm.enabled {
            return Ok(());
        }
        let unit = &config.node.unit_id;
        let credentials = follow(&self.core.certs, "sm");
        let (iam, cm): (Arc<dyn IamAccess>, Option<Arc<dyn Dialer>>) = if config.node.is_main() {
            let cm = self.cm.as_ref().and_then(Cm::sm_controller).map(|sm| {
                gate(
                    Arc::new(TcpDialer::new(loopback(sm.local_addr()))),
                    &credentials,
                )
            });
            let iam = LocalIam::new(self.core.service.clone(), unit, Role::Sm)?;
            (Arc::new(iam), cm)
        } else {
            let cm = self
                .bridge
                .as_ref()
                .map(|bridge| gate(Arc::new(bridge.dialer(Channel::CmSecure)), &credentials));
            let dialer = self.main_dialer(
                config.iam.main_protected_addr.as_deref(),
                Channel::IamSecure,
            )?;
            let tls_options = TlsOptions::from(&config.transport);
            let auth = IamServerAuth::Identity {
                roots: roots.clone(),
                policy: Policy::roles([Role::Iam]).with_unit(unit.clone()),
            };
            let client = IamClient::connect(
                &self.pool,
                gate(dialer, &credentials),
                client_tls(auth, Some(&credentials), &tls_options)?,
                EndpointKind::Protected,
                LinkConfig::from(&config.transport),
            )?;
            (Arc::new(client), cm)
        };
        let cm: Arc<dyn Dialer> = match (&config.sm.cm_addr, cm) {
            (Some(addr), _) => gate(Arc::new(HostDialer::new(addr.clone())), &credentials),
            (None, Some(cm)) => cm,
            (None, None) => return Err(NodeError::Unreachable(
                "the SM has no CM: set sm.cm_addr, or enable the CM (main node) or the MP bridge \
                     (secondary node)",
            )),
        };
        let runner = options
            .runner
            .clone()
            .unwrap_or_else(|| Arc::new(ProcessRunner::default()));
        let parts = SmParts {
            unit_id: unit.clone(),
            node_id: config.node.id.clone(),
            iam,
            credentials,
            roots: roots.clone(),
            pool: self.pool.clone(),
            runner,
        };
        self.sm = Some(Sm::start(parts, SmOptions::from_config(&config, cm))?);
        Ok(())
    }
}

/// `dialer`, dialing only once the SM has its certificate: before, the CM and the main node's IAM would
/// only refuse it (both ask for a client certificate).
fn gate(dialer: Arc<dyn Dialer>, credentials: &aos_transport::tls::Credentials) -> Arc<dyn Dialer> {
    Arc::new(CredentialGate::new(dialer, credentials.clone(), "sm"))
}
