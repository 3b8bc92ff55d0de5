//! The whole node configuration: one TOML file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    CertModuleConfig, CmConfig, IamConfig, LoggingConfig, MetricsConfig, MpConfig, NodeConfig,
    PermissionsConfig, ProvisioningConfig, RenewalConfig, SmConfig, TransportConfig,
};

/// Default of `cert_storage`.
pub const DEFAULT_CERT_STORAGE: &str = "iam";

/// A node's configuration. Load it with [`Config::load`] or [`Config::from_str`], which also validate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// CA certificate file(s) (PEM) the node trusts: the root of trust of the unit. A string or an array.
    #[serde(with = "one_or_many")]
    pub ca_cert: Vec<PathBuf>,
    /// The cert module whose certificate IAM serves on its own TLS endpoints.
    #[serde(default = "default_cert_storage")]
    pub cert_storage: String,
    /// `[node]`.
    pub node: NodeConfig,
    /// `[iam]`.
    #[serde(default)]
    pub iam: IamConfig,
    /// `[provisioning]`.
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    /// `[permissions]`.
    #[serde(default)]
    pub permissions: PermissionsConfig,
    /// `[renewal]`.
    #[serde(default)]
    pub renewal: RenewalConfig,
    /// `[transport]`.
    #[serde(default)]
    pub transport: TransportConfig,
    /// `[logging]`.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[cm]`.
    #[serde(default)]
    pub cm: CmConfig,
    /// `[sm]`.
    #[serde(default)]
    pub sm: SmConfig,
    /// `[mp]`: the MP link between secondary nodes and the main node.
    #[serde(default)]
    pub mp: MpConfig,
    /// `[[cert_modules]]`.
    #[serde(default)]
    pub cert_modules: Vec<CertModuleConfig>,
}

// === impl Config ===

impl Config {
    /// A configuration for `node` trusting `ca_cert`, with no cert modules and defaults elsewhere. It does not
    /// validate until the module named by `cert_storage` is added.
    pub fn new(node: NodeConfig, ca_cert: impl Into<PathBuf>) -> Self {
        Self {
            ca_cert: vec![ca_cert.into()],
            cert_storage: default_cert_storage(),
            node,
            iam: IamConfig::default(),
            provisioning: ProvisioningConfig::default(),
            permissions: PermissionsConfig::default(),
            renewal: RenewalConfig::default(),
            transport: TransportConfig::default(),
            logging: LoggingConfig::default(),
            metrics: MetricsConfig::default(),
            cm: CmConfig::default(),
            sm: SmConfig::default(),
            mp: MpConfig::default(),
            cert_modules: Vec::new(),
        }
    }

    /// The cert module with this id, disabled or not.
    pub fn cert_module(&self, id: &str) -> Option<&CertModuleConfig> {
        self.cert_modules.iter().find(|m| m.id == id)
    }

    /// The modules to load: every module not `disabled`, in file order.
    pub fn enabled_cert_modules(&self) -> impl Iterator<Item = &CertModuleConfig> {
        self.cert_modules.iter().filter(|m| !m.disabled)
    }

    /// Where the permission handler persists its instances (`permissions.store_path`, else
    /// `<node.working_dir>/permissions.db`).
    pub fn permissions_store_path(&self) -> PathBuf {
        self.permissions.store_path_in(&self.node.working_dir)
    }

    /// The working directory of IAM (`node.working_dir`).
    pub fn working_dir(&self) -> &Path {
        &self.node.working_dir
    }
}

fn default_cert_storage() -> String {
    DEFAULT_CERT_STORAGE.to_owned()
}

/// Serde adapter: one path or an array of paths, always written as an array.
mod one_or_many {
    use std::fmt;
    use std::path::PathBuf;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        paths: &[PathBuf],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        paths.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<PathBuf>, D::Error> {
        deserializer.deserialize_any(PathsVisitor)
    }

    struct PathsVisitor;

    impl<'de> Visitor<'de> for PathsVisitor {
        type Value = Vec<PathBuf>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a path or an array of paths")
        }

        fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<Self::Value, E> {
            Ok(vec![PathBuf::from(path)])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut paths = Vec::new();
            while let Some(path) = seq.next_element::<PathBuf>()? {
                paths.push(path);
            }
            Ok(paths)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::test_support::{ok, MAIN};
    use crate::{KeyAlgorithm, LogFormat, NodeRole, Pkcs11Params, TeeLoginType};

    #[test]
    fn defaults_match_aoscore() {
        let config = ok(MAIN);
        assert_eq!(config.cert_storage, "iam");
        assert_eq!(
            config.node.state_file,
            PathBuf::from("/var/aos/.provisionstate")
        );
        assert_eq!(config.node.working_dir, PathBuf::from("/var/aos/iam"));
        assert_eq!(
            config.iam.public_listen,
            SocketAddr::from(([0, 0, 0, 0], 8090))
        );
        assert_eq!(
            config.iam.protected_listen,
            SocketAddr::from(([0, 0, 0, 0], 8089))
        );
        assert_eq!(config.iam.node_reconnect_interval, Duration::from_secs(10));
        assert_eq!(config.iam.main_public_addr, None);
        assert_eq!(config.cert_modules[0].max_items, 2);
        assert!(!config.cert_modules[0].self_signed);
    }

    #[test]
    fn defaults_of_the_other_sections() {
        let config = ok(MAIN);
        assert_eq!(config.provisioning.hook_timeout, Duration::from_secs(60));
        assert!(config.permissions.enabled);
        assert_eq!(
            config.permissions_store_path(),
            PathBuf::from("/var/aos/iam/permissions.db")
        );
        assert_eq!(config.permissions.limits.max_instances, 1024);
        assert_eq!(config.permissions.limits.max_servers_per_instance, 16);
        assert_eq!(config.permissions.limits.max_string_len, 256);
        assert_eq!(
            (
                config.renewal.threshold_percent,
                config.renewal.jitter_percent
            ),
            (80, 10)
        );
        assert_eq!(config.renewal.retry_interval, Duration::from_secs(60));
        assert_eq!(
            config.renewal.validation_interval,
            Duration::from_secs(86_400)
        );
        assert_eq!(config.transport.max_frame_size, 65_536);
        assert_eq!(config.transport.handshake_timeout, Duration::from_secs(10));
        assert_eq!(
            config.transport.reconnect_backoff_initial,
            Duration::from_secs(1)
        );
        assert_eq!(
            config.transport.reconnect_backoff_max,
            Duration::from_secs(30)
        );
        assert!(!config.transport.allow_tls12 && !config.transport.session_resumption);
        assert_eq!(config.logging.filter, "info,cryptoki=off");
        assert_eq!(config.logging.format, LogFormat::Text);
    }

    #[test]
    fn store_path_follows_working_dir_unless_set() {
        let text = MAIN.replace(
            "role = \"main\"",
            "role = \"main\"\nworking_dir = \"/srv/iam\"",
        );
        assert_eq!(
            ok(&text).permissions_store_path(),
            PathBuf::from("/srv/iam/permissions.db")
        );
        let text = format!("{MAIN}\n[permissions]\nstore_path = \"/data/perm.db\"\n");
        assert_eq!(
            ok(&text).permissions_store_path(),
            PathBuf::from("/data/perm.db")
        );
    }

    /// A configuration with every optional key set, so that serializing it writes every key.
    fn full_config() -> Config {
        let mut node = NodeConfig::new("main", "unit", NodeRole::Main);
        node.node_name = Some("name".into());
        node.node_type = Some("type".into());
        let mut config = Config::new(node, "/ca.pem");
        config.iam.main_public_addr = Some("main:8090".into());
        config.iam.main_protected_addr = Some("main:8089".into());
        let hook = Some(vec!["/bin/true".to_owned()]);
        config.provisioning.start = hook.clone();
        config.provisioning.finish = hook.clone();
        config.provisioning.deprovision = hook.clone();
        config.provisioning.disk_encryption = hook;
        config.permissions.store_path = Some("/p.db".into());
        config.cm.cloud_addr = Some("cloud.local:9000".into());
        config.cm.cloud_server_name = Some("cloud.local".into());
        let mut pkcs11 = Pkcs11Params::new("/lib.so");
        pkcs11.slot_id = Some(1);
        pkcs11.slot_index = Some(0);
        pkcs11.token_label = Some("l".into());
        pkcs11.token_serial = Some("s".into());
        pkcs11.user_pin_path = Some("/pin".into());
        pkcs11.uid = Some(1);
        pkcs11.gid = Some(1);
        pkcs11.tee_login_type = Some(TeeLoginType::User);
        let mut module = CertModuleConfig::new("iam", KeyAlgorithm::EccP384, pkcs11);
        module.extended_key_usage = vec![crate::ExtendedKeyUsage::ServerAuth];
        module.alternative_names = vec!["main".into()];
        config.cert_modules.push(module);
        config.mp.listen = Some("tcp://0.0.0.0:30001".into());
        config.mp.main_addr = Some("tcp://10.0.0.1:30001".into());
        config.mp.channels = crate::MpChannels {
            iam_open: Some("tcp://127.0.0.1:8090".into()),
            iam_secure: Some("tcp://127.0.0.1:8089".into()),
            cm_open: Some("tcp://127.0.0.1:8093".into()),
            cm_secure: Some("tcp://127.0.0.1:8094".into()),
        };
        config
    }

    fn collect_keys(value: &toml::Value, keys: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, inner) in table {
                    keys.insert(key.clone());
                    collect_keys(inner, keys);
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|item| collect_keys(item, keys)),
            _ => {}
        }
    }

    /// Words inside `backticks` of the reference, split at `.`, `[`, `]`, `=`, `<`, `>` and spaces.
    fn documented_words(doc: &str) -> BTreeSet<String> {
        doc.split('`')
            .skip(1)
            .step_by(2)
            .flat_map(|code| code.split(|c: char| ".[]=<> ".contains(c)))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn reference_documents_every_key() -> Result<(), Box<dyn std::error::Error>> {
        let value = toml::Value::try_from(full_config())?;
        let mut keys = BTreeSet::new();
        collect_keys(&value, &mut keys);
        assert!(
            keys.len() > 50,
            "the full config writes {} keys only",
            keys.len()
        );
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
        let words = documented_words(&doc);
        let missing: Vec<_> = keys.iter().filter(|k| !words.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "README.md does not document {missing:?}"
        );
        Ok(())
    }

    #[test]
    fn serialized_config_parses_back() -> Result<(), Box<dyn std::error::Error>> {
        let config = full_config();
        let text = toml::to_string(&config)?;
        let back: Config = toml::from_str(&text)?;
        assert_eq!(back, config);
        Ok(())
    }

    #[test]
    fn lookups() {
        let config = full_config();
        assert!(config.cert_module("iam").is_some());
        assert!(config.cert_module("sm").is_none());
        assert_eq!(config.enabled_cert_modules().count(), 1);
        assert_eq!(config.working_dir(), std::path::Path::new("/var/aos/iam"));
    }
}
