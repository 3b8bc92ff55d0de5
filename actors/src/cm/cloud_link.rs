//! The CM's link to the cloud: TLS that verifies the cloud's certificate (DNS name) against the unit CA and
//! presents the CM's `cm` certificate once the node has one; a new handshake whenever that certificate
//! changes; the cloud's requests go to the CM's cloud handler; the CM's own
//! requests go through a [`CloudClient`].
//!
//! **Re-handshake, make before break.** rustls never re-authenticates a live connection, so when the `cm`
//! credentials change (first certificate at provisioning, renewal) the CM dials a second link. Once it is
//! connected it becomes the current one; the superseded link is closed when no cloud request is being
//! handled any more, after a short grace so the last answer is written first. A cloud request that is
//! running when the certificate changes (applying the `cm` certificate is part of provisioning) therefore
//! gets its answer on the link it came on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};
use aos_transport::frame::{decode_body, encode_body};
use aos_transport::tls::Credentials;
use rustls::sign::CertifiedKey;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::error::{CloudCallError, CmError};
use crate::api::cloud::{CmAnswer, CmRequest, CsrRequest, SignResult, CLOUD_CHANNEL};
use crate::net::{
    ArbiterPool, BoxedStream, ClientTls, DialFuture, Dialer, Incoming, Link, LinkActor, LinkConfig,
    LinkError, LinkState, Routes, StateChanged,
};

/// Where the cloud is: how to reach it and the DNS name its certificate must carry.
#[derive(Clone)]
pub struct CloudEndpoint {
    /// Opens the byte stream (TCP to `host:port` for [`CloudEndpoint::tcp`]).
    pub dialer: Arc<dyn Dialer>,
    /// The name the cloud's certificate is checked against (and sent as SNI).
    pub server_name: ServerName<'static>,
}

impl CloudEndpoint {
    /// The cloud at `addr` (`host:port`, resolved at each dial), whose certificate must name `server_name`
    /// (default: the host of `addr`).
    pub fn tcp(addr: &str, server_name: Option<&str>) -> Result<CloudEndpoint, CmError> {
        let bad = || CmError::CloudAddr(addr.to_owned());
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = server_name.unwrap_or(host).to_owned();
        let server_name = ServerName::try_from(name).map_err(|_| bad())?;
        Ok(CloudEndpoint {
            dialer: Arc::new(HostDialer {
                addr: addr.to_owned(),
            }),
            server_name,
        })
    }
}

impl std::fmt::Debug for CloudEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudEndpoint")
            .field("dialer", &self.dialer.describe())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Dials `host:port` over TCP, resolving the name at every attempt.
#[derive(Debug, Clone)]
pub struct HostDialer {
    addr: String,
}

impl HostDialer {
    /// A dialer for `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> HostDialer {
        HostDialer { addr: addr.into() }
    }
}

impl Dialer for HostDialer {
    fn dial(&self) -> DialFuture {
        let addr = self.addr.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(addr.as_str()).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxedStream)
        })
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.addr)
    }
}

/// How the cloud link behaves.
#[derive(Debug, Clone)]
pub struct CloudLinkOptions {
    /// Framing, handshake timeout and reconnect backoff.
    pub link: LinkConfig,
    /// Time the CM's own requests (SignCsr) wait for the cloud's answer.
    pub request_timeout: Duration,
    /// Pause between the last cloud request ending and closing a superseded link.
    pub drain_grace: Duration,
}

impl Default for CloudLinkOptions {
    fn default() -> Self {
        CloudLinkOptions {
            link: LinkConfig::default(),
            request_timeout: Duration::from_secs(60),
            drain_grace: Duration::from_millis(500),
        }
    }
}

/// How the CM's cloud connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudConnection {
    /// No connection is up.
    Down,
    /// Connected; `client_serial` is the serial (hex) of the `cm` certificate the link was dialed with,
    /// `None` when it connected without one (before provisioning).
    Up {
        /// Serial of the presented `cm` certificate.
        client_serial: Option<String>,
    },
}

/// A link and the client certificate it was dialed with.
struct Tracked {
    link: Link,
    client_serial: Option<String>,
}

/// Owns the cloud links: the current one, one being dialed after a credentials change, superseded ones.
pub(super) struct CloudLinkActor {
    endpoint: CloudEndpoint,
    pool: ArbiterPool,
    tls: Arc<ClientConfig>,
    options: CloudLinkOptions,
    handler: Recipient<Incoming>,
    credentials: Credentials,
    current: Option<Tracked>,
    pending: Option<Tracked>,
    superseded: Vec<Link>,
    in_flight: Arc<AtomicUsize>,
    status: watch::Sender<CloudConnection>,
}

// === impl CloudLinkActor ===

impl CloudLinkActor {
    pub(super) fn new(
        endpoint: CloudEndpoint,
        pool: ArbiterPool,
        tls: Arc<ClientConfig>,
        options: CloudLinkOptions,
        handler: Recipient<Incoming>,
        credentials: Credentials,
        in_flight: Arc<AtomicUsize>,
    ) -> CloudLinkActor {
        CloudLinkActor {
            endpoint,
            pool,
            tls,
            options,
            handler,
            credentials,
            current: None,
            pending: None,
            superseded: Vec::new(),
            in_flight,
            status: watch::Sender::new(CloudConnection::Down),
        }
    }

    pub(super) fn status(&self) -> watch::Receiver<CloudConnection> {
        self.status.subscribe()
    }

    /// Dial a new link with the credentials in force now; it replaces the current one once connected.
    fn dial(&mut self, ctx: &mut Context<Self>) {
        if let Some(stale) = self.pending.take() {
            let link = stale.link;
            actix_rt::spawn(async move { link.close("superseded before connecting").await });
        }
        let client_serial = self.credentials.current().and_then(|ck| {
            ck.end_entity_cert()
                .ok()
                .map(|leaf| serial_of(leaf.as_ref()))
        });
        let routes = Routes::new()
            .handle(CLOUD_CHANNEL, self.handler.clone())
            .watch_state(ctx.address().recipient());
        let tls = ClientTls {
            config: self.tls.clone(),
            server_name: self.endpoint.server_name.clone(),
        };
        match LinkActor::dial(
            &self.pool,
            self.options.link.clone(),
            self.endpoint.dialer.clone(),
            tls,
            routes,
        ) {
            Ok(link) => {
                tracing::info!(
                    cloud = %self.endpoint.dialer.describe(),
                    with_certificate = client_serial.is_some(),
                    "dialing the cloud"
                );
                self.pending = Some(Tracked {
                    link,
                    client_serial,
                });
            }
            Err(err) => tracing::error!("cannot dial the cloud: {err}"),
        }
    }

    /// Dial a new link at every change of the `cm` credentials (a future of this actor: it ends with it).
    fn watch_credentials(
        &mut self,
        mut changes: watch::Receiver<Option<Arc<CertifiedKey>>>,
        ctx: &mut Context<Self>,
    ) {
        let next = async move {
            let changed = changes.changed().await.is_ok();
            (changes, changed)
        };
        ctx.spawn(next.into_actor(self).map(|(changes, changed), act, ctx| {
            if changed {
                tracing::info!("cm credentials changed; new handshake with the cloud");
                act.dial(ctx);
                act.watch_credentials(changes, ctx);
            }
        }));
    }

    /// Close superseded links once no cloud request is being handled (after the grace period).
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.superseded.is_empty() || self.in_flight.load(Ordering::SeqCst) > 0 {
            return;
        }
        let links = std::mem::take(&mut self.superseded);
        ctx.run_later(self.options.drain_grace, move |act, ctx| {
            if act.in_flight.load(Ordering::SeqCst) > 0 {
                act.superseded.extend(links);
                return;
            }
            for link in links {
                actix_rt::spawn(async move { link.close("cm credentials changed").await });
            }
            act.drain(ctx);
        });
    }
}

fn serial_of(der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(der)
        .map(|(_, cert)| hex::encode(cert.tbs_certificate.raw_serial()))
        .unwrap_or_default()
}

impl Actor for CloudLinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch_credentials(self.credentials.subscribe(), ctx);
        self.dial(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let links: Vec<Link> = self
            .current
            .take()
            .into_iter()
            .chain(self.pending.take())
            .map(|t| t.link)
            .chain(self.superseded.drain(..))
            .collect();
        for link in links {
            actix_rt::spawn(async move { link.close("cm stopping").await });
        }
        self.status.send_replace(CloudConnection::Down);
    }
}

impl Handler<StateChanged> for CloudLinkActor {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        let is = |t: &Option<Tracked>| t.as_ref().is_some_and(|t| t.link.addr() == &msg.link);
        if is(&self.pending) {
            if let LinkState::Connected { .. } = msg.state {
                let Some(new) = self.pending.take() else {
                    return;
                };
                if let Some(old) = self.current.replace(new) {
                    self.superseded.push(old.link);
                }
                let client_serial = self.current.as_ref().and_then(|t| t.client_serial.clone());
                self.status
                    .send_replace(CloudConnection::Up { client_serial });
                self.drain(ctx);
            }
        } else if is(&self.current) {
            match msg.state {
                LinkState::Connected { .. } => {
                    let client_serial = self.current.as_ref().and_then(|t| t.client_serial.clone());
                    self.status
                        .send_replace(CloudConnection::Up { client_serial });
                }
                LinkState::Disconnected { retry_in: None, .. } => {
                    self.current = None;
                    self.status.send_replace(CloudConnection::Down);
                }
                _ => {
                    self.status.send_replace(CloudConnection::Down);
                }
            }
        }
    }
}

/// No cloud request is being handled any more.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Idle;

impl Handler<Idle> for CloudLinkActor {
    type Result = ();

    fn handle(&mut self, _: Idle, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

/// The link to send the CM's own requests on.
#[derive(Message)]
#[rtype(result = "Option<Link>")]
struct CurrentLink;

impl Handler<CurrentLink> for CloudLinkActor {
    type Result = Option<Link>;

    fn handle(&mut self, _: CurrentLink, _: &mut Context<Self>) -> Option<Link> {
        self.current.as_ref().map(|t| t.link.clone())
    }
}

/// Stop the cloud link (and close its connections).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Shutdown;

impl Handler<Shutdown> for CloudLinkActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The CM's requests to the cloud, and the state of its connection. Cheap to clone.
#[derive(Clone)]
pub struct CloudClient {
    actor: Addr<CloudLinkActor>,
    timeout: Duration,
    status: watch::Receiver<CloudConnection>,
}

// === impl CloudClient ===

impl CloudClient {
    pub(super) fn new(
        actor: Addr<CloudLinkActor>,
        timeout: Duration,
        status: watch::Receiver<CloudConnection>,
    ) -> CloudClient {
        CloudClient {
            actor,
            timeout,
            status,
        }
    }

    /// Send `request` to the cloud and wait for its answer (fails fast when no link is up).
    pub async fn call(&self, request: &CmRequest) -> Result<CmAnswer, CloudCallError> {
        let link = self
            .actor
            .send(CurrentLink)
            .await
            .map_err(|_| CloudCallError::Link(LinkError::Stopped))?
            .ok_or(CloudCallError::Link(LinkError::NotConnected))?;
        let body = encode_body(request, usize::MAX)?;
        let answer = link
            .request_within(CLOUD_CHANNEL, body, self.timeout)
            .await
            .map_err(CloudCallError::Link)?;
        let result: SignResult = decode_body(&answer, answer.len())?;
        result.map_err(CloudCallError::Cloud)
    }

    /// Get `csr` signed by the cloud; returns the PEM chain, leaf first.
    pub async fn sign(&self, csr: CsrRequest) -> Result<String, CloudCallError> {
        match self.call(&CmRequest::SignCsr(csr)).await? {
            CmAnswer::Chain(chain) => Ok(chain),
            #[allow(unreachable_patterns)]
            other => Err(CloudCallError::Protocol(format!(
                "the cloud answered SignCsr with {other:?}"
            ))),
        }
    }

    /// How the connection stands now.
    pub fn connection(&self) -> CloudConnection {
        self.status.borrow().clone()
    }

    /// Wait until the connection satisfies `ready` (e.g. up with a `cm` certificate).
    pub async fn wait_for(
        &self,
        mut ready: impl FnMut(&CloudConnection) -> bool,
    ) -> Result<CloudConnection, CloudCallError> {
        let mut status = self.status.clone();
        status
            .wait_for(|c| ready(c))
            .await
            .map(|c| c.clone())
            .map_err(|_| CloudCallError::Link(LinkError::Stopped))
    }
}

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("connection", &self.connection())
            .finish_non_exhaustive()
    }
}
