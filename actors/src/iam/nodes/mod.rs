//! The node controller of the main node: the registry of connected secondaries and the forwarding of
//! requests to them.
//!
//! A secondary's IAM client connects to the main node's IAM (public endpoint while unprovisioned, protected
//! once provisioned) and sends `Register(NodeInfo)`; the endpoint's session hands the connection to the
//! [`NodeController`]. Requests for that node id (`IamService` calls the controller through
//! [`NodeForwarder`](crate::iam::service::NodeForwarder)) go down that connection as `ForwardPublic` /
//! `ForwardProtected` requests with their own correlation ids, many in flight, each with a timeout (1 min;
//! 5 min for start, finish, deprovision) and up to 3 retries after transport failures. The controller keeps
//! the nodes' information and raises `Connected` / `Changed` / `Disconnected` events.
//!
//! Who may register as what:
//! - over the protected endpoint, only a peer with role `iam` whose identity names that very node and unit;
//! - over the public endpoint, anyone (an unprovisioned node has no identity to show), but never in place of
//!   a node registered over a live authenticated link.

mod controller;
mod forwarder;

#[cfg(test)]
mod tests;

pub use controller::{
    GetNode, ListNodes, ListRegistrations, Lookup, LookupNode, NodeChanged, NodeController,
    RegisterNode, Registration, Route, SubscribeNodes,
};
pub use forwarder::{ForwardOptions, NodeControllerHandle};
