//! The cloud server driving a real node end to end: SoftHSM tokens, IAM's actors and `IamService`, the CM
//! with its cloud link, real TLS over loopback TCP, and the unit CA. Each certificate is checked with
//! rustls-webpki against the CA root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Context, Handler};
use aos_actors::api::cloud::{CloudFault, CsrRequest};
use aos_actors::api::{NodeInfo, PublicRequest, PublicResponse};
use aos_actors::clock::{Clock, ManualClock};
use aos_actors::cm::{
    CertCredentials, CloudCallError, CloudConnection, CloudEndpoint, CloudLinkOptions, Cm,
    CmOptions, CmParts, LocalIam,
};
use aos_actors::iam::cert_handler::{CertChanged, CertHandler, ForType, SubscribeCertChanged};
use aos_actors::iam::cert_module::{self, CertInfo, NodeIdentity, TrustRoots};
use aos_actors::iam::permissions::{PermissionHandler, PermissionStore};
use aos_actors::iam::provisioner::{
    NodeState, Password, Provisioner, ProvisionerOptions, StateFile,
};
use aos_actors::iam::service::IamService;
use aos_actors::iam::validator::{
    CertValidator, RenewDue, RenewError, RenewalRequest, Renewer, ValidateNow, ValidatorOptions,
};
use aos_actors::net::{ArbiterPool, LinkConfig};
use aos_config::{
    CertModuleConfig, ExtendedKeyUsage, KeyAlgorithm, PermissionLimits, Pkcs11Params,
    ProvisioningConfig, RenewalConfig,
};
use aos_pkcs11::testkit::{SoftHsm, SO_PIN};
use aos_transport::tls::{
    client_config, connect, root_store, Credentials, PeerIdentity, RefusalReason, Role, ServerAuth,
    TlsOptions,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::*;
use crate::cloud::{CaOptions, CaPolicy};

const UNIT: &str = "unit-1";
const NODE: &str = "main";
const PATIENCE: Duration = Duration::from_secs(60);
const TYPES: [&str; 4] = ["online", "iam", "sm", "cm"];

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn password() -> Password {
    Password::new(SO_PIN)
}

/// Records the order in which current certificates change.
struct Seen(Arc<Mutex<Vec<String>>>);

impl Actor for Seen {
    type Context = Context<Self>;
}

impl Handler<CertChanged> for Seen {
    type Result = ();

    fn handle(&mut self, msg: CertChanged, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg.info.cert_type);
    }
}

/// A unit: the CA (on a manual clock), the cloud server, node `main` (SoftHSM tokens, IAM actors), its CM.
struct Unit {
    clock: ManualClock,
    ca: Arc<crate::cloud::CloudCa>,
    cloud: CloudServer,
    /// Keeps the tokens alive for the test.
    _hsm: SoftHsm,
    certs: Addr<CertHandler>,
    service: IamService,
    cm: Cm,
    changes: Arc<Mutex<Vec<String>>>,
    /// Keeps the link arbiters alive for the test.
    _pool: ArbiterPool,
}

impl Unit {
    async fn start(cert_lifetime: Option<Duration>, backdate: Duration) -> Unit {
        Unit::with_policy(
            cert_lifetime,
            CaPolicy {
                backdate,
                ..CaPolicy::default()
            },
        )
        .await
    }

    async fn with_policy(cert_lifetime: Option<Duration>, policy: CaPolicy) -> Unit {
        let clock = ManualClock::starting_now();
        let ca = Arc::new(
            crate::cloud::CloudCa::new(
                UNIT,
                CaOptions {
                    clock: Arc::new(clock.clone()),
                    policy,
                    ..CaOptions::default()
                },
            )
            .unwrap(),
        );
        let pool = ArbiterPool::new(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cloud = CloudServer::start(
            ca.clone(),
            listener,
            pool.clone(),
            CloudServerOptions {
                cert_lifetime,
                ..CloudServerOptions::default()
            },
        )
        .unwrap();

        let hsm = SoftHsm::new();
        let module = |id: &str, token: &str, ekus: bool| {
            let mut params = Pkcs11Params::new(hsm.library());
            params.token_label = Some(token.to_owned());
            params.user_pin_path = Some(hsm.dir().join(format!("{token}.pin")));
            let mut config = CertModuleConfig::new(id, KeyAlgorithm::EccP256, params);
            if ekus {
                config.extended_key_usage =
                    vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
            }
            config
        };
        let modules = vec![
            module("online", "aoscloud", false),
            module("iam", "aoscore", true),
            module("sm", "aoscore", true),
            module("cm", "aoscore", true),
        ];
        let clock_arc: Arc<dyn Clock> = Arc::new(clock.clone());
        let roots = Arc::new(TrustRoots::new(&[ca.root_der().clone()]).unwrap());
        let identity = NodeIdentity {
            unit_id: UNIT.into(),
            node_id: NODE.into(),
        };
        let certs = CertHandler::new(&modules, identity, roots, clock_arc.clone()).start();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = Seen(changes.clone()).start();
        for cert_type in TYPES {
            certs
                .send(SubscribeCertChanged {
                    cert_type: cert_type.into(),
                    subscriber: seen.clone().recipient(),
                })
                .await
                .unwrap()
                .unwrap();
        }
        let provisioner = Provisioner::new(
            StateFile::new(hsm.dir().join("provisionstate")),
            ProvisioningConfig::default(),
            certs.clone(),
            clock_arc,
            ProvisionerOptions::default(),
        )
        .unwrap()
        .start();
        let permissions = PermissionHandler::new(
            PermissionStore::open(hsm.dir().join("perm.json"), PermissionLimits::default())
                .unwrap(),
        );
        let reader = permissions.reader();
        let info = NodeInfo {
            node_id: NODE.into(),
            unit_id: UNIT.into(),
            name: NODE.into(),
            node_type: "test".into(),
            is_main: true,
            state: NodeState::Unprovisioned,
            attrs: BTreeMap::new(),
        };
        let service = IamService::new(
            info,
            certs.clone(),
            provisioner,
            Some((permissions.start(), reader)),
        );

        let credentials = Credentials::new();
        CertCredentials::new(certs.clone(), "cm", credentials.clone()).start();
        let parts = CmParts {
            unit_id: UNIT.into(),
            node_id: NODE.into(),
            iam: Arc::new(LocalIam::new(service.clone(), UNIT, Role::Cm).unwrap()),
            credentials,
            roots: root_store(&[ca.root_der().clone()]).unwrap(),
            pool: pool.clone(),
        };
        let options = CmOptions {
            cloud: Some(
                CloudEndpoint::tcp(&cloud.local_addr().to_string(), Some(DEFAULT_SERVER_NAME))
                    .unwrap(),
            ),
            cloud_link: CloudLinkOptions {
                link: LinkConfig {
                    reconnect_backoff_initial: Duration::from_millis(20),
                    reconnect_backoff_max: Duration::from_millis(200),
                    ..LinkConfig::default()
                },
                drain_grace: Duration::from_millis(50),
                ..CloudLinkOptions::default()
            },
            ..CmOptions::default()
        };
        let cm = Cm::start(parts, options).await.unwrap();
        Unit {
            clock,
            ca,
            cloud,
            _hsm: hsm,
            certs,
            service,
            cm,
            changes,
            _pool: pool,
        }
    }

    /// Wait until the cloud's newest CM connection satisfies `ready`.
    async fn cloud_sees(&self, what: &str, ready: impl Fn(&CmConnection) -> bool) -> CmConnection {
        let connections = within(what, self.cloud.wait_for(|c| c.last().is_some_and(&ready))).await;
        connections.last().cloned().unwrap()
    }

    /// The current certificate of `cert_type` and its chain.
    async fn current(&self, cert_type: &str) -> (CertInfo, Vec<CertificateDer<'static>>) {
        let info = self
            .certs
            .send(ForType::new(
                cert_type,
                cert_module::GetCert {
                    issuer: Vec::new(),
                    serial: String::new(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        let (_, chain) = self
            .certs
            .send(ForType::new(
                cert_type,
                cert_module::GetTokenKey {
                    serial: info.serial.clone(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        (info, chain)
    }

    /// The chain of the current certificate of `cert_type` verifies to the CA root at `at`, for client and
    /// server authentication, and names node `main` with role `cert_type`.
    async fn verifies(&self, cert_type: &str, at: SystemTime) -> CertInfo {
        let (info, chain) = self.current(cert_type).await;
        let anchor = webpki::anchor_from_trusted_cert(self.ca.root_der()).unwrap();
        let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
        let usages = if cert_type == "online" {
            vec![webpki::KeyUsage::client_auth()]
        } else {
            vec![
                webpki::KeyUsage::client_auth(),
                webpki::KeyUsage::server_auth(),
            ]
        };
        for usage in usages {
            leaf.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor),
                &chain[1..],
                UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap()),
                usage,
                None,
                None,
            )
            .unwrap_or_else(|e| panic!("{cert_type}: {e:?}"));
        }
        let identity = PeerIdentity::from_certificate(&chain[0]).unwrap();
        assert_eq!(identity.uri(), format!("urn:aos:{UNIT}:{NODE}:{cert_type}"));
        info
    }

    async fn node_state(&self) -> NodeState {
        match self
            .service
            .public(PublicRequest::GetCurrentNodeInfo)
            .await
            .unwrap()
        {
            PublicResponse::NodeInfo(info) => info.state,
            other => panic!("{other:?}"),
        }
    }

    async fn provision(&self) -> Vec<ProvisionedNode> {
        within("the CM to connect", self.cloud.wait_for(|c| !c.is_empty())).await;
        within("provisioning", self.cloud.provision(&password(), None))
            .await
            .unwrap()
    }
}

fn cm_identity() -> PeerIdentity {
    PeerIdentity::new(UNIT, NODE, Role::Cm).unwrap()
}

/// A CSR made outside the node, with a software key, for `node` and `role`.
fn foreign_csr(node: &str, role: &str) -> String {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        format!("urn:aos:{UNIT}:{node}:{role}").try_into().unwrap(),
    )];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[actix_rt::test]
async fn the_cloud_provisions_a_node_through_its_cm_and_every_certificate_verifies_to_the_ca() {
    let unit = Unit::start(None, Duration::from_secs(60)).await;
    let first = unit
        .cloud_sees("an unauthenticated CM", |c| c.peer.is_none())
        .await;
    assert_eq!(first.client_serial, None);
    assert_eq!(unit.node_state().await, NodeState::Unprovisioned);

    let report = unit.provision().await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].node_id, NODE);
    let applied: Vec<&str> = report[0]
        .certs
        .iter()
        .map(|c| c.cert_type.as_str())
        .collect();
    assert_eq!(applied.len(), 4);
    assert_eq!(
        applied.last(),
        Some(&"iam"),
        "iam is applied last: {applied:?}"
    );
    for t in TYPES {
        assert!(applied.contains(&t), "{t} missing from {applied:?}");
    }
    // The node's own announcements of new certificates come in the same order.
    assert_eq!(*unit.changes.lock().unwrap(), applied);
    assert_eq!(unit.node_state().await, NodeState::Provisioned);

    // Every cert type holds a cloud-signed certificate that verifies to the CA root.
    let now = unit.clock.now();
    for (t, applied) in TYPES.iter().zip(TYPES.map(|t| {
        report[0]
            .certs
            .iter()
            .find(|c| c.cert_type == t)
            .cloned()
            .unwrap()
    })) {
        let info = unit.verifies(t, now).await;
        assert_eq!(info.serial, applied.serial);
    }
    let stats = unit.cloud.stats();
    assert_eq!(stats.ca.issued, 4);
    assert_eq!(stats.ca.refused, 0);
    assert_eq!(stats.nodes_provisioned, 1);

    // The CM now authenticates to the cloud with its new cm certificate (a new handshake), and the
    // connection without a certificate is closed.
    let (cm_cert, _) = unit.current("cm").await;
    let authenticated = unit
        .cloud_sees("the CM to authenticate", |c| {
            c.peer.as_ref() == Some(&cm_identity())
        })
        .await;
    assert_eq!(authenticated.client_serial, Some(cm_cert.serial.clone()));
    within(
        "the unauthenticated link to close",
        unit.cloud.wait_for(|c| c.len() == 1),
    )
    .await;
    let client = unit.cm.cloud().unwrap();
    assert_eq!(
        client.connection(),
        CloudConnection::Up {
            client_serial: Some(cm_cert.serial)
        }
    );
    assert!(unit.cloud.stats().authenticated_connections >= 1);

    // A client presenting another role's certificate of the unit (the node's sm certificate) is refused.
    let (sm_info, sm_chain) = unit.current("sm").await;
    let (sm_key, _) = unit
        .certs
        .send(ForType::new(
            "sm",
            cert_module::GetTokenKey {
                serial: sm_info.serial,
            },
        ))
        .await
        .unwrap()
        .unwrap();
    let sm_creds = Credentials::with(sm_chain, Arc::new(sm_key)).unwrap();
    let config = client_config(
        ServerAuth::HostName {
            roots: root_store(&[unit.ca.root_der().clone()]).unwrap(),
        },
        Some(&sm_creds),
        &TlsOptions::default(),
    )
    .unwrap();
    let tcp = TcpStream::connect(unit.cloud.local_addr()).await.unwrap();
    let refused = connect(
        &TlsConnector::from(config),
        tcp,
        ServerName::try_from(DEFAULT_SERVER_NAME).unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("certificate"), "{refused}");
    let stats = within("the refusal to be counted", async {
        loop {
            let stats = unit.cloud.stats();
            if !stats.refused_handshakes.is_empty() {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        stats
            .refused_handshakes
            .get(RefusalReason::RoleNotAccepted.as_str()),
        Some(&1),
        "{stats:?}"
    );
    unit.cm.stop().await;
    unit.cloud.stop().await;
}

#[actix_rt::test]
async fn the_cloud_refuses_a_csr_for_another_node_and_the_cm_reports_it_typed() {
    let unit = Unit::start(None, Duration::from_secs(60)).await;
    let client = unit.cm.cloud().unwrap().clone();
    within(
        "the CM to connect",
        client.wait_for(|c| matches!(c, CloudConnection::Up { .. })),
    )
    .await
    .unwrap();
    // Before provisioning the CM is not authenticated: the cloud signs nothing it did not ask for.
    let early = client
        .sign(CsrRequest {
            node_id: NODE.into(),
            cert_type: "online".into(),
            csr_pem: foreign_csr(NODE, "online"),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(early, CloudCallError::Cloud(CloudFault::Unauthorized(_))),
        "{early:?}"
    );
    assert!(early.is_retryable());

    unit.provision().await;
    within(
        "the CM to authenticate",
        client.wait_for(|c| {
            matches!(
                c,
                CloudConnection::Up {
                    client_serial: Some(_)
                }
            )
        }),
    )
    .await
    .unwrap();
    unit.cloud_sees("the authenticated CM", |c| c.peer.is_some())
        .await;

    // A CSR naming node `other`, sent for node `main`: the CA refuses it, typed.
    let wrong = client
        .sign(CsrRequest {
            node_id: NODE.into(),
            cert_type: "online".into(),
            csr_pem: foreign_csr("other", "online"),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.refusal_label(), Some("wrong_node"), "{wrong:?}");
    assert!(!wrong.is_retryable());

    // Through the validator's seam the same refusal is fatal, and names the reason.
    let renewer = unit.cm.renewer().unwrap();
    let fatal = renewer
        .renew(RenewalRequest {
            cert_type: "online".into(),
            csr: foreign_csr("other", "online"),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&fatal, RenewError::Fatal(m) if m.contains("wrong_node")),
        "{fatal:?}"
    );
    // A node the unit does not have is refused before the CA sees the CSR.
    let ghost = unit
        .cm
        .renewer_for("ghost")
        .unwrap()
        .renew(RenewalRequest {
            cert_type: "online".into(),
            csr: foreign_csr("ghost", "online"),
        })
        .await
        .unwrap_err();
    assert!(matches!(ghost, RenewError::Fatal(m) if m.contains("ghost")));

    let stats = unit.cloud.stats();
    assert_eq!(stats.ca.refusals.get("wrong_node"), Some(&2));
    assert_eq!(stats.csrs_refused_on_request, 4);
    assert_eq!(stats.csrs_signed_on_request, 0);
    assert_eq!(stats.ca.issued, 4, "only the provisioning certificates");
    unit.cm.stop().await;
    unit.cloud.stop().await;
}

#[actix_rt::test]
async fn a_csr_the_ca_refuses_during_provisioning_stops_it_with_a_typed_error() {
    let mut policy = CaPolicy::default();
    policy.allowed_roles.remove(&Role::Online);
    let unit = Unit::with_policy(None, policy).await;
    within("the CM to connect", unit.cloud.wait_for(|c| !c.is_empty())).await;
    let err = within(
        "provisioning",
        unit.cloud.provision(&password(), Some(&[NODE])),
    )
    .await
    .unwrap_err();
    match err {
        DriveError::Refused {
            node_id,
            cert_type,
            refusal,
        } => {
            assert_eq!((node_id.as_str(), cert_type.as_str()), (NODE, "online"));
            assert_eq!(refusal.label(), "cert_type_not_allowed");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was applied and the node did not finish.
    assert_eq!(unit.node_state().await, NodeState::Provisioning);
    assert!(unit.changes.lock().unwrap().is_empty());
    assert_eq!(unit.cloud.stats().nodes_provisioned, 0);
    // An unknown node is refused before any provisioning step.
    let ghost = unit.cloud.provision(&password(), Some(&["ghost"])).await;
    assert!(matches!(ghost, Err(DriveError::UnknownNode(n)) if n == "ghost"));
    unit.cm.stop().await;
    unit.cloud.stop().await;
}

#[actix_rt::test]
async fn the_cloud_renews_certificates_iam_last_and_the_cm_handshakes_again_with_its_new_certificate(
) {
    let unit = Unit::start(Some(Duration::from_secs(3600)), Duration::from_secs(60)).await;
    unit.provision().await;
    let mut old = BTreeMap::new();
    for t in TYPES {
        old.insert(t, unit.current(t).await.0);
    }
    unit.cloud_sees("the authenticated CM", |c| {
        c.client_serial.as_ref() == Some(&old["cm"].serial)
    })
    .await;
    unit.changes.lock().unwrap().clear();
    // Time passes, so the renewed certificates end later than the old ones and become current.
    unit.clock.advance(Duration::from_secs(60));

    let renewed = within(
        "the renewal",
        unit.cloud
            .renew(NODE, &["iam", "cm", "online"], &password()),
    )
    .await
    .unwrap();
    let order: Vec<&str> = renewed.iter().map(|c| c.cert_type.as_str()).collect();
    assert_eq!(order, ["cm", "online", "iam"]);
    assert_eq!(*unit.changes.lock().unwrap(), order);
    let now = unit.clock.now();
    for info in &renewed {
        let t = info.cert_type.as_str();
        assert_ne!(info.serial, old[t].serial, "{t} was renewed");
        let current = unit.verifies(t, now).await;
        assert_eq!(
            current.serial, info.serial,
            "{t} current is the renewed one"
        );
        // The cloud's short lifetime applies.
        let lifetime = current.not_after.duration_since(now).unwrap();
        assert!(lifetime <= Duration::from_secs(3600), "{t}: {lifetime:?}");
    }
    assert_eq!(
        unit.current("sm").await.0.serial,
        old["sm"].serial,
        "sm untouched"
    );

    // The CM presents its new cm certificate on a new connection; the old one is closed.
    let new_cm = renewed.iter().find(|c| c.cert_type == "cm").unwrap();
    unit.cloud_sees("the CM's new handshake", |c| {
        c.client_serial.as_ref() == Some(&new_cm.serial)
    })
    .await;
    within(
        "the superseded link to close",
        unit.cloud.wait_for(|c| c.len() == 1),
    )
    .await;
    let stats = unit.cloud.stats();
    assert_eq!(stats.certs_renewed, 3);
    assert_eq!(stats.ca.issued, 7);
    unit.cm.stop().await;
    unit.cloud.stop().await;
}

#[actix_rt::test]
async fn local_renewal_thresholds_get_their_csrs_signed_by_the_cloud_through_the_cm_renewer() {
    // Certificates live 1000 s on the CA's manual clock; the backdate keeps them valid for TLS, which reads
    // the system clock, after the manual clock moved ahead. Validity runs from now - 3600 s to now + 1000 s,
    // so a 90 % threshold falls 540 s from now.
    let lifetime = Duration::from_secs(1000);
    let unit = Unit::start(Some(lifetime), Duration::from_secs(3600)).await;
    unit.provision().await;
    let mut old = BTreeMap::new();
    for t in TYPES {
        old.insert(t, unit.current(t).await.0);
    }
    unit.cloud_sees("the authenticated CM", |c| c.peer.is_some())
        .await;
    let validator = CertValidator::new(
        unit.certs.clone(),
        Arc::new(unit.clock.clone()),
        Arc::new(unit.cm.renewer().unwrap()),
        RenewalConfig {
            threshold_percent: 90,
            jitter_percent: 0,
            ..RenewalConfig::default()
        },
        ValidatorOptions {
            timers: false,
            ..ValidatorOptions::default()
        },
    )
    .start();
    validator.send(ValidateNow).await.unwrap().unwrap();
    assert!(
        validator.send(RenewDue).await.unwrap().is_empty(),
        "nothing due yet"
    );

    unit.clock.advance(Duration::from_secs(600));
    let outcomes = within("the renewals", validator.send(RenewDue))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    let now = unit.clock.now();
    for t in TYPES {
        let renewed = outcomes[t].as_ref().unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_ne!(renewed.serial, old[t].serial);
        assert!(renewed.not_after > old[t].not_after);
        assert_eq!(unit.verifies(t, now).await.serial, renewed.serial);
    }
    let stats = unit.cloud.stats();
    assert_eq!(stats.csrs_signed_on_request, 4);
    assert_eq!(stats.ca.issued, 8);
    // The renewed cm certificate is presented on the CM's next handshake.
    let new_cm = outcomes["cm"].as_ref().unwrap().serial.clone();
    unit.cloud_sees("the CM's new handshake", |c| {
        c.client_serial.as_ref() == Some(&new_cm)
    })
    .await;
    unit.cm.stop().await;
    unit.cloud.stop().await;
}
