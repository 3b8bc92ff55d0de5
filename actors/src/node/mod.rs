//! `Node`: one node of a unit, every actor its configuration asks for, started and stopped as a whole.
//!
//! | component | main node | secondary node |
//! |---|---|---|
//! | IAM actors ([`IamCore`]) and endpoints ([`IamServer`]) | yes | yes |
//! | node controller (secondaries register, requests are forwarded) | yes | — |
//! | registration with the main node ([`Registration`]) | — | yes: `iam.main_*_addr`, else tunnels of the bridge |
//! | CM: cloud link, SM controller, validator renewing through the cloud | `cm.enabled` | — |
//! | MP server ([`MpServer`]), unset channels go to this node's own endpoints | `mp.listen` | — |
//! | MP bridge ([`MpBridge`]) with the `mp` certificate | — | `mp.main_addr` |
//! | SM ([`Sm`](crate::sm::Sm)) | `sm.enabled`: this node's CM, IAM in process | `sm.enabled`: CM and the main node's IAM through the bridge (or `sm.cm_addr` / `iam.main_protected_addr`) |
//!
//! Each component presents its own certificate (`cm`, `sm`, `mp`, and `cert_storage` for IAM), followed as
//! it is renewed. The daemon, the simulator and the whole-unit tests build nodes with [`Node::start`]. See
//! `docs/node.md`.

mod error;
mod main_node;
mod options;
mod secondary_node;
mod sm_side;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Actor;
use aos_config::Config;
use aos_transport::tls::{root_store, Credentials, Fingerprint};

pub use error::NodeError;
pub use options::NodeOptions;

use crate::cm::{CertCredentials, Cm};
use crate::iam::cert_handler::CertHandler;
use crate::iam::client::Registration;
use crate::iam::core::{CoreOptions, IamCore};
use crate::iam::nodes::NodeControllerHandle;
use crate::iam::server::{IamServer, IamServerConfig, LocalNode, LocalStatus};
use crate::mp::{MpBridge, MpServer};
use crate::net::ArbiterPool;
use crate::sm::SmHandle;

/// One running node. Dropping it leaves the actors running until the actix system stops; call
/// [`Node::stop`] to drain first.
pub struct Node {
    config: Arc<Config>,
    core: IamCore,
    local: LocalNode,
    server: IamServer,
    controller: Option<NodeControllerHandle>,
    cm: Option<Cm>,
    mp_server: Option<MpServer>,
    bridge: Option<MpBridge>,
    registration: Option<Registration>,
    sm: Option<SmHandle>,
    pool: ArbiterPool,
}

// === impl Node ===

impl Node {
    /// Start every component `config` asks for. Must run inside an actix system. Fails, naming the
    /// component, when one cannot start (a port in use, a broken CA file, an unreachable setting); what
    /// started before is stopped again.
    pub async fn start(config: &Config, options: NodeOptions) -> Result<Node, NodeError> {
        // Fail at start, not at the first provisioning, when a PKCS#11 library is missing or broken.
        for module in config.enabled_cert_modules() {
            let library = &module.pkcs11.library;
            aos_pkcs11::Module::open(library).map_err(|source| NodeError::Pkcs11 {
                module: module.id.clone(),
                library: library.display().to_string(),
                source,
            })?;
        }
        let pool = ArbiterPool::new(options.workers.max(1));
        let mut core = IamCore::start(
            config,
            CoreOptions {
                clock: options.clock.clone(),
                renewer: None,
                validator: options.validator.clone(),
                provisioner: options.provisioner.clone(),
            },
        )?;
        let roots = root_store(&core.ca_certs)?;
        let controller = config.node.is_main().then(|| {
            NodeControllerHandle::start(&config.node.unit_id, &config.node.id, options.forward)
        });
        if let Some(controller) = &controller {
            core.service = core
                .service
                .clone()
                .with_forwarder(Arc::new(controller.clone()));
        }
        let local = LocalNode::start(
            core.service.clone(),
            core.certs.clone(),
            config.cert_storage.clone(),
            options.refresh_interval,
        )
        .await?;
        let server = IamServer::start(
            local.clone(),
            controller.clone(),
            IamServerConfig::new(&config.iam, &config.transport, roots.clone()),
            pool.clone(),
        )
        .await?;
        let mut node = Node {
            config: Arc::new(config.clone()),
            core,
            local,
            server,
            controller,
            cm: None,
            mp_server: None,
            bridge: None,
            registration: None,
            sm: None,
            pool,
        };
        let started = if config.node.is_main() {
            node.start_main(&options, &roots).await
        } else {
            node.start_secondary(&roots).await
        };
        let started = match started {
            Ok(()) => node.start_sm(&options, &roots).await,
            Err(err) => Err(err),
        };
        if let Err(err) = started {
            node.stop().await;
            return Err(err);
        }
        tracing::info!(
            node = %config.node.id,
            unit = %config.node.unit_id,
            main = config.node.is_main(),
            cm = node.cm.is_some(),
            mp_server = node.mp_server.is_some(),
            bridge = node.bridge.is_some(),
            sm = node.sm.is_some(),
            "node started"
        );
        Ok(node)
    }

    /// Stop the components in reverse order: SM, registration, MP bridge and server, CM, IAM endpoints
    /// (each accepted link is told why). IAM's actors stop with the actix system.
    pub async fn stop(&mut self) {
        if let Some(sm) = self.sm.take() {
            sm.stop().await;
        }
        if let Some(registration) = self.registration.take() {
            registration.stop().await;
        }
        if let Some(bridge) = self.bridge.take() {
            bridge.shutdown();
        }
        if let Some(server) = self.mp_server.take() {
            server.shutdown();
        }
        if let Some(cm) = self.cm.take() {
            cm.stop().await;
        }
        self.server.shutdown().await;
        tracing::info!(node = %self.config.node.id, "node stopped");
    }

    /// The configuration the node runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Provisioning state and the node's own certificate, now.
    pub fn status(&self) -> LocalStatus {
        self.local.status()
    }

    /// Whether the node holds its own certificate (provisioned): it then serves the protected endpoint.
    pub fn is_ready(&self) -> bool {
        self.status().has_identity()
    }

    /// Where the IAM public endpoint listens (the actual port when configured with port 0).
    pub fn public_addr(&self) -> SocketAddr {
        self.server.public_addr()
    }

    /// Where the IAM protected endpoint listens.
    pub fn protected_addr(&self) -> SocketAddr {
        self.server.protected_addr()
    }

    /// The fingerprint of this run's provisioning certificate (what clients pin while unprovisioned).
    pub fn provisioning_fingerprint(&self) -> Fingerprint {
        self.server.provisioning_fingerprint()
    }

    /// IAM's actors and request executor.
    pub fn iam(&self) -> &IamCore {
        &self.core
    }

    /// The node's own state and TLS identity.
    pub fn local(&self) -> &LocalNode {
        &self.local
    }

    /// The node controller (main node).
    pub fn controller(&self) -> Option<&NodeControllerHandle> {
        self.controller.as_ref()
    }

    /// The CM (main node with `cm.enabled`).
    pub fn cm(&self) -> Option<&Cm> {
        self.cm.as_ref()
    }

    /// The MP server (main node with `mp.listen`).
    pub fn mp_server(&self) -> Option<&MpServer> {
        self.mp_server.as_ref()
    }

    /// The MP bridge (secondary node with `mp.main_addr`).
    pub fn bridge(&self) -> Option<&MpBridge> {
        self.bridge.as_ref()
    }

    /// The registration with the main node (secondary node).
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_ref()
    }

    /// The SM (`sm.enabled`).
    pub fn sm(&self) -> Option<&SmHandle> {
        self.sm.as_ref()
    }

    /// The worker arbiters of the node's links.
    pub fn pool(&self) -> &ArbiterPool {
        &self.pool
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.config.node.id)
            .field("server", &self.server)
            .field("cm", &self.cm)
            .field("bridge", &self.bridge)
            .field("sm", &self.sm.is_some())
            .finish_non_exhaustive()
    }
}

/// TLS credentials that follow the current certificate of `cert_type` (empty until there is one).
fn follow(certs: &actix::Addr<CertHandler>, cert_type: &str) -> Credentials {
    let credentials = Credentials::new();
    CertCredentials::new(certs.clone(), cert_type, credentials.clone()).start();
    credentials
}

/// Where to connect to reach a listener bound to `addr` on this host (an unspecified address becomes
/// loopback).
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

#[cfg(test)]
mod tests;
