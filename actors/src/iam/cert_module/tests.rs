//! Cert module tests on real SoftHSM tokens with an rcgen test CA.

use std::sync::Arc;
use std::time::Duration;

use aos_config::{ExtendedKeyUsage, KeyAlgorithm};

use super::*;
use crate::clock::Clock;
use crate::iam::test_support::Fixture;

fn module(fx: &Fixture, id: &str, token: &str) -> CertModule {
    module_max(fx, id, token, 2)
}

fn module_max(fx: &Fixture, id: &str, token: &str, max_items: u32) -> CertModule {
    let mut config = fx.module_config(id, KeyAlgorithm::EccP256, token);
    config.max_items = max_items;
    CertModule::new(
        config,
        fx.node.clone(),
        fx.roots.clone(),
        Arc::new(fx.clock.clone()),
    )
}

fn objects(m: &mut CertModule) -> aos_pkcs11::Inventory {
    let label = m.cert_type().to_owned();
    m.token().unwrap().inventory(&label).unwrap()
}

#[test]
fn csr_carries_subject_sans_identity_and_eku() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut config = fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore");
    config.alternative_names = vec!["iam.local".into(), "node-0.unit".into()];
    let mut m = CertModule::new(
        config,
        fx.node.clone(),
        fx.roots.clone(),
        Arc::new(fx.clock.clone()),
    );
    let csr = m.create_key("").unwrap();
    let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
    let cn = parsed
        .params
        .distinguished_name
        .get(&rcgen::DnType::CommonName)
        .unwrap();
    assert_eq!(cn, &rcgen::DnValue::Utf8String("node-0".into()));
    let sans: Vec<String> = parsed
        .params
        .subject_alt_names
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    assert!(sans.iter().any(|s| s.contains("iam.local")), "{sans:?}");
    assert!(sans.iter().any(|s| s.contains("node-0.unit")), "{sans:?}");
    assert!(
        sans.iter().any(|s| s.contains("urn:aos:unit-1:node-0:iam")),
        "{sans:?}"
    );
    assert_eq!(
        parsed.params.extended_key_usages,
        vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        ]
    );
    assert_eq!(m.pending_ids().len(), 1);
}

#[test]
fn apply_stores_a_verified_chain_and_reports_urls() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "sm", "aoscore");
    let csr = m.create_key("sm-subject").unwrap();
    let applied = m.apply_cert(fx.sign(&csr, 30).as_bytes()).unwrap();
    assert!(applied.current_changed);
    assert!(
        applied
            .info
            .cert_url
            .starts_with("pkcs11:token=aoscore;object=sm;id=%"),
        "{}",
        applied.info.cert_url
    );
    assert!(applied.info.cert_url.contains("pin-source="));
    assert_eq!(applied.info.key_url, applied.info.cert_url);
    assert!(m.pending_ids().is_empty());
    assert_eq!(m.get(&[], "").unwrap(), applied.info);
    assert_eq!(
        m.get(&applied.info.issuer, &applied.info.serial).unwrap(),
        applied.info
    );
    assert!(matches!(m.get(&[], "00ff"), Err(CertError::NotFound(_))));
    let inv = objects(&mut m);
    assert_eq!(inv.complete().count(), 1);
    // The URL parses back to the object.
    let url: aos_pkcs11::ObjectUrl = applied.info.cert_url.parse().unwrap();
    let url = url.as_pkcs11().unwrap();
    assert_eq!(url.object.as_deref(), Some("sm"));
    assert_eq!(url.id.as_ref(), inv.complete().next().map(|s| &s.id));
}

#[test]
fn applying_the_same_certificate_again_changes_nothing() {
    // A forwarded ApplyCert retried after its answer was lost with a dropped link.
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "sm", "aoscore");
    let csr = m.create_key("sm-subject").unwrap();
    let pem = fx.sign(&csr, 30);
    let first = m.apply_cert(pem.as_bytes()).unwrap();
    let again = m.apply_cert(pem.as_bytes()).unwrap();
    assert_eq!(again.info, first.info);
    assert!(!again.current_changed && again.evicted.is_empty());
    assert_eq!(objects(&mut m).complete().count(), 1);
    // Another certificate for a key that is not pending is still refused.
    let other = fx.sign(&m.create_key("x").unwrap(), 30);
    m.apply_cert(other.as_bytes()).unwrap();
    assert!(matches!(
        m.apply_cert(fx.sign(&csr, 31).as_bytes()),
        Err(CertError::Chain {
            reason: ChainError::WrongKey,
            ..
        })
    ));
}

#[test]
fn every_bad_chain_is_rejected_and_the_token_is_left_as_it_was() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "iam", "aoscore");
    let csr = m.create_key("").unwrap();
    let now = fx.clock.now();
    let day = Duration::from_secs(86_400);
    let before = objects(&mut m);

    let foreign = aos_pkcs11::testkit::TestCa::new("foreign");
    let foreign_chain = foreign.sign_csr(&csr, now - day, now + day);
    let expired = fx.ca.sign_csr(&csr, now - 10 * day, now - day);
    let not_yet = fx.ca.sign_csr(&csr, now + day, now + 10 * day);
    // A certificate for a key this module never created.
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut stranger_params =
        rcgen::CertificateParams::new(vec!["stranger.local".to_owned()]).unwrap();
    stranger_params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let wrong_key = fx.ca.issue_with(&stranger, stranger_params);
    // Only clientAuth, but the module requires serverAuth too.
    let mut only_client = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
    only_client.params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let token_key_public = only_client.public_key.clone();
    let wrong_eku = fx
        .ca
        .issue_with(&token_key_public, only_client.params.clone());
    // A valid chain with the leaf's signature corrupted.
    let good = fx.sign(&csr, 30);
    let mut chain = aos_pkcs11::certs::parse_pem_chain(good.as_bytes()).unwrap();
    let mut leaf = chain[0].to_vec();
    let n = leaf.len();
    leaf[n - 5] ^= 0x01;
    chain[0] = leaf.into();
    let bad_signature = aos_pkcs11::certs::to_pem_chain(&chain);

    type Case = (&'static str, String, fn(&ChainError) -> bool);
    let cases: Vec<Case> = vec![
        ("foreign CA", foreign_chain, |r| {
            matches!(r, ChainError::Untrusted(_))
        }),
        ("expired", expired, |r| matches!(r, ChainError::Expired)),
        ("not yet valid", not_yet, |r| {
            matches!(r, ChainError::NotYetValid)
        }),
        ("wrong key", wrong_key, |r| {
            matches!(r, ChainError::WrongKey)
        }),
        ("wrong EKU", wrong_eku, |r| {
            matches!(r, ChainError::WrongEku(_))
        }),
        ("bad signature", bad_signature, |r| {
            matches!(r, ChainError::Untrusted(_))
        }),
        (
            "garbage",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            |r| matches!(r, ChainError::Malformed(_)),
        ),
        ("empty", String::new(), |r| {
            matches!(r, ChainError::Malformed(_))
        }),
    ];
    for (name, pem, expect) in cases {
        match m.apply_cert(pem.as_bytes()) {
            Err(CertError::Chain { reason, .. }) => {
                assert!(expect(&reason), "{name}: wrong reason {reason:?}")
            }
            other => panic!("{name}: expected a chain error, got {other:?}"),
        }
        assert_eq!(objects(&mut m), before, "{name}: token changed");
        assert_eq!(m.pending_ids().len(), 1, "{name}: pending key lost");
    }
    // And the good chain still applies afterwards.
    m.apply_cert(good.as_bytes()).unwrap();
}

#[test]
fn trimming_evicts_the_earliest_expiry_and_keeps_the_new_one() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "cm", "aoscore"); // max_items = 2
    let mut serials = Vec::new();
    for days in [30, 10, 20] {
        let csr = m.create_key("").unwrap();
        serials.push((days, m.apply_cert(fx.sign(&csr, days).as_bytes()).unwrap()));
    }
    let (_, third) = &serials[2];
    assert_eq!(
        third.evicted,
        vec![serials[1].1.info.serial.clone()],
        "the 10-day cert goes"
    );
    let left: Vec<String> = m.list().unwrap().into_iter().map(|c| c.serial).collect();
    assert_eq!(
        left,
        vec![
            serials[0].1.info.serial.clone(),
            serials[2].1.info.serial.clone()
        ]
    );
    assert!(!third.current_changed, "current is still the 30-day cert");
    assert_eq!(objects(&mut m).sets.len(), 2, "evicted keys are gone too");
}

#[test]
fn at_most_five_pending_keys() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "sm", "aoscore");
    for _ in 0..(MAX_PENDING_KEYS + 1) {
        m.create_key("").unwrap();
    }
    assert_eq!(m.pending_ids().len(), MAX_PENDING_KEYS);
    assert_eq!(
        objects(&mut m).sets.len(),
        MAX_PENDING_KEYS,
        "the oldest key was destroyed"
    );
}

#[test]
fn validation_removes_every_invalid_object_and_keeps_valid_ones() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module_max(&fx, "iam", "aoscore", 5);
    // Two valid certificates.
    let mut valid = Vec::new();
    for days in [30, 40] {
        let csr = m.create_key("").unwrap();
        valid.push(
            m.apply_cert(fx.sign(&csr, days).as_bytes())
                .unwrap()
                .info
                .serial,
        );
    }
    // Orphan 1: keys left by a crash (the module restarts and forgets its pending key).
    m.create_key("").unwrap();
    // Orphan 2: a short-lived certificate that will expire.
    let mut m3 = module_max(&fx, "iam", "aoscore", 5);
    let csr = m3.create_key("").unwrap();
    let now = fx.clock.now();
    m3.apply_cert(
        fx.ca
            .sign_csr(
                &csr,
                now - Duration::from_secs(60),
                now + Duration::from_secs(3600),
            )
            .as_bytes(),
    )
    .unwrap();
    // Orphan 3: a certificate whose private key vanished.
    let csr = m3.create_key("").unwrap();
    let info = m3.apply_cert(fx.sign(&csr, 50).as_bytes()).unwrap().info;
    let url: aos_pkcs11::ObjectUrl = info.cert_url.parse().unwrap();
    let id = url.as_pkcs11().unwrap().id.clone().unwrap();
    m3.token()
        .unwrap()
        .with_session(|s| {
            use cryptoki::object::{Attribute, ObjectClass};
            for o in s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(b"iam".to_vec()),
                Attribute::Id(id.clone()),
            ])? {
                s.destroy_object(o)?;
            }
            Ok(())
        })
        .unwrap();

    let mut fresh = module_max(&fx, "iam", "aoscore", 5);
    fx.clock.advance(Duration::from_secs(2 * 3600)); // the 1-hour cert expires
    let report = fresh.validate().unwrap();
    assert_eq!(report.removed_orphans.len(), 2, "{report:?}");
    assert_eq!(report.removed_certs.len(), 1, "{report:?}");
    let mut kept: Vec<String> = report.valid.iter().map(|c| c.serial.clone()).collect();
    kept.sort();
    valid.sort();
    assert_eq!(kept, valid);
    let inv = objects(&mut fresh);
    assert_eq!(inv.sets.len(), 2);
    assert!(inv.leftovers().next().is_none());
    // A second pass finds nothing more to do.
    let again = fresh.validate().unwrap();
    assert!(again.removed_certs.is_empty() && again.removed_orphans.is_empty());
}

#[test]
fn validation_spares_pending_keys() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut m = module(&fx, "sm", "aoscore");
    m.create_key("").unwrap();
    let report = m.validate().unwrap();
    assert!(report.removed_orphans.is_empty());
    assert_eq!(objects(&mut m).sets.len(), 1);
}

#[test]
fn clear_only_touches_its_own_label_and_self_signed_works() {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut sm = module(&fx, "sm", "aoscore");
    let csr = sm.create_key("").unwrap();
    sm.apply_cert(fx.sign(&csr, 30).as_bytes()).unwrap();
    let mut disk_config = fx.module_config("diskencryption", KeyAlgorithm::EccP256, "aoscore");
    disk_config.self_signed = true;
    disk_config.extended_key_usage = vec![ExtendedKeyUsage::ClientAuth];
    let mut disk = CertModule::new(
        disk_config,
        fx.node.clone(),
        fx.roots.clone(),
        Arc::new(fx.clock.clone()),
    );
    let info = disk.create_self_signed().unwrap();
    assert_eq!(disk.current().unwrap(), Some(info));
    assert!(
        disk.validate().unwrap().removed_certs.is_empty(),
        "self-signed certs are valid"
    );
    assert!(disk.clear().unwrap() >= 3);
    assert!(objects(&mut disk).sets.is_empty());
    assert_eq!(objects(&mut sm).complete().count(), 1, "sm untouched");
}

#[test]
fn a_module_without_its_token_reports_a_token_error() {
    let fx = Fixture::new();
    let mut m = module(&fx, "sm", "never-created");
    match m.create_key("") {
        Err(CertError::Token { cert_type, .. }) => assert_eq!(cert_type, "sm"),
        other => panic!("expected a token error, got {other:?}"),
    }
}
