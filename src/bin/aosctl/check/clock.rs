//! Check: the system clock is sane: after this software was written, and not before the start of validity
//! of the certificates the node holds (a clock behind makes every handshake fail "not yet valid").

use std::time::{Duration, UNIX_EPOCH};

use super::{Context, Status};
use crate::output::rfc3339;

const CHECK: &str = "clock";

/// 2025-01-01T00:00:00Z: no correct clock reads earlier.
const FLOOR: Duration = Duration::from_secs(1_735_689_600);

/// Compare now with the floor and with every certificate's not_before.
pub fn check(cx: &mut Context) {
    let now = rfc3339(cx.now);
    if cx.now < UNIX_EPOCH + FLOOR {
        cx.add(
            CHECK,
            "system time",
            Status::Fail,
            format!("{now} is before 2025: the clock is not set"),
        );
        return;
    }
    let ahead = cx
        .certs
        .iter()
        .filter(|c| c.not_before > cx.now)
        .map(|c| (c.cert_type.clone(), c.not_before))
        .collect::<Vec<_>>();
    if let Some((cert_type, not_before)) = ahead.first() {
        cx.add(
            CHECK,
            "system time",
            Status::Fail,
            format!(
                "{now} is before the start of validity of `{cert_type}` ({}): the clock is behind",
                rfc3339(*not_before)
            ),
        );
        return;
    }
    cx.add(CHECK, "system time", Status::Pass, format!("{now} (UTC)"));
}
