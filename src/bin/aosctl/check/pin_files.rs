//! Check: each user PIN file exists and is readable by its owner only (mode 0600 or stricter).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use super::{Context, Status};

const CHECK: &str = "pin-file";

/// Stat every distinct PIN file of the enabled modules (TEE logins have none).
pub fn check(cx: &mut Context) {
    let files: BTreeSet<_> = cx
        .config
        .enabled_cert_modules()
        .filter_map(|m| m.pkcs11.user_pin_path.clone())
        .collect();
    for path in files {
        let subject = path.display().to_string();
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 == 0 {
                    cx.add(CHECK, subject, Status::Pass, format!("mode {mode:04o}"));
                } else {
                    cx.add(
                        CHECK,
                        subject,
                        Status::Fail,
                        format!("mode {mode:04o}: group or others may read the PIN; chmod 600"),
                    );
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let status = cx.missing_status();
                cx.add(
                    CHECK,
                    subject,
                    status,
                    "missing; provisioning creates it (mode 0600)",
                );
            }
            Err(err) => cx.add(CHECK, subject, Status::Fail, err.to_string()),
        }
    }
}
