//! Checks of `[[cert_modules]]` and of `cert_storage`, which must name one of them.

use std::collections::HashMap;

use super::names::{check_dns_name, check_module_id, count_word};
use super::Issues;
use crate::cert_module::{MAX_ALTERNATIVE_NAMES, MAX_ITEMS_LIMIT};
use crate::key_path::KeyPath;
use crate::{CertModuleConfig, Config, ExtendedKeyUsage, Pkcs11Params, TeeLoginType};

fn module_path(index: usize) -> KeyPath {
    KeyPath::root().key("cert_modules").index(index)
}

pub(super) fn check_cert_modules(modules: &[CertModuleConfig], issues: &mut Issues) {
    for (i, module) in modules.iter().enumerate() {
        let path = module_path(i);
        issues.check(path.key("id"), check_module_id(&module.id));
        check_module(module, &path, issues);
        check_pkcs11(&module.pkcs11, &path.key("pkcs11"), issues);
    }
    check_duplicate_ids(modules, issues);
    check_shared_tokens(modules, issues);
}

fn check_module(module: &CertModuleConfig, path: &KeyPath, issues: &mut Issues) {
    let max_items = module.max_items;
    if !(1..=MAX_ITEMS_LIMIT).contains(&max_items) {
        issues.push(
            path.key("max_items"),
            format!("{max_items} is out of range 1..={MAX_ITEMS_LIMIT}"),
        );
    } else if max_items < 2 && !module.self_signed {
        issues.near(
            path.key("max_items"),
            [path.key("self_signed")],
            "must be at least 2 for a CA-issued certificate (renewal keeps the old one until the new one is \
             applied); 1 is only allowed with self_signed = true",
        );
    }
    for (i, eku) in module.extended_key_usage.iter().enumerate() {
        if module.extended_key_usage[..i].contains(eku) {
            issues.push(
                path.key("extended_key_usage").index(i),
                format!("{} listed twice", eku_name(*eku)),
            );
        }
    }
    let names = &module.alternative_names;
    if names.len() > MAX_ALTERNATIVE_NAMES {
        issues.push(
            path.key("alternative_names"),
            format!(
                "{} names; at most {MAX_ALTERNATIVE_NAMES} are allowed",
                names.len()
            ),
        );
    }
    for (i, name) in names.iter().enumerate() {
        issues.check(
            path.key("alternative_names").index(i),
            check_dns_name(name).map_err(|why| format!("{name:?}: {why}")),
        );
    }
}

fn eku_name(eku: ExtendedKeyUsage) -> &'static str {
    match eku {
        ExtendedKeyUsage::ClientAuth => "client_auth",
        ExtendedKeyUsage::ServerAuth => "server_auth",
    }
}

fn check_pkcs11(params: &Pkcs11Params, path: &KeyPath, issues: &mut Issues) {
    if params.library.as_os_str().is_empty() {
        issues.push(
            path.key("library"),
            "empty path: give the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so",
        );
    }
    let selectors = params.selectors_set();
    if selectors.len() > 1 {
        issues.push(
            path.clone(),
            format!(
                "{} slot selectors set ({}); set exactly one (token_label is the robust choice)",
                count_word(selectors.len()),
                selectors.join(", ")
            ),
        );
    }
    let login = path.key("tee_login_type");
    match params.tee_login_type {
        Some(TeeLoginType::User) if params.uid.is_none() => {
            issues.near(
                path.key("uid"),
                [login.clone()],
                "tee_login_type = \"user\" needs uid (the PIN is derived from it)",
            );
        }
        Some(TeeLoginType::Group) if params.gid.is_none() => {
            issues.near(
                path.key("gid"),
                [login.clone()],
                "tee_login_type = \"group\" needs gid (the PIN is derived from it)",
            );
        }
        _ => {}
    }
    match (params.tee_login_type.is_some(), params.user_pin_path.is_some()) {
        (true, true) => issues.near(
            path.key("user_pin_path"),
            [login],
            "not used with tee_login_type (a TEE login derives its PIN and has no PIN file); remove one of them",
        ),
        (false, false) => issues.near(
            path.key("user_pin_path"),
            [path.clone()],
            "missing: set the file holding the token's user PIN (it is generated there at provisioning when absent), \
             or set tee_login_type for an OP-TEE token",
        ),
        _ => {}
    }
}

fn check_duplicate_ids(modules: &[CertModuleConfig], issues: &mut Issues) {
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    for (i, module) in modules.iter().enumerate() {
        if let Some(first) = first_with_id.get(module.id.as_str()) {
            issues.push(
                module_path(i).key("id"),
                format!(
                    "duplicate id {:?}: cert_modules[{first}] has it already; ids must be unique",
                    module.id
                ),
            );
        } else {
            first_with_id.insert(&module.id, i);
        }
    }
}

/// Enabled modules on the same token (same library and selector) log in with the same PIN, so they must agree
/// on where it comes from.
fn check_shared_tokens(modules: &[CertModuleConfig], issues: &mut Issues) {
    let mut first_on_token = HashMap::new();
    for (i, module) in modules.iter().enumerate().filter(|(_, m)| !m.disabled) {
        let params = &module.pkcs11;
        let token = (params.library.clone(), params.selector());
        let Some(&first) = first_on_token.get(&token) else {
            first_on_token.insert(token, i);
            continue;
        };
        let other: &Pkcs11Params = &modules[first].pkcs11;
        let path = module_path(i).key("pkcs11");
        if other.tee_login_type != params.tee_login_type {
            issues.push(
                path.key("tee_login_type"),
                format!(
                    "differs from cert_modules[{first}] ({:?}), which uses the same token ({}); modules sharing a \
                     token must log in the same way",
                    modules[first].id,
                    params.selector()
                ),
            );
        } else if other.user_pin_path != params.user_pin_path {
            issues.push(
                path.key("user_pin_path"),
                format!(
                    "differs from cert_modules[{first}] ({:?}), which uses the same token ({}); modules sharing a \
                     token must share its PIN file",
                    modules[first].id,
                    params.selector()
                ),
            );
        }
    }
}

pub(super) fn check_cert_storage(config: &Config, issues: &mut Issues) {
    let key = KeyPath::root().key("cert_storage");
    let anchors = [KeyPath::root().key("cert_modules")];
    let name = &config.cert_storage;
    let Some(module) = config.cert_module(name) else {
        let ids: Vec<&str> = config.cert_modules.iter().map(|m| m.id.as_str()).collect();
        let configured = if ids.is_empty() {
            "no cert modules are configured".to_owned()
        } else {
            format!("configured: {}", ids.join(", "))
        };
        issues.near(
            key,
            anchors.clone(),
            format!("{name:?} names no cert module ({configured}); IAM needs one for its TLS certificate"),
        );
        return;
    };
    let usage = &module.extended_key_usage;
    let problem = if module.disabled {
        Some("is disabled")
    } else if module.self_signed {
        Some("is self_signed; IAM's TLS certificate must be issued by the unit's CA")
    } else if !usage.is_empty() && !usage.contains(&ExtendedKeyUsage::ServerAuth) {
        Some("lacks extended_key_usage server_auth, which IAM's TLS certificate needs")
    } else {
        None
    };
    if let Some(problem) = problem {
        issues.near(
            key,
            anchors.clone(),
            format!("cert module {name:?} {problem}"),
        );
    }
}

#[cfg(test)]
mod tests;
