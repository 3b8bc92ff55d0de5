//! The checks against a real SoftHSM token holding a CA-issued certificate.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aos_pkcs11::testkit::{SoftHsm, TestCa, USER_PIN};
use aos_pkcs11::{KeyAlgorithm, TokenKey};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

struct Node {
    hsm: SoftHsm,
    ca: TestCa,
    config: PathBuf,
    pin: PathBuf,
}

/// A node config with one `iam` module on token `aoscore` of a private SoftHSM; with a token, a PIN file and
/// a certificate valid for `valid_for` when `provisioned`.
fn node(provisioned: bool, valid_for: Duration) -> Node {
    let hsm = SoftHsm::new();
    let ca = TestCa::new("check");
    let dir = hsm.dir().to_owned();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.root.pem()).unwrap();
    let pin = dir.join("aoscore.pin");
    let state = dir.join("state");
    if provisioned {
        let token = hsm.token("aoscore");
        std::fs::write(&pin, USER_PIN).unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pair = token
            .generate_key_pair("iam", KeyAlgorithm::EccP256)
            .unwrap();
        let id = pair.id.clone();
        let key = TokenKey::new(token.clone(), pair).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["main.local".to_owned()]).unwrap();
        params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
        params.not_after = (SystemTime::now() + valid_for).into();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let chain = ca.issue_with(&key, params);
        token.store_chain("iam", &id, chain.as_bytes()).unwrap();
        std::fs::write(&state, "provisioned").unwrap();
    }
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"ca_cert = "{ca}"
[node]
id = "main"
unit_id = "unit-1"
role = "main"
state_file = "{state}"
working_dir = "{dir}"

[[cert_modules]]
id = "iam"
algorithm = "ecc-p256"
extended_key_usage = ["server_auth", "client_auth"]
[cert_modules.pkcs11]
library = "{lib}"
token_label = "aoscore"
user_pin_path = "{pin}"
"#,
            ca = ca_file.display(),
            state = state.display(),
            dir = dir.display(),
            lib = hsm.library().display(),
            pin = pin.display(),
        ),
    )
    .unwrap();
    Node {
        hsm,
        ca,
        config,
        pin,
    }
}

fn diagnose_with(config: &Path, warning: Duration) -> Vec<Finding> {
    let args = CheckArgs {
        config: config.to_owned(),
        expiry_warning: warning,
    };
    diagnose(&args, SystemTime::now())
}

fn status_of(findings: &[Finding], check: &str) -> Vec<Status> {
    findings
        .iter()
        .filter(|f| f.check == check)
        .map(|f| f.status)
        .collect()
}

#[test]
fn a_provisioned_node_passes_every_check() {
    let node = node(true, 400 * DAY);
    let findings = diagnose_with(&node.config, 30 * DAY);
    for check in [
        "config",
        "pkcs11-library",
        "token",
        "pin-file",
        "expiry",
        "chain",
        "clock",
    ] {
        let statuses = status_of(&findings, check);
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Pass),
            "{check}: {findings:#?}"
        );
    }
    assert!(
        status_of(&findings, "certificates").is_empty(),
        "{findings:#?}"
    );
}

#[test]
fn a_loose_pin_file_a_foreign_ca_and_a_near_expiry_are_found() {
    let node = node(true, 10 * DAY);
    std::fs::set_permissions(&node.pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let findings = diagnose_with(&node.config, 30 * DAY);
    assert_eq!(
        status_of(&findings, "pin-file"),
        [Status::Fail],
        "{findings:#?}"
    );
    // The token is not even opened with a PIN others can read.
    assert_eq!(
        status_of(&findings, "certificates"),
        [Status::Fail],
        "{findings:#?}"
    );
    std::fs::set_permissions(&node.pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let findings = diagnose_with(&node.config, 30 * DAY);
    assert_eq!(
        status_of(&findings, "expiry"),
        [Status::Warn],
        "{findings:#?}"
    );

    // Another CA: the chain no longer verifies.
    let other = TestCa::new("other");
    let text = std::fs::read_to_string(&node.config).unwrap();
    let ca_line = text.lines().next().unwrap().to_owned();
    let other_file = node.hsm.dir().join("other.pem");
    std::fs::write(&other_file, other.root.pem()).unwrap();
    std::fs::write(
        &node.config,
        text.replace(&ca_line, &format!("ca_cert = \"{}\"", other_file.display())),
    )
    .unwrap();
    let findings = diagnose_with(&node.config, DAY);
    assert_eq!(
        status_of(&findings, "chain"),
        [Status::Fail],
        "{findings:#?}"
    );
    assert_eq!(
        status_of(&findings, "expiry"),
        [Status::Pass],
        "{findings:#?}"
    );
    let _ = &node.ca;
}

#[test]
fn before_provisioning_missing_tokens_and_pins_are_warnings() {
    let node = node(false, DAY);
    let findings = diagnose_with(&node.config, DAY);
    assert_eq!(status_of(&findings, "pkcs11-library"), [Status::Pass]);
    assert_eq!(
        status_of(&findings, "token"),
        [Status::Warn],
        "{findings:#?}"
    );
    assert_eq!(
        status_of(&findings, "pin-file"),
        [Status::Warn],
        "{findings:#?}"
    );
    assert!(
        findings.iter().all(|f| f.status != Status::Fail),
        "{findings:#?}"
    );
}

#[test]
fn a_broken_config_or_a_missing_library_fails() {
    let node = node(false, DAY);
    let text = std::fs::read_to_string(&node.config).unwrap();
    std::fs::write(
        &node.config,
        text.replace("role = \"main\"", "role = \"boss\""),
    )
    .unwrap();
    let findings = diagnose_with(&node.config, DAY);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].status, Status::Fail);
    assert!(
        findings[0].detail.contains("role"),
        "{}",
        findings[0].detail
    );

    let lib = node.hsm.library().display().to_string();
    std::fs::write(
        &node.config,
        text.replace(&lib, "/nonexistent/libpkcs11.so"),
    )
    .unwrap();
    let findings = diagnose_with(&node.config, DAY);
    assert_eq!(
        status_of(&findings, "pkcs11-library"),
        [Status::Fail],
        "{findings:#?}"
    );
}
