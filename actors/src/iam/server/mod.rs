//! The IAM server of a node: the public (TLS) and protected (mTLS) endpoints.
//!
//! | endpoint | TLS | channel | callers |
//! |---|---|---|---|
//! | public (`iam.public_listen`) | server-auth only; the node's `cert_storage` certificate, or the self-signed provisioning certificate while it has none | `IamOpen` | anonymous: public requests, and protected ones, which `IamService` allows only while the node is not provisioned |
//! | protected (`iam.protected_listen`) | mTLS; client certificates of the unit CA with role `cm`, `sm`, `iam` or `mp` of this unit; refuses every handshake while the node has no certificate | `IamSecure` | the peer's identity |
//!
//! Every request body is an [`IamRequest`](crate::api::IamRequest) and every answer an
//! [`IamAnswer`](crate::api::IamAnswer). Both endpoints serve subscriptions (`SubscribeCertChanged`,
//! `SubscribeNodeChanged`: the events follow as [`IamEvent`](crate::api::IamEvent)s on the same channel) and,
//! on the main node, the node registration stream (handed to the [`NodeController`](crate::iam::nodes)).
//! Certificates come from [`LocalNode`], swapped in place on renewal: new handshakes present the new
//! certificate, live connections go on. See `docs/iam-endpoints.md`.

mod error;
mod local_node;
mod session;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix::{Actor, Addr, WeakAddr};
use aos_config::{IamConfig, TransportConfig};
use aos_transport::tls::{server_config, ClientAuth, Fingerprint, Policy, Role, TlsOptions};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use error::ServerError;
pub use local_node::{LocalNode, LocalStatus, DEFAULT_REFRESH_INTERVAL};
pub(crate) use session::changes_local_status;
pub use session::EndpointKind;

use self::session::Session;
use crate::iam::cert_handler::GetModuleConfigs;
use crate::iam::nodes::NodeControllerHandle;
use crate::net::{ArbiterPool, BoxedStream, Link, LinkAcceptor, LinkActor, LinkConfig, Routes};

/// Roles accepted on the protected endpoint: every component of the unit.
pub const PROTECTED_ROLES: [Role; 4] = [Role::Cm, Role::Sm, Role::Iam, Role::Mp];

/// Where and how the endpoints listen.
#[derive(Debug, Clone)]
pub struct IamServerConfig {
    /// Public endpoint address (port 0: any free port).
    pub public_listen: SocketAddr,
    /// Protected endpoint address (port 0: any free port).
    pub protected_listen: SocketAddr,
    /// Frames, handshake timeout and queue limits of accepted links.
    pub link: LinkConfig,
    /// TLS versions and resumption.
    pub tls: TlsOptions,
    /// The unit's CA certificates: client certificates on the protected endpoint must chain to them.
    pub roots: Arc<RootCertStore>,
}

// === impl IamServerConfig ===

impl IamServerConfig {
    /// From the node's `[iam]` and `[transport]` tables and its CA roots.
    pub fn new(iam: &IamConfig, transport: &TransportConfig, roots: Arc<RootCertStore>) -> Self {
        IamServerConfig {
            public_listen: iam.public_listen,
            protected_listen: iam.protected_listen,
            link: LinkConfig::from(transport),
            tls: TlsOptions::from(transport),
            roots,
        }
    }
}

/// What every session of a server shares.
pub(crate) struct Shared {
    pub(crate) local: LocalNode,
    pub(crate) controller: Option<NodeControllerHandle>,
    /// Enabled cert modules (subscriptions are validated against them).
    pub(crate) cert_types: HashSet<String>,
    /// Every link accepted so far (pruned as they stop), to close them on shutdown.
    accepted: Mutex<Vec<WeakAddr<LinkActor>>>,
}

// === impl Shared ===

impl Shared {
    fn track(&self, link: &Addr<LinkActor>) {
        if let Ok(mut accepted) = self.accepted.lock() {
            accepted.retain(|weak| weak.upgrade().is_some_and(|addr| addr.connected()));
            accepted.push(link.downgrade());
        }
    }

    fn accepted(&self) -> Vec<Link> {
        self.accepted
            .lock()
            .map(|mut accepted| {
                accepted
                    .drain(..)
                    .filter_map(|weak| weak.upgrade())
                    .map(Link::new)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One endpoint: its TLS configuration and how each accepted stream becomes a link with its session.
#[derive(Clone)]
struct Endpoint {
    kind: EndpointKind,
    pool: ArbiterPool,
    link: LinkConfig,
    tls: Arc<ServerConfig>,
    shared: Arc<Shared>,
}

// === impl Endpoint ===

impl Endpoint {
    /// An acceptor whose links are served by a new session. The session runs on the link's arbiter: every
    /// request then stays on one thread from frame to answer, and sessions spread over the pool instead of
    /// all running on the arbiter that started the server.
    fn acceptor(&self) -> Result<LinkAcceptor, crate::net::LinkError> {
        let arbiter = self.pool.next();
        let (kind, shared) = (self.kind, self.shared.clone());
        let session = Session::start_in_arbiter(&arbiter, move |_| Session::new(kind, shared));
        let routes = Routes::new()
            .handle(self.kind.channel(), session.clone().recipient())
            .watch_state(session.recipient());
        Ok(LinkAcceptor::new(
            self.pool.clone(),
            self.link.clone(),
            self.tls.clone(),
            routes,
        )?
        .on_arbiter(arbiter))
    }

    fn take(&self, stream: BoxedStream, remote: &str) -> Result<Link, crate::net::LinkError> {
        let link = self.acceptor()?.take(stream, remote.to_owned());
        self.shared.track(link.addr());
        Ok(link)
    }

    fn take_tcp(&self, tcp: TcpStream) -> io::Result<()> {
        let acceptor = self
            .acceptor()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        let link = acceptor.take_tcp(tcp)?;
        self.shared.track(&link);
        Ok(())
    }

    fn serve(self, listener: TcpListener) -> JoinHandle<()> {
        actix_rt::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, _)) => {
                        if let Err(err) = self.take_tcp(tcp) {
                            tracing::warn!(endpoint = ?self.kind, error = %err, "dropping an accepted connection");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(endpoint = ?self.kind, error = %err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        })
    }
}

/// A running IAM server: both endpoints listening. Dropping it closes the listeners; links already accepted
/// go on until they end (they run on the pool's arbiters).
pub struct IamServer {
    local: LocalNode,
    public: Endpoint,
    protected: Endpoint,
    public_addr: SocketAddr,
    protected_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

// === impl IamServer ===

impl IamServer {
    /// Listen on both endpoints for the node `local` tracks. `controller` is the main node's
    /// [`NodeController`](crate::iam::nodes::NodeController) (registrations and node events); a secondary has
    /// none. Links run on `pool`. Must run inside an actix System.
    pub async fn start(
        local: LocalNode,
        controller: Option<NodeControllerHandle>,
        config: IamServerConfig,
        pool: ArbiterPool,
    ) -> Result<IamServer, ServerError> {
        let cert_types = local
            .cert_handler()
            .send(GetModuleConfigs)
            .await
            .map_err(|_| ServerError::Mailbox("the cert handler"))?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let shared = Arc::new(Shared {
            local: local.clone(),
            controller,
            cert_types,
            accepted: Mutex::new(Vec::new()),
        });
        let public_tls = server_config(&local.public_credentials(), ClientAuth::None, &config.tls)?;
        let policy = Policy::roles(PROTECTED_ROLES).with_unit(local.identity().unit.clone());
        let protected_tls = server_config(
            &local.iam_credentials(),
            ClientAuth::Required {
                roots: config.roots.clone(),
                policy,
            },
            &config.tls,
        )?;
        // Fail now, not at the first connection, if the link configuration is invalid.
        config
            .link
            .codec()
            .map_err(crate::net::LinkError::InvalidConfig)?;
        let endpoint = |kind, tls| Endpoint {
            kind,
            pool: pool.clone(),
            link: config.link.clone(),
            tls,
            shared: shared.clone(),
        };
        let public = endpoint(EndpointKind::Public, public_tls);
        let protected = endpoint(EndpointKind::Protected, protected_tls);
        let (public_listener, public_addr) = bind(config.public_listen).await?;
        let (protected_listener, protected_addr) = bind(config.protected_listen).await?;
        let tasks = vec![
            public.clone().serve(public_listener),
            protected.clone().serve(protected_listener),
        ];
        tracing::info!(
            node = %local.identity(),
            %public_addr,
            %protected_addr,
            provisioning_fingerprint = %local.provisioning_fingerprint(),
            has_certificate = local.status().cert.is_some(),
            "IAM server listening"
        );
        Ok(IamServer {
            local,
            public,
            protected,
            public_addr,
            protected_addr,
            tasks,
        })
    }

    /// Where the public endpoint listens.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// Where the protected endpoint listens.
    pub fn protected_addr(&self) -> SocketAddr {
        self.protected_addr
    }

    /// The fingerprint clients pin while the node has no certificate.
    pub fn provisioning_fingerprint(&self) -> Fingerprint {
        self.local.provisioning_fingerprint()
    }

    /// The node the server serves.
    pub fn local(&self) -> &LocalNode {
        &self.local
    }

    /// Serve a stream of any link kind (e.g. a tunnel of the MP bridge) as a connection to `endpoint`;
    /// `remote` names the peer in logs.
    pub fn take(
        &self,
        endpoint: EndpointKind,
        stream: BoxedStream,
        remote: &str,
    ) -> Result<Link, ServerError> {
        let endpoint = match endpoint {
            EndpointKind::Public => &self.public,
            EndpointKind::Protected => &self.protected,
        };
        Ok(endpoint.take(stream, remote)?)
    }

    /// Stop listening. Accepted links go on until they end.
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Stop listening and close every accepted link, telling each peer why (a daemon draining before it
    /// exits). Returns once the links are shut down; registered secondaries see their link close and
    /// reconnect to whichever IAM serves next.
    pub async fn shutdown(&mut self) {
        self.stop();
        let links = self.public.shared.accepted();
        tracing::info!(links = links.len(), "IAM server shutting down");
        futures_util::future::join_all(
            links
                .iter()
                .map(|link| link.close("the IAM server is shutting down")),
        )
        .await;
    }
}

impl Drop for IamServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for IamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamServer")
            .field("node", self.local.identity())
            .field("public", &self.public_addr)
            .field("protected", &self.protected_addr)
            .finish_non_exhaustive()
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bind_err = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    Ok((listener, local))
}
