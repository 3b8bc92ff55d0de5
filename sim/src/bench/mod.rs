//! Benchmark figures for a unit of `n` nodes: the time to provision it against the key-generation bound,
//! memory per node, and permission checks per second (`aos-sim --bench 10,100,1000`).
//!
//! The bound ([`keygen`]): the unit's whole key set generated on every core with nothing else running, a
//! time no schedule of the provisioning can beat. The ratio says how close cloud-driven provisioning gets.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

mod keygen;

pub use keygen::KeygenFigure;

use crate::scenario::LinkKind;
use crate::unit::{
    service_ident, service_spec, KeyProfile, SimUnit, UnitError, UnitOptions, PATIENCE,
};

/// How to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Link kind of the unit.
    pub link: LinkKind,
    /// Certificate modules and key algorithms of its nodes.
    pub keys: KeyProfile,
    /// Secondaries provisioned at once.
    pub parallel: usize,
    /// Seconds of permission checks.
    pub check_secs: f64,
}

/// The figures of one unit size.
#[derive(Debug, Clone, Serialize)]
pub struct BenchFigures {
    /// Nodes.
    pub nodes: usize,
    /// CPU cores.
    pub cores: usize,
    /// Building and starting the unit (tokens, cloud, every node), seconds.
    pub start_secs: f64,
    /// Provisioning every node through the cloud, seconds.
    pub provision_secs: f64,
    /// The key profile of the nodes.
    pub profile: String,
    /// The key pairs of the unit's profile, per algorithm, with their generation times.
    pub keygens: Vec<KeygenFigure>,
    /// Key pairs the unit's profile has provisioning generate (the bound's set; keys generated again on a
    /// retry count in `keygen_cpu_secs` only).
    pub keys: usize,
    /// The bound: the unit's key set generated on every core with nothing else running (staged, as
    /// provisioning does it), seconds.
    pub bound_secs: f64,
    /// provision / bound.
    pub ratio: f64,
    /// CPU time the run's own key generations took (the generating threads' CPU, staging included),
    /// seconds: the very keys the run generated, with their primes (an RSA-2048 generation takes anywhere
    /// from 50 to 400 ms with the primes it draws).
    pub keygen_cpu_secs: f64,
    /// The run's own bound: `keygen_cpu_secs / cores`, seconds.
    pub run_bound_secs: f64,
    /// provision / run bound.
    pub run_ratio: f64,
    /// Σ keys × one direct generation alone / cores, seconds: the bound had the keys been generated the
    /// usual PKCS#11 way, a `C_GenerateKeyPair` of token objects, which on SoftHSM costs several times the
    /// staged generation for elliptic curves.
    pub direct_bound_secs: f64,
    /// provision / direct bound.
    pub direct_ratio: f64,
    /// One password verifier derivation alone (PBKDF2, which every node's provisioner runs once), ms.
    pub verifier_ms: f64,
    /// The bound plus every node's verifier derivation, divided by cores: the CPU floor of the work every
    /// node must do whatever the schedule, seconds.
    pub floor_secs: f64,
    /// provision / floor.
    pub floor_ratio: f64,
    /// Σ of the key generations' own durations while provisioning (they slow down when they contend), s.
    pub keygen_sum_secs: f64,
    /// TLS handshakes completed while provisioning, both ends counted (every end is in this process).
    pub handshakes: u64,
    /// TLS handshakes refused while provisioning, either end.
    pub handshakes_refused: u64,
    /// CPU time the process used while provisioning (all threads, user + system), seconds: compared
    /// with `cores × provision_secs` it tells whether provisioning was CPU-bound.
    pub provision_cpu_secs: f64,
    /// Resident memory after provisioning, MiB.
    pub rss_mib: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Peak RSS per node, MiB.
    pub rss_per_node_mib: f64,
    /// Permission checks answered per second (main node's IAM, 4 clients × 32 in flight).
    pub checks_per_sec: f64,
    /// Permission checks that did not succeed (must be 0: the figure counts successes only).
    pub check_errors: u64,
    /// Nodes that failed to provision.
    pub failed: usize,
    /// Why the first of them failed.
    pub first_failure: Option<String>,
}

impl std::fmt::Display for BenchFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nodes {:>5} ({}) | start {:>7.2}s | provision {:>7.2}s vs bound {:>7.2}s ({} on {} cores) = {:.2}× (the run's own keygens: {:.2}s CPU / {} cores = {:.2}s, {:.2}×; direct-keygen bound ({}): {:.2}s, {:.2}×; floor with {} verifiers × {:.1} ms: {:.2}s, {:.2}×), CPU {:.0}% of {} cores, {} handshakes ({} refused) | RSS {:.0} MiB, peak {:.0} MiB, {:.2} MiB/node | {:.0} checks/s ({} errors) | {} failed",
            self.nodes,
            self.profile,
            self.start_secs,
            self.provision_secs,
            self.bound_secs,
            self.keygen_terms(|k| k.staged_ms),
            self.cores,
            self.ratio,
            self.keygen_cpu_secs,
            self.cores,
            self.run_bound_secs,
            self.run_ratio,
            self.keygen_terms(|k| k.direct_ms),
            self.direct_bound_secs,
            self.direct_ratio,
            self.nodes,
            self.verifier_ms,
            self.floor_secs,
            self.floor_ratio,
            100.0 * self.provision_cpu_secs / (self.provision_secs * self.cores as f64).max(1e-9),
            self.cores,
            self.handshakes,
            self.handshakes_refused,
            self.rss_mib,
            self.peak_rss_mib,
            self.rss_per_node_mib,
            self.checks_per_sec,
            self.check_errors,
            self.failed
        )?;
        if let Some(why) = &self.first_failure {
            write!(f, " (first: {why})")?;
        }
        Ok(())
    }
}

impl BenchFigures {
    /// `301 × ECDSA P-384 1.2 ms + 101 × RSA-2048 125.0 ms`, with `ms` picking which time.
    fn keygen_terms(&self, ms: impl Fn(&KeygenFigure) -> f64) -> String {
        let terms: Vec<String> = self
            .keygens
            .iter()
            .map(|k| format!("{} × {} {:.1} ms", k.keys, k.algorithm, ms(k)))
            .collect();
        terms.join(" + ")
    }
}

/// Direct key generations timed alone per algorithm for the direct bound.
const DIRECT_ROUNDS: u32 = 20;

/// Build a unit of `nodes`, provision it, check permissions, and measure. Must run in an actix system.
pub async fn bench(nodes: usize, options: &BenchOptions) -> Result<BenchFigures, UnitError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Measured before the unit exists: timing them alone on the unit's arbiter would stall every node's
    // actors meanwhile, and their time-outs would fire into the provisioning.
    let bound = keygen::measure(options.keys, nodes, cores, DIRECT_ROUNDS)?;
    let started = Instant::now();
    let unit = SimUnit::start(UnitOptions {
        nodes,
        link: options.link,
        keys: options.keys,
        ..UnitOptions::default()
    })
    .await?;
    let start_secs = started.elapsed().as_secs_f64();
    let verifier = verifier_alone()?;
    let all: Vec<usize> = (0..nodes).collect();
    // The clock starts once the main node's CM reaches the cloud (a start-up cost, not provisioning).
    unit.wait_registered(&[0]).await?;
    let keygen_before = aos_pkcs11::keys::keygen_time();
    let keygen_cpu_before = aos_pkcs11::keys::keygen_cpu_time();
    let handshakes_before = aos_transport::tls::handshake_stats();
    let cpu_before = cpu_secs();
    let started = Instant::now();
    let results = unit.provision(&all, options.parallel).await;
    let provision_secs = started.elapsed().as_secs_f64();
    let provision_cpu_secs = cpu_secs() - cpu_before;
    let handshakes_after = aos_transport::tls::handshake_stats();
    let refused =
        |h: &aos_transport::tls::HandshakeStats| -> u64 { h.refused.iter().map(|(_, n)| n).sum() };
    let handshakes = handshakes_after.completed - handshakes_before.completed;
    let handshakes_refused = refused(&handshakes_after) - refused(&handshakes_before);
    let keygen_sum_secs = (aos_pkcs11::keys::keygen_time() - keygen_before).as_secs_f64();
    let keygen_cpu_secs = (aos_pkcs11::keys::keygen_cpu_time() - keygen_cpu_before).as_secs_f64();
    let run_bound_secs = keygen_cpu_secs / cores as f64;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let first_failure = results
        .iter()
        .find_map(|(_, r)| r.as_ref().err())
        .map(ToString::to_string);
    let keys: usize = bound.figures.iter().map(|k| k.keys).sum();
    let (bound_secs, direct_bound_secs) = (bound.bound_secs, bound.direct_bound_secs);
    let floor_secs = bound_secs + nodes as f64 * verifier.as_secs_f64() / cores as f64;
    let (rss_mib, peak_rss_mib) = memory();
    let (checks_per_sec, check_errors) =
        checks(&unit, options.check_secs).await.unwrap_or((0.0, 0));
    unit.stop().await;
    drop(bound.scratch);
    Ok(BenchFigures {
        nodes,
        cores,
        start_secs,
        provision_secs,
        profile: options.keys.to_string(),
        keygens: bound.figures,
        keys,
        bound_secs,
        ratio: provision_secs / bound_secs.max(1e-9),
        keygen_cpu_secs,
        run_bound_secs,
        run_ratio: provision_secs / run_bound_secs.max(1e-9),
        direct_bound_secs,
        direct_ratio: provision_secs / direct_bound_secs.max(1e-9),
        verifier_ms: verifier.as_secs_f64() * 1000.0,
        floor_secs,
        floor_ratio: provision_secs / floor_secs.max(1e-9),
        keygen_sum_secs,
        handshakes,
        handshakes_refused,
        provision_cpu_secs,
        rss_mib,
        peak_rss_mib,
        rss_per_node_mib: peak_rss_mib / nodes as f64,
        checks_per_sec,
        check_errors,
        failed,
        first_failure,
    })
}

/// CPU time of the whole process so far (user + system, every thread), seconds: Linux `/proc/self/stat`,
/// whose times count in USER_HZ (100 per second on every Linux architecture we run on). 0 elsewhere.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may contain spaces; the fields after its closing parenthesis are fixed: utime and
    // stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One password verifier derivation alone: the mean of 5.
fn verifier_alone() -> Result<Duration, UnitError> {
    let password = aos_actors::iam::provisioner::Password::new("bench-password-1234");
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        aos_actors::iam::provisioner::Verifier::new(&password)
            .map_err(|e| UnitError::op("bench", format!("password verifier: {e}")))?;
    }
    Ok(started.elapsed() / rounds)
}

/// Resident and peak resident memory of the process, MiB (Linux `/proc/self/status`).
pub fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Permission checks per second against the main node for `secs`: a service on the first secondary (or
/// the main node alone), 4 functional-server clients with 32 checks in flight each.
async fn checks(unit: &SimUnit, secs: f64) -> Result<(f64, u64), UnitError> {
    let node = usize::from(unit.nodes.len() > 1);
    let grant = vec![("get".to_owned(), "r".to_owned())];
    unit.deploy(node, vec![service_spec("bench", "vis", &grant)])
        .await?;
    let secret = unit.nodes[node]
        .runner
        .secret_of(&service_ident("bench"))
        .ok_or_else(|| UnitError::op(&unit.nodes[node].name, "the service holds no secret"))?;
    let mut checkers = Vec::new();
    for _ in 0..4 {
        let c = unit.checker()?;
        c.client()
            .connected(PATIENCE)
            .await
            .map_err(|e| UnitError::op("main", e))?;
        checkers.push(c);
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let counts = futures_util::stream::iter(0..checkers.len() * 32)
        .map(|i| {
            let checker = checkers[i % checkers.len()].clone();
            let secret = secret.clone();
            async move {
                let (mut ok, mut errors) = (0u64, 0u64);
                while Instant::now() < end {
                    match checker.authorize(&secret, "vis", "get").await {
                        Ok(a) if a.permission == "r" => ok += 1,
                        _ => errors += 1,
                    }
                }
                (ok, errors)
            }
        })
        .buffer_unordered(usize::MAX)
        .collect::<Vec<(u64, u64)>>()
        .await;
    let ok: u64 = counts.iter().map(|c| c.0).sum();
    let errors: u64 = counts.iter().map(|c| c.1).sum();
    Ok((ok as f64 / started.elapsed().as_secs_f64(), errors))
}
