//! Test fixtures: a private SoftHSM2 instance per test (feature `testkit`).
//!
//! Each [`SoftHsm`] has its own token directory and configuration, and loads its own copy of
//! `libsofthsm2.so`. A copy at a new path is a separate library instance with its own `C_Initialize`, so tests
//! running in parallel threads of one process never see each other's tokens, and none touches the system's.
//! A missing SoftHSM is a hard failure, never a skip: install it with `scripts/test` or `apt-get install
//! softhsm2`.
#![allow(clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{take_ownership, Module, Pin, Token, TokenSelector};

/// Where Debian, Ubuntu and source builds put the SoftHSM2 module; `AOS_SOFTHSM_LIB` overrides.
const CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// SO PIN the fixtures use unless a test picks another.
pub const SO_PIN: &str = "so-pin-1234";
/// User PIN the fixtures use unless a test picks another.
pub const USER_PIN: &str = "user-pin-1234";

/// Serialises `SOFTHSM2_CONF` changes with the `C_Initialize` that reads it.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The system's SoftHSM2 module. Panics with an install hint when it is missing.
pub fn system_softhsm() -> PathBuf {
    if let Some(path) = std::env::var_os("AOS_SOFTHSM_LIB") {
        return PathBuf::from(path);
    }
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is not installed (looked in /usr/lib/softhsm and friends); run scripts/test or apt-get install softhsm2")
}

/// A private SoftHSM2: temp dir with `softhsm2.conf`, `tokens/` and a copy of the module.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    module: Arc<Module>,
}

impl SoftHsm {
    /// A fresh SoftHSM with no tokens (one free slot).
    pub fn new() -> SoftHsm {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let library = dir.path().join("libsofthsm2.so");
        std::fs::copy(system_softhsm(), &library).expect("copy libsofthsm2.so");
        let module = {
            let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            std::env::set_var("SOFTHSM2_CONF", &conf);
            Module::open(&library).expect("load private SoftHSM copy")
        };
        SoftHsm { dir, module }
    }

    /// The initialised module.
    pub fn module(&self) -> Arc<Module> {
        self.module.clone()
    }

    /// Path of this instance's copy of the module.
    pub fn library(&self) -> PathBuf {
        self.dir.path().join("libsofthsm2.so")
    }

    /// Path of the `softhsm2.conf` to hand to outside tools (`SOFTHSM2_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// The temp dir (for PIN files and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Create a token labelled `label` with [`SO_PIN`] / [`USER_PIN`] and open it.
    pub fn token(&self, label: &str) -> Arc<Token> {
        let selector = TokenSelector::Label(label.to_owned());
        take_ownership(
            &self.module,
            &selector,
            label,
            &Pin::new(SO_PIN),
            &Pin::new(USER_PIN),
        )
        .expect("init token");
        Token::open(self.module.clone(), selector, Pin::new(USER_PIN)).expect("open token")
    }

    /// A `pkcs11-tool` command for this instance (module and `SOFTHSM2_CONF` set).
    pub fn pkcs11_tool(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("pkcs11-tool");
        cmd.env("SOFTHSM2_CONF", self.conf())
            .arg("--module")
            .arg(system_softhsm());
        cmd
    }
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}

/// A software test CA: a root and an intermediate (rcgen, P-256), issuing leaf certificates for any public
/// key, e.g. a [`crate::TokenKey`].
pub struct TestCa {
    /// The root's certificate.
    pub root: rcgen::Certificate,
    /// The intermediate's certificate.
    pub intermediate: rcgen::Certificate,
    intermediate_issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new root and intermediate named after `name`.
    pub fn new(name: &str) -> TestCa {
        let ca_params = |cn: String| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            p
        };
        let root_key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("root key");
        let root_params = ca_params(format!("{name} root CA"));
        let root = root_params.self_signed(&root_key).expect("root cert");
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let int_key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("int key");
        let int_params = ca_params(format!("{name} intermediate CA"));
        let intermediate = int_params
            .signed_by(&int_key, &root_issuer)
            .expect("int cert");
        TestCa {
            root,
            intermediate,
            intermediate_issuer: rcgen::Issuer::new(int_params, int_key),
        }
    }

    /// Issue a leaf for `key` with common name `cn`; returns the PEM chain leaf, intermediate, root.
    pub fn issue(&self, key: &impl rcgen::PublicKeyData, cn: &str) -> String {
        let mut params =
            rcgen::CertificateParams::new(vec![format!("{cn}.local")]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        self.issue_with(key, params)
    }

    /// Issue a leaf for `key` with the given parameters; returns the PEM chain leaf, intermediate, root.
    pub fn issue_with(
        &self,
        key: &impl rcgen::PublicKeyData,
        params: rcgen::CertificateParams,
    ) -> String {
        let leaf = params
            .signed_by(key, &self.intermediate_issuer)
            .expect("leaf cert");
        format!(
            "{}{}{}",
            leaf.pem(),
            self.intermediate.pem(),
            self.root.pem()
        )
    }
}

impl TestCa {
    /// Sign a PEM CSR, keeping its subject, SANs and EKUs, valid from `not_before` to `not_after`; returns
    /// the PEM chain leaf, intermediate, root.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> String {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).expect("parse CSR");
        csr.params.not_before = not_before.into();
        csr.params.not_after = not_after.into();
        let leaf = csr.signed_by(&self.intermediate_issuer).expect("sign CSR");
        format!(
            "{}{}{}",
            leaf.pem(),
            self.intermediate.pem(),
            self.root.pem()
        )
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.root.der().clone()
    }
}
