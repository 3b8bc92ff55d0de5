//! Checks of the single-table sections: node, ca_cert, iam, provisioning, permissions, renewal, transport,
//! logging, cm, sm.

use std::time::Duration;

use super::names::{check_dns_name, check_host_port, check_ident};
use super::Issues;
use crate::key_path::KeyPath;
use crate::transport::{MAX_FRAME_SIZE, MIN_FRAME_SIZE};
use crate::{
    Config, LoggingConfig, PermissionsConfig, ProvisioningConfig, RenewalConfig, TransportConfig,
};

fn root(key: &str) -> KeyPath {
    KeyPath::root().key(key)
}

fn positive(issues: &mut Issues, key: KeyPath, value: Duration) {
    if value.is_zero() {
        issues.push(key, "must be longer than zero, e.g. \"10s\"");
    }
}

pub(super) fn check_node(config: &Config, issues: &mut Issues) {
    let node = &config.node;
    let path = root("node");
    issues.check(path.key("id"), check_ident(&node.id));
    issues.check(path.key("unit_id"), check_ident(&node.unit_id));
    for (key, value) in [
        ("state_file", &node.state_file),
        ("working_dir", &node.working_dir),
    ] {
        if value.as_os_str().is_empty() {
            issues.push(path.key(key), "empty path");
        }
    }
    for (key, value) in [
        ("node_name", &node.node_name),
        ("node_type", &node.node_type),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            issues.push(path.key(key), "empty; remove the key or give a value");
        }
    }
}

pub(super) fn check_ca_cert(config: &Config, issues: &mut Issues) {
    if config.ca_cert.is_empty() {
        issues.push(
            root("ca_cert"),
            "no CA certificate: give the PEM file(s) of the unit's CA",
        );
    }
    for (i, path) in config.ca_cert.iter().enumerate() {
        if path.as_os_str().is_empty() {
            issues.push(root("ca_cert").index(i), "empty path");
        }
    }
}

pub(super) fn check_iam(config: &Config, issues: &mut Issues) {
    let iam = &config.iam;
    let path = root("iam");
    let role = root("node").key("role");
    for (key, value) in [
        ("main_public_addr", &iam.main_public_addr),
        ("main_protected_addr", &iam.main_protected_addr),
    ] {
        match (config.node.is_main(), value) {
            (true, Some(_)) => issues.push(
                path.key(key),
                "only secondary nodes connect to a main node; remove it or set node.role = \"secondary\"",
            ),
            (false, None) if config.mp.main_addr.is_none() => issues.near(
                path.key(key),
                [path.clone(), role.clone()],
                "required on a secondary node (node.role = \"secondary\") without an MP bridge \
                 (mp.main_addr): host:port of the main node's IAM",
            ),
            (_, Some(addr)) => issues.check(path.key(key), check_host_port(addr)),
            (_, None) => {}
        }
    }
    if let Some(fingerprint) = &iam.main_fingerprint {
        if config.node.is_main() {
            issues.push(
                path.key("main_fingerprint"),
                "only secondary nodes pin the main node's provisioning certificate; remove it",
            );
        } else {
            issues.check(path.key("main_fingerprint"), check_fingerprint(fingerprint));
        }
    }
    if iam.public_listen == iam.protected_listen && iam.public_listen.port() != 0 {
        issues.push(
            path.key("protected_listen"),
            format!("same address as public_listen ({})", iam.public_listen),
        );
    }
    positive(
        issues,
        path.key("node_reconnect_interval"),
        iam.node_reconnect_interval,
    );
}

/// A SHA-256 fingerprint: 64 hex digits, optionally separated by `:` (as `openssl x509 -fingerprint` prints).
fn check_fingerprint(text: &str) -> Result<(), String> {
    let digits: Vec<char> = text.trim().chars().filter(|&c| c != ':').collect();
    if digits.len() == 64 && digits.iter().all(char::is_ascii_hexdigit) {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a SHA-256 fingerprint: 64 hex digits, `:` separators allowed (the main node logs it at start)"
        ))
    }
}

pub(super) fn check_provisioning(provisioning: &ProvisioningConfig, issues: &mut Issues) {
    let path = root("provisioning");
    for (key, argv) in provisioning.hooks() {
        let Some(argv) = argv else { continue };
        if !matches!(argv.first(), Some(program) if !program.trim().is_empty()) {
            issues.push(
                path.key(key),
                "empty command: give the program and its arguments, or remove the key",
            );
        }
    }
    positive(issues, path.key("hook_timeout"), provisioning.hook_timeout);
}

pub(super) fn check_permissions(permissions: &PermissionsConfig, issues: &mut Issues) {
    let path = root("permissions");
    if permissions
        .store_path
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        issues.push(
            path.key("store_path"),
            "empty path; remove the key to use <node.working_dir>/permissions.db",
        );
    }
    let limits = &permissions.limits;
    for (key, value) in [
        ("max_instances", limits.max_instances),
        ("max_servers_per_instance", limits.max_servers_per_instance),
        ("max_string_len", limits.max_string_len),
    ] {
        if value == 0 {
            issues.push(path.key("limits").key(key), "must be at least 1");
        }
    }
}

pub(super) fn check_renewal(renewal: &RenewalConfig, issues: &mut Issues) {
    let path = root("renewal");
    let threshold_ok = (1..=99).contains(&renewal.threshold_percent);
    if !threshold_ok {
        issues.push(
            path.key("threshold_percent"),
            format!("{} is out of range 1..=99", renewal.threshold_percent),
        );
    }
    if renewal.jitter_percent > 50 {
        issues.push(
            path.key("jitter_percent"),
            format!("{} is out of range 0..=50", renewal.jitter_percent),
        );
    } else if threshold_ok && renewal.jitter_percent >= renewal.threshold_percent {
        issues.near(
            path.key("jitter_percent"),
            [path.key("threshold_percent")],
            format!(
                "{} is not below threshold_percent ({}): renewal could be due at issuance",
                renewal.jitter_percent, renewal.threshold_percent
            ),
        );
    }
    positive(issues, path.key("retry_interval"), renewal.retry_interval);
    positive(
        issues,
        path.key("validation_interval"),
        renewal.validation_interval,
    );
}

pub(super) fn check_transport(transport: &TransportConfig, issues: &mut Issues) {
    let path = root("transport");
    if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&transport.max_frame_size) {
        issues.push(
            path.key("max_frame_size"),
            format!(
                "{} is out of range {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE} (1 KiB to 16 MiB)",
                transport.max_frame_size
            ),
        );
    }
    positive(
        issues,
        path.key("handshake_timeout"),
        transport.handshake_timeout,
    );
    positive(
        issues,
        path.key("reconnect_backoff_initial"),
        transport.reconnect_backoff_initial,
    );
    if transport.reconnect_backoff_max < transport.reconnect_backoff_initial {
        issues.near(
            path.key("reconnect_backoff_max"),
            [path.key("reconnect_backoff_initial")],
            format!(
                "{} is shorter than reconnect_backoff_initial ({})",
                crate::duration::format_duration(transport.reconnect_backoff_max),
                crate::duration::format_duration(transport.reconnect_backoff_initial)
            ),
        );
    }
}

pub(super) fn check_logging(logging: &LoggingConfig, issues: &mut Issues) {
    if logging.filter.trim().is_empty() {
        issues.push(
            root("logging").key("filter"),
            "empty filter; e.g. \"info,cryptoki=off\"",
        );
    }
}

pub(super) fn check_cm(config: &Config, issues: &mut Issues) {
    let cm = &config.cm;
    let path = root("cm");
    if cm.enabled && !config.node.is_main() {
        issues.near(
            path.key("enabled"),
            [root("node").key("role")],
            "the CM runs on the main node only; remove it or set node.role = \"main\"",
        );
    }
    if let Some(addr) = &cm.cloud_addr {
        issues.check(path.key("cloud_addr"), check_host_port(addr));
    }
    if let Some(name) = &cm.cloud_server_name {
        if cm.cloud_addr.is_none() {
            issues.push(
                path.key("cloud_server_name"),
                "set without cloud_addr; give the cloud's host:port or remove it",
            );
        }
        issues.check(path.key("cloud_server_name"), check_dns_name(name));
    }
    if cm.sm_listen.port() != 0 {
        for (key, other) in [
            ("public_listen", config.iam.public_listen),
            ("protected_listen", config.iam.protected_listen),
        ] {
            if other == cm.sm_listen {
                issues.push(
                    path.key("sm_listen"),
                    format!("same address as iam.{key} ({other})"),
                );
            }
        }
    }
    positive(
        issues,
        path.key("cloud_request_timeout"),
        cm.cloud_request_timeout,
    );
    positive(
        issues,
        path.key("sm_request_timeout"),
        cm.sm_request_timeout,
    );
}

pub(super) fn check_sm(config: &Config, issues: &mut Issues) {
    let sm = &config.sm;
    let path = root("sm");
    match &sm.cm_addr {
        Some(addr) => issues.check(path.key("cm_addr"), check_host_port(addr)),
        None if !sm.enabled => {}
        None if config.node.is_main() && !config.cm.enabled => issues.near(
            path.key("cm_addr"),
            [path.clone(), root("cm").key("enabled")],
            "the SM needs a CM: set cm.enabled = true on this main node, or cm_addr",
        ),
        None if !config.node.is_main() && config.mp.main_addr.is_none() => issues.near(
            path.key("cm_addr"),
            [path.clone(), root("mp").key("main_addr")],
            "the SM of a secondary node reaches the CM through the MP bridge: set mp.main_addr, or cm_addr",
        ),
        None => {}
    }
    positive(
        issues,
        path.key("reconcile_interval"),
        sm.reconcile_interval,
    );
}

#[cfg(test)]
mod tests;
