//! `IamClient`: typed requests and subscriptions to one IAM endpoint over a link.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use aos_transport::frame::Channel;
use aos_transport::tls::PeerIdentity;
use rustls_pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};

use super::events::{AddCertReceiver, AddNodeReceiver, EventRouter};
use super::ClientError;
use crate::api::{
    wire, ApiError, ErrorCode, IamAnswer, IamRequest, IamResponse, NodeEvent, ProtectedRequest,
    ProtectedResponse, PublicRequest, PublicResponse,
};
use crate::iam::cert_module::CertInfo;
use crate::iam::server::EndpointKind;
use crate::net::{ArbiterPool, ClientTls, Dialer, Link, LinkActor, LinkConfig, LinkState, Routes};

/// The server a client is connected to, as its handshake showed it.
#[derive(Debug, Clone)]
pub struct ServerSeen {
    /// The server certificate's `urn:aos:` identity.
    pub identity: Option<PeerIdentity>,
    /// The server's leaf certificate.
    pub certificate: Option<CertificateDer<'static>>,
}

/// A client of one IAM endpoint. Cheap to clone; clones share the link.
///
/// The link dials and reconnects with backoff on its own; while it is down, requests fail at once with
/// `Unavailable` (nothing is queued). Every failure is an [`ApiError`]: the server's typed errors as they
/// were sent, link failures as `Unavailable` / `Timeout`.
#[derive(Clone)]
pub struct IamClient {
    link: Link,
    channel: Channel,
    router: Addr<EventRouter>,
    state: watch::Receiver<LinkState>,
}

// === impl IamClient ===

impl IamClient {
    /// Dial an IAM `endpoint` with `dialer` over `tls` (see [`client_tls`](super::client_tls)); the link runs
    /// on `pool`.
    pub fn connect(
        pool: &ArbiterPool,
        dialer: Arc<dyn Dialer>,
        tls: ClientTls,
        endpoint: EndpointKind,
        config: LinkConfig,
    ) -> Result<IamClient, ClientError> {
        let channel = endpoint.channel();
        let (state_tx, state) = watch::channel(LinkState::Connecting { attempt: 1 });
        let router = EventRouter::new(channel, state_tx).start();
        let routes = Routes::new()
            .subscribe(channel, router.clone().recipient())
            .watch_state(router.clone().recipient());
        let link = LinkActor::dial(pool, config, dialer, tls, routes)?;
        Ok(IamClient {
            link,
            channel,
            router,
            state,
        })
    }

    /// The underlying link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Wait until `want` holds for the link's state, at most `within`; returns that state.
    pub async fn wait_state(
        &self,
        within: Duration,
        want: impl Fn(&LinkState) -> bool,
    ) -> Result<LinkState, ApiError> {
        let mut state = self.state.clone();
        let found = tokio::time::timeout(within, async {
            state
                .wait_for(|s| want(s))
                .await
                .map(|s| s.clone())
                .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the client's link has stopped"))
        })
        .await;
        match found {
            Ok(result) => result,
            Err(_) => Err(ApiError::new(
                ErrorCode::Timeout,
                format!(
                    "the IAM link did not reach the expected state within {within:?}; it is {}",
                    describe(&self.state())
                ),
            )),
        }
    }

    /// Wait until the link is connected, at most `within`; returns the server as the handshake showed it.
    /// Fails with `Timeout` (saying what the link last saw, e.g. a refused handshake) otherwise.
    pub async fn connected(&self, within: Duration) -> Result<ServerSeen, ApiError> {
        match self.wait_state(within, LinkState::is_connected).await? {
            LinkState::Connected { peer, certificate } => Ok(ServerSeen {
                identity: peer,
                certificate,
            }),
            _ => Err(ApiError::new(ErrorCode::Internal, "unexpected link state")),
        }
    }

    /// Send `request` and wait for its answer (the link's request timeout applies).
    pub async fn request(&self, request: IamRequest) -> Result<IamResponse, ApiError> {
        let body = wire::encode(&request)?;
        let answer = self.link.request(self.channel, body).await?;
        wire::decode::<IamAnswer>(&answer)?
    }

    /// Execute a public request.
    pub async fn public(&self, request: PublicRequest) -> Result<PublicResponse, ApiError> {
        match self.request(IamRequest::Public(request)).await? {
            IamResponse::Public(response) => Ok(response),
            _ => Err(wrong_kind()),
        }
    }

    /// Execute a protected request (authorised by the client's certificate on the protected endpoint, or
    /// anonymous provisioning on the public endpoint of an unprovisioned node).
    pub async fn protected(
        &self,
        request: ProtectedRequest,
    ) -> Result<ProtectedResponse, ApiError> {
        match self.request(IamRequest::Protected(request)).await? {
            IamResponse::Protected(response) => Ok(response),
            _ => Err(wrong_kind()),
        }
    }

    /// Subscribe to changes of the current certificate of `cert_type`: each change arrives on the receiver.
    /// The subscription is renewed after a reconnection (changes while disconnected are not replayed).
    pub async fn subscribe_cert_changed(
        &self,
        cert_type: &str,
    ) -> Result<mpsc::UnboundedReceiver<CertInfo>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.router
            .send(AddCertReceiver(cert_type.to_owned(), tx))
            .await
            .map_err(|_| stopped())?;
        self.subscribed(PublicRequest::SubscribeCertChanged {
            cert_type: cert_type.to_owned(),
        })
        .await?;
        Ok(rx)
    }

    /// Subscribe to node events (main node only). Renewed after a reconnection like certificate
    /// subscriptions.
    pub async fn subscribe_node_changed(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<NodeEvent>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.router
            .send(AddNodeReceiver(tx))
            .await
            .map_err(|_| stopped())?;
        self.subscribed(PublicRequest::SubscribeNodeChanged).await?;
        Ok(rx)
    }

    async fn subscribed(&self, request: PublicRequest) -> Result<(), ApiError> {
        match self.public(request).await? {
            PublicResponse::Subscribed => Ok(()),
            _ => Err(wrong_kind()),
        }
    }

    /// Close the link (it does not reconnect).
    pub async fn close(&self) {
        self.link.close("client closed").await;
    }
}

impl std::fmt::Debug for IamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamClient")
            .field("channel", &self.channel)
            .field("state", &describe(&self.state()))
            .finish()
    }
}

fn describe(state: &LinkState) -> String {
    match state {
        LinkState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
        LinkState::Connected { peer, .. } => match peer {
            Some(peer) => format!("connected to {peer}"),
            None => "connected".to_owned(),
        },
        LinkState::Disconnected { reason, .. } => format!("disconnected: {reason}"),
    }
}

fn wrong_kind() -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        "the server answered with a message of the wrong kind",
    )
}

fn stopped() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "the client has stopped")
}
