use std::path::PathBuf;

use crate::test_support::{assert_error_at, error_of, line_of, ok, MAIN, ORIGIN};
use crate::{Config, ConfigError, ExtendedKeyUsage};

#[test]
fn unknown_key_is_refused_at_its_line() {
    let text = MAIN.replace("token_label = \"aoscore\"", "slotid = 1");
    assert_error_at(
        &text,
        "slotid",
        "cert_modules[0].pkcs11.slotid",
        "unknown field `slotid`",
    );
}

#[test]
fn unknown_top_level_key_is_refused() {
    let text = MAIN.replace("[node]", "certstorage = \"iam\"\n\n[node]");
    assert_error_at(
        &text,
        "certstorage",
        "certstorage",
        "unknown field `certstorage`",
    );
}

#[test]
fn unknown_algorithm_is_refused_at_its_line() {
    let text = MAIN.replace("algorithm = \"ecc\"", "algorithm = \"dsa\"");
    assert_error_at(
        &text,
        "\"dsa\"",
        "cert_modules[0].algorithm",
        "unknown variant `dsa`",
    );
}

#[test]
fn bad_duration_is_refused_at_its_line() {
    let text = format!("{MAIN}\n[iam]\nnode_reconnect_interval = \"10 seconds\"\n");
    assert_error_at(
        &text,
        "10 seconds",
        "iam.node_reconnect_interval",
        "invalid duration \"10 seconds\"",
    );
}

#[test]
fn wrong_type_names_the_key() {
    let text = format!("{MAIN}\n[transport]\nmax_frame_size = \"big\"\n");
    assert_error_at(&text, "\"big\"", "transport.max_frame_size", "invalid type");
}

#[test]
fn missing_required_key_points_at_its_table() {
    let text = MAIN.replace("unit_id = \"unit-1\"\n", "");
    assert_error_at(&text, "[node]", "node", "missing field `unit_id`");
}

#[test]
fn syntax_error_has_line_and_column() {
    let text = MAIN.replace("role = \"main\"", "role \"main\"");
    let err = error_of(&text);
    let line = line_of(&text, "role \"main\"");
    assert!(
        matches!(err, ConfigError::Parse { line: l, column: 6, .. } if l == line),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!("{ORIGIN}:{line}:6: ")),
        "{err}"
    );
}

#[test]
fn validation_error_display_has_column() {
    let text = format!("{MAIN}\n[iam]\nmain_public_addr = \"main:8090\"\n");
    let line = line_of(&text, "main_public_addr");
    let err = error_of(&text);
    assert!(
        err.to_string()
            .starts_with(&format!("{ORIGIN}:{line}:1: iam.main_public_addr: ")),
        "{err}"
    );
}

#[test]
fn ca_cert_accepts_a_string_or_an_array() {
    assert_eq!(ok(MAIN).ca_cert, vec![PathBuf::from("/etc/aos/ca.pem")]);
    let text = MAIN.replace(
        "ca_cert = \"/etc/aos/ca.pem\"",
        "ca_cert = [\"/etc/aos/a.pem\", \"/etc/aos/b.pem\"]",
    );
    assert_eq!(
        ok(&text).ca_cert,
        vec![
            PathBuf::from("/etc/aos/a.pem"),
            PathBuf::from("/etc/aos/b.pem")
        ]
    );
}

#[test]
fn empty_ca_cert_is_refused() {
    let text = MAIN.replace("ca_cert = \"/etc/aos/ca.pem\"", "ca_cert = []");
    assert_error_at(&text, "ca_cert", "ca_cert", "no CA certificate");
}

#[test]
fn aoscore_spellings_of_key_usage_are_accepted() {
    let text = MAIN.replace(
        "[\"server_auth\", \"client_auth\"]",
        "[\"serverAuth\", \"clientAuth\"]",
    );
    let config = ok(&text);
    let usage = config
        .cert_module("iam")
        .map(|m| m.extended_key_usage.clone());
    assert_eq!(
        usage,
        Some(vec![
            ExtendedKeyUsage::ServerAuth,
            ExtendedKeyUsage::ClientAuth
        ])
    );
}

#[test]
fn diagnose_reports_every_issue_in_file_order() {
    let text =
        format!("{MAIN}\n[renewal]\nthreshold_percent = 0\n\n[transport]\nmax_frame_size = 10\n");
    let text = text.replace("unit_id = \"unit-1\"", "unit_id = \"unit:1\"");
    let errors = match Config::diagnose(&text, ORIGIN) {
        Ok(_) => panic!("accepted"),
        Err(errors) => errors,
    };
    let keys: Vec<_> = errors.iter().filter_map(ConfigError::key).collect();
    assert_eq!(
        keys,
        [
            "node.unit_id",
            "renewal.threshold_percent",
            "transport.max_frame_size"
        ]
    );
    let lines: Vec<_> = errors.iter().filter_map(ConfigError::line).collect();
    assert_eq!(
        lines,
        [
            line_of(&text, "unit:1"),
            line_of(&text, "threshold_percent"),
            line_of(&text, "= 10")
        ]
    );
}

#[test]
fn load_names_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.toml");
    let err = Config::load(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!("{}: cannot read", missing.display())),
        "{err}"
    );

    let path = dir.path().join("node.toml");
    std::fs::write(&path, MAIN.replace("role = \"main\"", "role = \"boss\""))?;
    let err = Config::load(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with(&format!("{}:6:", path.display())), "{err}");

    std::fs::write(&path, MAIN)?;
    assert_eq!(Config::load(&path)?.node.id, "main");
    Ok(())
}

fn example(name: &str) -> Result<Config, ConfigError> {
    Config::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
}

#[test]
fn main_example_loads_with_the_shipped_modules() -> Result<(), ConfigError> {
    let config = example("main-node.toml")?;
    assert!(config.node.is_main());
    let modules: Vec<_> = config
        .cert_modules
        .iter()
        .map(|m| {
            (
                m.id.as_str(),
                m.algorithm,
                m.max_items,
                m.pkcs11.token_label.as_deref(),
            )
        })
        .collect();
    use crate::KeyAlgorithm::{EccP384, Rsa2048};
    assert_eq!(
        modules,
        [
            ("online", EccP384, 2, Some("aoscloud")),
            ("offline", Rsa2048, 5, Some("aoscloud")),
            ("iam", EccP384, 2, Some("aoscore")),
            ("sm", EccP384, 2, Some("aoscore")),
            ("cm", EccP384, 2, Some("aoscore")),
            ("diskencryption", Rsa2048, 1, Some("aoscore")),
        ]
    );
    assert!(config
        .cert_module("diskencryption")
        .is_some_and(|m| m.self_signed));
    assert!(config
        .cert_modules
        .iter()
        .all(|m| m.pkcs11.library == std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so")));
    Ok(())
}

#[test]
fn secondary_example_loads() -> Result<(), ConfigError> {
    let config = example("secondary-node.toml")?;
    assert!(!config.node.is_main());
    // It reaches the main node through the MP bridge, with its `mp` certificate.
    assert_eq!(config.iam.main_public_addr, None);
    assert!(config.mp.main_addr.is_some() && config.cert_module("mp").is_some());
    assert!(config
        .cert_module("iam")
        .is_some_and(|m| m.pkcs11.user_pin_path.is_some()));
    Ok(())
}
