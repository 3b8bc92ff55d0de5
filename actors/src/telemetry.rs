//! Process-wide counters of the node's actors, for metrics (the daemon's `/metrics`): permission checks,
//! renewals, invalid frames. Relaxed atomics: cheap enough for the GetPermissions hot path.

use std::sync::atomic::{AtomicU64, Ordering};

static PERMISSION_ALLOWED: AtomicU64 = AtomicU64::new(0);
static PERMISSION_DENIED: AtomicU64 = AtomicU64::new(0);
static RENEWALS_OK: AtomicU64 = AtomicU64::new(0);
static RENEWALS_FAILED: AtomicU64 = AtomicU64::new(0);
static FRAME_ERRORS: AtomicU64 = AtomicU64::new(0);

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// GetPermissions answered with a grant.
    pub permission_allowed: u64,
    /// GetPermissions refused (unknown secret, no permissions on that server).
    pub permission_denied: u64,
    /// Certificates renewed (by the validator, or cloud-driven through the CM).
    pub renewals_ok: u64,
    /// Renewals that failed.
    pub renewals_failed: u64,
    /// Connections closed because the peer sent an invalid frame.
    pub frame_errors: u64,
}

/// The counters now.
pub fn counters() -> Counters {
    Counters {
        permission_allowed: PERMISSION_ALLOWED.load(Ordering::Relaxed),
        permission_denied: PERMISSION_DENIED.load(Ordering::Relaxed),
        renewals_ok: RENEWALS_OK.load(Ordering::Relaxed),
        renewals_failed: RENEWALS_FAILED.load(Ordering::Relaxed),
        frame_errors: FRAME_ERRORS.load(Ordering::Relaxed),
    }
}

pub(crate) fn permission_check(allowed: bool) {
    let counter = if allowed {
        &PERMISSION_ALLOWED
    } else {
        &PERMISSION_DENIED
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn renewal(ok: bool) {
    renewals(ok, 1);
}

/// `count` renewals with the same outcome (a cloud-driven install of several certificates).
pub(crate) fn renewals(ok: bool, count: u64) {
    let counter = if ok { &RENEWALS_OK } else { &RENEWALS_FAILED };
    counter.fetch_add(count, Ordering::Relaxed);
}

pub(crate) fn frame_error() {
    FRAME_ERRORS.fetch_add(1, Ordering::Relaxed);
}
