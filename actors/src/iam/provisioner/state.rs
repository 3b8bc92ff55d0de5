//! The node's provisioning state, persisted atomically in the state file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::password::Verifier;
use super::ProvisionError;
use crate::persist;

/// Where a node stands in the provisioning life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// No identity; the state file is absent or says so.
    #[default]
    Unprovisioned,
    /// `StartProvisioning` began and did not complete (a crash left it here): start again or deprovision.
    Starting,
    /// `StartProvisioning` completed; certificates are being applied; `FinishProvisioning` is next.
    Provisioning,
    /// Fully provisioned.
    Provisioned,
    /// Provisioned but paused.
    Paused,
    /// `Deprovision` began and did not complete: deprovision again.
    Deprovisioning,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Unprovisioned => "unprovisioned",
            NodeState::Starting => "starting",
            NodeState::Provisioning => "provisioning",
            NodeState::Provisioned => "provisioned",
            NodeState::Paused => "paused",
            NodeState::Deprovisioning => "deprovisioning",
        })
    }
}

/// Everything the state file holds. Written with mode 0600 (it holds the password verifier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Life-cycle state.
    pub state: NodeState,
    /// PBKDF2 verifier of the provisioning password, set when provisioning starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Verifier>,
    /// Consecutive wrong passwords.
    #[serde(default)]
    pub failed_attempts: u32,
    /// When the last wrong password was given (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_unix: Option<u64>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the record. A missing file means unprovisioned; AosCore's plain `provisioned` / `paused` files
    /// are understood too. Anything else unreadable is an error, never silently "unprovisioned".
    pub fn load(&self) -> Result<StateRecord, ProvisionError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateRecord::default()),
            Err(e) => return Err(self.error(e.to_string())),
        };
        match text.trim() {
            "provisioned" => {
                return Ok(StateRecord {
                    state: NodeState::Provisioned,
                    ..StateRecord::default()
                })
            }
            "paused" => {
                return Ok(StateRecord {
                    state: NodeState::Paused,
                    ..StateRecord::default()
                })
            }
            _ => {}
        }
        toml::from_str(&text).map_err(|e| self.error(e.to_string()))
    }

    /// Write the record atomically (temp file, fsync, rename, fsync dir). An unprovisioned record with no
    /// failed attempts removes the file instead.
    pub fn store(&self, record: &StateRecord) -> Result<(), ProvisionError> {
        if record.state == NodeState::Unprovisioned && record.failed_attempts == 0 {
            return persist::remove_durable(&self.path).map_err(|e| self.error(e.to_string()));
        }
        let text = toml::to_string(record).map_err(|e| self.error(e.to_string()))?;
        persist::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| self.error(e.to_string()))
    }

    /// [`StateFile::store`] on tokio's blocking pool: the write fsyncs the file and its directory, which
    /// must not stall the caller's arbiter. Returns once the record is durable.
    pub async fn save(&self, record: &StateRecord) -> Result<(), ProvisionError> {
        let (file, record) = (self.clone(), record.clone());
        tokio::task::spawn_blocking(move || file.store(&record))
            .await
            .map_err(|e| self.error(format!("state file writer stopped: {e}")))?
    }

    fn error(&self, message: String) -> ProvisionError {
        ProvisionError::StateFile {
            path: self.path.clone(),
            message,
        }
    }
}
