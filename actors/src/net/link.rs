//! The link actor: one connection (dial or accept, TLS, frames), its lifecycle and reconnection.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, ArbiterHandle, AsyncContext, Context, SpawnHandle,
    WrapFuture,
};
use aos_transport::frame::{Channel, Envelope, FrameCodec, MessageKind};
use aos_transport::tls::{self, PeerIdentity};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::reader::Reader;
use super::writer::{self, Outbox, Outgoing};
use super::{
    ArbiterPool, Backoff, BoxedStream, Dialer, DisconnectReason, Link, LinkConfig, LinkError,
    LinkState, Routes, StateChanged,
};

/// How the dialing side runs TLS: the client configuration (`aos_transport::tls::client_config`) and the
/// name sent as SNI (for aos nodes any valid name; the node id is a good choice).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls client configuration.
    pub config: Arc<ClientConfig>,
    /// The server name sent in the handshake.
    pub server_name: ServerName<'static>,
}

/// Opens an accepted stream on the link's own arbiter (so its I/O registers with that arbiter's runtime).
pub(super) type StreamOpener = Box<dyn FnOnce() -> io::Result<BoxedStream> + Send>;

/// The actor owning one connection: byte stream, TLS, frames; requests with correlation ids and timeouts,
/// events, four multiplexed channels plus control; reconnection with backoff on the dialing side.
///
/// Start one with [`LinkActor::dial`] or through a [`LinkAcceptor`](super::LinkAcceptor); both place it on a
/// worker arbiter of an [`ArbiterPool`]. Reading runs as a stream of the actor; writing runs as a task fed by
/// a queue, which batches frames and flushes after each batch. An accepted link stops when its connection
/// ends; a dialing link reconnects until it is sent [`Close`](super::Close).
pub struct LinkActor {
    pub(super) config: LinkConfig,
    pub(super) codec: FrameCodec,
    role: Role,
    pub(super) routes: Routes,
    pub(super) remote: Arc<str>,
    pub(super) state: LinkState,
    pub(super) conn: Option<Connection>,
    generation: u64,
    /// The scheduled reconnection of a dialing link, and the wait for its dialer's readiness that may
    /// bring it forward.
    retry: Option<(SpawnHandle, Option<SpawnHandle>)>,
    next_correlation: u64,
    pub(super) pending: HashMap<u64, Waiter>,
    pub(super) closing: bool,
}

/// Where a request's answer goes.
pub(super) type Waiter = oneshot::Sender<Result<bytes::Bytes, LinkError>>;

enum Role {
    Dial {
        dialer: Arc<dyn Dialer>,
        tls: ClientTls,
        backoff: Backoff,
    },
    Accept {
        open: Option<StreamOpener>,
        acceptor: TlsAcceptor,
    },
}

/// The live connection.
pub(super) struct Connection {
    pub(super) generation: u64,
    pub(super) outbox: Outbox,
    reader: SpawnHandle,
    writer: JoinHandle<()>,
    pub(super) peer: Option<Arc<PeerIdentity>>,
    pub(super) last_received: Instant,
    /// When the connection came up.
    since: Instant,
}

/// A connection that lasted this long is reconnected at once when it drops (a peer restarting, a tunnel
/// re-handshaking); one that dropped sooner waits for the backoff, so a peer that accepts and drops at
/// once is not hammered.
const STABLE: std::time::Duration = std::time::Duration::from_millis(250);

type Handshake = Result<(TlsStream<BoxedStream>, Option<PeerIdentity>), DisconnectReason>;

// === impl LinkActor ===

impl LinkActor {
    /// Start a link that dials with `dialer`, runs TLS as `tls` says and reconnects with backoff, on the
    /// next arbiter of `pool`. Fails only for an invalid `config`.
    pub fn dial(
        pool: &ArbiterPool,
        config: LinkConfig,
        dialer: Arc<dyn Dialer>,
        tls: ClientTls,
        routes: Routes,
    ) -> Result<Link, LinkError> {
        let codec = config.codec().map_err(LinkError::InvalidConfig)?;
        let remote: Arc<str> = dialer.describe().into();
        let backoff = Backoff::new(
            config.reconnect_backoff_initial,
            config.reconnect_backoff_max,
        );
        let role = Role::Dial {
            dialer,
            tls,
            backoff,
        };
        let addr = LinkActor::start_in_arbiter(&pool.next(), move |_| {
            LinkActor::new(config, codec, role, routes, remote)
        });
        Ok(Link::new(addr))
    }

    /// Start an accepted link on `arbiter`: `open` yields the stream there, then the TLS handshake runs.
    pub(super) fn accepted(
        arbiter: &ArbiterHandle,
        config: LinkConfig,
        codec: FrameCodec,
        acceptor: TlsAcceptor,
        open: StreamOpener,
        remote: Arc<str>,
        routes: Routes,
    ) -> Link {
        let role = Role::Accept {
            open: Some(open),
            acceptor,
        };
        let addr = LinkActor::start_in_arbiter(arbiter, move |_| {
            LinkActor::new(config, codec, role, routes, remote)
        });
        Link::new(addr)
    }

    fn new(
        config: LinkConfig,
        codec: FrameCodec,
        role: Role,
        routes: Routes,
        remote: Arc<str>,
    ) -> Self {
        LinkActor {
            config,
            codec,
            role,
            routes,
            remote,
            state: LinkState::Connecting { attempt: 1 },
            conn: None,
            generation: 0,
            retry: None,
            next_correlation: 1,
            pending: HashMap::new(),
            closing: false,
        }
    }

    /// A fresh correlation id (never 0, which events and pings use).
    pub(super) fn next_correlation(&mut self) -> u64 {
        let id = self.next_correlation;
        self.next_correlation = self.next_correlation.checked_add(1).unwrap_or(1);
        id
    }

    /// Dial (or take the accepted stream) and run the TLS handshake, as a future of this actor.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let timeout = self.config.handshake_timeout;
        let (attempt, handshake): (
            u32,
            std::pin::Pin<Box<dyn std::future::Future<Output = Handshake>>>,
        ) = match &mut self.role {
            Role::Dial {
                dialer,
                tls,
                backoff,
            } => {
                let dial = dialer.dial();
                let connector = TlsConnector::from(tls.config.clone());
                let name = tls.server_name.clone();
                let handshake = async move {
                    let io = match tokio::time::timeout(timeout, dial).await {
                        Ok(Ok(io)) => io,
                        Ok(Err(err)) => return Err(DisconnectReason::Dial(Arc::new(err))),
                        Err(_) => {
                            let err = io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("dial did not finish within {timeout:?}"),
                            );
                            return Err(DisconnectReason::Dial(Arc::new(err)));
                        }
                    };
                    let (stream, peer) = tls::connect(&connector, io, name, timeout)
                        .await
                        .map_err(|err| DisconnectReason::Handshake(Arc::new(err)))?;
                    Ok((TlsStream::Client(stream), peer))
                };
                (backoff.attempts() + 1, Box::pin(handshake))
            }
            Role::Accept { open, acceptor } => {
                let Some(open) = open.take() else {
                    return;
                };
                let acceptor = acceptor.clone();
                let handshake = async move {
                    let io = open().map_err(|err| DisconnectReason::Io(Arc::new(err)))?;
                    let (stream, peer) = tls::accept(&acceptor, io, timeout)
                        .await
                        .map_err(|err| DisconnectReason::Handshake(Arc::new(err)))?;
                    Ok((TlsStream::Server(stream), peer))
                };
                (1, Box::pin(handshake))
            }
        };
        self.set_state(LinkState::Connecting { attempt }, ctx);
        ctx.spawn(
            handshake
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok((stream, peer)) => act.install(stream, peer, ctx),
                    Err(reason) => {
                        act.audit_refusal(&reason);
                        act.lost(reason, ctx)
                    }
                }),
        );
    }

    /// Record a handshake this side refused in the audit log.
    fn audit_refusal(&self, reason: &DisconnectReason) {
        if let DisconnectReason::Handshake(err) = reason {
            let side = match self.role {
                Role::Dial { .. } => crate::audit::Side::Client,
                Role::Accept { .. } => crate::audit::Side::Server,
            };
            crate::audit::peer_refused(side, &self.remote, err);
        }
    }

    /// Start reading and writing a connection whose handshake succeeded.
    fn install(
        &mut self,
        stream: TlsStream<BoxedStream>,
        peer: Option<PeerIdentity>,
        ctx: &mut Context<Self>,
    ) {
        if self.closing {
            return;
        }
        let certificate: Option<CertificateDer<'static>> = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.clone().into_owned());
        self.generation += 1;
        let generation = self.generation;
        let (read, write) = tokio::io::split(stream);
        let reader = ctx.add_stream(Reader::new(generation, read, self.codec.clone()));
        let (outbox, queue) = writer::outbox();
        let me = ctx.address().downgrade();
        let codec = self.codec.clone();
        let writer = actix_rt::spawn(async move {
            if let Err(error) = writer::run(write, queue, codec).await {
                if let Some(me) = me.upgrade() {
                    me.do_send(WriterFailed { generation, error });
                }
            }
        });
        if let Role::Dial { backoff, .. } = &mut self.role {
            backoff.reset();
        }
        match &peer {
            Some(peer) => tracing::info!(remote = %self.remote, %peer, "link connected"),
            None => tracing::info!(remote = %self.remote, "link connected (peer without identity)"),
        }
        self.conn = Some(Connection {
            generation,
            outbox,
            reader,
            writer,
            peer: peer.clone().map(Arc::new),
            last_received: Instant::now(),
            since: Instant::now(),
        });
        self.set_state(LinkState::Connected { peer, certificate }, ctx);
    }

    /// The connection ended (or never came up): fail what waits on it, report, and reconnect or stop.
    pub(super) fn lost(&mut self, reason: DisconnectReason, ctx: &mut Context<Self>) {
        let mut was_stable = false;
        if let Some(conn) = self.conn.take() {
            ctx.cancel_future(conn.reader);
            conn.writer.abort();
            was_stable = conn.since.elapsed() >= STABLE;
        }
        self.fail_pending(&reason);
        let retry_in = match &mut self.role {
            Role::Dial {
                backoff, dialer, ..
            } if !self.closing => {
                let backoff_delay = backoff.next_delay();
                let delay = if was_stable {
                    std::time::Duration::ZERO
                } else {
                    backoff_delay
                };
                let ready = dialer.ready();
                self.cancel_retry(ctx);
                // Whichever fires first dials, and forgets the other (never itself: it is running).
                let timer = ctx.run_later(delay, |act, ctx| {
                    if let Some((_, Some(wake))) = act.retry.take() {
                        ctx.cancel_future(wake);
                    }
                    act.connect(ctx);
                });
                let wake = ready.map(|ready| {
                    ctx.spawn(
                        actix::fut::wrap_future(ready).map(|(), act: &mut Self, ctx| {
                            if let Some((timer, _)) = act.retry.take() {
                                ctx.cancel_future(timer);
                                act.connect(ctx);
                            }
                        }),
                    )
                });
                self.retry = Some((timer, wake));
                Some(delay)
            }
            _ => None,
        };
        match retry_in {
            Some(delay) => {
                tracing::info!(remote = %self.remote, %reason, "link down; reconnecting in {delay:?}")
            }
            None => tracing::info!(remote = %self.remote, %reason, "link down"),
        }
        self.set_state(LinkState::Disconnected { reason, retry_in }, ctx);
        if retry_in.is_none() {
            ctx.stop();
        }
    }

    /// Forget the scheduled reconnection (its timer and its readiness wait).
    fn cancel_retry(&mut self, ctx: &mut Context<Self>) {
        if let Some((timer, wake)) = self.retry.take() {
            ctx.cancel_future(timer);
            if let Some(wake) = wake {
                ctx.cancel_future(wake);
            }
        }
    }

    /// Fail every in-flight request with `Disconnected(reason)`.
    pub(super) fn fail_pending(&mut self, reason: &DisconnectReason) {
        for (_, waiter) in self.pending.drain() {
            let _ = waiter.send(Err(LinkError::Disconnected(reason.clone())));
        }
    }

    /// Record and report a new state.
    pub(super) fn set_state(&mut self, state: LinkState, ctx: &mut Context<Self>) {
        self.routes
            .state
            .retain(|subscriber| subscriber.connected());
        if !self.routes.state.is_empty() {
            let link = ctx.address();
            for subscriber in &self.routes.state {
                subscriber.do_send(StateChanged {
                    link: link.clone(),
                    state: state.clone(),
                });
            }
        }
        self.state = state;
    }

    /// Ping the peer, or drop the connection if it has been silent for two intervals.
    fn keepalive(&mut self, interval: Duration, ctx: &mut Context<Self>) {
        let Some(conn) = &self.conn else {
            return;
        };
        let silence = conn.last_received.elapsed();
        if silence > interval * 2 {
            tracing::warn!(remote = %self.remote, "no traffic for {silence:?}; dropping the connection");
            self.lost(DisconnectReason::KeepaliveTimeout(silence), ctx);
            return;
        }
        let ping = Envelope::new(Channel::Control, 0, MessageKind::Ping, Vec::new());
        let _ = conn.outbox.send(Outgoing::frame(ping));
    }

    /// Shut the connection down after sending `reason`, then stop (used by [`Close`](super::Close)).
    pub(super) fn close(
        &mut self,
        reason: String,
        ctx: &mut Context<Self>,
    ) -> Option<JoinHandle<()>> {
        self.closing = true;
        let conn = self.conn.take();
        self.fail_pending(&DisconnectReason::Closed);
        self.set_state(
            LinkState::Disconnected {
                reason: DisconnectReason::Closed,
                retry_in: None,
            },
            ctx,
        );
        let conn = conn?;
        ctx.cancel_future(conn.reader);
        let _ = conn.outbox.send(Outgoing::Close(reason));
        Some(conn.writer)
    }
}

impl Actor for LinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many requests are sent at once through one link; do not make senders wait on a 16-slot mailbox.
        ctx.set_mailbox_capacity(1024);
        if let Some(interval) = self.config.keepalive {
            ctx.run_interval(interval, move |act, ctx| act.keepalive(interval, ctx));
        }
        self.connect(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(conn) = self.conn.take() {
            conn.writer.abort();
        }
        self.fail_pending(&DisconnectReason::Closed);
    }
}

/// The writer task of connection `generation` failed.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct WriterFailed {
    pub(super) generation: u64,
    pub(super) error: io::Error,
}

impl actix::Handler<WriterFailed> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: WriterFailed, ctx: &mut Context<Self>) {
        if self.conn.as_ref().map(|c| c.generation) == Some(msg.generation) {
            self.lost(DisconnectReason::Io(Arc::new(msg.error)), ctx);
        }
    }
}

impl std::fmt::Debug for LinkActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkActor")
            .field("remote", &self.remote)
            .field("state", &self.state)
            .field("in_flight", &self.pending.len())
            .finish_non_exhaustive()
    }
}
