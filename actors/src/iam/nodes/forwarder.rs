//! Forwarding requests to secondaries: the node controller's [`NodeForwarder`].

use std::time::Duration;

use actix::{Actor, Addr, Recipient};

use super::controller::{
    GetNode, ListNodes, ListRegistrations, Lookup, LookupNode, NodeChanged, NodeController,
    RegisterNode, Registration, SubscribeNodes,
};
use crate::api::{
    wire, ApiError, ErrorCode, IamAnswer, IamRequest, IamResponse, NodeInfo, NodeStreamMessage,
    ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse,
};
use crate::iam::service::{BoxFuture, NodeForwarder};
use crate::net::LinkError;

/// Timeouts and retries of forwarded requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOptions {
    /// How long a secondary may take to answer (default 1 min).
    pub timeout: Duration,
    /// How long it may take for StartProvisioning, FinishProvisioning and Deprovision (default 5 min).
    pub long_timeout: Duration,
    /// How many times a request is sent again after a transport failure (default 3). Timeouts and the
    /// node's own answers, typed errors included, are never retried.
    pub retries: u32,
    /// Pause before each retry, which gives a node that dropped its link time to register again (default 1 s).
    pub retry_delay: Duration,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            timeout: Duration::from_secs(60),
            long_timeout: Duration::from_secs(300),
            retries: 3,
            retry_delay: Duration::from_secs(1),
        }
    }
}

// === impl ForwardOptions ===

impl ForwardOptions {
    /// The timeout of `request`.
    pub fn timeout_of(&self, request: &ProtectedRequest) -> Duration {
        match request {
            ProtectedRequest::StartProvisioning { .. }
            | ProtectedRequest::FinishProvisioning { .. }
            | ProtectedRequest::Deprovision { .. } => self.long_timeout,
            _ => self.timeout,
        }
    }
}

/// The main node's handle on its [`NodeController`]: registers secondaries, lists them, forwards requests to
/// them. Cheap to clone. Give it to `IamService::with_forwarder` and to the IAM server.
#[derive(Debug, Clone)]
pub struct NodeControllerHandle {
    addr: Addr<NodeController>,
    options: ForwardOptions,
}

// === impl NodeControllerHandle ===

impl NodeControllerHandle {
    /// Start a controller for the main node `main_id` of unit `unit_id` on the current arbiter.
    pub fn start(
        unit_id: impl Into<String>,
        main_id: impl Into<String>,
        options: ForwardOptions,
    ) -> Self {
        NodeControllerHandle {
            addr: NodeController::new(unit_id, main_id).start(),
            options,
        }
    }

    /// The controller actor.
    pub fn addr(&self) -> &Addr<NodeController> {
        &self.addr
    }

    /// The forwarding options.
    pub fn options(&self) -> ForwardOptions {
        self.options
    }

    /// Register a secondary (see [`RegisterNode`] for the rules).
    pub async fn register(&self, msg: RegisterNode) -> Result<(), ApiError> {
        self.addr.send(msg).await.map_err(|_| stopped())?
    }

    /// Send node events to `subscriber`.
    pub fn subscribe(&self, subscriber: Recipient<NodeChanged>) {
        self.addr.do_send(SubscribeNodes(subscriber));
    }

    /// Every registered secondary with its identity.
    pub async fn registrations(&self) -> Vec<Registration> {
        self.addr.send(ListRegistrations).await.unwrap_or_default()
    }

    /// Send `message` to `node_id` and wait for its answer: `timeout`, then up to `retries` more attempts
    /// after transport failures, or while a node that was registered is away (its link dropped, e.g. to
    /// handshake again with a new certificate). A node that never registered fails at once.
    async fn forward(
        &self,
        node_id: &str,
        message: NodeStreamMessage,
        timeout: Duration,
    ) -> Result<IamResponse, ApiError> {
        let body = wire::encode(&IamRequest::Stream(message))?;
        let mut attempt = 0u32;
        // The link of the last transport failure: a retry waits for another one.
        let mut failed = None;
        loop {
            let route = self
                .addr
                .send(LookupNode(node_id.to_owned()))
                .await
                .map_err(|_| stopped())?;
            let failure = match route {
                Lookup::Unknown if attempt == 0 => {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!(
                            "unknown node {node_id:?}: it is not registered with the main node"
                        ),
                    ))
                }
                Lookup::Unknown | Lookup::Departed => {
                    format!("node {node_id} is not registered at the moment")
                }
                Lookup::Route(route) => {
                    match route
                        .link
                        .request_within(route.channel, body.clone(), timeout)
                        .await
                    {
                        Ok(answer) => return wire::decode::<IamAnswer>(&answer)?,
                        Err(err) if wire::is_transport_failure(&err) => {
                            failed = Some(route.link.addr().clone());
                            err.to_string()
                        }
                        Err(LinkError::Timeout { .. }) => {
                            return Err(ApiError::new(
                                ErrorCode::Timeout,
                                format!("node {node_id} did not answer within {timeout:?}"),
                            ))
                        }
                        Err(err) => {
                            let err = ApiError::from(err);
                            return Err(ApiError::new(
                                err.code,
                                format!("node {node_id}: {}", err.message),
                            ));
                        }
                    }
                }
            };
            if attempt >= self.options.retries {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {node_id} is unreachable after {} attempts: {failure}",
                        attempt + 1
                    ),
                ));
            }
            attempt += 1;
            tracing::info!(
                node = node_id,
                attempt,
                "forwarded request failed ({failure}); retrying"
            );
            self.wait_for_route(node_id, self.options.retry_delay, failed.as_ref())
                .await;
        }
    }

    /// Wait up to `limit` for `node_id` to be registered with a live link other than `failed` (a node that
    /// dropped its link, e.g. to handshake again with a new certificate, is usually back within
    /// milliseconds).
    async fn wait_for_route(
        &self,
        node_id: &str,
        limit: Duration,
        failed: Option<&Addr<crate::net::LinkActor>>,
    ) {
        const POLL: Duration = Duration::from_millis(10);
        let deadline = tokio::time::Instant::now() + limit;
        // Let the failed link's state change reach the controller before asking it.
        tokio::time::sleep(POLL.min(limit)).await;
        while tokio::time::Instant::now() < deadline {
            match self.addr.send(LookupNode(node_id.to_owned())).await {
                Ok(Lookup::Route(route))
                    if route.link.addr().connected() && Some(route.link.addr()) != failed =>
                {
                    return
                }
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(_) => return,
            }
        }
    }
}

fn stopped() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "the node controller is not running")
}

fn unexpected(node_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("node {node_id} answered with a message of the wrong kind"),
    )
}

impl NodeForwarder for NodeControllerHandle {
    fn public(
        &self,
        node_id: String,
        request: PublicRequest,
    ) -> BoxFuture<Result<PublicResponse, ApiError>> {
        let this = self.clone();
        Box::pin(async move {
            match this
                .forward(
                    &node_id,
                    NodeStreamMessage::ForwardPublic(request),
                    this.options.timeout,
                )
                .await?
            {
                IamResponse::Public(response) => Ok(response),
                _ => Err(unexpected(&node_id)),
            }
        })
    }

    fn protected(
        &self,
        node_id: String,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
        let this = self.clone();
        Box::pin(async move {
            let timeout = this.options.timeout_of(&request);
            match this
                .forward(
                    &node_id,
                    NodeStreamMessage::ForwardProtected(request),
                    timeout,
                )
                .await?
            {
                IamResponse::Protected(response) => Ok(response),
                _ => Err(unexpected(&node_id)),
            }
        })
    }

    fn nodes(&self) -> BoxFuture<Vec<NodeInfo>> {
        let addr = self.addr.clone();
        Box::pin(async move { addr.send(ListNodes).await.unwrap_or_default() })
    }

    fn node(&self, node_id: String) -> BoxFuture<Option<NodeInfo>> {
        let addr = self.addr.clone();
        Box::pin(async move { addr.send(GetNode(node_id)).await.unwrap_or_default() })
    }
}
