//! Tests of the MP link: the multiplexer over in-memory pipes, and server + bridge end to end over real
//! links (TCP, Unix socket, vchan ring) with real TLS and SoftHSM token keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod hostile;
mod inner_tls;
mod lifecycle;
mod mux;
mod tunnels;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aos_pkcs11::{KeyAlgorithm, TokenKey};
use aos_transport::frame::Channel;
use aos_transport::link::{self, LinkAddr, LinkOptions, Listener};
use aos_transport::tls::testutil::{id, Hsm, Pki};
use aos_transport::tls::{Credentials, PeerIdentity, Role, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::net::ArbiterPool;

/// Upper bound for anything a test waits on; reached only when the code under test hangs.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Await `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Small windows and frames, so that a few hundred KiB exercise flow control; quick reconnects.
pub fn mux_settings() -> MuxSettings {
    MuxSettings {
        stream_window: 64 * 1024,
        max_streams: 16,
        max_frame_size: 16 * 1024,
        handshake_timeout: Duration::from_secs(10),
    }
}

/// `tcp://127.0.0.1:0`.
pub fn any_tcp() -> LinkAddr {
    "tcp://127.0.0.1:0".parse().unwrap()
}

/// A unit CA and a token; the main node's `mp` credentials.
pub struct Unit {
    pub hsm: Hsm,
    pub pki: Pki,
    pub main_creds: Credentials,
}

impl Unit {
    pub fn new() -> Unit {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let key = hsm.key("mp-main", KeyAlgorithm::EccP256);
        let main_creds = Credentials::with(
            pki.leaf(&key).identity(id("main", Role::Mp)).issue(),
            Arc::new(key),
        )
        .unwrap();
        Unit {
            hsm,
            pki,
            main_creds,
        }
    }

    /// Credentials on a new token key, certified by `issuer` for `identity` with `serial`.
    pub fn creds_from(
        &self,
        issuer: &Pki,
        identity: PeerIdentity,
        serial: u64,
    ) -> (TokenKey, Credentials) {
        let key = self.hsm.key("node", KeyAlgorithm::EccP256);
        let chain = issuer.leaf(&key).identity(identity).serial(serial).issue();
        let creds = Credentials::with(chain, Arc::new(key.clone())).unwrap();
        (key, creds)
    }

    /// The `mp` credentials of secondary node `n1`, by this unit's CA.
    pub fn node_creds(&self) -> Credentials {
        self.creds_from(&self.pki, id("n1", Role::Mp), 1).1
    }

    /// Start an MP server on `listen` tunnelling to `targets`.
    pub async fn server(
        &self,
        pool: &ArbiterPool,
        listen: LinkAddr,
        targets: BTreeMap<Channel, LinkAddr>,
    ) -> MpServer {
        self.try_server(pool, &self.main_creds, listen, targets)
            .await
            .unwrap()
    }

    /// Start an MP server presenting `creds`.
    pub async fn try_server(
        &self,
        pool: &ArbiterPool,
        creds: &Credentials,
        listen: LinkAddr,
        targets: BTreeMap<Channel, LinkAddr>,
    ) -> Result<MpServer, MpError> {
        self.server_with(pool, creds, listen, targets, mux_settings())
            .await
    }

    /// Start an MP server presenting `creds`, with these tunnel limits.
    pub async fn server_with(
        &self,
        pool: &ArbiterPool,
        creds: &Credentials,
        listen: LinkAddr,
        targets: BTreeMap<Channel, LinkAddr>,
        mux: MuxSettings,
    ) -> Result<MpServer, MpError> {
        let settings = ServerSettings {
            listen,
            targets,
            mux,
            link_options: LinkOptions::default(),
        };
        MpServer::start(pool, settings, self.server_tls(creds)).await
    }

    /// The MP server's TLS configuration, presenting `creds`.
    pub fn server_tls(&self, creds: &Credentials) -> Arc<rustls::ServerConfig> {
        server_tls(creds, self.pki.roots(), "unit1", &TlsOptions::default()).unwrap()
    }

    /// Start a bridge to `main` with `creds`, with a local TCP listener for each of `channels`.
    pub async fn bridge(
        &self,
        pool: &ArbiterPool,
        main: &LinkAddr,
        creds: Credentials,
        channels: &[Channel],
    ) -> MpBridge {
        let tls = BridgeTls::new(creds, self.pki.roots(), "unit1", &TlsOptions::default()).unwrap();
        MpBridge::start(pool, bridge_settings(main, channels), tls)
            .await
            .unwrap()
    }
}

/// Bridge settings: `main`, local TCP listeners for `channels`, reconnect pauses of 20–100 ms.
pub fn bridge_settings(main: &LinkAddr, channels: &[Channel]) -> BridgeSettings {
    BridgeSettings {
        main: main.clone(),
        local: channels.iter().map(|c| (*c, any_tcp())).collect(),
        mux: mux_settings(),
        reconnect_backoff_initial: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(100),
        link_options: LinkOptions::default(),
    }
}

/// Wait until the bridge is connected; (authenticated, generation).
pub async fn connected(bridge: &MpBridge) -> (bool, u64) {
    let mut state = bridge.state();
    let state = within("the bridge to connect", async {
        state
            .wait_for(|s| matches!(s, BridgeState::Connected { .. }))
            .await
            .unwrap()
            .clone()
    })
    .await;
    match state {
        BridgeState::Connected {
            authenticated,
            generation,
            ..
        } => (authenticated, generation),
        _ => unreachable!(),
    }
}

/// Wait until the bridge reports `Disconnected`; why.
pub async fn disconnected(bridge: &MpBridge) -> BridgeDown {
    let mut state = bridge.state();
    let state = within("the bridge to disconnect", async {
        state
            .wait_for(|s| matches!(s, BridgeState::Disconnected { .. }))
            .await
            .unwrap()
            .clone()
    })
    .await;
    match state {
        BridgeState::Disconnected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// The next bridge event.
pub async fn next_bridge_event(events: &mut mpsc::UnboundedReceiver<BridgeEvent>) -> BridgeEvent {
    within("a bridge event", events.recv())
        .await
        .expect("bridge alive")
}

/// Wait until the bridge reports `Connected` with a generation above `after`.
pub async fn reconnected(bridge: &MpBridge, after: u64) -> (bool, u64) {
    let mut state = bridge.state();
    within("the bridge to reconnect", async {
        state
            .wait_for(
                |s| matches!(s, BridgeState::Connected { generation, .. } if *generation > after),
            )
            .await
            .unwrap();
    })
    .await;
    connected(bridge).await
}

/// The next server event that `pick` maps to something.
pub async fn next_event<T>(
    events: &mut mpsc::UnboundedReceiver<ServerEvent>,
    what: &str,
    mut pick: impl FnMut(ServerEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            let event = events.recv().await.expect("server alive");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
}

/// The next `LinkUp`: (peer, serial).
pub async fn link_up(
    events: &mut mpsc::UnboundedReceiver<ServerEvent>,
) -> (Option<PeerIdentity>, Option<String>) {
    next_event(events, "a link up", |event| match event {
        ServerEvent::LinkUp { peer, serial, .. } => Some((peer, serial)),
        _ => None,
    })
    .await
}

/// A target endpoint that echoes every byte back and closes its side after the client's end of stream;
/// counts the connections it accepted.
pub struct EchoTarget {
    pub addr: LinkAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl EchoTarget {
    pub async fn start(addr: LinkAddr) -> EchoTarget {
        let mut listener = Listener::bind(&addr).await.unwrap();
        let addr = listener.local_addr().clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut rd, mut wr) = tokio::io::split(conn.link);
                    if tokio::io::copy(&mut rd, &mut wr).await.is_ok() {
                        let _ = wr.shutdown().await;
                    }
                });
            }
        });
        EchoTarget {
            addr,
            accepted,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for EchoTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Echo targets on TCP for every tunnel channel.
pub async fn echo_targets() -> BTreeMap<Channel, EchoTarget> {
    let mut targets = BTreeMap::new();
    for channel in protocol::TUNNEL_CHANNELS {
        targets.insert(channel, EchoTarget::start(any_tcp()).await);
    }
    targets
}

/// The target map of `echoes`.
pub fn addrs(echoes: &BTreeMap<Channel, EchoTarget>) -> BTreeMap<Channel, LinkAddr> {
    echoes.iter().map(|(c, e)| (*c, e.addr.clone())).collect()
}

/// `len` pseudo-random bytes from `seed` (xorshift).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Send `data` through any byte stream and read until its end: writes and reads run concurrently (the
/// echo would stall otherwise), and the writing side is shut down after the data.
pub async fn round_trip<S>(stream: S, data: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        for piece in data.chunks(7919) {
            wr.write_all(piece).await.unwrap();
        }
        wr.shutdown().await.unwrap();
    };
    let read = async {
        let mut back = Vec::with_capacity(data.len());
        rd.read_to_end(&mut back).await.unwrap();
        back
    };
    within("a round trip", async { tokio::join!(write, read).1 }).await
}

/// Connect to a bridge's local listener of `channel`.
pub async fn dial_local(bridge: &MpBridge, channel: Channel) -> link::BoxedLink {
    link::connect(bridge.local_addr(channel).unwrap())
        .await
        .unwrap()
}

/// What a local connection sees when the bridge closes it: end of stream or an error, never data.
pub async fn closed_without_data(mut conn: link::BoxedLink) {
    let mut buf = [0u8; 64];
    match within("the local connection to close", conn.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("got {n} bytes from a connection that should be closed"),
    }
}
