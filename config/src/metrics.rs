//! `[metrics]`: the daemon's Prometheus endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The `[metrics]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `aos-gatewayd` serves `GET /metrics` (Prometheus text format) and `GET /ready` over plain
    /// HTTP; unset: no endpoint. Metrics reveal no secret but do reveal activity: bind to loopback or a
    /// management network.
    pub listen: Option<SocketAddr>,
}
