//! The accepting side: streams in, one link actor per stream out.

use std::io;
use std::sync::Arc;

use actix::{Addr, ArbiterHandle};
use aos_transport::frame::FrameCodec;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::{ArbiterPool, BoxedStream, Link, LinkActor, LinkConfig, LinkError, Routes};

/// Turns accepted byte streams into [`LinkActor`]s: each runs the TLS handshake (with the handshake
/// timeout and the acceptance marker) on a worker arbiter of the pool, then serves `routes`.
///
/// Link kinds feed it: [`serve_tcp`] for a TCP listener; other kinds call [`LinkAcceptor::take`] with each
/// stream they accept. Clones share the configuration.
#[derive(Clone)]
pub struct LinkAcceptor {
    pool: ArbiterPool,
    config: LinkConfig,
    codec: FrameCodec,
    acceptor: TlsAcceptor,
    routes: Routes,
    /// Start every link here instead of on the pool's next arbiter.
    arbiter: Option<ArbiterHandle>,
}

// === impl LinkAcceptor ===

impl LinkAcceptor {
    /// An acceptor running TLS with `tls` (from `aos_transport::tls::server_config`). Fails only for an
    /// invalid `config`.
    pub fn new(
        pool: ArbiterPool,
        config: LinkConfig,
        tls: Arc<ServerConfig>,
        routes: Routes,
    ) -> Result<Self, LinkError> {
        let codec = config.codec().map_err(LinkError::InvalidConfig)?;
        Ok(LinkAcceptor {
            pool,
            config,
            codec,
            acceptor: TlsAcceptor::from(tls),
            routes,
            arbiter: None,
        })
    }

    /// This acceptor with every link started on `arbiter` (one of the pool's), e.g. next to the actor that
    /// handles its requests, so a request does not cross threads between the link and its handler.
    pub fn on_arbiter(mut self, arbiter: ArbiterHandle) -> Self {
        self.arbiter = Some(arbiter);
        self
    }

    /// Serve a stream accepted from `remote` (for logs). The stream is moved to the link's arbiter as is;
    /// for a tokio socket registered with another runtime use [`LinkAcceptor::take_with`], so its I/O is
    /// driven by the link's own arbiter.
    pub fn take(&self, stream: BoxedStream, remote: impl Into<Arc<str>>) -> Link {
        self.take_with(Box::new(move || Ok(stream)), remote)
    }

    /// Serve a stream that `open` makes on the link's arbiter (e.g. `TcpStream::from_std`).
    pub fn take_with(
        &self,
        open: Box<dyn FnOnce() -> io::Result<BoxedStream> + Send>,
        remote: impl Into<Arc<str>>,
    ) -> Link {
        LinkActor::accepted(
            &self.arbiter.clone().unwrap_or_else(|| self.pool.next()),
            self.config.clone(),
            self.codec.clone(),
            self.acceptor.clone(),
            open,
            remote.into(),
            self.routes.clone(),
        )
    }

    /// Serve an accepted TCP connection (`TCP_NODELAY` set), re-registered on the link's arbiter.
    pub fn take_tcp(&self, tcp: TcpStream) -> io::Result<Addr<LinkActor>> {
        let remote = match tcp.peer_addr() {
            Ok(addr) => format!("tcp://{addr}"),
            Err(_) => "tcp://unknown".to_owned(),
        };
        tcp.set_nodelay(true)?;
        let std = tcp.into_std()?;
        let open = Box::new(move || {
            let tcp = TcpStream::from_std(std)?;
            Ok(Box::new(tcp) as BoxedStream)
        });
        Ok(self.take_with(open, remote).addr().clone())
    }
}

impl std::fmt::Debug for LinkAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkAcceptor")
            .field("pool", &self.pool)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Accept TCP connections on `listener` until the returned task is aborted, handing each to `acceptor`.
///
/// Runs on the current arbiter; accepting is cheap, the handshakes run on the acceptor's pool. Aborting the
/// task closes the listener; links already accepted go on until closed.
pub fn serve_tcp(listener: TcpListener, acceptor: LinkAcceptor) -> JoinHandle<()> {
    actix_rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    if let Err(err) = acceptor.take_tcp(tcp) {
                        tracing::warn!(error = %err, "dropping an accepted TCP connection");
                    }
                }
                Err(err) => {
                    // Per-connection failures (e.g. the peer reset before accept) and fd exhaustion are
                    // transient; pause briefly so a persistent error does not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// Accept connections of any link kind on `listener` until the returned task is aborted, handing each to
/// `acceptor`. TCP listeners should prefer [`serve_tcp`], which moves each socket onto its link's arbiter;
/// here the stream stays driven by the reactor of the arbiter that accepted it.
pub fn serve_link(
    mut listener: aos_transport::link::Listener,
    acceptor: LinkAcceptor,
) -> JoinHandle<()> {
    actix_rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok(accepted) => {
                    acceptor.take(accepted.link, accepted.peer);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
