//! Counters of the cloud server, for the simulator's report.

use std::collections::BTreeMap;

use crate::cloud::CaStats;

/// What the cloud server has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudServerStats {
    /// CM connections accepted (completed handshakes).
    pub connections: u64,
    /// Of those, connections where the CM presented its `cm` certificate.
    pub authenticated_connections: u64,
    /// Handshakes that failed, by refusal label (`handshake` when the TLS layer gave none).
    pub refused_handshakes: BTreeMap<String, u64>,
    /// Nodes the cloud provisioned (FinishProvisioning answered).
    pub nodes_provisioned: u64,
    /// Certificates installed by cloud-driven renewals.
    pub certs_renewed: u64,
    /// CSRs the CM sent on its own (local renewal thresholds) that the cloud signed.
    pub csrs_signed_on_request: u64,
    /// CSRs the CM sent on its own that were refused (CA refusal, unknown node, unauthenticated CM).
    pub csrs_refused_on_request: u64,
    /// Cloud requests the CM answered with a failure.
    pub cm_failures: u64,
    /// The CA's own counters (issued, refused by reason, failed).
    pub ca: CaStats,
}
