//! The `aosctl` binary without a node: help and its reference, exit codes, the offline commands, an
//! unreachable server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The names in the `Commands:` section of a help text.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_in_help_is_in_the_reference() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/aosctl.md")).unwrap();
    let top = aosctl_sync(&["--help"]);
    assert!(top.status.success());
    let names = commands(&String::from_utf8_lossy(&top.stdout));
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let help = aosctl_sync(&[name.as_str(), "--help"]);
        assert!(help.status.success(), "{name} --help");
        let subs = commands(&String::from_utf8_lossy(&help.stdout));
        if subs.is_empty() {
            assert!(
                doc.contains(&format!("### aosctl {name}\n")),
                "{name} is not documented"
            );
        }
        for sub in subs {
            let heading = format!("### aosctl {name} {sub}\n");
            assert!(
                doc.contains(&heading),
                "`aosctl {name} {sub}` is not documented"
            );
        }
    }
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    assert_eq!(aosctl_sync(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(aosctl_sync(&["provision"]).status.code(), Some(2));
    // Neither --pin nor --ca: nothing to authenticate the server with.
    let out = aosctl_sync(&["nodes", "list", "--server", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--pin"), "{}", stderr(&out));
    // No password file and no terminal to prompt on.
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca(dir.path());
    let out = aosctl_sync(&[
        "provision",
        "--server",
        "127.0.0.1:9",
        "--pin",
        &"ab".repeat(32),
        "--ca",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
    let out = aosctl_sync(&["check", "--config", "/nonexistent/node.toml"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unreachable_server_times_out_naming_its_address() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = aosctl_sync(&[
        "nodes",
        "list",
        "--server",
        &addr,
        "--pin",
        &"ab".repeat(32),
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("timed out") && message.contains(&addr),
        "{message}"
    );
}

#[test]
fn the_shipped_aoscore_example_imports_to_a_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("node.toml");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/aoscore-iam.json"
    );
    let run = aosctl_sync(&["config", "import", fixture, "-o", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("note: identifier: dropped"),
        "{}",
        stderr(&run)
    );
    let config = aos_config::Config::load(&out).unwrap();
    assert_eq!(config.cert_modules.len(), 6);
    assert_eq!(config.node.id, "main");
    // Never over an existing file.
    let again = aosctl_sync(&["config", "import", fixture, "-o", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));

    // An unknown plugin is an error naming the key.
    let text = std::fs::read_to_string(fixture)
        .unwrap()
        .replacen("pkcs11module", "tpmmodule", 1);
    let bad = file(dir.path(), "bad.json", &text);
    let run = aosctl_sync(&["config", "import", bad.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("certModules[0].plugin"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn ca_init_and_issue_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca(dir.path());
    let prefix = dir.path().join("op");
    let issued = json(&aosctl_sync(&[
        "ca",
        "issue",
        "--dir",
        ca.to_str().unwrap(),
        "--node",
        "op",
        "--role",
        "sm",
        "--out",
        prefix.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(issued["identity"], format!("urn:aos:{UNIT}:op:sm"));
    assert!(dir.path().join("op.pem").exists() && dir.path().join("op.key").exists());
    let table = aosctl_sync(&[
        "ca",
        "init",
        "--dir",
        dir.path().join("ca2").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&table.stdout).starts_with("UNIT"));
}
