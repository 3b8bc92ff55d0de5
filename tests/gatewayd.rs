//! Two `aos-gatewayd` processes (a main node and a secondary over TCP) on loopback, each with its own
//! SoftHSM token directory, provisioned with `aosctl`. Outside witnesses check the result: `pkcs11-tool`
//! (every private key is sensitive and never extractable), `openssl verify` (every chain leads to the CA)
//! and `openssl s_client` (the protected endpoint refuses a client without a certificate). Then SIGTERM
//! stops both with exit code 0. Also: `--check-config` on broken configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod daemons;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemons::*;

#[test]
fn two_daemons_provisioned_with_aosctl() {
    let root = tempfile::tempdir().unwrap();
    let dev = DevCa::new(root.path());
    let (ca, ca_root) = (&dev.dir, &dev.root);

    let main = NodeDir::new(root.path(), "main");
    let secondary = NodeDir::new(root.path(), "sec-1");
    let main_config = main.write_config(ca_root, "main", "");
    let main_addr = |port: u16| format!("127.0.0.1:{port}");
    let metrics = free_port();
    let main_daemon = Daemon::spawn(&main_config, &main.conf(), Some(metrics));
    let fingerprint = main_daemon.fingerprint();
    // The secondary names the main node's endpoints and pins its provisioning certificate, so it can
    // register while the main node is not provisioned either.
    let secondary_config = secondary.write_secondary_config(ca_root, "sec-1", &main, &fingerprint);
    let secondary_daemon = Daemon::spawn(&secondary_config, &secondary.conf(), None);
    wait_listening(main.public);
    assert!(http_get(metrics, "/ready").starts_with("HTTP/1.1 503"));
    // The secondary registers with the main node before the unit can be provisioned.
    main_daemon.wait_line("secondary node registered");

    // Provision both through the main node.
    let provisioned = dev.provision(main.public, &fingerprint, true);
    let nodes: Vec<&str> = provisioned
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2, "{provisioned}");
    assert!(nodes.contains(&"main") && nodes.contains(&"sec-1"));
    main_daemon.wait_line("ready: provisioned");
    secondary_daemon.wait_line("ready: provisioned");
    assert!(http_get(metrics, "/ready").starts_with("HTTP/1.1 200"));
    let scraped = http_get(metrics, "/metrics");
    assert!(scraped.contains("aos_node_ready 1"), "{scraped}");
    assert!(
        scraped.contains("aos_cert_not_after_seconds{type=\"iam\"}"),
        "{scraped}"
    );

    // State through the protected endpoint, with an operator certificate (role cm) of the unit CA.
    let operator = root.path().join("operator");
    aosctl(&[
        "ca",
        "issue",
        "--dir",
        ca.to_str().unwrap(),
        "--node",
        "operator",
        "--role",
        "cm",
        "--out",
        operator.to_str().unwrap(),
    ]);
    for node in ["main", "sec-1"] {
        let certs = aosctl(&[
            "certs",
            "list",
            "--server",
            &main_addr(main.protected),
            "--ca",
            ca.to_str().unwrap(),
            "--cert",
            operator.with_extension("pem").to_str().unwrap(),
            "--key",
            operator.with_extension("key").to_str().unwrap(),
            "--node",
            node,
        ]);
        let mut types: Vec<&str> = certs
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cert_type"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(types, ["iam", "sm"], "{node}: {certs}");
    }

    // Outside witnesses on each node's token.
    for node in [&main, &secondary] {
        let pin = std::fs::read_to_string(node.pin()).unwrap();
        let pkcs11 = |args: &[&str]| {
            let mut cmd = Command::new("pkcs11-tool");
            cmd.env("SOFTHSM2_CONF", node.conf())
                .arg("--module")
                .arg(softhsm_library())
                .args(["--token-label", "aoscore", "--login", "--pin", pin.trim()])
                .args(args);
            run(&mut cmd)
        };
        let keys =
            String::from_utf8(pkcs11(&["--list-objects", "--type", "privkey"]).stdout).unwrap();
        let access: Vec<&str> = keys
            .lines()
            .filter(|l| l.trim_start().starts_with("Access:"))
            .collect();
        assert_eq!(access.len(), 2, "one key per cert type:\n{keys}");
        for line in access {
            assert!(
                line.contains("never extractable") && line.contains("sensitive"),
                "{line}"
            );
            assert!(
                !line.contains(" extractable,") || line.contains("never extractable"),
                "{line}"
            );
        }
        for cert_type in ["iam", "sm"] {
            let der = node.dir.join(format!("{cert_type}.der"));
            pkcs11(&[
                "--read-object",
                "--type",
                "cert",
                "--label",
                cert_type,
                "--output-file",
                der.to_str().unwrap(),
            ]);
            let pem = node.dir.join(format!("{cert_type}.pem"));
            run(Command::new("openssl")
                .args(["x509", "-inform", "DER", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&pem));
            let verified = run(Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(ca_root)
                .arg("-untrusted")
                .arg(ca.join("intermediate.pem"))
                .arg(&pem));
            assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));
        }
    }

    // A client without a certificate is refused on the protected endpoint.
    // -ign_eof: keep reading after stdin ends, so the refusal TLS 1.3 sends after the client's Finished
    // (alert certificate_required) is read and reported.
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-ign_eof",
            "-connect",
            &main_addr(main.protected),
            "-CAfile",
        ])
        .arg(ca_root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&s_client.stdout) + String::from_utf8_lossy(&s_client.stderr);
    assert!(!s_client.status.success(), "s_client succeeded:\n{said}");
    assert!(said.contains("alert"), "no TLS alert:\n{said}");
    main_daemon.wait_line("no_certificate");
    let scraped = http_get(metrics, "/metrics");
    let refused = scraped
        .lines()
        .find(|l| l.starts_with("aos_handshakes_refused_total{reason=\"no_certificate\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refused >= Some(1), "{scraped}");

    // SIGTERM: both drain and exit 0 within 5 s.
    let (code, took) = secondary_daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (code, took) = main_daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn check_config_names_file_line_and_key() {
    let root = tempfile::tempdir().unwrap();
    let node = NodeDir::new(root.path(), "main");
    let config = node.write_config(Path::new("/etc/aos/ca.pem"), "main", "");
    let ok = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let broken = std::fs::read_to_string(&config)
        .unwrap()
        .replace("algorithm = \"ecc-p256\"", "algorithm = \"dsa\"");
    std::fs::write(&config, broken).unwrap();
    let bad = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("node.toml:") && said.contains("algorithm"),
        "{said}"
    );

    let missing = Command::new(GATEWAYD)
        .args(["--config", "/nonexistent/node.toml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/node.toml"));

    let usage = Command::new(GATEWAYD).arg("--bogus").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let mut node = NodeDir::new(root.path(), "main");
    // Hold the port from the start: a port found free and bound again later can be taken in between (by
    // an outgoing connection of a test running alongside).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    node.public = taken.local_addr().unwrap().port();
    let ca = tempfile::tempdir().unwrap();
    aosctl(&[
        "ca",
        "init",
        "--dir",
        ca.path().join("ca").to_str().unwrap(),
        "--unit",
        "unit-1",
    ]);
    let config = node.write_config(&ca.path().join("ca/root.pem"), "main", "");
    let output = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .env("SOFTHSM2_CONF", node.conf())
        .output()
        .unwrap();
    drop(taken);
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!("127.0.0.1:{}", node.public)),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn shipped_configurations_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "dist/config/main-node.toml",
        "dist/config/secondary-node.toml",
        "dist/quickstart/main.toml",
        "dist/quickstart/secondary.toml",
        "config/examples/main-node.toml",
        "config/examples/secondary-node.toml",
    ] {
        let output = Command::new(GATEWAYD)
            .arg("--config")
            .arg(root.join(file))
            .arg("--check-config")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_missing_pkcs11_library_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let node = NodeDir::new(root.path(), "main");
    let dev = DevCa::new(root.path());
    let config = node.write_config(&dev.root, "main", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        softhsm_library().to_str().unwrap(),
        "/nonexistent/libpkcs11.so",
    );
    std::fs::write(&config, text).unwrap();
    let output = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("/nonexistent/libpkcs11.so") && said.contains("cert module iam"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}
