//! Check: no current certificate has expired or expires within the warning period.

use super::{Context, Status};
use crate::output::rfc3339;

const CHECK: &str = "expiry";

/// Compare each current certificate's not_after with now and the warning period.
pub fn check(cx: &mut Context) {
    let rows: Vec<_> = cx
        .certs
        .iter()
        .map(|c| (c.cert_type.clone(), c.serial.clone(), c.not_after))
        .collect();
    for (cert_type, serial, not_after) in rows {
        let when = rfc3339(not_after);
        match not_after.duration_since(cx.now) {
            Err(_) => cx.add(
                CHECK,
                cert_type,
                Status::Fail,
                format!("serial {serial} expired at {when}"),
            ),
            Ok(left) if left < cx.expiry_warning => cx.add(
                CHECK,
                cert_type,
                Status::Warn,
                format!(
                    "serial {serial} expires at {when}, in {} h",
                    left.as_secs() / 3600
                ),
            ),
            Ok(left) => cx.add(
                CHECK,
                cert_type,
                Status::Pass,
                format!(
                    "serial {serial} valid until {when} ({} days)",
                    left.as_secs() / 86_400
                ),
            ),
        }
    }
}
