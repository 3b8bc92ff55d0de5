//! `IamCore`: a node's IAM actors started from its configuration (cert handler and modules, provisioner,
//! permission handler, validator) and the `IamService` over them. The daemon, the simulator and the
//! integration tests build nodes with it; endpoints and links are added on top.

use std::sync::Arc;

use actix::{Actor, Addr};
use aos_config::Config;
use rustls_pki_types::CertificateDer;

use super::cert_handler::CertHandler;
use super::cert_module::{CertError, NodeIdentity, TrustRoots};
use super::permissions::{PermissionError, PermissionHandler};
use super::provisioner::{NodeState, ProvisionError, Provisioner, ProvisionerOptions, StateFile};
use super::service::IamService;
use super::validator::{CertValidator, Renewer, ValidatorOptions};
use crate::api::NodeInfo;
use crate::clock::Clock;

/// Why a node's IAM could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A CA certificate file could not be read or parsed.
    #[error("CA certificate {path}: {message}")]
    CaCert {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The provisioner could not start (state file).
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// The permission store could not be opened.
    #[error(transparent)]
    Permissions(#[from] PermissionError),
    /// The trust roots are unusable.
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// Knobs for starting a core.
pub struct CoreOptions {
    /// Time source (the system clock in production).
    pub clock: Arc<dyn Clock>,
    /// Who signs renewal CSRs (the CM); `None` runs no validator (e.g. until the CM is up).
    pub renewer: Option<Arc<dyn Renewer>>,
    /// Validator timers and tick.
    pub validator: ValidatorOptions,
    /// Provisioner fault injection.
    pub provisioner: ProvisionerOptions,
}

/// A node's running IAM actors.
#[derive(Clone)]
pub struct IamCore {
    /// Unit CA roots.
    pub roots: Arc<TrustRoots>,
    /// The CA certificates (DER), for TLS configurations.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Cert handler (modules, cert-changed subscriptions).
    pub certs: Addr<CertHandler>,
    /// Provisioner.
    pub provisioner: Addr<Provisioner>,
    /// Permission handler, when enabled.
    pub permissions: Option<Addr<PermissionHandler>>,
    /// Validator, when a renewer was given.
    pub validator: Option<Addr<CertValidator>>,
    /// The request executor over all of them.
    pub service: IamService,
}

/// Read every configured CA certificate (PEM files, one or more certificates each).
pub fn load_ca_certs(config: &Config) -> Result<Vec<CertificateDer<'static>>, CoreError> {
    let mut certs = Vec::new();
    for path in &config.ca_cert {
        let err = |message: String| CoreError::CaCert {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        certs.extend(aos_pkcs11::certs::parse_pem_chain(&pem).map_err(|e| err(e.to_string()))?);
    }
    Ok(certs)
}

impl IamCore {
    /// Start the IAM actors of the node `config` describes. Must run inside an actix System.
    pub fn start(config: &Config, options: CoreOptions) -> Result<IamCore, CoreError> {
        let ca_certs = load_ca_certs(config)?;
        let roots = Arc::new(
            TrustRoots::new(&ca_certs).map_err(|reason| CertError::Chain {
                cert_type: "ca_cert".into(),
                reason,
            })?,
        );
        let node = NodeIdentity {
            unit_id: config.node.unit_id.clone(),
            node_id: config.node.id.clone(),
        };
        let modules: Vec<_> = config.enabled_cert_modules().cloned().collect();
        let certs = CertHandler::new(&modules, node, roots.clone(), options.clock.clone()).start();
        let provisioner = Provisioner::new(
            StateFile::new(&config.node.state_file),
            config.provisioning.clone(),
            certs.clone(),
            options.clock.clone(),
            options.provisioner,
        )?
        .start();
        let permissions = if config.permissions.enabled {
            Some(PermissionHandler::open(
                &config.permissions,
                config.working_dir(),
            )?)
        } else {
            None
        };
        let permission_pair = permissions.map(|handler| {
            let reader = handler.reader();
            (handler.start(), reader)
        });
        let validator = options.renewer.map(|renewer| {
            CertValidator::new(
                certs.clone(),
                options.clock.clone(),
                renewer,
                config.renewal.clone(),
                options.validator,
            )
            .start()
        });
        let info = NodeInfo {
            node_id: config.node.id.clone(),
            unit_id: config.node.unit_id.clone(),
            name: config
                .node
                .node_name
                .clone()
                .unwrap_or_else(|| config.node.id.clone()),
            node_type: config.node.node_type.clone().unwrap_or_default(),
            is_main: config.node.is_main(),
            state: NodeState::Unprovisioned,
            attrs: Default::default(),
        };
        let service = IamService::new(
            info,
            certs.clone(),
            provisioner.clone(),
            permission_pair.clone(),
        );
        Ok(IamCore {
            roots,
            ca_certs,
            certs,
            provisioner,
            permissions: permission_pair.map(|(addr, _)| addr),
            validator,
            service,
        })
    }
}

#[cfg(test)]
mod tests {
    use aos_config::{KeyAlgorithm, NodeConfig, NodeRole};

    use super::*;
    use crate::api::{ProtectedRequest, ProtectedResponse, WirePassword};
    use crate::iam::provisioner::Password;
    use crate::iam::service::Caller;
    use crate::iam::test_support::{Fixture, PASSWORD};

    fn config(fx: &Fixture) -> Config {
        let dir = fx.hsm.dir();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, fx.ca.root.pem()).unwrap();
        let mut node = NodeConfig::new("node-0", "unit-1", NodeRole::Main);
        node.state_file = dir.join("state");
        node.working_dir = dir.join("work");
        let mut config = Config::new(node, ca);
        config.cert_modules = vec![fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore")];
        config
    }

    fn options(fx: &Fixture) -> CoreOptions {
        CoreOptions {
            clock: Arc::new(fx.clock.clone()),
            renewer: None,
            validator: ValidatorOptions::default(),
            provisioner: ProvisionerOptions::default(),
        }
    }

    #[actix_rt::test]
    async fn a_core_from_config_provisions() {
        let fx = Fixture::new();
        let core = IamCore::start(&config(&fx), options(&fx)).unwrap();
        let start = ProtectedRequest::StartProvisioning {
            node_id: String::new(),
            password: WirePassword(Password::new(PASSWORD)),
        };
        assert_eq!(
            core.service
                .protected(&Caller::Anonymous, start)
                .await
                .unwrap(),
            ProtectedResponse::State(NodeState::Provisioning)
        );
        assert!(core.permissions.is_some());
        assert_eq!(core.ca_certs.len(), 1);
    }

    #[actix_rt::test]
    async fn a_broken_ca_file_is_a_clear_error() {
        let fx = Fixture::new();
        let mut config = config(&fx);
        std::fs::write(&config.ca_cert[0], "not a certificate").unwrap();
        let err = IamCore::start(&config, options(&fx)).err().unwrap();
        assert!(matches!(err, CoreError::CaCert { .. }), "{err:?}");
        config.ca_cert[0] = fx.hsm.dir().join("missing.pem");
        let err = IamCore::start(&config, options(&fx)).err().unwrap();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
