//! The unit CA: its root (and intermediate), and signing under the policy.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aos_actors::clock::{Clock, SystemClock};
use aos_transport::tls::{PeerIdentity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::csr::ParsedCsr;
use super::error::{CloudError, Refusal};
use super::options::CaOptions;
use super::policy::CaPolicy;
use super::request::{IssuedChain, SignRequest};
use super::stats::{CaStats, Counters};

/// Length of the random serial numbers, in bytes (126 random bits: the top bit is cleared to keep the
/// number positive and the next one set to keep its length fixed).
pub const SERIAL_LEN: usize = 16;

/// The latest time X.509 (GeneralizedTime, four-digit years) can express: 9999-12-31T23:59:59Z.
const LAST_X509_SECOND: u64 = 253_402_300_799;

/// A CA certificate with its key, as PEM.
pub(super) struct CaCert {
    pub(super) der: CertificateDer<'static>,
    pub(super) pem: String,
    pub(super) key_pem: Zeroizing<String>,
    pub(super) not_after: SystemTime,
}

impl CaCert {
    pub(super) fn new(
        der: CertificateDer<'static>,
        pem: String,
        key_pem: Zeroizing<String>,
        not_after: SystemTime,
    ) -> CaCert {
        CaCert {
            der,
            pem,
            key_pem,
            not_after,
        }
    }
}

/// The CA of one unit: a root, optionally an intermediate that signs node certificates, a signing policy, a
/// clock and counters.
///
/// [`CloudCa::sign`] takes `&self`, and the CA is `Send + Sync`: a server can share it behind an `Arc` and
/// sign from many tasks.
///
/// This is a development and simulation CA: its keys are software keys, and [`CloudCa::save`] writes them to
/// disk as PEM (mode 0600). It is not meant to guard a production fleet.
pub struct CloudCa {
    pub(super) unit_id: String,
    pub(super) root: CaCert,
    pub(super) intermediate: Option<CaCert>,
    issuer: Issuer<'static, KeyPair>,
    issuer_not_after: SystemTime,
    policy: CaPolicy,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

// === impl CloudCa ===

impl CloudCa {
    /// A fresh CA for unit `unit_id`: new keys, a self-signed root and (by default) an intermediate.
    pub fn new(unit_id: &str, options: CaOptions) -> Result<CloudCa, CloudError> {
        check_unit_id(unit_id).map_err(CloudError::InvalidUnitId)?;
        options.policy.validate()?;
        let now = signing_time(options.clock.as_ref())?;
        let not_before = now
            .checked_sub(options.policy.backdate)
            .filter(|t| *t >= UNIX_EPOCH)
            .unwrap_or(UNIX_EPOCH);
        let not_after = now
            .checked_add(options.validity)
            .filter(|t| *t <= last_x509_time())
            .ok_or_else(|| {
                CloudError::InvalidPolicy(format!(
                    "CA validity {:?} ends after the year 9999",
                    options.validity
                ))
            })?;
        let alg = options.key_algorithm.rcgen();
        let path_len = u8::from(options.intermediate);
        let root_key = KeyPair::generate_for(alg).map_err(crypto("root key"))?;
        let mut root_params = ca_params(
            format!("aos unit {unit_id} root CA"),
            path_len,
            not_before,
            not_after,
        )?;
        root_params.use_authority_key_identifier_extension = false;
        let root_cert = root_params
            .self_signed(&root_key)
            .map_err(crypto("root certificate"))?;
        let root = CaCert::new(
            root_cert.der().clone(),
            root_cert.pem(),
            Zeroizing::new(root_key.serialize_pem()),
            not_after,
        );
        if !options.intermediate {
            return CloudCa::from_parts(unit_id, root, None, root_key)
                .map(|ca| ca.configured(options.policy, options.clock));
        }
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate_for(alg).map_err(crypto("intermediate key"))?;
        let int_params = ca_params(
            format!("aos unit {unit_id} issuing CA"),
            0,
            not_before,
            not_after,
        )?;
        let int_cert = int_params
            .signed_by(&int_key, &root_issuer)
            .map_err(crypto("intermediate certificate"))?;
        let intermediate = CaCert::new(
            int_cert.der().clone(),
            int_cert.pem(),
            Zeroizing::new(int_key.serialize_pem()),
            not_after,
        );
        CloudCa::from_parts(unit_id, root, Some(intermediate), int_key)
            .map(|ca| ca.configured(options.policy, options.clock))
    }

    /// Assemble a CA whose node certificates are signed by `issuing_key` (the intermediate's key if there is
    /// one, else the root's). Starts with the default policy and the system clock.
    pub(super) fn from_parts(
        unit_id: &str,
        root: CaCert,
        intermediate: Option<CaCert>,
        issuing_key: KeyPair,
    ) -> Result<CloudCa, CloudError> {
        let issuing = intermediate.as_ref().unwrap_or(&root);
        let issuer_not_after = issuing.not_after;
        let issuer = Issuer::from_ca_cert_der(&issuing.der, issuing_key)
            .map_err(crypto("issuing CA certificate"))?;
        Ok(CloudCa {
            unit_id: unit_id.to_owned(),
            root,
            intermediate,
            issuer,
            issuer_not_after,
            policy: CaPolicy::default(),
            clock: Arc::new(SystemClock),
            counters: Counters::default(),
        })
    }

    fn configured(mut self, policy: CaPolicy, clock: Arc<dyn Clock>) -> CloudCa {
        self.policy = policy;
        self.clock = clock;
        self
    }

    /// The same CA with another signing policy (a loaded CA starts with the default one).
    pub fn with_policy(mut self, policy: CaPolicy) -> Result<CloudCa, CloudError> {
        policy.validate()?;
        self.policy = policy;
        Ok(self)
    }

    /// The same CA reading time from `clock` (a loaded CA starts with the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> CloudCa {
        self.clock = clock;
        self
    }

    /// The unit this CA signs for.
    pub fn unit_id(&self) -> &str {
        &self.unit_id
    }

    /// The root certificate, DER: the trust anchor nodes configure as `ca_cert`.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root.der
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root.pem
    }

    /// The intermediate certificate, DER, if node certificates are signed by one.
    pub fn intermediate_der(&self) -> Option<&CertificateDer<'static>> {
        self.intermediate.as_ref().map(|c| &c.der)
    }

    /// End of validity of the certificate that signs node certificates; no node certificate outlives it.
    pub fn issuer_not_after(&self) -> SystemTime {
        self.issuer_not_after
    }

    /// The signing policy.
    pub fn policy(&self) -> &CaPolicy {
        &self.policy
    }

    /// What the CA has issued and refused so far.
    pub fn stats(&self) -> CaStats {
        self.counters.snapshot()
    }

    /// Sign `request.csr_pem` if the policy allows it; returns the chain leaf → intermediate → root.
    ///
    /// The CSR's signature must verify, its one `urn:aos:` URI SAN must be exactly
    /// `urn:aos:<this unit>:<request.node_id>:<request.cert_type>`, and the cert type, SANs, EKUs, key and
    /// lifetime must pass the [`CaPolicy`]. The certificate copies the CSR's subject, DNS SANs, identity URI
    /// and EKUs; key usage follows the key; the serial is random; validity runs from the signing time minus
    /// the backdate to the signing time plus the lifetime, in whole seconds of the CA's clock.
    pub fn sign(&self, request: &SignRequest) -> Result<IssuedChain, CloudError> {
        let result = self.issue(request);
        match &result {
            Ok(chain) => {
                self.counters.issued();
                let not_after_unix = chain
                    .not_after
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                tracing::info!(
                    node = %request.node_id,
                    cert_type = %request.cert_type,
                    serial = %chain.serial_hex(),
                    not_after_unix,
                    "certificate issued"
                );
            }
            Err(CloudError::Refused(refusal)) => {
                self.counters.refused(refusal.label());
                tracing::warn!(
                    node = %request.node_id,
                    cert_type = %request.cert_type,
                    reason = refusal.label(),
                    "CSR refused: {refusal}"
                );
            }
            Err(err) => {
                self.counters.failed();
                tracing::error!(
                    node = %request.node_id,
                    cert_type = %request.cert_type,
                    "signing failed: {err}"
                );
            }
        }
        result
    }

    fn issue(&self, request: &SignRequest) -> Result<IssuedChain, CloudError> {
        let csr = ParsedCsr::from_pem(&request.csr_pem)?;
        let admitted = self.policy.admit(&self.unit_id, request, &csr)?;
        let now = signing_time(self.clock.as_ref())?;
        let not_after = now
            .checked_add(admitted.lifetime)
            .unwrap_or_else(last_x509_time);
        if not_after > self.issuer_not_after {
            return Err(Refusal::BeyondCaValidity {
                not_after,
                ca_not_after: self.issuer_not_after,
            }
            .into());
        }
        let not_before = now
            .checked_sub(self.policy.backdate)
            .filter(|t| *t >= UNIX_EPOCH)
            .unwrap_or(UNIX_EPOCH);
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        params.distinguished_name = csr.request.params.distinguished_name.clone();
        params.subject_alt_names = admitted.sans;
        params.extended_key_usages = admitted.ekus;
        params.key_usages = csr.key.key_usages();
        params.is_ca = IsCa::ExplicitNoCa;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(&csr.request.public_key, &self.issuer)
            .map_err(crypto("node certificate"))?;

        let mut chain_pem = leaf.pem();
        if let Some(intermediate) = &self.intermediate {
            chain_pem.push_str(&intermediate.pem);
        }
        chain_pem.push_str(&self.root.pem);
        Ok(IssuedChain {
            chain_pem,
            leaf: leaf.der().clone(),
            identity: admitted.identity,
            serial: serial.to_vec(),
            not_before,
            not_after,
        })
    }
}

// === impl CloudCa (the cloud's own server certificate) ===

impl CloudCa {
    /// Sign a TLS server certificate for the cloud service itself (not for a node): `dns_names` as DNS
    /// SANs, serverAuth, digitalSignature, valid from now minus the backdate for `lifetime`, for the public
    /// key of `key`. Returns the chain leaf → intermediate (if any) → root.
    ///
    /// Node CSRs go through [`CloudCa::sign`] and its policy; this is for the simulated cloud's TLS
    /// endpoint, which nodes verify by DNS name against the unit root.
    pub fn sign_server_cert(
        &self,
        key: &impl rcgen::PublicKeyData,
        dns_names: &[String],
        lifetime: Duration,
    ) -> Result<Vec<CertificateDer<'static>>, CloudError> {
        if dns_names.is_empty() || lifetime.is_zero() {
            return Err(CloudError::InvalidPolicy(
                "a server certificate needs at least one DNS name and a non-zero lifetime".into(),
            ));
        }
        let now = signing_time(self.clock.as_ref())?;
        let not_after = now.checked_add(lifetime).unwrap_or_else(last_x509_time);
        if not_after > self.issuer_not_after {
            return Err(Refusal::BeyondCaValidity {
                not_after,
                ca_not_after: self.issuer_not_after,
            }
            .into());
        }
        let mut params = CertificateParams::new(dns_names.to_vec())
            .map_err(crypto("server certificate names"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "aos-edge dev cloud");
        dn.push(DnType::CommonName, dns_names[0].clone());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.is_ca = IsCa::ExplicitNoCa;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.not_before = now
            .checked_sub(self.policy.backdate)
            .filter(|t| *t >= UNIX_EPOCH)
            .unwrap_or(UNIX_EPOCH)
            .into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(key, &self.issuer)
            .map_err(crypto("server certificate"))?;
        tracing::info!(names = ?dns_names, "cloud server certificate issued");
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.intermediate.as_ref().map(|c| c.der.clone()));
        chain.push(self.root.der.clone());
        Ok(chain)
    }
}

impl fmt::Debug for CloudCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudCa")
            .field("unit_id", &self.unit_id)
            .field("intermediate", &self.intermediate.is_some())
            .field("issuer_not_after", &self.issuer_not_after)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

// === helpers ===

/// Check a unit id with the rules the transport applies to identity URIs.
pub(super) fn check_unit_id(unit_id: &str) -> Result<(), aos_transport::tls::IdentityError> {
    PeerIdentity::new(unit_id, "ca", Role::Iam).map(|_| ())
}

fn ca_params(
    common_name: String,
    path_len: u8,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, CloudError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "aos-edge dev cloud");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The clock's time, in whole seconds (X.509 times have no fractions), never before 1970.
fn signing_time(clock: &dyn Clock) -> Result<SystemTime, CloudError> {
    let since_epoch = clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CloudError::ClockBeforeEpoch)?;
    Ok(UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()))
}

fn last_x509_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LAST_X509_SECOND)
}

fn random_serial() -> Result<[u8; SERIAL_LEN], CloudError> {
    let mut serial = [0u8; SERIAL_LEN];
    getrandom::fill(&mut serial)
        .map_err(|e| CloudError::Crypto(format!("random serial number: {e}")))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

fn crypto(what: &'static str) -> impl Fn(rcgen::Error) -> CloudError {
    move |e| CloudError::Crypto(format!("{what}: {e}"))
}
