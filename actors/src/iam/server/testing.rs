//! Test harness for IAM endpoints: the nodes of one unit in one process, each with its own SoftHSM, a shared
//! test CA, IAM servers on loopback ports, clients with software keys.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use aos_config::{KeyAlgorithm, PermissionLimits, ProvisioningConfig};
use aos_pkcs11::testkit::TestCa;
use aos_transport::tls::{
    root_store, Credentials, Fingerprint, PeerIdentity, Policy, Role, TlsOptions,
};
use rcgen::{ExtendedKeyUsagePurpose, SanType};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer;

use super::{EndpointKind, IamServer, IamServerConfig, LocalNode};
use crate::api::{NodeInfo, ProtectedRequest, ProtectedResponse, WirePassword};
use crate::iam::cert_handler::CertHandler;
use crate::iam::cert_module::{CertInfo, TrustRoots};
use crate::iam::client::{client_tls, IamClient, IamServerAuth, Registration, RegistrationConfig};
use crate::iam::nodes::{ForwardOptions, NodeControllerHandle};
use crate::iam::permissions::{PermissionHandler, PermissionStore};
use crate::iam::provisioner::{NodeState, Password, Provisioner, ProvisionerOptions, StateFile};
use crate::iam::service::{Caller, IamService};
use crate::iam::test_support::{Fixture, PASSWORD};
use crate::net::{ArbiterPool, LinkConfig, LinkState, TcpDialer};

/// Upper bound for anything a test waits on; reached only when the code under test hangs.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Await `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The cert types every test node has (both on token `aoscore`, P-256 for speed).
pub const CERT_TYPES: [&str; 2] = ["iam", "sm"];

/// The order certificates are applied in: `iam` last, as the CM does it. Applying `iam` makes the node
/// refresh its TLS identity, reading the token; SoftHSM's file object store can fail a key generation that
/// runs at the same time (`CKR_GENERAL_ERROR`, SoftHSMv2 issue 573), so no key is generated after it.
pub const APPLY_ORDER: [&str; 2] = ["sm", "iam"];

pub const UNIT: &str = "unit-1";

/// Fast reconnects; requests time out per request where a test wants it.
pub fn link_config() -> LinkConfig {
    LinkConfig {
        reconnect_backoff_initial: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(100),
        ..LinkConfig::default()
    }
}

pub fn password() -> WirePassword {
    WirePassword(Password::new(PASSWORD))
}

/// The CA and worker arbiters of a unit.
pub struct TestUnit {
    pub ca: Arc<TestCa>,
    pub roots: Arc<RootCertStore>,
    pub pool: ArbiterPool,
    pub forward: ForwardOptions,
}

impl TestUnit {
    pub fn new() -> TestUnit {
        let ca = Arc::new(TestCa::new(UNIT));
        let roots = root_store(&[ca.root_der()]).unwrap();
        TestUnit {
            ca,
            roots,
            pool: ArbiterPool::new(2),
            forward: ForwardOptions {
                timeout: Duration::from_secs(60),
                long_timeout: Duration::from_secs(60),
                retries: 3,
                retry_delay: Duration::from_millis(50),
            },
        }
    }

    /// A node with a fresh SoftHSM; the main node gets a node controller.
    pub async fn node(&self, node_id: &str, main: bool) -> TestNode {
        let mut fx = Fixture::new();
        fx.ca = self.ca.clone();
        fx.roots = Arc::new(TrustRoots::new(&[self.ca.root_der()]).unwrap());
        fx.node.node_id = node_id.to_owned();
        fx.node.unit_id = UNIT.to_owned();
        self.start(fx, main).await
    }

    /// Start (or restart) the IAM of the node whose SoftHSM, state and permissions `fx` holds.
    pub async fn start(&self, fx: Fixture, main: bool) -> TestNode {
        let modules: Vec<_> = CERT_TYPES
            .iter()
            .map(|t| fx.module_config(t, KeyAlgorithm::EccP256, "aoscore"))
            .collect();
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(fx.clock.clone());
        let certs =
            CertHandler::new(&modules, fx.node.clone(), fx.roots.clone(), clock.clone()).start();
        let provisioner = Provisioner::new(
            StateFile::new(fx.hsm.dir().join("state")),
            ProvisioningConfig::default(),
            certs.clone(),
            clock,
            ProvisionerOptions::default(),
        )
        .unwrap()
        .start();
        let store =
            PermissionStore::open(fx.hsm.dir().join("perm.json"), PermissionLimits::default())
                .unwrap();
        let handler = PermissionHandler::new(store);
        let reader = handler.reader();
        let info = NodeInfo {
            node_id: fx.node.node_id.clone(),
            unit_id: UNIT.into(),
            name: fx.node.node_id.clone(),
            node_type: "test".into(),
            is_main: main,
            state: NodeState::Unprovisioned,
            attrs: BTreeMap::new(),
        };
        let mut service = IamService::new(
            info,
            certs.clone(),
            provisioner,
            Some((handler.start(), reader)),
        );
        let controller = main.then(|| {
            let controller = NodeControllerHandle::start(UNIT, &fx.node.node_id, self.forward);
            service = service.clone().with_forwarder(Arc::new(controller.clone()));
            controller
        });
        let local = LocalNode::start(
            service.clone(),
            certs.clone(),
            "iam",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let config = IamServerConfig {
            public_listen: "127.0.0.1:0".parse().unwrap(),
            protected_listen: "127.0.0.1:0".parse().unwrap(),
            link: link_config(),
            tls: TlsOptions::default(),
            roots: self.roots.clone(),
        };
        let server = IamServer::start(local.clone(), controller.clone(), config, self.pool.clone())
            .await
            .unwrap();
        TestNode {
            keep: KeepTokenOpen {
                module: fx.hsm.module(),
                pin: aos_pkcs11::PinSource::from_params(&fx.params("aoscore")),
            },
            fx,
            service,
            local,
            server,
            controller,
            certs,
            roots: self.roots.clone(),
            pool: self.pool.clone(),
        }
    }

    /// Software-key client credentials issued by the unit CA for `node` with `role`.
    pub fn client_creds(&self, node: &str, role: Role) -> Credentials {
        client_creds(&self.ca, UNIT, node, role)
    }

    /// Register `node` with `main` (pinning the main node's provisioning certificate too).
    pub fn register(&self, node: &TestNode, main: &TestNode) -> Registration {
        let config = RegistrationConfig {
            main_public: Arc::new(TcpDialer::new(main.server.public_addr())),
            main_protected: Arc::new(TcpDialer::new(main.server.protected_addr())),
            roots: self.roots.clone(),
            main_node: Some(main.node_id().to_owned()),
            main_fingerprint: Some(main.server.provisioning_fingerprint()),
            link: link_config(),
            tls: TlsOptions::default(),
            retry: Duration::from_millis(100),
            switch_grace: Duration::from_millis(200),
        };
        Registration::start(node.local.clone(), config, self.pool.clone())
    }
}

/// Credentials for `node` / `role` of `unit`, issued by `ca`, with a software P-256 key.
pub fn client_creds(ca: &TestCa, unit: &str, node: &str, role: Role) -> Credentials {
    let (key, signing) = aos_transport::tls::testutil::software_key();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node} {role}"));
    let identity = PeerIdentity::new(unit, node, role).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().try_into().unwrap()));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let pem = ca.issue_with(&key, params);
    let chain = aos_pkcs11::certs::parse_pem_chain(pem.as_bytes()).unwrap();
    Credentials::with(chain, signing).unwrap()
}

/// Serial (lowercase hex, as `CertInfo::serial`) of a DER certificate.
pub fn serial_of(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()).unwrap();
    hex::encode(cert.tbs_certificate.raw_serial())
}

/// The serial of the server certificate a connected client saw.
pub async fn server_serial(client: &IamClient) -> String {
    let seen = client.connected(PATIENCE).await.unwrap();
    serial_of(seen.certificate.as_ref().unwrap())
}

/// `client` once its link is connected.
pub async fn ready(client: IamClient) -> IamClient {
    client.connected(PATIENCE).await.unwrap();
    client
}

/// Wait until the client's link is refused; the refusal as the link reports it.
pub async fn refused(client: &IamClient) -> crate::net::DisconnectReason {
    match client
        .wait_state(PATIENCE, |s| matches!(s, LinkState::Disconnected { .. }))
        .await
        .unwrap()
    {
        LinkState::Disconnected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Keeps the node's token open for the rest of the process once the node stops.
///
/// Dropping the last handle of a token closes its sessions on whichever thread drops it, often a worker
/// arbiter that is still winding down when the test binary exits; SoftHSM's static destructors then run
/// under that `C_CloseSession` and crash the process (SIGSEGV after every test passed). Leaking one handle
/// per token means no session is ever closed by a thread racing the exit.
struct KeepTokenOpen {
    module: Arc<aos_pkcs11::Module>,
    pin: Option<aos_pkcs11::PinSource>,
}

impl Drop for KeepTokenOpen {
    fn drop(&mut self) {
        let Some(Ok(pin)) = self.pin.as_ref().map(|p| p.read()) else {
            return;
        };
        let selector = aos_pkcs11::TokenSelector::Label("aoscore".into());
        aos_pkcs11::Token::keep_open_until_exit(self.module.clone(), selector, pin);
    }
}

/// One node of a test unit.
pub struct TestNode {
    // Dropped first, while the node still holds its token.
    keep: KeepTokenOpen,
    pub fx: Fixture,
    pub service: IamService,
    pub local: LocalNode,
    pub server: IamServer,
    pub controller: Option<NodeControllerHandle>,
    pub certs: Addr<CertHandler>,
    pub roots: Arc<RootCertStore>,
    pub pool: ArbiterPool,
}

impl TestNode {
    /// Stop this node's IAM (everything but its SoftHSM, state and permission files).
    pub fn into_fixture(self) -> Fixture {
        let TestNode { keep, fx, .. } = self;
        drop(keep);
        fx
    }

    pub fn node_id(&self) -> &str {
        &self.fx.node.node_id
    }

    /// A client of the public endpoint authenticating the server as `auth`.
    pub fn public_client(&self, auth: IamServerAuth) -> IamClient {
        IamClient::connect(
            &self.pool,
            Arc::new(TcpDialer::new(self.server.public_addr())),
            client_tls(auth, None, &TlsOptions::default()).unwrap(),
            EndpointKind::Public,
            link_config(),
        )
        .unwrap()
    }

    /// A public client pinning this run's provisioning certificate.
    pub fn pinned_client(&self) -> IamClient {
        self.public_client(IamServerAuth::Pinned(self.fingerprint()))
    }

    /// A public client verifying the node's CA-issued `iam` certificate.
    pub fn identity_client(&self) -> IamClient {
        self.public_client(self.identity_auth())
    }

    pub fn identity_auth(&self) -> IamServerAuth {
        IamServerAuth::Identity {
            roots: self.roots.clone(),
            policy: Policy::roles([Role::Iam])
                .with_unit(UNIT)
                .with_node(self.node_id()),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.server.provisioning_fingerprint()
    }

    /// A client of the protected endpoint presenting `creds` (or nothing).
    pub fn protected_client(&self, creds: Option<&Credentials>) -> IamClient {
        self.protected_client_with(self.identity_auth(), creds)
    }

    pub fn protected_client_with(
        &self,
        auth: IamServerAuth,
        creds: Option<&Credentials>,
    ) -> IamClient {
        IamClient::connect(
            &self.pool,
            Arc::new(TcpDialer::new(self.server.protected_addr())),
            client_tls(auth, creds, &TlsOptions::default()).unwrap(),
            EndpointKind::Protected,
            link_config(),
        )
        .unwrap()
    }

    /// Provision this node through its own service (start, a certificate per type, finish); returns the
    /// `iam` certificate.
    pub async fn provision(&self) -> CertInfo {
        let svc = &self.service;
        let anon = Caller::Anonymous;
        svc.protected(
            &anon,
            ProtectedRequest::StartProvisioning {
                node_id: String::new(),
                password: password(),
            },
        )
        .await
        .unwrap();
        let mut iam = None;
        for cert_type in APPLY_ORDER {
            let info = self.apply_new_cert(&anon, cert_type, 30).await;
            if cert_type == "iam" {
                iam = Some(info);
            }
        }
        svc.protected(
            &anon,
            ProtectedRequest::FinishProvisioning {
                node_id: String::new(),
                password: password(),
            },
        )
        .await
        .unwrap();
        self.local.refresh().await;
        iam.unwrap()
    }

    /// A new key and a certificate valid for `days` for `cert_type`, through the service as `caller`.
    pub async fn apply_new_cert(&self, caller: &Caller, cert_type: &str, days: u64) -> CertInfo {
        let ProtectedResponse::Csr(csr) = self
            .service
            .protected(
                caller,
                ProtectedRequest::CreateKey {
                    node_id: String::new(),
                    cert_type: cert_type.into(),
                    subject: String::new(),
                    password: password(),
                },
            )
            .await
            .unwrap()
        else {
            panic!("no CSR")
        };
        let ProtectedResponse::Cert(info) = self
            .service
            .protected(
                caller,
                ProtectedRequest::ApplyCert {
                    node_id: String::new(),
                    cert_type: cert_type.into(),
                    pem: self.fx.sign(&csr, days),
                },
            )
            .await
            .unwrap()
        else {
            panic!("no cert")
        };
        info
    }
}
