//! `aosctl check`: diagnostics of a node from its configuration, one file per check. Each check adds
//! findings (PASS, WARN or FAIL, with a subject and a detail); the command prints them as a table (or JSON)
//! and exits 1 when any failed.
//!
//! Order: the config loads (nothing else runs without it), the PKCS#11 libraries load, each token is found,
//! PIN files are 0600, then the certificates on the tokens: not near expiry, chains verify to the CA; last
//! the clock. Before provisioning, a token or PIN file that does not exist yet is a warning, not a failure.

mod chains;
mod clock;
mod config_loads;
mod expiry;
mod library;
mod pin_files;
mod token_certs;
mod tokens;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aos_config::Config;
use aos_pkcs11::Module;
use serde::Serialize;

use crate::cli::CheckArgs;
use crate::error::CtlError;
use crate::output::{self, Table};

pub use token_certs::TokenCert;

/// The outcome of one check on one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// As it should be.
    Pass,
    /// Works now, needs attention (soon to expire, not created yet).
    Warn,
    /// Broken.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check (e.g. `pin-files`).
    pub check: &'static str,
    /// What was checked (a file, a token, a cert type).
    pub subject: String,
    /// The outcome.
    pub status: Status,
    /// Why.
    pub detail: String,
}

/// What the checks share: the loaded config, the libraries, the certificates read from the tokens.
pub struct Context {
    /// The node's configuration.
    pub config: Config,
    /// Whether the node's state file says provisioned (or paused): missing tokens are failures then.
    pub provisioned: bool,
    /// The time the checks compare against.
    pub now: SystemTime,
    /// A certificate expiring within this is a warning.
    pub expiry_warning: Duration,
    /// PKCS#11 modules that loaded, by library path.
    pub modules: BTreeMap<PathBuf, Arc<Module>>,
    /// Current certificates read from the tokens.
    pub certs: Vec<TokenCert>,
    /// The findings so far.
    pub findings: Vec<Finding>,
}

// === impl Context ===

impl Context {
    /// Record a finding.
    pub fn add(
        &mut self,
        check: &'static str,
        subject: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            check,
            subject: subject.into(),
            status,
            detail: detail.into(),
        });
    }

    /// A missing thing is a warning before provisioning and a failure after.
    pub fn missing_status(&self) -> Status {
        if self.provisioned {
            Status::Fail
        } else {
            Status::Warn
        }
    }
}

/// Run every check on the config at `args.config`; the findings in order.
pub fn diagnose(args: &CheckArgs, now: SystemTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(mut cx) = config_loads::check(&args.config, now, args.expiry_warning, &mut findings)
    else {
        return findings;
    };
    cx.findings = findings;
    library::check(&mut cx);
    tokens::check(&mut cx);
    pin_files::check(&mut cx);
    token_certs::read(&mut cx);
    expiry::check(&mut cx);
    chains::check(&mut cx);
    clock::check(&mut cx);
    cx.findings
}

/// `aosctl check`.
pub fn run(args: &CheckArgs, json: bool) -> Result<(), CtlError> {
    let findings = diagnose(args, SystemTime::now());
    let mut table = Table::new(&["CHECK", "SUBJECT", "STATUS", "DETAIL"]);
    for f in &findings {
        let status = match f.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        table.row(vec![
            f.check.to_owned(),
            f.subject.clone(),
            status.to_owned(),
            f.detail.clone(),
        ]);
    }
    output::print(json, &findings, &table)?;
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if failed > 0 {
        return Err(CtlError::ChecksFailed { failed });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
