//! Transport benchmarks: the framed mTLS link through the transport actor versus raw tokio-rustls, and
//! handshakes with token keys versus software keys, all measured in the same run.
//!
//! Run: `cargo bench -p aos-actors --bench transport [-- SCALE] [SECTIONS]` (SCALE multiplies the message
//! counts, default 1; SECTIONS such as `ac` runs only those parts, default `abcd`). Every side runs with the same threads: one worker arbiter for the client end, one for the
//! server end (the actor path's sender, link and handler run on those arbiters too), loopback TCP, P-256
//! token keys in SoftHSM unless said otherwise, resumption off.
//!
//! - (a) 64 KiB messages: `Link::publish` events (16 in flight) into a subscriber, versus `write_all` +
//!   `flush` of the same bytes on a raw tokio-rustls stream read by the peer. Goal ≥ 0.9×.
//! - (b) Pipelined 256 B messages per second: events (256 in flight) and requests (256 in flight).
//! - (c) 1 KiB request/response round trips, one at a time: `Link::request` to an echo handler, versus a raw
//!   tokio-rustls echo. Goal p50 ≤ 1.2×, p99 ≤ 2×.
//! - (d) Full mTLS handshakes per second (`tls::connect` / `tls::accept`, acceptance marker included), both
//!   keys in SoftHSM versus both keys in software (aws-lc-rs). Measured under load (16 handshakes in flight,
//!   the rate a server sustains; goal ≥ 0.85×) and one at a time (the latency of one handshake, where the
//!   token's two signatures sit on the critical path; reported). Sign calls are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ArbiterHandle, Context, Handler, Message};
use aos_actors::net::{
    serve_tcp, ArbiterPool, ClientTls, Event, Incoming, Link, LinkAcceptor, LinkActor, LinkConfig,
    LinkState, Routes, StateChanged, TcpDialer, WireError,
};
use aos_pkcs11::KeyAlgorithm;
use aos_transport::frame::Channel;
use aos_transport::tls::testutil::{id, software_key, Hsm, Pki};
use aos_transport::tls::{
    accept, client_config, connect, server_config, ClientAuth, Credentials, Policy, Role,
    ServerAuth, TlsOptions,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rustls::sign::SigningKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const BIG: usize = 64 * 1024;
const SMALL: usize = 256;
const RTT_BODY: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(30);
/// Handshakes in flight for the "under load" measurement of (d).
const HS_WINDOW: usize = 16;

fn main() {
    let scale: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1);
    let sections = std::env::args()
        .skip(1)
        .find(|a| !a.is_empty() && a.chars().all(|c| matches!(c, 'a'..='d')))
        .unwrap_or_else(|| "abcd".to_owned());
    actix_rt::System::new().block_on(run(scale, sections));
}

async fn run(scale: usize, sections: String) {
    let want = |c: char| sections.contains(c);
    let (mut ratio_a, mut ratio_c50, mut ratio_c99, mut ratio_d, mut ratio_d_seq) =
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    let (mut events_rate, mut requests_rate) = (f64::NAN, f64::NAN);
    // One SoftHSM per side, as two nodes each have their own token.
    let server_hsm = Hsm::new();
    let client_hsm = Hsm::new();
    let pki = Pki::new("unit1");
    let server_key = server_hsm.key("iam", KeyAlgorithm::EccP256);
    let client_key = client_hsm.key("sm", KeyAlgorithm::EccP256);
    let (token_server_signer, token_nanos_s) = Timed::wrap(Arc::new(server_key.clone()));
    let (token_client_signer, token_nanos_c) = Timed::wrap(Arc::new(client_key.clone()));
    let token = Tls::new(
        &pki,
        pki.leaf(&server_key)
            .identity(id("main", Role::Iam))
            .issue(),
        token_server_signer,
        pki.leaf(&client_key).identity(id("n1", Role::Sm)).issue(),
        token_client_signer,
    );
    let client_pool = ArbiterPool::new(1);
    let server_pool = ArbiterPool::new(1);
    let client_arbiter = client_pool.next();
    let server_arbiter = server_pool.next();
    let bench = Bench::start(&token, &client_pool, &server_pool).await;

    println!("transport benchmark (scale {scale}); one client and one server worker arbiter, loopback TCP");
    println!();

    let rounds = 5;

    // (a) 64 KiB throughput.
    if want('a') {
        // 4096 messages (1.3 GB a side per round): with 1024 the ratio swung from 0.6 to 1.3× between runs
        // on the shared 2-core machine.
        let n_big = 4096 * scale;
        let (mut actor_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
        // Warm-up of both paths.
        bench.publish(&client_arbiter, 64, BIG, 16).await;
        raw_stream(&token, &client_arbiter, &server_arbiter, 64, BIG).await;
        for _ in 0..rounds {
            actor_time += bench.publish(&client_arbiter, n_big, BIG, 16).await;
            raw_time += raw_stream(&token, &client_arbiter, &server_arbiter, n_big, BIG).await;
        }
        let bytes = (rounds * n_big * BIG) as f64;
        let actor_mbs = bytes / actor_time.as_secs_f64() / 1e6;
        let raw_mbs = bytes / raw_time.as_secs_f64() / 1e6;
        ratio_a = actor_mbs / raw_mbs;
        println!("(a) 64 KiB messages, {rounds} × {n_big} each side");
        println!("    actor link (publish, 16 in flight)   {actor_mbs:8.1} MB/s");
        println!("    raw tokio-rustls (write_all + flush) {raw_mbs:8.1} MB/s");
        println!("    ratio {ratio_a:.3}× (goal ≥ 0.9×)");
        println!();
    }

    // (b) pipelined 256 B messages.
    if want('b') {
        let n_small = 200_000 * scale;
        bench.publish(&client_arbiter, 10_000, SMALL, 256).await;
        let events = bench.publish(&client_arbiter, n_small, SMALL, 256).await;
        bench.requests(&client_arbiter, 10_000, SMALL, 256).await;
        let requests = bench.requests(&client_arbiter, n_small, SMALL, 256).await;
        let raw_small = raw_stream(&token, &client_arbiter, &server_arbiter, n_small, SMALL).await;
        let per_sec = |d: Duration| n_small as f64 / d.as_secs_f64();
        events_rate = per_sec(events);
        requests_rate = per_sec(requests);
        println!("(b) pipelined 256 B messages, {n_small} each");
        println!(
            "    events   (publish, 256 in flight)    {:10.0} msg/s",
            per_sec(events)
        );
        println!(
            "    requests (answered, 256 in flight)   {:10.0} req/s",
            per_sec(requests)
        );
        println!(
            "    raw tokio-rustls writes, for scale   {:10.0} msg/s",
            per_sec(raw_small)
        );
        println!();
    }

    // (c) 1 KiB round trips.
    if want('c') {
        let n_rtt = 10_000 * scale;
        bench.rtt(&client_arbiter, 1000).await;
        raw_echo(&token, &client_arbiter, &server_arbiter, 1000).await;
        let mut actor_rtt = Vec::new();
        let mut raw_rtt = Vec::new();
        for _ in 0..2 {
            actor_rtt.extend(bench.rtt(&client_arbiter, n_rtt / 2).await);
            raw_rtt.extend(raw_echo(&token, &client_arbiter, &server_arbiter, n_rtt / 2).await);
        }
        let (a50, a99) = percentiles(&mut actor_rtt);
        let (r50, r99) = percentiles(&mut raw_rtt);
        ratio_c50 = a50.as_secs_f64() / r50.as_secs_f64();
        ratio_c99 = a99.as_secs_f64() / r99.as_secs_f64();
        println!("(c) 1 KiB request/response round trips, {n_rtt} each, one at a time");
        println!(
            "    actor link (request → echo handler)  p50 {:7.1} µs  p99 {:7.1} µs",
            us(a50),
            us(a99)
        );
        println!(
            "    raw tokio-rustls echo                p50 {:7.1} µs  p99 {:7.1} µs",
            us(r50),
            us(r99)
        );
        println!("    ratio p50 {ratio_c50:.3}× (goal ≤ 1.2×), p99 {ratio_c99:.3}× (goal ≤ 2×)");
        println!();
    }

    // (d) full handshakes.
    if want('d') {
        let n_hs = 400 * scale;
        let (soft_server, soft_server_signer) = software_key();
        let token_sign = sign_time(&server_key, 500);
        let soft_sign = sign_time(soft_server_signer.as_ref(), 500);
        let (soft_client, soft_client_signer) = software_key();
        let (soft_server_signer, soft_nanos_s) = Timed::wrap(soft_server_signer);
        let (soft_client_signer, soft_nanos_c) = Timed::wrap(soft_client_signer);
        let software = Tls::new(
            &pki,
            pki.leaf(&soft_server)
                .identity(id("main", Role::Iam))
                .issue(),
            soft_server_signer,
            pki.leaf(&soft_client).identity(id("n1", Role::Sm)).issue(),
            soft_client_signer,
        );
        handshakes(&token, &client_arbiter, &server_arbiter, 20, 1).await;
        handshakes(&software, &client_arbiter, &server_arbiter, 20, 1).await;
        let signs_before = (server_key.sign_count(), client_key.sign_count());
        let nanos =
            |a: &AtomicU64, b: &AtomicU64| a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed);
        let token_nanos_before = nanos(&token_nanos_s, &token_nanos_c);
        let soft_nanos_before = nanos(&soft_nanos_s, &soft_nanos_c);
        let (mut token_seq, mut soft_seq) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            token_seq += handshakes(&token, &client_arbiter, &server_arbiter, n_hs, 1).await;
            soft_seq += handshakes(&software, &client_arbiter, &server_arbiter, n_hs, 1).await;
        }
        let token_sign_ns = nanos(&token_nanos_s, &token_nanos_c) - token_nanos_before;
        let soft_sign_ns = nanos(&soft_nanos_s, &soft_nanos_c) - soft_nanos_before;
        let (mut token_load, mut soft_load) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            token_load +=
                handshakes(&token, &client_arbiter, &server_arbiter, n_hs, HS_WINDOW).await;
            soft_load +=
                handshakes(&software, &client_arbiter, &server_arbiter, n_hs, HS_WINDOW).await;
        }
        let server_signs = server_key.sign_count() - signs_before.0;
        let client_signs = client_key.sign_count() - signs_before.1;
        let total = (rounds * n_hs) as u64;
        let rate = |d: Duration| total as f64 / d.as_secs_f64();
        ratio_d = rate(token_load) / rate(soft_load);
        ratio_d_seq = rate(token_seq) / rate(soft_seq);
        println!("(d) full mTLS handshakes (resumption off, P-256), {rounds} × {n_hs} each side and mode");
        println!("    under load ({HS_WINDOW} in flight): what a server sustains");
        println!(
            "      both keys in SoftHSM (TokenKey)    {:8.1} /s",
            rate(token_load)
        );
        println!(
            "      both keys in software (aws-lc-rs)  {:8.1} /s",
            rate(soft_load)
        );
        println!("      ratio {ratio_d:.3}× (goal ≥ 0.85×)");
        println!("    one at a time: the latency of a single handshake");
        println!(
            "      both keys in SoftHSM (TokenKey)    {:8.1} /s",
            rate(token_seq)
        );
        println!(
            "      both keys in software (aws-lc-rs)  {:8.1} /s",
            rate(soft_seq)
        );
        println!("      ratio {ratio_d_seq:.3}×");
        println!(
            "    token signs: server {server_signs}, client {client_signs} for {} handshakes",
            2 * total
        );
        println!(
            "    one P-256 signature alone: token {:.1} µs, software {:.1} µs",
            us(token_sign),
            us(soft_sign)
        );
        let per_hs = |d: Duration| us(d) / total as f64;
        println!(
            "    one at a time, per handshake: token {:.1} µs (of which signing {:.1}), software {:.1} µs (signing {:.1})",
            per_hs(token_seq),
            per_hs(Duration::from_nanos(token_sign_ns)),
            per_hs(soft_seq),
            per_hs(Duration::from_nanos(soft_sign_ns)),
        );
        assert_eq!(
            server_signs,
            2 * total,
            "every handshake was signed by the server's token"
        );
        assert_eq!(
            client_signs,
            2 * total,
            "every handshake was signed by the client's token"
        );
        println!();
    }

    println!("summary");
    println!(
        "  (a) 64 KiB throughput     {ratio_a:.3}×   goal ≥ 0.9   {}",
        verdict(ratio_a >= 0.9)
    );
    println!(
        "  (b) 256 B pipelined       {:.0} events/s, {:.0} requests/s",
        events_rate, requests_rate
    );
    println!(
        "  (c) 1 KiB RTT p50         {ratio_c50:.3}×   goal ≤ 1.2   {}",
        verdict(ratio_c50 <= 1.2)
    );
    println!(
        "  (c) 1 KiB RTT p99         {ratio_c99:.3}×   goal ≤ 2     {}",
        verdict(ratio_c99 <= 2.0)
    );
    println!(
        "  (d) handshakes token/soft {ratio_d:.3}×   goal ≥ 0.85  {}  (one at a time: {ratio_d_seq:.3}×)",
        verdict(ratio_d >= 0.85)
    );
    bench.link.close("benchmark over").await;
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

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let n = samples.len();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

/// Server and client TLS configurations of one key setup.
struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl Tls {
    fn new(
        pki: &Pki,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: Arc<dyn SigningKey>,
        client_chain: Vec<CertificateDer<'static>>,
        client_key: Arc<dyn SigningKey>,
    ) -> Tls {
        let options = TlsOptions::default();
        assert!(!options.session_resumption);
        let server_creds = Credentials::with(server_chain, server_key).unwrap();
        let client_creds = Credentials::with(client_chain, client_key).unwrap();
        let server = server_config(
            &server_creds,
            ClientAuth::Required {
                roots: pki.roots(),
                policy: Policy::roles([Role::Sm]),
            },
            &options,
        )
        .unwrap();
        let client = client_config(
            ServerAuth::Identity {
                roots: pki.roots(),
                policy: Policy::roles([Role::Iam]),
            },
            Some(&client_creds),
            &options,
        )
        .unwrap();
        Tls { server, client }
    }
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("main").unwrap()
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
    tokio::time::timeout(TIMEOUT * 10, rx)
        .await
        .expect("benchmark step hung")
        .expect("benchmark task panicked")
}

/// Keep `window` futures from `make` in flight until `n` have completed.
async fn pipeline<F, Fut>(n: usize, window: usize, mut make: F)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut in_flight = FuturesUnordered::new();
    for i in 0..n {
        if in_flight.len() >= window {
            in_flight.next().await;
        }
        in_flight.push(make(i));
    }
    while in_flight.next().await.is_some() {}
}

// --- the actor path ---

/// Counts event bytes; reports the instant the expected amount has arrived.
#[derive(Default)]
struct Sink {
    expected: usize,
    got: usize,
    done: Option<oneshot::Sender<Instant>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Expect {
    bytes: usize,
    done: oneshot::Sender<Instant>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Expect> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Expect, _: &mut Context<Self>) {
        self.expected = msg.bytes;
        self.got = 0;
        self.done = Some(msg.done);
    }
}

impl Handler<Event> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Event, _: &mut Context<Self>) {
        self.got += msg.body.len();
        if self.got >= self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(Instant::now());
            }
        }
    }
}

/// Answers every request with its body.
struct EchoBody;

impl Actor for EchoBody {
    type Context = Context<Self>;
}

impl Handler<Incoming> for EchoBody {
    type Result = Result<bytes::Bytes, WireError>;
    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        Ok(msg.body)
    }
}

/// Forwards state changes to the benchmark.
struct StateTap(mpsc::UnboundedSender<LinkState>);

impl Actor for StateTap {
    type Context = Context<Self>;
}

impl Handler<StateChanged> for StateTap {
    type Result = ();
    fn handle(&mut self, msg: StateChanged, _: &mut Context<Self>) {
        let _ = self.0.send(msg.state);
    }
}

/// A server link acceptor and a connected client link, with the server's sink and echo handler on the
/// server arbiter.
struct Bench {
    link: Link,
    sink: actix::Addr<Sink>,
    _listener: tokio::task::JoinHandle<()>,
}

impl Bench {
    async fn start(tls: &Tls, client_pool: &ArbiterPool, server_pool: &ArbiterPool) -> Bench {
        let config = LinkConfig {
            max_frame_size: 1 << 20,
            ..LinkConfig::default()
        };
        let server_arbiter = server_pool.next();
        let sink = Sink::start_in_arbiter(&server_arbiter, |_| Sink::default());
        let echo = EchoBody::start_in_arbiter(&server_arbiter, |_| EchoBody);
        let routes = Routes::new()
            .subscribe(Channel::CmOpen, sink.clone().recipient())
            .handle(Channel::IamOpen, echo.recipient());
        let acceptor = LinkAcceptor::new(
            server_pool.clone(),
            config.clone(),
            tls.server.clone(),
            routes,
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = serve_tcp(listener, acceptor);
        let (tx, mut states) = mpsc::unbounded_channel();
        let tap = StateTap(tx).start();
        let link = LinkActor::dial(
            client_pool,
            config,
            Arc::new(TcpDialer::new(addr)),
            ClientTls {
                config: tls.client.clone(),
                server_name: server_name(),
            },
            Routes::new().watch_state(tap.recipient()),
        )
        .unwrap();
        loop {
            let state = tokio::time::timeout(TIMEOUT, states.recv())
                .await
                .expect("link connects")
                .unwrap();
            match state {
                LinkState::Connected { .. } => break,
                LinkState::Disconnected { reason, .. } => panic!("link failed: {reason}"),
                _ => {}
            }
        }
        Bench {
            link,
            sink,
            _listener: listener,
        }
    }

    /// Publish `n` events of `size` bytes with `window` in flight, from the client arbiter; the time until
    /// the server's subscriber has them all.
    async fn publish(
        &self,
        arbiter: &ArbiterHandle,
        n: usize,
        size: usize,
        window: usize,
    ) -> Duration {
        let (done, arrived) = oneshot::channel();
        self.sink
            .send(Expect {
                bytes: n * size,
                done,
            })
            .await
            .unwrap();
        let link = self.link.clone();
        let start = on(arbiter, async move {
            // One body shared by every message (`Bytes` clones are reference counts), as the raw path
            // writes one buffer again and again.
            let body = bytes::Bytes::from(vec![0xA5u8; size]);
            let start = Instant::now();
            pipeline(n, window, |_| {
                let publish = link.publish(Channel::CmOpen, body.clone());
                async move { publish.await.unwrap() }
            })
            .await;
            start
        })
        .await;
        let end = tokio::time::timeout(TIMEOUT * 10, arrived)
            .await
            .expect("all events arrive")
            .unwrap();
        end - start
    }

    /// `n` requests of `size` bytes with `window` in flight; the total time.
    async fn requests(
        &self,
        arbiter: &ArbiterHandle,
        n: usize,
        size: usize,
        window: usize,
    ) -> Duration {
        let link = self.link.clone();
        on(arbiter, async move {
            let body = bytes::Bytes::from(vec![0x5Au8; size]);
            let start = Instant::now();
            pipeline(n, window, |_| {
                let request = link.request(Channel::IamOpen, body.clone());
                async move {
                    assert_eq!(request.await.unwrap().len(), size);
                }
            })
            .await;
            start.elapsed()
        })
        .await
    }

    /// `n` sequential 1 KiB requests from the client arbiter; each round trip.
    async fn rtt(&self, arbiter: &ArbiterHandle, n: usize) -> Vec<Duration> {
        let link = self.link.clone();
        on(arbiter, async move {
            let body = bytes::Bytes::from(vec![0x11u8; RTT_BODY]);
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                let answer = link.request(Channel::IamOpen, body.clone()).await.unwrap();
                samples.push(start.elapsed());
                assert_eq!(answer.len(), RTT_BODY);
            }
            samples
        })
        .await
    }
}

// --- the raw tokio-rustls path ---

/// A raw mTLS connection: a server task on `server` accepting one connection and running `serve` on it,
/// and the client stream made on `client` and handed to `drive`.
async fn raw<S, SF, D, DF, T>(
    tls: &Tls,
    client: &ArbiterHandle,
    server: &ArbiterHandle,
    serve: S,
    drive: D,
) -> T
where
    S: FnOnce(tokio_rustls::server::TlsStream<TcpStream>) -> SF + Send + 'static,
    SF: Future<Output = ()> + Send,
    D: FnOnce(tokio_rustls::client::TlsStream<TcpStream>) -> DF + Send + 'static,
    DF: Future<Output = T> + Send,
    T: Send + 'static,
{
    let (port_tx, port_rx) = oneshot::channel::<SocketAddr>();
    let acceptor = TlsAcceptor::from(tls.server.clone());
    server.spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        port_tx.send(listener.local_addr().unwrap()).unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (stream, _) = accept(&acceptor, tcp, TIMEOUT).await.unwrap();
        serve(stream).await;
    });
    let addr = port_rx.await.unwrap();
    let connector = TlsConnector::from(tls.client.clone());
    on(client, async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (stream, _) = connect(&connector, tcp, server_name(), TIMEOUT)
            .await
            .unwrap();
        drive(stream).await
    })
    .await
}

/// `n` writes of `size` bytes (write_all + flush each) read by the peer; the time until the peer has all.
async fn raw_stream(
    tls: &Tls,
    client: &ArbiterHandle,
    server: &ArbiterHandle,
    n: usize,
    size: usize,
) -> Duration {
    let (done, arrived) = oneshot::channel();
    let start = raw(
        tls,
        client,
        server,
        move |mut stream| async move {
            let mut buf = vec![0u8; BIG];
            let mut got = 0;
            while got < n * size {
                let read = stream.read(&mut buf).await.unwrap();
                assert!(read > 0, "stream ended early");
                got += read;
            }
            let _ = done.send(Instant::now());
        },
        move |mut stream| async move {
            let body = vec![0xA5u8; size];
            let start = Instant::now();
            for _ in 0..n {
                stream.write_all(&body).await.unwrap();
                stream.flush().await.unwrap();
            }
            // Keep the stream open until the peer has read everything.
            let mut rest = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut rest)).await;
            (start, stream)
        },
    )
    .await;
    let end = tokio::time::timeout(TIMEOUT * 10, arrived)
        .await
        .expect("raw bytes arrive")
        .unwrap();
    end - start.0
}

/// `n` sequential 1 KiB echo round trips on a raw stream.
async fn raw_echo(
    tls: &Tls,
    client: &ArbiterHandle,
    server: &ArbiterHandle,
    n: usize,
) -> Vec<Duration> {
    raw(
        tls,
        client,
        server,
        |mut stream| async move {
            let mut buf = vec![0u8; RTT_BODY];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
        },
        move |mut stream| async move {
            let body = vec![0x11u8; RTT_BODY];
            let mut back = vec![0u8; RTT_BODY];
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                stream.write_all(&body).await.unwrap();
                stream.flush().await.unwrap();
                stream.read_exact(&mut back).await.unwrap();
                samples.push(start.elapsed());
            }
            samples
        },
    )
    .await
}

/// `n` full handshakes (TCP connect, TLS, acceptance marker), `window` of them in flight; the total time.
/// The server handshakes each accepted connection in its own task on its arbiter, as `serve_tcp` does.
async fn handshakes(
    tls: &Tls,
    client: &ArbiterHandle,
    server: &ArbiterHandle,
    n: usize,
    window: usize,
) -> Duration {
    let (port_tx, port_rx) = oneshot::channel::<SocketAddr>();
    let acceptor = TlsAcceptor::from(tls.server.clone());
    server.spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        port_tx.send(listener.local_addr().unwrap()).unwrap();
        for _ in 0..n {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            actix_rt::spawn(async move {
                let (stream, peer) = accept(&acceptor, tcp, TIMEOUT).await.unwrap();
                assert!(peer.is_some());
                drop(stream);
            });
        }
    });
    let addr = port_rx.await.unwrap();
    let connector = TlsConnector::from(tls.client.clone());
    on(client, async move {
        let start = Instant::now();
        pipeline(n, window, |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let (stream, peer) = connect(&connector, tcp, server_name(), TIMEOUT)
                    .await
                    .unwrap();
                assert!(peer.is_some());
                drop(stream);
            }
        })
        .await;
        start.elapsed()
    })
    .await
}

/// A signing key that adds up the time its signatures take (to see what the token costs in a handshake).
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn SigningKey>,
    nanos: Arc<AtomicU64>,
}

#[derive(Debug)]
struct TimedSigner {
    inner: Box<dyn rustls::sign::Signer>,
    nanos: Arc<AtomicU64>,
}

impl Timed {
    fn wrap(inner: Arc<dyn SigningKey>) -> (Arc<dyn SigningKey>, Arc<AtomicU64>) {
        let nanos = Arc::new(AtomicU64::new(0));
        let key = Timed {
            inner,
            nanos: nanos.clone(),
        };
        (Arc::new(key), nanos)
    }
}

impl SigningKey for Timed {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        let inner = self.inner.choose_scheme(offered)?;
        Some(Box::new(TimedSigner {
            inner,
            nanos: self.nanos.clone(),
        }))
    }

    fn public_key(&self) -> Option<rustls_pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.inner.algorithm()
    }
}

impl rustls::sign::Signer for TimedSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let start = Instant::now();
        let signature = self.inner.sign(message);
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        signature
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        self.inner.scheme()
    }
}

/// Mean time of one TLS 1.3 CertificateVerify-sized signature with `key` (P-256, SHA-256).
fn sign_time(key: &dyn SigningKey, n: u32) -> Duration {
    let signer = key
        .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
        .expect("P-256 key");
    let message = [0x20u8; 130];
    let start = Instant::now();
    for _ in 0..n {
        signer.sign(&message).unwrap();
    }
    start.elapsed() / n
}
