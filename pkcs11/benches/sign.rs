//! Signing through `TokenKey` versus a bare cryptoki `C_Sign` loop on the same SoftHSM key, same run.
//!
//! Run: `cargo bench -p aos-pkcs11 --features testkit --bench sign`. The bare loop does only what any caller
//! must do (hash on the host for ECDSA, one `C_Sign` on an open logged-in session); `TokenKey::sign` adds the
//! session pool, the DER conversion and the counters. The goal is ≤ 5% overhead.

#![allow(clippy::expect_used, missing_docs)] // a benchmark: failing loudly is right

use aos_config::KeyAlgorithm;
use aos_pkcs11::testkit::SoftHsm;
use aos_pkcs11::TokenKey;
use aws_lc_rs::digest;
use criterion::{criterion_group, criterion_main, Criterion};
use cryptoki::mechanism::Mechanism;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use rustls::SignatureScheme;

fn bench(c: &mut Criterion) {
    let hsm = SoftHsm::new();
    let token = hsm.token("bench");
    let message = [0x5au8; 512];
    for (algorithm, scheme) in [
        (
            KeyAlgorithm::EccP384,
            SignatureScheme::ECDSA_NISTP384_SHA384,
        ),
        (
            KeyAlgorithm::EccP256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ),
        (KeyAlgorithm::Rsa2048, SignatureScheme::RSA_PKCS1_SHA256),
    ] {
        let pair = token
            .generate_key_pair("bench", algorithm)
            .expect("key pair");
        let private = pair.private;
        let key = TokenKey::new(token.clone(), pair).expect("token key");
        let mut group = c.benchmark_group(format!("sign/{algorithm}"));
        group.bench_function("token_key", |b| {
            b.iter(|| key.sign(scheme, &message).expect("sign"))
        });

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
        group.bench_function("bare_cryptoki", |b| {
            b.iter(|| match algorithm {
                KeyAlgorithm::EccP384 => {
                    let hash = digest::digest(&digest::SHA384, &message);
                    session
                        .sign(&Mechanism::Ecdsa, private, hash.as_ref())
                        .expect("sign")
                }
                KeyAlgorithm::EccP256 => {
                    let hash = digest::digest(&digest::SHA256, &message);
                    session
                        .sign(&Mechanism::Ecdsa, private, hash.as_ref())
                        .expect("sign")
                }
                KeyAlgorithm::Rsa2048 => session
                    .sign(&Mechanism::Sha256RsaPkcs, private, &message)
                    .expect("sign"),
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
