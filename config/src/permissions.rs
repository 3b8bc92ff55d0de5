//! `[permissions]`: the permission handler (instance secrets and their permissions).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the permissions store inside `node.working_dir` when `store_path` is unset.
pub const DEFAULT_STORE_FILE: &str = "permissions.db";

/// The `[permissions]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsConfig {
    /// Run the permission handler (RegisterInstance / GetPermissions).
    pub enabled: bool,
    /// Where registered instances are persisted; `<node.working_dir>/permissions.db` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_path: Option<PathBuf>,
    /// Limits on what services may register.
    pub limits: PermissionLimits,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store_path: None,
            limits: PermissionLimits::default(),
        }
    }
}

// === impl PermissionsConfig ===

impl PermissionsConfig {
    /// The store path: `store_path` if set, else `working_dir/permissions.db`.
    pub fn store_path_in(&self, working_dir: &Path) -> PathBuf {
        self.store_path
            .clone()
            .unwrap_or_else(|| working_dir.join(DEFAULT_STORE_FILE))
    }
}

/// The `[permissions.limits]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionLimits {
    /// Most instances registered at once.
    pub max_instances: usize,
    /// Most functional servers in one instance's permissions.
    pub max_servers_per_instance: usize,
    /// Longest identifier, function name or permission string, in bytes.
    pub max_string_len: usize,
}

impl Default for PermissionLimits {
    fn default() -> Self {
        Self {
            max_instances: 1024,
            max_servers_per_instance: 16,
            max_string_len: 256,
        }
    }
}
