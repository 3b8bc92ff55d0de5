//! The provisioning password: a PBKDF2 verifier (never the password) and attempt limiting.

use std::num::NonZeroU32;
use std::time::Duration;

use aws_lc_rs::pbkdf2;
use serde::{Deserialize, Serialize};

/// The provisioning password (zeroized on drop, `Debug` redacted).
pub type Password = aos_pkcs11::Pin;

const ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Failures allowed before each further attempt must wait.
pub const FREE_ATTEMPTS: u32 = 3;
/// Wait after the first failure beyond the free ones; doubles with each further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// PBKDF2-HMAC-SHA256 verifier of a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    /// Salt, hex.
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Derived key, hex.
    pub hash: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of `password` with a fresh random salt.
    pub fn new(password: &Password) -> Result<Verifier, String> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        let mut hash = [0u8; HASH_LEN];
        let iterations = NonZeroU32::new(ITERATIONS).ok_or("zero iterations")?;
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.expose().as_bytes(),
            &mut hash,
        );
        Ok(Verifier {
            salt: hex::encode(salt),
            iterations: ITERATIONS,
            hash: hex::encode(hash),
        })
    }

    /// [`Verifier::new`] on tokio's blocking pool: a derivation takes about 10 ms of CPU, which would stall
    /// every actor of the caller's arbiter (and, with many nodes in one process, make their derivations
    /// take turns on one thread).
    pub async fn derive(password: &Password) -> Result<Verifier, String> {
        let password = password.clone();
        tokio::task::spawn_blocking(move || Verifier::new(&password))
            .await
            .map_err(|e| format!("password verifier derivation: {e}"))?
    }

    /// [`Verifier::matches`] on tokio's blocking pool (see [`Verifier::derive`]). Errors when the
    /// derivation could not run (the runtime is shutting down): that is no answer, not a mismatch.
    pub async fn check(&self, password: &Password) -> Result<bool, String> {
        let (verifier, password) = (self.clone(), password.clone());
        tokio::task::spawn_blocking(move || verifier.matches(&password))
            .await
            .map_err(|e| format!("password verifier check: {e}"))
    }

    /// Whether `password` is the one this verifier was made from (constant time).
    pub fn matches(&self, password: &Password) -> bool {
        let (Ok(salt), Ok(hash), Some(iterations)) = (
            hex::decode(&self.salt),
            hex::decode(&self.hash),
            NonZeroU32::new(self.iterations),
        ) else {
            return false;
        };
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.expose().as_bytes(),
            &hash,
        )
        .is_ok()
    }
}

/// Remembers, for this process only, the last password that passed verification, as a keyed hash under a
/// random per-process key: repeated checks of the same password (FinishProvisioning after Start, one
/// CreateKey per cert type) then cost one HMAC instead of a PBKDF2 derivation each. A different password
/// still goes through PBKDF2 (and the attempt limiting). Forget it whenever the verifier changes.
pub struct PasswordMemo {
    key: aws_lc_rs::hmac::Key,
    remembered: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl PasswordMemo {
    /// An empty memo with a fresh random key.
    pub fn new() -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .map_err(|e| e.to_string())?;
        Ok(PasswordMemo {
            key,
            remembered: None,
        })
    }

    fn tag(&self, password: &Password) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(
            aws_lc_rs::hmac::sign(&self.key, password.expose().as_bytes())
                .as_ref()
                .to_vec(),
        )
    }

    /// Remember `password` as verified.
    pub fn remember(&mut self, password: &Password) {
        self.remembered = Some(self.tag(password));
    }

    /// Whether `password` is the remembered one (constant time).
    pub fn matches(&self, password: &Password) -> bool {
        match &self.remembered {
            Some(tag) => {
                aws_lc_rs::constant_time::verify_slices_are_equal(tag, &self.tag(password)).is_ok()
            }
            None => false,
        }
    }

    /// Forget the remembered password.
    pub fn forget(&mut self) {
        self.remembered = None;
    }
}

impl std::fmt::Debug for PasswordMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordMemo")
            .field("remembered", &self.remembered.is_some())
            .finish()
    }
}

/// How long after the last failure the next attempt is allowed, given `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    if failures < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let exponent = (failures - FREE_ATTEMPTS).min(20);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_matches_only_its_password_and_hides_it() {
        let v = Verifier::new(&Password::new("correct horse")).unwrap();
        assert!(v.matches(&Password::new("correct horse")));
        assert!(!v.matches(&Password::new("correct horsE")));
        assert!(!format!("{v:?}").contains(&v.hash));
        let w = Verifier::new(&Password::new("correct horse")).unwrap();
        assert_ne!(v.salt, w.salt, "fresh salt each time");
    }

    #[test]
    fn memo_matches_only_the_remembered_password() {
        let mut memo = PasswordMemo::new().unwrap();
        assert!(!memo.matches(&Password::new("secret-one")));
        memo.remember(&Password::new("secret-one"));
        assert!(memo.matches(&Password::new("secret-one")));
        assert!(!memo.matches(&Password::new("secret-two")));
        assert!(!format!("{memo:?}").contains("secret"));
        memo.forget();
        assert!(!memo.matches(&Password::new("secret-one")));
    }

    #[test]
    fn backoff_grows_exponentially_after_three_failures() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(2), Duration::ZERO);
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(6), Duration::from_secs(8));
        assert_eq!(backoff(100), BACKOFF_MAX);
    }
}
