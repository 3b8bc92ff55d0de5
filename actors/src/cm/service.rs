//! [`Cm`]: the communication manager of the main node, started from its parts and options: the cloud link
//! (with the handler of the cloud's requests) and the SM controller.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext};
use aos_config::Config;
use aos_transport::tls::{
    client_config, server_config, ClientAuth, Credentials, Policy, Role, ServerAuth, TlsOptions,
};
use rustls::RootCertStore;
use tokio::net::TcpListener;

use super::cloud_handler::CloudHandler;
use super::cloud_link::{CloudClient, CloudEndpoint, CloudLinkActor, CloudLinkOptions, Shutdown};
use super::error::CmError;
use super::iam_access::IamAccess;
use super::renewer::CloudRenewer;
use super::sm_controller::SmController;
use crate::net::{ArbiterPool, LinkConfig};

/// What the CM works with.
#[derive(Clone)]
pub struct CmParts {
    /// The unit id (SMs must belong to it).
    pub unit_id: String,
    /// This (main) node's id.
    pub node_id: String,
    /// IAM, as component `cm` of this node.
    pub iam: Arc<dyn IamAccess>,
    /// The `cm` certificate and key (kept current by a
    /// [`CertCredentials`](super::credentials::CertCredentials)); empty before provisioning.
    pub credentials: Credentials,
    /// The unit CA: the cloud's server certificate and the SMs' certificates must chain to it.
    pub roots: Arc<RootCertStore>,
    /// Worker arbiters for the links.
    pub pool: ArbiterPool,
}

/// How the CM is set up (from `[cm]` and `[transport]`, see [`CmOptions::from_config`]).
#[derive(Debug, Clone)]
pub struct CmOptions {
    /// The cloud; `None` runs without a cloud link.
    pub cloud: Option<CloudEndpoint>,
    /// Behaviour of the cloud link.
    pub cloud_link: CloudLinkOptions,
    /// Where the SM controller listens; `None` runs without one.
    pub sm_listen: Option<SocketAddr>,
    /// Framing and timeouts of SM links.
    pub sm_link: LinkConfig,
    /// Time the controller waits for an SM to apply its desired instances.
    pub sm_request_timeout: Duration,
    /// TLS versions and resumption.
    pub tls: TlsOptions,
}

impl Default for CmOptions {
    fn default() -> Self {
        CmOptions {
            cloud: None,
            cloud_link: CloudLinkOptions::default(),
            sm_listen: None,
            sm_link: LinkConfig::default(),
            sm_request_timeout: Duration::from_secs(60),
            tls: TlsOptions::default(),
        }
    }
}

impl CmOptions {
    /// Options from a node's configuration: `[cm]` for the endpoints and timeouts, `[transport]` for
    /// framing, handshakes, backoff and TLS.
    pub fn from_config(config: &Config) -> Result<CmOptions, CmError> {
        let cm = &config.cm;
        let link = LinkConfig::from(&config.transport);
        let cloud = cm
            .cloud_addr
            .as_deref()
            .map(|addr| CloudEndpoint::tcp(addr, cm.cloud_server_name.as_deref()))
            .transpose()?;
        Ok(CmOptions {
            cloud,
            cloud_link: CloudLinkOptions {
                link: link.clone(),
                request_timeout: cm.cloud_request_timeout,
                drain_grace: CloudLinkOptions::default().drain_grace,
            },
            sm_listen: Some(cm.sm_listen),
            sm_link: link,
            sm_request_timeout: cm.sm_request_timeout,
            tls: TlsOptions::from(&config.transport),
        })
    }
}

/// A running CM.
pub struct Cm {
    node_id: String,
    cloud: Option<(Addr<CloudLinkActor>, CloudClient)>,
    sm: Option<SmController>,
}

// === impl Cm ===

impl Cm {
    /// Start the cloud link and the SM controller that `options` ask for. Must run inside an actix system.
    pub async fn start(parts: CmParts, options: CmOptions) -> Result<Cm, CmError> {
        let cloud = match options.cloud {
            Some(endpoint) => {
                let tls = client_config(
                    ServerAuth::HostName {
                        roots: parts.roots.clone(),
                    },
                    Some(&parts.credentials),
                    &options.tls,
                )?;
                options
                    .cloud_link
                    .link
                    .codec()
                    .map_err(|e| CmError::Link(crate::net::LinkError::InvalidConfig(e)))?;
                let in_flight = Arc::new(AtomicUsize::new(0));
                let mut status = None;
                let (iam, pool, creds) = (
                    parts.iam.clone(),
                    parts.pool.clone(),
                    parts.credentials.clone(),
                );
                let link_options = options.cloud_link.clone();
                let actor = CloudLinkActor::create(|ctx| {
                    let handler =
                        CloudHandler::new(iam, in_flight.clone(), ctx.address().recipient())
                            .start();
                    let actor = CloudLinkActor::new(
                        endpoint,
                        pool,
                        tls,
                        link_options,
                        handler.recipient(),
                        creds,
                        in_flight,
                    );
                    status = Some(actor.status());
                    actor
                });
                let status = status.ok_or_else(|| CmError::Link(crate::net::LinkError::Stopped))?;
                let client =
                    CloudClient::new(actor.clone(), options.cloud_link.request_timeout, status);
                Some((actor, client))
            }
            None => None,
        };
        let sm = match options.sm_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| CmError::Listen {
                        addr: addr.to_string(),
                        source,
                    })?;
                let tls = server_config(
                    &parts.credentials,
                    ClientAuth::Required {
                        roots: parts.roots.clone(),
                        policy: Policy::roles([Role::Sm]).with_unit(parts.unit_id.clone()),
                    },
                    &options.tls,
                )?;
                Some(SmController::start(
                    listener,
                    tls,
                    parts.pool.clone(),
                    options.sm_link,
                    options.sm_request_timeout,
                )?)
            }
            None => None,
        };
        Ok(Cm {
            node_id: parts.node_id,
            cloud,
            sm,
        })
    }

    /// The CM's requests to the cloud, if it has a cloud link.
    pub fn cloud(&self) -> Option<&CloudClient> {
        self.cloud.as_ref().map(|(_, client)| client)
    }

    /// A renewer for this node's validator: local renewal thresholds get their CSRs signed by the cloud.
    pub fn renewer(&self) -> Option<CloudRenewer> {
        self.cloud()
            .map(|client| CloudRenewer::new(client.clone(), self.node_id.clone()))
    }

    /// A renewer for another node of the unit (its renewal requests reach the CM through the MP bridge).
    pub fn renewer_for(&self, node_id: &str) -> Option<CloudRenewer> {
        self.cloud()
            .map(|client| CloudRenewer::new(client.clone(), node_id))
    }

    /// The SM controller, if it listens.
    pub fn sm_controller(&self) -> Option<&SmController> {
        self.sm.as_ref()
    }

    /// Close the cloud link and stop the SM controller.
    pub async fn stop(&self) {
        if let Some((actor, _)) = &self.cloud {
            let _ = actor.send(Shutdown).await;
        }
        if let Some(sm) = &self.sm {
            sm.stop().await;
        }
    }
}

impl std::fmt::Debug for Cm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cm")
            .field("node_id", &self.node_id)
            .field("cloud", &self.cloud().map(|c| c.connection()))
            .field("sm", &self.sm)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aos_config::{NodeConfig, NodeRole};

    use super::*;

    #[test]
    fn options_follow_the_cm_and_transport_tables() {
        let mut config = Config::new(NodeConfig::new("main", "unit", NodeRole::Main), "/ca.pem");
        let options = CmOptions::from_config(&config).unwrap();
        assert!(options.cloud.is_none());
        assert_eq!(options.sm_listen.unwrap().port(), 8093);

        config.cm.cloud_addr = Some("cloud.example.com:9443".into());
        config.cm.cloud_request_timeout = Duration::from_secs(5);
        config.transport.handshake_timeout = Duration::from_secs(3);
        let options = CmOptions::from_config(&config).unwrap();
        let cloud = options.cloud.unwrap();
        assert_eq!(cloud.server_name.to_str(), "cloud.example.com");
        assert_eq!(cloud.dialer.describe(), "tcp://cloud.example.com:9443");
        assert_eq!(options.cloud_link.request_timeout, Duration::from_secs(5));
        assert_eq!(
            options.cloud_link.link.handshake_timeout,
            Duration::from_secs(3)
        );

        config.cm.cloud_server_name = Some("cloud.local".into());
        let options = CmOptions::from_config(&config).unwrap();
        assert_eq!(options.cloud.unwrap().server_name.to_str(), "cloud.local");
    }

    #[test]
    fn cloud_addresses_must_be_host_and_port() {
        assert!(CloudEndpoint::tcp("[::1]:9443", None).is_ok());
        assert!(CloudEndpoint::tcp("10.0.0.1:1", Some("cloud.local")).is_ok());
        for bad in ["cloud", "cloud:", "cloud:http", "cloud:70000"] {
            assert!(
                matches!(CloudEndpoint::tcp(bad, None), Err(CmError::CloudAddr(_))),
                "{bad}"
            );
        }
    }
}
