//! The node controller actor: which secondary is reachable over which link, and who hears about it.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient};
use aos_transport::frame::Channel;
use aos_transport::tls::{PeerIdentity, Role};

use crate::api::{ApiError, ErrorCode, NodeEvent, NodeInfo};
use crate::net::{Link, LinkActor, LinkState, StateChanged, SubscribeState};

/// How often registrations whose link has stopped without a word are swept out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A node connected, changed or went away; sent to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct NodeChanged(pub NodeEvent);

/// A secondary registered (or re-registered) on `link`: forward its requests down that link.
///
/// Refused when: the node id is empty or the main node's; the unit differs; the link is gone; `peer` is set
/// (protected endpoint) but is not role `iam` of that very node and unit; `peer` is not set (public endpoint)
/// while the node is registered over a live authenticated link; the link already carries another node.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct RegisterNode {
    /// What the node says about itself.
    pub info: NodeInfo,
    /// The connection it registered on.
    pub link: Link,
    /// The channel it registered on (forwarded requests go down the same one).
    pub channel: Channel,
    /// Its verified identity (protected endpoint), or `None` (public endpoint: anonymous).
    pub peer: Option<PeerIdentity>,
}

/// Where a node's requests go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The node's link.
    pub link: Link,
    /// The channel of its registration.
    pub channel: Channel,
}

/// Where a request for a node can go ([`LookupNode`]).
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The node is registered: its route.
    Route(Route),
    /// The node was registered but its link has gone; it is expected to register again (a secondary
    /// re-handshaking after a certificate change, or restarting).
    Departed,
    /// No node of that id ever registered with this controller.
    Unknown,
}

/// Look up the route to a node.
#[derive(Debug, Message)]
#[rtype(result = "Lookup")]
pub struct LookupNode(pub String);

/// The cached information of every registered node, ordered by id.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<NodeInfo>")]
pub struct ListNodes;

/// The cached information of one registered node.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<NodeInfo>")]
pub struct GetNode(pub String);

/// A registered node as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// What it reported.
    pub info: NodeInfo,
    /// Its verified identity when it registered over the protected endpoint; `None` over the public one.
    pub identity: Option<PeerIdentity>,
}

/// Every registration, ordered by node id.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<Registration>")]
pub struct ListRegistrations;

/// Send node events to `0` from now on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscribeNodes(pub Recipient<NodeChanged>);

struct Entry {
    info: NodeInfo,
    link: Link,
    channel: Channel,
    peer: Option<PeerIdentity>,
}

/// Registry of the secondaries connected to the main node: node id → link, channel, identity and the
/// node-info cache. A node is forgotten (and `Disconnected` raised) when its link goes down.
pub struct NodeController {
    unit_id: String,
    main_id: String,
    nodes: BTreeMap<String, Entry>,
    /// Nodes whose link went down and that have not registered again.
    departed: std::collections::BTreeSet<String>,
    subscribers: Vec<Recipient<NodeChanged>>,
}

// === impl NodeController ===

impl NodeController {
    /// A controller for the main node `main_id` of unit `unit_id`, with no nodes.
    pub fn new(unit_id: impl Into<String>, main_id: impl Into<String>) -> Self {
        NodeController {
            unit_id: unit_id.into(),
            main_id: main_id.into(),
            nodes: BTreeMap::new(),
            departed: std::collections::BTreeSet::new(),
            subscribers: Vec::new(),
        }
    }

    fn emit(&mut self, event: NodeEvent) {
        self.subscribers.retain(|s| s.connected());
        for subscriber in &self.subscribers {
            subscriber.do_send(NodeChanged(event.clone()));
        }
    }

    fn forget(&mut self, node_id: &str, why: &str) {
        if self.nodes.remove(node_id).is_some() {
            self.departed.insert(node_id.to_owned());
            tracing::info!(node = node_id, "secondary node gone: {why}");
            self.emit(NodeEvent::Disconnected {
                node_id: node_id.to_owned(),
            });
        }
    }

    fn check(&self, msg: &RegisterNode) -> Result<(), ApiError> {
        let id = &msg.info.node_id;
        let refuse = |code, message: String| Err(ApiError::new(code, message));
        if id.is_empty() || *id == self.main_id {
            return refuse(
                ErrorCode::InvalidArgument,
                format!(
                    "node id {id:?} cannot register with the main node {:?}",
                    self.main_id
                ),
            );
        }
        if msg.info.unit_id != self.unit_id {
            return refuse(
                ErrorCode::InvalidArgument,
                format!(
                    "node {id} belongs to unit {:?}, not to this unit {:?}",
                    msg.info.unit_id, self.unit_id
                ),
            );
        }
        if !msg.link.addr().connected() {
            return refuse(ErrorCode::Unavailable, "the connection has gone".to_owned());
        }
        let addr = msg.link.addr();
        match &msg.peer {
            Some(peer) if peer.role != Role::Iam => {
                return refuse(
                    ErrorCode::Unauthorized,
                    format!("{peer} may not register a node: only a node's IAM (role iam) does"),
                )
            }
            Some(peer) if peer.node != *id || peer.unit != self.unit_id => {
                return refuse(
                    ErrorCode::Unauthorized,
                    format!(
                        "{peer} may not register as node {id} of unit {}",
                        self.unit_id
                    ),
                )
            }
            Some(_) => {}
            None => {
                if let Some(entry) = self.nodes.get(id) {
                    if entry.peer.is_some()
                        && entry.link.addr() != addr
                        && entry.link.addr().connected()
                    {
                        return refuse(
                            ErrorCode::Unauthorized,
                            format!("node {id} is registered over an authenticated link; an anonymous registration cannot replace it"),
                        );
                    }
                }
            }
        }
        if let Some(other) = self
            .nodes
            .iter()
            .find(|(node, entry)| *node != id && entry.link.addr() == addr)
            .map(|(node, _)| node)
        {
            return refuse(
                ErrorCode::InvalidArgument,
                format!("this connection already registered node {other}; one node per connection"),
            );
        }
        Ok(())
    }
}

impl Actor for NodeController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_INTERVAL, |controller, _| {
            let dead: Vec<String> = controller
                .nodes
                .iter()
                .filter(|(_, entry)| !entry.link.addr().connected())
                .map(|(node, _)| node.clone())
                .collect();
            for node in dead {
                controller.forget(&node, "its link stopped");
            }
        });
    }
}

impl Handler<RegisterNode> for NodeController {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: RegisterNode, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(err) = self.check(&msg) {
            tracing::warn!(node = %msg.info.node_id, peer = ?msg.peer, error = %err, "node registration refused");
            return Err(err);
        }
        let id = msg.info.node_id.clone();
        let addr: &Addr<LinkActor> = msg.link.addr();
        let previous = self.nodes.get(&id);
        let new_link = previous.is_none_or(|e| e.link.addr() != addr);
        let event = match previous {
            None => Some(NodeEvent::Connected(msg.info.clone())),
            Some(entry) if new_link || entry.info != msg.info => {
                Some(NodeEvent::Changed(msg.info.clone()))
            }
            Some(_) => None,
        };
        if new_link {
            addr.do_send(SubscribeState(ctx.address().recipient()));
        }
        tracing::info!(
            node = %id,
            state = ?msg.info.state,
            authenticated = msg.peer.is_some(),
            "secondary node registered"
        );
        self.departed.remove(&id);
        self.nodes.insert(
            id,
            Entry {
                info: msg.info,
                link: msg.link,
                channel: msg.channel,
                peer: msg.peer,
            },
        );
        if let Some(event) = event {
            self.emit(event);
        }
        Ok(())
    }
}

impl Handler<StateChanged> for NodeController {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, _: &mut Context<Self>) {
        if let LinkState::Disconnected { reason, .. } = &msg.state {
            let gone: Vec<String> = self
                .nodes
                .iter()
                .filter(|(_, entry)| entry.link.addr() == &msg.link)
                .map(|(node, _)| node.clone())
                .collect();
            for node in gone {
                self.forget(&node, &reason.to_string());
            }
        }
    }
}

impl Handler<LookupNode> for NodeController {
    type Result = MessageResult<LookupNode>;

    fn handle(&mut self, LookupNode(node): LookupNode, _: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.nodes.get(&node) else {
            return MessageResult(if self.departed.contains(&node) {
                Lookup::Departed
            } else {
                Lookup::Unknown
            });
        };
        if !entry.link.addr().connected() {
            self.forget(&node, "its link stopped");
            return MessageResult(Lookup::Departed);
        }
        MessageResult(Lookup::Route(Route {
            link: entry.link.clone(),
            channel: entry.channel,
        }))
    }
}

impl Handler<ListNodes> for NodeController {
    type Result = MessageResult<ListNodes>;

    fn handle(&mut self, _: ListNodes, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.nodes.values().map(|e| e.info.clone()).collect())
    }
}

impl Handler<GetNode> for NodeController {
    type Result = MessageResult<GetNode>;

    fn handle(&mut self, msg: GetNode, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.nodes.get(&msg.0).map(|e| e.info.clone()))
    }
}

impl Handler<ListRegistrations> for NodeController {
    type Result = MessageResult<ListRegistrations>;

    fn handle(&mut self, _: ListRegistrations, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.nodes
                .values()
                .map(|e| Registration {
                    info: e.info.clone(),
                    identity: e.peer.clone(),
                })
                .collect(),
        )
    }
}

impl Handler<SubscribeNodes> for NodeController {
    type Result = ();

    fn handle(&mut self, SubscribeNodes(subscriber): SubscribeNodes, _: &mut Context<Self>) {
        self.subscribers.push(subscriber);
    }
}
