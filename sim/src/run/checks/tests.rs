//! Each check passes on a clean record and fails when its condition is broken on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::run::record::{Failure, FaultSpan, NodeRecord, Second};
use crate::tokens::TokenContents;

fn clean() -> Record {
    let node = |name: &str| NodeRecord {
        name: name.into(),
        state: "provisioned".into(),
        token: Some(TokenContents {
            complete: vec![("iam".into(), 1)],
            leftovers: vec![],
        }),
        ..NodeRecord::default()
    };
    Record {
        nodes: vec![node("main"), node("sec-1"), node("sec-2")],
        traffic: vec![Second {
            granted_ok: 10,
            ungranted_refused: 10,
            ..Second::default()
        }],
        ..Record::default()
    }
}

fn all() -> CheckSpec {
    CheckSpec::default()
}

fn failed(record: &Record) -> Vec<&'static str> {
    evaluate(record, &all())
        .into_iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

#[test]
fn a_clean_record_passes_every_check() {
    let results = evaluate(&clean(), &all());
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|c| c.passed), "{results:?}");
}

#[test]
fn provisioned_fails_for_a_node_left_unprovisioned() {
    let mut r = clean();
    r.nodes[2].state = "unprovisioned".into();
    assert_eq!(failed(&r), ["provisioned"]);
    // Unless the scenario deprovisioned it (and its token is empty).
    r.deprovisioned.push(2);
    r.nodes[2].token = Some(TokenContents::default());
    assert!(failed(&r).is_empty());
}

#[test]
fn granted_fails_for_a_refused_check_outside_faults() {
    let mut r = clean();
    r.granted_failures.push(Failure {
        t: 5.0,
        node: 1,
        detail: "NotFound".into(),
    });
    assert_eq!(failed(&r), ["granted"]);
    let detail = evaluate(&r, &all())[1].detail.clone();
    assert!(
        detail.contains("5.00s") && detail.contains("sec-1"),
        "{detail}"
    );
    // A fault on the instance's node (or within the grace after it) excuses it.
    r.faults.push(FaultSpan {
        node: 1,
        kind: "crash".into(),
        start: 3.0,
        end: Some(4.0),
        random: false,
    });
    assert!(failed(&r).is_empty());
}

#[test]
fn ungranted_fails_for_any_accepted_check_even_during_faults() {
    let mut r = clean();
    r.faults.push(FaultSpan {
        node: 0,
        kind: "crash".into(),
        start: 0.0,
        end: None,
        random: true,
    });
    r.ungranted_accepted.push(Failure {
        t: 1.0,
        node: 1,
        detail: "granted \"reboot\"".into(),
    });
    assert_eq!(failed(&r), ["ungranted"]);
}

#[test]
fn renewal_fails_for_an_expired_certificate_in_use() {
    let mut r = clean();
    r.nodes[2].expired_at = vec![9.5, 9.75];
    assert_eq!(failed(&r), ["renewal"]);
    assert!(evaluate(&r, &all())[3].detail.contains("sec-2"));
}

#[test]
fn orphans_fail_for_leftovers_and_for_a_deprovisioned_token_that_is_not_empty() {
    let mut r = clean();
    r.nodes[1].token = Some(TokenContents {
        complete: vec![("iam".into(), 1)],
        leftovers: vec![("sm".into(), 1)],
    });
    assert_eq!(failed(&r), ["orphans"]);
    let mut r = clean();
    r.deprovisioned.push(2);
    r.nodes[2].state = "unprovisioned".into();
    assert_eq!(failed(&r), ["orphans"]);
    r.nodes[2].token = None;
    assert_eq!(
        failed(&r),
        ["orphans"],
        "a token nobody looked at is not clean"
    );
}

#[test]
fn disabled_checks_do_not_run() {
    let mut r = clean();
    r.nodes[2].state = "down".into();
    let spec = CheckSpec {
        provisioned: false,
        ..CheckSpec::default()
    };
    assert!(evaluate(&r, &spec)
        .iter()
        .all(|c| c.passed && c.name != "provisioned"));
}
