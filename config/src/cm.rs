//! `[cm]`: the communication manager of the main node (cloud link, SM controller).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default port of the CM's SM controller (AosCore's `cmServerUrl`, :8093).
pub const DEFAULT_SM_CONTROLLER_PORT: u16 = 8093;
/// Default time the CM's own requests to the cloud wait for an answer.
pub const DEFAULT_CLOUD_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the CM waits for an SM to apply its desired instances.
pub const DEFAULT_SM_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The `[cm]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmConfig {
    /// Run the CM on this node (main node only).
    pub enabled: bool,
    /// `host:port` of the cloud. Unset: no cloud link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_addr: Option<String>,
    /// DNS name the cloud's certificate must carry (and the SNI sent); the host of `cloud_addr` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_server_name: Option<String>,
    /// Where the SM controller listens (mutual TLS, role `sm` only).
    pub sm_listen: SocketAddr,
    /// Time the CM's own requests to the cloud (renewal CSRs) wait for an answer.
    #[serde(with = "crate::duration::serde_str")]
    pub cloud_request_timeout: Duration,
    /// Time the CM waits for an SM to apply its desired instances.
    #[serde(with = "crate::duration::serde_str")]
    pub sm_request_timeout: Duration,
}

impl Default for CmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cloud_addr: None,
            cloud_server_name: None,
            sm_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_SM_CONTROLLER_PORT)),
            cloud_request_timeout: DEFAULT_CLOUD_REQUEST_TIMEOUT,
            sm_request_timeout: DEFAULT_SM_REQUEST_TIMEOUT,
        }
    }
}
