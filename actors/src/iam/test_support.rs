//! Fixtures for IAM tests: a private SoftHSM, a test CA, the shipped module set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aos_config::{CertModuleConfig, ExtendedKeyUsage, KeyAlgorithm, Pkcs11Params};
use aos_pkcs11::testkit::{SoftHsm, TestCa, SO_PIN};
use aos_pkcs11::{take_ownership, Pin, PinSource, TokenSelector};

use super::cert_module::{NodeIdentity, TrustRoots};
use crate::clock::ManualClock;

pub const PASSWORD: &str = SO_PIN;

pub struct Fixture {
    pub hsm: SoftHsm,
    pub ca: Arc<TestCa>,
    pub clock: ManualClock,
    pub node: NodeIdentity,
    pub roots: Arc<TrustRoots>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let ca = Arc::new(TestCa::new("unit-1"));
        let roots = Arc::new(TrustRoots::new(&[ca.root_der()]).unwrap());
        Fixture {
            hsm: SoftHsm::new(),
            ca,
            clock: ManualClock::starting_now(),
            node: NodeIdentity {
                unit_id: "unit-1".into(),
                node_id: "node-0".into(),
            },
            roots,
        }
    }

    pub fn pin_path(&self, token: &str) -> PathBuf {
        self.hsm.dir().join(format!("{token}.pin"))
    }

    pub fn params(&self, token: &str) -> Pkcs11Params {
        let mut p = Pkcs11Params::new(self.hsm.library());
        p.token_label = Some(token.to_owned());
        p.user_pin_path = Some(self.pin_path(token));
        p
    }

    /// A module on `token` with the given algorithm and serverAuth+clientAuth.
    pub fn module_config(
        &self,
        id: &str,
        algorithm: KeyAlgorithm,
        token: &str,
    ) -> CertModuleConfig {
        let mut c = CertModuleConfig::new(id, algorithm, self.params(token));
        c.extended_key_usage = vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth];
        c
    }

    /// The shipped AosCore module set on tokens `aoscloud` and `aoscore`.
    pub fn shipped_modules(&self) -> Vec<CertModuleConfig> {
        let mut online =
            CertModuleConfig::new("online", KeyAlgorithm::EccP384, self.params("aoscloud"));
        online.max_items = 2;
        let mut offline =
            CertModuleConfig::new("offline", KeyAlgorithm::Rsa2048, self.params("aoscloud"));
        offline.max_items = 5;
        let mut disk = CertModuleConfig::new(
            "diskencryption",
            KeyAlgorithm::Rsa2048,
            self.params("aoscore"),
        );
        disk.max_items = 1;
        disk.self_signed = true;
        vec![
            online,
            offline,
            self.module_config("iam", KeyAlgorithm::EccP384, "aoscore"),
            self.module_config("sm", KeyAlgorithm::EccP384, "aoscore"),
            self.module_config("cm", KeyAlgorithm::EccP384, "aoscore"),
            disk,
        ]
    }

    /// Take ownership of `token` the way the provisioner does (PIN file generated).
    pub fn own(&self, token: &str) {
        let pin = PinSource::from_params(&self.params(token))
            .unwrap()
            .read_or_create()
            .unwrap();
        take_ownership(
            &self.hsm.module(),
            &TokenSelector::Label(token.into()),
            token,
            &Pin::new(PASSWORD),
            &pin,
        )
        .unwrap();
    }

    /// Sign a CSR with the test CA for `days` days from the fixture clock's now.
    pub fn sign(&self, csr: &str, days: u64) -> String {
        let now = aos_clock_now(&self.clock);
        self.ca.sign_csr(
            csr,
            now - Duration::from_secs(60),
            now + Duration::from_secs(days * 86_400),
        )
    }
}

pub fn aos_clock_now(clock: &ManualClock) -> SystemTime {
    use crate::clock::Clock;
    clock.now()
}
