//! The simulated cloud's TLS server: CMs connect to it, and it drives their unit's provisioning and renewal,
//! signing every CSR with the unit's [`CloudCa`] (see `docs/cloud.md`, "The cloud server").
//!
//! - TLS with a server certificate the unit CA issued for the cloud's DNS names ([`tls`]); client
//!   authentication optional: a CM presenting a `cm` certificate of the unit is authenticated, a CM without
//!   one (before provisioning) is served without an identity.
//! - The protocol is `aos_actors::api::cloud`, framed by the transport actor (`aos_actors::net`).
//! - The cloud **drives**: [`CloudServer::provision`] (StartProvisioning → CSRs → signed with
//!   [`CloudCa::sign`], which checks node and role → FinishProvisioning) and [`CloudServer::renew`]
//!   (RenewCerts → CSRs → signed → InstallCerts). Certificates can be made short-lived
//!   ([`CloudServerOptions::cert_lifetime`]) to exercise renewal.
//! - It signs CSRs a CM sends on its own (local renewal thresholds), for an authenticated CM and a node of
//!   its unit.
//! - Counters: [`CloudServerStats`].

mod actor;
mod driver;
mod error;
mod options;
mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use aos_actors::api::cloud::CLOUD_CHANNEL;
use aos_actors::net::{serve_tcp, ArbiterPool, LinkAcceptor, Routes};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use actor::CmConnection;
pub use driver::ProvisionedNode;
pub use error::{DriveError, ServerError};
pub use options::{CloudServerOptions, DEFAULT_SERVER_NAME};
pub use stats::CloudServerStats;

use self::actor::{CloudActor, SetServer, Stop};
use crate::cloud::CloudCa;

/// A running cloud server. Cheap to clone.
#[derive(Clone)]
pub struct CloudServer {
    ca: Arc<CloudCa>,
    actor: Addr<CloudActor>,
    local_addr: SocketAddr,
    lifetime: Option<Duration>,
    request_timeout: Duration,
    stats: Arc<Mutex<CloudServerStats>>,
    connections: watch::Receiver<Vec<CmConnection>>,
}

// === impl CloudServer ===

impl CloudServer {
    /// Serve CMs of `ca`'s unit on `listener`; accepted links run on `pool`. Must run inside an actix
    /// system.
    pub fn start(
        ca: Arc<CloudCa>,
        listener: TcpListener,
        pool: ArbiterPool,
        options: CloudServerOptions,
    ) -> Result<CloudServer, ServerError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServerError::Listen(e.to_string()))?;
        let credentials = tls::server_credentials(&ca, &options.server_names)?;
        let config = tls::server_config(&ca, &credentials, &options.tls)?;
        let stats = Arc::new(Mutex::new(CloudServerStats::default()));
        let connections = watch::Sender::new(Vec::new());
        let receiver = connections.subscribe();
        let actor = CloudActor::new(
            ca.clone(),
            options.cert_lifetime,
            stats.clone(),
            connections,
            options.request_timeout,
        )
        .start();
        let routes = Routes::new()
            .handle(CLOUD_CHANNEL, actor.clone().recipient())
            .watch_state(actor.clone().recipient());
        let acceptor = LinkAcceptor::new(pool, options.link, config, routes)?;
        actor.do_send(SetServer(serve_tcp(listener, acceptor)));
        tracing::info!(%local_addr, unit = %ca.unit_id(), names = ?options.server_names, "cloud server listening");
        Ok(CloudServer {
            ca,
            actor,
            local_addr,
            lifetime: options.cert_lifetime,
            request_timeout: options.request_timeout,
            stats,
            connections: receiver,
        })
    }

    /// The address CMs connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The unit CA.
    pub fn ca(&self) -> &Arc<CloudCa> {
        &self.ca
    }

    /// The CM connections now, oldest first (the cloud drives the newest).
    pub fn connections(&self) -> Vec<CmConnection> {
        self.connections.borrow().clone()
    }

    /// Wait until the CM connections satisfy `ready`.
    pub async fn wait_for(
        &self,
        mut ready: impl FnMut(&[CmConnection]) -> bool,
    ) -> Vec<CmConnection> {
        let mut connections = self.connections.clone();
        let found = match connections.wait_for(|c| ready(c)).await {
            Ok(found) => found.clone(),
            Err(_) => Vec::new(),
        };
        found
    }

    /// The counters, with the CA's.
    pub fn stats(&self) -> CloudServerStats {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        stats.ca = self.ca.stats();
        stats
    }

    /// Stop listening and close every CM link.
    pub async fn stop(&self) {
        let _ = self.actor.send(Stop).await;
    }
}

impl std::fmt::Debug for CloudServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudServer")
            .field("local_addr", &self.local_addr)
            .field("unit", &self.ca.unit_id())
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
