//! `[provisioning]`: commands run at the steps of provisioning.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default time a hook command may run before it is killed and the step fails.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The `[provisioning]` table. Each hook is an argv array (program first), run without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningConfig {
    /// Run at the start of StartProvisioning, before any token is touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Vec<String>>,
    /// Run at FinishProvisioning, after all certificates are applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish: Option<Vec<String>>,
    /// Run at Deprovision, after the certificates are cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprovision: Option<Vec<String>>,
    /// Run during StartProvisioning once the self-signed certificates (e.g. `diskencryption`) exist, to set up
    /// disk encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_encryption: Option<Vec<String>>,
    /// Time limit of each hook command.
    #[serde(with = "crate::duration::serde_str")]
    pub hook_timeout: Duration,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        Self {
            start: None,
            finish: None,
            deprovision: None,
            disk_encryption: None,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

// === impl ProvisioningConfig ===

impl ProvisioningConfig {
    /// The configured hooks with their key names, in the order they run.
    pub fn hooks(&self) -> [(&'static str, Option<&[String]>); 4] {
        [
            ("start", self.start.as_deref()),
            ("disk_encryption", self.disk_encryption.as_deref()),
            ("finish", self.finish.as_deref()),
            ("deprovision", self.deprovision.as_deref()),
        ]
    }
}
