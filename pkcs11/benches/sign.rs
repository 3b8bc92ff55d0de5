//! Signing through `TokenKey` versus a bare cryptoki `C_Sign` loop on the same SoftHSM key, same run. Both
//! sign from a session copy of the key, as `TokenKey` does after its first signature; a third loop signs the
//! token object directly, to show what the copy saves.
//!
//! Run: `cargo bench -p aos-pkcs11 --features testkit --bench sign [-- ROUNDS]`. The bare loop does only
//! what any caller must do (hash on the host for ECDSA, one `C_Sign` on an open logged-in session);
//! `TokenKey::sign` adds the session pool, the DER conversion and the counters. The two alternate in short
//! rounds so that load from elsewhere on the machine hits both alike; the totals are compared. Goal: ≤ 5%
//! overhead.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::time::{Duration, Instant};

use aos_config::KeyAlgorithm;
use aos_pkcs11::testkit::SoftHsm;
use aos_pkcs11::TokenKey;
use aws_lc_rs::digest;
use cryptoki::mechanism::Mechanism;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use rustls::SignatureScheme;

fn main() {
    let rounds: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(30);
    let hsm = SoftHsm::new();
    let token = hsm.token("bench");
    let message = [0x5au8; 512];
    println!("signing: TokenKey::sign versus bare cryptoki C_Sign, {rounds} interleaved rounds");
    for (algorithm, scheme, per_round) in [
        (
            KeyAlgorithm::EccP384,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            40,
        ),
        (
            KeyAlgorithm::EccP256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            400,
        ),
        (KeyAlgorithm::Rsa2048, SignatureScheme::RSA_PKCS1_SHA256, 40),
    ] {
        let pair = token
            .generate_key_pair("bench", algorithm)
            .expect("key pair");
        let private = pair.private;
        let key = TokenKey::new(token.clone(), pair).expect("token key");
        let session = hsm
            .module()
            .context()
            .open_rw_session(token.slot())
            .expect("session");
        // Already logged in through the token's keeper session; login state is per application.
        let _ = session.login(
            UserType::User,
            Some(&AuthPin::new(aos_pkcs11::testkit::USER_PIN.into())),
        );
        // TokenKey signs from a session copy of the key after its first signature; the bare loop does the
        // same (one C_CopyObject), so the comparison is of the wrapper alone. The token object itself is
        // signed with too, to show what the copy saves.
        let copy = session
            .copy_object(private, &[cryptoki::object::Attribute::Token(false)])
            .expect("session copy");
        let bare = |handle| match algorithm {
            KeyAlgorithm::EccP384 => {
                let hash = digest::digest(&digest::SHA384, &message);
                session
                    .sign(&Mechanism::Ecdsa, handle, hash.as_ref())
                    .expect("sign")
            }
            KeyAlgorithm::EccP256 => {
                let hash = digest::digest(&digest::SHA256, &message);
                session
                    .sign(&Mechanism::Ecdsa, handle, hash.as_ref())
                    .expect("sign")
            }
            KeyAlgorithm::Rsa2048 => session
                .sign(&Mechanism::Sha256RsaPkcs, handle, &message)
                .expect("sign"),
        };
        // Warm-up.
        for _ in 0..per_round {
            key.sign(scheme, &message).expect("sign");
            bare(copy);
            bare(private);
        }
        assert!(key.signs_with_session_copy());
        let (mut ours, mut theirs, mut object) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..per_round {
                key.sign(scheme, &message).expect("sign");
            }
            ours += start.elapsed();
            let start = Instant::now();
            for _ in 0..per_round {
                bare(copy);
            }
            theirs += start.elapsed();
            let start = Instant::now();
            for _ in 0..per_round {
                bare(private);
            }
            object += start.elapsed();
        }
        let n = (rounds * per_round) as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
        let (ours_us, bare_us, object_us) = (us(ours), us(theirs), us(object));
        println!(
            "  {algorithm:<12} TokenKey {ours_us:8.1} µs/sign   bare C_Sign {bare_us:8.1} µs/sign   overhead {:+.1}% (goal <= 5%)   [bare C_Sign on the token object {object_us:8.1} µs]",
            (ours_us / bare_us - 1.0) * 100.0
        );
    }
}
