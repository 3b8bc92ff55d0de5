//! The key-generation bound of a unit: its whole key set generated with nothing else running, on every
//! core at once, on scratch tokens of a SoftHSM store of its own.
//!
//! Provisioning generates one key pair per certificate module of every node (the unit's [`KeyProfile`]
//! says which, in which algorithm). Generating exactly that set, `cores` threads taking the next key from
//! one list, measures `Σ key generation / cores` directly, with the contention of busy cores and the luck
//! of the RSA primes over as many keys as the unit has (40 RSA-2048 generations timed one after the other
//! gave anywhere from 113 to 155 ms each from one run to the next).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aos_pkcs11::{KeyAlgorithm, Module, Pin, Token, TokenSelector};
use serde::Serialize;

use crate::tokens::TokenStore;
use crate::unit::{KeyProfile, UnitError};

/// The key generations of one algorithm in a unit.
#[derive(Debug, Clone, Serialize)]
pub struct KeygenFigure {
    /// The algorithm.
    pub algorithm: String,
    /// Key pairs of it the unit's provisioning generates.
    pub keys: usize,
    /// One generation while the bound was measured (staged, as provisioning does it, with every core
    /// generating), milliseconds (mean).
    pub staged_ms: f64,
    /// One generation alone, direct (`C_GenerateKeyPair` of token objects, the usual PKCS#11 way),
    /// milliseconds (mean of a sample).
    pub direct_ms: f64,
}

/// The measured bound.
pub struct KeygenBound {
    /// Per algorithm.
    pub figures: Vec<KeygenFigure>,
    /// Generating the unit's key set on every core, seconds: the bound.
    pub bound_secs: f64,
    /// Σ keys × direct generation alone / cores, seconds.
    pub direct_bound_secs: f64,
    /// The scratch store's directory (its module is unloaded already, so the unit's memory figures do not
    /// count it). Keep it until the run is over: removing thousands of token files just before would make
    /// the file system skip their inodes while the unit creates its own (ext4 without a journal passes
    /// over recently freed inodes).
    pub scratch: tempfile::TempDir,
}

const USER_PIN: &str = "bench-user-1234";
const SO_PIN: &str = "bench-so-1234";

/// Measure the bound of a unit of `nodes` with `profile` on `cores` threads, and time `direct_rounds`
/// direct generations of each algorithm alone.
pub fn measure(
    profile: KeyProfile,
    nodes: usize,
    cores: usize,
    direct_rounds: u32,
) -> Result<KeygenBound, UnitError> {
    let keys: Vec<KeyAlgorithm> = profile
        .modules(true)
        .iter()
        .chain((1..nodes).flat_map(|_| profile.modules(false)))
        .map(|m| m.algorithm)
        .collect();
    let temp = tempfile::Builder::new()
        .prefix("aos-sim-bench-")
        .tempdir()
        .map_err(|e| UnitError::op("bench", format!("scratch directory: {e}")))?;
    let store = TokenStore::create(temp.path())?;
    let module = store.module().clone();
    // Tokens are made one after the other (SoftHSM has one free slot at a time) and logged in before the
    // clock starts.
    let mut tokens = Vec::with_capacity(cores);
    for t in 0..cores {
        tokens.push(scratch_token(&module, &format!("bench-{t}"))?);
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread: Vec<Result<Vec<(KeyAlgorithm, Duration)>, UnitError>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = tokens
                .iter()
                .map(|token| {
                    let (keys, next) = (&keys, &next);
                    scope.spawn(move || generate_share(token, keys, next))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(UnitError::op("bench", "a key generation thread panicked"))
                    })
                })
                .collect()
        });
    let bound_secs = started.elapsed().as_secs_f64();
    drop(tokens);
    let mut timed = Vec::with_capacity(keys.len());
    for share in per_thread {
        timed.extend(share?);
    }
    let mut figures: Vec<KeygenFigure> = Vec::new();
    let mut direct_bound_secs = 0.0;
    for algorithm in distinct(&keys) {
        let times: Vec<Duration> = timed
            .iter()
            .filter(|(a, _)| *a == algorithm)
            .map(|(_, d)| *d)
            .collect();
        let staged =
            times.iter().sum::<Duration>() / u32::try_from(times.len().max(1)).unwrap_or(1);
        let direct = direct_alone(&module, algorithm, direct_rounds)?;
        direct_bound_secs += times.len() as f64 * direct.as_secs_f64() / cores as f64;
        figures.push(KeygenFigure {
            algorithm: algorithm.to_string(),
            keys: times.len(),
            staged_ms: staged.as_secs_f64() * 1000.0,
            direct_ms: direct.as_secs_f64() * 1000.0,
        });
    }
    drop(module);
    drop(store);
    Ok(KeygenBound {
        figures,
        bound_secs,
        direct_bound_secs,
        scratch: temp,
    })
}

/// The algorithms of `keys`, each once, in order of appearance.
fn distinct(keys: &[KeyAlgorithm]) -> Vec<KeyAlgorithm> {
    let mut out: Vec<KeyAlgorithm> = Vec::new();
    for k in keys {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}

/// A new scratch token `label`, logged in.
fn scratch_token(module: &Arc<Module>, label: &str) -> Result<Arc<Token>, UnitError> {
    let err = |e: aos_pkcs11::Error| UnitError::op(label, e);
    aos_pkcs11::take_ownership(
        module,
        &TokenSelector::Label(label.into()),
        label,
        &Pin::new(SO_PIN),
        &Pin::new(USER_PIN),
    )
    .map_err(err)?;
    Token::open(
        module.clone(),
        TokenSelector::Label(label.into()),
        Pin::new(USER_PIN),
    )
    .map_err(err)
}

/// Take keys from `keys` (the next index in `next`) until none is left, generating each staged on
/// `token`; returns each key's algorithm and time.
fn generate_share(
    token: &Token,
    keys: &[KeyAlgorithm],
    next: &AtomicUsize,
) -> Result<Vec<(KeyAlgorithm, Duration)>, UnitError> {
    let err = |e: aos_pkcs11::Error| UnitError::op(token.label(), e);
    let mut out = Vec::new();
    while let Some(algorithm) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
        let started = Instant::now();
        token
            .generate_key_pair("scratch", *algorithm)
            .map_err(err)?;
        out.push((*algorithm, started.elapsed()));
    }
    Ok(out)
}

/// One direct `algorithm` generation alone: the mean of `rounds` on a scratch token of its own.
fn direct_alone(
    module: &Arc<Module>,
    algorithm: KeyAlgorithm,
    rounds: u32,
) -> Result<Duration, UnitError> {
    let label = format!("bench-direct-{algorithm}");
    let token = scratch_token(module, &label)?;
    let err = |e: aos_pkcs11::Error| UnitError::op(&label, e);
    let rounds = rounds.max(1);
    let started = Instant::now();
    for _ in 0..rounds {
        token
            .generate_key_pair_direct("scratch", algorithm)
            .map_err(err)?;
    }
    Ok(started.elapsed() / rounds)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_bound_generates_the_units_key_set_and_times_it() {
        let bound = measure(KeyProfile::P256, 3, 2, 2).unwrap();
        assert_eq!(bound.figures.len(), 1);
        let p256 = &bound.figures[0];
        assert_eq!(p256.algorithm, KeyAlgorithm::EccP256.to_string());
        assert_eq!(p256.keys, 9, "3 modules on each of 3 nodes");
        assert!(p256.staged_ms > 0.0 && p256.direct_ms > 0.0);
        assert!(bound.bound_secs > 0.0 && bound.direct_bound_secs > 0.0);

        let aoscore = measure(KeyProfile::AosCore, 2, 2, 2).unwrap();
        let keys: Vec<(String, usize)> = aoscore
            .figures
            .iter()
            .map(|f| (f.algorithm.clone(), f.keys))
            .collect();
        assert_eq!(
            keys,
            [
                (KeyAlgorithm::EccP384.to_string(), 7),
                (KeyAlgorithm::Rsa2048.to_string(), 3)
            ]
        );
    }
}
