//! Certificates that live for seconds, renewed while requests flow: the main node renews its own through
//! the cloud when its validator finds them due, the cloud renews the secondaries' (`iam` last), and no
//! request of a functional server or of the CM to a secondary fails meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use aos_actors::api::{ProtectedRequest, ProtectedResponse};
use aos_actors::cm::{IamAccess, LocalIam};
use aos_transport::tls::Role;

use support::*;

/// Every certificate the cloud signs lives this long.
const LIFETIME: Duration = Duration::from_secs(6);
/// How long traffic runs: past three lifetimes, so nothing survives without renewal.
const RUN: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn short_lived_certificates_renew_under_traffic() {
    let mut unit = TestUnit::start(UnitOptions {
        cert_lifetime: Some(LIFETIME),
        validator_tick: Duration::from_millis(200),
        backdate: Duration::from_secs(1),
        renewal_threshold: Some(50),
        ..UnitOptions::default()
    })
    .await;
    unit.provision().await;

    // A service on sec-1 whose secret the functional server checks in a loop.
    let controller = unit
        .main
        .node()
        .cm()
        .unwrap()
        .sm_controller()
        .unwrap()
        .clone();
    let (spec, _) = service("telemetry");
    within(
        "the service runs",
        wait_desired(&controller, SECONDARIES[0], vec![spec.clone()]),
    )
    .await;
    let secret = unit
        .secondary(SECONDARIES[0])
        .runner
        .secret_of(&spec.ident)
        .unwrap();
    let cm_iam = LocalIam::new(unit.main.node().iam().service.clone(), UNIT, Role::Cm).unwrap();

    let mut serials: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut record = |unit: &TestUnit| {
        for node in std::iter::once(&unit.main).chain(&unit.secondaries) {
            if let Some(cert) = node.node().status().cert {
                serials
                    .entry(node.id.clone())
                    .or_default()
                    .insert(cert.serial);
            }
        }
    };
    let started = Instant::now();
    let mut next_cloud_renewal = started;
    let (mut checks, mut forwarded, mut handshakes) = (0u32, 0u32, 0u32);
    let mut checker = unit.checker().await;
    while started.elapsed() < RUN {
        // The cloud renews the secondaries every half lifetime.
        if Instant::now() >= next_cloud_renewal {
            for id in SECONDARIES {
                let renewed = within(
                    "a cloud-driven renewal",
                    unit.cloud.renew(id, &["mp", "sm", "iam"], &password()),
                )
                .await
                .unwrap_or_else(|e| panic!("renewal of {id} failed: {e}"));
                assert_eq!(
                    renewed.last().unwrap().cert_type,
                    "iam",
                    "iam is applied last"
                );
            }
            next_cloud_renewal += LIFETIME / 2;
        }
        // A functional server request on a live connection; every 25th on a new one (a new handshake
        // against whatever certificate the main node has now).
        let grant = checker.check(&secret, "vis").await;
        assert!(grant.is_ok(), "GetPermissions failed: {grant:?}");
        checks += 1;
        if checks % 25 == 0 {
            checker = unit.checker().await;
            handshakes += 1;
        }
        // The CM asks a secondary something through the main node (forwarded over its registration).
        let answer = cm_iam
            .protected(ProtectedRequest::GetCertTypes {
                node_id: SECONDARIES[1].into(),
            })
            .await;
        assert!(
            matches!(answer, Ok(ProtectedResponse::CertTypes(_))),
            "forwarded request failed: {answer:?}"
        );
        forwarded += 1;
        record(&unit);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every node went through several certificates and holds a valid one now.
    let now = SystemTime::now();
    for node in std::iter::once(&unit.main).chain(&unit.secondaries) {
        let seen = serials.get(&node.id).map_or(0, BTreeSet::len);
        assert!(
            seen >= 3,
            "{}: only {seen} iam certificates over {RUN:?}",
            node.id
        );
        let current = node.node().status().cert.unwrap();
        assert!(
            current.not_after > now,
            "{}: current iam certificate expired",
            node.id
        );
    }
    // Requests kept flowing through the whole run (the count depends on the machine; only "some, and
    // none failed" is the point).
    assert!(
        checks >= 10 && forwarded >= 10 && handshakes >= 1,
        "{checks} checks, {forwarded} forwarded, {handshakes} new connections"
    );
    // The process-wide counters the daemon's /metrics shows saw the same.
    let counters = aos_actors::telemetry::counters();
    assert!(counters.renewals_ok >= 3 * 3, "{counters:?}");
    assert!(
        counters.permission_allowed >= u64::from(checks),
        "{counters:?}"
    );
    let renewed_by_main = unit.cloud.stats().ca.issued;
    assert!(
        renewed_by_main > 3 * 9,
        "CA issued {renewed_by_main} certificates"
    );

    unit.main.stop().await;
    for node in &mut unit.secondaries {
        node.stop().await;
    }
}
