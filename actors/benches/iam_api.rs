//! `GetPermissions` over the IAM protected (mTLS) API, pipelined, versus a raw echo over the same kind of link.
//!
//! Run: `cargo bench -p aos-actors --bench iam_api [-- SCALE]` (SCALE multiplies the request counts,
//! default 1). Goal (issue 5): ≥ 50k requests/s and p99 < 1 ms.
//!
//! One node's IAM runs in process: `IamCore` from a `Config` built in code (one `iam` cert module, P-256, on
//! a private SoftHSM token), provisioned through its `IamService` (StartProvisioning, CreateKey, ApplyCert
//! signed by a test CA, FinishProvisioning), with 1000 registered instances, then `LocalNode` and
//! `IamServer`. The client is an `IamClient` on the protected endpoint with a software-key `sm` certificate of
//! the unit CA, asking `GetPermissions` for the registered secrets in turn.
//!
//! The baseline is a second acceptor with the same server TLS configuration (the node's `iam` credentials,
//! client certificates required, same roots and role policy), on the same server arbiter pool, whose
//! `IamSecure` handler echoes each request body; an `IamClient` link of the same client pool sends it the
//! same encoded `GetPermissions` body. Both sides: one server worker arbiter, one client worker arbiter (the
//! requests are issued from the client arbiter), loopback TCP.
//!
//! Each request's latency is measured from the call to its answer, with N requests in flight (N = 1, 16,
//! 64). A breakdown of one request's parts that run without the link (body encoding, the service's lookup,
//! answer decoding) follows the table.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{Actor, ArbiterHandle, Context, Handler};
use aos_actors::api::{
    wire, IamAnswer, IamRequest, IamResponse, ProtectedRequest, ProtectedResponse, PublicRequest,
    PublicResponse, WirePassword, WireSecret,
};
use aos_actors::clock::SystemClock;
use aos_actors::iam::client::{client_tls, IamClient, IamServerAuth};
use aos_actors::iam::core::{CoreOptions, IamCore};
use aos_actors::iam::permissions::{InstanceIdent, InstanceKind, Permissions, Secret};
use aos_actors::iam::provisioner::{Password, ProvisionerOptions};
use aos_actors::iam::server::{
    EndpointKind, IamServer, IamServerConfig, LocalNode, PROTECTED_ROLES,
};
use aos_actors::iam::service::{Caller, IamService};
use aos_actors::iam::validator::ValidatorOptions;
use aos_actors::net::{
    serve_tcp, ArbiterPool, ClientTls, Incoming, LinkAcceptor, LinkConfig, Routes, TcpDialer,
    WireError,
};
use aos_config::{
    CertModuleConfig, Config, ExtendedKeyUsage, KeyAlgorithm, NodeConfig, NodeRole, Pkcs11Params,
};
use aos_pkcs11::testkit::{SoftHsm, TestCa, SO_PIN};
use aos_transport::frame::Channel;
use aos_transport::tls::{
    root_store, server_config, ClientAuth, Credentials, PeerIdentity, Policy, Role, TlsOptions,
};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rcgen::{ExtendedKeyUsagePurpose, SanType};
use rustls::RootCertStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const UNIT: &str = "unit-1";
const NODE: &str = "main";
const INSTANCES: usize = 1000;
const SERVER_ID: &str = "vis";
const WINDOWS: [usize; 3] = [1, 16, 64];
const PATIENCE: Duration = Duration::from_secs(30);
const GOAL_RATE: f64 = 50_000.0;
const GOAL_P99: Duration = Duration::from_millis(1);

fn main() {
    let scale: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1);
    let code = actix_rt::System::new().block_on(run(scale));
    // The node's token handles are still open on worker arbiters; exiting here, rather than unwinding the
    // System, keeps SoftHSM's static destructors from racing a session close (see the IAM test harness).
    std::process::exit(code);
}

async fn run(scale: usize) -> i32 {
    let node = Node::start().await;
    let secrets = node.register_instances().await;
    let server_pool = node.pool.clone();
    let client_pool = ArbiterPool::new(1);
    let client_arbiter = client_pool.next();

    let creds = client_creds(&node.ca, UNIT, "n1", Role::Sm);
    let tls = client_tls(
        IamServerAuth::Identity {
            roots: node.tls_roots.clone(),
            policy: Policy::roles([Role::Iam]).with_unit(UNIT).with_node(NODE),
        },
        Some(&creds),
        &TlsOptions::default(),
    )
    .unwrap();
    let iam = connect(&client_pool, node.server.protected_addr(), tls.clone()).await;
    let echo = EchoServer::start(&node, &server_pool).await;
    let raw = connect(&client_pool, echo.addr, tls).await;

    // One encoded GetPermissions body, as the echo path sends it (and answers it).
    let echo_body = wire::encode(&get_permissions(&secrets[0])).unwrap();
    let echo_answer_len = echo_body.len();
    let grant_len = {
        let request = PublicRequest::GetPermissions {
            secret: WireSecret(secrets[0].clone()),
            functional_server_id: SERVER_ID.into(),
        };
        let answer: IamAnswer = node.service.public(request).await.map(IamResponse::Public);
        assert!(answer.is_ok());
        wire::encode(&answer).unwrap().len()
    };

    println!("IAM API benchmark (scale {scale}): GetPermissions on the protected (mTLS) endpoint, {INSTANCES} registered instances");
    println!("one server and one client worker arbiter, loopback TCP, P-256 server key in SoftHSM, software client key");
    println!(
        "request body {} B; answer {grant_len} B (GetPermissions), {echo_answer_len} B (echo)",
        echo_body.len()
    );
    println!();

    let n = 40_000 * scale;
    let secrets = Arc::new(secrets);
    // Warm-up of both paths.
    for window in WINDOWS {
        iam_round(&client_arbiter, &iam, &secrets, 2_000, window).await;
        echo_round(&client_arbiter, &raw, &echo_body, 2_000, window).await;
    }
    let mut rows = Vec::new();
    for window in WINDOWS {
        let (mut iam_run, mut echo_run) = (Run::default(), Run::default());
        // Alternate halves, so a change of machine load touches both paths alike.
        for _ in 0..2 {
            iam_run.add(iam_round(&client_arbiter, &iam, &secrets, n / 2, window).await);
            echo_run.add(echo_round(&client_arbiter, &raw, &echo_body, n / 2, window).await);
        }
        rows.push((window, iam_run.summary(), echo_run.summary()));
    }

    println!(
        "{:>9} | {:>24} {:>9} {:>9} | {:>24} {:>9} {:>9} | {:>6}",
        "in flight",
        "GetPermissions req/s",
        "p50 µs",
        "p99 µs",
        "echo req/s",
        "p50 µs",
        "p99 µs",
        "ratio"
    );
    println!("{}", "-".repeat(120));
    for (window, iam, echo) in &rows {
        println!(
            "{window:>9} | {:>24.0} {:>9.1} {:>9.1} | {:>24.0} {:>9.1} {:>9.1} | {:>5.2}×",
            iam.rate,
            us(iam.p50),
            us(iam.p99),
            echo.rate,
            us(echo.p50),
            us(echo.p99),
            iam.rate / echo.rate
        );
    }
    println!("(ratio: GetPermissions requests/s over echo requests/s; {n} requests per cell)");
    println!();

    breakdown(&node.service, &secrets, 50_000).await;

    let best = rows
        .iter()
        .map(|(_, iam, _)| iam)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .unwrap();
    let fast_with_p99 = rows
        .iter()
        .filter(|(_, iam, _)| iam.p99 < GOAL_P99)
        .map(|(w, iam, _)| (*w, iam))
        .max_by(|a, b| a.1.rate.total_cmp(&b.1.rate));
    println!();
    println!("summary");
    println!(
        "  best rate                {:>8.0} req/s   goal ≥ {GOAL_RATE:.0}   {}",
        best.rate,
        verdict(best.rate >= GOAL_RATE)
    );
    match fast_with_p99 {
        Some((window, run)) => println!(
            "  best rate with p99 < 1 ms {:>7.0} req/s at {window} in flight (p99 {:.1} µs)   {}",
            run.rate,
            us(run.p99),
            verdict(run.rate >= GOAL_RATE)
        ),
        None => println!("  no window kept p99 under 1 ms   MISSED"),
    }
    iam.close().await;
    raw.close().await;
    0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn get_permissions(secret: &Secret) -> IamRequest {
    IamRequest::Public(PublicRequest::GetPermissions {
        secret: WireSecret(secret.clone()),
        functional_server_id: SERVER_ID.into(),
    })
}

// --- measurement ---

/// Latencies and wall time of the requests of one or more rounds.
#[derive(Default)]
struct Run {
    samples: Vec<Duration>,
    elapsed: Duration,
}

struct Summary {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

impl Run {
    fn add(&mut self, (samples, elapsed): (Vec<Duration>, Duration)) {
        self.samples.extend(samples);
        self.elapsed += elapsed;
    }

    fn summary(mut self) -> Summary {
        self.samples.sort_unstable();
        let n = self.samples.len();
        Summary {
            rate: n as f64 / self.elapsed.as_secs_f64(),
            p50: self.samples[n / 2],
            p99: self.samples[(n * 99 / 100).min(n - 1)],
        }
    }
}

/// Run `fut` on `arbiter` and wait for its result.
async fn on<T: Send + 'static>(
    arbiter: &ArbiterHandle,
    fut: impl Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = oneshot::channel();
    arbiter.spawn(async move {
        let _ = tx.send(fut.await);
    });
    tokio::time::timeout(PATIENCE * 10, rx)
        .await
        .expect("benchmark step hung")
        .expect("benchmark task panicked")
}

/// Keep `window` requests from `make` in flight until `n` have completed; each one's latency and the total.
async fn pipeline<F, Fut>(n: usize, window: usize, mut make: F) -> (Vec<Duration>, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    let mut in_flight = FuturesUnordered::new();
    let timed = |fut: Fut| async move {
        let start = Instant::now();
        fut.await;
        start.elapsed()
    };
    let start = Instant::now();
    for i in 0..n {
        if in_flight.len() >= window {
            samples.extend(in_flight.next().await);
        }
        in_flight.push(timed(make(i)));
    }
    while let Some(sample) = in_flight.next().await {
        samples.push(sample);
    }
    (samples, start.elapsed())
}

/// `n` GetPermissions through the IAM client, `window` in flight, cycling through the registered secrets.
async fn iam_round(
    arbiter: &ArbiterHandle,
    client: &IamClient,
    secrets: &Arc<Vec<Secret>>,
    n: usize,
    window: usize,
) -> (Vec<Duration>, Duration) {
    let (client, secrets) = (client.clone(), secrets.clone());
    on(arbiter, async move {
        pipeline(n, window, |i| {
            let request = PublicRequest::GetPermissions {
                secret: WireSecret(secrets[i % secrets.len()].clone()),
                functional_server_id: SERVER_ID.into(),
            };
            let client = client.clone();
            async move {
                match client.public(request).await {
                    Ok(PublicResponse::Permissions(grant)) => {
                        assert!(grant.permissions.contains_key("Vehicle.Speed"))
                    }
                    other => panic!("GetPermissions failed: {other:?}"),
                }
            }
        })
        .await
    })
    .await
}

/// `n` echo requests of `body` on the raw link, `window` in flight.
async fn echo_round(
    arbiter: &ArbiterHandle,
    client: &IamClient,
    body: &Bytes,
    n: usize,
    window: usize,
) -> (Vec<Duration>, Duration) {
    let (link, body) = (client.link().clone(), body.clone());
    on(arbiter, async move {
        let len = body.len();
        pipeline(n, window, |_| {
            let request = link.request(Channel::IamSecure, body.clone());
            async move {
                assert_eq!(request.await.unwrap().len(), len);
            }
        })
        .await
    })
    .await
}

/// The parts of one GetPermissions that run without the link, one at a time on this (the System) arbiter.
async fn breakdown(service: &IamService, secrets: &[Secret], n: usize) {
    let time = |start: Instant| start.elapsed().as_secs_f64() * 1e9 / n as f64;
    let start = Instant::now();
    let mut bodies = Vec::with_capacity(n);
    for i in 0..n {
        bodies.push(wire::encode(&get_permissions(&secrets[i % secrets.len()])).unwrap());
    }
    let encode = time(start);
    let start = Instant::now();
    let mut requests = Vec::with_capacity(n);
    for body in &bodies {
        requests.push(wire::decode::<IamRequest>(body).unwrap());
    }
    let decode = time(start);
    let start = Instant::now();
    let mut answers = Vec::with_capacity(n);
    for request in requests {
        let IamRequest::Public(request) = request else {
            unreachable!()
        };
        let answer: IamAnswer = service.public(request).await.map(IamResponse::Public);
        answers.push(answer);
    }
    let lookup = time(start);
    let start = Instant::now();
    let mut encoded = Vec::with_capacity(n);
    for answer in &answers {
        encoded.push(wire::encode(answer).unwrap());
    }
    let encode_answer = time(start);
    let start = Instant::now();
    for body in &encoded {
        let answer = wire::decode::<IamAnswer>(body).unwrap();
        assert!(answer.is_ok());
    }
    let decode_answer = time(start);
    println!("breakdown of one GetPermissions outside the link (ns, mean of {n}):");
    println!(
        "  client encodes request {encode:7.0}   server decodes request {decode:7.0}   IamService::public {lookup:7.0}"
    );
    println!(
        "  server encodes answer  {encode_answer:7.0}   client decodes answer  {decode_answer:7.0}"
    );
}

// --- the node ---

/// One provisioned node's IAM with its server listening on loopback.
struct Node {
    _hsm: SoftHsm,
    ca: TestCa,
    service: IamService,
    local: LocalNode,
    server: IamServer,
    pool: ArbiterPool,
    tls_roots: Arc<RootCertStore>,
}

impl Node {
    async fn start() -> Node {
        let hsm = SoftHsm::new();
        let ca = TestCa::new(UNIT);
        let config = node_config(&hsm, &ca);
        let core = IamCore::start(
            &config,
            CoreOptions {
                clock: Arc::new(SystemClock),
                renewer: None,
                validator: ValidatorOptions::default(),
                provisioner: ProvisionerOptions::default(),
            },
        )
        .unwrap();
        provision(&core.service, &ca).await;
        let local = LocalNode::start(
            core.service.clone(),
            core.certs.clone(),
            "iam",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert!(
            local.status().cert.is_some(),
            "the node has its iam certificate"
        );
        let tls_roots = root_store(&core.ca_certs).unwrap();
        let pool = ArbiterPool::new(1);
        let server = IamServer::start(
            local.clone(),
            None,
            IamServerConfig {
                public_listen: "127.0.0.1:0".parse().unwrap(),
                protected_listen: "127.0.0.1:0".parse().unwrap(),
                link: LinkConfig::default(),
                tls: TlsOptions::default(),
                roots: tls_roots.clone(),
            },
            pool.clone(),
        )
        .await
        .unwrap();
        Node {
            _hsm: hsm,
            ca,
            service: core.service,
            local,
            server,
            pool,
            tls_roots,
        }
    }

    /// Register `INSTANCES` instances as the node's SM would; their secrets.
    async fn register_instances(&self) -> Vec<Secret> {
        let sm = Caller::Peer(PeerIdentity::new(UNIT, NODE, Role::Sm).unwrap());
        let mut secrets = Vec::with_capacity(INSTANCES);
        for i in 0..INSTANCES {
            let instance = InstanceIdent {
                item_id: format!("service-{i:04}"),
                subject_id: "subject".into(),
                instance: (i % 4) as u64,
                kind: InstanceKind::Service,
            };
            let mut permissions = Permissions::new();
            for server in [SERVER_ID, "dm", "sm"] {
                permissions.insert(
                    server.into(),
                    BTreeMap::from([
                        ("*".into(), "r".into()),
                        ("Vehicle.Speed".into(), "rw".into()),
                    ]),
                );
            }
            let request = ProtectedRequest::RegisterInstance {
                instance,
                permissions,
            };
            match self.service.protected(&sm, request).await.unwrap() {
                ProtectedResponse::Secret(WireSecret(secret)) => secrets.push(secret),
                other => panic!("RegisterInstance answered {other:?}"),
            }
        }
        secrets
    }
}

fn node_config(hsm: &SoftHsm, ca: &TestCa) -> Config {
    let dir = hsm.dir();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.root.pem()).unwrap();
    let mut node = NodeConfig::new(NODE, UNIT, NodeRole::Main);
    node.state_file = dir.join("state");
    node.working_dir = dir.join("work");
    let mut config = Config::new(node, ca_path);
    config.cert_modules = vec![module("iam", hsm, dir)];
    config
}

fn module(id: &str, hsm: &SoftHsm, dir: &Path) -> CertModuleConfig {
    let mut params = Pkcs11Params::new(hsm.library());
    params.token_label = Some("aoscore".into());
    params.user_pin_path = Some(dir.join("aoscore.pin"));
    let mut module = CertModuleConfig::new(id, KeyAlgorithm::EccP256, params);
    module.extended_key_usage = vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
    module
}

/// StartProvisioning, CreateKey + ApplyCert for `iam`, FinishProvisioning, as the provisioning client would
/// (anonymous: the node is unprovisioned).
async fn provision(service: &IamService, ca: &TestCa) {
    let anon = Caller::Anonymous;
    let password = || WirePassword(Password::new(SO_PIN));
    service
        .protected(
            &anon,
            ProtectedRequest::StartProvisioning {
                node_id: String::new(),
                password: password(),
            },
        )
        .await
        .unwrap();
    let ProtectedResponse::Csr(csr) = service
        .protected(
            &anon,
            ProtectedRequest::CreateKey {
                node_id: String::new(),
                cert_type: "iam".into(),
                subject: String::new(),
                password: password(),
            },
        )
        .await
        .unwrap()
    else {
        panic!("CreateKey answered no CSR")
    };
    let now = SystemTime::now();
    let pem = ca.sign_csr(
        &csr,
        now - Duration::from_secs(60),
        now + Duration::from_secs(30 * 86_400),
    );
    service
        .protected(
            &anon,
            ProtectedRequest::ApplyCert {
                node_id: String::new(),
                cert_type: "iam".into(),
                pem,
            },
        )
        .await
        .unwrap();
    service
        .protected(
            &anon,
            ProtectedRequest::FinishProvisioning {
                node_id: String::new(),
                password: password(),
            },
        )
        .await
        .unwrap();
}

/// Credentials for `node` / `role` of `unit`, issued by `ca`, with a software P-256 key.
fn client_creds(ca: &TestCa, unit: &str, node: &str, role: Role) -> Credentials {
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

/// An IAM client of the protected kind dialling `addr`, once connected.
async fn connect(pool: &ArbiterPool, addr: std::net::SocketAddr, tls: ClientTls) -> IamClient {
    let client = IamClient::connect(
        pool,
        Arc::new(TcpDialer::new(addr)),
        tls,
        EndpointKind::Protected,
        LinkConfig::default(),
    )
    .unwrap();
    let seen = client.connected(PATIENCE).await.unwrap();
    assert_eq!(seen.identity.unwrap().role, Role::Iam);
    client
}

// --- the echo baseline ---

/// Answers every request with its body.
struct EchoBody;

impl Actor for EchoBody {
    type Context = Context<Self>;
}

impl Handler<Incoming> for EchoBody {
    type Result = Result<Bytes, WireError>;
    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        Ok(msg.body)
    }
}

/// A link acceptor with the protected endpoint's TLS whose `IamSecure` handler echoes.
struct EchoServer {
    addr: std::net::SocketAddr,
    _listener: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    async fn start(node: &Node, pool: &ArbiterPool) -> EchoServer {
        let tls = server_config(
            &node.local.iam_credentials(),
            ClientAuth::Required {
                roots: node.tls_roots.clone(),
                policy: Policy::roles(PROTECTED_ROLES).with_unit(UNIT),
            },
            &TlsOptions::default(),
        )
        .unwrap();
        let echo = EchoBody::start_in_arbiter(&pool.next(), |_| EchoBody);
        let routes = Routes::new().handle(Channel::IamSecure, echo.recipient());
        let acceptor = LinkAcceptor::new(pool.clone(), LinkConfig::default(), tls, routes).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        EchoServer {
            addr,
            _listener: serve_tcp(listener, acceptor),
        }
    }
}
