//! Key pairs on a token: generation with safe attributes, lookup, public key export.

use aos_config::KeyAlgorithm;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::der;
use crate::error::{Error, Result};
use crate::staging;
use crate::token::Token;

/// Total time this process spent generating key pairs, in nanoseconds: `C_GenerateKeyPair` and, for staged
/// pairs, the copies to the token and the clean-up, failed attempts included (benchmarks compare a whole
/// provisioning against the key generation it contains; metrics may export it).
static KEYGEN_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// CPU time the generating threads spent on the same work as [`KEYGEN_NANOS`], in nanoseconds. Unlike the
/// wall time it leaves out waiting for a core, so it stays the cost of the keys themselves when many
/// generations contend.
static KEYGEN_CPU_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Total time this process spent generating key pairs on tokens.
pub fn keygen_time() -> std::time::Duration {
    std::time::Duration::from_nanos(KEYGEN_NANOS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Total CPU time this process spent generating key pairs on tokens (the generating threads' own CPU time:
/// a PKCS#11 library generates in the calling thread; a hardware token's work is not counted).
pub fn keygen_cpu_time() -> std::time::Duration {
    std::time::Duration::from_nanos(KEYGEN_CPU_NANOS.load(std::sync::atomic::Ordering::Relaxed))
}

/// The calling thread's CPU time so far.
fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

fn add_nanos(counter: &std::sync::atomic::AtomicU64, elapsed: std::time::Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
}

/// Length of the random `CKA_ID` that links a private key, its public key and its certificate.
pub const KEY_ID_LEN: usize = 16;

/// A key pair on a token, found by its label and id.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Label (the cert type, e.g. `iam`).
    pub label: String,
    /// The shared `CKA_ID`.
    pub id: Vec<u8>,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Handle of the private key.
    pub private: ObjectHandle,
    /// Handle of the public key.
    pub public: ObjectHandle,
    /// DER SubjectPublicKeyInfo of the public key.
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("label", &self.label)
            .field("id", &hex::encode(&self.id))
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

// === impl Token (keys) ===

impl Token {
    /// Generate a key pair labelled `label` with a fresh random 16-byte `CKA_ID`.
    ///
    /// The private key is a token object that can sign and nothing else: sensitive, not extractable, no
    /// decrypt, unwrap or derive.
    ///
    /// The pair is generated as session objects and then copied to the token (see [`stage_key_pair`]); a
    /// token that refuses either step gets a direct `C_GenerateKeyPair` of token objects instead. Every
    /// attempt (the fallback, or a retry on a fresh session after a lost one) draws its own id, so whatever
    /// a failed attempt may have left on the token never shares an id with the pair returned: it shows up
    /// in an inventory as keys without a certificate, which the cert validator removes.
    pub fn generate_key_pair(&self, label: &str, algorithm: KeyAlgorithm) -> Result<KeyPair> {
        self.generate(label, algorithm, Placement::Staged)
    }

    /// A direct `C_GenerateKeyPair` of token objects, bypassing staging: the baseline that benchmarks
    /// compare [`Token::generate_key_pair`] against. The pair is the same kind of pair.
    pub fn generate_key_pair_direct(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<KeyPair> {
        self.generate(label, algorithm, Placement::Token)
    }

    fn generate(&self, label: &str, algorithm: KeyAlgorithm, way: Placement) -> Result<KeyPair> {
        let (id, public, private) = self.with_session_exclusive(|s| {
            let started = std::time::Instant::now();
            let started_cpu = thread_cpu_time();
            let request = |id| KeyRequest {
                label: label.as_bytes().to_vec(),
                id,
                algorithm,
            };
            let first = request(fresh_id()?);
            let (id, pair) = match way {
                Placement::Token => {
                    let pair = generate(s, &first, Placement::Token);
                    (first.id, pair)
                }
                Placement::Staged => match stage_key_pair(s, &first) {
                    Ok(pair) => (first.id, Ok(pair)),
                    Err(err) => {
                        tracing::debug!(error = %err, "staged key generation refused; generating on the token");
                        // A new id: whatever the failed staging left behind must not share it.
                        let again = request(fresh_id()?);
                        let pair = generate(s, &again, Placement::Token);
                        (again.id, pair)
                    }
                },
            };
            add_nanos(&KEYGEN_NANOS, started.elapsed());
            let cpu = thread_cpu_time().saturating_sub(started_cpu);
            add_nanos(&KEYGEN_CPU_NANOS, cpu);
            #[cfg(test)]
            tests::THREAD_KEYGEN_CPU.with(|c| c.set(c.get() + cpu));
            pair.map(|(public, private)| (id, public, private))
        })?;
        let spki = self.with_session(|s| public_key_info(s, public, algorithm))?;
        tracing::debug!(token = %self.label(), %label, id = %hex::encode(&id), %algorithm, "generated key pair");
        Ok(KeyPair {
            label: label.to_owned(),
            id,
            algorithm,
            private,
            public,
            spki,
        })
    }

    /// The key pair with this label and id.
    pub fn key_pair(&self, label: &str, id: &[u8]) -> Result<KeyPair> {
        self.with_session(|s| {
            let find = |class| {
                s.find_objects(&[
                    Attribute::Token(true),
                    Attribute::Class(class),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.to_vec()),
                ])
            };
            let not_found = |what: &str| {
                Error::ObjectNotFound(format!(
                    "{what} of {label} id {} on {}",
                    hex::encode(id),
                    self.label()
                ))
            };
            let private = *find(ObjectClass::PRIVATE_KEY)?
                .first()
                .ok_or_else(|| not_found("private key"))?;
            let public = *find(ObjectClass::PUBLIC_KEY)?
                .first()
                .ok_or_else(|| not_found("public key"))?;
            let algorithm = key_algorithm(s, public)?;
            let spki = public_key_info(s, public, algorithm)?;
            Ok(KeyPair {
                label: label.to_owned(),
                id: id.to_vec(),
                algorithm,
                private,
                public,
                spki,
            })
        })
    }
}

/// A random `CKA_ID` of [`KEY_ID_LEN`] bytes.
fn fresh_id() -> Result<Vec<u8>> {
    let mut id = vec![0u8; KEY_ID_LEN];
    getrandom::fill(&mut id).map_err(|e| Error::Random(e.to_string()))?;
    Ok(id)
}

/// What to generate.
struct KeyRequest {
    label: Vec<u8>,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
}

/// Where `C_GenerateKeyPair` puts the pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Token objects with the request's label and id.
    Token,
    /// Session objects labelled [`STAGING_LABEL`] without an id, to be copied to the token.
    Staged,
}

/// The public key's copy in [`stage_key_pair`]; tests can make it fail.
fn copy_public(
    s: &Session,
    staged: ObjectHandle,
    template: &[Attribute],
) -> cryptoki::error::Result<ObjectHandle> {
    #[cfg(test)]
    if tests::FAIL_PUBLIC_COPY.with(|f| f.get()) {
        staging::discard(s, staged, "staged session key");
        return Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::DeviceError,
            cryptoki::context::Function::CopyObject,
        ));
    }
    staging::promote(s, staged, template)
}

/// Label of a key pair between its generation as session objects and its copy to the token: nothing that
/// looks keys up by label or id can see it.
const STAGING_LABEL: &str = "aos-edge.staging";

/// `C_GenerateKeyPair` with the safe attributes (see [`Token::generate_key_pair`]); (public, private).
fn generate(
    s: &Session,
    request: &KeyRequest,
    placement: Placement,
) -> Result<(ObjectHandle, ObjectHandle)> {
    let on_token = placement == Placement::Token;
    let (label, id) = match placement {
        Placement::Token => (request.label.clone(), request.id.clone()),
        Placement::Staged => (STAGING_LABEL.as_bytes().to_vec(), Vec::new()),
    };
    let private = [
        Attribute::Token(on_token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let (mechanism, mut public) = match der::ec_params(request.algorithm) {
        Some(params) => (Mechanism::EccKeyPairGen, vec![Attribute::EcParams(params)]),
        None => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
        ),
    };
    public.extend([
        Attribute::Token(on_token),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Label(label),
        Attribute::Id(id),
    ]);
    Ok(s.generate_key_pair(&mechanism, &public, &private)?)
}

/// Generate the pair as session objects, then copy each to the token under its label and id (see
/// `staging.rs`); (public, private) of the token copies. The copies keep what the token recorded at
/// generation: `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE` and `CKA_KEY_GEN_MECHANISM`, and
/// the private key never leaves the token.
///
/// The session objects are destroyed in every case. When the public copy fails, the private copy is
/// destroyed too. Errors when the token refuses the session generation or a copy.
fn stage_key_pair(s: &Session, request: &KeyRequest) -> Result<(ObjectHandle, ObjectHandle)> {
    let (staged_public, staged_private) = generate(s, request, Placement::Staged)?;
    let to_token = [
        Attribute::Token(true),
        Attribute::Label(request.label.clone()),
        Attribute::Id(request.id.clone()),
    ];
    let private = match staging::promote(s, staged_private, &to_token) {
        Ok(private) => private,
        Err(err) => {
            staging::discard(s, staged_public, "staged session key");
            return Err(err.into());
        }
    };
    match copy_public(s, staged_public, &to_token) {
        Ok(public) => Ok((public, private)),
        Err(err) => {
            staging::discard(s, private, "half-copied private key");
            Err(err.into())
        }
    }
}

/// The algorithm of a public key object, from its key type and curve or modulus size.
fn key_algorithm(s: &Session, public: ObjectHandle) -> Result<KeyAlgorithm> {
    let attrs = s.get_attributes(public, &[AttributeType::KeyType])?;
    match attrs.first() {
        Some(Attribute::KeyType(kt)) if *kt == KeyType::RSA => Ok(KeyAlgorithm::Rsa2048),
        Some(Attribute::KeyType(kt)) if *kt == KeyType::EC => {
            let params = s.get_attributes(public, &[AttributeType::EcParams])?;
            match params.first() {
                Some(Attribute::EcParams(p))
                    if Some(p) == der::ec_params(KeyAlgorithm::EccP256).as_ref() =>
                {
                    Ok(KeyAlgorithm::EccP256)
                }
                Some(Attribute::EcParams(p))
                    if Some(p) == der::ec_params(KeyAlgorithm::EccP384).as_ref() =>
                {
                    Ok(KeyAlgorithm::EccP384)
                }
                _ => Err(Error::BadKey("EC key on an unsupported curve".into())),
            }
        }
        _ => Err(Error::BadKey("unsupported key type".into())),
    }
}

/// Read a public key object and encode it as a DER SubjectPublicKeyInfo.
fn public_key_info(s: &Session, public: ObjectHandle, algorithm: KeyAlgorithm) -> Result<Vec<u8>> {
    let key = match algorithm {
        KeyAlgorithm::Rsa2048 => {
            let attrs = s.get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let (mut n, mut e) = (None, None);
            for attr in attrs {
                match attr {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            match (n, e) {
                (Some(n), Some(e)) => der::rsa_public_key(&n, &e),
                _ => {
                    return Err(Error::BadKey(
                        "RSA public key without modulus or exponent".into(),
                    ))
                }
            }
        }
        KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 => {
            let attrs = s.get_attributes(public, &[AttributeType::EcPoint])?;
            match attrs.first() {
                Some(Attribute::EcPoint(v)) => der::ec_point_from_attribute(algorithm, v)?,
                _ => return Err(Error::BadKey("EC public key without CKA_EC_POINT".into())),
            }
        }
    };
    Ok(der::subject_public_key_info(algorithm, &key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SoftHsm;

    thread_local! {
        /// The CPU time of this thread's key generations (the process-wide counter mixes in other tests').
        pub(super) static THREAD_KEYGEN_CPU: std::cell::Cell<std::time::Duration> =
            const { std::cell::Cell::new(std::time::Duration::ZERO) };
        /// Make [`copy_public`] fail on this thread.
        pub(super) static FAIL_PUBLIC_COPY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn bool_attr(token: &Token, object: ObjectHandle, ty: AttributeType) -> Option<bool> {
        token
            .with_session(|s| Ok(s.get_attributes(object, &[ty])?))
            .unwrap()
            .into_iter()
            .find_map(|a| match a {
                Attribute::Sensitive(b)
                | Attribute::Extractable(b)
                | Attribute::NeverExtractable(b)
                | Attribute::AlwaysSensitive(b)
                | Attribute::Unwrap(b)
                | Attribute::Derive(b)
                | Attribute::Decrypt(b)
                | Attribute::Sign(b)
                | Attribute::Local(b)
                | Attribute::Token(b) => Some(b),
                _ => None,
            })
    }

    #[test]
    fn key_generation_is_counted_in_wall_and_cpu_time() {
        let hsm = SoftHsm::new();
        let token = hsm.token("keys");
        let (wall, cpu) = (keygen_time(), keygen_cpu_time());
        let mine = THREAD_KEYGEN_CPU.with(|c| c.get());
        let before = thread_cpu_time();
        token
            .generate_key_pair("rsa", KeyAlgorithm::Rsa2048)
            .unwrap();
        let spent = thread_cpu_time() - before;
        let counted = THREAD_KEYGEN_CPU.with(|c| c.get()) - mine;
        // This thread's generation was counted, and no more than the CPU the thread spent on the call.
        assert!(counted > std::time::Duration::ZERO);
        assert!(counted <= spent, "{counted:?} counted of {spent:?} spent");
        // The process-wide counters hold it too (other tests only add to them).
        assert!(keygen_cpu_time() - cpu >= counted);
        assert!(keygen_time() > wall);
    }

    #[test]
    fn private_keys_are_sensitive_never_extractable_and_sign_only() {
        let hsm = SoftHsm::new();
        let token = hsm.token("keys");
        for algorithm in [
            KeyAlgorithm::EccP384,
            KeyAlgorithm::EccP256,
            KeyAlgorithm::Rsa2048,
        ] {
            let pair = token.generate_key_pair("iam", algorithm).unwrap();
            assert_eq!(pair.id.len(), KEY_ID_LEN);
            let p = pair.private;
            assert_eq!(
                bool_attr(&token, p, AttributeType::Token),
                Some(true),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Sensitive),
                Some(true),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::AlwaysSensitive),
                Some(true),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Extractable),
                Some(false),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::NeverExtractable),
                Some(true),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Unwrap),
                Some(false),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Derive),
                Some(false),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Decrypt),
                Some(false),
                "{algorithm}"
            );
            assert_eq!(
                bool_attr(&token, p, AttributeType::Sign),
                Some(true),
                "{algorithm}"
            );

            // The private value reads back as nothing (sensitive attributes are unavailable, not an error).
            let secret = match algorithm {
                KeyAlgorithm::Rsa2048 => AttributeType::PrivateExponent,
                _ => AttributeType::Value,
            };
            let read = token
                .with_session(|s| Ok(s.get_attributes(p, &[secret])?))
                .unwrap();
            let leaked = read.iter().any(|a| match a {
                Attribute::PrivateExponent(v) | Attribute::Value(v) => !v.is_empty(),
                _ => false,
            });
            assert!(!leaked, "{algorithm}: private value readable: {read:?}");

            // Found again by label and id, with the same public key.
            let again = token.key_pair("iam", &pair.id).unwrap();
            assert_eq!(again.spki, pair.spki);
            assert_eq!(again.algorithm, algorithm);
        }
    }

    #[test]
    fn staged_pairs_land_on_the_token_with_their_provenance_and_leave_nothing_behind() {
        let hsm = SoftHsm::new();
        let token = hsm.token("staged");
        let staged = token
            .generate_key_pair("sm", KeyAlgorithm::EccP256)
            .unwrap();
        let direct = token
            .generate_key_pair_direct("cm", KeyAlgorithm::EccP256)
            .unwrap();
        // A staged pair carries what the token recorded when it generated the key, as a direct one does.
        for (what, key) in [("staged", staged.private), ("direct", direct.private)] {
            let mechanism = token
                .with_session(|s| Ok(s.get_attributes(key, &[AttributeType::KeyGenMechanism])?))
                .unwrap();
            assert!(
                matches!(
                    mechanism.first(),
                    Some(Attribute::KeyGenMechanism(m))
                        if *m == cryptoki::mechanism::MechanismType::ECC_KEY_PAIR_GEN
                ),
                "{what}: {mechanism:?}"
            );
            for ty in [
                AttributeType::Token,
                AttributeType::Local,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
            ] {
                assert_eq!(bool_attr(&token, key, ty), Some(true), "{what}: {ty:?}");
            }
        }
        assert_eq!(
            bool_attr(&token, staged.public, AttributeType::Token),
            Some(true)
        );
        let found = token.key_pair("sm", &staged.id).unwrap();
        assert_eq!(
            (found.private, found.public),
            (staged.private, staged.public)
        );
        // No staging object survives, as a session object or otherwise.
        let leftovers = token
            .with_session(|s| {
                Ok(s.find_objects(&[Attribute::Label(STAGING_LABEL.as_bytes().to_vec())])?)
            })
            .unwrap();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let all = token.with_session(|s| Ok(s.find_objects(&[])?)).unwrap();
        assert_eq!(all.len(), 4, "two pairs and nothing else");
    }

    #[test]
    fn a_failed_staging_leaves_nothing_and_the_fallback_pair_is_complete() {
        let hsm = SoftHsm::new();
        let token = hsm.token("fallback");
        FAIL_PUBLIC_COPY.with(|f| f.set(true));
        let pair = token.generate_key_pair("sm", KeyAlgorithm::EccP256);
        FAIL_PUBLIC_COPY.with(|f| f.set(false));
        let pair = pair.unwrap();
        // The private key copied before the public copy failed was destroyed again, the session objects
        // too: the token holds the fallback pair and nothing else.
        let all = token.with_session(|s| Ok(s.find_objects(&[])?)).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let found = token.key_pair("sm", &pair.id).unwrap();
        assert_eq!((found.private, found.public), (pair.private, pair.public));
        assert_eq!(found.spki, pair.spki);
        let key = crate::TokenKey::new(token.clone(), pair).unwrap();
        crate::signer::tests::assert_p256_signs(&key, b"fallback pair");
    }

    #[test]
    fn spki_matches_an_independent_parser() {
        let hsm = SoftHsm::new();
        let token = hsm.token("spki");
        for (algorithm, oid) in [
            (KeyAlgorithm::EccP384, "1.2.840.10045.2.1"),
            (KeyAlgorithm::EccP256, "1.2.840.10045.2.1"),
            (KeyAlgorithm::Rsa2048, "1.2.840.113549.1.1.1"),
        ] {
            let pair = token.generate_key_pair("sm", algorithm).unwrap();
            use x509_parser::prelude::FromDer;
            let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pair.spki)
                .map_err(|e| e.to_string())
                .unwrap();
            assert!(rest.is_empty());
            assert_eq!(spki.algorithm.algorithm.to_id_string(), oid);
            if algorithm == KeyAlgorithm::Rsa2048 {
                match spki.parsed().unwrap() {
                    x509_parser::public_key::PublicKey::RSA(rsa) => {
                        assert_eq!(rsa.key_size(), 2048)
                    }
                    other => panic!("not RSA: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn pkcs11_tool_sees_private_keys_as_never_extractable() {
        let hsm = SoftHsm::new();
        let token = hsm.token("witness");
        token
            .generate_key_pair("diskencryption", KeyAlgorithm::Rsa2048)
            .unwrap();
        token
            .generate_key_pair("online", KeyAlgorithm::EccP384)
            .unwrap();
        let out = hsm
            .pkcs11_tool()
            .args([
                "--token-label",
                "witness",
                "--login",
                "--pin",
                crate::testkit::USER_PIN,
                "--list-objects",
            ])
            .output()
            .expect("pkcs11-tool (opensc) is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let private_objects: Vec<&str> = text.split("Private Key Object").skip(1).collect();
        assert_eq!(private_objects.len(), 2, "{text}");
        for object in private_objects {
            let object = object.split("Public Key Object").next().unwrap_or(object);
            assert!(object.contains("never extractable"), "{object}");
            assert!(object.contains("sensitive"), "{object}");
            assert!(
                !object.contains("unwrap") && !object.contains("derive"),
                "{object}"
            );
        }
    }

    #[test]
    fn key_generation_while_other_threads_read_the_token() {
        // SoftHSMv2 issue 573: C_GenerateKeyPair can fail while another session reads the same token. The
        // token's object lock makes them take turns.
        let hsm = SoftHsm::new();
        let token = hsm.token("race");
        std::thread::scope(|scope| {
            for t in 0..2 {
                let token = token.clone();
                scope.spawn(move || {
                    for _ in 0..15 {
                        token
                            .generate_key_pair(&format!("gen{t}"), KeyAlgorithm::EccP256)
                            .unwrap();
                    }
                });
            }
            for _ in 0..2 {
                let token = token.clone();
                scope.spawn(move || {
                    for _ in 0..60 {
                        token.inventory("gen0").unwrap();
                        token.inventory("gen1").unwrap();
                    }
                });
            }
        });
        assert_eq!(token.inventory("gen0").unwrap().sets.len(), 15);
        assert_eq!(token.inventory("gen1").unwrap().sets.len(), 15);
    }

    #[test]
    fn tokens_of_one_module_create_objects_in_parallel() {
        // Each token has its own object lock: nodes of a unit sharing one module generate keys, store
        // certificates and read their tokens at the same time. SoftHSM must cope with that across tokens.
        let hsm = SoftHsm::new();
        let ca = crate::testkit::TestCa::new("unit");
        let tokens: Vec<_> = (0..6).map(|i| hsm.token(&format!("node{i}"))).collect();
        std::thread::scope(|scope| {
            for token in &tokens {
                let ca = &ca;
                scope.spawn(move || {
                    for _ in 0..6 {
                        let pair = token
                            .generate_key_pair("sm", KeyAlgorithm::EccP256)
                            .unwrap();
                        let key = crate::TokenKey::new(token.clone(), pair.clone()).unwrap();
                        token
                            .store_chain("sm", &pair.id, ca.issue(&key, "n").as_bytes())
                            .unwrap();
                    }
                });
                scope.spawn(move || {
                    for _ in 0..30 {
                        token.inventory("sm").unwrap();
                    }
                });
            }
        });
        for token in &tokens {
            let inventory = token.inventory("sm").unwrap();
            assert_eq!(inventory.complete().count(), 6, "{inventory:?}");
            assert_eq!(inventory.authority_certs, 2, "{inventory:?}");
        }
    }

    #[test]
    fn unknown_key_is_not_found() {
        let hsm = SoftHsm::new();
        let token = hsm.token("nf");
        match token.key_pair("iam", &[1; 16]) {
            Err(Error::ObjectNotFound(what)) => assert!(what.contains("iam"), "{what}"),
            other => panic!("expected ObjectNotFound, got {other:?}"),
        }
    }
}
