//! `[node]`: who this node is and where it keeps its state.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default of `node.state_file` (AosCore's `provisioningStatePath`).
pub const DEFAULT_STATE_FILE: &str = "/var/aos/.provisionstate";
/// Default of `node.working_dir`.
pub const DEFAULT_WORKING_DIR: &str = "/var/aos/iam";

/// The role of a node in its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// The node that holds the cloud link and the registry of the unit's nodes.
    Main,
    /// A node that registers with the main node's IAM.
    Secondary,
}

/// The `[node]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id, unique in the unit; part of every certificate's SAN URI `urn:aos:<unit_id>:<id>:<role>`.
    pub id: String,
    /// Id of the unit (the system) this node belongs to.
    pub unit_id: String,
    /// `main` or `secondary`.
    pub role: NodeRole,
    /// File holding the provisioning state (`provisioned` / `paused`; absent = unprovisioned).
    #[serde(default = "default_state_file")]
    pub state_file: PathBuf,
    /// Directory for IAM's own files (e.g. the permissions store).
    #[serde(default = "default_working_dir")]
    pub working_dir: PathBuf,
    /// Human-readable node name reported in node info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Node type reported in node info (e.g. a board name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
}

// === impl NodeConfig ===

impl NodeConfig {
    /// A node with the given ids and role and defaults elsewhere.
    pub fn new(id: impl Into<String>, unit_id: impl Into<String>, role: NodeRole) -> Self {
        Self {
            id: id.into(),
            unit_id: unit_id.into(),
            role,
            state_file: default_state_file(),
            working_dir: default_working_dir(),
            node_name: None,
            node_type: None,
        }
    }

    /// Whether this is the unit's main node.
    pub fn is_main(&self) -> bool {
        self.role == NodeRole::Main
    }
}

fn default_state_file() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_FILE)
}

fn default_working_dir() -> PathBuf {
    PathBuf::from(DEFAULT_WORKING_DIR)
}
