//! The cloud server's actor: the CM links it accepted (the newest is the one the cloud drives), what it
//! learnt of the unit, and the CM's own requests (`SignCsr`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture,
};
use aos_actors::api::cloud::{
    CloudAnswer, CloudFault, CloudRequest, CloudResult, CmAnswer, CmRequest, SignResult,
    CLOUD_CHANNEL,
};
use aos_actors::net::{
    DisconnectReason, ErrorCode, Incoming, Link, LinkState, StateChanged, WireError,
};
use aos_transport::frame::{decode_body, encode_body};
use aos_transport::tls::{PeerIdentity, Role};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stats::CloudServerStats;
use crate::cloud::{CloudCa, CloudError, SignRequest};

/// A CM connection as the cloud sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmConnection {
    /// The CM's identity when it presented its `cm` certificate; `None` before provisioning.
    pub peer: Option<PeerIdentity>,
    /// Serial (hex) of the certificate it presented.
    pub client_serial: Option<String>,
}

struct CmLink {
    link: Link,
    connection: CmConnection,
}

pub(super) struct CloudActor {
    ca: Arc<CloudCa>,
    lifetime: Option<Duration>,
    links: Vec<CmLink>,
    nodes: BTreeSet<String>,
    stats: Arc<Mutex<CloudServerStats>>,
    connections: watch::Sender<Vec<CmConnection>>,
    request_timeout: Duration,
    server: Option<JoinHandle<()>>,
}

// === impl CloudActor ===

impl CloudActor {
    pub(super) fn new(
        ca: Arc<CloudCa>,
        lifetime: Option<Duration>,
        stats: Arc<Mutex<CloudServerStats>>,
        connections: watch::Sender<Vec<CmConnection>>,
        request_timeout: Duration,
    ) -> CloudActor {
        CloudActor {
            ca,
            lifetime,
            links: Vec::new(),
            nodes: BTreeSet::new(),
            stats,
            connections,
            request_timeout,
            server: None,
        }
    }

    fn count(&self, f: impl FnOnce(&mut CloudServerStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn publish(&self) {
        self.connections
            .send_replace(self.links.iter().map(|l| l.connection.clone()).collect());
    }

    /// Answer the CM's own request.
    fn serve(&mut self, peer: Option<&PeerIdentity>, request: CmRequest) -> SignResult {
        let CmRequest::SignCsr(csr) = request else {
            return Err(CloudFault::BadRequest("unknown request".into()));
        };
        let authenticated = peer.is_some_and(|p| p.role == Role::Cm && p.unit == self.ca.unit_id());
        if !authenticated {
            return Err(CloudFault::Unauthorized(
                "only a CM presenting its cm certificate may send CSRs on its own".into(),
            ));
        }
        if !self.nodes.contains(&csr.node_id) {
            return Err(CloudFault::UnknownNode(csr.node_id));
        }
        let mut request = SignRequest::new(&csr.node_id, &csr.cert_type, csr.csr_pem);
        request.lifetime = self.lifetime;
        match self.ca.sign(&request) {
            Ok(chain) => Ok(CmAnswer::Chain(chain.chain_pem)),
            Err(CloudError::Refused(refusal)) => Err(CloudFault::Refused {
                label: refusal.label().to_owned(),
                message: refusal.to_string(),
            }),
            Err(err) => Err(CloudFault::Unavailable(err.to_string())),
        }
    }
}

impl Actor for CloudActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for cm in self.links.drain(..) {
            actix_rt::spawn(async move { cm.link.close("cloud stopping").await });
        }
    }
}

impl Handler<Incoming> for CloudActor {
    type Result = Result<Bytes, WireError>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let request: CmRequest = decode_body(&msg.body, msg.body.len()).map_err(|e| {
            WireError::new(ErrorCode::BAD_REQUEST, format!("unreadable request: {e}"))
        })?;
        let result = self.serve(msg.peer.as_deref(), request);
        match &result {
            Ok(_) => self.count(|s| s.csrs_signed_on_request += 1),
            Err(fault) => {
                tracing::warn!("CM request refused: {fault}");
                self.count(|s| s.csrs_refused_on_request += 1);
            }
        }
        encode_body(&result, usize::MAX)
            .map(Bytes::from)
            .map_err(|e| WireError::new(ErrorCode::INTERNAL, e.to_string()))
    }
}

impl Handler<StateChanged> for CloudActor {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, ctx: &mut Context<Self>) {
        match msg.state {
            LinkState::Connected { peer, certificate } => {
                let client_serial = certificate.as_deref().map(serial_of);
                tracing::info!(peer = ?peer, ?client_serial, "CM connected");
                let authenticated = peer.is_some();
                self.count(|s| {
                    s.connections += 1;
                    s.authenticated_connections += u64::from(authenticated);
                });
                let link = Link::new(msg.link);
                self.links.push(CmLink {
                    link: link.clone(),
                    connection: CmConnection {
                        peer,
                        client_serial,
                    },
                });
                self.publish();
                // Learn the unit's nodes; a CM that claims another unit is dropped.
                let timeout = self.request_timeout;
                let ask = async move {
                    let body = encode_body(&CloudRequest::GetUnitStatus, usize::MAX).ok()?;
                    let answer = link
                        .request_within(CLOUD_CHANNEL, body, timeout)
                        .await
                        .ok()?;
                    let result: CloudResult = decode_body(&answer, answer.len()).ok()?;
                    Some((link, result))
                };
                ctx.spawn(ask.into_actor(self).map(|answer, act, _| {
                    if let Some((link, Ok(CloudAnswer::UnitStatus(status)))) = answer {
                        if status.unit_id != act.ca.unit_id() {
                            tracing::warn!(unit = %status.unit_id, "a CM of another unit connected; closing");
                            act.count(|s| *s.refused_handshakes.entry("wrong_unit".into()).or_default() += 1);
                            actix_rt::spawn(async move { link.close("wrong unit").await });
                            return;
                        }
                        act.nodes
                            .extend(status.nodes.into_iter().map(|n| n.node_id));
                    }
                }));
            }
            LinkState::Disconnected { reason, .. } => {
                let before = self.links.len();
                self.links.retain(|l| l.link.addr() != &msg.link);
                if self.links.len() != before {
                    tracing::info!(%reason, "CM disconnected");
                    self.publish();
                } else if let DisconnectReason::Handshake(err) = &reason {
                    let label = err
                        .refusal()
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_else(|| "handshake".to_owned());
                    self.count(|s| *s.refused_handshakes.entry(label).or_default() += 1);
                }
            }
            _ => {}
        }
    }
}

fn serial_of(der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(der)
        .map(|(_, cert)| hex::encode(cert.tbs_certificate.raw_serial()))
        .unwrap_or_default()
}

/// The newest CM link (the one the cloud drives).
#[derive(Message)]
#[rtype(result = "Option<Link>")]
pub(super) struct CurrentCm;

impl Handler<CurrentCm> for CloudActor {
    type Result = Option<Link>;

    fn handle(&mut self, _: CurrentCm, _: &mut Context<Self>) -> Option<Link> {
        self.links.last().map(|l| l.link.clone())
    }
}

/// Nodes of the unit, as the CM reported them.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct KnowNodes(pub(super) Vec<String>);

impl Handler<KnowNodes> for CloudActor {
    type Result = ();

    fn handle(&mut self, msg: KnowNodes, _: &mut Context<Self>) {
        self.nodes.extend(msg.0);
    }
}

/// The accept loop to abort when the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SetServer(pub(super) JoinHandle<()>);

impl Handler<SetServer> for CloudActor {
    type Result = ();

    fn handle(&mut self, msg: SetServer, _: &mut Context<Self>) {
        self.server = Some(msg.0);
    }
}

/// Stop serving.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Stop;

impl Handler<Stop> for CloudActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
