//! The `audit` log target: one record per security-relevant event (provisioning, certificates, refused peers,
//! wrong passwords, instance registrations), so an operator can keep them apart from the rest of the log
//! (`RUST_LOG=audit=info`, or a subscriber layer filtered on the target).
//!
//! Every record has the target [`TARGET`] and an `event` field holding one of the names below; its other
//! fields are listed on the function that emits it and in `docs/audit.md`. The functions take identifiers
//! only (cert types, serials, instance identities, addresses, reasons), never a password, PIN or secret, so
//! no call site can put one in the audit log.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aos_transport::tls::HandshakeError;

use crate::iam::cert_module::{CertInfo, Validation};
use crate::iam::permissions::InstanceIdent;
use crate::iam::provisioner::NodeState;

/// The log target of every audit record.
pub const TARGET: &str = "audit";

/// The node's provisioning state changed.
pub const NODE_STATE_CHANGED: &str = "node_state_changed";
/// `StartProvisioning` succeeded.
pub const PROVISIONING_STARTED: &str = "provisioning_started";
/// `FinishProvisioning` succeeded.
pub const PROVISIONING_FINISHED: &str = "provisioning_finished";
/// `Deprovision` succeeded.
pub const DEPROVISIONED: &str = "deprovisioned";
/// A provisioning password was wrong.
pub const WRONG_PASSWORD: &str = "wrong_password";
/// A certificate was verified and stored.
pub const CERT_APPLIED: &str = "cert_applied";
/// A certificate was refused (its chain, validity or key did not check out) and nothing was stored.
pub const CERT_APPLY_REFUSED: &str = "cert_apply_refused";
/// A certificate (or objects of a cert type) was removed from the token.
pub const CERT_REMOVED: &str = "cert_removed";
/// The validator renewed a certificate.
pub const CERT_RENEWED: &str = "cert_renewed";
/// A renewal failed.
pub const CERT_RENEWAL_FAILED: &str = "cert_renewal_failed";
/// A TLS peer was refused (its certificate, identity or protocol), or did not finish its handshake in time.
pub const PEER_REFUSED: &str = "peer_refused";
/// A service instance was registered (or re-registered) with its permissions.
pub const INSTANCE_REGISTERED: &str = "instance_registered";
/// A service instance was unregistered; its secrets stop validating.
pub const INSTANCE_UNREGISTERED: &str = "instance_unregistered";

/// Every event name, for documentation checks and log tooling.
pub const EVENTS: [&str; 13] = [
    NODE_STATE_CHANGED,
    PROVISIONING_STARTED,
    PROVISIONING_FINISHED,
    DEPROVISIONED,
    WRONG_PASSWORD,
    CERT_APPLIED,
    CERT_APPLY_REFUSED,
    CERT_REMOVED,
    CERT_RENEWED,
    CERT_RENEWAL_FAILED,
    PEER_REFUSED,
    INSTANCE_REGISTERED,
    INSTANCE_UNREGISTERED,
];

/// Emit an audit record: `record!(level, EVENT, fields…, "message")`, with `level` one of `info`, `warn`,
/// `error`.
macro_rules! record {
    ($level:ident, $event:expr, $($rest:tt)+) => {
        ::tracing::$level!(target: $crate::audit::TARGET, event = $event, $($rest)+)
    };
}

/// Which end of a TLS connection refused the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We accepted the connection and refused the client.
    Server,
    /// We dialled and refused the server.
    Client,
}

// === impl Side ===

impl Side {
    /// `server` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// Seconds since the Unix epoch (0 before it).
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `node_state_changed`: `from`, `to`.
pub fn node_state_changed(from: NodeState, to: NodeState) {
    record!(info, NODE_STATE_CHANGED, %from, %to, "node state changed");
}

/// `provisioning_started` (no fields).
pub fn provisioning_started() {
    record!(info, PROVISIONING_STARTED, "provisioning started");
}

/// `provisioning_finished` (no fields).
pub fn provisioning_finished() {
    record!(info, PROVISIONING_FINISHED, "provisioning finished");
}

/// `deprovisioned` (no fields).
pub fn deprovisioned() {
    record!(info, DEPROVISIONED, "node deprovisioned");
}

/// `wrong_password`: `attempts` (consecutive failures so far), `retry_after_secs` (how long the next attempt
/// must wait).
pub fn wrong_password(attempts: u32, retry_after: Duration) {
    let retry_after_secs = retry_after.as_secs();
    record!(
        warn,
        WRONG_PASSWORD,
        attempts,
        retry_after_secs,
        "wrong provisioning password"
    );
}

/// `cert_applied`: `cert_type`, `serial`, `not_after` (Unix seconds), `current` (whether it is now the
/// type's current certificate); then a `cert_removed` (reason `max_items`) per certificate it evicted.
pub fn cert_applied(info: &CertInfo, current: bool, evicted: &[String]) {
    let not_after = unix(info.not_after);
    record!(info, CERT_APPLIED, cert_type = %info.cert_type, serial = %info.serial, not_after, current, "certificate applied");
    for serial in evicted {
        cert_removed(&info.cert_type, "max_items", serial, "", 1);
    }
}

/// `cert_apply_refused`: `cert_type`, `error`.
pub fn cert_apply_refused(cert_type: &str, error: &dyn Display) {
    record!(warn, CERT_APPLY_REFUSED, %cert_type, %error, "certificate refused");
}

/// `cert_removed`: `cert_type`, `reason` (`max_items`, `invalid`, `orphan`, `deprovision`), `serial` and
/// `object_id` (hex; each empty when unknown), `objects` (how many token objects went).
pub fn cert_removed(cert_type: &str, reason: &str, serial: &str, object_id: &str, objects: usize) {
    record!(info, CERT_REMOVED, %cert_type, %reason, %serial, %object_id, objects, "certificate removed");
}

/// `cert_removed` for what a validation pass removed: reason `invalid` per certificate, `orphan` per set of
/// objects without a complete certificate and key.
pub fn validation_removed(cert_type: &str, report: &Validation) {
    for id in &report.removed_certs {
        cert_removed(cert_type, "invalid", "", id, 1);
    }
    for id in &report.removed_orphans {
        cert_removed(cert_type, "orphan", "", id, 1);
    }
}

/// `cert_removed` (reason `deprovision`) for a module cleared on deprovisioning.
pub fn certs_cleared(cert_type: &str, objects: usize) {
    cert_removed(cert_type, "deprovision", "", "", objects);
}

/// `cert_renewed`: `cert_type`, `serial`, `not_after` (Unix seconds).
pub fn cert_renewed(info: &CertInfo) {
    let not_after = unix(info.not_after);
    record!(info, CERT_RENEWED, cert_type = %info.cert_type, serial = %info.serial, not_after, "certificate renewed");
}

/// `cert_renewal_failed`: `cert_type`, `reason`, `fatal` (no more attempts until restart) — logged at error
/// level when fatal, warn otherwise.
pub fn cert_renewal_failed(cert_type: &str, reason: &str, fatal: bool) {
    if fatal {
        record!(error, CERT_RENEWAL_FAILED, %cert_type, %reason, fatal, "renewal failed fatally; stopped");
    } else {
        record!(warn, CERT_RENEWAL_FAILED, %cert_type, %reason, fatal, "renewal failed; will retry");
    }
}

/// `peer_refused`: `side` (`server`: we refused a client; `client`: we refused a server), `remote`, `reason`
/// (the stable label of `aos_transport::tls::RefusalReason`, e.g. `no_certificate`, `role_not_accepted`,
/// `handshake_timeout`), `detail`. Only refusals by this side are recorded: a handshake that failed because
/// the peer refused us, or for an I/O error, is not an audit event.
pub fn peer_refused(side: Side, remote: &dyn Display, error: &HandshakeError) {
    let Some(reason) = error.refusal() else {
        return;
    };
    let side = side.as_str();
    let reason = reason.as_str();
    record!(warn, PEER_REFUSED, side, %remote, reason, detail = %error, "TLS peer refused");
}

/// `instance_registered`: `instance`, `servers` (functional servers it holds permissions for), `replaced`
/// (it was registered before), `new_secret` (a new secret was issued rather than the live one kept).
pub fn instance_registered(
    instance: &InstanceIdent,
    servers: usize,
    replaced: bool,
    new_secret: bool,
) {
    record!(info, INSTANCE_REGISTERED, %instance, servers, replaced, new_secret, "instance registered");
}

/// `instance_unregistered`: `instance`.
pub fn instance_unregistered(instance: &InstanceIdent) {
    record!(info, INSTANCE_UNREGISTERED, %instance, "instance unregistered");
}

#[cfg(test)]
pub(crate) mod capture;
#[cfg(test)]
mod tests;
