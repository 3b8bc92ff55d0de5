//! Actor-level tests of the transport: real SoftHSM token keys, a real test CA, real rustls over loopback
//! TCP, links on worker arbiters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod certs;
mod hostile;
mod link_kinds;
mod reconnect;
mod requests;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use aos_pkcs11::{KeyAlgorithm, TokenKey};
use aos_transport::frame::Channel;
use aos_transport::tls::testutil::{id, Hsm, Pki};
use aos_transport::tls::{
    client_config, server_config, ClientAuth, Credentials, Policy, Role, ServerAuth, TlsOptions,
};
use rustls::ServerConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::*;

/// Upper bound for anything a test waits on; reached only when the code under test hangs.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Await `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A unit CA, one token with a server key (`iam` of node `main`) and a client key (`sm` of node `n1`).
pub struct Net {
    pub hsm: Hsm,
    pub pki: Pki,
    pub server_key: TokenKey,
    pub client_key: TokenKey,
    pub server_creds: Credentials,
    pub client_creds: Credentials,
}

impl Net {
    pub fn new() -> Net {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let server_key = hsm.key("iam", KeyAlgorithm::EccP256);
        let client_key = hsm.key("sm", KeyAlgorithm::EccP256);
        let server_creds = Credentials::with(
            pki.leaf(&server_key)
                .identity(id("main", Role::Iam))
                .issue(),
            Arc::new(server_key.clone()),
        )
        .unwrap();
        let client_creds = Credentials::with(
            pki.leaf(&client_key).identity(id("n1", Role::Sm)).issue(),
            Arc::new(client_key.clone()),
        )
        .unwrap();
        Net {
            hsm,
            pki,
            server_key,
            client_key,
            server_creds,
            client_creds,
        }
    }

    /// Fast reconnects, long request timeout (tests that want timeouts set them per request).
    pub fn config() -> LinkConfig {
        LinkConfig {
            reconnect_backoff_initial: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_millis(100),
            ..LinkConfig::default()
        }
    }

    /// mTLS server config: accepts `sm` clients.
    pub fn server_tls(&self) -> Arc<ServerConfig> {
        server_config(
            &self.server_creds,
            ClientAuth::Required {
                roots: self.pki.roots(),
                policy: Policy::roles([Role::Sm]),
            },
            &TlsOptions::default(),
        )
        .unwrap()
    }

    /// Client TLS: presents the `sm` certificate, requires `iam` of node `main`.
    pub fn client_tls(&self) -> ClientTls {
        self.client_tls_with(&self.client_creds)
    }

    /// Client TLS presenting whatever `credentials` hold, requiring `iam` of node `main`.
    pub fn client_tls_with(&self, credentials: &Credentials) -> ClientTls {
        ClientTls {
            config: client_config(
                ServerAuth::Identity {
                    roots: self.pki.roots(),
                    policy: Policy::roles([Role::Iam]).with_node("main"),
                },
                Some(credentials),
                &TlsOptions::default(),
            )
            .unwrap(),
            server_name: ServerName::try_from("main").unwrap(),
        }
    }

    /// A server on a fresh loopback port.
    pub async fn server(&self, routes: Routes) -> Server {
        self.server_on("127.0.0.1:0".parse().unwrap(), routes, Self::config())
            .await
    }

    /// A server on `addr` (rebinding a port after a restart).
    pub async fn server_on(&self, addr: SocketAddr, routes: Routes, config: LinkConfig) -> Server {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = ArbiterPool::new(2);
        let acceptor = LinkAcceptor::new(pool.clone(), config, self.server_tls(), routes).unwrap();
        let task = serve_tcp(listener, acceptor);
        Server {
            addr,
            task: Some(task),
            pool: Some(pool),
        }
    }

    /// A dialing link to `addr`.
    pub fn dial(&self, pool: &ArbiterPool, addr: SocketAddr, routes: Routes) -> Link {
        LinkActor::dial(
            pool,
            Self::config(),
            Arc::new(TcpDialer::new(addr)),
            self.client_tls(),
            routes,
        )
        .unwrap()
    }
}

/// A listening server: its accept task and its worker arbiters.
pub struct Server {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    pool: Option<ArbiterPool>,
}

impl Server {
    /// Stop as a crashed process would: the listener closes, and the arbiters running the accepted links
    /// stop, dropping their sockets without a goodbye.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.pool.take();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Answers every request with its channel id followed by the request body.
pub struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Incoming> for Echo {
    type Result = Result<bytes::Bytes, WireError>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let mut answer = vec![msg.channel.id()];
        answer.extend_from_slice(&msg.body);
        Ok(answer.into())
    }
}

/// Routes with an [`Echo`] handler on all four channels.
pub fn echo_routes() -> Routes {
    let echo = Echo.start().recipient();
    [
        Channel::IamOpen,
        Channel::IamSecure,
        Channel::CmOpen,
        Channel::CmSecure,
    ]
    .into_iter()
    .fold(Routes::new(), |routes, channel| {
        routes.handle(channel, echo.clone())
    })
}

/// A request held by a [`Gate`]: its body and where its answer goes.
pub type Held = (Vec<u8>, oneshot::Sender<Result<bytes::Bytes, WireError>>);

/// Holds every request until the test answers it: each request's answer slot goes to the test.
pub struct Gate {
    pub held: mpsc::UnboundedSender<Held>,
}

impl Actor for Gate {
    type Context = Context<Self>;
}

impl Handler<Incoming> for Gate {
    type Result = ResponseFuture<Result<bytes::Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        let _ = self.held.send((msg.body.to_vec(), answer));
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    ErrorCode::INTERNAL,
                    "the test dropped the request",
                ))
            })
        })
    }
}

/// Forwards every message it gets into a channel the test reads.
pub struct Forward<M: Message<Result = ()> + Send + 'static>(pub mpsc::UnboundedSender<M>);

impl<M: Message<Result = ()> + Send + 'static> Actor for Forward<M> {
    type Context = Context<Self>;
}

impl<M: Message<Result = ()> + Send + 'static> Handler<M> for Forward<M> {
    type Result = ();

    fn handle(&mut self, msg: M, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

/// A recipient of `M` and the receiving end of what it gets.
pub fn forward<M>() -> (actix::Recipient<M>, mpsc::UnboundedReceiver<M>)
where
    M: Message<Result = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    (Forward(tx).start().recipient(), rx)
}

/// State changes as the test sees them.
pub struct States(pub mpsc::UnboundedReceiver<StateChanged>);

impl States {
    /// Skip states until one matches `want`; returns it (and panics after [`PATIENCE`]).
    pub async fn until(&mut self, what: &str, want: impl Fn(&LinkState) -> bool) -> StateChanged {
        within(what, async {
            loop {
                let change = self.0.recv().await.expect("state subscriber alive");
                if want(&change.state) {
                    return change;
                }
            }
        })
        .await
    }

    /// The next `Connected`.
    pub async fn connected(&mut self) -> StateChanged {
        self.until("Connected", LinkState::is_connected).await
    }

    /// The next `Disconnected`; its reason.
    pub async fn disconnected(&mut self) -> DisconnectReason {
        let change = self
            .until("Disconnected", |s| {
                matches!(s, LinkState::Disconnected { .. })
            })
            .await;
        match change.state {
            LinkState::Disconnected { reason, .. } => reason,
            _ => unreachable!(),
        }
    }
}

/// A state subscriber and what it sees.
pub fn states() -> (actix::Recipient<StateChanged>, States) {
    let (recipient, rx) = forward();
    (recipient, States(rx))
}
