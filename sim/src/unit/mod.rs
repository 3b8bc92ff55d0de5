//! [`SimUnit`]: a whole unit in one process — the simulated cloud (CA and TLS server), a main node and
//! secondaries built with [`aos_actors::node::Node`] from their configurations, one SoftHSM token per node
//! in one shared module ([`TokenStore`]), each secondary's MP link through a cuttable [`LinkProxy`].
//!
//! Everything is the real runtime: PKCS#11 keys, rustls handshakes, sockets or the vchan ring. Only the
//! cloud, the processes (instances are [`SimulatedRunner`](aos_actors::sm::SimulatedRunner)s holding
//! their secrets) and the functional servers are simulated.

mod config;
mod error;
mod node;
mod ops;
mod profile;
mod proxy;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aos_actors::iam::provisioner::Password;
use aos_actors::net::ArbiterPool;
use aos_actors::sm::SimulatedRunner;
use aos_pkcs11::Pin;
use aos_transport::link::LinkAddr;
use aos_transport::tls::root_store;
use tokio::net::TcpListener;

use crate::cloud::server::{CloudServer, CloudServerOptions, DEFAULT_SERVER_NAME};
use crate::cloud::{CaOptions, CaPolicy, CloudCa};
use crate::scenario::{node_name, LinkKind};
use crate::tokens::TokenStore;

pub use error::UnitError;
pub use node::{CertView, SimNode};
pub use ops::{service_ident, service_spec, PATIENCE};
pub use profile::{KeyProfile, ModuleSpec};
pub use proxy::LinkProxy;

/// The unit id of simulated units.
pub const UNIT_ID: &str = "sim-unit";
/// The provisioning password of simulated units (each token's SO PIN).
pub const PASSWORD: &str = "sim-provisioning-1234";

/// How to build a unit.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// Nodes (one main, the rest secondaries); at least 1.
    pub nodes: usize,
    /// How secondaries reach the main node.
    pub link: LinkKind,
    /// Lifetime of every certificate the cloud signs; `None`: the CA's default.
    pub cert_lifetime: Option<Duration>,
    /// Worker threads per node for its links.
    pub workers: usize,
    /// Where the unit keeps its files; `None`: a temporary directory removed at the end.
    pub dir: Option<PathBuf>,
    /// The certificate modules and key algorithms of every node.
    pub keys: KeyProfile,
}

impl Default for UnitOptions {
    fn default() -> Self {
        UnitOptions {
            nodes: 3,
            link: LinkKind::Tcp,
            cert_lifetime: None,
            workers: 1,
            dir: None,
            keys: KeyProfile::default(),
        }
    }
}

/// A running unit.
pub struct SimUnit {
    /// The cloud's CA.
    pub ca: Arc<CloudCa>,
    /// The cloud's server (the CM's peer).
    pub cloud: CloudServer,
    /// The unit's CA roots (what a functional server trusts).
    pub roots: Arc<rustls::RootCertStore>,
    /// The nodes; index 0 is the main node.
    pub nodes: Vec<SimNode>,
    /// The unit's SoftHSM.
    pub tokens: TokenStore,
    /// Worker threads of the simulator's own clients.
    pub pool: ArbiterPool,
    options: UnitOptions,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

// === impl SimUnit ===

impl SimUnit {
    /// Build and start the unit: tokens, cloud, the main node, then the secondaries (each through its
    /// proxy to the main node's MP server). Must run inside an actix system. Nothing is provisioned yet.
    pub async fn start(options: UnitOptions) -> Result<SimUnit, UnitError> {
        if options.nodes == 0 {
            return Err(UnitError::NoNodes);
        }
        let (temp, dir) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| UnitError::io(dir, e))?;
                (None, dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("aos-sim-")
                    .tempdir()
                    .map_err(|e| UnitError::io(Path::new("/tmp"), e))?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let tokens = TokenStore::create(&dir.join("softhsm"))?;
        let password = Pin::new(PASSWORD);
        for index in 0..options.nodes {
            tokens.prepare(&node_name(index), &password)?;
        }
        let ca_options = CaOptions {
            policy: CaPolicy {
                backdate: Duration::from_secs(1),
                ..CaPolicy::default()
            },
            ..CaOptions::default()
        };
        let ca = Arc::new(CloudCa::new(UNIT_ID, ca_options)?);
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.root_pem()).map_err(|e| UnitError::io(&ca_path, e))?;
        let pool = ArbiterPool::new(2);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| UnitError::io(Path::new("127.0.0.1:0"), e))?;
        let cloud = CloudServer::start(
            ca.clone(),
            listener,
            pool.clone(),
            CloudServerOptions {
                cert_lifetime: options.cert_lifetime,
                ..CloudServerOptions::default()
            },
        )?;
        let roots = root_store(&[ca.root_der().clone()])?;
        let mut unit = SimUnit {
            ca,
            cloud,
            roots,
            nodes: Vec::with_capacity(options.nodes),
            tokens,
            pool,
            options,
            dir,
            _temp: temp,
        };
        unit.start_main(&ca_path).await?;
        for index in 1..unit.options.nodes {
            unit.start_secondary(index, &ca_path).await?;
        }
        Ok(unit)
    }

    /// The directory of node `name`.
    fn node_dir(&self, name: &str) -> Result<PathBuf, UnitError> {
        let dir = self.dir.join("nodes").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| UnitError::io(&dir, e))?;
        Ok(dir)
    }

    /// A name for in-process vchan rings unique to this unit.
    fn ring_name(&self, what: &str) -> String {
        let tag: String = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("aos-sim-{tag}-{what}")
    }

    async fn start_main(&mut self, ca: &Path) -> Result<(), UnitError> {
        let name = node_name(0);
        let dir = self.node_dir(&name)?;
        let mut config = config::node_config(
            UNIT_ID,
            &name,
            true,
            &dir,
            ca,
            &self.tokens.library(),
            self.options.keys,
        );
        config.cm.enabled = true;
        config.cm.cloud_addr = Some(self.cloud.local_addr().to_string());
        config.cm.cloud_server_name = Some(DEFAULT_SERVER_NAME.to_owned());
        config.cm.sm_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.mp.listen = Some(match self.options.link {
            LinkKind::Tcp => "tcp://127.0.0.1:0".to_owned(),
            LinkKind::Unix => format!("unix://{}", dir.join("mp.sock").display()),
            LinkKind::Vchan => format!("vchan-mem://{}", self.ring_name("mp")),
        });
        let runner = SimulatedRunner::default();
        // The main node carries every secondary's MP link: give it the machine's cores.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut options = node::node_options(&runner, self.options.workers.max(cores));
        if let Some(lifetime) = self.options.cert_lifetime {
            // Short certificates: renew at half their life, check often, retry soon.
            config.renewal.threshold_percent = 50;
            config.renewal.jitter_percent = 0;
            config.renewal.retry_interval = (lifetime / 10).max(Duration::from_millis(200));
            options.validator.tick = Duration::from_millis(200);
        }
        let main = SimNode {
            index: 0,
            name: name.clone(),
            config,
            runner,
            proxy: None,
            cert_types: self.options.keys.issued_types(true),
            node: RefCell::new(None),
            options,
            pin_path: dir.join(format!("{name}.pin")),
        };
        main.start().await.map_err(|e| UnitError::node(&name, e))?;
        // Keep the ports a restart must bind again.
        let mut main = main;
        let bound = main.with_node(|node| {
            (
                node.public_addr(),
                node.protected_addr(),
                node.cm()
                    .and_then(|cm| cm.sm_controller())
                    .map(|sm| sm.local_addr()),
                node.mp_server().map(|mp| mp.local_addr().to_string()),
            )
        });
        if let Some((public, protected, sm, mp)) = bound {
            main.config.iam.public_listen = public;
            main.config.iam.protected_listen = protected;
            if let Some(sm) = sm {
                main.config.cm.sm_listen = sm;
            }
            if mp.is_some() {
                main.config.mp.listen = mp;
            }
        }
        self.nodes.push(main);
        Ok(())
    }

    /// The main node's MP address.
    fn mp_addr(&self) -> Result<LinkAddr, UnitError> {
        let listen = self.nodes[0].config.mp.listen.clone().unwrap_or_default();
        listen.parse().map_err(|_| UnitError::Link(listen))
    }

    async fn start_secondary(&mut self, index: usize, ca: &Path) -> Result<(), UnitError> {
        let name = node_name(index);
        let dir = self.node_dir(&name)?;
        let listen = match self.options.link {
            LinkKind::Tcp => LinkAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            LinkKind::Unix => LinkAddr::Unix(dir.join("mp-proxy.sock")),
            LinkKind::Vchan => LinkAddr::VchanMem(self.ring_name(&format!("{name}-proxy"))),
        };
        let proxy = LinkProxy::start(&listen, self.mp_addr()?)
            .await
            .map_err(|e| UnitError::Link(e.to_string()))?;
        let mut config = config::node_config(
            UNIT_ID,
            &name,
            false,
            &dir,
            ca,
            &self.tokens.library(),
            self.options.keys,
        );
        config.mp.main_addr = Some(proxy.local_addr().to_string());
        let runner = SimulatedRunner::default();
        let options = node::node_options(&runner, self.options.workers);
        let node = SimNode {
            index,
            name: name.clone(),
            config,
            runner,
            proxy: Some(proxy),
            cert_types: self.options.keys.issued_types(false),
            node: RefCell::new(None),
            options,
            pin_path: dir.join(format!("{name}.pin")),
        };
        node.start().await.map_err(|e| UnitError::node(&name, e))?;
        let mut node = node;
        if let Some((public, protected)) = node.with_node(|n| (n.public_addr(), n.protected_addr()))
        {
            node.config.iam.public_listen = public;
            node.config.iam.protected_listen = protected;
        }
        self.nodes.push(node);
        Ok(())
    }

    /// The provisioning password.
    pub fn password(&self) -> Password {
        Password::new(PASSWORD)
    }

    /// The options it was built with.
    pub fn options(&self) -> &UnitOptions {
        &self.options
    }

    /// Stop every node (secondaries first), keeping each token open until the process exits: SoftHSM
    /// crashes at exit when a worker thread closes a token's last session while its destructors run.
    pub async fn stop(&self) {
        for node in self.nodes.iter().rev() {
            node.stop().await;
        }
        for node in &self.nodes {
            if let Some(pin) = node.user_pin() {
                let selector = aos_pkcs11::TokenSelector::Label(node.name.clone());
                aos_pkcs11::Token::keep_open_until_exit(
                    self.tokens.module().clone(),
                    selector,
                    pin,
                );
            }
        }
        self.cloud.stop().await;
    }
}

impl std::fmt::Debug for SimUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUnit")
            .field("dir", &self.dir)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
