//! The AosCore import against the shipped fixtures and broken variants of them.
use std::net::SocketAddr;

use super::*;

const MAIN: &str = include_str!("../../../../tests/fixtures/aoscore-iam.json");
const SECONDARY: &str = include_str!("../../../../tests/fixtures/aoscore-iam-secondary.json");

fn import(text: &str) -> Result<Imported, ImportError> {
    convert(text, Path::new("aos_iam.cfg"), None, "unit-9")
}

#[test]
fn the_shipped_main_node_example_converts_to_a_valid_config() {
    let imported = import(MAIN).unwrap();
    let config = Config::from_str(&imported.toml, "out.toml").unwrap();
    assert_eq!(config.node.id, "main");
    assert_eq!(config.node.unit_id, "unit-9");
    assert_eq!(config.node.role, NodeRole::Main);
    assert_eq!(config.node.node_type.as_deref(), Some("main-board"));
    assert_eq!(
        config.iam.public_listen,
        "0.0.0.0:8090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.iam.protected_listen,
        "0.0.0.0:8089".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.provisioning.finish.as_deref(),
        Some(
            &[
                "/opt/aos/provisionfirmware.sh".to_owned(),
                "finish".to_owned()
            ][..]
        )
    );
    assert!(config.cm.enabled && config.sm.enabled && config.permissions.enabled);
    let ids: Vec<_> = config.cert_modules.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["online", "offline", "iam", "sm", "cm", "diskencryption"]
    );
    let offline = config.cert_module("offline").unwrap();
    assert_eq!(
        (offline.algorithm, offline.max_items),
        (KeyAlgorithm::Rsa2048, 5)
    );
    let iam = config.cert_module("iam").unwrap();
    assert_eq!(
        iam.extended_key_usage,
        [ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth]
    );
    assert_eq!(iam.pkcs11.token_label.as_deref(), Some("aoscore"));
    assert!(iam.pkcs11.module_path_in_url);
    assert!(config.cert_module("diskencryption").unwrap().self_signed);
    // What was dropped is said, in the notes and in the file.
    assert!(imported
        .notes
        .iter()
        .any(|n| n.starts_with("identifier: dropped")));
    assert!(imported
        .notes
        .iter()
        .any(|n| n.starts_with("nodeInfo.partitions: dropped")));
    assert!(imported.toml.contains("# note: identifier: dropped"));
}

#[test]
fn keys_in_other_cases_and_a_secondary_node() {
    let imported = import(SECONDARY).unwrap();
    let config = Config::from_str(&imported.toml, "out.toml").unwrap();
    assert_eq!(config.node.id, "secondary-1");
    assert_eq!(config.node.role, NodeRole::Secondary);
    assert_eq!(config.iam.main_public_addr.as_deref(), Some("main:8090"));
    assert_eq!(
        config.iam.node_reconnect_interval,
        std::time::Duration::from_secs(5)
    );
    assert!(!config.permissions.enabled && !config.cm.enabled && config.sm.enabled);
    assert_eq!(config.sm.cm_addr.as_deref(), Some("main:8093"));
    assert!(imported
        .notes
        .iter()
        .any(|n| n.starts_with("sm.cm_addr: set to main:8093")));
    let iam = config.cert_module("iam").unwrap();
    assert_eq!(iam.pkcs11.slot_index, Some(0));
    assert_eq!((iam.pkcs11.uid, iam.pkcs11.gid), (Some(0), Some(0)));
}

#[test]
fn node_id_flag_wins_over_the_node_name() {
    let imported = convert(MAIN, Path::new("x"), Some("gw-7"), "u").unwrap();
    let config = Config::from_str(&imported.toml, "out.toml").unwrap();
    assert_eq!(config.node.id, "gw-7");
    assert_eq!(config.node.node_name.as_deref(), Some("main"));
}

#[test]
fn unsupported_values_name_their_key() {
    let cases = [
        (
            MAIN.replacen(
                "\"plugin\": \"pkcs11module\"",
                "\"plugin\": \"tpmmodule\"",
                1,
            ),
            "certModules[0].plugin: `tpmmodule` is not supported",
        ),
        (
            MAIN.replacen("\"algorithm\": \"rsa\"", "\"algorithm\": \"dsa\"", 1),
            "certModules[1].algorithm: `dsa` is not supported",
        ),
        (
            MAIN.replace("\":8090\"", "\"iam.local:8090\""),
            "iamPublicServerUrl: `iam.local` is not an IP address",
        ),
        (
            MAIN.replace("\"clientAuth\"]", "\"codeSigning\"]"),
            "certModules[0].extendedKeyUsage: `codeSigning` is not supported",
        ),
        (
            MAIN.replacen(
                "\"modulePathInUrl\": true",
                "\"modulePathInUrl\": true, \"pin\": \"1234\"",
                1,
            ),
            "certModules[0].params.pin",
        ),
        (
            MAIN.replace("\"10s\"", "\"ten seconds\""),
            "nodeReconnectInterval: ",
        ),
        (
            MAIN.replace("\"maxItems\": 5", "\"maxItems\": \"5\""),
            "certModules[1].maxItems: expected",
        ),
    ];
    for (text, expected) in cases {
        let err = import(&text).unwrap_err().to_string();
        assert!(
            err.starts_with(expected),
            "{err}\n does not start with {expected}"
        );
    }
}

#[test]
fn values_the_config_refuses_are_reported_with_the_toml_key() {
    let text = MAIN.replace("\"maxItems\": 5", "\"maxItems\": 9");
    let err = import(&text).unwrap_err();
    assert!(matches!(err, ImportError::Validation(_)), "{err}");
    assert!(err.to_string().contains("max_items"), "{err}");
}

#[test]
fn broken_json_names_the_line() {
    let err = import("{\n  \"caCert\": ,\n}").unwrap_err();
    assert!(err.to_string().starts_with("aos_iam.cfg:2:"), "{err}");
    let err = import("{\"certModules\": []}").unwrap_err();
    assert!(err.to_string().contains("nodeInfo.nodeName"), "{err}");
}
