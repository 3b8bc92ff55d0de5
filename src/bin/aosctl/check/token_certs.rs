//! Not a check of its own: reads each enabled module's current certificate chain from its token, for the
//! expiry and chain checks. A token that cannot be opened or read is reported here (check `certificates`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use aos_config::{CertModuleConfig, ExtendedKeyUsage, TokenSelector};
use aos_pkcs11::{PinSource, Token};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Context, Status};

const CHECK: &str = "certificates";

/// The current (latest-expiring) certificate of one cert type, as stored on its token.
#[derive(Debug, Clone)]
pub struct TokenCert {
    /// The cert type (module id).
    pub cert_type: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The EKUs the module requires.
    pub ekus: Vec<ExtendedKeyUsage>,
    /// The module makes its certificate itself (no CA).
    pub self_signed: bool,
}

/// Read the current certificate of every enabled module whose token was found.
pub fn read(cx: &mut Context) {
    let mut tokens: HashMap<(PathBuf, TokenSelector), Option<Arc<Token>>> = HashMap::new();
    let modules: Vec<CertModuleConfig> = cx.config.enabled_cert_modules().cloned().collect();
    for module in modules {
        let key = (module.pkcs11.library.clone(), module.pkcs11.selector());
        let token = match tokens.get(&key) {
            Some(token) => token.clone(),
            None => {
                let token = open(cx, &module);
                tokens.insert(key, token.clone());
                token
            }
        };
        let Some(token) = token else { continue };
        match current(&token, &module) {
            Ok(Some(cert)) => cx.certs.push(cert),
            Ok(None) => {
                let status = cx.missing_status();
                cx.add(CHECK, &module.id, status, "no certificate on the token");
            }
            Err(detail) => cx.add(CHECK, &module.id, Status::Fail, detail),
        }
    }
}

/// Open the module's token with its user PIN; `None` when that is not possible (reported if it matters).
fn open(cx: &mut Context, module: &CertModuleConfig) -> Option<Arc<Token>> {
    let library = cx.modules.get(&module.pkcs11.library)?.clone();
    let selector = module.pkcs11.selector();
    let subject = format!("{selector}");
    library.find_slot(&selector).ok()?;
    let Some(source) = PinSource::from_params(&module.pkcs11) else {
        cx.add(CHECK, subject, Status::Fail, "no user PIN configured");
        return None;
    };
    let pin = match source.read() {
        Ok(pin) => pin,
        Err(err) => {
            let status = cx.missing_status();
            cx.add(
                CHECK,
                subject,
                status,
                format!("cannot read the user PIN: {err}"),
            );
            return None;
        }
    };
    match Token::open(library, selector, pin) {
        Ok(token) => Some(token),
        Err(err) => {
            cx.add(
                CHECK,
                subject,
                Status::Fail,
                format!("cannot log in: {err}"),
            );
            None
        }
    }
}

/// The latest-expiring complete certificate of `module` on `token`.
fn current(token: &Token, module: &CertModuleConfig) -> Result<Option<TokenCert>, String> {
    let inventory = token
        .inventory(&module.id)
        .map_err(|e| format!("cannot list the token's objects: {e}"))?;
    let mut best: Option<TokenCert> = None;
    for set in inventory.complete() {
        let chain = token
            .read_chain(&module.id, &set.id)
            .map_err(|e| format!("cannot read a certificate chain: {e}"))?;
        let Some(leaf) = chain.first() else { continue };
        let (_, x509) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| format!("a stored certificate does not parse: {e}"))?;
        let validity = x509.validity();
        let cert = TokenCert {
            cert_type: module.id.clone(),
            serial: hex::encode(x509.tbs_certificate.raw_serial()),
            not_before: to_system_time(validity.not_before.timestamp()),
            not_after: to_system_time(validity.not_after.timestamp()),
            chain: chain.clone(),
            ekus: module.extended_key_usage.clone(),
            self_signed: module.self_signed,
        };
        if best.as_ref().is_none_or(|b| cert.not_after > b.not_after) {
            best = Some(cert);
        }
    }
    Ok(best)
}

fn to_system_time(secs: i64) -> SystemTime {
    let offset = std::time::Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    }
}
