//! SM and SM-controller tests: real SoftHSM token keys, a real test CA, mutual TLS over loopback TCP,
//! IAM's real `IamService` with its permission store, real child processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use aos_config::{PermissionLimits, ProvisioningConfig};
use aos_pkcs11::KeyAlgorithm;
use aos_transport::tls::testutil::{id, Hsm, Pki};
use aos_transport::tls::{Credentials, Role};

use super::*;
use crate::api::sm::{InstanceSpec, InstanceState, RunSpec};
use crate::api::{
    ApiError, ErrorCode, NodeInfo, ProtectedRequest, ProtectedResponse, PublicRequest,
    PublicResponse, WireSecret,
};
use crate::cm::{Cm, CmOptions, CmParts, IamAccess, LocalIam, SmController};
use crate::iam::cert_handler::CertHandler;
use crate::iam::permissions::{
    InstanceIdent, InstanceKind, PermissionHandler, PermissionStore, Secret,
};
use crate::iam::provisioner::{NodeState, Provisioner, ProvisionerOptions, StateFile};
use crate::iam::service::{BoxFuture, IamService};
use crate::iam::test_support::Fixture;
use crate::net::{ArbiterPool, LinkConfig};

const PATIENCE: Duration = Duration::from_secs(20);
const UNIT: &str = "unit1";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Poll `check` every 20 ms until it returns `Some` (bounded by PATIENCE).
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    within(what, async {
        loop {
            if let Some(value) = check() {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// IAM of node `main` with a permission store at `store`.
fn iam_service(fx: &Fixture, store: &Path) -> IamService {
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(fx.clock.clone());
    let certs = CertHandler::new(&[], fx.node.clone(), fx.roots.clone(), clock.clone()).start();
    let provisioner = Provisioner::new(
        StateFile::new(fx.hsm.dir().join("state")),
        ProvisioningConfig::default(),
        certs.clone(),
        clock,
        ProvisionerOptions::default(),
    )
    .unwrap()
    .start();
    let handler = PermissionHandler::new(
        PermissionStore::open(store.to_owned(), PermissionLimits::default()).unwrap(),
    );
    let reader = handler.reader();
    let info = NodeInfo {
        node_id: "main".into(),
        unit_id: UNIT.into(),
        name: "main".into(),
        node_type: "test".into(),
        is_main: true,
        state: NodeState::Provisioned,
        attrs: BTreeMap::new(),
    };
    IamService::new(info, certs, provisioner, Some((handler.start(), reader)))
}

/// An [`IamAccess`] whose IAM can be replaced (a restarted IAM with a recreated permission store).
#[derive(Clone)]
struct SwappableIam(Arc<Mutex<Arc<dyn IamAccess>>>);

impl SwappableIam {
    fn new(inner: Arc<dyn IamAccess>) -> Self {
        SwappableIam(Arc::new(Mutex::new(inner)))
    }

    fn swap(&self, inner: Arc<dyn IamAccess>) {
        *self.0.lock().unwrap() = inner;
    }

    fn current(&self) -> Arc<dyn IamAccess> {
        self.0.lock().unwrap().clone()
    }
}

impl IamAccess for SwappableIam {
    fn protected(
        &self,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
        self.current().protected(request)
    }

    fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>> {
        self.current().public(request)
    }
}

/// A unit CA, token keys, and credentials: `cm` of main (the controller's server certificate), `sm` of main
/// and, to be refused, a second `cm` certificate an SM might present.
struct Unit {
    _hsm: Hsm,
    pki: Pki,
    cm: Credentials,
    sm: Credentials,
    cm_as_client: Credentials,
    pool: ArbiterPool,
}

impl Unit {
    fn new() -> Unit {
        let hsm = Hsm::new();
        let pki = Pki::new(UNIT);
        let creds = |label: &str, node: &str, role: Role| {
            let key = hsm.key(label, KeyAlgorithm::EccP256);
            Credentials::with(
                pki.leaf(&key).identity(id(node, role)).issue(),
                Arc::new(key),
            )
            .unwrap()
        };
        Unit {
            cm: creds("cm", "main", Role::Cm),
            sm: creds("sm", "main", Role::Sm),
            cm_as_client: creds("cm2", "n1", Role::Cm),
            pki,
            _hsm: hsm,
            pool: ArbiterPool::new(2),
        }
    }

    fn link() -> LinkConfig {
        LinkConfig {
            reconnect_backoff_initial: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_millis(100),
            ..LinkConfig::default()
        }
    }

    /// The main node's IAM (permission store `perm.json` in the fixture's directory) and a CM on it, with
    /// its SM controller.
    async fn main_cm(&self, fx: &Fixture) -> (IamService, Cm, SmController) {
        let service = iam_service(fx, &fx.hsm.dir().join("perm.json"));
        let cm = self.cm(local_iam(service.clone(), Role::Cm)).await;
        let controller = cm.sm_controller().unwrap().clone();
        (service, cm, controller)
    }

    /// The SM of main with simulated instances, connected to `controller`.
    async fn connected_simulated_sm(
        &self,
        controller: &SmController,
        iam: Arc<dyn IamAccess>,
        simulated: &SimulatedRunner,
    ) -> SmHandle {
        let sm = self.sm(
            controller,
            &self.sm,
            iam,
            Runners::with_simulated(simulated.clone()).shared(),
        );
        connected(&sm, controller).await;
        sm
    }

    async fn cm(&self, iam: Arc<dyn IamAccess>) -> Cm {
        let parts = CmParts {
            unit_id: UNIT.into(),
            node_id: "main".into(),
            iam,
            credentials: self.cm.clone(),
            roots: self.pki.roots(),
            pool: self.pool.clone(),
        };
        let options = CmOptions {
            sm_listen: Some("127.0.0.1:0".parse().unwrap()),
            sm_link: Unit::link(),
            ..CmOptions::default()
        };
        Cm::start(parts, options).await.unwrap()
    }

    fn sm(
        &self,
        controller: &SmController,
        credentials: &Credentials,
        iam: Arc<dyn IamAccess>,
        runner: Arc<dyn InstanceRunner>,
    ) -> SmHandle {
        let parts = SmParts {
            unit_id: UNIT.into(),
            node_id: "main".into(),
            iam,
            credentials: credentials.clone(),
            roots: self.pki.roots(),
            pool: self.pool.clone(),
            runner,
        };
        let mut options = SmOptions::new(&controller.local_addr().to_string());
        options.link = Unit::link();
        options.reconcile_interval = Duration::from_secs(3600);
        Sm::start(parts, options).unwrap()
    }
}

/// Wait until `sm` is connected and the controller has registered it.
async fn connected(sm: &SmHandle, controller: &SmController) {
    assert!(within("the sm to connect", sm.wait_connected()).await);
    within(
        "the controller to register node main",
        controller.wait_for(|r| r.nodes.get("main").is_some_and(|n| n.connected)),
    )
    .await
    .unwrap();
}

fn local_iam(service: IamService, role: Role) -> Arc<dyn IamAccess> {
    Arc::new(LocalIam::new(service, UNIT, role).unwrap())
}

fn ident(item: &str) -> InstanceIdent {
    InstanceIdent {
        item_id: item.into(),
        subject_id: "subject".into(),
        instance: 0,
        kind: InstanceKind::Service,
    }
}

fn vis_permissions() -> crate::iam::permissions::Permissions {
    BTreeMap::from([(
        "vis".to_owned(),
        BTreeMap::from([("get".to_owned(), "r".to_owned())]),
    )])
}

async fn permissions_of(iam: &dyn IamAccess, secret: &Secret) -> Result<InstanceIdent, ErrorCode> {
    permissions_on(iam, secret, "vis").await
}

async fn permissions_on(
    iam: &dyn IamAccess,
    secret: &Secret,
    server: &str,
) -> Result<InstanceIdent, ErrorCode> {
    let request = PublicRequest::GetPermissions {
        secret: WireSecret(secret.clone()),
        functional_server_id: server.into(),
    };
    match iam.public(request).await {
        Ok(PublicResponse::Permissions(grant)) => Ok(grant.ident),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    }
}

fn read_secret(path: &PathBuf) -> Option<Secret> {
    std::fs::read_to_string(path).ok().map(Secret::from_text)
}

#[actix_rt::test]
async fn the_controller_refuses_an_sm_with_a_cm_certificate_and_accepts_one_with_an_sm_certificate()
{
    let fx = Fixture::new();
    let unit = Unit::new();
    let (service, cm, controller) = unit.main_cm(&fx).await;
    let runner = Runners::processes().shared();

    let impostor = unit.sm(
        &controller,
        &unit.cm_as_client,
        local_iam(service.clone(), Role::Sm),
        runner.clone(),
    );
    let registry = within(
        "the cm certificate to be refused",
        controller.wait_for(|r| r.refusals.contains_key("role_not_accepted")),
    )
    .await
    .unwrap();
    assert!(registry.nodes.is_empty(), "{registry:?}");
    assert!(!impostor.is_connected());
    impostor.stop().await;

    let sm = unit.sm(&controller, &unit.sm, local_iam(service, Role::Sm), runner);
    assert!(within("the sm to connect", sm.wait_connected()).await);
    let registry = within(
        "the controller to register node main",
        controller.wait_for(|r| r.nodes.get("main").is_some_and(|n| n.connected)),
    )
    .await
    .unwrap();
    assert_eq!(registry.nodes.len(), 1);
    assert_eq!(controller.status("main").await.unwrap(), vec![]);
    sm.stop().await;
    cm.stop().await;
}

#[actix_rt::test]
async fn an_sm_runs_a_desired_process_with_its_secret_and_unregisters_it_when_it_is_no_longer_desired(
) {
    let fx = Fixture::new();
    let unit = Unit::new();
    let (service, cm, controller) = unit.main_cm(&fx).await;
    let sm = unit.sm(
        &controller,
        &unit.sm,
        local_iam(service.clone(), Role::Sm),
        Runners::processes().shared(),
    );
    connected(&sm, &controller).await;

    let out = fx.hsm.dir().join("secret.out");
    let script = "test -n \"$AOS_SECRET\" || exit 3; printf %s \"$AOS_SECRET\" > \"$OUT.tmp\" && \
                  mv \"$OUT.tmp\" \"$OUT\"; exec sleep 600";
    let spec = InstanceSpec {
        ident: ident("svc"),
        permissions: vis_permissions(),
        run: RunSpec::Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::from([("OUT".to_owned(), out.display().to_string())]),
        },
    };
    let statuses = controller
        .set_desired("main", vec![spec.clone()])
        .await
        .unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].state, InstanceState::Running);
    let pid = statuses[0].pid.unwrap();

    // The child found a secret in its environment, and IAM knows it for this instance.
    let secret = eventually("the child to write its secret", || read_secret(&out)).await;
    assert_eq!(secret.expose().len(), 64);
    let iam = local_iam(service.clone(), Role::Sm);
    assert_eq!(
        permissions_of(iam.as_ref(), &secret).await,
        Ok(ident("svc"))
    );
    // The secret is in the environment, never in the arguments; the environment is clean. (Read them once
    // the shell has exec'd `sleep`, which keeps the environment it was given.)
    let cmdline = eventually("the shell to exec sleep", || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        cmdline.starts_with("sleep").then_some(cmdline)
    })
    .await;
    assert!(!cmdline.contains(secret.expose()));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(names.contains(&format!("AOS_SECRET={}", secret.expose())));
    names
        .iter_mut()
        .for_each(|v| v.truncate(v.find('=').unwrap_or(v.len())));
    names.retain(|n| n != "PWD"); // the shell sets it
    names.sort();
    assert_eq!(names, ["AOS_SECRET", "OUT", "PATH"]);

    // The CM's registry has the SM's answer.
    let registry = controller.registry();
    assert_eq!(registry.nodes["main"].desired, 1);
    assert_eq!(registry.nodes["main"].statuses, statuses);

    // New permissions for the running instance: registered, same secret, same process.
    let mut more = spec.clone();
    more.permissions.insert(
        "ws".to_owned(),
        BTreeMap::from([("subscribe".to_owned(), "rw".to_owned())]),
    );
    assert_eq!(
        permissions_on(iam.as_ref(), &secret, "ws").await,
        Err(ErrorCode::NotFound)
    );
    let statuses = controller.set_desired("main", vec![more]).await.unwrap();
    assert_eq!(statuses[0].pid, Some(pid), "not restarted");
    assert_eq!(
        permissions_on(iam.as_ref(), &secret, "ws").await,
        Ok(ident("svc"))
    );

    // No longer desired: the process is killed and reaped, the secret is revoked.
    let statuses = controller.set_desired("main", vec![]).await.unwrap();
    assert!(statuses.is_empty());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists"
    );
    assert_eq!(
        permissions_of(iam.as_ref(), &secret).await,
        Err(ErrorCode::NotFound)
    );
    sm.stop().await;
    cm.stop().await;
}

#[actix_rt::test]
async fn an_instance_that_exits_is_reported_to_the_cm_and_a_bad_spec_fails_alone() {
    let fx = Fixture::new();
    let unit = Unit::new();
    let (service, cm, controller) = unit.main_cm(&fx).await;
    let sm = unit.sm(
        &controller,
        &unit.sm,
        local_iam(service.clone(), Role::Sm),
        Runners::processes().shared(),
    );
    connected(&sm, &controller).await;
    let quits = InstanceSpec {
        ident: ident("quits"),
        permissions: vis_permissions(),
        run: RunSpec::Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "exit 7".into()],
            env: BTreeMap::new(),
        },
    };
    let missing = InstanceSpec {
        ident: ident("missing"),
        permissions: BTreeMap::new(),
        run: RunSpec::Command {
            program: "/nonexistent/program".into(),
            args: vec![],
            env: BTreeMap::new(),
        },
    };
    let sneaky = InstanceSpec {
        ident: ident("sneaky"),
        permissions: BTreeMap::new(),
        run: RunSpec::Command {
            program: "/bin/true".into(),
            args: vec![],
            env: BTreeMap::from([("AOS_SECRET".to_owned(), "mine".to_owned())]),
        },
    };
    let simulated = InstanceSpec {
        ident: ident("simulated"),
        permissions: BTreeMap::new(),
        run: RunSpec::Simulated,
    };
    let statuses = controller
        .set_desired("main", vec![quits, missing, sneaky, simulated])
        .await
        .unwrap();
    let state = |name: &str| {
        statuses
            .iter()
            .find(|s| s.ident.item_id == name)
            .unwrap()
            .state
            .clone()
    };
    assert!(
        matches!(state("missing"), InstanceState::Failed(m) if m.contains("/nonexistent/program"))
    );
    assert!(matches!(state("sneaky"), InstanceState::Failed(m) if m.contains("AOS_SECRET")));
    assert!(matches!(state("simulated"), InstanceState::Failed(m) if m.contains("simulated")));
    let registry = within(
        "the exit to reach the CM",
        controller.wait_for(|r| {
            r.nodes.get("main").is_some_and(|n| {
                n.statuses.iter().any(|s| {
                    s.ident.item_id == "quits" && s.state == InstanceState::Exited { code: Some(7) }
                })
            })
        }),
    )
    .await
    .unwrap();
    assert_eq!(registry.nodes["main"].statuses.len(), 4);
    // Listing an instance twice is refused as a whole.
    let twice = vec![
        InstanceSpec {
            ident: ident("a"),
            permissions: BTreeMap::new(),
            run: RunSpec::Simulated,
        };
        2
    ];
    match controller.set_desired("main", twice).await {
        Err(crate::cm::SmControlError::Sm(e)) => assert_eq!(e.code, ErrorCode::InvalidArgument),
        other => panic!("{other:?}"),
    }
    sm.stop().await;
    cm.stop().await;
}

#[actix_rt::test]
async fn reconciliation_registers_again_and_restarts_with_the_new_secret_after_the_store_is_recreated(
) {
    let fx = Fixture::new();
    let unit = Unit::new();
    let store = fx.hsm.dir().join("perm.json");
    let first = iam_service(&fx, &store);
    let cm = unit.cm(local_iam(first.clone(), Role::Cm)).await;
    let controller = cm.sm_controller().unwrap().clone();
    let iam = SwappableIam::new(local_iam(first, Role::Sm));
    let starts = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = starts.clone();
    let simulated = SimulatedRunner::with_on_start(Arc::new(move |ident, _secret| {
        seen.lock().unwrap().push(ident.item_id.clone());
    }));
    let sm = unit
        .connected_simulated_sm(&controller, Arc::new(iam.clone()), &simulated)
        .await;
    let spec = |item: &str, permissions| InstanceSpec {
        ident: ident(item),
        permissions,
        run: RunSpec::Simulated,
    };
    controller
        .set_desired(
            "main",
            vec![
                spec("svc", vis_permissions()),
                spec("quiet", BTreeMap::new()),
            ],
        )
        .await
        .unwrap();
    let old = simulated.secret_of(&ident("svc")).unwrap();
    assert_eq!(
        permissions_of(iam.current().as_ref(), &old).await,
        Ok(ident("svc"))
    );
    // Nothing to do while IAM knows everything.
    assert_eq!(sm.reconcile().await.unwrap(), Reconciled::default());

    // IAM restarts with its permission store recreated: the old secret means nothing now.
    std::fs::remove_file(&store).unwrap();
    iam.swap(local_iam(iam_service(&fx, &store), Role::Sm));
    assert_eq!(
        permissions_of(iam.current().as_ref(), &old).await,
        Err(ErrorCode::NotFound)
    );

    let report = sm.reconcile().await.unwrap();
    assert_eq!(report.reregistered, vec![ident("svc")]);
    let new = simulated.secret_of(&ident("svc")).unwrap();
    assert_ne!(new, old);
    assert_eq!(
        permissions_of(iam.current().as_ref(), &new).await,
        Ok(ident("svc"))
    );
    assert_eq!(
        *starts.lock().unwrap(),
        ["quiet", "svc", "svc"],
        "svc restarted once with its new secret"
    );
    let statuses = sm.statuses().await;
    assert!(statuses.iter().all(|s| s.state == InstanceState::Running));
    // The CM hears about it, and a second pass finds nothing.
    within(
        "the status after reconciliation to reach the CM",
        controller.wait_for(|r| r.nodes.get("main").is_some_and(|n| n.statuses == statuses)),
    )
    .await
    .unwrap();
    assert_eq!(sm.reconcile().await.unwrap(), Reconciled::default());
    sm.stop().await;
    assert_eq!(
        permissions_of(iam.current().as_ref(), &new).await,
        Err(ErrorCode::NotFound),
        "stopping the SM unregisters its instances"
    );
    cm.stop().await;
}

/// An IAM that answers `Unavailable` to the next `outages` registrations, as a link between two
/// connections does, then passes requests on.
#[derive(Clone)]
struct FlakyIam {
    inner: Arc<dyn IamAccess>,
    outages: Arc<Mutex<usize>>,
    refused: Arc<Mutex<usize>>,
}

impl IamAccess for FlakyIam {
    fn protected(
        &self,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
        if matches!(request, ProtectedRequest::RegisterInstance { .. }) {
            let mut outages = self.outages.lock().unwrap();
            if *outages > 0 {
                *outages -= 1;
                *self.refused.lock().unwrap() += 1;
                return Box::pin(async {
                    Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the link is not connected; retry once it reports Connected",
                    ))
                });
            }
        }
        self.inner.protected(request)
    }

    fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>> {
        self.inner.public(request)
    }
}

#[actix_rt::test]
async fn a_registration_while_iam_is_briefly_unreachable_waits_for_it_and_a_longer_outage_is_retried(
) {
    let fx = Fixture::new();
    let unit = Unit::new();
    let (service, cm, controller) = unit.main_cm(&fx).await;
    let iam = FlakyIam {
        inner: local_iam(service.clone(), Role::Sm),
        outages: Arc::new(Mutex::new(0)),
        refused: Arc::new(Mutex::new(0)),
    };
    let simulated = SimulatedRunner::with_on_start(Arc::new(|_, _| {}));
    let sm = unit
        .connected_simulated_sm(&controller, Arc::new(iam.clone()), &simulated)
        .await;
    let spec = |item: &str| InstanceSpec {
        ident: ident(item),
        permissions: vis_permissions(),
        run: RunSpec::Simulated,
    };
    // Three refusals: within the retries, so the instance runs and the CM is told so at once.
    *iam.outages.lock().unwrap() = 3;
    let statuses = controller
        .set_desired("main", vec![spec("svc")])
        .await
        .unwrap();
    assert_eq!(statuses[0].state, InstanceState::Running, "{statuses:?}");
    assert_eq!(*iam.refused.lock().unwrap(), 3);
    let secret = simulated.secret_of(&ident("svc")).unwrap();
    assert_eq!(permissions_of(&*iam.inner, &secret).await, Ok(ident("svc")));
    // An outage longer than the retries fails the instance with the reason; reconciliation (here run by
    // hand, as the link's reconnection or the periodic pass would) registers and starts it.
    // The waiting is shared by the whole set: the first registration waits out the retries, the second
    // fails at once.
    *iam.outages.lock().unwrap() = 100;
    *iam.refused.lock().unwrap() = 0;
    let statuses = controller
        .set_desired("main", vec![spec("svc"), spec("late"), spec("later")])
        .await
        .unwrap();
    for name in ["late", "later"] {
        let status = statuses.iter().find(|s| s.ident == ident(name)).unwrap();
        assert!(
            matches!(&status.state, InstanceState::Failed(m) if m.contains("Unavailable")),
            "{status:?}"
        );
    }
    assert_eq!(*iam.refused.lock().unwrap(), 1 + 8 + 1);
    *iam.outages.lock().unwrap() = 0;
    let report = sm.reconcile().await.unwrap();
    assert_eq!(report.retried, vec![ident("late"), ident("later")]);
    let late_secret = simulated.secret_of(&ident("late")).unwrap();
    assert_eq!(
        permissions_of(&*iam.inner, &late_secret).await,
        Ok(ident("late"))
    );
    sm.stop().await;
    cm.stop().await;
}
