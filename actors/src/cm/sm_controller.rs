//! The SM controller: a mutual-TLS listener that accepts SMs (role `sm` of this unit only; a peer presenting
//! any other role, e.g. a `cm` certificate, never completes its handshake), keeps a registry of the SMs by
//! the node of their certificate, sends each the desired instances of its node (at once, and again whenever
//! it reconnects), and records the instance statuses the SMs report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use aos_transport::frame::{decode_body, encode_body};
use rustls::ServerConfig;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::{CmError, SmControlError};
use crate::api::sm::{
    InstanceSpec, InstanceStatus, SmEvent, SmRequest, SmResult, StatusReport, SM_CHANNEL,
};
use crate::net::{
    serve_tcp, ArbiterPool, DisconnectReason, Event, Link, LinkAcceptor, LinkConfig, LinkState,
    Routes, StateChanged,
};

/// What the controller knows about the unit's SMs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmRegistry {
    /// By node id: every node that has an SM connected now, had one, or has desired instances.
    pub nodes: BTreeMap<String, SmNode>,
    /// Refused handshakes by refusal label (e.g. `role_not_accepted` for a `cm` certificate).
    pub refusals: BTreeMap<String, u64>,
}

/// One node's SM as the controller sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmNode {
    /// Whether its SM is connected now.
    pub connected: bool,
    /// How many instances the node should run.
    pub desired: usize,
    /// The statuses its SM last reported (answer to DesiredInstances or a status event).
    pub statuses: Vec<InstanceStatus>,
    /// The revision of that report (answers and events can cross; the newest report wins).
    pub revision: u64,
}

pub(super) struct SmControllerActor {
    desired: BTreeMap<String, Vec<InstanceSpec>>,
    links: BTreeMap<String, Link>,
    registry: watch::Sender<SmRegistry>,
    request_timeout: Duration,
    server: Option<JoinHandle<()>>,
}

// === impl SmControllerActor ===

impl SmControllerActor {
    fn update(&self, f: impl FnOnce(&mut SmRegistry)) {
        self.registry.send_modify(f);
    }

    /// Send the desired instances of `node` to its SM; the answer updates the registry.
    fn push(
        &mut self,
        node: String,
    ) -> Option<impl std::future::Future<Output = Result<StatusReport, SmControlError>>> {
        let link = self.links.get(&node)?.clone();
        let specs = self.desired.get(&node).cloned().unwrap_or_default();
        let timeout = self.request_timeout;
        Some(async move {
            let body = encode_body(&SmRequest::DesiredInstances(specs), usize::MAX)?;
            ask(&link, body, timeout).await
        })
    }
}

async fn ask(
    link: &Link,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<StatusReport, SmControlError> {
    let answer = link
        .request_within(SM_CHANNEL, body, timeout)
        .await
        .map_err(SmControlError::Link)?;
    let result: SmResult = decode_body(&answer, answer.len())?;
    result.map_err(SmControlError::Sm)
}

impl Actor for SmControllerActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for (_, link) in std::mem::take(&mut self.links) {
            actix_rt::spawn(async move { link.close("cm stopping").await });
        }
    }
}

impl Handler<StateChanged> for SmControllerActor {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        match msg.state {
            LinkState::Connected {
                peer: Some(peer), ..
            } => {
                let node = peer.node.clone();
                tracing::info!(node = %node, "SM connected");
                if let Some(old) = self.links.insert(node.clone(), Link::new(msg.link)) {
                    actix_rt::spawn(
                        async move { old.close("replaced by a newer connection").await },
                    );
                }
                self.update(|r| {
                    let entry = r.nodes.entry(node.clone()).or_default();
                    entry.connected = true;
                    // A (re)started SM counts its reports from 1 again.
                    entry.revision = 0;
                });
                if self.desired.contains_key(&node) {
                    if let Some(push) = self.push(node.clone()) {
                        ctx.spawn(push.into_actor(self).map(move |result, act, _| {
                            act.record(&node, &result);
                        }));
                    }
                }
            }
            LinkState::Connected { peer: None, .. } => {
                // The policy requires an identity; a link without one is not an SM.
                actix_rt::spawn(async move { Link::new(msg.link).close("no identity").await });
            }
            LinkState::Disconnected { reason, .. } => {
                let gone: Vec<String> = self
                    .links
                    .iter()
                    .filter(|(_, link)| link.addr() == &msg.link)
                    .map(|(node, _)| node.clone())
                    .collect();
                for node in &gone {
                    tracing::info!(node = %node, %reason, "SM disconnected");
                    self.links.remove(node);
                    self.update(|r| r.nodes.entry(node.clone()).or_default().connected = false);
                }
                if gone.is_empty() {
                    if let DisconnectReason::Handshake(err) = &reason {
                        let label = err
                            .refusal()
                            .map(|r| r.as_str().to_owned())
                            .unwrap_or_else(|| "handshake".to_owned());
                        self.update(|r| *r.refusals.entry(label).or_default() += 1);
                    }
                }
            }
            _ => {}
        }
    }
}

impl SmControllerActor {
    fn record(&mut self, node: &str, result: &Result<StatusReport, SmControlError>) {
        match result {
            Ok(report) => self.accept(node, report.clone()),
            Err(err) => tracing::warn!(node, "desired instances not applied: {err}"),
        }
    }
}

impl SmControllerActor {
    /// Keep `report` unless a newer one of the node's SM is already known.
    fn accept(&self, node: &str, report: StatusReport) {
        self.update(|r| {
            let entry = r.nodes.entry(node.to_owned()).or_default();
            if report.revision >= entry.revision {
                entry.revision = report.revision;
                entry.statuses = report.instances;
            }
        });
    }
}

impl Handler<Event> for SmControllerActor {
    type Result = ();

    fn handle(&mut self, msg: Event, _: &mut Context<Self>) {
        let Some(peer) = msg.peer else {
            return;
        };
        match decode_body::<SmEvent>(&msg.body, msg.body.len()) {
            Ok(SmEvent::Status(report)) => self.accept(&peer.node, report),
            Err(err) => tracing::warn!(node = %peer.node, "undecodable SM event: {err}"),
        }
    }
}

/// Set the desired instances of a node and send them to its SM.
#[derive(Message)]
#[rtype(result = "Result<Vec<InstanceStatus>, SmControlError>")]
struct SetDesired {
    node: String,
    specs: Vec<InstanceSpec>,
}

impl Handler<SetDesired> for SmControllerActor {
    type Result = ResponseActFuture<Self, Result<Vec<InstanceStatus>, SmControlError>>;

    fn handle(&mut self, msg: SetDesired, _: &mut Context<Self>) -> Self::Result {
        let node = msg.node;
        let count = msg.specs.len();
        self.desired.insert(node.clone(), msg.specs);
        self.update(|r| r.nodes.entry(node.clone()).or_default().desired = count);
        match self.push(node.clone()) {
            Some(push) => Box::pin(push.into_actor(self).map(move |result, act, _| {
                act.record(&node, &result);
                result.map(|report| report.instances)
            })),
            None => Box::pin(actix::fut::ready(Err(SmControlError::NotConnected(node)))),
        }
    }
}

/// Ask a node's SM for the status of its instances.
#[derive(Message)]
#[rtype(result = "Result<Vec<InstanceStatus>, SmControlError>")]
struct AskStatus(String);

impl Handler<AskStatus> for SmControllerActor {
    type Result = ResponseActFuture<Self, Result<Vec<InstanceStatus>, SmControlError>>;

    fn handle(&mut self, AskStatus(node): AskStatus, _: &mut Context<Self>) -> Self::Result {
        let Some(link) = self.links.get(&node).cloned() else {
            return Box::pin(actix::fut::ready(Err(SmControlError::NotConnected(node))));
        };
        let timeout = self.request_timeout;
        let fut = async move {
            let body = encode_body(&SmRequest::GetStatus, usize::MAX)?;
            ask(&link, body, timeout).await
        };
        Box::pin(fut.into_actor(self).map(move |result, act, _| {
            act.record(&node, &result);
            result.map(|report| report.instances)
        }))
    }
}

/// The CM's handle on its SM controller. Cheap to clone; the listener stops when the controller's actor
/// is stopped ([`SmController::stop`]).
#[derive(Clone)]
pub struct SmController {
    actor: Addr<SmControllerActor>,
    registry: watch::Receiver<SmRegistry>,
    local_addr: SocketAddr,
}

// === impl SmController ===

impl SmController {
    /// Serve SMs on `listener` with `tls` (mutual TLS; its client policy decides who may connect).
    /// Accepted links run on `pool`. Must be called inside an actix system.
    pub fn start(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        pool: ArbiterPool,
        link: LinkConfig,
        request_timeout: Duration,
    ) -> Result<SmController, CmError> {
        let local_addr = listener.local_addr().map_err(|source| CmError::Listen {
            addr: "the SM controller's listener".to_owned(),
            source,
        })?;
        let registry = watch::Sender::new(SmRegistry::default());
        let receiver = registry.subscribe();
        let actor = SmControllerActor {
            desired: BTreeMap::new(),
            links: BTreeMap::new(),
            registry,
            request_timeout,
            server: None,
        }
        .start();
        let routes = Routes::new()
            .subscribe(SM_CHANNEL, actor.clone().recipient())
            .watch_state(actor.clone().recipient());
        let acceptor = LinkAcceptor::new(pool, link, tls, routes)?;
        let server = serve_tcp(listener, acceptor);
        actor.do_send(SetServer(server));
        tracing::info!(%local_addr, "SM controller listening");
        Ok(SmController {
            actor,
            registry: receiver,
            local_addr,
        })
    }

    /// The address SMs connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Make `specs` the desired instances of `node` and send them to its SM; returns the SM's statuses.
    /// Without a connected SM the set is kept (and sent when it connects) and the answer is
    /// [`SmControlError::NotConnected`].
    pub async fn set_desired(
        &self,
        node: &str,
        specs: Vec<InstanceSpec>,
    ) -> Result<Vec<InstanceStatus>, SmControlError> {
        self.actor
            .send(SetDesired {
                node: node.to_owned(),
                specs,
            })
            .await
            .map_err(|_| SmControlError::Stopped)?
    }

    /// Ask `node`'s SM for its statuses.
    pub async fn status(&self, node: &str) -> Result<Vec<InstanceStatus>, SmControlError> {
        self.actor
            .send(AskStatus(node.to_owned()))
            .await
            .map_err(|_| SmControlError::Stopped)?
    }

    /// The registry now.
    pub fn registry(&self) -> SmRegistry {
        self.registry.borrow().clone()
    }

    /// Wait until the registry satisfies `ready`.
    pub async fn wait_for(
        &self,
        mut ready: impl FnMut(&SmRegistry) -> bool,
    ) -> Result<SmRegistry, SmControlError> {
        let mut registry = self.registry.clone();
        registry
            .wait_for(|r| ready(r))
            .await
            .map(|r| r.clone())
            .map_err(|_| SmControlError::Stopped)
    }

    /// Stop listening and close every SM link.
    pub async fn stop(&self) {
        let _ = self.actor.send(StopController).await;
    }
}

impl std::fmt::Debug for SmController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmController")
            .field("local_addr", &self.local_addr)
            .field("registry", &*self.registry.borrow())
            .finish()
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SetServer(JoinHandle<()>);

impl Handler<SetServer> for SmControllerActor {
    type Result = ();

    fn handle(&mut self, msg: SetServer, _: &mut Context<Self>) {
        self.server = Some(msg.0);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopController;

impl Handler<StopController> for SmControllerActor {
    type Result = ();

    fn handle(&mut self, _: StopController, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}
