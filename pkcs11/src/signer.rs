//! `TokenKey`: a private key on a token that signs for rustls (TLS handshakes) and rcgen (CSRs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aos_config::KeyAlgorithm;
use aws_lc_rs::digest;
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use rustls::SignatureScheme;
use rustls_pki_types::SubjectPublicKeyInfoDer;

use crate::der;
use crate::der::spki_key_bytes;
use crate::error::{Error, Result};
use crate::keys::KeyPair;
use crate::token::{SessionCopy, Token};

/// A private key held by a token. Every signature is computed inside the token with `C_Sign`; the key's
/// value never leaves it.
///
/// From its second signature on, a key signs with a session copy of itself (see `docs/pkcs11.md`):
/// still inside the token and as protected, but without the object-store access SoftHSM makes on every
/// `C_SignInit` (a quarter of a P-256 signature's cost). A token that refuses the copy is signed with
/// directly. The copy is destroyed with the last clone of the key.
///
/// Implements rustls' `SigningKey` (so a TLS server or client authenticates with it) and rcgen's
/// `SigningKey` (so CSRs and self-signed certificates are signed with it). Cloning is cheap; clones share
/// a sign counter.
#[derive(Clone)]
pub struct TokenKey {
    inner: Arc<Inner>,
}

struct Inner {
    token: Arc<Token>,
    pair: KeyPair,
    /// The private key's handles; re-found by label and id when the token invalidates them (a logout or a
    /// re-opened token gives private objects new handles).
    handles: Mutex<Handles>,
    key_bytes: Vec<u8>,
    signs: AtomicU64,
}

struct Handles {
    /// The private key on the token.
    private: ObjectHandle,
    copy: CopyState,
}

/// The state of a key's session copy.
enum CopyState {
    /// Not asked for yet: the key has not signed twice.
    NotYet,
    Made(SessionCopy),
    /// The token refused to copy the key; sign with the token object.
    Refused,
}

struct TlsSigner {
    key: TokenKey,
    scheme: SignatureScheme,
}

// === impl TokenKey ===

impl TokenKey {
    /// Wrap a key pair of `token`.
    pub fn new(token: Arc<Token>, pair: KeyPair) -> Result<TokenKey> {
        let key_bytes = spki_key_bytes(&pair.spki)?;
        Ok(TokenKey {
            inner: Arc::new(Inner {
                token,
                handles: Mutex::new(Handles {
                    private: pair.private,
                    copy: CopyState::NotYet,
                }),
                pair,
                key_bytes,
                signs: AtomicU64::new(0),
            }),
        })
    }

    /// The key pair this key signs with.
    pub fn key_pair(&self) -> &KeyPair {
        &self.inner.pair
    }

    /// The token holding the key.
    pub fn token(&self) -> &Arc<Token> {
        &self.inner.token
    }

    /// The key algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.inner.pair.algorithm
    }

    /// DER SubjectPublicKeyInfo of the public key.
    pub fn spki(&self) -> &[u8] {
        &self.inner.pair.spki
    }

    /// How many signatures this key (and its clones) made.
    pub fn sign_count(&self) -> u64 {
        self.inner.signs.load(Ordering::Relaxed)
    }

    /// The TLS signature schemes this key can produce, most preferred first.
    pub fn schemes(&self) -> &'static [SignatureScheme] {
        match self.algorithm() {
            KeyAlgorithm::EccP256 => &[SignatureScheme::ECDSA_NISTP256_SHA256],
            KeyAlgorithm::EccP384 => &[SignatureScheme::ECDSA_NISTP384_SHA384],
            KeyAlgorithm::Rsa2048 => &[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PSS_SHA384,
                SignatureScheme::RSA_PSS_SHA512,
                SignatureScheme::RSA_PKCS1_SHA256,
                SignatureScheme::RSA_PKCS1_SHA384,
                SignatureScheme::RSA_PKCS1_SHA512,
            ],
        }
    }

    /// Sign `message` with `scheme` inside the token. ECDSA signatures come back DER-encoded.
    ///
    /// ECDSA hashes on the host and signs the digest with raw `CKM_ECDSA` (SoftHSM has no
    /// `CKM_ECDSA_SHA384`); RSA uses the token's hash-and-sign mechanisms (PKCS#1 v1.5 or PSS with MGF1 of
    /// the same hash and a salt as long as the hash).
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        if !self.schemes().contains(&scheme) {
            return Err(Error::BadKey(format!(
                "{} key cannot sign with {scheme:?}",
                self.algorithm()
            )));
        }
        let handle = self.signing_handle();
        match self.sign_with(handle, scheme, message) {
            Err(err) if err.rv() == Some(RvError::ObjectHandleInvalid) => {
                let pair = &self.inner.pair;
                let fresh = self.inner.token.key_pair(&pair.label, &pair.id)?;
                let mut handles = self.inner.handles.lock().unwrap_or_else(|p| p.into_inner());
                // The handle that failed is gone (a logout, a closed keeper session, a deleted key), and
                // destroying it could hit another object. Another signer may have replaced it already.
                if matches!(handles.copy, CopyState::Made(copy) if copy.handle == handle) {
                    handles.copy = CopyState::NotYet;
                }
                handles.private = fresh.private;
                drop(handles);
                self.sign_with(self.signing_handle(), scheme, message)
            }
            other => other,
        }
    }

    /// The handle to sign with: the session copy once there is one. The copy is made at the second
    /// signature, so that a key used once (a CSR) costs the token no copy.
    fn signing_handle(&self) -> ObjectHandle {
        let mut handles = self.inner.handles.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(handles.copy, CopyState::NotYet) && self.inner.signs.load(Ordering::Relaxed) > 0
        {
            let pair = &self.inner.pair;
            handles.copy = match self.inner.token.session_copy(
                handles.private,
                &pair.label,
                &pair.id,
            ) {
                Ok(copy) => CopyState::Made(copy),
                Err(err) => {
                    tracing::debug!(key = ?self, error = %err, "token refused a session copy; signing with the token object");
                    CopyState::Refused
                }
            };
        }
        match handles.copy {
            CopyState::Made(copy) => copy.handle,
            CopyState::NotYet | CopyState::Refused => handles.private,
        }
    }

    /// Whether this key now signs with a session copy of itself.
    pub fn signs_with_session_copy(&self) -> bool {
        matches!(
            self.inner
                .handles
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .copy,
            CopyState::Made(_)
        )
    }

    fn sign_with(
        &self,
        private: ObjectHandle,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        let signature = match scheme {
            SignatureScheme::ECDSA_NISTP256_SHA256 | SignatureScheme::ECDSA_NISTP384_SHA384 => {
                let alg = if scheme == SignatureScheme::ECDSA_NISTP256_SHA256 {
                    &digest::SHA256
                } else {
                    &digest::SHA384
                };
                let hash = digest::digest(alg, message);
                let raw = self
                    .inner
                    .token
                    .with_session(|s| Ok(s.sign(&Mechanism::Ecdsa, private, hash.as_ref())?))?;
                der::ecdsa_signature_to_der(&raw)?
            }
            _ => self
                .inner
                .token
                .with_session(|s| Ok(s.sign(&rsa_mechanism(scheme)?, private, message)?))?,
        };
        self.inner.signs.fetch_add(1, Ordering::Relaxed);
        Ok(signature)
    }
}

fn rsa_mechanism(scheme: SignatureScheme) -> Result<Mechanism<'static>> {
    let pss = |hash_alg, mgf, s_len: u64| PkcsPssParams {
        hash_alg,
        mgf,
        s_len: s_len.into(),
    };
    Ok(match scheme {
        SignatureScheme::RSA_PKCS1_SHA256 => Mechanism::Sha256RsaPkcs,
        SignatureScheme::RSA_PKCS1_SHA384 => Mechanism::Sha384RsaPkcs,
        SignatureScheme::RSA_PKCS1_SHA512 => Mechanism::Sha512RsaPkcs,
        SignatureScheme::RSA_PSS_SHA256 => {
            Mechanism::Sha256RsaPkcsPss(pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32))
        }
        SignatureScheme::RSA_PSS_SHA384 => {
            Mechanism::Sha384RsaPkcsPss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48))
        }
        SignatureScheme::RSA_PSS_SHA512 => {
            Mechanism::Sha512RsaPkcsPss(pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64))
        }
        other => return Err(Error::BadKey(format!("unsupported RSA scheme {other:?}"))),
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handles = self.handles.get_mut().unwrap_or_else(|p| p.into_inner());
        if let CopyState::Made(copy) = handles.copy {
            self.token.destroy_session_copy(copy);
        }
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("token", &self.inner.token.label())
            .field("key", &self.inner.pair)
            .finish()
    }
}

// === impl rustls::sign::SigningKey for TokenKey ===

impl rustls::sign::SigningKey for TokenKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let scheme = self.schemes().iter().find(|s| offered.contains(s))?;
        Some(Box::new(TlsSigner {
            key: self.clone(),
            scheme: *scheme,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki()))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.algorithm() {
            KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 => rustls::SignatureAlgorithm::ECDSA,
            KeyAlgorithm::Rsa2048 => rustls::SignatureAlgorithm::RSA,
        }
    }
}

impl rustls::sign::Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.scheme, message).map_err(|err| {
            tracing::error!(key = ?self.key, error = %err, "token signing failed");
            rustls::Error::General(format!("token signing failed: {err}"))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

impl std::fmt::Debug for TlsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSigner")
            .field("key", &self.key)
            .field("scheme", &self.scheme)
            .finish()
    }
}

// === impl rcgen::SigningKey for TokenKey ===

impl rcgen::PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.inner.key_bytes
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match TokenKey::algorithm(self) {
            KeyAlgorithm::EccP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EccP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl rcgen::SigningKey for TokenKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let scheme = match TokenKey::algorithm(self) {
            KeyAlgorithm::EccP256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            KeyAlgorithm::EccP384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            KeyAlgorithm::Rsa2048 => SignatureScheme::RSA_PKCS1_SHA256,
        };
        TokenKey::sign(self, scheme, msg).map_err(|err| {
            tracing::error!(key = ?self, error = %err, "token signing failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkit::SoftHsm;
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

    fn verifier(scheme: SignatureScheme) -> &'static dyn VerificationAlgorithm {
        match scheme {
            SignatureScheme::ECDSA_NISTP256_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
            SignatureScheme::ECDSA_NISTP384_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
            SignatureScheme::RSA_PSS_SHA256 => &signature::RSA_PSS_2048_8192_SHA256,
            SignatureScheme::RSA_PSS_SHA384 => &signature::RSA_PSS_2048_8192_SHA384,
            SignatureScheme::RSA_PSS_SHA512 => &signature::RSA_PSS_2048_8192_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            other => panic!("no verifier for {other:?}"),
        }
    }

    #[test]
    fn every_scheme_verifies_with_aws_lc() {
        let hsm = SoftHsm::new();
        let token = hsm.token("sign");
        for algorithm in [
            KeyAlgorithm::EccP384,
            KeyAlgorithm::EccP256,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = TokenKey::new(
                token.clone(),
                token.generate_key_pair("cm", algorithm).unwrap(),
            )
            .unwrap();
            let public = rcgen::PublicKeyData::der_bytes(&key).to_vec();
            for &scheme in key.schemes() {
                let message = format!("message for {scheme:?}");
                let sig = key.sign(scheme, message.as_bytes()).unwrap();
                UnparsedPublicKey::new(verifier(scheme), &public)
                    .verify(message.as_bytes(), &sig)
                    .unwrap_or_else(|_| panic!("{algorithm} {scheme:?} signature does not verify"));
                assert!(
                    UnparsedPublicKey::new(verifier(scheme), &public)
                        .verify(b"other message", &sig)
                        .is_err(),
                    "{scheme:?} verified a different message"
                );
            }
            assert_eq!(key.sign_count(), key.schemes().len() as u64);
            // A scheme of another key type is refused, not mis-signed.
            let foreign = if algorithm == KeyAlgorithm::Rsa2048 {
                SignatureScheme::ECDSA_NISTP256_SHA256
            } else {
                SignatureScheme::RSA_PSS_SHA256
            };
            assert!(key.sign(foreign, b"x").is_err());
        }
    }

    #[test]
    fn rustls_signing_key_chooses_an_offered_scheme_and_exposes_the_public_key() {
        use rustls::sign::SigningKey;
        let hsm = SoftHsm::new();
        let token = hsm.token("tls");
        let key = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("iam", KeyAlgorithm::EccP384)
                .unwrap(),
        )
        .unwrap();
        assert!(key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .is_none());
        let signer = key.choose_scheme(&[
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
        ]);
        let signer = signer.expect("P-384 scheme offered");
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP384_SHA384);
        let sig = signer.sign(b"hello").unwrap();
        let public = rcgen::PublicKeyData::der_bytes(&key).to_vec();
        UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, &public)
            .verify(b"hello", &sig)
            .unwrap();
        assert_eq!(SigningKey::public_key(&key).unwrap().as_ref(), key.spki());
    }

    /// A P-256 key pair of `label` on `token`.
    pub(crate) fn p256_key(token: &Arc<Token>, label: &str) -> TokenKey {
        TokenKey::new(
            token.clone(),
            token
                .generate_key_pair(label, KeyAlgorithm::EccP256)
                .unwrap(),
        )
        .unwrap()
    }

    /// Sign `message` with the P-256 `key` and check the signature against its public key.
    pub(crate) fn assert_p256_signs(key: &TokenKey, message: &[u8]) {
        let sig = key
            .sign(SignatureScheme::ECDSA_NISTP256_SHA256, message)
            .unwrap();
        let public = rcgen::PublicKeyData::der_bytes(key).to_vec();
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &public)
            .verify(message, &sig)
            .unwrap();
    }

    #[test]
    fn a_lost_login_is_reported_and_renewed_transparently() {
        let hsm = SoftHsm::new();
        let token = hsm.token("relogin");
        let key = p256_key(&token, "sm");
        // Someone logs the application out of the token (login state is per application and token).
        token.with_session(|s| Ok(s.logout()?)).unwrap();
        assert_p256_signs(&key, b"after logout");
    }

    fn session_copies(token: &Token) -> usize {
        token
            .with_session(|s| {
                Ok(s.find_objects(&[cryptoki::object::Attribute::Label(
                    crate::token::SESSION_COPY_LABEL.as_bytes().to_vec(),
                )])?)
            })
            .unwrap()
            .len()
    }

    #[test]
    fn a_key_signing_twice_uses_a_session_copy_until_the_key_is_dropped() {
        let hsm = SoftHsm::new();
        let token = hsm.token("copy");
        let pair = token
            .generate_key_pair("sm", KeyAlgorithm::EccP256)
            .unwrap();
        let key = TokenKey::new(token.clone(), pair.clone()).unwrap();
        let before = token.inventory("sm").unwrap();
        for i in 0..3 {
            assert_p256_signs(&key, format!("message {i}").as_bytes());
            // A key used once (a CSR) makes no copy; from the second signature on it signs with one.
            assert_eq!(
                key.signs_with_session_copy(),
                i >= 1,
                "after {} signs",
                i + 1
            );
        }
        assert_eq!(session_copies(&token), 1);
        // The copy is not a token object and carries no certificate label: nothing that looks objects up
        // by label sees it.
        assert_eq!(token.inventory("sm").unwrap(), before);
        assert_eq!(
            token.key_pair("sm", &pair.id).unwrap().private,
            pair.private
        );
        let clone = key.clone();
        drop(key);
        assert_eq!(session_copies(&token), 1, "a clone still signs with it");
        drop(clone);
        assert_eq!(
            session_copies(&token),
            0,
            "the last clone destroys the copy"
        );
    }

    #[test]
    fn a_deleted_key_stops_signing_although_it_signed_from_a_copy() {
        let hsm = SoftHsm::new();
        let token = hsm.token("deleted");
        let pair = token
            .generate_key_pair("sm", KeyAlgorithm::EccP256)
            .unwrap();
        let other = p256_key(&token, "iam");
        let key = TokenKey::new(token.clone(), pair.clone()).unwrap();
        for _ in 0..2 {
            assert_p256_signs(&key, b"x");
            assert_p256_signs(&other, b"x");
        }
        assert!(key.signs_with_session_copy() && other.signs_with_session_copy());
        assert_eq!(session_copies(&token), 2);
        token.delete_set("sm", &pair.id).unwrap();
        assert_eq!(
            session_copies(&token),
            1,
            "only the deleted key's copy went"
        );
        match key.sign(SignatureScheme::ECDSA_NISTP256_SHA256, b"after") {
            Err(Error::ObjectNotFound(what)) => assert!(what.contains("sm"), "{what}"),
            other => panic!("a deleted key signed: {other:?}"),
        }
        // The other label's key goes on signing from its copy.
        assert_p256_signs(&other, b"after");
        assert!(other.signs_with_session_copy());
        token.delete_label("iam").unwrap();
        assert_eq!(session_copies(&token), 0);
        assert!(other
            .sign(SignatureScheme::ECDSA_NISTP256_SHA256, b"gone")
            .is_err());
    }

    #[test]
    fn a_token_refusing_copies_is_signed_with_directly() {
        let hsm = SoftHsm::new();
        let token = hsm.token("nocopy");
        // A key the token must never copy (`CKA_COPYABLE` false, set at generation: it cannot change later).
        use cryptoki::object::Attribute as A;
        let id = b"nocopy-key".to_vec();
        token
            .with_session_exclusive(|s| {
                let public = [
                    A::Token(true),
                    A::Verify(true),
                    A::EcParams(crate::der::ec_params(KeyAlgorithm::EccP256).unwrap()),
                    A::Label(b"sm".to_vec()),
                    A::Id(id.clone()),
                ];
                let private = [
                    A::Token(true),
                    A::Private(true),
                    A::Sensitive(true),
                    A::Sign(true),
                    A::Copyable(false),
                    A::Label(b"sm".to_vec()),
                    A::Id(id.clone()),
                ];
                Ok(s.generate_key_pair(
                    &cryptoki::mechanism::Mechanism::EccKeyPairGen,
                    &public,
                    &private,
                )?)
            })
            .unwrap();
        let key = TokenKey::new(token.clone(), token.key_pair("sm", &id).unwrap()).unwrap();
        for i in 0..3 {
            assert_p256_signs(&key, format!("message {i}").as_bytes());
        }
        assert!(!key.signs_with_session_copy());
        assert_eq!(session_copies(&token), 0);
    }

    #[test]
    fn a_lost_login_after_the_copy_is_made_is_renewed_transparently() {
        let hsm = SoftHsm::new();
        let token = hsm.token("relogin-copy");
        let key = p256_key(&token, "sm");
        for _ in 0..2 {
            assert_p256_signs(&key, b"warm");
        }
        assert!(key.signs_with_session_copy());
        token.with_session(|s| Ok(s.logout()?)).unwrap();
        for _ in 0..3 {
            assert_p256_signs(&key, b"after logout");
        }
        assert!(key.signs_with_session_copy());
        drop(key);
        assert_eq!(session_copies(&token), 0);
    }

    #[test]
    fn concurrent_signing_from_many_threads() {
        let hsm = SoftHsm::new();
        let token = hsm.token("stress");
        let key = p256_key(&token, "sm");
        std::thread::scope(|scope| {
            for t in 0..8 {
                let key = key.clone();
                scope.spawn(move || {
                    for i in 0..100 {
                        assert_p256_signs(&key, format!("{t}-{i}").as_bytes());
                    }
                });
            }
        });
        assert_eq!(key.sign_count(), 800);
    }

    #[test]
    fn csr_signed_in_the_token_verifies_with_openssl() {
        let hsm = SoftHsm::new();
        let token = hsm.token("csr");
        for algorithm in [
            KeyAlgorithm::EccP384,
            KeyAlgorithm::EccP256,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = TokenKey::new(
                token.clone(),
                token.generate_key_pair("iam", algorithm).unwrap(),
            )
            .unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["node0.local".to_owned()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "node0");
            let csr = params.serialize_request(&key).unwrap();
            let pem = csr.pem().unwrap();
            let path = hsm.dir().join(format!("{algorithm}.csr"));
            std::fs::write(&path, &pem).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["req", "-verify", "-noout", "-in"])
                .arg(&path)
                .output()
                .expect("openssl is installed");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("verify OK"),
                "{algorithm}: {text}"
            );

            // Tamper with the signature: openssl must refuse it.
            let mut der = csr.der().to_vec();
            let last = der.len() - 3;
            der[last] ^= 0x55;
            std::fs::write(&path, &der).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["req", "-verify", "-noout", "-inform", "DER", "-in"])
                .arg(&path)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !text.contains("verify OK") || !out.status.success(),
                "{algorithm}: tampered CSR verified"
            );
        }
    }
}
