//! Check: each token an enabled cert module selects is found (by label, serial, slot id or index).

use super::{Context, Status};

const CHECK: &str = "token";

/// Look up every distinct (library, selector) pair.
pub fn check(cx: &mut Context) {
    let mut wanted = Vec::new();
    for module in cx.config.enabled_cert_modules() {
        let pair = (module.pkcs11.library.clone(), module.pkcs11.selector());
        if !wanted.contains(&pair) {
            wanted.push(pair);
        }
    }
    for (library, selector) in wanted {
        let Some(module) = cx.modules.get(&library).cloned() else {
            continue; // the library check already failed
        };
        let subject = format!("{selector} in {}", library.display());
        match module.find_slot(&selector) {
            Ok((_, description)) => cx.add(
                CHECK,
                subject,
                Status::Pass,
                format!("found: {description:?}"),
            ),
            Err(err) => {
                let status = cx.missing_status();
                let detail = if cx.provisioned {
                    format!("not found on a provisioned node: {err}")
                } else {
                    format!("not found ({err}); provisioning initialises it")
                };
                cx.add(CHECK, subject, status, detail);
            }
        }
    }
}
