//! The main node's MP server: accepts bridges' links and connects their tunnels to the channel targets.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aos_transport::frame::Channel;
use aos_transport::link::{self, Accepted, LinkAddr, LinkOptions, Listener};
use aos_transport::tls::{self, HandshakeError, PeerIdentity};
use rustls::ServerConfig;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;
use x509_parser::prelude::FromDer;

use super::events::Subscribers;
use super::mux::{Mux, MuxRole, PendingOpen};
use super::protocol::{is_secure, OpenRefusal};
use super::stream::TunnelEnd;
use super::{LinkEnd, MpError, ServerSettings};
use crate::net::ArbiterPool;

/// Something that happened on the MP server, for subscribers ([`MpServer::subscribe`]).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// A bridge completed its handshake.
    LinkUp {
        /// The link's number on this server.
        link: u64,
        /// Where it comes from (for logs).
        remote: Arc<str>,
        /// The bridge's identity (role `mp` of this unit), or `None` for an anonymous bridge.
        peer: Option<PeerIdentity>,
        /// The serial number of the bridge's certificate (hex, as x509-parser prints it).
        serial: Option<String>,
    },
    /// A link ended (its tunnels ended with it).
    LinkDown {
        /// The link's number.
        link: u64,
        /// Why.
        reason: LinkEnd,
    },
    /// A connection failed or was refused during the TLS handshake.
    HandshakeFailed {
        /// Where it came from.
        remote: Arc<str>,
        /// Why (with the refusal reason if we refused it).
        error: Arc<HandshakeError>,
    },
    /// A tunnel open was refused.
    TunnelRefused {
        /// The link's number.
        link: u64,
        /// The channel asked for.
        channel: Channel,
        /// Why.
        refusal: OpenRefusal,
    },
}

/// The MP server of the main node.
///
/// Listens on `settings.listen` (any link kind), runs TLS with [`server_tls`](super::server_tls) (bridge
/// certificate optional), and serves each link on a worker arbiter of the pool: a tunnel open on a channel is
/// connected to that channel's target, or refused with a typed [`OpenRefusal`] — always for a secure channel
/// on an anonymous link. Dropping the server stops listening and closes every link.
pub struct MpServer {
    local_addr: LinkAddr,
    shared: Arc<ServerShared>,
    accept: JoinHandle<()>,
}

struct ServerShared {
    links: Mutex<HashMap<u64, Mux>>,
    /// Set when the server is dropped: links whose handshake finishes afterwards are closed at once.
    stopped: AtomicBool,
    next_link: AtomicU64,
    events: Subscribers<ServerEvent>,
}

/// What each link task needs.
#[derive(Clone)]
struct LinkContext {
    shared: Arc<ServerShared>,
    acceptor: TlsAcceptor,
    settings: Arc<ServerSettings>,
}

// === impl MpServer ===

impl MpServer {
    /// Bind `settings.listen` and start serving, on worker arbiters of `pool` (never the caller's).
    pub async fn start(
        pool: &ArbiterPool,
        settings: ServerSettings,
        tls: Arc<ServerConfig>,
    ) -> Result<MpServer, MpError> {
        settings.mux.codec()?;
        let shared = Arc::new(ServerShared {
            links: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            next_link: AtomicU64::new(1),
            events: Subscribers::new(),
        });
        let context = LinkContext {
            shared: shared.clone(),
            acceptor: TlsAcceptor::from(tls),
            settings: Arc::new(settings),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let workers = pool.clone();
        let started = pool.next().spawn(async move {
            let bound =
                Listener::bind_with(&context.settings.listen, &context.settings.link_options).await;
            let listener = match bound {
                Ok(listener) => listener,
                Err(err) => {
                    let _ = ready_tx.send(Err(MpError::from(err)));
                    return;
                }
            };
            let local = listener.local_addr().clone();
            let task = tokio::spawn(accept_loop(listener, workers, context));
            let _ = ready_tx.send(Ok((local, task)));
        });
        if !started {
            return Err(MpError::Stopped);
        }
        let (local_addr, accept) = ready_rx.await.map_err(|_| MpError::Stopped)??;
        tracing::info!(listen = %local_addr, "MP server listening");
        Ok(MpServer {
            local_addr,
            shared,
            accept,
        })
    }

    /// The bound address (with the actual port when `tcp://…:0` was asked for).
    pub fn local_addr(&self) -> &LinkAddr {
        &self.local_addr
    }

    /// Events from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<ServerEvent> {
        self.shared.events.subscribe()
    }

    /// Links up now.
    pub fn link_count(&self) -> usize {
        self.shared.lock_links().len()
    }

    /// Stop listening and close every link (each bridge gets a `Close` and reconnects later).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MpServer {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.stopped.store(true, Ordering::SeqCst);
        let links: Vec<Mux> = self
            .shared
            .lock_links()
            .drain()
            .map(|(_, mux)| mux)
            .collect();
        for mux in links {
            mux.close("the main node's MP server is shutting down");
        }
    }
}

impl std::fmt::Debug for MpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpServer")
            .field("local_addr", &self.local_addr)
            .field("links", &self.link_count())
            .finish_non_exhaustive()
    }
}

// === impl ServerShared ===

impl ServerShared {
    fn lock_links(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Mux>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Accept links until aborted; each is served on the next worker arbiter.
async fn accept_loop(mut listener: Listener, pool: ArbiterPool, context: LinkContext) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                let context = context.clone();
                pool.next().spawn(serve_link(accepted, context));
            }
            Err(err) => {
                // Transient (a peer reset before accept, fd exhaustion): pause so it does not spin.
                tracing::warn!(error = %err, "MP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One link: handshake, then tunnel opens until it ends.
async fn serve_link(accepted: Accepted, context: LinkContext) {
    let remote: Arc<str> = accepted.peer.as_str().into();
    let span = tracing::info_span!("mp_link", remote = %remote);
    async move {
        let timeout = context.settings.mux.handshake_timeout;
        let (stream, peer) = match tls::accept(&context.acceptor, accepted.link, timeout).await {
            Ok(done) => done,
            Err(err) => {
                crate::audit::peer_refused(crate::audit::Side::Server, &remote, &err);
                context.shared.events.emit(ServerEvent::HandshakeFailed {
                    remote,
                    error: Arc::new(err),
                });
                return;
            }
        };
        let serial = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| x509_parser::certificate::X509Certificate::from_der(leaf).ok())
            .map(|(_, cert)| cert.raw_serial_as_string());
        let authenticated = peer.is_some();
        let (opens_tx, mut opens) = mpsc::unbounded_channel();
        let mux = match Mux::start(
            Box::new(stream),
            context.settings.mux.clone(),
            MuxRole::Acceptor(opens_tx),
            remote.clone(),
        ) {
            Ok(mux) => mux,
            Err(err) => {
                tracing::error!("cannot serve the MP link: {err}");
                return;
            }
        };
        let link = context.shared.next_link.fetch_add(1, Ordering::Relaxed);
        {
            let mut links = context.shared.lock_links();
            if context.shared.stopped.load(Ordering::SeqCst) {
                drop(links);
                mux.close("the main node's MP server is shutting down");
                return;
            }
            links.insert(link, mux.clone());
        }
        match &peer {
            Some(peer) => {
                tracing::info!(%peer, ?serial, "MP link up (authenticated: all channels)")
            }
            None => tracing::info!("MP link up (anonymous: open channels only)"),
        }
        context.shared.events.emit(ServerEvent::LinkUp {
            link,
            remote,
            peer,
            serial,
        });
        let reason = loop {
            tokio::select! {
                biased;
                Some(open) = opens.recv() => {
                    let tunnel = open_tunnel(open, authenticated, link, context.clone());
                    tokio::spawn(tunnel.in_current_span());
                }
                reason = mux.closed() => break reason,
            }
        };
        context.shared.lock_links().remove(&link);
        context
            .shared
            .events
            .emit(ServerEvent::LinkDown { link, reason });
    }
    .instrument(span)
    .await
}

/// Connect an open request's target and pump it, or refuse it.
async fn open_tunnel(open: PendingOpen, authenticated: bool, link: u64, context: LinkContext) {
    let PendingOpen { channel, stream } = open;
    let (_, id) = stream.key();
    let refuse = |stream: super::stream::StreamHandle, refusal: OpenRefusal| {
        tracing::warn!(?channel, stream = id, "tunnel refused: {refusal}");
        stream.refuse(&refusal);
        context.shared.events.emit(ServerEvent::TunnelRefused {
            link,
            channel,
            refusal,
        });
    };
    if is_secure(channel) && !authenticated {
        return refuse(stream, OpenRefusal::Unauthenticated(channel));
    }
    let targets: &BTreeMap<Channel, LinkAddr> = &context.settings.targets;
    let Some(target) = targets.get(&channel) else {
        return refuse(stream, OpenRefusal::NoTarget(channel));
    };
    let timeout = context.settings.mux.handshake_timeout;
    let options: &LinkOptions = &context.settings.link_options;
    let io = match tokio::time::timeout(timeout, link::connect_with(target, options)).await {
        Ok(Ok(io)) => io,
        Ok(Err(err)) => {
            let detail = err.to_string();
            return refuse(stream, OpenRefusal::TargetUnreachable { channel, detail });
        }
        Err(_) => {
            let detail = format!("{target} did not accept a connection within {timeout:?}");
            return refuse(stream, OpenRefusal::TargetUnreachable { channel, detail });
        }
    };
    stream.accept();
    tracing::debug!(?channel, stream = id, %target, "tunnel open");
    match stream.pump(io).await {
        TunnelEnd::Local(err) => {
            tracing::info!(
                ?channel,
                stream = id,
                "tunnel reset: the target connection failed: {err}"
            )
        }
        end => tracing::debug!(?channel, stream = id, "tunnel ended: {end:?}"),
    }
}
