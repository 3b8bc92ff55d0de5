//! `[sm]`: the service manager of this node (runs the node's service instances).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default period of the SM's check that IAM still knows its instances.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// The `[sm]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmConfig {
    /// Run the SM on this node.
    pub enabled: bool,
    /// `host:port` of the CM's SM controller. Unset (the default): this node's own CM on the main node, a
    /// `CmSecure` tunnel of the MP bridge on a secondary node.
    pub cm_addr: Option<String>,
    /// Period of the check that IAM still knows every running instance (re-registration after an IAM
    /// restart that lost them).
    #[serde(with = "crate::duration::serde_str")]
    pub reconcile_interval: Duration,
}

impl Default for SmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cm_addr: None,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
        }
    }
}
