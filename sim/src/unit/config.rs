//! The configuration of each simulated node: loopback endpoints, fast reconnects, P-256 modules on the
//! node's token in the unit's module.

use std::path::Path;
use std::time::Duration;

use aos_config::{
    CertModuleConfig, Config, ExtendedKeyUsage, KeyAlgorithm, NodeConfig, NodeRole, Pkcs11Params,
};

/// The cert types of the main node (`iam` last, the order renewals apply them).
pub const MAIN_CERTS: [&str; 3] = ["cm", "sm", "iam"];
/// The cert types of a secondary node.
pub const SECONDARY_CERTS: [&str; 3] = ["mp", "sm", "iam"];

/// A node's configuration. `dir` is its own directory (state, PIN file, permission store).
pub(super) fn node_config(
    unit: &str,
    name: &str,
    main: bool,
    dir: &Path,
    ca: &Path,
    library: &Path,
) -> Config {
    let role = if main {
        NodeRole::Main
    } else {
        NodeRole::Secondary
    };
    let mut config = Config::new(NodeConfig::new(name, unit, role), ca);
    config.node.state_file = dir.join("provisionstate");
    config.node.working_dir = dir.join("iam");
    config.iam.public_listen = loopback0();
    config.iam.protected_listen = loopback0();
    config.iam.node_reconnect_interval = Duration::from_millis(300);
    config.transport.reconnect_backoff_initial = Duration::from_millis(20);
    config.transport.reconnect_backoff_max = Duration::from_millis(300);
    config.sm.reconcile_interval = Duration::from_secs(1);
    config.sm.enabled = true;
    let types = if main { MAIN_CERTS } else { SECONDARY_CERTS };
    config.cert_modules = types
        .iter()
        .map(|id| module(id, name, &dir.join(format!("{name}.pin")), library))
        .collect();
    config
}

fn loopback0() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A P-256 module (fast key generation) on token `token`, serverAuth + clientAuth.
fn module(id: &str, token: &str, pin: &Path, library: &Path) -> CertModuleConfig {
    let mut params = Pkcs11Params::new(library);
    params.token_label = Some(token.to_owned());
    params.user_pin_path = Some(pin.to_owned());
    let mut module = CertModuleConfig::new(id, KeyAlgorithm::EccP256, params);
    module.extended_key_usage = vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
    module
}
