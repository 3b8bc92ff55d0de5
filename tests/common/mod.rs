//! Shared by the aosctl integration tests: running the built `aosctl`, and nodes started in this process
//! with `aos_actors::node::Node` (a private SoftHSM each, real loopback TLS endpoints).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use aos_actors::iam::server::EndpointKind;
use aos_actors::net::{ArbiterPool, LinkConfig, TcpDialer};
use aos_actors::node::{Node, NodeOptions};
use aos_config::{
    CertModuleConfig, Config, ExtendedKeyUsage, KeyAlgorithm, NodeConfig, NodeRole, Pkcs11Params,
};
use aos_pkcs11::testkit::SoftHsm;
use aos_transport::tls::{root_store, TlsOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Upper bound for anything a test waits on; reached only when the code under test hangs.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The unit of every test CA.
pub const UNIT: &str = "unit-1";

/// Run the built `aosctl` with `args` (off the actix thread, which serves the in-process nodes).
pub async fn aosctl(args: Vec<String>) -> Output {
    actix_rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aosctl"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run aosctl")
    })
    .await
    .expect("aosctl thread")
}

/// Run `aosctl` synchronously (for tests without an in-process node).
pub fn aosctl_sync(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aosctl"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run aosctl")
}

/// Its stdout as JSON, after checking it exited 0.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "aosctl failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("aosctl --json printed JSON")
}

/// Its stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `args` as owned strings.
pub fn args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// A development CA made with `aosctl ca init` in `dir/ca`; returns its directory.
pub fn dev_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("ca");
    let out = aosctl_sync(&[
        "ca",
        "init",
        "--dir",
        ca.to_str().unwrap(),
        "--unit",
        UNIT,
        "--json",
    ]);
    json(&out);
    ca
}

/// A file holding `text` in `dir`.
pub fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// One node built with `aos_actors::node::Node`: cert types `iam` and `sm` (P-256) on token `aoscore` of a
/// private SoftHSM, IAM endpoints on loopback ports.
pub struct TestNode {
    pub node_id: String,
    pub hsm: SoftHsm,
    pub node: Node,
}

impl TestNode {
    /// Start a node trusting the CA in `ca_dir`: the main node, or (with `main`) a secondary that registers
    /// with it, pinning its provisioning certificate so that it can while the main node is unprovisioned.
    pub async fn start(node_id: &str, main: Option<&TestNode>, ca_dir: &Path) -> TestNode {
        let hsm = SoftHsm::new();
        let role = if main.is_some() {
            NodeRole::Secondary
        } else {
            NodeRole::Main
        };
        let mut config = Config::new(
            NodeConfig::new(node_id, UNIT, role),
            ca_dir.join("root.pem"),
        );
        config.node.state_file = hsm.dir().join("state");
        config.node.working_dir = hsm.dir().join("work");
        config.iam.public_listen = "127.0.0.1:0".parse().unwrap();
        config.iam.protected_listen = "127.0.0.1:0".parse().unwrap();
        config.iam.node_reconnect_interval = Duration::from_millis(100);
        if let Some(main) = main {
            config.iam.main_public_addr = Some(main.public());
            config.iam.main_protected_addr = Some(main.protected());
            config.iam.main_fingerprint = Some(main.pin());
        }
        config.cert_modules = ["iam", "sm"]
            .into_iter()
            .map(|id| {
                let mut params = Pkcs11Params::new(hsm.library());
                params.token_label = Some("aoscore".into());
                params.user_pin_path = Some(hsm.dir().join("aoscore.pin"));
                let mut module = CertModuleConfig::new(id, KeyAlgorithm::EccP256, params);
                module.extended_key_usage =
                    vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
                module
            })
            .collect();
        let node = Node::start(&config, NodeOptions::default()).await.unwrap();
        if let Some(registration) = node.registration() {
            registration
                .registered(EndpointKind::Public, PATIENCE)
                .await
                .unwrap();
        }
        TestNode {
            node_id: node_id.into(),
            hsm,
            node,
        }
    }

    /// `host:port` of the public endpoint.
    pub fn public(&self) -> String {
        self.node.public_addr().to_string()
    }

    /// `host:port` of the protected endpoint.
    pub fn protected(&self) -> String {
        self.node.protected_addr().to_string()
    }

    /// The provisioning certificate's fingerprint, as the node logs it.
    pub fn pin(&self) -> String {
        self.node.provisioning_fingerprint().to_string()
    }

    /// Keep the node's tokens open until the process exits: SoftHSM crashes when its last session closes on
    /// a worker thread racing the test binary's exit (see the actors crate's IAM test harness).
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

/// Register an instance of `climate` with permissions on `vis` at `node`'s protected endpoint, as an SM with
/// the certificate `cert`/`key` would; returns its secret.
pub async fn register_instance(
    node: &TestNode,
    ca_dir: &Path,
    cert: &Path,
    key: &Path,
    pool: &ArbiterPool,
) -> String {
    use aos_actors::api::{ProtectedRequest, ProtectedResponse, WireSecret};
    use aos_actors::iam::client::{client_tls, IamClient, IamServerAuth};
    use aos_actors::iam::permissions::{InstanceIdent, InstanceKind};
    use aos_transport::tls::{Credentials, Policy, Role};

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let der = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let signing = aos_transport::tls::crypto_provider()
        .key_provider
        .load_private_key(der)
        .unwrap();
    let credentials = Credentials::with(chain, signing).unwrap();
    let root: CertificateDer<'static> =
        CertificateDer::from_pem_file(ca_dir.join("root.pem")).unwrap();
    let auth = IamServerAuth::Identity {
        roots: root_store(&[root]).unwrap(),
        policy: Policy::roles([Role::Iam]),
    };
    let client = IamClient::connect(
        pool,
        Arc::new(TcpDialer::new(node.node.protected_addr())),
        client_tls(auth, Some(&credentials), &TlsOptions::default()).unwrap(),
        EndpointKind::Protected,
        LinkConfig::default(),
    )
    .unwrap();
    client.connected(PATIENCE).await.unwrap();
    let permissions = BTreeMap::from([(
        "vis".to_owned(),
        BTreeMap::from([
            ("get".to_owned(), "r".to_owned()),
            ("set".to_owned(), "rw".to_owned()),
        ]),
    )]);
    let answer = client
        .protected(ProtectedRequest::RegisterInstance {
            instance: InstanceIdent {
                item_id: "climate".into(),
                subject_id: "owner".into(),
                instance: 1,
                kind: InstanceKind::Service,
            },
            permissions,
        })
        .await
        .unwrap();
    client.close().await;
    match answer {
        ProtectedResponse::Secret(WireSecret(secret)) => secret.expose().to_owned(),
        other => panic!("no secret: {other:?}"),
    }
}
