//! A whole unit in one process for the integration tests: the simulated cloud (CA + TLS server), a main
//! node and secondary nodes built with `aos_actors::node::Node` from `aos_config::Config`s, each node with
//! its own SoftHSM, every link real TLS over loopback TCP or the vchan ring.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aos_actors::api::sm::{InstanceSpec, RunSpec};
use aos_actors::iam::client::{client_tls, IamClient, IamServerAuth, PermissionChecker};
use aos_actors::iam::permissions::{InstanceIdent, InstanceKind, Permissions};
use aos_actors::iam::provisioner::Password;
use aos_actors::iam::server::EndpointKind;
use aos_actors::net::{ArbiterPool, LinkConfig, TcpDialer};
use aos_actors::node::{Node, NodeOptions};
use aos_actors::sm::SimulatedRunner;
use aos_config::{
    CertModuleConfig, Config, ExtendedKeyUsage, KeyAlgorithm, NodeConfig, NodeRole, Pkcs11Params,
};
use aos_pkcs11::testkit::{SoftHsm, SO_PIN};
use aos_sim::cloud::server::{CloudServer, CloudServerOptions, DEFAULT_SERVER_NAME};
use aos_sim::cloud::{CaOptions, CaPolicy, CloudCa};
use aos_transport::tls::{root_store, Policy, Role, TlsOptions};
use tokio::net::TcpListener;

pub const UNIT: &str = "unit-1";
pub const MAIN: &str = "main";
pub const SECONDARIES: [&str; 2] = ["sec-1", "sec-2"];
/// The token every node keeps its keys on.
pub const TOKEN: &str = "aoscore";
/// Upper bound for anything a test waits on; reached only when the code under test hangs.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Await `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Poll `check` every 20 ms until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The provisioning password (it becomes each token's SO PIN).
pub fn password() -> Password {
    Password::new(SO_PIN)
}

/// How secondary nodes reach the main node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// MP link over loopback TCP.
    Tcp,
    /// MP link over the vchan ring in shared memory.
    Vchan,
}

/// Knobs of a test unit.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    pub link: LinkKind,
    /// Lifetime of every certificate the cloud signs (`None`: the CA's default).
    pub cert_lifetime: Option<Duration>,
    /// Validator tick on the main node.
    pub validator_tick: Duration,
    /// How far the CA backdates `not_before` (the validator's schedule counts from it).
    pub backdate: Duration,
    /// The main node's renewal threshold (% of a certificate's lifetime); jitter is 0 when set.
    pub renewal_threshold: Option<u8>,
    /// Number of secondary nodes, named `sec-1`, `sec-2`, …
    pub secondaries: usize,
}

impl Default for UnitOptions {
    fn default() -> Self {
        UnitOptions {
            link: LinkKind::Tcp,
            cert_lifetime: None,
            validator_tick: Duration::from_secs(60),
            backdate: Duration::from_secs(60),
            renewal_threshold: None,
            secondaries: SECONDARIES.len(),
        }
    }
}

/// One node: its SoftHSM and directory (kept across restarts), its configuration, the running node.
pub struct TestNode {
    pub id: String,
    pub hsm: SoftHsm,
    pub config: Config,
    pub node: Option<Node>,
    pub runner: SimulatedRunner,
    options: NodeOptions,
}

impl TestNode {
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("the node is running")
    }

    /// Start (or restart) the node from its configuration.
    pub async fn start(&mut self) {
        let node = Node::start(&self.config, self.options.clone())
            .await
            .unwrap_or_else(|e| panic!("node {} did not start: {e}", self.id));
        self.node = Some(node);
    }

    /// Stop the node (its token, state and permission files stay).
    pub async fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.stop().await;
        }
    }

    /// Wait until the node is provisioned and serves its own certificate.
    pub async fn wait_ready(&self) {
        let mut status = self.node().local().subscribe();
        within(&format!("{} ready", self.id), async {
            while !status.borrow_and_update().has_identity() {
                if status.changed().await.is_err() {
                    panic!("{}: status channel closed", self.id);
                }
            }
        })
        .await;
    }

    /// Private keys on the node's token, by label (pkcs11-tool as the outside witness).
    pub fn private_keys(&self) -> Vec<String> {
        let pin = std::fs::read_to_string(pin_path(&self.hsm)).unwrap_or_default();
        let output = self
            .hsm
            .pkcs11_tool()
            .args(["--token-label", TOKEN, "--login", "--pin", pin.trim()])
            .args(["--list-objects", "--type", "privkey"])
            .output()
            .expect("pkcs11-tool runs");
        assert!(
            output.status.success(),
            "pkcs11-tool failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("label:"))
            .map(|label| label.trim().to_owned())
            .collect()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // SoftHSM crashes at process exit when a worker thread closes a token's last session while its
        // static destructors run; keep one handle open for the rest of the process.
        let Ok(pin) = std::fs::read_to_string(pin_path(&self.hsm)) else {
            return;
        };
        let selector = aos_pkcs11::TokenSelector::Label(TOKEN.into());
        aos_pkcs11::Token::keep_open_until_exit(
            self.hsm.module(),
            selector,
            aos_pkcs11::Pin::new(pin.trim()),
        );
    }
}

/// A unit: the cloud, the main node and the secondaries.
pub struct TestUnit {
    pub dir: tempfile::TempDir,
    pub ca: Arc<CloudCa>,
    pub cloud: CloudServer,
    pub roots: Arc<rustls::RootCertStore>,
    pub main: TestNode,
    pub secondaries: Vec<TestNode>,
    pub pool: ArbiterPool,
}

impl TestUnit {
    /// Start the cloud and the main node, then the secondaries (which need the main node's MP address).
    pub async fn start(options: UnitOptions) -> TestUnit {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let ca_options = CaOptions {
            policy: CaPolicy {
                backdate: options.backdate,
                ..CaPolicy::default()
            },
            ..CaOptions::default()
        };
        let ca = Arc::new(CloudCa::new(UNIT, ca_options).unwrap());
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.root_pem()).unwrap();
        let pool = ArbiterPool::new(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cloud = CloudServer::start(
            ca.clone(),
            listener,
            pool.clone(),
            CloudServerOptions {
                cert_lifetime: options.cert_lifetime,
                ..CloudServerOptions::default()
            },
        )
        .unwrap();
        let roots = root_store(&[ca.root_der().clone()]).unwrap();

        let mp_listen = match options.link {
            LinkKind::Tcp => "tcp://127.0.0.1:0".to_owned(),
            LinkKind::Vchan => format!("vchan://{}", dir.path().join("mp.ring").display()),
        };
        let mut config = base_config(dir.path(), MAIN, NodeRole::Main, &ca_path);
        config.cm.enabled = true;
        config.cm.cloud_addr = Some(cloud.local_addr().to_string());
        config.cm.cloud_server_name = Some(DEFAULT_SERVER_NAME.to_owned());
        config.cm.sm_listen = "127.0.0.1:0".parse().unwrap();
        config.sm.enabled = true;
        config.mp.listen = Some(mp_listen);
        if let Some(threshold) = options.renewal_threshold {
            config.renewal.threshold_percent = threshold;
            config.renewal.jitter_percent = 0;
            config.renewal.retry_interval = Duration::from_millis(500);
        }
        let mut main_options = node_options();
        main_options.validator.tick = options.validator_tick;
        let mut main = test_node(MAIN, config, &["iam", "sm", "cm"], main_options);
        main.start().await;
        let mp_addr = main.node().mp_server().unwrap().local_addr().to_string();

        let mut secondaries = Vec::new();
        for i in 1..=options.secondaries {
            let id = format!("sec-{i}");
            let id = id.as_str();
            let mut config = base_config(dir.path(), id, NodeRole::Secondary, &ca_path);
            config.mp.main_addr = Some(mp_addr.clone());
            config.sm.enabled = true;
            let mut node = test_node(id, config, &["iam", "sm", "mp"], node_options());
            node.start().await;
            secondaries.push(node);
        }
        TestUnit {
            dir,
            ca,
            cloud,
            roots,
            main,
            secondaries,
            pool,
        }
    }

    /// Every node id of the unit, the main node first.
    pub fn node_ids(&self) -> Vec<&str> {
        std::iter::once(MAIN)
            .chain(self.secondaries.iter().map(|n| n.id.as_str()))
            .collect()
    }

    pub fn secondary(&mut self, id: &str) -> &mut TestNode {
        self.secondaries
            .iter_mut()
            .find(|n| n.id == id)
            .expect("a secondary of the unit")
    }

    /// Wait until the cloud's view of the unit (through the CM) lists exactly `ids`.
    pub async fn wait_nodes(&self, ids: &[&str]) {
        let cloud = self.cloud.clone();
        let mut want: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        eventually(&format!("the cloud sees nodes {want:?}"), || {
            let (cloud, want) = (cloud.clone(), want.clone());
            async move {
                let status = cloud.unit_status().await.ok()?;
                let mut seen: Vec<_> = status.nodes.iter().map(|n| n.node_id.clone()).collect();
                seen.sort();
                (seen == want).then_some(())
            }
        })
        .await;
    }

    /// Provision the unit through the cloud the way a unit comes up: the main node first (secondaries
    /// reach it through MP links that need its certificate), then every secondary once all registered.
    /// Returns the nodes in the order the cloud provisioned them.
    pub async fn provision(&self) -> Vec<String> {
        self.wait_nodes(&[MAIN]).await;
        let mut done = within(
            "cloud-driven provisioning of the main node",
            self.cloud.provision(&password(), Some(&[MAIN])),
        )
        .await
        .expect("the cloud provisions the main node");
        self.main.wait_ready().await;
        self.wait_nodes(&[MAIN, SECONDARIES[0], SECONDARIES[1]])
            .await;
        done.extend(
            within(
                "cloud-driven provisioning of the secondaries",
                self.cloud.provision(&password(), None),
            )
            .await
            .expect("the cloud provisions the secondaries"),
        );
        for node in std::iter::once(&self.main).chain(&self.secondaries) {
            node.wait_ready().await;
        }
        done.into_iter().map(|n| n.node_id).collect()
    }

    /// A functional server's permission checker on the main node's public endpoint, verifying the main
    /// node's CA-issued `iam` certificate, once connected.
    pub async fn checker(&self) -> PermissionChecker {
        let auth = IamServerAuth::Identity {
            roots: self.roots.clone(),
            policy: Policy::roles([Role::Iam]).with_unit(UNIT).with_node(MAIN),
        };
        let client = IamClient::connect(
            &self.pool,
            Arc::new(TcpDialer::new(self.main.node().public_addr())),
            client_tls(auth, None, &TlsOptions::default()).unwrap(),
            EndpointKind::Public,
            LinkConfig::default(),
        )
        .unwrap();
        client
            .connected(PATIENCE)
            .await
            .expect("the functional server connects to the main node's IAM");
        PermissionChecker::new(client)
    }
}

/// Log to the test output, filtered by `AOS_TEST_LOG` (e.g. `AOS_TEST_LOG=debug,cryptoki=off`).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AOS_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

fn node_options() -> NodeOptions {
    NodeOptions {
        refresh_interval: Duration::from_millis(500),
        ..NodeOptions::default()
    }
}

fn test_node(id: &str, mut config: Config, modules: &[&str], options: NodeOptions) -> TestNode {
    let hsm = SoftHsm::new();
    config.node.state_file = hsm.dir().join("provisionstate");
    config.node.working_dir = hsm.dir().join("iam");
    config.cert_modules = modules.iter().map(|m| module(&hsm, m)).collect();
    let runner = SimulatedRunner::default();
    let options = NodeOptions {
        runner: Some(Arc::new(runner.clone())),
        ..options
    };
    TestNode {
        id: id.to_owned(),
        hsm,
        config,
        node: None,
        runner,
        options,
    }
}

fn pin_path(hsm: &SoftHsm) -> PathBuf {
    hsm.dir().join(format!("{TOKEN}.pin"))
}

/// A P-256 module (fast key generation) on the node's `aoscore` token, serverAuth + clientAuth.
fn module(hsm: &SoftHsm, id: &str) -> CertModuleConfig {
    let mut params = Pkcs11Params::new(hsm.library());
    params.token_label = Some(TOKEN.to_owned());
    params.user_pin_path = Some(pin_path(hsm));
    let mut module = CertModuleConfig::new(id, KeyAlgorithm::EccP256, params);
    module.extended_key_usage = vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
    module
}

/// Loopback endpoints on free ports, fast reconnects.
fn base_config(_dir: &Path, id: &str, role: NodeRole, ca: &Path) -> Config {
    let mut config = Config::new(NodeConfig::new(id, UNIT, role), ca);
    config.iam.public_listen = "127.0.0.1:0".parse().unwrap();
    config.iam.protected_listen = "127.0.0.1:0".parse().unwrap();
    config.iam.node_reconnect_interval = Duration::from_millis(300);
    config.transport.reconnect_backoff_initial = Duration::from_millis(20);
    config.transport.reconnect_backoff_max = Duration::from_millis(300);
    config.sm.reconcile_interval = Duration::from_secs(1);
    config
}

/// An instance of item `item` with `get` and `set` on functional server `vis` and nothing else.
pub fn service(item: &str) -> (InstanceSpec, Permissions) {
    let permissions: Permissions = BTreeMap::from([(
        "vis".to_owned(),
        BTreeMap::from([
            ("get".to_owned(), "r".to_owned()),
            ("set".to_owned(), "rw".to_owned()),
        ]),
    )]);
    let spec = InstanceSpec {
        ident: ident(item),
        permissions: permissions.clone(),
        run: RunSpec::Simulated,
    };
    (spec, permissions)
}

pub fn ident(item: &str) -> InstanceIdent {
    InstanceIdent {
        item_id: item.to_owned(),
        subject_id: "subject".to_owned(),
        instance: 0,
        kind: InstanceKind::Service,
    }
}

/// Make `specs` the desired instances of `node` and wait until its SM reports them all (the SM may still be
/// connecting to the CM).
pub async fn wait_desired(
    controller: &aos_actors::cm::SmController,
    node: &str,
    specs: Vec<InstanceSpec>,
) -> Vec<aos_actors::api::sm::InstanceStatus> {
    loop {
        match controller.set_desired(node, specs.clone()).await {
            Ok(statuses) if statuses.len() == specs.len() => return statuses,
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
