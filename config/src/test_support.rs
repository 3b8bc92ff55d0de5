//! Helpers for tests that check where errors point.

use crate::{Config, ConfigError};

/// Origin name used in tests; errors start with `node.toml:<line>:`.
pub(crate) const ORIGIN: &str = "node.toml";

/// A valid main node with the one module `cert_storage` needs. Tests append to it or edit it.
pub(crate) const MAIN: &str = r#"ca_cert = "/etc/aos/ca.pem"

[node]
id = "main"
unit_id = "unit-1"
role = "main"

[[cert_modules]]
id = "iam"
algorithm = "ecc"
extended_key_usage = ["server_auth", "client_auth"]

[cert_modules.pkcs11]
library = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "aoscore"
user_pin_path = "/var/aos/aoscore.pin"
"#;

/// The `mp` module a bridged secondary node needs, to append to [`MAIN`].
pub(crate) const MP_MODULE: &str = r#"
[[cert_modules]]
id = "mp"
algorithm = "ecc"

[cert_modules.pkcs11]
library = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "aoscore"
user_pin_path = "/var/aos/aoscore.pin"
"#;

/// A second module on the `aoscloud` token, to append to [`MAIN`] (becomes `cert_modules[1]`).
pub(crate) const ONLINE: &str = r#"
[[cert_modules]]
id = "online"
algorithm = "ecc"

[cert_modules.pkcs11]
library = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "aoscloud"
user_pin_path = "/var/aos/aoscloud.pin"
"#;

/// 1-based number of the first line containing `needle`.
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    match text.lines().position(|line| line.contains(needle)) {
        Some(index) => index + 1,
        None => panic!("{needle:?} is not in the test text"),
    }
}

/// Parses `text`, which must be valid.
pub(crate) fn ok(text: &str) -> Config {
    match Config::from_str(text, ORIGIN) {
        Ok(config) => config,
        Err(err) => panic!("refused: {err}\n{text}"),
    }
}

/// Parses `text`, which must be refused.
pub(crate) fn error_of(text: &str) -> ConfigError {
    match Config::from_str(text, ORIGIN) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(err) => err,
    }
}

/// Asserts that `text` is refused with `node.toml:<line of marker>:<col>: <key>: …<message>…`.
pub(crate) fn assert_error_at(text: &str, marker: &str, key: &str, message: &str) {
    let line = line_of(text, marker);
    let err = error_of(text);
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{ORIGIN}:{line}:")),
        "expected line {line}, got: {shown}"
    );
    assert!(
        shown.contains(&format!(": {key}: ")),
        "expected key {key}, got: {shown}"
    );
    assert!(
        shown.contains(message),
        "expected {message:?}, got: {shown}"
    );
    assert_eq!(err.line(), Some(line));
    assert_eq!(err.key(), Some(key));
}
