//! [`Sm`]: the service manager of one node, as an actor: its link to the CM's SM controller (mutual TLS,
//! its `sm` certificate; the server must hold a `cm` certificate of the unit), the instance table, periodic
//! reconciliation, and status reports to the CM.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use aos_config::Config;
use aos_transport::frame::{decode_body, encode_body};
use aos_transport::tls::{client_config, Credentials, Policy, Role, ServerAuth, TlsOptions};
use bytes::Bytes;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::sync::{mpsc, watch, Mutex};

use super::core::{Reconciled, SmCore};
use super::error::SmError;
use super::runner::{Ended, InstanceRunner};
use crate::api::sm::{InstanceStatus, SmEvent, SmRequest, SmResult, SM_CHANNEL};
use crate::cm::{HostDialer, IamAccess};
use crate::net::{
    ArbiterPool, ClientTls, Dialer, ErrorCode, Incoming, Link, LinkActor, LinkConfig, LinkState,
    Routes, StateChanged, WireError,
};

/// What the SM works with.
#[derive(Clone)]
pub struct SmParts {
    /// The unit id (the CM must belong to it).
    pub unit_id: String,
    /// This node's id.
    pub node_id: String,
    /// IAM (the main node's), as component `sm` of this node.
    pub iam: Arc<dyn IamAccess>,
    /// The `sm` certificate and key (kept current by a
    /// [`CertCredentials`](crate::cm::CertCredentials)); the SM cannot connect before it has one.
    pub credentials: Credentials,
    /// The unit CA.
    pub roots: Arc<RootCertStore>,
    /// Worker arbiters for the link.
    pub pool: ArbiterPool,
    /// Starts the instances.
    pub runner: Arc<dyn InstanceRunner>,
}

/// How the SM is set up (from `[sm]` and `[transport]`, see [`SmOptions::from_config`]).
#[derive(Clone)]
pub struct SmOptions {
    /// Opens the stream to the CM's SM controller.
    pub cm: Arc<dyn Dialer>,
    /// Framing, handshake timeout, backoff.
    pub link: LinkConfig,
    /// TLS versions and resumption.
    pub tls: TlsOptions,
    /// Period of reconciliation with IAM.
    pub reconcile_interval: Duration,
}

impl SmOptions {
    /// Options to reach the CM at `cm_addr` (`host:port`), with defaults elsewhere.
    pub fn new(cm_addr: &str) -> SmOptions {
        SmOptions {
            cm: Arc::new(HostDialer::new(cm_addr)),
            link: LinkConfig::default(),
            tls: TlsOptions::default(),
            reconcile_interval: aos_config::sm::DEFAULT_RECONCILE_INTERVAL,
        }
    }

    /// Options from a node's `[sm]` and `[transport]` tables, reaching the CM with `cm` (the node assembly
    /// resolves `sm.cm_addr`, or its default: this node's own CM or a tunnel of the MP bridge).
    pub fn from_config(config: &Config, cm: Arc<dyn Dialer>) -> SmOptions {
        SmOptions {
            cm,
            link: LinkConfig::from(&config.transport),
            tls: TlsOptions::from(&config.transport),
            reconcile_interval: config.sm.reconcile_interval,
        }
    }
}

impl std::fmt::Debug for SmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmOptions")
            .field("cm", &self.cm.describe())
            .field("link", &self.link)
            .field("reconcile_interval", &self.reconcile_interval)
            .finish_non_exhaustive()
    }
}

/// The SM actor.
pub struct Sm {
    core: Arc<Mutex<SmCore>>,
    link: Option<Link>,
    connected: watch::Sender<bool>,
    reconcile_interval: Duration,
}

// === impl Sm ===

impl Sm {
    /// Start the SM: dial the CM and serve its requests. Must run inside an actix system.
    pub fn start(parts: SmParts, options: SmOptions) -> Result<SmHandle, SmError> {
        let tls = client_config(
            ServerAuth::Identity {
                roots: parts.roots.clone(),
                policy: Policy::roles([Role::Cm]).with_unit(parts.unit_id.clone()),
            },
            Some(&parts.credentials),
            &options.tls,
        )?;
        let server_name =
            ServerName::try_from("cm").map_err(|_| SmError::CmAddr("cm".to_owned()))?;
        options
            .link
            .codec()
            .map_err(|e| SmError::Link(crate::net::LinkError::InvalidConfig(e)))?;
        let (exits_tx, mut exits_rx) = mpsc::unbounded_channel::<Ended>();
        let core = Arc::new(Mutex::new(SmCore::new(
            parts.iam.clone(),
            parts.runner.clone(),
            exits_tx,
        )));
        let connected = watch::Sender::new(false);
        let connected_rx = connected.subscribe();
        let mut dialed = None;
        let addr = Sm::create(|ctx| {
            let routes = Routes::new()
                .handle(SM_CHANNEL, ctx.address().recipient())
                .watch_state(ctx.address().recipient());
            let link = LinkActor::dial(
                &parts.pool,
                options.link.clone(),
                options.cm.clone(),
                ClientTls {
                    config: tls,
                    server_name,
                },
                routes,
            );
            let link = match link {
                Ok(link) => Some(link),
                Err(err) => {
                    dialed = Some(err);
                    None
                }
            };
            Sm {
                core,
                link,
                connected,
                reconcile_interval: options.reconcile_interval,
            }
        });
        if let Some(err) = dialed {
            addr.do_send(StopSm);
            return Err(SmError::Link(err));
        }
        let me = addr.clone();
        actix_rt::spawn(async move {
            while let Some(ended) = exits_rx.recv().await {
                if !me.connected() {
                    break;
                }
                me.do_send(ended);
            }
        });
        tracing::info!(node = %parts.node_id, cm = %options.cm.describe(), "SM started");
        Ok(SmHandle {
            addr,
            connected: connected_rx,
        })
    }

    /// Send the statuses to the CM (if connected).
    fn report(&self, ctx: &mut Context<Self>) {
        let Some(link) = self.link.clone() else {
            return;
        };
        let core = self.core.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            let report = core.lock().await.report();
            match encode_body(&SmEvent::Status(report), usize::MAX) {
                Ok(body) => {
                    if let Err(err) = link.publish(SM_CHANNEL, body).await {
                        tracing::debug!("status not sent to the CM: {err}");
                    }
                }
                Err(err) => tracing::warn!("cannot encode the status: {err}"),
            }
        }));
    }
}

impl Actor for Sm {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.reconcile_interval, |_, ctx| {
            ctx.notify(Reconcile);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(link) = self.link.take() {
            actix_rt::spawn(async move { link.close("sm stopping").await });
        }
    }
}

impl Handler<Incoming> for Sm {
    type Result = ResponseFuture<Result<Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let request: SmRequest = match decode_body(&msg.body, msg.body.len()) {
            Ok(request) => request,
            Err(err) => {
                return Box::pin(std::future::ready(Err(WireError::new(
                    ErrorCode::BAD_REQUEST,
                    format!("the SM cannot read this request: {err}"),
                ))))
            }
        };
        let core = self.core.clone();
        Box::pin(async move {
            let mut core = core.lock().await;
            let result: SmResult = match request {
                SmRequest::DesiredInstances(specs) => {
                    tracing::info!(instances = specs.len(), "desired instances from the CM");
                    core.apply(specs).await
                }
                SmRequest::GetStatus => Ok(core.report()),
            };
            encode_body(&result, usize::MAX)
                .map(Bytes::from)
                .map_err(|e| WireError::new(ErrorCode::INTERNAL, e.to_string()))
        })
    }
}

impl Handler<Ended> for Sm {
    type Result = ();

    fn handle(&mut self, msg: Ended, ctx: &mut Context<Self>) {
        let core = self.core.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            if core.lock().await.ended(msg) {
                me.do_send(Report);
            }
        });
    }
}

impl Handler<StateChanged> for Sm {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        let up = matches!(msg.state, LinkState::Connected { .. });
        self.connected.send_replace(up);
        if up {
            self.report(ctx);
            // This is the link to the CM. It comes back with the node's other links (after a certificate is
            // applied, after a restart of the main node), so instances that failed while IAM was out of
            // reach are retried now rather than at the next periodic reconciliation. A pass waits for IAM
            // at most 1.8 s in all.
            ctx.notify(Reconcile);
        }
    }
}

/// Send the statuses to the CM.
#[derive(Message)]
#[rtype(result = "()")]
struct Report;

impl Handler<Report> for Sm {
    type Result = ();

    fn handle(&mut self, _: Report, ctx: &mut Context<Self>) {
        self.report(ctx);
    }
}

/// Reconcile with IAM now (also done every `reconcile_interval`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Reconciled")]
pub struct Reconcile;

impl Handler<Reconcile> for Sm {
    type Result = ResponseFuture<Reconciled>;

    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        let me = ctx.address();
        Box::pin(async move {
            let report = core.lock().await.reconcile().await;
            if report.changed() {
                me.do_send(Report);
            }
            report
        })
    }
}

/// The statuses of every instance.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<InstanceStatus>")]
struct Statuses;

impl Handler<Statuses> for Sm {
    type Result = ResponseFuture<Vec<InstanceStatus>>;

    fn handle(&mut self, _: Statuses, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.statuses() })
    }
}

/// Stop and unregister every instance, close the link, stop the actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct StopSm;

impl Handler<StopSm> for Sm {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopSm, ctx: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        ctx.stop();
        Box::pin(async move { core.lock().await.stop_all().await })
    }
}

/// A running SM. Cheap to clone.
#[derive(Clone)]
pub struct SmHandle {
    addr: Addr<Sm>,
    connected: watch::Receiver<bool>,
}

// === impl SmHandle ===

impl SmHandle {
    /// Reconcile with IAM now.
    pub async fn reconcile(&self) -> Option<Reconciled> {
        self.addr.send(Reconcile).await.ok()
    }

    /// The status of every instance.
    pub async fn statuses(&self) -> Vec<InstanceStatus> {
        self.addr.send(Statuses).await.unwrap_or_default()
    }

    /// Whether the link to the CM is up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Wait until the link to the CM is up; `false` if the SM stopped first.
    pub async fn wait_connected(&self) -> bool {
        let mut connected = self.connected.clone();
        let up = connected.wait_for(|up| *up).await.is_ok();
        up
    }

    /// Stop every instance, unregister them from IAM and close the link.
    pub async fn stop(&self) {
        let _ = self.addr.send(StopSm).await;
    }
}

impl std::fmt::Debug for SmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmHandle")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}
