//! Check: every PKCS#11 library the enabled cert modules name loads (`C_Initialize`).

use std::collections::BTreeSet;

use aos_pkcs11::Module;

use super::{Context, Status};

const CHECK: &str = "pkcs11-library";

/// Load each distinct library once; the loaded modules go into the context.
pub fn check(cx: &mut Context) {
    let libraries: BTreeSet<_> = cx
        .config
        .enabled_cert_modules()
        .map(|m| m.pkcs11.library.clone())
        .collect();
    for library in libraries {
        let subject = library.display().to_string();
        match Module::open(&library) {
            Ok(module) => {
                let detail = match module.tokens() {
                    Ok(tokens) => format!("loaded; {} slot(s) with a token", tokens.len()),
                    Err(err) => format!("loaded; listing slots failed: {err}"),
                };
                cx.add(CHECK, subject, Status::Pass, detail);
                cx.modules.insert(library, module);
            }
            Err(err) => cx.add(CHECK, subject, Status::Fail, err.to_string()),
        }
    }
}
