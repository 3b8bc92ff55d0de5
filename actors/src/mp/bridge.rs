//! The secondary node's MP bridge: one link to the main node, one local listener per channel.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::ArbiterHandle;
use aos_transport::frame::Channel;
use aos_transport::link::{self, BoxedLink, LinkAddr, Listener};
use aos_transport::tls::{self, PeerIdentity};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tracing::Instrument;

use super::events::Subscribers;
use super::mux::{Mux, MuxRole};
use super::protocol::{is_secure, TUNNEL_CHANNELS};
use super::stream::TunnelEnd;
use super::{BridgeDown, BridgeSettings, BridgeTls, MpError};
use crate::net::{ArbiterPool, Backoff};

/// A tunnel opened with [`MpBridge::open`]: an in-memory byte stream whose other end is pumped to the main
/// node's endpoint of the channel. Shut down its writing side to send end-of-stream; drop it to close.
pub type Tunnel = DuplexStream;

/// Where a bridge's link to the main node stands ([`MpBridge::state`]).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum BridgeState {
    /// Dialling and handshaking; `attempt` counts from 1 since the last successful connection.
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// The link is up.
    Connected {
        /// Whether the bridge presented its `mp` certificate: all channels when true, the open ones only
        /// when false.
        authenticated: bool,
        /// The main node's identity.
        peer: Option<PeerIdentity>,
        /// Counts the connections of this bridge, from 1.
        generation: u64,
    },
    /// The link is down; the next attempt comes after `retry_in`.
    Disconnected {
        /// Why.
        reason: BridgeDown,
        /// Pause before the next attempt.
        retry_in: Duration,
    },
    /// The bridge was shut down.
    Stopped,
}

/// Something that happened to a local connection of the bridge ([`MpBridge::subscribe`]).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum BridgeEvent {
    /// A local connection on `channel` was closed without a tunnel: the link is down, the channel needs an
    /// authenticated link, or the main node refused the open.
    TunnelRefused {
        /// The channel.
        channel: Channel,
        /// Why.
        error: MpError,
    },
}

/// The MP bridge of a secondary node.
///
/// Keeps one link to the main node's [`MpServer`](super::MpServer): dial with backoff, TLS as
/// [`BridgeTls`] says (with the node's `mp` certificate once it is set, anonymous before), reconnect when the
/// link drops, and close and reconnect at once when the certificate changes (tunnels on the old link end;
/// their local connections are closed and clients reconnect). Each configured channel gets a local
/// listener; an accepted connection becomes a tunnel to the main node's endpoint of that channel. While the
/// link is anonymous, connections to the secure channels are closed at once. Everything runs on one worker
/// arbiter of the pool. Dropping the bridge stops it and closes its link.
pub struct MpBridge {
    shared: Arc<BridgeShared>,
    local: BTreeMap<Channel, LinkAddr>,
    /// The local listeners' accept loops.
    tasks: Vec<JoinHandle<()>>,
}

struct BridgeShared {
    current: Mutex<Option<Current>>,
    state: watch::Sender<BridgeState>,
    shutdown: watch::Sender<bool>,
    events: Subscribers<BridgeEvent>,
    arbiter: ArbiterHandle,
}

/// The link in use.
#[derive(Clone)]
struct Current {
    mux: Mux,
    authenticated: bool,
}

// === impl MpBridge ===

impl MpBridge {
    /// Bind the local listeners and start connecting, on one worker arbiter of `pool`.
    pub async fn start(
        pool: &ArbiterPool,
        settings: BridgeSettings,
        tls: BridgeTls,
    ) -> Result<MpBridge, MpError> {
        settings.mux.codec()?;
        let arbiter = pool.next();
        let (state, _) = watch::channel(BridgeState::Connecting { attempt: 1 });
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(BridgeShared {
            current: Mutex::new(None),
            state,
            shutdown,
            events: Subscribers::new(),
            arbiter: arbiter.clone(),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let task_shared = shared.clone();
        let started = arbiter.spawn(async move {
            let mut listeners = Vec::new();
            for (channel, addr) in &settings.local {
                match Listener::bind_with(addr, &settings.link_options).await {
                    Ok(listener) => listeners.push((*channel, listener)),
                    Err(err) => {
                        let _ = ready_tx.send(Err(MpError::from(err)));
                        return;
                    }
                }
            }
            let local: BTreeMap<Channel, LinkAddr> = listeners
                .iter()
                .map(|(channel, listener)| (*channel, listener.local_addr().clone()))
                .collect();
            let tasks: Vec<JoinHandle<()>> = listeners
                .into_iter()
                .map(|(channel, listener)| {
                    tokio::spawn(serve_local(listener, channel, task_shared.clone()))
                })
                .collect();
            // The link task ends by itself on shutdown, after closing the link.
            tokio::spawn(run(task_shared, settings, tls));
            let _ = ready_tx.send(Ok((local, tasks)));
        });
        if !started {
            return Err(MpError::Stopped);
        }
        let (local, tasks) = ready_rx.await.map_err(|_| MpError::Stopped)??;
        Ok(MpBridge {
            shared,
            local,
            tasks,
        })
    }

    /// The bound local address of `channel`'s listener (with the actual port for `tcp://…:0`).
    pub fn local_addr(&self, channel: Channel) -> Option<&LinkAddr> {
        self.local.get(&channel)
    }

    /// The link's state, now and as it changes.
    pub fn state(&self) -> watch::Receiver<BridgeState> {
        self.shared.state.subscribe()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<BridgeEvent> {
        self.shared.events.subscribe()
    }

    /// Open a tunnel on `channel` directly, without a local listener (for components in this process).
    /// Fails at once when the link is down or when a secure channel is asked for on an anonymous link.
    pub async fn open(&self, channel: Channel) -> Result<Tunnel, MpError> {
        self.shared.open(channel).await
    }

    /// A [`Dialer`](crate::net::Dialer) whose every dial opens a tunnel on `channel`: how this node's own
    /// components (the IAM registration client, the SM) reach the main node's endpoints through the bridge.
    /// It keeps working across reconnects of the bridge and fails its dials once the bridge is dropped.
    pub fn dialer(&self, channel: Channel) -> TunnelDialer {
        TunnelDialer {
            shared: Arc::downgrade(&self.shared),
            channel,
        }
    }

    /// Stop: close the link (the main node gets a `Close`) and the local listeners.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MpBridge {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for MpBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpBridge")
            .field("local", &self.local)
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

/// How long a [`TunnelDialer`] waits for a reconnecting bridge before its dial fails.
const DIAL_WAIT: Duration = Duration::from_secs(5);

/// Dials tunnels of one channel of an [`MpBridge`] ([`MpBridge::dialer`]).
#[derive(Clone)]
pub struct TunnelDialer {
    shared: std::sync::Weak<BridgeShared>,
    channel: Channel,
}

impl crate::net::Dialer for TunnelDialer {
    fn dial(&self) -> crate::net::DialFuture {
        let (shared, channel) = (self.shared.upgrade(), self.channel);
        Box::pin(async move {
            let shared = shared.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "the MP bridge was shut down")
            })?;
            // While the bridge reconnects (e.g. a new handshake after its certificate changed), wait for
            // it rather than fail: the caller's link would otherwise pause for its whole backoff.
            let mut state = shared.state.subscribe();
            let up = |s: &BridgeState| {
                !matches!(
                    s,
                    BridgeState::Connecting { .. } | BridgeState::Disconnected { .. }
                )
            };
            let _ = tokio::time::timeout(DIAL_WAIT, state.wait_for(up)).await;
            let tunnel = shared.open(channel).await.map_err(|e| {
                io::Error::new(io::ErrorKind::ConnectionRefused, format!("MP tunnel: {e}"))
            })?;
            Ok(Box::new(tunnel) as crate::net::BoxedStream)
        })
    }

    fn describe(&self) -> String {
        format!("mp tunnel {:?}", self.channel)
    }
}

impl std::fmt::Debug for TunnelDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelDialer")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

// === impl BridgeShared ===

impl BridgeShared {
    /// Open a tunnel on `channel` over the current link.
    async fn open(&self, channel: Channel) -> Result<Tunnel, MpError> {
        let mux = self.usable(channel)?;
        let stream = mux.open(channel).await?;
        let (ours, theirs) = tokio::io::duplex(mux.chunk());
        self.arbiter.spawn(async move {
            log_end(channel, stream.pump(theirs).await);
        });
        Ok(ours)
    }

    fn set_current(&self, current: Option<Current>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = current;
    }

    /// The link to open a tunnel of `channel` on, or why there is none.
    fn usable(&self, channel: Channel) -> Result<Mux, MpError> {
        if !TUNNEL_CHANNELS.contains(&channel) {
            return Err(MpError::NotATunnelChannel(channel));
        }
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match current {
            None => Err(MpError::NotConnected),
            Some(current) if is_secure(channel) && !current.authenticated => {
                Err(MpError::NotAuthenticated(channel))
            }
            Some(current) => Ok(current.mux),
        }
    }
}

/// Keep the link up until shut down.
async fn run(shared: Arc<BridgeShared>, settings: BridgeSettings, tls: BridgeTls) {
    let mut credentials = tls.credentials.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(
        settings.reconnect_backoff_initial,
        settings.reconnect_backoff_max,
    );
    let connector = TlsConnector::from(tls.config.clone());
    let remote: Arc<str> = settings.main.to_string().into();
    let mut generation = 0;
    loop {
        credentials.borrow_and_update();
        let authenticated = tls.credentials.is_ready();
        shared.state.send_replace(BridgeState::Connecting {
            attempt: backoff.attempts() + 1,
        });
        let attempt = connect(&settings, &connector, &tls);
        let result = tokio::select! {
            result = attempt => result,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let reason = match result {
            Ok((stream, peer)) => {
                backoff.reset();
                generation += 1;
                let mux = match Mux::start(
                    stream,
                    settings.mux.clone(),
                    MuxRole::Opener,
                    remote.clone(),
                ) {
                    Ok(mux) => mux,
                    Err(err) => {
                        tracing::error!("cannot run the MP link: {err}");
                        break;
                    }
                };
                match &peer {
                    Some(peer) => {
                        tracing::info!(main = %remote, %peer, authenticated, "MP link to the main node up")
                    }
                    None => {
                        tracing::info!(main = %remote, authenticated, "MP link to the main node up")
                    }
                }
                shared.set_current(Some(Current {
                    mux: mux.clone(),
                    authenticated,
                }));
                shared.state.send_replace(BridgeState::Connected {
                    authenticated,
                    peer,
                    generation,
                });
                let reason = tokio::select! {
                    end = mux.closed() => BridgeDown::Link(end),
                    _ = changed(&mut credentials) => {
                        mux.close("the bridge's mp certificate changed; reconnecting with a new handshake");
                        BridgeDown::CredentialsChanged
                    }
                    _ = shutdown.wait_for(|stop| *stop) => {
                        shared.set_current(None);
                        mux.close("the bridge is shutting down");
                        break;
                    }
                };
                shared.set_current(None);
                reason
            }
            Err(reason) => reason,
        };
        let retry_in = match reason {
            BridgeDown::CredentialsChanged => Duration::ZERO,
            _ => backoff.next_delay(),
        };
        tracing::info!(main = %remote, "MP link down ({reason}); next attempt in {retry_in:?}");
        shared
            .state
            .send_replace(BridgeState::Disconnected { reason, retry_in });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            // New credentials: try them now.
            _ = changed(&mut credentials) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    shared.set_current(None);
    shared.state.send_replace(BridgeState::Stopped);
}

/// Resolves when the credentials change (never, if they can no longer change).
async fn changed<T>(credentials: &mut watch::Receiver<T>) {
    if credentials.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Dial the main node and run the TLS handshake, each within the handshake timeout.
async fn connect(
    settings: &BridgeSettings,
    connector: &TlsConnector,
    tls: &BridgeTls,
) -> Result<(BoxedLink, Option<PeerIdentity>), BridgeDown> {
    let timeout = settings.mux.handshake_timeout;
    let dial = link::connect_with(&settings.main, &settings.link_options);
    let io = match tokio::time::timeout(timeout, dial).await {
        Ok(Ok(io)) => io,
        Ok(Err(err)) => {
            let err = io::Error::new(io::ErrorKind::ConnectionRefused, err.to_string());
            return Err(BridgeDown::Dial(Arc::new(err)));
        }
        Err(_) => {
            let err = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not answer within {timeout:?}", settings.main),
            );
            return Err(BridgeDown::Dial(Arc::new(err)));
        }
    };
    let (stream, peer) = tls::connect(connector, io, tls.server_name.clone(), timeout)
        .await
        .inspect_err(|err| {
            crate::audit::peer_refused(crate::audit::Side::Client, &settings.main, err)
        })
        .map_err(|err| BridgeDown::Handshake(Arc::new(err)))?;
    Ok((Box::new(stream), peer))
}

/// Accept local connections on `channel`'s listener until aborted; each becomes a tunnel.
async fn serve_local(mut listener: Listener, channel: Channel, shared: Arc<BridgeShared>) {
    let span = tracing::info_span!("mp_local", ?channel, listen = %listener.local_addr());
    async move {
        loop {
            match listener.accept().await {
                Ok(accepted) => {
                    let tunnel = tunnel(accepted.link, channel, shared.clone());
                    tokio::spawn(tunnel.in_current_span());
                }
                Err(err) => {
                    tracing::warn!(error = %err, "local accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Tunnel one local connection, or close it with the reason logged.
async fn tunnel(mut local: BoxedLink, channel: Channel, shared: Arc<BridgeShared>) {
    let opened = match shared.usable(channel) {
        Ok(mux) => mux.open(channel).await,
        Err(err) => Err(err),
    };
    match opened {
        Ok(stream) => log_end(channel, stream.pump(local).await),
        Err(error) => {
            tracing::warn!("local connection closed without a tunnel: {error}");
            shared
                .events
                .emit(BridgeEvent::TunnelRefused { channel, error });
            // A clean end of stream for the client, rather than a reset.
            let _ = local.shutdown().await;
        }
    }
}

fn log_end(channel: Channel, end: TunnelEnd) {
    match end {
        TunnelEnd::Finished => tracing::debug!(?channel, "tunnel closed"),
        TunnelEnd::PeerReset(error) => {
            tracing::info!(?channel, "tunnel reset by the main node: {error}")
        }
        TunnelEnd::LinkEnded => tracing::info!(?channel, "tunnel ended with the MP link"),
        TunnelEnd::Local(err) => {
            tracing::info!(?channel, "tunnel reset: the local connection failed: {err}")
        }
    }
}
