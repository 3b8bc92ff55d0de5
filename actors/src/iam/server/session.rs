//! One client connection of an IAM endpoint: its requests, its subscriptions, its node registration.
//!
//! A session actor is started for every accepted link, before the handshake, and is both the link's request
//! handler and its state subscriber. The link reports `Connected` (with its address and the peer's identity)
//! before it reads the first frame, so the session knows its link when the first request arrives; it stops
//! when the link reports `Disconnected`.

use std::collections::HashSet;
use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, ResponseFuture};
use aos_transport::frame::Channel;
use aos_transport::tls::PeerIdentity;
use bytes::Bytes;

use super::Shared;
use crate::api::{
    wire, ApiError, ErrorCode, IamAnswer, IamEvent, IamRequest, IamResponse, NodeStreamMessage,
    ProtectedRequest, PublicRequest, PublicResponse,
};
use crate::iam::cert_handler::{CertChanged, SubscribeCertChanged};
use crate::iam::nodes::{NodeChanged, RegisterNode};
use crate::iam::service::{target_node, Caller};
use crate::net::{self, Incoming, Link, LinkState, Publish, StateChanged, WireError};

/// Which endpoint a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// Server-authenticated TLS; callers are anonymous.
    Public,
    /// Mutual TLS; callers are the peers' certificate identities.
    Protected,
}

// === impl EndpointKind ===

impl EndpointKind {
    /// The channel requests arrive on.
    pub fn channel(self) -> Channel {
        match self {
            EndpointKind::Public => Channel::IamOpen,
            EndpointKind::Protected => Channel::IamSecure,
        }
    }

    fn caller(self, peer: Option<&PeerIdentity>) -> Caller {
        match (self, peer) {
            (EndpointKind::Protected, Some(peer)) => Caller::Peer(peer.clone()),
            _ => Caller::Anonymous,
        }
    }
}

/// How often a session checks that its link still runs (a link whose arbiter died reports nothing).
const LIVENESS_CHECK: Duration = Duration::from_secs(30);

type AnswerFuture = Pin<Box<dyn Future<Output = IamAnswer>>>;

pub(super) struct Session {
    kind: EndpointKind,
    shared: Arc<Shared>,
    link: Option<Link>,
    cert_subscriptions: HashSet<String>,
    node_subscription: bool,
}

// === impl Session ===

impl Session {
    pub(super) fn new(kind: EndpointKind, shared: Arc<Shared>) -> Self {
        Session {
            kind,
            shared,
            link: None,
            cert_subscriptions: HashSet::new(),
            node_subscription: false,
        }
    }

    fn subscribe_certs(&mut self, cert_type: String, ctx: &mut Context<Self>) -> IamAnswer {
        if !self.shared.cert_types.contains(&cert_type) {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no cert module `{cert_type}` on this node"),
            ));
        }
        if self.cert_subscriptions.insert(cert_type.clone()) {
            self.shared
                .local
                .cert_handler()
                .do_send(SubscribeCertChanged {
                    cert_type,
                    subscriber: ctx.address().recipient(),
                });
        }
        Ok(IamResponse::Public(PublicResponse::Subscribed))
    }

    fn subscribe_nodes(&mut self, ctx: &mut Context<Self>) -> IamAnswer {
        let Some(controller) = &self.shared.controller else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "this is not the main node: subscribe to node changes on the main node's IAM",
            ));
        };
        if !self.node_subscription {
            self.node_subscription = true;
            controller.subscribe(ctx.address().recipient());
        }
        Ok(IamResponse::Public(PublicResponse::Subscribed))
    }

    fn register(
        &mut self,
        info: crate::api::NodeInfo,
        peer: Option<&PeerIdentity>,
    ) -> AnswerFuture {
        let Some(controller) = self.shared.controller.clone() else {
            return Box::pin(ready(Err(ApiError::new(
                ErrorCode::NotFound,
                "this is not the main node: register with the main node's IAM",
            ))));
        };
        let Some(link) = self.link.clone() else {
            return Box::pin(ready(Err(ApiError::new(
                ErrorCode::Unavailable,
                "the connection is not established yet",
            ))));
        };
        let register = RegisterNode {
            info,
            link,
            channel: self.kind.channel(),
            peer: match self.kind {
                EndpointKind::Protected => peer.cloned(),
                EndpointKind::Public => None,
            },
        };
        Box::pin(async move {
            controller.register(register).await?;
            Ok(IamResponse::Registered)
        })
    }

    fn protected(&self, caller: Caller, request: ProtectedRequest) -> AnswerFuture {
        let local = self.shared.local.clone();
        let refresh =
            changes_local_status(&request, local.service().node_id(), local.cert_storage());
        Box::pin(async move {
            let answer = local.service().protected(&caller, request).await;
            if refresh {
                // Answer only once the endpoints present what the request changed: a client that connects
                // again right after sees the new certificate.
                local.refresh().await;
            }
            answer.map(IamResponse::Protected)
        })
    }

    fn publish(&self, event: &IamEvent) {
        let Some(link) = &self.link else {
            return;
        };
        match wire::encode(event) {
            // `do_send` keeps the events in order; `Publish` is answered once written, nobody waits for it.
            Ok(body) => link.addr().do_send(Publish {
                channel: self.kind.channel(),
                body,
            }),
            Err(err) => tracing::warn!(error = %err, "dropping an IAM event that does not encode"),
        }
    }
}

/// Whether a protected request executed on this node can change its state or its own certificate.
pub(crate) fn changes_local_status(
    request: &ProtectedRequest,
    node_id: &str,
    cert_storage: &str,
) -> bool {
    let local = target_node(request).is_some_and(|n| n.is_empty() || n == node_id);
    local
        && match request {
            ProtectedRequest::ApplyCert { cert_type, .. } => cert_type == cert_storage,
            ProtectedRequest::StartProvisioning { .. }
            | ProtectedRequest::FinishProvisioning { .. }
            | ProtectedRequest::Deprovision { .. }
            | ProtectedRequest::PauseNode { .. }
            | ProtectedRequest::ResumeNode { .. } => true,
            _ => false,
        }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut ticks = 0u32;
        ctx.run_interval(LIVENESS_CHECK, move |session, ctx| {
            ticks = ticks.saturating_add(1);
            let gone = match &session.link {
                Some(link) => !link.addr().connected(),
                // Never connected: the link failed before its handshake ended (it reports that too, but a
                // link that could not even start reports nothing).
                None => ticks > 1,
            };
            if gone {
                ctx.stop();
            }
        });
    }
}

impl Handler<StateChanged> for Session {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        match msg.state {
            LinkState::Connected { .. } => self.link = Some(Link::new(msg.link)),
            LinkState::Disconnected { .. } => ctx.stop(),
            _ => {}
        }
    }
}

impl Handler<Incoming> for Session {
    type Result = ResponseFuture<Result<Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, ctx: &mut Context<Self>) -> Self::Result {
        let request: IamRequest = match wire::decode(&msg.body) {
            Ok(request) => request,
            Err(err) => {
                return Box::pin(ready(Err(WireError::new(
                    net::ErrorCode::BAD_REQUEST,
                    format!("not an IAM request: {}", err.message),
                ))))
            }
        };
        let peer = msg.peer.as_deref();
        let answer: AnswerFuture = match request {
            IamRequest::Public(PublicRequest::SubscribeCertChanged { cert_type }) => {
                Box::pin(ready(self.subscribe_certs(cert_type, ctx)))
            }
            IamRequest::Public(PublicRequest::SubscribeNodeChanged) => {
                Box::pin(ready(self.subscribe_nodes(ctx)))
            }
            IamRequest::Public(request) => {
                let service = self.shared.local.service().clone();
                Box::pin(async move { service.public(request).await.map(IamResponse::Public) })
            }
            IamRequest::Protected(request) => self.protected(self.kind.caller(peer), request),
            IamRequest::Stream(NodeStreamMessage::Register(info)) => self.register(info, peer),
            IamRequest::Stream(_) => Box::pin(ready(Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "a client sends only Register on the node stream",
            )))),
        };
        Box::pin(async move {
            wire::encode(&answer.await)
                .map_err(|err| WireError::new(net::ErrorCode::INTERNAL, err.message))
        })
    }
}

impl Handler<CertChanged> for Session {
    type Result = ();

    fn handle(&mut self, msg: CertChanged, _: &mut Context<Self>) {
        self.publish(&IamEvent::CertChanged(msg.info));
    }
}

impl Handler<NodeChanged> for Session {
    type Result = ();

    fn handle(&mut self, msg: NodeChanged, _: &mut Context<Self>) {
        self.publish(&IamEvent::Node(msg.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WirePassword;
    use crate::iam::provisioner::Password;

    #[test]
    fn only_local_state_and_own_certificate_changes_trigger_a_refresh() {
        let pw = || WirePassword(Password::new("pw"));
        let start = |node: &str| ProtectedRequest::StartProvisioning {
            node_id: node.into(),
            password: pw(),
        };
        assert!(changes_local_status(&start(""), "main", "iam"));
        assert!(changes_local_status(&start("main"), "main", "iam"));
        assert!(!changes_local_status(&start("n1"), "main", "iam"));
        let apply = |cert_type: &str| ProtectedRequest::ApplyCert {
            node_id: String::new(),
            cert_type: cert_type.into(),
            pem: String::new(),
        };
        assert!(changes_local_status(&apply("iam"), "main", "iam"));
        assert!(!changes_local_status(&apply("sm"), "main", "iam"));
        let types = ProtectedRequest::GetCertTypes {
            node_id: String::new(),
        };
        assert!(!changes_local_status(&types, "main", "iam"));
    }
}
