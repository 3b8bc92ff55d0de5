//! Secondary-node registration: keep this node registered with the main node's IAM and execute what the main
//! node forwards.
//!
//! - While the node has no identity (unprovisioned, or provisioned without its `cert_storage` certificate) it
//!   dials the main node's **public** endpoint with no client certificate; once it has one, the
//!   **protected** endpoint, presenting it (role `iam`). A change dials the other endpoint at once:
//!   - public → protected: the public link stays until the main node accepts the registration on the
//!     protected one (the main node may not serve its protected endpoint yet, e.g. while it is itself being
//!     provisioned; the node stays reachable meanwhile);
//!   - protected → public (the node lost its identity): the protected link is closed after `switch_grace`
//!     (the answer to the request that caused the change, e.g. Deprovision, is written first), since an
//!     anonymous registration cannot replace an authenticated one while that lives.
//! - On every connection it sends `Register(NodeInfo)`, and again whenever the local status changes (state,
//!   certificate). A refused registration is retried after `retry`.
//! - The main node's `ForwardPublic` / `ForwardProtected` requests are executed on the local `IamService` as
//!   `Caller::Forwarded`; a request that can change the local state or certificate triggers a refresh of
//!   the `LocalNode`, which in turn re-registers (or switches endpoint).
//! - The link reconnects with backoff capped at `node_reconnect_interval`.

mod config;

use std::future::ready;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use aos_transport::tls::{Policy, Role};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::RegistrationConfig;

use super::{client_tls, IamServerAuth};
use crate::api::{
    wire, ApiError, ErrorCode, IamAnswer, IamRequest, IamResponse, NodeStreamMessage,
};
use crate::iam::server::{changes_local_status, EndpointKind, LocalNode, LocalStatus};
use crate::iam::service::Caller;
use crate::net::{
    self, ArbiterPool, Incoming, Link, LinkActor, LinkState, Routes, StateChanged, WireError,
};

/// Where the registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationState {
    /// The endpoint of the main node it uses.
    pub endpoint: EndpointKind,
    /// Whether the main node accepted the last registration on the current connection.
    pub registered: bool,
}

/// A running registration. Dropping the handle does not stop it; [`Registration::stop`] does.
#[derive(Debug, Clone)]
pub struct Registration {
    addr: Addr<NodeRegistration>,
    state: watch::Receiver<RegistrationState>,
}

// === impl Registration ===

impl Registration {
    /// Register the node `local` tracks with the main node, on the current arbiter; links run on `pool`.
    pub fn start(local: LocalNode, config: RegistrationConfig, pool: ArbiterPool) -> Registration {
        let endpoint = mode_for(&local.status());
        let (tx, state) = watch::channel(RegistrationState {
            endpoint,
            registered: false,
        });
        let addr = NodeRegistration {
            local,
            config,
            pool,
            current: None,
            retiring: None,
            attempts: 0,
            state: tx,
            status_task: None,
        }
        .start();
        Registration { addr, state }
    }

    /// Where the registration stands now.
    pub fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    /// Wait until the main node accepted a registration over `endpoint`, at most `within`.
    pub async fn registered(
        &self,
        endpoint: EndpointKind,
        within: Duration,
    ) -> Result<(), ApiError> {
        let mut state = self.state.clone();
        let wait = async {
            state
                .wait_for(|s| s.registered && s.endpoint == endpoint)
                .await
                .map(|_| ())
        };
        let waited = tokio::time::timeout(within, wait).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::new(
                ErrorCode::Unavailable,
                "the registration has stopped",
            )),
            Err(_) => Err(ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "not registered over the {endpoint:?} endpoint within {within:?} ({:?})",
                    self.state()
                ),
            )),
        }
    }

    /// Close the link to the main node and stop.
    pub async fn stop(&self) {
        let _ = self.addr.send(Stop).await;
    }
}

fn mode_for(status: &LocalStatus) -> EndpointKind {
    if status.has_identity() {
        EndpointKind::Protected
    } else {
        EndpointKind::Public
    }
}

struct Current {
    endpoint: EndpointKind,
    link: Link,
    connected: bool,
    attempt: u64,
}

/// The registration actor (see the module documentation).
pub struct NodeRegistration {
    local: LocalNode,
    config: RegistrationConfig,
    pool: ArbiterPool,
    current: Option<Current>,
    /// The public link kept until the protected registration succeeds.
    retiring: Option<Link>,
    attempts: u64,
    state: watch::Sender<RegistrationState>,
    status_task: Option<JoinHandle<()>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct StatusUpdate(LocalStatus);

#[derive(Message)]
#[rtype(result = "()")]
struct Registered {
    attempt: u64,
    result: Result<(), ApiError>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

// === impl NodeRegistration ===

impl NodeRegistration {
    fn publish(&self, registered: bool) {
        let endpoint = self
            .current
            .as_ref()
            .map_or(EndpointKind::Public, |c| c.endpoint);
        self.state.send_replace(RegistrationState {
            endpoint,
            registered,
        });
    }

    fn server_auth(&self, endpoint: EndpointKind) -> IamServerAuth {
        let mut policy = Policy::roles([Role::Iam]).with_unit(self.local.identity().unit.clone());
        if let Some(main) = &self.config.main_node {
            policy = policy.with_node(main.clone());
        }
        let roots = self.config.roots.clone();
        match (endpoint, self.config.main_fingerprint) {
            (EndpointKind::Public, Some(pin)) => {
                IamServerAuth::IdentityOrPinned { roots, policy, pin }
            }
            _ => IamServerAuth::Identity { roots, policy },
        }
    }

    fn connect(&mut self, endpoint: EndpointKind, ctx: &mut Context<Self>) {
        let credentials = self.local.iam_credentials();
        let (dialer, credentials) = match endpoint {
            EndpointKind::Public => (self.config.main_public.clone(), None),
            EndpointKind::Protected => (self.config.main_protected.clone(), Some(&credentials)),
        };
        let tls = match client_tls(self.server_auth(endpoint), credentials, &self.config.tls) {
            Ok(tls) => tls,
            Err(err) => {
                tracing::error!(error = %err, "cannot build the TLS configuration to reach the main node; retrying later");
                ctx.run_later(self.config.retry, move |act, ctx| {
                    if act.current.is_none() {
                        act.connect(endpoint, ctx);
                    }
                });
                return;
            }
        };
        let routes = Routes::new()
            .handle(endpoint.channel(), ctx.address().recipient())
            .watch_state(ctx.address().recipient());
        match LinkActor::dial(&self.pool, self.config.link.clone(), dialer, tls, routes) {
            Ok(link) => {
                tracing::info!(?endpoint, main = %link_remote(&self.config, endpoint), "registering with the main node");
                self.current = Some(Current {
                    endpoint,
                    link,
                    connected: false,
                    attempt: 0,
                });
                self.publish(false);
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot start the link to the main node");
            }
        }
    }

    /// Send `Register` with the node's current information on the current link.
    fn register(&mut self, ctx: &mut Context<Self>) {
        let Some(current) = &mut self.current else {
            return;
        };
        self.attempts += 1;
        current.attempt = self.attempts;
        let (link, channel, attempt) = (
            current.link.clone(),
            current.endpoint.channel(),
            current.attempt,
        );
        self.send_register(link, channel, Some(attempt), ctx);
    }

    /// Send `Register` on `link`; the outcome is reported as `Registered { attempt }` when `attempt` is set.
    fn send_register(
        &self,
        link: Link,
        channel: aos_transport::frame::Channel,
        attempt: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let service = self.local.service().clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            let info = service.node_info().await;
            let result = async {
                let body = wire::encode(&IamRequest::Stream(NodeStreamMessage::Register(info)))?;
                let answer = link.request(channel, body).await?;
                match wire::decode::<IamAnswer>(&answer)?? {
                    IamResponse::Registered => Ok(()),
                    _ => Err(ApiError::new(
                        ErrorCode::Internal,
                        "the main node answered Register with a message of the wrong kind",
                    )),
                }
            }
            .await;
            match attempt {
                Some(attempt) => me.do_send(Registered { attempt, result }),
                None => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "updating the registration on the old link failed");
                    }
                }
            }
        });
    }

    /// Close `link` after the grace period (the answer being written on it goes first).
    fn retire_later(&self, link: Link, ctx: &mut Context<Self>) {
        ctx.run_later(self.config.switch_grace, move |_, _| close(link));
    }

    fn execute(&self, message: NodeStreamMessage) -> ResponseFuture<IamAnswer> {
        let local = self.local.clone();
        match message {
            NodeStreamMessage::ForwardPublic(request) => Box::pin(async move {
                local
                    .service()
                    .public(request)
                    .await
                    .map(IamResponse::Public)
            }),
            NodeStreamMessage::ForwardProtected(request) => {
                let refresh =
                    changes_local_status(&request, local.service().node_id(), local.cert_storage());
                Box::pin(async move {
                    let answer = local.service().protected(&Caller::Forwarded, request).await;
                    if refresh {
                        // Before answering, so the main node's next request does not meet the refresh on
                        // the token. A switch of endpoint this causes keeps this link long enough for the
                        // answer (see the module documentation).
                        local.refresh().await;
                    }
                    answer.map(IamResponse::Protected)
                })
            }
            _ => Box::pin(ready(Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "the main node sends only forwarded requests on the node stream",
            )))),
        }
    }
}

fn close(link: Link) {
    actix_rt::spawn(async move { link.close("switching to the other IAM endpoint").await });
}

fn link_remote(config: &RegistrationConfig, endpoint: EndpointKind) -> String {
    match endpoint {
        EndpointKind::Public => config.main_public.describe(),
        EndpointKind::Protected => config.main_protected.describe(),
    }
}

impl Actor for NodeRegistration {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut status = self.local.subscribe();
        let me = ctx.address();
        self.status_task = Some(actix_rt::spawn(async move {
            while status.changed().await.is_ok() {
                let current = status.borrow_and_update().clone();
                if me.try_send(StatusUpdate(current)).is_err() && !me.connected() {
                    return;
                }
            }
        }));
        let endpoint = mode_for(&self.local.status());
        self.connect(endpoint, ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(task) = self.status_task.take() {
            task.abort();
        }
    }
}

impl Handler<StatusUpdate> for NodeRegistration {
    type Result = ();

    fn handle(&mut self, StatusUpdate(status): StatusUpdate, ctx: &mut Context<Self>) {
        let endpoint = mode_for(&status);
        match &self.current {
            Some(current) if current.endpoint == endpoint => {
                // Same endpoint: tell the main node what changed (a link that is down registers when it
                // connects again).
                if current.connected {
                    self.register(ctx);
                }
            }
            _ => {
                if let Some(old) = self.current.take() {
                    tracing::info!(from = ?old.endpoint, to = ?endpoint, "local status changed; switching IAM endpoint of the main node");
                    if let Some(older) = self.retiring.take() {
                        close(older);
                    }
                    match endpoint {
                        EndpointKind::Protected => {
                            // Keep the main node's view current while the protected link comes up.
                            if old.connected {
                                self.send_register(
                                    old.link.clone(),
                                    old.endpoint.channel(),
                                    None,
                                    ctx,
                                );
                            }
                            self.retiring = Some(old.link);
                        }
                        EndpointKind::Public => self.retire_later(old.link, ctx),
                    }
                }
                self.connect(endpoint, ctx);
            }
        }
    }
}

impl Handler<StateChanged> for NodeRegistration {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        if self
            .retiring
            .as_ref()
            .is_some_and(|old| old.addr() == &msg.link)
            && matches!(msg.state, LinkState::Disconnected { .. })
        {
            if let Some(old) = self.retiring.take() {
                close(old);
            }
            return;
        }
        let Some(current) = &mut self.current else {
            return;
        };
        if current.link.addr() != &msg.link {
            return;
        }
        match msg.state {
            LinkState::Connected { .. } => {
                current.connected = true;
                self.register(ctx);
            }
            LinkState::Disconnected { .. } => {
                current.connected = false;
                self.publish(false);
            }
            _ => {}
        }
    }
}

impl Handler<Registered> for NodeRegistration {
    type Result = ();

    fn handle(&mut self, msg: Registered, ctx: &mut Context<Self>) {
        let Some(current) = &self.current else {
            return;
        };
        if current.attempt != msg.attempt {
            return;
        }
        match msg.result {
            Ok(()) => {
                tracing::info!(endpoint = ?current.endpoint, "registered with the main node");
                self.publish(true);
                if let Some(old) = self.retiring.take() {
                    close(old);
                }
            }
            Err(err) => {
                tracing::warn!(endpoint = ?current.endpoint, error = %err, "the main node refused the registration; retrying in {:?}", self.config.retry);
                self.publish(false);
                let attempt = msg.attempt;
                ctx.run_later(self.config.retry, move |act, ctx| {
                    if act.current.as_ref().is_some_and(|c| c.attempt == attempt) {
                        act.register(ctx);
                    }
                });
            }
        }
    }
}

impl Handler<Incoming> for NodeRegistration {
    type Result = ResponseFuture<Result<Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let answer = match wire::decode::<IamRequest>(&msg.body) {
            Ok(IamRequest::Stream(message)) => self.execute(message),
            Ok(_) => Box::pin(ready(Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "the main node sends only node-stream messages to a secondary",
            )))),
            Err(err) => {
                return Box::pin(ready(Err(WireError::new(
                    net::ErrorCode::BAD_REQUEST,
                    format!("not an IAM request: {}", err.message),
                ))))
            }
        };
        Box::pin(async move {
            wire::encode(&answer.await)
                .map_err(|err| WireError::new(net::ErrorCode::INTERNAL, err.message))
        })
    }
}

impl Handler<Stop> for NodeRegistration {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        let links: Vec<Link> = self
            .current
            .take()
            .map(|c| c.link)
            .into_iter()
            .chain(self.retiring.take())
            .collect();
        self.publish(false);
        Box::pin(async move {
            for link in links {
                link.close("node registration stopped").await;
            }
        })
    }
}
