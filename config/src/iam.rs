//! `[iam]`: the IAM server endpoints of this node and, on a secondary node, those of the main node.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default port of the public (TLS) IAM endpoint.
pub const DEFAULT_PUBLIC_PORT: u16 = 8090;
/// Default port of the protected (mTLS) IAM endpoint.
pub const DEFAULT_PROTECTED_PORT: u16 = 8089;
/// Default interval between a secondary node's attempts to register with the main node.
pub const DEFAULT_NODE_RECONNECT_INTERVAL: Duration = Duration::from_secs(10);

/// The `[iam]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IamConfig {
    /// Address of the public endpoint (TLS, server-authenticated only).
    pub public_listen: SocketAddr,
    /// Address of the protected endpoint (mTLS, client certificate required).
    pub protected_listen: SocketAddr,
    /// `host:port` of the main node's public endpoint. Required on secondary nodes, refused on the main node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_public_addr: Option<String>,
    /// `host:port` of the main node's protected endpoint. Required on secondary nodes, refused on the main node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_protected_addr: Option<String>,
    /// SHA-256 fingerprint of the main node's provisioning certificate (64 hex digits, `:` separators
    /// allowed). Secondary nodes only, optional: lets a secondary reach the main node's public endpoint
    /// while the main node itself is unprovisioned. Without it the main node must present its CA-issued
    /// certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_fingerprint: Option<String>,
    /// Pause between a secondary node's attempts to (re)register with the main node.
    #[serde(with = "crate::duration::serde_str")]
    pub node_reconnect_interval: Duration,
}

impl Default for IamConfig {
    fn default() -> Self {
        Self {
            public_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PUBLIC_PORT)),
            protected_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PROTECTED_PORT)),
            main_public_addr: None,
            main_protected_addr: None,
            main_fingerprint: None,
            node_reconnect_interval: DEFAULT_NODE_RECONNECT_INTERVAL,
        }
    }
}
