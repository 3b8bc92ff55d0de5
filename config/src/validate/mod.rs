//! Semantic validation: ranges and consistency between keys, after the TOML fits the schema.

mod cert_modules;
mod names;
mod sections;

use std::fmt;

use crate::key_path::KeyPath;
use crate::Config;

/// One problem found by [`Config::validate`]: a key path and a message saying what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    key: KeyPath,
    /// Where to point when `key` is not in the file (it has its default), in order of preference.
    anchors: Vec<KeyPath>,
    message: String,
}

// === impl ValidationIssue ===

impl ValidationIssue {
    /// The key path, e.g. `cert_modules[2].pkcs11`.
    pub fn key(&self) -> String {
        self.key.to_string()
    }

    /// What is wrong and how to fix it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Paths to look up in the source, best first.
    pub(crate) fn locations(&self) -> Vec<KeyPath> {
        std::iter::once(self.key.clone())
            .chain(self.anchors.iter().cloned())
            .collect()
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collects issues while the checks run.
#[derive(Default)]
pub(crate) struct Issues(Vec<ValidationIssue>);

// === impl Issues ===

impl Issues {
    /// An issue at `key`.
    pub(crate) fn push(&mut self, key: KeyPath, message: impl Into<String>) {
        self.near(key, [], message);
    }

    /// An issue at `key`; when `key` is not in the file, point at the first of `anchors` that is.
    pub(crate) fn near(
        &mut self,
        key: KeyPath,
        anchors: impl IntoIterator<Item = KeyPath>,
        message: impl Into<String>,
    ) {
        self.0.push(ValidationIssue {
            key,
            anchors: anchors.into_iter().collect(),
            message: message.into(),
        });
    }

    /// Records `result`'s error, if any, at `key`.
    pub(crate) fn check<E: fmt::Display>(&mut self, key: KeyPath, result: Result<(), E>) {
        if let Err(e) = result {
            self.push(key, e.to_string());
        }
    }
}

/// Runs every check; issues come in check order (the loader sorts them by position).
pub(crate) fn validate(config: &Config) -> Vec<ValidationIssue> {
    let mut issues = Issues::default();
    sections::check_node(config, &mut issues);
    sections::check_ca_cert(config, &mut issues);
    sections::check_iam(config, &mut issues);
    sections::check_provisioning(&config.provisioning, &mut issues);
    sections::check_permissions(&config.permissions, &mut issues);
    sections::check_renewal(&config.renewal, &mut issues);
    sections::check_transport(&config.transport, &mut issues);
    sections::check_logging(&config.logging, &mut issues);
    sections::check_cm(config, &mut issues);
    sections::check_sm(config, &mut issues);
    crate::mp::check(config, &mut issues);
    cert_modules::check_cert_modules(&config.cert_modules, &mut issues);
    cert_modules::check_cert_storage(config, &mut issues);
    issues.0
}

// === impl Config ===

impl Config {
    /// Checks ranges and consistency (what [`Config::load`] checks after parsing). Useful for configurations
    /// built in code.
    pub fn validate(&self) -> Result<(), Vec<ValidationIssue>> {
        let issues = validate(self);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }
}
