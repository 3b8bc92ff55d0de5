//! Tests of the cloud CA with real CSRs: software keys (rcgen) and SoftHSM token keys built the way IAM builds
//! them, verified with rustls-webpki, IAM's own chain check and `openssl verify`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aos_actors::clock::{Clock, ManualClock};
use aos_actors::iam::cert_module::{build_csr, NodeIdentity, TrustRoots};
use aos_config::{CertModuleConfig, ExtendedKeyUsage, KeyAlgorithm, Pkcs11Params};
use aos_pkcs11::testkit::SoftHsm;
use aos_pkcs11::TokenKey;
use aos_transport::tls::{PeerIdentity, Role};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::*;

const UNIT: &str = "unit-1";
const NODE: &str = "node-0";
/// 2025-06-15T15:06:40Z plus half a second: the CA must round down to whole seconds.
const START_MS: u64 = 1_750_000_000_500;

// === fixtures ===

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_millis(START_MS))
}

fn start_second() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_MS / 1000)
}

fn ca_with(clock: &ManualClock, intermediate: bool) -> CloudCa {
    CloudCa::new(
        UNIT,
        CaOptions {
            intermediate,
            clock: Arc::new(clock.clone()),
            ..CaOptions::default()
        },
    )
    .unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

fn identity(unit: &str, node: &str, role: &str) -> String {
    format!("urn:aos:{unit}:{node}:{role}")
}

/// CSR params as IAM builds them: CN, DNS SANs, the identity URI(s), serverAuth + clientAuth.
fn iam_params(cn: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

fn csr_pem(params: &CertificateParams, alg: &'static rcgen::SignatureAlgorithm) -> String {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// A software P-384 CSR for `node` and `role` of `unit`, with one DNS name.
fn software_csr(unit: &str, node: &str, role: &str) -> String {
    let params = iam_params(
        node,
        vec![dns("node0.local"), uri(&identity(unit, node, role))],
    );
    csr_pem(&params, &rcgen::PKCS_ECDSA_P384_SHA384)
}

fn chain_ders(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn unix(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap())
}

/// Verify `chain_pem` to `root` at `at` with rustls-webpki, for client and for server authentication.
fn webpki_verify(
    root: &CertificateDer<'_>,
    chain_pem: &str,
    at: SystemTime,
) -> Result<(), webpki::Error> {
    let chain = chain_ders(chain_pem);
    let anchor = webpki::anchor_from_trusted_cert(root).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    for usage in [
        webpki::KeyUsage::client_auth(),
        webpki::KeyUsage::server_auth(),
    ] {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &chain[1..],
            unix(at),
            usage,
            None,
            None,
        )?;
    }
    Ok(())
}

/// `openssl verify -attime` of the leaf against the root, the rest of the chain as untrusted intermediates.
/// Returns whether openssl said OK, and its output.
fn openssl_verify(
    root_pem: &str,
    chain_pem: &str,
    at: SystemTime,
    purpose: &str,
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain_ders(chain_pem);
    let to_pem = |der: &CertificateDer<'_>| {
        pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref().to_vec()))
    };
    std::fs::write(dir.path().join("root.pem"), root_pem).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), to_pem(&chain[0])).unwrap();
    let untrusted: String = chain[1..chain.len() - 1].iter().map(to_pem).collect();
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir.path())
        .args([
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            "root.pem",
        ])
        .arg("-attime")
        .arg(at.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string());
    if !untrusted.is_empty() {
        std::fs::write(dir.path().join("untrusted.pem"), untrusted).unwrap();
        cmd.args(["-untrusted", "untrusted.pem"]);
    }
    let out = cmd
        .arg("leaf.pem")
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("leaf.pem: OK"), text)
}

fn refusal(result: Result<IssuedChain, CloudError>) -> Refusal {
    match result {
        Err(CloudError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn shipped_ekus() -> Vec<ExtendedKeyUsage> {
    vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth]
}

// === signing ===

#[test]
fn matching_csr_is_signed_and_the_chain_verifies_at_the_right_time() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let request = SignRequest::new(NODE, "iam", software_csr(UNIT, NODE, "iam"));
    let issued = ca.sign(&request).unwrap();

    let chain = chain_ders(&issued.chain_pem);
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(&chain[1], ca.intermediate_der().unwrap());
    assert_eq!(&chain[2], ca.root_der());
    assert_eq!(chain[0], issued.leaf);
    assert_eq!(
        issued.identity,
        PeerIdentity::new(UNIT, NODE, Role::Iam).unwrap()
    );

    let now = clock.now();
    webpki_verify(ca.root_der(), &issued.chain_pem, now).unwrap();
    // IAM's own check (ApplyCert) accepts it too.
    TrustRoots::new(std::slice::from_ref(ca.root_der()))
        .unwrap()
        .verify(&chain, now, &shipped_ekus())
        .unwrap();
    let after = issued.not_after + Duration::from_secs(1);
    assert!(matches!(
        webpki_verify(ca.root_der(), &issued.chain_pem, after),
        Err(webpki::Error::CertExpired { .. })
    ));
    let before = issued.not_before - Duration::from_secs(1);
    assert!(matches!(
        webpki_verify(ca.root_der(), &issued.chain_pem, before),
        Err(webpki::Error::CertNotValidYet { .. })
    ));
    // Another CA's root does not anchor it.
    let other = ca_with(&clock, true);
    assert!(webpki_verify(other.root_der(), &issued.chain_pem, now).is_err());

    // The outside witness.
    for purpose in ["sslclient", "sslserver"] {
        let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, now, purpose);
        assert!(ok, "openssl verify ({purpose}): {out}");
    }
    let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, after, "sslclient");
    assert!(
        !ok && out.contains("expired"),
        "openssl after expiry: {out}"
    );
    let (ok, _) = openssl_verify(other.root_pem(), &issued.chain_pem, now, "sslclient");
    assert!(!ok, "openssl must refuse a foreign root");

    let stats = ca.stats();
    assert_eq!((stats.issued, stats.refused, stats.failed), (1, 0, 0));
}

#[test]
fn issued_leaf_keeps_subject_sans_and_ekus_and_gets_key_usage_serial_and_no_ca() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let params = iam_params(
        "gateway subject",
        vec![
            dns("node0.local"),
            dns("iam.unit-1.local"),
            uri(&identity(UNIT, NODE, "sm")),
        ],
    );
    let issued = ca
        .sign(&SignRequest::new(
            NODE,
            "sm",
            csr_pem(&params, &rcgen::PKCS_ECDSA_P384_SHA384),
        ))
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(issued.leaf.as_ref()).unwrap();

    let cn: Vec<&str> = leaf
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["gateway subject"]);
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::URI(u) => format!("uri:{u}"),
            other => format!("other:{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "dns:node0.local",
            "dns:iam.unit-1.local",
            "uri:urn:aos:unit-1:node-0:sm"
        ]
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && !eku.code_signing && eku.other.is_empty());
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature());
    assert!(!ku.key_cert_sign() && !ku.key_encipherment());
    assert!(!leaf.is_ca());
    assert!(leaf.extensions().iter().any(|ext| matches!(
        ext.parsed_extension(),
        x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(_)
    )));
    assert_eq!(leaf.raw_serial(), issued.serial.as_slice());
    assert_eq!(issued.serial.len(), SERIAL_LEN);
    assert_eq!(
        PeerIdentity::from_certificate(&issued.leaf).unwrap(),
        PeerIdentity::new(UNIT, NODE, Role::Sm).unwrap()
    );
    let intermediate = ca.intermediate_der().unwrap();
    let (_, intermediate) = X509Certificate::from_der(intermediate.as_ref()).unwrap();
    assert_eq!(leaf.issuer(), intermediate.subject());

    // Serials are random: a second certificate for the same CSR differs.
    let again = ca
        .sign(&SignRequest::new(
            NODE,
            "sm",
            csr_pem(&params, &rcgen::PKCS_ECDSA_P384_SHA384),
        ))
        .unwrap();
    assert_ne!(again.serial, issued.serial);
}

#[test]
fn csr_built_by_iam_with_a_softhsm_token_key_is_signed() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let hsm = SoftHsm::new();
    let token = hsm.token("aoscore");
    let pair = token
        .generate_key_pair("iam", KeyAlgorithm::EccP384)
        .unwrap();
    let key = TokenKey::new(token.clone(), pair).unwrap();
    let mut config = CertModuleConfig::new(
        "iam",
        KeyAlgorithm::EccP384,
        Pkcs11Params::new(hsm.library()),
    );
    config.extended_key_usage = shipped_ekus();
    config.alternative_names = vec!["node0.local".into()];
    let node = NodeIdentity {
        unit_id: UNIT.into(),
        node_id: NODE.into(),
    };
    let csr = build_csr(&config, &node, "", &key).unwrap();

    let issued = ca
        .sign(&SignRequest::new(NODE, "iam", csr.clone()))
        .unwrap();
    let now = clock.now();
    webpki_verify(ca.root_der(), &issued.chain_pem, now).unwrap();
    TrustRoots::new(std::slice::from_ref(ca.root_der()))
        .unwrap()
        .verify(&chain_ders(&issued.chain_pem), now, &shipped_ekus())
        .unwrap();
    let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, now, "sslclient");
    assert!(ok, "openssl verify: {out}");
    // The certificate is for the token's key, and names the node.
    let (_, leaf) = X509Certificate::from_der(issued.leaf.as_ref()).unwrap();
    assert_eq!(leaf.public_key().raw, key.spki());
    let cn: Vec<&str> = leaf
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, [NODE]);

    // The same IAM CSR is refused for another node and another cert type.
    assert_eq!(
        refusal(ca.sign(&SignRequest::new("node-1", "iam", csr.clone()))),
        Refusal::WrongNode {
            expected: "node-1".into(),
            found: NODE.into()
        }
    );
    assert_eq!(
        refusal(ca.sign(&SignRequest::new(NODE, "cm", csr))),
        Refusal::WrongRole {
            expected: "cm".into(),
            found: "iam".into()
        }
    );
}

#[test]
fn rsa_token_key_without_ekus_gets_key_encipherment() {
    let clock = clock();
    let ca = ca_with(&clock, false);
    let hsm = SoftHsm::new();
    let token = hsm.token("aoscloud");
    let pair = token
        .generate_key_pair("offline", KeyAlgorithm::Rsa2048)
        .unwrap();
    let key = TokenKey::new(token.clone(), pair).unwrap();
    let config = CertModuleConfig::new(
        "offline",
        KeyAlgorithm::Rsa2048,
        Pkcs11Params::new(hsm.library()),
    );
    let node = NodeIdentity {
        unit_id: UNIT.into(),
        node_id: NODE.into(),
    };
    let csr = build_csr(&config, &node, "", &key).unwrap();
    let issued = ca.sign(&SignRequest::new(NODE, "offline", csr)).unwrap();

    assert_eq!(chain_ders(&issued.chain_pem).len(), 2, "leaf and root");
    let (_, leaf) = X509Certificate::from_der(issued.leaf.as_ref()).unwrap();
    assert_eq!(leaf.public_key().raw, key.spki());
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert!(leaf.extended_key_usage().unwrap().is_none());
    let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, clock.now(), "any");
    assert!(ok, "openssl verify: {out}");
}

// === refusals ===

#[test]
fn csrs_for_another_node_unit_or_role_or_without_one_identity_are_refused_by_name() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let sign = |node: &str, cert_type: &str, csr: String| {
        refusal(ca.sign(&SignRequest::new(node, cert_type, csr)))
    };

    assert_eq!(
        sign(NODE, "iam", software_csr(UNIT, "node-9", "iam")),
        Refusal::WrongNode {
            expected: NODE.into(),
            found: "node-9".into()
        }
    );
    assert_eq!(
        sign(NODE, "iam", software_csr("unit-2", NODE, "iam")),
        Refusal::WrongUnit {
            expected: UNIT.into(),
            found: "unit-2".into()
        }
    );
    assert_eq!(
        sign(NODE, "sm", software_csr(UNIT, NODE, "iam")),
        Refusal::WrongRole {
            expected: "sm".into(),
            found: "iam".into()
        }
    );
    let none = iam_params(NODE, vec![dns("node0.local")]);
    assert_eq!(
        sign(NODE, "iam", csr_pem(&none, &rcgen::PKCS_ECDSA_P256_SHA256)),
        Refusal::NoIdentity
    );
    let two = iam_params(
        NODE,
        vec![
            uri(&identity(UNIT, NODE, "iam")),
            uri(&identity(UNIT, NODE, "iam")),
        ],
    );
    assert_eq!(
        sign(NODE, "iam", csr_pem(&two, &rcgen::PKCS_ECDSA_P256_SHA256)),
        Refusal::AmbiguousIdentity(2)
    );
    // The identity prefix is found without regard to case, so this is a second identity, not a stray URI.
    let mixed = iam_params(
        NODE,
        vec![
            uri(&identity(UNIT, NODE, "iam")),
            uri("URN:AOS:unit-1:node-0:iam"),
        ],
    );
    assert_eq!(
        sign(NODE, "iam", csr_pem(&mixed, &rcgen::PKCS_ECDSA_P256_SHA256)),
        Refusal::AmbiguousIdentity(2)
    );
    let short = iam_params(NODE, vec![uri("urn:aos:unit-1:node-0")]);
    assert!(matches!(
        sign(NODE, "iam", csr_pem(&short, &rcgen::PKCS_ECDSA_P256_SHA256)),
        Refusal::MalformedIdentity { uri, .. } if uri == "urn:aos:unit-1:node-0"
    ));
    assert!(matches!(
        sign(NODE, "diskencryption", software_csr(UNIT, NODE, "diskencryption")),
        Refusal::CertTypeNotAllowed { cert_type, .. } if cert_type == "diskencryption"
    ));

    let stats = ca.stats();
    assert_eq!((stats.issued, stats.refused), (0, 8));
    assert_eq!(stats.refusals.get("ambiguous_identity"), Some(&2));
    assert_eq!(stats.refusals.get("wrong_node"), Some(&1));
    assert_eq!(stats.refusals.get("wrong_unit"), Some(&1));
    assert_eq!(stats.refusals.get("wrong_role"), Some(&1));
    assert_eq!(stats.refusals.get("no_identity"), Some(&1));
}

#[test]
fn tampered_csrs_are_refused() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let pem = software_csr(UNIT, NODE, "iam");
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let as_pem = |der: Vec<u8>| pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));

    // A flipped bit in the last byte of the signature.
    let mut signature = der.clone();
    *signature.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        refusal(ca.sign(&SignRequest::new(NODE, "iam", as_pem(signature)))),
        Refusal::BadSignature
    );
    // The signed content changed: node-0 becomes node-1 in the identity URI.
    let at = der
        .windows(b"node-0:iam".len())
        .position(|w| w == b"node-0:iam")
        .unwrap();
    let mut content = der.clone();
    content[at + 5] = b'1';
    assert_eq!(
        refusal(ca.sign(&SignRequest::new("node-1", "iam", as_pem(content)))),
        Refusal::BadSignature
    );
    // Not a CSR at all.
    assert!(matches!(
        refusal(ca.sign(&SignRequest::new(NODE, "iam", "not a csr"))),
        Refusal::Malformed(_)
    ));
    // The untouched CSR still signs.
    ca.sign(&SignRequest::new(NODE, "iam", as_pem(der)))
        .unwrap();
    assert_eq!(ca.stats().refusals.get("bad_signature"), Some(&2));
}

#[test]
fn ca_requests_foreign_sans_and_disallowed_ekus_are_refused() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    let sign = |params: CertificateParams| {
        refusal(ca.sign(&SignRequest::new(
            NODE,
            "iam",
            csr_pem(&params, &rcgen::PKCS_ECDSA_P256_SHA256),
        )))
    };
    let base = || iam_params(NODE, vec![uri(&identity(UNIT, NODE, "iam"))]);

    let mut ca_request = base();
    ca_request.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert_eq!(sign(ca_request), Refusal::CaRequested);

    let mut ip = base();
    ip.subject_alt_names
        .push(SanType::IpAddress([10, 0, 0, 1].into()));
    assert!(matches!(sign(ip), Refusal::UnexpectedSan(s) if s.contains("10.0.0.1")));

    let mut spiffe = base();
    spiffe.subject_alt_names.push(uri("spiffe://unit-1/node-0"));
    assert!(matches!(sign(spiffe), Refusal::UnexpectedSan(s) if s.contains("spiffe")));

    let mut code = base();
    code.extended_key_usages
        .push(ExtendedKeyUsagePurpose::CodeSigning);
    assert_eq!(sign(code), Refusal::EkuNotAllowed("codeSigning".into()));

    let mut any = base();
    any.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any];
    assert_eq!(
        sign(any),
        Refusal::EkuNotAllowed("anyExtendedKeyUsage".into())
    );

    // A policy that issues clientAuth only refuses serverAuth.
    let client_only = ca_with(&clock, false)
        .with_policy(CaPolicy {
            allowed_ekus: vec![ExtendedKeyUsage::ClientAuth],
            ..CaPolicy::default()
        })
        .unwrap();
    assert_eq!(
        refusal(client_only.sign(&SignRequest::new(
            NODE,
            "iam",
            software_csr(UNIT, NODE, "iam")
        ))),
        Refusal::EkuNotAllowed("serverAuth".into())
    );
    // A policy without `mp` refuses mp certificates that are otherwise fine.
    let no_mp = ca_with(&clock, false)
        .with_policy(CaPolicy {
            allowed_roles: [Role::Iam, Role::Sm].into_iter().collect(),
            ..CaPolicy::default()
        })
        .unwrap();
    assert!(matches!(
        refusal(no_mp.sign(&SignRequest::new(NODE, "mp", software_csr(UNIT, NODE, "mp")))),
        Refusal::CertTypeNotAllowed { allowed, .. } if allowed == "iam, sm"
    ));
}

// === lifetimes and time ===

#[test]
fn five_second_lifetime_ends_exactly_under_the_injected_clock() {
    let clock = clock();
    let ca = ca_with(&clock, true);
    clock.advance(Duration::from_secs(100));
    let signed_at = start_second() + Duration::from_secs(100);
    let issued = ca
        .sign(
            &SignRequest::new(NODE, "mp", software_csr(UNIT, NODE, "mp"))
                .with_lifetime(Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(issued.not_after, signed_at + Duration::from_secs(5));
    assert_eq!(issued.not_before, signed_at - Duration::from_secs(60));
    let (_, leaf) = X509Certificate::from_der(issued.leaf.as_ref()).unwrap();
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        secs(issued.not_after)
    );
    assert_eq!(
        leaf.validity().not_before.timestamp(),
        secs(issued.not_before)
    );

    clock.advance(Duration::from_secs(4));
    webpki_verify(ca.root_der(), &issued.chain_pem, clock.now()).unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        webpki_verify(ca.root_der(), &issued.chain_pem, clock.now()),
        Err(webpki::Error::CertExpired { .. })
    ));

    // Without a lifetime the default applies.
    let default = ca
        .sign(&SignRequest::new(
            NODE,
            "mp",
            software_csr(UNIT, NODE, "mp"),
        ))
        .unwrap();
    assert_eq!(
        default
            .not_after
            .duration_since(start_second() + Duration::from_secs(106))
            .unwrap(),
        365 * DAY
    );
}

#[test]
fn lifetimes_outside_the_policy_and_the_ca_validity_are_refused() {
    let clock = clock();
    let ca = CloudCa::new(
        UNIT,
        CaOptions {
            validity: 10 * DAY,
            clock: Arc::new(clock.clone()),
            ..CaOptions::default()
        },
    )
    .unwrap()
    .with_policy(CaPolicy {
        default_lifetime: DAY,
        max_lifetime: 30 * DAY,
        ..CaPolicy::default()
    })
    .unwrap();
    let request = |lifetime: Duration| {
        SignRequest::new(NODE, "cm", software_csr(UNIT, NODE, "cm")).with_lifetime(lifetime)
    };
    assert_eq!(
        refusal(ca.sign(&request(Duration::ZERO))),
        Refusal::ZeroLifetime
    );
    assert_eq!(
        refusal(ca.sign(&request(31 * DAY))),
        Refusal::LifetimeTooLong {
            requested: 31 * DAY,
            max: 30 * DAY
        }
    );
    assert!(matches!(
        refusal(ca.sign(&request(20 * DAY))),
        Refusal::BeyondCaValidity { ca_not_after, .. } if ca_not_after == ca.issuer_not_after()
    ));
    ca.sign(&request(9 * DAY)).unwrap();
    // Once the CA is near its end, even the default lifetime does not fit.
    clock.advance(9 * DAY + Duration::from_secs(3600));
    assert!(matches!(
        refusal(ca.sign(&request(DAY))),
        Refusal::BeyondCaValidity { .. }
    ));
}

#[test]
fn the_ca_is_built_under_the_injected_clock() {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(4_000_000_000));
    let ca = ca_with(&clock, true);
    let (_, root) = X509Certificate::from_der(ca.root_der().as_ref()).unwrap();
    assert_eq!(root.validity().not_before.timestamp(), 4_000_000_000 - 60);
    assert!(root.is_ca());
    let issued = ca
        .sign(&SignRequest::new(
            NODE,
            "sm",
            software_csr(UNIT, NODE, "sm"),
        ))
        .unwrap();
    webpki_verify(ca.root_der(), &issued.chain_pem, clock.now()).unwrap();
    // Real time (2025..2026) is before this CA was made.
    assert!(webpki_verify(ca.root_der(), &issued.chain_pem, SystemTime::now()).is_err());
}

// === construction and storage ===

#[test]
fn bad_unit_ids_and_policies_are_refused_when_building() {
    assert!(matches!(
        CloudCa::new("unit:1", CaOptions::default()),
        Err(CloudError::InvalidUnitId(_))
    ));
    assert!(matches!(
        CloudCa::new("", CaOptions::default()),
        Err(CloudError::InvalidUnitId(_))
    ));
    let bad = CaOptions {
        policy: CaPolicy {
            default_lifetime: 2 * DAY,
            max_lifetime: DAY,
            ..CaPolicy::default()
        },
        ..CaOptions::default()
    };
    assert!(matches!(
        CloudCa::new(UNIT, bad),
        Err(CloudError::InvalidPolicy(_))
    ));
    let forever = CaOptions {
        validity: Duration::from_secs(u64::MAX / 4),
        ..CaOptions::default()
    };
    assert!(matches!(
        CloudCa::new(UNIT, forever),
        Err(CloudError::InvalidPolicy(_))
    ));
}

#[test]
fn p256_ca_keys_work_too() {
    let clock = clock();
    let ca = CloudCa::new(
        UNIT,
        CaOptions {
            key_algorithm: CaKeyAlgorithm::EcdsaP256,
            clock: Arc::new(clock.clone()),
            ..CaOptions::default()
        },
    )
    .unwrap();
    let issued = ca
        .sign(&SignRequest::new(
            NODE,
            "iam",
            software_csr(UNIT, NODE, "iam"),
        ))
        .unwrap();
    webpki_verify(ca.root_der(), &issued.chain_pem, clock.now()).unwrap();
    let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, clock.now(), "sslserver");
    assert!(ok, "{out}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn save_and_load_round_trip_signs_the_same_way_and_keeps_keys_private() {
    for intermediate in [true, false] {
        let clock = clock();
        let ca = ca_with(&clock, intermediate);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        ca.save(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(ROOT_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(ROOT_CERT_FILE)), 0o644);
        assert_eq!(dir.join(INTERMEDIATE_KEY_FILE).exists(), intermediate);
        if intermediate {
            assert_eq!(mode(&dir.join(INTERMEDIATE_KEY_FILE)), 0o600);
        }
        // Never overwrites.
        assert!(matches!(
            ca.save(&dir),
            Err(StoreError::AlreadyExists { .. })
        ));

        let loaded = CloudCa::load(&dir)
            .unwrap()
            .with_clock(Arc::new(clock.clone()));
        assert_eq!(loaded.unit_id(), UNIT);
        assert_eq!(loaded.root_der(), ca.root_der());
        assert_eq!(loaded.root_pem(), ca.root_pem());
        assert_eq!(loaded.intermediate_der(), ca.intermediate_der());
        assert_eq!(loaded.issuer_not_after(), ca.issuer_not_after());

        let issued = loaded
            .sign(
                &SignRequest::new(NODE, "cm", software_csr(UNIT, NODE, "cm"))
                    .with_lifetime(Duration::from_secs(5)),
            )
            .unwrap();
        assert_eq!(issued.not_after, start_second() + Duration::from_secs(5));
        // Anchored by the original CA's root: the loaded CA signs as the saved one did.
        webpki_verify(ca.root_der(), &issued.chain_pem, clock.now()).unwrap();
        let (ok, out) = openssl_verify(ca.root_pem(), &issued.chain_pem, clock.now(), "sslclient");
        assert!(ok, "{out}");
        assert_eq!(
            chain_ders(&issued.chain_pem).len(),
            if intermediate { 3 } else { 2 }
        );
        assert_eq!(
            refusal(loaded.sign(&SignRequest::new(
                "node-1",
                "cm",
                software_csr(UNIT, NODE, "cm")
            ))),
            Refusal::WrongNode {
                expected: "node-1".into(),
                found: NODE.into()
            }
        );
    }
}

#[test]
fn load_refuses_open_keys_foreign_keys_and_missing_files() {
    let clock = clock();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ca_with(&clock, true).save(&a).unwrap();
    ca_with(&clock, true).save(&b).unwrap();

    let key = a.join(INTERMEDIATE_KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        CloudCa::load(&a),
        Err(StoreError::KeyPermissions { path, mode: 0o644 }) if path == key
    ));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    CloudCa::load(&a).unwrap();

    // B's intermediate with A's root: not signed by it.
    std::fs::remove_file(a.join(INTERMEDIATE_CERT_FILE)).unwrap();
    std::fs::copy(
        b.join(INTERMEDIATE_CERT_FILE),
        a.join(INTERMEDIATE_CERT_FILE),
    )
    .unwrap();
    // A's intermediate key does not belong to B's intermediate certificate.
    assert!(matches!(CloudCa::load(&a), Err(StoreError::Mismatch { path, .. }) if path == key));
    std::fs::remove_file(&key).unwrap();
    std::fs::copy(b.join(INTERMEDIATE_KEY_FILE), &key).unwrap();
    assert!(matches!(
        CloudCa::load(&a),
        Err(StoreError::Mismatch { reason, .. }) if reason.contains("not signed by the root")
    ));

    std::fs::remove_file(b.join(UNIT_ID_FILE)).unwrap();
    assert!(matches!(CloudCa::load(&b), Err(StoreError::Io { .. })));
    std::fs::write(b.join(UNIT_ID_FILE), "unit with spaces\n").unwrap();
    assert!(matches!(
        CloudCa::load(&b),
        Err(StoreError::Malformed { .. })
    ));
}

// === sharing ===

#[test]
fn the_ca_is_shared_across_threads_and_counts_every_request() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CloudCa>();

    let clock = clock();
    let ca = Arc::new(ca_with(&clock, true));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                let node = format!("node-{i}");
                let ok = ca
                    .sign(&SignRequest::new(
                        &node,
                        "sm",
                        software_csr(UNIT, &node, "sm"),
                    ))
                    .unwrap();
                let refused = ca.sign(&SignRequest::new(
                    &node,
                    "sm",
                    software_csr(UNIT, "x", "sm"),
                ));
                assert!(matches!(
                    refused,
                    Err(CloudError::Refused(Refusal::WrongNode { .. }))
                ));
                ok.serial
            })
        })
        .collect();
    let mut serials: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 4);
    let stats = ca.stats();
    assert_eq!((stats.issued, stats.refused, stats.failed), (4, 4, 0));
    assert_eq!(stats.refusals.get("wrong_node"), Some(&4));
    // Debug never shows key material.
    let debug = format!("{ca:?}");
    assert!(debug.contains("unit-1") && !debug.contains("PRIVATE KEY"));
}
