//! The client side of subscriptions: events from the link to the receivers of `subscribe_*`, and the
//! link's state for `IamClient::connected`.

use actix::{Actor, Context, Handler, Message};
use aos_transport::frame::Channel;
use tokio::sync::{mpsc, watch};

use crate::api::{wire, IamEvent, IamRequest, NodeEvent, PublicRequest};
use crate::iam::cert_module::CertInfo;
use crate::net::{Event, Link, LinkState, StateChanged};

/// Routes a client link's events and states. After a reconnection it subscribes again to everything its
/// receivers still listen to, since subscriptions live in the server's per-connection session.
pub(super) struct EventRouter {
    channel: Channel,
    state: watch::Sender<LinkState>,
    certs: Vec<(String, mpsc::UnboundedSender<CertInfo>)>,
    nodes: Vec<mpsc::UnboundedSender<NodeEvent>>,
    connections: u64,
}

/// Add a receiver of `CertChanged` events of one cert type.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct AddCertReceiver(pub String, pub mpsc::UnboundedSender<CertInfo>);

/// Add a receiver of node events.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct AddNodeReceiver(pub mpsc::UnboundedSender<NodeEvent>);

// === impl EventRouter ===

impl EventRouter {
    pub(super) fn new(channel: Channel, state: watch::Sender<LinkState>) -> Self {
        EventRouter {
            channel,
            state,
            certs: Vec::new(),
            nodes: Vec::new(),
            connections: 0,
        }
    }

    /// Subscribe again, on a new connection, to what live receivers listen to.
    fn resubscribe(&mut self, link: Link) {
        self.certs.retain(|(_, tx)| !tx.is_closed());
        self.nodes.retain(|tx| !tx.is_closed());
        let mut requests: Vec<PublicRequest> = Vec::new();
        for (cert_type, _) in &self.certs {
            let request = PublicRequest::SubscribeCertChanged {
                cert_type: cert_type.clone(),
            };
            if !requests.contains(&request) {
                requests.push(request);
            }
        }
        if !self.nodes.is_empty() {
            requests.push(PublicRequest::SubscribeNodeChanged);
        }
        let channel = self.channel;
        for request in requests {
            let Ok(body) = wire::encode(&IamRequest::Public(request)) else {
                continue;
            };
            let link = link.clone();
            actix_rt::spawn(async move {
                if let Err(err) = link.request(channel, body).await {
                    tracing::warn!(error = %err, "cannot renew an IAM subscription after reconnecting");
                }
            });
        }
    }
}

impl Actor for EventRouter {
    type Context = Context<Self>;
}

impl Handler<Event> for EventRouter {
    type Result = ();

    fn handle(&mut self, msg: Event, _: &mut Context<Self>) {
        match wire::decode::<IamEvent>(&msg.body) {
            Ok(IamEvent::CertChanged(info)) => self.certs.retain(|(cert_type, tx)| {
                *cert_type != info.cert_type || tx.send(info.clone()).is_ok()
            }),
            Ok(IamEvent::Node(event)) => self.nodes.retain(|tx| tx.send(event.clone()).is_ok()),
            Err(err) => tracing::warn!(error = %err, "ignoring an IAM event that does not decode"),
        }
    }
}

impl Handler<StateChanged> for EventRouter {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, _: &mut Context<Self>) {
        if msg.state.is_connected() {
            self.connections += 1;
            if self.connections > 1 {
                self.resubscribe(Link::new(msg.link));
            }
        }
        self.state.send_replace(msg.state);
    }
}

impl Handler<AddCertReceiver> for EventRouter {
    type Result = ();

    fn handle(&mut self, AddCertReceiver(cert_type, tx): AddCertReceiver, _: &mut Context<Self>) {
        self.certs.push((cert_type, tx));
    }
}

impl Handler<AddNodeReceiver> for EventRouter {
    type Result = ();

    fn handle(&mut self, AddNodeReceiver(tx): AddNodeReceiver, _: &mut Context<Self>) {
        self.nodes.push(tx);
    }
}
