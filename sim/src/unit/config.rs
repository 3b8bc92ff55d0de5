//! The configuration of each simulated node: loopback endpoints, fast reconnects, the modules of its
//! [`KeyProfile`] on the node's token in the unit's module.

use std::path::Path;
use std::time::Duration;

use aos_config::{CertModuleConfig, Config, ExtendedKeyUsage, NodeConfig, NodeRole, Pkcs11Params};

use super::profile::{KeyProfile, ModuleSpec};

/// A node's configuration. `dir` is its own directory (state, PIN file, permission store).
pub(super) fn node_config(
    unit: &str,
    name: &str,
    main: bool,
    dir: &Path,
    ca: &Path,
    library: &Path,
    profile: KeyProfile,
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
    config.cert_modules = profile
        .modules(main)
        .iter()
        .map(|spec| module(spec, name, &dir.join(format!("{name}.pin")), library))
        .collect();
    config
}

fn loopback0() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `spec` on token `token`.
fn module(spec: &ModuleSpec, token: &str, pin: &Path, library: &Path) -> CertModuleConfig {
    let mut params = Pkcs11Params::new(library);
    params.token_label = Some(token.to_owned());
    params.user_pin_path = Some(pin.to_owned());
    let mut module = CertModuleConfig::new(spec.id, spec.algorithm, params);
    if spec.tls {
        module.extended_key_usage =
            vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
    }
    module.self_signed = spec.self_signed;
    module.max_items = spec.max_items;
    module
}
