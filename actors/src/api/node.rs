//! Node information exchanged between IAMs and shown to operators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::iam::provisioner::NodeState;

/// What a node reports about itself (AosCore's NodeInfo, trimmed to what this runtime uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id (unique in the unit).
    pub node_id: String,
    /// Unit id.
    pub unit_id: String,
    /// Human name.
    pub name: String,
    /// Board or role type.
    pub node_type: String,
    /// Whether this is the unit's main node.
    pub is_main: bool,
    /// Provisioning state.
    pub state: NodeState,
    /// Free-form attributes (AosCore `attrs`, e.g. `AosComponents = "iam,sm"`).
    pub attrs: BTreeMap<String, String>,
}

/// A node appeared, changed state, or went away (SubscribeNodeChanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeEvent {
    /// A node connected or re-registered.
    Connected(NodeInfo),
    /// A node's information changed (e.g. provisioning state).
    Changed(NodeInfo),
    /// A node's link went down.
    Disconnected {
        /// The node.
        node_id: String,
    },
}
